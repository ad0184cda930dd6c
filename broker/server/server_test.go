package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/storage"
)

// startServer runs a server on 127.0.0.1:0 with a temporary data directory.
func startServer(t testing.TB, edit ...func(*config.Config)) *Server {
	t.Helper()
	return startServerWithLog(t, nil, edit...)
}

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServerWithLog is startServer with the broker's log going to logs
// (when not nil).
func startServerWithLog(t testing.TB, logs *logBuffer, edit ...func(*config.Config)) *Server {
	t.Helper()
	return startServerWithOptions(t, logs, Options{}, edit...)
}

// startServerWithOptions is startServerWithLog with more options (the
// config and logger are filled in).
func startServerWithOptions(t testing.TB, logs *logBuffer, opts Options, edit ...func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cfg.GroupInitialRebalanceDelay = 0
	for _, e := range edit {
		e(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts.Config, opts.Logger = cfg, log
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// rawConn speaks the Kafka framing directly, for tests of the framing.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	corr int32
}

func dial(t *testing.T, s *Server) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// send writes a request and returns its correlation id.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	buf := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, c.corr)
	c.write(buf)
	return c.corr
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads one response into resp (whose version must be set).
func (c *rawConn) recv(resp kmsg.Response, wantCorr int32) {
	c.t.Helper()
	body, err := c.readFrame(10 * time.Second)
	if err != nil {
		c.t.Fatalf("reading response: %v", err)
	}
	rd := kbin.Reader{Src: body}
	if corr := rd.Int32(); corr != wantCorr {
		c.t.Fatalf("correlation id %d, want %d", corr, wantCorr)
	}
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		kmsg.SkipTags(&rd)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		c.t.Fatalf("decoding %s: %v", kmsg.NameForKey(resp.Key()), err)
	}
}

func (c *rawConn) readFrame(wait time.Duration) ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c.nc, body)
	return body, err
}

// expectClosed waits for the server to close the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	_, err := c.readFrame(5 * time.Second)
	if err == nil {
		c.t.Fatal("got a response, want the connection closed")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection still open after 5s, want it closed")
	}
}

// roundTrip sends req on a fresh connection and decodes the response.
func roundTrip[R kmsg.Response](t *testing.T, s *Server, req kmsg.Request) R {
	t.Helper()
	c := dial(t, s)
	corr := c.send(req)
	resp := req.ResponseKind().(R)
	c.recv(resp, corr)
	return resp
}

func TestApiVersions(t *testing.T) {
	s := startServer(t)
	for _, v := range []int16{0, 3, 4} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1.0"
		resp := roundTrip[*kmsg.ApiVersionsResponse](t, s, req)
		if resp.ErrorCode != 0 {
			t.Fatalf("v%d: error %d", v, resp.ErrorCode)
		}
		keys := map[int16]kmsg.ApiVersionsResponseApiKey{}
		for _, k := range resp.ApiKeys {
			keys[k.ApiKey] = k
		}
		// librdkafka enables compression only if Produce starts at v0.
		if p, ok := keys[0]; !ok || p.MinVersion != 0 || p.MaxVersion < 7 {
			t.Fatalf("v%d: Produce advertised as %+v", v, p)
		}
		// kafka-go's fixed old versions must be inside the ranges.
		for key, version := range map[int16]int16{10: 0, 11: 1, 14: 0, 12: 0, 13: 0, 8: 2, 9: 1, 3: 1} {
			k, ok := keys[key]
			if !ok || version < k.MinVersion || version > k.MaxVersion {
				t.Errorf("v%d: %s v%d not served (%+v)", v, kmsg.NameForKey(key), version, k)
			}
		}
	}
}

