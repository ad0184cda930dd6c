package logship

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
)

func TestBufferDropsOldestWhenFull(t *testing.T) {
	b := newBuffer(10 * (eventOverhead + 4))
	for i := range 25 {
		b.add(Event{UnixMs: int64(i), Message: fmt.Sprintf("m%03d", i)})
	}
	if got := b.len(); got != 10 {
		t.Fatalf("queued %d events, want the bound's 10", got)
	}
	if d := b.dropped.Load(); d != 15 {
		t.Fatalf("dropped %d, want 15", d)
	}
	got := b.take(3, maxPutBytes)
	if len(got) != 3 || got[0].Message != "m015" || got[2].Message != "m017" {
		t.Fatalf("take gave %+v, want the oldest kept events m015..m017", got)
	}
	// A failed shipment puts them back in front; newer events arrived
	// meanwhile push the oldest out first.
	b.add(Event{UnixMs: 25, Message: "m025"})
	b.add(Event{UnixMs: 26, Message: "m026"})
	b.add(Event{UnixMs: 27, Message: "m027"})
	b.putBack(got)
	all := b.take(100, maxPutBytes)
	if len(all) != 10 || all[0].Message != "m018" || all[9].Message != "m027" {
		var names []string
		for _, e := range all {
			names = append(names, e.Message)
		}
		t.Fatalf("after put back: %v, want m018..m027", names)
	}
	if d := b.dropped.Load(); d != 18 {
		t.Fatalf("dropped %d, want 18", d)
	}
	if b.queuedBytes() != 0 {
		t.Fatalf("queued bytes %d after taking everything", b.queuedBytes())
	}
}

func TestBufferTakeRespectsLimits(t *testing.T) {
	b := newBuffer(1 << 30)
	for range 30 {
		b.add(Event{Message: strings.Repeat("x", 100)})
	}
	if got := b.take(10, maxPutBytes); len(got) != 10 {
		t.Fatalf("take by count gave %d, want 10", len(got))
	}
	if got := b.take(100, 3*(100+eventOverhead)); len(got) != 3 {
		t.Fatalf("take by bytes gave %d, want 3", len(got))
	}
	big := newBuffer(1 << 30)
	big.add(Event{Message: strings.Repeat("y", 5000)})
	if got := big.take(10, 100); len(got) != 1 {
		t.Fatalf("an event larger than the byte budget must still be taken alone, got %d", len(got))
	}
}

// testLogger returns a logger through a shipping Handler, and what the
// broker's own handler wrote.
func testLogger(t *testing.T, opts HandlerOptions, dests ...Destination) (*slog.Logger, *Handler, *syncBuffer) {
	t.Helper()
	var out syncBuffer
	h := NewHandler(slog.NewTextHandler(&out, nil), opts)
	if len(dests) == 0 {
		dests = []Destination{DestCloudWatchLogs}
	}
	// As the broker does once its configuration names the destinations.
	h.Keep(dests...)
	return slog.New(h), h, &out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHandlerRoutesAuditLines(t *testing.T) {
	log, h, out := testLogger(t, HandlerOptions{})
	log.Info("starting tributary broker", "node_id", 3)
	log.With("log", "audit").Warn("authorization denied", "principal", "User:bob")
	log.Info("changed", "log", "audit", "principal", "User:alice")
	log.WithGroup("req").Info("nested", "log", "audit") // req.log is not the routing key
	log.Debug("below the level")

	events := h.state.bufs[DestCloudWatchLogs].take(100, maxPutBytes)
	type line struct {
		Msg       string `json:"msg"`
		Principal string `json:"principal"`
		Log       string `json:"log"`
	}
	var broker, audit []line
	for _, e := range events {
		var l line
		if err := json.Unmarshal([]byte(e.Message), &l); err != nil {
			t.Fatalf("queued line %q is not JSON: %v", e.Message, err)
		}
		if e.UnixMs <= 0 {
			t.Errorf("event %q has no timestamp", e.Message)
		}
		if e.Stream == StreamAudit {
			audit = append(audit, l)
		} else {
			broker = append(broker, l)
		}
	}
	if len(broker) != 2 || broker[0].Msg != "starting tributary broker" || broker[1].Msg != "nested" {
		t.Errorf("broker stream got %+v", broker)
	}
	if len(audit) != 2 || audit[0].Principal != "User:bob" || audit[1].Principal != "User:alice" || audit[0].Log != "audit" {
		t.Errorf("audit stream got %+v", audit)
	}
	// The broker's own handler saw every line at its level.
	for _, want := range []string{"starting tributary broker", "authorization denied", "msg=changed", "nested"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the broker's handler lacks %q:\n%s", want, out.String())
		}
	}

	h.Disable()
	log.Info("after disable")
	if n := h.state.bufs[DestCloudWatchLogs].len(); n != 0 {
		t.Errorf("%d lines queued after Disable", n)
	}
	if !strings.Contains(out.String(), "after disable") {
		t.Error("the broker's handler must keep logging after Disable")
	}
}

