package logship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/awsbody"
)

// PutLogEvents limits (CloudWatch Logs API reference): at most 10,000
// events and 1,048,576 bytes (messages plus 26 bytes each) per call, and
// the events of one call within 24 hours.
const (
	maxEventsPerPut = 10000
	maxPutBytes     = 1 << 20
	maxPutSpan      = 23 * time.Hour // under 24 h, leaving room for clock steps
)

// LogsAPI is the part of the CloudWatch Logs client the shipper uses.
type LogsAPI interface {
	CreateLogGroup(ctx context.Context, in *cloudwatchlogs.CreateLogGroupInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogGroupOutput, error)
	CreateLogStream(ctx context.Context, in *cloudwatchlogs.CreateLogStreamInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.CreateLogStreamOutput, error)
	PutLogEvents(ctx context.Context, in *cloudwatchlogs.PutLogEventsInput, optFns ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.PutLogEventsOutput, error)
}

// NewClient builds a CloudWatch Logs client from the AWS SDK's default
// chain, as on an instance: the instance role's credentials through IMDS,
// the endpoint from AWS_ENDPOINT_URL(_CLOUDWATCH_LOGS), the region from
// AWS_REGION or else the instance's own. The SDK's retries are off: the
// shipper retries itself, with a backoff that outlasts an outage.
func NewClient(ctx context.Context) (*cloudwatchlogs.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	return cloudwatchlogs.NewFromConfig(cfg, func(o *cloudwatchlogs.Options) { o.Retryer = aws.NopRetryer{} }), nil
}

// ShipperOptions configure a Shipper.
type ShipperOptions struct {
	Handler  *Handler // required: the handler whose queue is shipped
	Client   LogsAPI  // required; see NewClient
	LogGroup string   // required
	// NodeID names the streams: broker-<id> and broker-<id>/audit.
	NodeID int32
	// FlushInterval is how often the queue is sent (default 5s); a queue
	// past a quarter of a PutLogEvents call is sent at once.
	FlushInterval time.Duration
	// BaseBackoff is the wait after the first failed call (default 1s),
	// doubling with jitter up to MaxBackoff (default 1 min).
	BaseBackoff, MaxBackoff time.Duration
	// CallTimeout bounds one call to CloudWatch Logs (default 10s), so a
	// stalled endpoint is given up on and retried.
	CallTimeout time.Duration
	// Logger receives the shipper's own messages (failures, drops). It
	// must not be the shipping Handler's logger: a failure to ship would
	// queue a line about itself.
	Logger *slog.Logger
}

// Shipper sends a Handler's queue to CloudWatch Logs.
type Shipper struct {
	opts    ShipperOptions
	buf     *buffer
	log     *slog.Logger
	streams [streamCount]string

	mu       sync.Mutex // one flush at a time
	created  [streamCount]bool
	failures failures

	stats counters
}

// Stats are a shipper's totals since start.
type Stats struct {
	Puts     int64 // successful PutLogEvents calls
	Shipped  int64 // events CloudWatch Logs accepted
	Rejected int64 // events CloudWatch Logs refused (too old, too new, invalid)
	Dropped  int64 // events dropped because the queue was full
	Failed   int64 // failed calls (each retry counts)
	Denied   int64 // calls refused for lack of permission
	Queued   int   // events waiting now
}

// StreamName is the broker's stream in the log group; AuditStreamName its
// audit trail's.
func StreamName(nodeID int32) string { return "broker-" + strconv.Itoa(int(nodeID)) }

// AuditStreamName is the stream of a broker's audit trail.
func AuditStreamName(nodeID int32) string { return StreamName(nodeID) + "/audit" }

// NewShipper checks the options.
func NewShipper(opts ShipperOptions) (*Shipper, error) {
	switch {
	case opts.Handler == nil:
		return nil, errors.New("logship: no handler")
	case opts.Client == nil:
		return nil, errors.New("logship: no CloudWatch Logs client")
	case opts.LogGroup == "":
		return nil, errors.New("logship: no log group")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	buf, log := opts.Handler.state.bufs[DestCloudWatchLogs], opts.Logger.With("log_group", opts.LogGroup)
	s := &Shipper{opts: opts, buf: buf, log: log,
		failures: newFailures("CloudWatch Logs", buf, log, opts.BaseBackoff, opts.MaxBackoff)}
	s.streams[StreamBroker] = StreamName(opts.NodeID)
	s.streams[StreamAudit] = AuditStreamName(opts.NodeID)
	return s, nil
}

// Run flushes every FlushInterval, sooner when the queue fills, and after
// a failure waits out the backoff, until ctx is done. It never returns an
// error the broker must act on: CloudWatch Logs being away is not the
// broker's failure.
func (s *Shipper) Run(ctx context.Context) {
	runFlushes(ctx, s.buf, s.opts.FlushInterval, maxPutBytes/4, s.Flush, lockedBackoff(&s.mu, &s.failures))
}

// Flush sends what is queued, until the queue is empty or a call fails;
// the events of a failed call go back to the front of the queue.
func (s *Shipper) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures.deliverAll(ctx, func() []Event { return s.buf.take(maxEventsPerPut, maxPutBytes) }, splitSpan, s.put)
}