func TestApiVersionsTooNewKIP511(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	// A made-up future version whose body we cannot know: header only
	// plus bytes that are not a valid v4 body.
	frame := []byte{0, 18, 0, 99, 0, 0, 0, 7, 0, 1, 'x', 0, 0xff, 0xff, 0xff}
	sized := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
	c.write(append(sized, frame...))
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	c.recv(resp, 7)
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error %d, want UNSUPPORTED_VERSION", resp.ErrorCode)
	}
	if len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != 18 || resp.ApiKeys[0].MaxVersion != apiVersionsAPI.max {
		t.Fatalf("keys %+v, want only ApiVersions 0-%d", resp.ApiKeys, apiVersionsAPI.max)
	}
	// The connection stays usable at a version we speak.
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	corr := c.send(req)
	ok := kmsg.NewPtrApiVersionsResponse()
	c.recv(ok, corr)
	if ok.ErrorCode != 0 || len(ok.ApiKeys) < 10 {
		t.Fatalf("after KIP-511 answer: error %d, %d keys", ok.ErrorCode, len(ok.ApiKeys))
	}
}

func TestProduceOldVersionsRejected(t *testing.T) {
	s := startServer(t)
	for _, v := range []int16{0, 1, 2} {
		req := kmsg.NewPtrProduceRequest()
		req.Version = v
		req.Acks = 1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := roundTrip[*kmsg.ProduceResponse](t, s, req)
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.UnsupportedVersion.Code {
			t.Fatalf("Produce v%d: error %d, want UNSUPPORTED_VERSION", v, got)
		}
	}
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	logs := &logBuffer{}
	s := startServerWithLog(t, logs, func(c *config.Config) { c.SocketRequestMaxBytes = 1 << 20 })
	tests := []struct {
		name   string
		bytes  []byte
		reason string // in the log line
	}{
		{"garbage", []byte("this is not kafka at all, not even close"), "impossible request size"},
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "looks like HTTP"},
		{"negative size", []byte{0xff, 0xff, 0xff, 0xf0, 1, 2, 3}, "impossible request size"},
		{"too large", binary.BigEndian.AppendUint32(nil, 2<<20), "impossible request size"},
		{"short header", []byte{0, 0, 0, 3, 0, 1, 2}, "shorter than a request header"},
		{"unknown key", []byte{0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 1, 0, 0, 0}, "unsupported API key 32512"},
		{"unsupported version", []byte{0, 0, 0, 10, 0, 3, 0x7f, 0, 0, 0, 0, 1, 0xff, 0xff}, "Metadata version 32512 is not supported"},
		{"truncated body", []byte{0, 0, 0, 12, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0}, "Metadata v1 body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logs.String())
			bad := dial(t, s)
			bad.write(tt.bytes)
			bad.expectClosed()
			// The reason is logged before the connection is closed.
			if added := logs.String()[before:]; !strings.Contains(added, tt.reason) {
				t.Fatalf("no log line with %q:\n%s", tt.reason, added)
			}
			// Everyone else is still served.
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 1
			resp := roundTrip[*kmsg.MetadataResponse](t, s, req)
			if len(resp.Brokers) != 1 {
				t.Fatalf("metadata after bad input: %+v", resp.Brokers)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.MaxConnections = 2 })
	a, b := dial(t, s), dial(t, s)
	// Both accepted connections work.
	for _, c := range []*rawConn{a, b} {
		req := kmsg.NewPtrApiVersionsRequest()
		c.recv(kmsg.NewPtrApiVersionsResponse(), c.send(req))
	}
	third := dial(t, s)
	third.expectClosed()
	// Closing one frees its slot.
	a.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, s)
		c.send(kmsg.NewPtrApiVersionsRequest())
		if _, err := c.readFrame(2 * time.Second); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after one was closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIdleConnectionsClosed(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.ConnectionsMaxIdle = 200 * time.Millisecond })
	c := dial(t, s)
	c.recv(kmsg.NewPtrApiVersionsResponse(), c.send(kmsg.NewPtrApiVersionsRequest()))
	c.expectClosed()
}

func TestPipelinedResponsesInOrder(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	// A long poll first, then quick requests behind it: responses must
	// still come back in request order.
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxWaitMillis = 300
	fetch.MinBytes = 1
	fetch.MaxBytes = 1 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "nothing-here"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	var corrs []int32
	var resps []kmsg.Response
	for i := range 6 {
		var req kmsg.Request = kmsg.NewPtrApiVersionsRequest()
		if i%2 == 0 {
			req = fetch
		}
		corrs = append(corrs, c.send(req))
		resps = append(resps, req.ResponseKind())
	}
	for i := range corrs {
		c.recv(resps[i], corrs[i])
	}
}

