package logship

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tributary/tributary/internal/awsbody"
)

// DefaultS3ObjectBytes is how many bytes of lines (plus 26 per line, the
// queue's measure) one log object holds at most before gzip; a queue that
// holds that much is delivered at once.
const DefaultS3ObjectBytes = 4 << 20

// S3API is the part of the S3 client the S3 shipper uses.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// NewS3Client builds an S3 client from the AWS SDK's default chain, as on
// an instance (the instance role through IMDS, the region from AWS_REGION or
// the instance's own). With an endpoint override (AWS_ENDPOINT_URL or
// AWS_ENDPOINT_URL_S3: the local cloud, LocalStack, moto) requests are
// path-style, which those serve; against AWS they are virtual-hosted. The
// SDK's retries are off: the shipper retries itself.
func NewS3Client(ctx context.Context) (*s3.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
		o.UsePathStyle = o.BaseEndpoint != nil
	}), nil
}

// S3ShipperOptions configure an S3Shipper.
type S3ShipperOptions struct {
	Handler *Handler // required: the handler whose S3 queue is delivered
	Client  S3API    // required; see NewS3Client
	Bucket  string   // required
	// KeyPrefix leads every key; objects go to
	// <KeyPrefix><yyyy-mm-dd-hh>/Broker-<id>[-audit]_<yyyy-mm-dd-hh-mm-ss>_<random>.log.gz
	// (UTC, the time of the object's first line).
	KeyPrefix string
	NodeID    int32
	// FlushInterval is how often the queue is delivered (default 1 min);
	// a queue holding ObjectBytes is delivered at once.
	FlushInterval time.Duration
	// ObjectBytes bounds one object's lines (default DefaultS3ObjectBytes).
	ObjectBytes int
	// BaseBackoff, MaxBackoff and CallTimeout as ShipperOptions'.
	BaseBackoff, MaxBackoff time.Duration
	CallTimeout             time.Duration
	// Logger receives the shipper's own messages; never the shipping
	// Handler's logger.
	Logger *slog.Logger
	// Now is the clock of object names (default time.Now).
	Now func() time.Time
}

// S3Shipper delivers a Handler's S3 queue as gzip objects, one per stream
// and batch: the broker's log, and its audit trail in objects of its own.
type S3Shipper struct {
	opts S3ShipperOptions
	buf  *buffer
	log  *slog.Logger

	mu       sync.Mutex // one flush at a time
	failures failures

	stats counters
}

// NewS3Shipper checks the options.
func NewS3Shipper(opts S3ShipperOptions) (*S3Shipper, error) {
	switch {
	case opts.Handler == nil:
		return nil, errors.New("logship: no handler")
	case opts.Client == nil:
		return nil, errors.New("logship: no S3 client")
	case opts.Bucket == "":
		return nil, errors.New("logship: no S3 bucket")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Minute
	}
	if opts.ObjectBytes <= 0 {
		opts.ObjectBytes = DefaultS3ObjectBytes
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	buf, log := opts.Handler.state.bufs[DestS3], opts.Logger.With("bucket", opts.Bucket, "key_prefix", opts.KeyPrefix)
	return &S3Shipper{opts: opts, buf: buf, log: log,
		failures: newFailures("S3", buf, log, opts.BaseBackoff, opts.MaxBackoff)}, nil
}

// Run delivers every FlushInterval, sooner when the queue holds an object's
// worth, and after a failure waits out the backoff, until ctx is done. S3
// being away is never the broker's failure.
func (s *S3Shipper) Run(ctx context.Context) {
	runFlushes(ctx, s.buf, s.opts.FlushInterval, s.opts.ObjectBytes, s.Flush, lockedBackoff(&s.mu, &s.failures))
}

// Flush delivers what is queued, until the queue is empty or a put fails;
// the lines of a failed put go back to the front of the queue.
func (s *S3Shipper) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures.deliverAll(ctx, func() []Event { return s.buf.take(1<<30, s.opts.ObjectBytes) }, streamEvents, s.put)
}

// streamEvents is stream st's events of batch, as one object's lines.
func streamEvents(batch []Event, st Stream) [][]Event {
	var mine []Event
	for _, e := range batch {
		if e.Stream == st {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	return [][]Event{mine}
}

// ObjectKey is the key of an object of stream st whose first line is at t.
func (s *S3Shipper) ObjectKey(st Stream, t time.Time, suffix string) string {
	t = t.UTC()
	name := "Broker-" + strconv.Itoa(int(s.opts.NodeID))
	if st == StreamAudit {
		name += "-audit"
	}
	return s.opts.KeyPrefix + t.Format("2006-01-02-15") + "/" + name + "_" + t.Format("2006-01-02-15-04-05") + "_" + suffix + ".log.gz"
}

// put delivers one stream's lines as one gzip object, a line each.
func (s *S3Shipper) put(ctx context.Context, st Stream, events []Event) error {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	for _, e := range events {
		zw.Write([]byte(e.Message)) // a bytes.Buffer takes everything
		zw.Write([]byte{'\n'})
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing log lines: %w", err)
	}
	random := make([]byte, 4)
	_, _ = rand.Read(random)
	key := s.ObjectKey(st, time.UnixMilli(events[0].UnixMs), hex.EncodeToString(random))
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	_, err := s.opts.Client.PutObject(cctx, &s3.PutObjectInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(key), Body: bytes.NewReader(body.Bytes()),
		ContentType: aws.String("application/gzip"),
	})
	if err != nil {
		s.stats.callFailed(err)
		return fmt.Errorf("putting %d log lines to s3://%s/%s: %w", len(events), s.opts.Bucket, key, err)
	}
	s.stats.puts.Add(1)
	s.stats.shipped.Add(int64(len(events)))
	return nil
}

// Stats returns the shipper's totals: Puts are objects written, Shipped
// the lines in them.
func (s *S3Shipper) Stats() Stats {
	return s.stats.stats(s.buf)
}
