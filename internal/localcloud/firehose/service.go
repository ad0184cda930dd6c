// Package firehose emulates Amazon Data Firehose (awsJson1_1, X-Amz-Target:
// Firehose_20150804.<Operation>) for the local cloud: Direct PUT delivery streams with an S3
// destination (CreateDeliveryStream with S3DestinationConfiguration or
// ExtendedS3DestinationConfiguration, DescribeDeliveryStream, ListDeliveryStreams,
// DeleteDeliveryStream) and records (PutRecord, PutRecordBatch with Firehose's limits and
// per-record failures). Each call is authorized by IAM as firehose:<Operation> on the stream's
// ARN; creating a stream also needs iam:PassRole on its role.
//
// As Firehose does, a stream buffers its records and writes them, concatenated as sent, to one
// object of its bucket once the buffer holds BufferingHints.SizeInMBs or its oldest record is
// IntervalInSeconds old, under <Prefix><yyyy/MM/dd/HH>/<stream>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>
// (UTC), gzip-compressed with CompressionFormat GZIP. The write is authorized as the stream's
// role (s3:PutObject on the object's ARN): a role that may not write, or a missing bucket, keeps
// the records buffered and retried, as Firehose retries. Streams and their buffered records are
// kept in the service's state directory.
package firehose

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Firehose's limits (Amazon Data Firehose quotas).
const (
	maxRecordBytes     = 1000 << 10 // one record's data, before base64
	maxBatchRecords    = 500
	maxBatchBytes      = 4 << 20
	defaultSizeMiB     = 5
	defaultIntervalS   = 300
	targetPrefix       = "Firehose_20150804."
	deliverySession    = "AWSFirehoseToS3"
	deliveryTick       = 200 * time.Millisecond
	saveEvery          = time.Second
	defaultMaxBuffered = 128 << 20 // past this a stream refuses records (ServiceUnavailableException)
)

// Options configure the service.
type Options struct {
	Env awsapi.Env
	// Objects is where streams deliver (the S3 service); Authorizer decides whether a
	// stream's role may write there (the IAM service). Without an Authorizer every write is
	// allowed.
	Objects    awsapi.ObjectStore
	Authorizer awsapi.Authorizer
	// MaxBufferedBytes is how much a stream holds undelivered before it
	// refuses records (default 128 MiB).
	MaxBufferedBytes int
}

// Service is the emulated Firehose of one account. It is safe for concurrent use.
type Service struct {
	account   string
	region    string
	statePath string
	log       *slog.Logger
	now       func() time.Time
	objects   awsapi.ObjectStore
	authz     awsapi.Authorizer
	maxBuffer int

	mu      sync.Mutex
	streams map[string]*stream // by name
	dirty   bool
	saved   time.Time

	stop chan struct{}
	done chan struct{}
}

var _ awsapi.Service = (*Service)(nil)

// stream is a delivery stream, its destination and the records not yet delivered.
type stream struct {
	Name        string            `json:"name"`
	Created     float64           `json:"created"` // seconds since the epoch
	Destination destination       `json:"destination"`
	Tags        map[string]string `json:"tags,omitempty"`
	Pending     []record          `json:"pending,omitempty"`
	// Extended is set when the stream was made with ExtendedS3DestinationConfiguration.
	Extended bool `json:"extended,omitempty"`

	pendingBytes int
	lastFailure  string
}

type record struct {
	Data     []byte  `json:"d"`
	Received float64 `json:"t"`
}

// bufferingHints, and the destination's configuration, in Firehose's JSON names.
type bufferingHints struct {
	SizeInMBs         *int32 `json:",omitempty"`
	IntervalInSeconds *int32 `json:",omitempty"`
}

type destination struct {
	RoleARN           string          `json:"RoleARN"`
	BucketARN         string          `json:"BucketARN"`
	Prefix            string          `json:"Prefix,omitempty"`
	ErrorOutputPrefix string          `json:"ErrorOutputPrefix,omitempty"`
	BufferingHints    *bufferingHints `json:"BufferingHints,omitempty"`
	CompressionFormat string          `json:"CompressionFormat,omitempty"`
}

func (d destination) sizeBytes() int {
	if d.BufferingHints != nil && d.BufferingHints.SizeInMBs != nil {
		return int(*d.BufferingHints.SizeInMBs) << 20
	}
	return defaultSizeMiB << 20
}

func (d destination) interval() time.Duration {
	if d.BufferingHints != nil && d.BufferingHints.IntervalInSeconds != nil {
		return time.Duration(*d.BufferingHints.IntervalInSeconds) * time.Second
	}
	return defaultIntervalS * time.Second
}