func TestUnknownTopicFetchIsImmediate(t *testing.T) {
	s := startServer(t)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 11
	fetch.MaxWaitMillis = 5000
	fetch.MinBytes = 1
	fetch.MaxBytes = 1 << 20
	fetch.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "nothing-here"
	ft.Partitions = append(ft.Partitions, kmsg.NewFetchRequestTopicPartition())
	fetch.Topics = append(fetch.Topics, ft)
	start := time.Now()
	resp := roundTrip[*kmsg.FetchResponse](t, s, fetch)
	if time.Since(start) > 3*time.Second {
		t.Fatalf("error fetch waited %v", time.Since(start))
	}
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("error %d", got)
	}
}

func TestFetchSessions(t *testing.T) {
	s := startServer(t)
	for _, name := range []string{"busy", "idle"} {
		if _, err := s.createTopic(name, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	newFetch := func(id, epoch int32, topics ...string) *kmsg.FetchRequest {
		f := kmsg.NewPtrFetchRequest()
		f.Version = 12
		f.MaxBytes = 1 << 20
		f.SessionID, f.SessionEpoch = id, epoch
		for _, name := range topics {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = name
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.PartitionMaxBytes = 1 << 20
			ft.Partitions = append(ft.Partitions, fp)
			f.Topics = append(f.Topics, ft)
		}
		return f
	}
	partitions := func(resp *kmsg.FetchResponse) map[string]kmsg.FetchResponseTopicPartition {
		out := map[string]kmsg.FetchResponseTopicPartition{}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				out[t.Topic] = p
			}
		}
		return out
	}

	// A full fetch with epoch 0 creates a session and answers everything.
	full := roundTrip[*kmsg.FetchResponse](t, s, newFetch(0, 0, "busy", "idle"))
	if full.ErrorCode != 0 || full.SessionID == 0 || len(partitions(full)) != 2 {
		t.Fatalf("full fetch: error %d session %d partitions %d", full.ErrorCode, full.SessionID, len(partitions(full)))
	}
	id := full.SessionID

	// Nothing changed: an incremental fetch answers no partition.
	inc := roundTrip[*kmsg.FetchResponse](t, s, newFetch(id, 1))
	if inc.ErrorCode != 0 || inc.SessionID != id || len(partitions(inc)) != 0 {
		t.Fatalf("idle incremental fetch: error %d session %d partitions %v", inc.ErrorCode, inc.SessionID, partitions(inc))
	}
	// New data on one partition: only that one comes back, with records,
	// although the request named no partition.
	roundTrip[*kmsg.ProduceResponse](t, s, produceReq("busy", 1, batch(-1, -1, -1, 2, 10)))
	inc = roundTrip[*kmsg.FetchResponse](t, s, newFetch(id, 2))
	got := partitions(inc)
	if len(got) != 1 || len(got["busy"].RecordBatches) == 0 || got["busy"].HighWatermark != 2 {
		t.Fatalf("incremental fetch after produce: %+v", got)
	}
	// The client moves its offset; the HW it was told is unchanged, so
	// nothing comes back.
	next := newFetch(id, 3, "busy")
	next.Topics[0].Partitions[0].FetchOffset = 2
	if got := partitions(roundTrip[*kmsg.FetchResponse](t, s, next)); len(got) != 0 {
		t.Fatalf("after moving the offset: %+v", got)
	}
	// Forgetting a partition removes it from the session.
	forget := newFetch(id, 4)
	ft := kmsg.NewFetchRequestForgottenTopic()
	ft.Topic, ft.Partitions = "busy", []int32{0}
	forget.ForgottenTopics = append(forget.ForgottenTopics, ft)
	roundTrip[*kmsg.FetchResponse](t, s, forget)
	roundTrip[*kmsg.ProduceResponse](t, s, produceReq("busy", 1, batch(-1, -1, -1, 1, 10)))
	if got := partitions(roundTrip[*kmsg.FetchResponse](t, s, newFetch(id, 5))); len(got) != 0 {
		t.Fatalf("forgotten partition answered: %+v", got)
	}

	for _, tt := range []struct {
		name      string
		id, epoch int32
		want      int16
	}{
		{"wrong epoch", id, 99, kerr.InvalidFetchSessionEpoch.Code},
		{"unknown session", id + 1, 1, kerr.FetchSessionIDNotFound.Code},
		{"epoch without session", 0, 3, kerr.InvalidFetchSessionEpoch.Code},
	} {
		if resp := roundTrip[*kmsg.FetchResponse](t, s, newFetch(tt.id, tt.epoch)); resp.ErrorCode != tt.want {
			t.Errorf("%s: error %d, want %d", tt.name, resp.ErrorCode, tt.want)
		}
	}
	// A final-epoch fetch closes the session.
	if resp := roundTrip[*kmsg.FetchResponse](t, s, newFetch(id, -1, "idle")); resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("closing fetch: error %d session %d", resp.ErrorCode, resp.SessionID)
	}
	if resp := roundTrip[*kmsg.FetchResponse](t, s, newFetch(id, 6)); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session still served: error %d", resp.ErrorCode)
	}
}