// splitSpan returns the events of stream st in time order, in parts each
// spanning less than maxPutSpan.
func splitSpan(batch []Event, st Stream) [][]Event {
	var mine []Event
	for _, e := range batch {
		if e.Stream == st {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	slices.SortStableFunc(mine, func(a, b Event) int { return compareInt64(a.UnixMs, b.UnixMs) })
	var parts [][]Event
	start := 0
	for i := range mine {
		if mine[i].UnixMs-mine[start].UnixMs >= maxPutSpan.Milliseconds() {
			parts = append(parts, mine[start:i])
			start = i
		}
	}
	return append(parts, mine[start:])
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// put sends one stream's events, creating the stream (and the group) when
// CloudWatch Logs does not know it.
func (s *Shipper) put(ctx context.Context, st Stream, events []Event) error {
	if !s.created[st] {
		if err := s.createStream(ctx, st); err != nil {
			return err
		}
		s.created[st] = true
	}
	in := &cloudwatchlogs.PutLogEventsInput{
		LogGroupName:  aws.String(s.opts.LogGroup),
		LogStreamName: aws.String(s.streams[st]),
		LogEvents:     make([]types.InputLogEvent, len(events)),
	}
	for i, e := range events {
		in.LogEvents[i] = types.InputLogEvent{Timestamp: aws.Int64(e.UnixMs), Message: aws.String(e.Message)}
	}
	out, err := s.call(ctx, func(ctx context.Context) (any, error) { return s.opts.Client.PutLogEvents(ctx, in) })
	if errorCode(err) == "ResourceNotFoundException" {
		// The stream or the group was deleted under us: make them again.
		s.created[st] = false
		if err := s.createStream(ctx, st); err != nil {
			return err
		}
		s.created[st] = true
		out, err = s.call(ctx, func(ctx context.Context) (any, error) { return s.opts.Client.PutLogEvents(ctx, in) })
	}
	if err != nil {
		if errorCode(err) == "InvalidParameterException" {
			// A batch CloudWatch Logs will never take (its rules
			// changed, or an event is malformed): retrying it would
			// stop every later line, so it is given up and counted.
			s.stats.rejected.Add(int64(len(events)))
			s.log.Warn("CloudWatch Logs refused a batch of log events; they are dropped", "stream", s.streams[st], "events", len(events), "err", err)
			return nil
		}
		return fmt.Errorf("putting %d log events to %s/%s: %w", len(events), s.opts.LogGroup, s.streams[st], err)
	}
	rejected := 0
	if r := out.(*cloudwatchlogs.PutLogEventsOutput).RejectedLogEventsInfo; r != nil {
		rejected = rejectedCount(r, len(events))
	}
	s.stats.puts.Add(1)
	s.stats.shipped.Add(int64(len(events) - rejected))
	s.stats.rejected.Add(int64(rejected))
	return nil
}

// rejectedCount counts the events rejectedLogEventsInfo names: those
// before the too-old and expired end indexes (exclusive) and from the
// too-new start index.
func rejectedCount(r *types.RejectedLogEventsInfo, n int) int {
	old := 0
	if r.TooOldLogEventEndIndex != nil {
		old = int(*r.TooOldLogEventEndIndex)
	}
	if r.ExpiredLogEventEndIndex != nil {
		old = max(old, int(*r.ExpiredLogEventEndIndex))
	}
	newer := 0
	if r.TooNewLogEventStartIndex != nil {
		newer = n - int(*r.TooNewLogEventStartIndex)
	}
	return min(n, old+newer)
}

// createStream creates the stream; when the group is missing, the group
// first (the instance role may create exactly the cluster's group).
func (s *Shipper) createStream(ctx context.Context, st Stream) error {
	create := func() error {
		_, err := s.call(ctx, func(ctx context.Context) (any, error) {
			return s.opts.Client.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{
				LogGroupName: aws.String(s.opts.LogGroup), LogStreamName: aws.String(s.streams[st]),
			})
		})
		if errorCode(err) == "ResourceAlreadyExistsException" {
			return nil
		}
		return err
	}
	err := create()
	if errorCode(err) == "ResourceNotFoundException" {
		_, gerr := s.call(ctx, func(ctx context.Context) (any, error) {
			return s.opts.Client.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(s.opts.LogGroup)})
		})
		if gerr != nil && errorCode(gerr) != "ResourceAlreadyExistsException" {
			return fmt.Errorf("creating log group %s: %w", s.opts.LogGroup, gerr)
		}
		err = create()
	}
	if err != nil {
		return fmt.Errorf("creating log stream %s/%s: %w", s.opts.LogGroup, s.streams[st], err)
	}
	return nil
}

// call runs one CloudWatch Logs call under CallTimeout.
func (s *Shipper) call(ctx context.Context, f func(context.Context) (any, error)) (any, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	out, err := f(cctx)
	if err != nil {
		s.stats.callFailed(err)
	}
	return out, err
}

// Stats returns the shipper's totals.
func (s *Shipper) Stats() Stats {
	return s.stats.stats(s.buf)
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// deniedCodes are the error codes of a caller without permission or valid
// credentials.
var deniedCodes = map[string]bool{
	"AccessDenied": true, "AccessDeniedException": true, "UnrecognizedClientException": true,
	"InvalidClientTokenId": true, "ExpiredToken": true, "ExpiredTokenException": true,
}

func isDenied(err error) bool {
	if deniedCodes[errorCode(err)] {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}
