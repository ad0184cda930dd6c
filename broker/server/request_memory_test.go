package server

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// produceHeader is the start of a Produce v9 frame announcing size bytes:
// the size, the API key and version, and a few bytes of what follows.
func produceHeader(size uint32) []byte {
	b := append(binary.BigEndian.AppendUint32(nil, size), 0, 0, 0, 9)
	return append(b, "only this much"...)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func heapAlloc() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestRequestMemoryBoundsSizeHeaders: 48 connections that each send a
// 1 MiB Produce size header and a few bytes hold no more than
// queued.max.request.bytes (4 MiB) together: 4 are read into, the others
// wait without reading, and the heap grows by about the bound (by 48 MiB
// without it). Once they close, nothing stays charged.
func TestRequestMemoryBoundsSizeHeaders(t *testing.T) {
	const limit, conns = 4 << 20, 48
	s := startServer(t, func(c *config.Config) { c.QueuedMaxRequestBytes = limit })
	base := heapAlloc()
	var cs []*rawConn
	for range conns {
		c := dial(t, s)
		c.write(produceHeader(1 << 20))
		cs = append(cs, c)
	}
	waitUntil(t, "4 headers charged, 44 waiting", func() bool {
		st := s.reqMem.Stats()
		return st.Held == limit && st.Waiting == conns-limit>>20
	})
	time.Sleep(200 * time.Millisecond) // a reader past its wait would allocate now
	grown := heapAlloc() - base
	if st := s.reqMem.Stats(); st.Held > limit {
		t.Fatalf("%d bytes charged, over the bound of %d", st.Held, limit)
	}
	// Each connection also has its 64 KiB read buffer and goroutines.
	if grown > limit+conns*(64<<10)+4<<20 {
		t.Fatalf("%d connections with a 1 MiB header each grew the heap by %d bytes (bound %d)", conns, grown, limit)
	}
	t.Logf("heap grew by %.1f MiB", float64(grown)/(1<<20))
	for _, c := range cs {
		c.nc.Close()
	}
	waitUntil(t, "nothing charged once the connections closed", func() bool {
		st := s.reqMem.Stats()
		return st.Held == 0 && st.Waiting == 0
	})
}

// TestRequestLargerThanRequestMemoryIsRefused: a request within
// socket.request.max.bytes but larger than the whole request memory is
// refused at once (the connection closed, counted), not left waiting for
// memory that can never come; other connections are served.
func TestRequestLargerThanRequestMemoryIsRefused(t *testing.T) {
	logs := &logBuffer{}
	s := startServerWithLog(t, logs, func(c *config.Config) { c.QueuedMaxRequestBytes = 2 << 20 })
	c := dial(t, s)
	c.write(produceHeader(3 << 20))
	c.expectClosed()
	if st := s.reqMem.Stats(); st.Refused != 1 || st.Held != 0 || st.Waiting != 0 {
		t.Fatalf("stats %+v, want one refusal and nothing held", st)
	}
	if !strings.Contains(logs.String(), "queued.max.request.bytes") {
		t.Fatal("the refusal's log line does not name queued.max.request.bytes")
	}
	if _, err := s.createTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	produceOK(t, dial(t, s), "t")
}

// produceOK produces one small batch on c and expects it acknowledged.
func produceOK(t *testing.T, c *rawConn, topic string) {
	t.Helper()
	corr := c.send(produceReq(topic, 1, filledBatch(1, 100, 1)))
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(resp, corr)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
}

// TestWaitingConnectionProceedsOnceMemoryFrees: with the request memory
// (set to 2 MiB with IncrementalAlterConfigs) held by one connection's
// unfinished request, another connection's Produce waits unanswered; it
// is read and answered once the first connection gives its memory back.
func TestWaitingConnectionProceedsOnceMemoryFrees(t *testing.T) {
	// The bound may not be below the largest request accepted.
	s := startServer(t, func(c *config.Config) { c.SocketRequestMaxBytes = 2 << 20 })
	if _, err := s.createTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	alterBrokerConfig(t, dial(t, s), "queued.max.request.bytes", "2097152")
	waitUntil(t, "the bound applied", func() bool { return s.reqMem.Stats().Limit == 2<<20 })

	holder := dial(t, s)
	holder.write(produceHeader(2 << 20))
	waitUntil(t, "the holder's header charged", func() bool { return s.reqMem.Stats().Held == 2<<20 })
	c := dial(t, s)
	corr := c.send(produceReq("t", 1, filledBatch(1, 100, 1)))
	waitUntil(t, "the produce waiting", func() bool { return s.reqMem.Stats().Waiting == 1 })
	if body, err := c.readFrame(300 * time.Millisecond); err == nil {
		t.Fatalf("a produce was answered (%d bytes) while the request memory was held", len(body))
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("reading while waiting: %v, want a timeout", err)
	}
	holder.nc.Close()
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(resp, corr)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	if st := s.reqMem.Stats(); st.Waits != 1 || st.WaitSeconds < 0.3 {
		t.Fatalf("stats %+v, want one wait of at least 0.3 s", st)
	}
}

// alterBrokerConfig sets one dynamic broker config of every broker.
func alterBrokerConfig(t *testing.T, c *rawConn, name, value string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeBroker
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value = name, kmsg.StringPtr(value)
	rr.Configs = append(rr.Configs, cfg)
	req.Resources = append(req.Resources, rr)
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	resp.Version = req.Version
	c.recv(resp, c.send(req))
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs %s=%s: %v", name, value, kerr.ErrorForCode(code))
	}
}

// TestRequestMemoryLimit: queued.max.request.bytes resolves to itself when
// set, to no bound for -1, and by default to a quarter of what the
// process may use, never under socket.request.max.bytes.
func TestRequestMemoryLimit(t *testing.T) {
	cfg := config.Default()
	for _, tc := range []struct {
		setting, want int64
	}{{5 << 20, 5 << 20}, {-1, 0}} {
		cfg.QueuedMaxRequestBytes = tc.setting
		if got, from := requestMemoryLimit(cfg, "/nonexistent", "/nonexistent"); got != tc.want {
			t.Errorf("setting %d: %d (%s), want %d", tc.setting, got, from, tc.want)
		}
	}
	cfg.QueuedMaxRequestBytes = 0
	got, from := requestMemoryLimit(cfg, "/proc", "/sys/fs/cgroup")
	if got < int64(cfg.SocketRequestMaxBytes) {
		t.Errorf("default %d (%s), under socket.request.max.bytes", got, from)
	}
	cfg.SocketRequestMaxBytes = 1 << 30
	cfg.QueuedMaxRequestBytes = 0
	if got, _ := requestMemoryLimit(cfg, "/nonexistent", "/nonexistent"); got != 1<<30 {
		t.Errorf("no memory size found: %d, want socket.request.max.bytes", got)
	}
}