func TestFetchSessionsOffRefusesCleanly(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.FetchSessionCacheSlots = 0 })
	f := kmsg.NewPtrFetchRequest()
	f.Version = 12
	f.MaxBytes = 1 << 20
	resp := roundTrip[*kmsg.FetchResponse](t, s, f)
	if resp.ErrorCode != 0 || resp.SessionID != 0 {
		t.Fatalf("session request with sessions off: error %d session %d", resp.ErrorCode, resp.SessionID)
	}
}

func TestFollowerFetchRefused(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	f := kmsg.NewPtrFetchRequest()
	f.Version = 11
	f.ReplicaID = 2
	f.MaxBytes = 1 << 20
	f.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	ft.Partitions = append(ft.Partitions, kmsg.NewFetchRequestTopicPartition())
	f.Topics = append(f.Topics, ft)
	resp := roundTrip[*kmsg.FetchResponse](t, s, f)
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.NotLeaderForPartition.Code {
		t.Fatalf("follower fetch: error %d", got)
	}
}

func TestLargePipelinedRequestsWithinReadAheadBudget(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	// Four 6 MiB requests exceed the 16 MiB read-ahead budget: the
	// reader must wait for room, and every request is still answered,
	// in order.
	var corrs []int32
	for range 4 {
		corrs = append(corrs, c.send(produceReq("no-such-topic", 1, make([]byte, 6<<20))))
	}
	for _, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		c.recv(resp, corr)
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("error %v", kerr.ErrorForCode(got))
		}
	}
}

func TestHandlerPanicCostsOnlyTheConnection(t *testing.T) {
	s := startServer(t)
	// A request whose body type does not match its key makes the
	// handler's type assertion panic: a stand-in for a handler bug.
	req := &request{key: 3, version: 1, kreq: kmsg.NewPtrApiVersionsRequest()}
	resp, err := s.dispatch(context.Background(), &conn{s: s}, req)
	if err == nil || resp != nil {
		t.Fatalf("dispatch after a panic: %v, %v", resp, err)
	}
	// The broker still serves.
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1
	if got := roundTrip[*kmsg.MetadataResponse](t, s, meta); len(got.Brokers) != 1 {
		t.Fatalf("metadata after a handler panic: %+v", got.Brokers)
	}
}

