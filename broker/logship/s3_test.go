package logship

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/localcloud"
)

func s3TestClient(endpoint, id, secret, token string) *s3.Client {
	return s3.NewFromConfig(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, func(o *s3.Options) { o.UsePathStyle = true })
}

func gunzipString(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(plain)
}

// TestS3ShipToLocalCloud: a broker role that may put objects only under its
// cluster's prefix delivers its log and audit trail as gzip objects in
// MSK's layout there; a shipper aimed at another prefix is refused and
// keeps its lines queued.
func TestS3ShipToLocalCloud(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	root := s3TestClient(c.Endpoint(), localcloud.AccessKeyID, localcloud.SecretAccessKey, "")
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("kafka-logs")}); err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"` +
		bootconfig.S3LogObjectsARN("kafka-logs", "prod") + `"}]}`
	creds := roleCredentials(t, c, "broker-s3", policy)
	client := s3TestClient(c.Endpoint(), creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
	keyPrefix := bootconfig.S3LogKeyPrefix("prod", "000000000000", "us-east-1", "orders", "tc-1")

	log, h, _ := testLogger(t, HandlerOptions{}, DestS3)
	sh, err := NewS3Shipper(S3ShipperOptions{Handler: h, Client: client, Bucket: "kafka-logs", KeyPrefix: keyPrefix, NodeID: 3})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("starting tributary broker", "node_id", 3)
	log.Info("topic created", AuditKey, AuditValue, "principal", "User:alice", "resource", "orders")
	if err := sh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := sh.Stats(); st.Puts != 2 || st.Shipped != 2 || st.Queued != 0 {
		t.Fatalf("stats %+v, want two objects of one line each", st)
	}
	list, err := root.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("kafka-logs"), Prefix: aws.String(keyPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	layout := regexp.MustCompile(`^` + regexp.QuoteMeta(keyPrefix) + `\d{4}-\d\d-\d\d-\d\d/Broker-3(-audit)?_\d{4}(-\d\d){5}_[0-9a-f]{8}\.log\.gz$`)
	var broker, audit string
	for _, o := range list.Contents {
		key := aws.ToString(o.Key)
		if !layout.MatchString(key) {
			t.Errorf("key %s is not in MSK's layout", key)
		}
		got, err := root.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("kafka-logs"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if strings.Contains(key, "-audit_") {
			audit = gunzipString(t, data)
		} else {
			broker = gunzipString(t, data)
		}
	}
	if !strings.Contains(broker, `"msg":"starting tributary broker"`) || strings.Contains(broker, "topic created") {
		t.Errorf("broker object: %q", broker)
	}
	if !strings.Contains(audit, `"principal":"User:alice"`) || strings.Contains(audit, "starting") {
		t.Errorf("audit object: %q", audit)
	}

	// The same role aimed outside its prefix is refused; the line stays queued.
	log2, h2, _ := testLogger(t, HandlerOptions{}, DestS3)
	other, err := NewS3Shipper(S3ShipperOptions{Handler: h2, Client: client, Bucket: "kafka-logs", KeyPrefix: "staging/", NodeID: 3})
	if err != nil {
		t.Fatal(err)
	}
	log2.Info("elsewhere")
	if err := other.Flush(ctx); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("putting outside the prefix: %v, want AccessDenied", err)
	}
	if st := other.Stats(); st.Denied != 1 || st.Queued != 1 {
		t.Fatalf("stats after a refusal: %+v", st)
	}
}

// TestS3OutageNeverBlocksLogging: S3 accepts connections and never answers.
// Logging stays fast, the S3 queue stays in its bound by dropping the
// oldest lines (counted in Dropped, the LogLinesDropped metric), each put
// is given up at its timeout; once S3 answers, the kept lines and a line
// counting the dropped ones arrive as objects.
func TestS3OutageNeverBlocksLogging(t *testing.T) {
	var stalled atomic.Bool
	stalled.Store(true)
	release := make(chan struct{})
	var mu sync.Mutex
	var delivered []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if stalled.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			http.Error(w, "not gzip", http.StatusBadRequest)
			return
		}
		plain, _ := io.ReadAll(zr)
		mu.Lock()
		delivered = append(delivered, string(plain))
		mu.Unlock()
		w.Header().Set("ETag", `"x"`)
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	const bound = 64 << 10
	log, h, _ := testLogger(t, HandlerOptions{MaxBufferBytes: bound}, DestS3)
	sh, err := NewS3Shipper(S3ShipperOptions{Handler: h, Client: s3TestClient(srv.URL, "a", "b", ""), Bucket: "kafka-logs", KeyPrefix: "p/", NodeID: 1,
		FlushInterval: 20 * time.Millisecond, ObjectBytes: 16 << 10, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, CallTimeout: 100 * time.Millisecond})
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
	t.Logf("%d lines logged in %v while S3 stalled", lines, elapsed)
	if elapsed > 5*time.Second {
		t.Errorf("logging took %v with a stalled S3: the shipper must never block the logger", elapsed)
	}
	if q := h.state.bufs[DestS3].queuedBytes(); q > bound {
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
		t.Fatal("no put failed at its timeout against a stalled S3")
	}

	stalled.Store(false)
	log.Info("after the outage")
	deadline = time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		joined := strings.Join(delivered, "")
		mu.Unlock()
		if strings.Contains(joined, "after the outage") && strings.Contains(joined, "log lines were dropped while S3 could not take them") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage, delivered %d objects without the newest line or the drop notice; stats %+v", len(delivered), sh.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := sh.Stats(); st.Shipped == 0 || st.Dropped != h.Dropped() {
		t.Errorf("stats %+v, handler dropped %d", st, h.Dropped())
	}
}

// TestDestinationsQueueApart: with both destinations on, each line is
// queued for both; a full S3 queue drops from S3's only.
func TestDestinationsQueueApart(t *testing.T) {
	log, h, _ := testLogger(t, HandlerOptions{MaxBufferBytes: 4 << 10}, DestCloudWatchLogs, DestS3)
	log.Info("one")
	if h.state.bufs[DestCloudWatchLogs].len() != 1 || h.state.bufs[DestS3].len() != 1 {
		t.Fatal("a line is not queued for both destinations")
	}
	h.state.bufs[DestCloudWatchLogs].take(10, 1<<20) // CloudWatch Logs keeps up, S3 does not
	for range 200 {
		log.Info("a line of some length to fill the queue", "pad", strings.Repeat("x", 40))
		h.state.bufs[DestCloudWatchLogs].take(10, 1<<20)
	}
	if h.state.bufs[DestCloudWatchLogs].dropped.Load() != 0 || h.state.bufs[DestS3].dropped.Load() == 0 {
		t.Fatalf("dropped: CloudWatch Logs %d, S3 %d", h.state.bufs[DestCloudWatchLogs].dropped.Load(), h.state.bufs[DestS3].dropped.Load())
	}
	if h.Dropped() != h.state.bufs[DestS3].dropped.Load() {
		t.Fatalf("Dropped %d is not the sum over destinations", h.Dropped())
	}
	h.Keep(DestCloudWatchLogs)
	log.Info("two")
	if h.state.bufs[DestS3].len() != 0 || !h.Shipping() {
		t.Fatal("Keep(CloudWatch Logs) still queues for S3")
	}
	h.Keep()
	if h.Shipping() {
		t.Fatal("Keep() still ships")
	}
}