// rootClient is a CloudWatch Logs client of endpoint with the local
// cloud's root credentials.
func logsClient(endpoint, id, secret, token string) *cloudwatchlogs.Client {
	return cloudwatchlogs.NewFromConfig(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	})
}

// TestStalledEndpointNeverBlocksLogging: CloudWatch Logs accepts
// connections and never answers. Logging stays fast, the queue stays in
// its bound by dropping the oldest lines, the shipper gives up each call
// at its timeout; once the endpoint answers again, the kept lines and a
// line counting the dropped ones arrive.
func TestStalledEndpointNeverBlocksLogging(t *testing.T) {
	var stalled atomic.Bool
	stalled.Store(true)
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stalled.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		target := r.Header.Get("X-Amz-Target")
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if strings.HasSuffix(target, ".PutLogEvents") {
			var in struct {
				LogEvents []struct{ Message string } `json:"logEvents"`
			}
			_ = json.Unmarshal(body, &in)
			mu.Lock()
			for _, e := range in.LogEvents {
				got = append(got, e.Message)
			}
			mu.Unlock()
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	const bound = 64 << 10
	log, h, _ := testLogger(t, HandlerOptions{MaxBufferBytes: bound})
	sh, err := NewShipper(ShipperOptions{Handler: h, Client: logsClient(srv.URL, "a", "b", ""), LogGroup: "tributary/stall", NodeID: 1,
		FlushInterval: 20 * time.Millisecond, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, CallTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sh.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	start := time.Now()
	const lines = 10000
	for i := range lines {
		log.Info("produce served", "i", i, "pad", strings.Repeat("p", 40))
	}
	elapsed := time.Since(start)
	t.Logf("%d lines logged in %v while CloudWatch Logs stalled", lines, elapsed)
	if elapsed > 5*time.Second {
		t.Errorf("logging took %v with a stalled endpoint: the shipper must never block the logger", elapsed)
	}
	if q := h.state.bufs[DestCloudWatchLogs].queuedBytes(); q > bound {
		t.Errorf("queue holds %d bytes, over its bound of %d", q, bound)
	}
	if h.Dropped() == 0 {
		t.Error("no line dropped although far more than the bound was logged")
	}
	deadline := time.Now().Add(10 * time.Second)
	for sh.Stats().Failed == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sh.Stats().Failed == 0 {
		t.Fatal("no call failed at its timeout against a stalled endpoint")
	}

	stalled.Store(false)
	log.Info("after the outage")
	deadline = time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		joined := strings.Join(got, "\n")
		mu.Unlock()
		if strings.Contains(joined, "after the outage") && strings.Contains(joined, "log lines were dropped") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage, shipped %d lines without the newest line or the drop notice; stats %+v", len(got), sh.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := sh.Stats()
	t.Logf("stats after recovery: %+v", st)
	if st.Shipped == 0 || st.Dropped != h.Dropped() {
		t.Errorf("stats %+v", st)
	}
}

// TestFailingEndpointBacksOff: every call fails with a 500; the shipper
// retries with growing waits, not in a tight loop.
func TestFailingEndpointBacksOff(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"__type":"ServiceUnavailableException","message":"down"}`))
	}))
	t.Cleanup(srv.Close)
	log, h, _ := testLogger(t, HandlerOptions{})
	sh, err := NewShipper(ShipperOptions{Handler: h, Client: logsClient(srv.URL, "a", "b", ""), LogGroup: "g", NodeID: 1,
		FlushInterval: 10 * time.Millisecond, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("a line")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	sh.Run(ctx)
	// With waits of 50-100, 100-200, 200-400 and then 200-400 ms, 1.5 s
	// holds at most 8 tries; a ticker-driven loop would make ~150.
	if n := calls.Load(); n < 2 || n > 10 {
		t.Errorf("%d calls in 1.5 s: want a few retries with backoff", n)
	}
	if h.state.bufs[DestCloudWatchLogs].len() != 1 {
		t.Errorf("the line must stay queued while CloudWatch Logs fails, queue has %d", h.state.bufs[DestCloudWatchLogs].len())
	}
	if err := sh.Flush(context.Background()); err == nil {
		t.Error("Flush against a failing endpoint returned no error")
	}
}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   map[string]string
		want Settings
		err  string
	}{
		{"unset", nil, Settings{}, ""},
		{"on", map[string]string{KeyCloudWatchEnable: "true", KeyCloudWatchLogGroup: "tributary/orders"}, Settings{Enabled: true, LogGroup: "tributary/orders"}, ""},
		{"off keeps the group", map[string]string{KeyCloudWatchEnable: "false", KeyCloudWatchLogGroup: "g"}, Settings{LogGroup: "g"}, ""},
		{"s3", map[string]string{KeyS3Enable: "true", KeyS3Bucket: "kafka-logs", KeyS3KeyPrefix: "p/AWSLogs/1/KafkaBrokerLogs/r/c-i/"},
			Settings{S3: S3Settings{Enabled: true, Bucket: "kafka-logs", KeyPrefix: "p/AWSLogs/1/KafkaBrokerLogs/r/c-i/"}}, ""},
		{"s3 without a bucket", map[string]string{KeyS3Enable: "true"}, Settings{}, "S3 bucket name"},
		{"s3 bad bucket", map[string]string{KeyS3Enable: "true", KeyS3Bucket: "Kafka_Logs"}, Settings{}, "S3 bucket name"},
		{"s3 bad bool", map[string]string{KeyS3Enable: "si"}, Settings{}, "want true or false"},
		{"firehose", map[string]string{KeyFirehoseEnable: "true", KeyFirehoseStream: "orders-broker-logs"},
			Settings{Firehose: FirehoseSettings{Enabled: true, DeliveryStream: "orders-broker-logs"}}, ""},
		{"firehose without a stream", map[string]string{KeyFirehoseEnable: "true"}, Settings{}, "delivery stream name"},
		{"firehose bad stream", map[string]string{KeyFirehoseEnable: "true", KeyFirehoseStream: "a/b"}, Settings{}, "delivery stream name"},
		{"firehose bad bool", map[string]string{KeyFirehoseEnable: "ja"}, Settings{}, "want true or false"},
		{"no group", map[string]string{KeyCloudWatchEnable: "true"}, Settings{}, "is required"},
		{"bad group", map[string]string{KeyCloudWatchEnable: "true", KeyCloudWatchLogGroup: "a:b"}, Settings{}, "a log group name"},
		{"bad bool", map[string]string{KeyCloudWatchEnable: "yes please"}, Settings{}, "want true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSettings(func(k string) (string, bool) { v, ok := tc.kv[k]; return v, ok })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