func TestDescribeTopicPartitionsPaging(t *testing.T) {
	s := startServer(t)
	for name, n := range map[string]int32{"a": 3, "b": 2} {
		if _, err := s.createTopic(name, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var cursor *kmsg.DescribeTopicPartitionsRequestCursor
	for range 10 {
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		for _, name := range []string{"b", "a", "missing"} {
			rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
			rt.Topic = name
			req.Topics = append(req.Topics, rt)
		}
		req.ResponsePartitionLimit = 2
		req.Cursor = cursor
		resp := roundTrip[*kmsg.DescribeTopicPartitionsResponse](t, s, req)
		for _, rt := range resp.Topics {
			if rt.ErrorCode != 0 {
				got = append(got, fmt.Sprintf("%s:err%d", *rt.Topic, rt.ErrorCode))
			}
			for _, p := range rt.Partitions {
				got = append(got, fmt.Sprintf("%s-%d", *rt.Topic, p.Partition))
			}
		}
		if resp.NextCursor == nil {
			break
		}
		cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	want := fmt.Sprint([]string{"a-0", "a-1", "a-2", "b-0", "b-1", fmt.Sprintf("missing:err%d", kerr.UnknownTopicOrPartition.Code)})
	if fmt.Sprint(got) != want {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
}

func TestIdleTimeoutSparesInFlightRequests(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.ConnectionsMaxIdle = 300 * time.Millisecond })
	if _, err := s.createTopic("quiet", 1, nil); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	// A long poll three times longer than the idle timeout: the client
	// is waiting for its answer, so the connection is not idle.
	f := fetchReq("quiet", 0, 1<<20, 1<<20)
	f.MaxWaitMillis = 900
	f.MinBytes = 1
	corr := c.send(f)
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = f.Version
	c.recv(resp, corr)
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != 0 {
		t.Fatalf("long poll: error %d", got)
	}
	// Now it is idle, and closed.
	c.expectClosed()
}

func TestTopicSwitches(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.AutoCreateTopics = false
		c.DeleteTopicEnable = false
	})
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	meta.AllowAutoTopicCreation = true
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = ptrTo("wanted")
	meta.Topics = append(meta.Topics, rt)
	resp := roundTrip[*kmsg.MetadataResponse](t, s, meta)
	if got := resp.Topics[0].ErrorCode; got != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("metadata with auto-create off: %v", kerr.ErrorForCode(got))
	}
	if _, ok := s.lookupTopic("wanted"); ok {
		t.Fatal("topic created with auto.create.topics.enable=false")
	}

	if _, err := s.createTopic("kept", 1, nil); err != nil {
		t.Fatal(err)
	}
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.Version = 6
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = ptrTo("kept")
	del.Topics = append(del.Topics, dt)
	dresp := roundTrip[*kmsg.DeleteTopicsResponse](t, s, del)
	if got := dresp.Topics[0].ErrorCode; got != kerr.TopicDeletionDisabled.Code {
		t.Fatalf("delete with delete.topic.enable=false: %v", kerr.ErrorForCode(got))
	}
	if _, ok := s.lookupTopic("kept"); !ok {
		t.Fatal("topic deleted with delete.topic.enable=false")
	}
}

func TestAutoCreateUsesNumPartitions(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.NumPartitions = 5 })
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1 // kafka-go's version: auto-creation is implied before v4
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = ptrTo("made")
	meta.Topics = append(meta.Topics, rt)
	resp := roundTrip[*kmsg.MetadataResponse](t, s, meta)
	if got := resp.Topics[0]; got.ErrorCode != 0 || len(got.Partitions) != 5 {
		t.Fatalf("auto-created topic: error %d, %d partitions", got.ErrorCode, len(got.Partitions))
	}
	bad := kmsg.NewPtrMetadataRequest()
	bad.Version = 1
	brt := kmsg.NewMetadataRequestTopic()
	brt.Topic = ptrTo("no spaces allowed")
	bad.Topics = append(bad.Topics, brt)
	if got := roundTrip[*kmsg.MetadataResponse](t, s, bad).Topics[0].ErrorCode; got != kerr.InvalidTopicException.Code {
		t.Fatalf("invalid name: %v", kerr.ErrorForCode(got))
	}
}

// The node's replica manager opens the partitions a restarted broker holds
// as soon as the node starts, concurrently with the rest of New, and asks
// for their topic configs: those resolve from the moment the node starts,
// before the dynamic broker configs are applied (the broker crashed on a
// nil config when the manager won that race).
func TestTopicConfigResolvesWhenTheNodeStarts(t *testing.T) {
	var got storage.TopicConfig
	opts := Options{Node: func(o *node.Options) {
		// Called right before the node starts.
		got = o.TopicConfig(map[string]string{"retention.ms": "1234"})
	}}
	startServerWithOptions(t, nil, opts, func(c *config.Config) {
		if err := c.Set("log.segment.bytes", "1048576"); err != nil {
			t.Fatal(err)
		}
	})
	if got.RetentionMs != 1234*time.Millisecond || got.SegmentBytes != 1<<20 {
		t.Fatalf("topic config at node start: retention %v, segment bytes %d; want 1.234s and the broker's 1048576", got.RetentionMs, got.SegmentBytes)
	}
}