func (d destination) bucket() string { return strings.TrimPrefix(d.BucketARN, "arn:aws:s3:::") }

// New returns the Firehose service, restoring its streams and their buffered records from
// the state directory, and starts delivering.
func New(opts Options) (*Service, error) {
	env := opts.Env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, log: env.Logger, now: env.Now, objects: opts.Objects, authz: opts.Authorizer,
		maxBuffer: opts.MaxBufferedBytes, streams: map[string]*stream{}, stop: make(chan struct{}), done: make(chan struct{})}
	if s.maxBuffer <= 0 {
		s.maxBuffer = defaultMaxBuffered
	}
	if opts.Objects == nil {
		return nil, errors.New("firehose: no object store to deliver to")
	}
	if env.StateDir != "" {
		s.statePath = filepath.Join(env.StateDir, "streams.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			var list []*stream
			if err := json.Unmarshal(data, &list); err != nil {
				return nil, fmt.Errorf("reading Firehose state %s: %w", s.statePath, err)
			}
			for _, st := range list {
				for _, r := range st.Pending {
					st.pendingBytes += len(r.Data)
				}
				s.streams[st.Name] = st
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading Firehose state: %w", err)
		}
	}
	go s.deliverLoop()
	return s, nil
}

// Close stops delivering and writes the streams and their undelivered records.
func (s *Service) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

func (s *Service) saveLocked() error {
	s.dirty, s.saved = false, s.now()
	if s.statePath == "" {
		return nil
	}
	return awsapi.SaveJSONState(s.statePath, "Firehose", awsapi.SortedValues(s.streams))
}

// operation serves one action; it runs with s.mu held.
type operation func(s *Service, c *call) (any, error)

var operations = map[string]operation{
	"CreateDeliveryStream":   (*Service).createDeliveryStream,
	"DescribeDeliveryStream": (*Service).describeDeliveryStream,
	"ListDeliveryStreams":    (*Service).listDeliveryStreams,
	"DeleteDeliveryStream":   (*Service).deleteDeliveryStream,
	"PutRecord":              (*Service).putRecord,
	"PutRecordBatch":         (*Service).putRecordBatch,
}

type call struct {
	ctx context.Context
	req *awsapi.Request
}

// Handle serves one Firehose request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	op, err := awsapi.JSONOperation(req, "Firehose", targetPrefix, operations)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	out, err := op(s, &call{ctx: ctx, req: req})
	s.mu.Unlock()
	return awsapi.JSONResult(req, out, err)
}

func (s *Service) streamARN(name string) string {
	return "arn:aws:firehose:" + s.region + ":" + s.account + ":deliverystream/" + name
}

func (c *call) authorize(arn string) error {
	return c.req.Authorize(c.ctx, "firehose:"+c.req.Action, arn, nil)
}

// Errors, as Firehose names them.
func notFound(name string) error {
	return awsapi.Errorf("ResourceNotFoundException", "Firehose %s under account %s not found.", name, awsapi.DefaultAccount)
}

func invalidArgument(format string, args ...any) error {
	return awsapi.Errorf("InvalidArgumentException", format, args...)
}

