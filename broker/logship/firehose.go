package logship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/tributary/tributary/internal/awsbody"
)

// PutRecordBatch limits (Amazon Data Firehose quotas): at most 500 records
// and 4 MiB of data per call, a record at most 1,000 KiB. A queued line is
// at most 256 KiB (maxMessageBytes), so every line fits a record; the
// queue's measure (line plus 26 bytes) exceeds a record's (line plus its
// newline), so a batch the queue cuts at 4 MiB fits a call.
const (
	maxRecordsPerBatch = 500
	maxBatchDataBytes  = 4 << 20
)

// FirehoseAPI is the part of the Firehose client the Firehose shipper uses.
type FirehoseAPI interface {
	PutRecordBatch(ctx context.Context, in *firehose.PutRecordBatchInput, optFns ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error)
}

// NewFirehoseClient builds a Firehose client from the AWS SDK's default
// chain, as on an instance (the instance role through IMDS, the endpoint
// from AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_FIREHOSE, the region from
// AWS_REGION or the instance's own). The SDK's retries are off: the shipper
// retries itself.
func NewFirehoseClient(ctx context.Context) (*firehose.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	return firehose.NewFromConfig(cfg, func(o *firehose.Options) { o.Retryer = aws.NopRetryer{} }), nil
}

// FirehoseShipperOptions configure a FirehoseShipper.
type FirehoseShipperOptions struct {
	Handler        *Handler    // required: the handler whose Firehose queue is delivered
	Client         FirehoseAPI // required; see NewFirehoseClient
	DeliveryStream string      // required
	// FlushInterval is how often the queue is sent (default 5 s); a queue
	// past a quarter of a batch is sent at once. The delivery stream's
	// buffering hints decide when its objects are written.
	FlushInterval time.Duration
	// BaseBackoff, MaxBackoff and CallTimeout as ShipperOptions'.
	BaseBackoff, MaxBackoff time.Duration
	CallTimeout             time.Duration
	// Logger receives the shipper's own messages; never the shipping
	// Handler's logger.
	Logger *slog.Logger
}

// FirehoseShipper sends a Handler's Firehose queue to a delivery stream,
// one record per line (the line and a newline, so the stream's objects are
// JSON lines); the audit trail's lines carry log=audit, as in the other
// destinations.
type FirehoseShipper struct {
	opts FirehoseShipperOptions
	buf  *buffer
	log  *slog.Logger

	mu       sync.Mutex // one flush at a time
	failures failures

	stats counters
}

// NewFirehoseShipper checks the options.
func NewFirehoseShipper(opts FirehoseShipperOptions) (*FirehoseShipper, error) {
	switch {
	case opts.Handler == nil:
		return nil, errors.New("logship: no handler")
	case opts.Client == nil:
		return nil, errors.New("logship: no Firehose client")
	case opts.DeliveryStream == "":
		return nil, errors.New("logship: no Firehose delivery stream")
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
	buf, log := opts.Handler.state.bufs[DestFirehose], opts.Logger.With("delivery_stream", opts.DeliveryStream)
	return &FirehoseShipper{opts: opts, buf: buf, log: log,
		failures: newFailures("Firehose", buf, log, opts.BaseBackoff, opts.MaxBackoff)}, nil
}

// Run sends every FlushInterval, sooner when the queue fills, and after a
// failure waits out the backoff, until ctx is done. Firehose being away is
// never the broker's failure.
func (s *FirehoseShipper) Run(ctx context.Context) {
	runFlushes(ctx, s.buf, s.opts.FlushInterval, maxBatchDataBytes/4, s.Flush, lockedBackoff(&s.mu, &s.failures))
}

// Flush sends what is queued, until the queue is empty or a call fails;
// the lines of a failed call, or the records Firehose refused of a call
// that partly failed, go back to the front of the queue.
func (s *FirehoseShipper) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures.deliverAll(ctx, func() []Event { return s.buf.take(maxRecordsPerBatch, maxBatchDataBytes) }, streamEvents, s.put)
}

// put sends one stream's lines as one PutRecordBatch.
func (s *FirehoseShipper) put(ctx context.Context, _ Stream, events []Event) error {
	in := &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String(s.opts.DeliveryStream), Records: make([]fhtypes.Record, len(events))}
	for i, e := range events {
		data := make([]byte, 0, len(e.Message)+1)
		in.Records[i] = fhtypes.Record{Data: append(append(data, e.Message...), '\n')}
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	out, err := s.opts.Client.PutRecordBatch(cctx, in)
	if err != nil {
		s.stats.callFailed(err)
		return fmt.Errorf("putting %d log lines to Firehose stream %s: %w", len(events), s.opts.DeliveryStream, err)
	}
	s.stats.puts.Add(1)
	if aws.ToInt32(out.FailedPutCount) == 0 {
		s.stats.shipped.Add(int64(len(events)))
		return nil
	}
	// Firehose took some records and refused others (throttled, or an
	// internal failure), each with its code: those are sent again.
	if len(out.RequestResponses) != len(events) {
		s.stats.failed.Add(1)
		return fmt.Errorf("putting %d log lines to Firehose stream %s: %d failed and %d answers came back", len(events), s.opts.DeliveryStream, aws.ToInt32(out.FailedPutCount), len(out.RequestResponses))
	}
	var failed []Event
	var code, msg string
	for i, r := range out.RequestResponses {
		if aws.ToString(r.ErrorCode) != "" {
			failed = append(failed, events[i])
			code, msg = aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage)
		}
	}
	s.stats.failed.Add(1)
	s.stats.shipped.Add(int64(len(events) - len(failed)))
	return &partialFailure{failed: failed, err: fmt.Errorf("delivery stream %s refused %d of %d log lines (%s: %s)", s.opts.DeliveryStream, len(failed), len(events), code, msg)}
}

// Stats returns the shipper's totals: Puts are PutRecordBatch calls that
// were answered, Shipped the lines Firehose took.
func (s *FirehoseShipper) Stats() Stats {
	return s.stats.stats(s.buf)
}
