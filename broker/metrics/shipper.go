package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/awsbody"
)

// PutMetricData limits (CloudWatch API reference): at most 1,000 metric
// data per call and a request body of at most 1 MB.
const (
	maxDataPerPut = 1000
	maxPutBytes   = 1 << 20
	// putBytesBudget leaves room for the request's envelope (namespace,
	// framing) under maxPutBytes.
	putBytesBudget = maxPutBytes - 16<<10
)

// CloudWatchAPI is the part of the CloudWatch client the shipper uses.
type CloudWatchAPI interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// NewCloudWatchClient builds a CloudWatch client from the AWS SDK's default
// chain, as on an instance: credentials from the instance role through
// IMDS, the endpoint from AWS_ENDPOINT_URL(_CLOUDWATCH) when set, the
// region from AWS_REGION or else the instance's own. The SDK's retries are
// off: the shipper retries itself, bounded by its interval.
func NewCloudWatchClient(ctx context.Context) (*cloudwatch.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = credentialsTagger{cfg.Credentials}
	}
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.Retryer = aws.NopRetryer{} }), nil
}

// credentialsTagger marks the failures to get credentials (no instance
// role, IMDS unreachable), which the SDK reports only as wrapped text, so
// the shipper can tell them from a refused call.
type credentialsTagger struct{ next aws.CredentialsProvider }

func (c credentialsTagger) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := c.next.Retrieve(ctx)
	if err != nil {
		return creds, &credentialsError{err}
	}
	return creds, nil
}

// credentialsError is a failure to get credentials.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "getting AWS credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// ShipperOptions configure a Shipper.
type ShipperOptions struct {
	Registry  *Registry     // required
	Client    CloudWatchAPI // required; see NewCloudWatchClient
	Namespace string        // required; not AWS/...
	Level     Level
	Interval  time.Duration // default 60s, as MSK
	Logger    *slog.Logger  // default the registry's
	// MaxAttempts bounds the tries of one PutMetricData on throttling and
	// other transient errors (default 5); BaseBackoff is the first wait
	// (default 1s, doubling with full jitter). Retries of a shipment stop
	// at half the interval, so a shipment never runs into the next one.
	MaxAttempts int
	BaseBackoff time.Duration
}

// Shipper puts the registry's metrics to CloudWatch every interval, with
// MSK's names and dimensions for its level. It runs in its own goroutine
// and never blocks the broker: the hot path only touches atomic counters,
// and a failing CloudWatch costs dropped metric data and a log line, never
// a stalled request.
type Shipper struct {
	opts ShipperOptions
	log  *slog.Logger
	prev *Snapshot

	mu       sync.Mutex // one shipment at a time
	denied   atomic.Bool
	stats    shipperCounters
	lastOKNs atomic.Int64
}

type shipperCounters struct {
	puts, shipped, dropped, denied, throttled atomic.Int64
}

// ShipperStats are the shipper's totals since start.
type ShipperStats struct {
	Puts      int64     // successful PutMetricData calls
	Shipped   int64     // metric data accepted by CloudWatch
	Dropped   int64     // metric data given up on (any failure)
	Denied    int64     // calls refused for lack of permission
	Throttled int64     // calls throttled (each retry counts)
	LastOK    time.Time // the last successful call; zero if none
}

// NewShipper checks the options and takes the first snapshot, the base of
// the first shipment's rates.
func NewShipper(opts ShipperOptions) (*Shipper, error) {
	switch {
	case opts.Registry == nil:
		return nil, errors.New("metrics: a shipper needs a registry")
	case opts.Client == nil:
		return nil, errors.New("metrics: a shipper needs a CloudWatch client")
	case opts.Namespace == "":
		return nil, errors.New("metrics: a shipper needs a CloudWatch namespace")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = opts.Registry.log
	}
	s := &Shipper{opts: opts, log: opts.Logger.With("component", "cloudwatch", "namespace", opts.Namespace)}
	s.prev = opts.Registry.Snapshot()
	opts.Registry.shipper.Store(s)
	return s, nil
}

// Run ships every interval until ctx ends. It returns ctx's error.
func (s *Shipper) Run(ctx context.Context) error {
	s.log.Info("shipping metrics to CloudWatch", "level", s.opts.Level.String(), "interval", s.opts.Interval)
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, s.opts.Interval/2)
			_ = s.Ship(sctx) // logged inside; the next interval tries again
			cancel()
		}
	}
}

// Ship puts the metrics of the interval since the previous shipment now.
// The error is the last failure, for tests; Run only logs.
func (s *Shipper) Ship(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.opts.Registry.Snapshot()
	data := CloudWatchData(s.prev, cur, s.opts.Level, s.opts.Registry.ClusterName(), s.opts.Registry.BrokerID())
	s.prev = cur
	var failed error
	bs := batches(data, maxDataPerPut, putBytesBudget)
	for i, batch := range bs {
		err := s.put(ctx, batch)
		if err == nil {
			continue
		}
		failed = err
		if ctx.Err() != nil || isDenied(err) {
			// The rest would fail the same way: drop it all now.
			for _, b := range bs[i+1:] {
				s.stats.dropped.Add(int64(len(b)))
			}
			break
		}
	}
	return failed
}