var (
	streamName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)
	roleARN    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	bucketARN  = regexp.MustCompile(`^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

func (s *Service) findLocked(c *call, name string) (*stream, error) {
	if !streamName.MatchString(name) {
		return nil, invalidArgument("DeliveryStreamName %q: 1-64 of a-z A-Z 0-9 _ . -", name)
	}
	if err := c.authorize(s.streamARN(name)); err != nil {
		return nil, err
	}
	st := s.streams[name]
	if st == nil {
		return nil, notFound(name)
	}
	return st, nil
}

func (s *Service) createDeliveryStream(c *call) (any, error) {
	var in struct {
		DeliveryStreamName                 string
		DeliveryStreamType                 string
		S3DestinationConfiguration         *destination
		ExtendedS3DestinationConfiguration *destination
		Tags                               []struct{ Key, Value string }
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if !streamName.MatchString(in.DeliveryStreamName) {
		return nil, invalidArgument("DeliveryStreamName %q: 1-64 of a-z A-Z 0-9 _ . -", in.DeliveryStreamName)
	}
	if in.DeliveryStreamType != "" && in.DeliveryStreamType != "DirectPut" {
		return nil, invalidArgument("The local cloud's Firehose serves DeliveryStreamType DirectPut only, not %s", in.DeliveryStreamType)
	}
	d, extended := in.S3DestinationConfiguration, false
	switch {
	case d != nil && in.ExtendedS3DestinationConfiguration != nil:
		return nil, invalidArgument("Only one destination configuration is allowed: S3DestinationConfiguration or ExtendedS3DestinationConfiguration")
	case d == nil && in.ExtendedS3DestinationConfiguration != nil:
		d, extended = in.ExtendedS3DestinationConfiguration, true
	case d == nil:
		return nil, invalidArgument("The local cloud's Firehose delivers to S3 only: give S3DestinationConfiguration or ExtendedS3DestinationConfiguration")
	}
	if err := checkDestination(d); err != nil {
		return nil, err
	}
	arn := s.streamARN(in.DeliveryStreamName)
	if err := c.authorize(arn); err != nil {
		return nil, err
	}
	// Firehose acts as the role from now on: giving it the role is passing it.
	if err := c.req.Authorize(c.ctx, "iam:PassRole", d.RoleARN, map[string][]string{"iam:PassedToService": {"firehose.amazonaws.com"}}); err != nil {
		return nil, err
	}
	if _, ok := s.streams[in.DeliveryStreamName]; ok {
		return nil, awsapi.Errorf("ResourceInUseException", "Firehose %s under accountId %s already exists", in.DeliveryStreamName, s.account)
	}
	st := &stream{Name: in.DeliveryStreamName, Created: seconds(s.now()), Destination: *d, Extended: extended}
	for _, t := range in.Tags {
		if st.Tags == nil {
			st.Tags = map[string]string{}
		}
		st.Tags[t.Key] = t.Value
	}
	s.streams[st.Name] = st
	if err := s.saveLocked(); err != nil {
		delete(s.streams, st.Name)
		return nil, err
	}
	return map[string]string{"DeliveryStreamARN": arn}, nil
}

func checkDestination(d *destination) error {
	var errs []string
	if !roleARN.MatchString(d.RoleARN) {
		errs = append(errs, fmt.Sprintf("RoleARN %q is not an IAM role ARN", d.RoleARN))
	}
	if !bucketARN.MatchString(d.BucketARN) {
		errs = append(errs, fmt.Sprintf("BucketARN %q is not an S3 bucket ARN (arn:aws:s3:::<bucket>)", d.BucketARN))
	}
	if h := d.BufferingHints; h != nil {
		if h.SizeInMBs != nil && (*h.SizeInMBs < 1 || *h.SizeInMBs > 128) {
			errs = append(errs, fmt.Sprintf("BufferingHints.SizeInMBs %d is not within 1-128", *h.SizeInMBs))
		}
		if h.IntervalInSeconds != nil && (*h.IntervalInSeconds < 0 || *h.IntervalInSeconds > 900) {
			errs = append(errs, fmt.Sprintf("BufferingHints.IntervalInSeconds %d is not within 0-900", *h.IntervalInSeconds))
		}
	}
	switch d.CompressionFormat {
	case "", "UNCOMPRESSED", "GZIP":
	default:
		errs = append(errs, fmt.Sprintf("CompressionFormat %s: the local cloud writes UNCOMPRESSED or GZIP", d.CompressionFormat))
	}
	if len(d.Prefix) > 1024 || len(d.ErrorOutputPrefix) > 1024 {
		errs = append(errs, "Prefix and ErrorOutputPrefix are at most 1024 characters")
	}
	if len(errs) > 0 {
		return invalidArgument("%s", strings.Join(errs, "; "))
	}
	return nil
}

func seconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (s *Service) describeDeliveryStream(c *call) (any, error) {
	var in struct{ DeliveryStreamName string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	st, err := s.findLocked(c, in.DeliveryStreamName)
	if err != nil {
		return nil, err
	}
	d := st.Destination
	if d.CompressionFormat == "" {
		d.CompressionFormat = "UNCOMPRESSED"
	}
	size, interval := int32(d.sizeBytes()>>20), int32(d.interval()/time.Second)
	d.BufferingHints = &bufferingHints{SizeInMBs: &size, IntervalInSeconds: &interval}
	desc := map[string]any{
		"RoleARN": d.RoleARN, "BucketARN": d.BucketARN, "Prefix": d.Prefix, "BufferingHints": d.BufferingHints,
		"CompressionFormat": d.CompressionFormat, "EncryptionConfiguration": map[string]string{"NoEncryptionConfig": "NoEncryption"},
	}
	if d.ErrorOutputPrefix != "" {
		desc["ErrorOutputPrefix"] = d.ErrorOutputPrefix
	}
	// Firehose describes an S3 destination both ways.
	dest := map[string]any{"DestinationId": "destinationId-000000000001", "S3DestinationDescription": desc, "ExtendedS3DestinationDescription": desc}
	return map[string]any{"DeliveryStreamDescription": map[string]any{
		"DeliveryStreamName": st.Name, "DeliveryStreamARN": s.streamARN(st.Name), "DeliveryStreamStatus": "ACTIVE",
		"DeliveryStreamType": "DirectPut", "VersionId": "1", "CreateTimestamp": st.Created,
		"Destinations": []any{dest}, "HasMoreDestinations": false,
		"DeliveryStreamEncryptionConfiguration": map[string]string{"Status": "DISABLED"},
	}}, nil
}

func (s *Service) listDeliveryStreams(c *call) (any, error) {
	var in struct {
		Limit                            *int32
		DeliveryStreamType               string
		ExclusiveStartDeliveryStreamName string
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	limit := 10
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 10000 {
			return nil, invalidArgument("Limit %d is not within 1-10000", *in.Limit)
		}
		limit = int(*in.Limit)
	}
	names := []string{}
	if in.DeliveryStreamType == "" || in.DeliveryStreamType == "DirectPut" {
		for name := range s.streams {
			if name > in.ExclusiveStartDeliveryStreamName {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	return map[string]any{"DeliveryStreamNames": names, "HasMoreDeliveryStreams": more}, nil
}

func (s *Service) deleteDeliveryStream(c *call) (any, error) {
	var in struct{ DeliveryStreamName string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	st, err := s.findLocked(c, in.DeliveryStreamName)
	if err != nil {
		return nil, err
	}
	// What the stream still buffers is delivered if it can be, as Firehose drains a stream
	// being deleted; what cannot be is lost with the stream.
	if len(st.Pending) > 0 {
		if err := s.deliverLocked(c.ctx, st); err != nil {
			s.log.Warn("firehose: records of a deleted stream could not be delivered", "stream", st.Name, "records", len(st.Pending), "err", err)
		}
	}
	delete(s.streams, st.Name)
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type inRecord struct{ Data []byte }

func (s *Service) putRecord(c *call) (any, error) {
	var in struct {
		DeliveryStreamName string
		Record             *inRecord
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	st, err := s.findLocked(c, in.DeliveryStreamName)
	if err != nil {
		return nil, err
	}
	if in.Record == nil {
		return nil, invalidArgument("Record is required")
	}
	if err := checkRecord(in.Record.Data); err != nil {
		return nil, err
	}
	if st.pendingBytes+len(in.Record.Data) > s.maxBuffer {
		return nil, awsapi.Errorf("ServiceUnavailableException", "Slow down.")
	}
	s.bufferLocked(st, in.Record.Data)
	return map[string]any{"RecordId": recordID(), "Encrypted": false}, nil
}

func (s *Service) putRecordBatch(c *call) (any, error) {
	var in struct {
		DeliveryStreamName string
		Records            []inRecord
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	st, err := s.findLocked(c, in.DeliveryStreamName)
	if err != nil {
		return nil, err
	}
	if len(in.Records) == 0 || len(in.Records) > maxBatchRecords {
		return nil, invalidArgument("Records has %d records: a batch holds 1-%d", len(in.Records), maxBatchRecords)
	}
	total := 0
	for i, r := range in.Records {
		if err := checkRecord(r.Data); err != nil {
			return nil, invalidArgument("Records[%d]: %s", i, err.(*awsapi.Error).Message)
		}
		total += len(r.Data)
	}
	if total > maxBatchBytes {
		return nil, invalidArgument("The batch holds %d bytes of data: at most %d", total, maxBatchBytes)
	}
	// A stream whose buffer is full refuses the records that do not fit, each with its
	// error, as Firehose throttles record by record: the caller resends those.
	failed := 0
	responses := make([]map[string]string, len(in.Records))
	for i, r := range in.Records {
		if st.pendingBytes+len(r.Data) > s.maxBuffer {
			failed++
			responses[i] = map[string]string{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
			continue
		}
		s.bufferLocked(st, r.Data)
		responses[i] = map[string]string{"RecordId": recordID()}
	}
	return map[string]any{"FailedPutCount": failed, "Encrypted": false, "RequestResponses": responses}, nil
}

func checkRecord(data []byte) error {
	if len(data) == 0 {
		return invalidArgument("A record's Data is empty")
	}
	if len(data) > maxRecordBytes {
		return invalidArgument("A record's Data is %d bytes: at most %d (1,000 KiB) before base64 encoding", len(data), maxRecordBytes)
	}
	return nil
}

func (s *Service) bufferLocked(st *stream, data []byte) {
	st.Pending = append(st.Pending, record{Data: data, Received: seconds(s.now())})
	st.pendingBytes += len(data)
	s.dirty = true
}

// recordID is an opaque id, as long as Firehose's.
func recordID() string {
	b := make([]byte, 56)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// deliverLoop writes each stream's buffer once it is due, and the state once a second while
// records arrive.
func (s *Service) deliverLoop() {
	defer close(s.done)
	tick := time.NewTicker(deliveryTick)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		now := s.now()
		for _, st := range s.streams {
			if len(st.Pending) == 0 {
				continue
			}
			oldest := time.UnixMilli(int64(st.Pending[0].Received * 1000))
			if st.pendingBytes < st.Destination.sizeBytes() && now.Sub(oldest) < st.Destination.interval() {
				continue
			}
			if err := s.deliverLocked(context.Background(), st); err != nil {
				if msg := err.Error(); msg != st.lastFailure {
					s.log.Warn("firehose: delivery to S3 failed; the records stay buffered and are retried", "stream", st.Name, "records", len(st.Pending), "err", err)
					st.lastFailure = msg
				}
				continue
			}
			st.lastFailure = ""
		}
		if s.dirty && now.Sub(s.saved) >= saveEvery {
			if err := s.saveLocked(); err != nil {
				s.log.Error("firehose: saving state", "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// deliverLocked writes the stream's buffered records, up to the buffer size, as one object
// and takes them out of the buffer; more than a buffer's worth goes out in several objects.
func (s *Service) deliverLocked(ctx context.Context, st *stream) error {
	for len(st.Pending) > 0 {
		n, size := 0, 0
		for n < len(st.Pending) && (n == 0 || size+len(st.Pending[n].Data) <= st.Destination.sizeBytes()) {
			size += len(st.Pending[n].Data)
			n++
		}
		var body bytes.Buffer
		var zw *gzip.Writer
		var w interface{ Write([]byte) (int, error) } = &body
		if st.Destination.CompressionFormat == "GZIP" {
			zw = gzip.NewWriter(&body)
			w = zw
		}
		for _, r := range st.Pending[:n] {
			_, _ = w.Write(r.Data) // a bytes.Buffer (under gzip) takes everything
		}
		if zw != nil {
			if err := zw.Close(); err != nil {
				return fmt.Errorf("compressing records: %w", err)
			}
		}
		t := time.UnixMilli(int64(st.Pending[0].Received * 1000)).UTC()
		key := st.Destination.Prefix + t.Format("2006/01/02/15/") + st.Name + "-1-" + t.Format("2006-01-02-15-04-05") + "-" + uuid()
		contentType, encoding := "application/octet-stream", ""
		if zw != nil {
			key += ".gz"
		}
		if err := s.putAsRole(ctx, st, key, body.Bytes(), contentType, encoding); err != nil {
			return err
		}
		st.Pending = slices.Delete(st.Pending, 0, n)
		st.pendingBytes -= size
		s.dirty = true
	}
	return nil
}

// putAsRole writes an object as the stream's role: Firehose's writes are the role's.
func (s *Service) putAsRole(ctx context.Context, st *stream, key string, body []byte, contentType, encoding string) error {
	bucket := st.Destination.bucket()
	if s.authz != nil {
		caller := awsapi.AssumedRoleIdentity(s.account, st.Destination.RoleARN, "", deliverySession)
		d, err := s.authz.Authorize(ctx, awsapi.AuthorizationRequest{Caller: caller, Action: "s3:PutObject", Resource: "arn:aws:s3:::" + bucket + "/" + key, Region: s.region})
		if err != nil {
			return fmt.Errorf("evaluating the role's policies: %w", err)
		}
		if !d.Allowed {
			return fmt.Errorf("role %s is not authorized to perform s3:PutObject on arn:aws:s3:::%s/%s %s", st.Destination.RoleARN, bucket, key, d.Reason)
		}
	}
	if err := s.objects.DeliverObject(ctx, bucket, key, body, contentType, encoding); err != nil {
		if errors.Is(err, awsapi.ErrNotFound) {
			return fmt.Errorf("bucket %s does not exist", bucket)
		}
		return err
	}
	return nil
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