// put sends one batch, retrying transient failures with exponential
// backoff and full jitter. It logs every outcome that needs an operator.
func (s *Shipper) put(ctx context.Context, batch []types.MetricDatum) error {
	in := &cloudwatch.PutMetricDataInput{Namespace: aws.String(s.opts.Namespace), MetricData: batch}
	var err error
	for attempt := 1; ; attempt++ {
		_, err = s.opts.Client.PutMetricData(ctx, in)
		if err == nil {
			s.stats.puts.Add(1)
			s.stats.shipped.Add(int64(len(batch)))
			s.lastOKNs.Store(time.Now().UnixNano())
			if s.denied.Swap(false) {
				s.log.Info("CloudWatch accepts the broker's metrics again")
			}
			return nil
		}
		throttled := isThrottle(err)
		if throttled {
			s.stats.throttled.Add(1)
		}
		if isDenied(err) || !(throttled || isTransient(err)) || attempt >= s.opts.MaxAttempts || ctx.Err() != nil {
			break
		}
		wait := rand.N(s.opts.BaseBackoff << min(attempt-1, 10))
		s.log.Debug("PutMetricData failed, retrying", "attempt", attempt, "wait", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
	s.stats.dropped.Add(int64(len(batch)))
	switch {
	case isDenied(err):
		s.stats.denied.Add(1)
		// Once per episode: a role without the permission would otherwise
		// log every interval forever.
		switch {
		case s.denied.Swap(true):
			s.log.Debug("CloudWatch still refuses the broker's metrics", "err", err)
		case noCredentials(err):
			s.log.Error("no AWS credentials for CloudWatch: give the instance a role (credentials come from IMDS) with cloudwatch:PutMetricData on this namespace; metrics are dropped until then (Prometheus /metrics is unaffected)", "err", err)
		default:
			s.log.Error("CloudWatch refused the broker's metrics: the instance role needs cloudwatch:PutMetricData on this namespace; metrics are dropped until it has it (Prometheus /metrics is unaffected)", "err", err)
		}
	case ctx.Err() != nil:
		s.log.Warn("dropping metric data: the shipment ran out of time", "data", len(batch), "err", err)
	default:
		s.log.Warn("dropping metric data: PutMetricData failed", "data", len(batch), "err", err)
	}
	return err
}

// Stats returns the shipper's totals.
func (s *Shipper) Stats() ShipperStats {
	st := ShipperStats{
		Puts: s.stats.puts.Load(), Shipped: s.stats.shipped.Load(), Dropped: s.stats.dropped.Load(),
		Denied: s.stats.denied.Load(), Throttled: s.stats.throttled.Load(),
	}
	if ns := s.lastOKNs.Load(); ns != 0 {
		st.LastOK = time.Unix(0, ns)
	}
	return st
}

// noCredentials says whether err is a failure to get credentials.
func noCredentials(err error) bool {
	var ce *credentialsError
	return errors.As(err, &ce)
}

// deniedCodes are the error codes of a caller without permission or
// without valid credentials, across CloudWatch's protocols.
var deniedCodes = map[string]bool{
	"AccessDenied": true, "AccessDeniedException": true, "UnauthorizedOperation": true,
	"InvalidClientTokenId": true, "UnrecognizedClientException": true, "ExpiredToken": true,
	"ExpiredTokenException": true, "NotAuthorized": true, "MissingAuthenticationToken": true,
}

func isDenied(err error) bool {
	if noCredentials(err) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && deniedCodes[ae.ErrorCode()] {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

func isThrottle(err error) bool {
	return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
}

// isTransient is the SDK's own classification of retryable errors
// (5xx, connection resets, timeouts, throttling).
func isTransient(err error) bool {
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// datumSize is a generous estimate of a datum's encoded size: its strings
// plus an allowance for field names, the number, the timestamp and the
// unit in the largest encoding the SDK may use (awsQuery, which repeats
// "MetricData.member.N.Dimensions.member.M." in every key). The SDK's
// default rpc-v2-cbor is several times smaller and is gzipped on the wire
// (the local-cloud test logs the sizes), so batches stay far below the
// limit; the budget matters only for very long group and topic names.
func datumSize(d types.MetricDatum) int {
	n := 200 + len(aws.ToString(d.MetricName)) + len(d.Unit)
	for _, dim := range d.Dimensions {
		n += 100 + len(aws.ToString(dim.Name)) + len(aws.ToString(dim.Value))
	}
	return n
}

// batches splits data into PutMetricData calls of at most maxCount data and
// about maxBytes of request body.
func batches(data []types.MetricDatum, maxCount, maxBytes int) [][]types.MetricDatum {
	var (
		out   [][]types.MetricDatum
		start int
		size  int
	)
	for i, d := range data {
		ds := datumSize(d)
		if i > start && (i-start >= maxCount || size+ds > maxBytes) {
			out = append(out, data[start:i])
			start, size = i, 0
		}
		size += ds
	}
	if start < len(data) {
		out = append(out, data[start:])
	}
	return out
}
