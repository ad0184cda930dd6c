package server

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// TestRequestHeaderAlonePinsLittle: on a PLAINTEXT listener a 64 MiB size
// header and a few bytes, nothing more, leave the broker's heap about
// where it was (it grew by the 64 MiB announced before).
func TestRequestHeaderAlonePinsLittle(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	// A Produce v9 (API key 0), whose frame is pooled.
	sent := append(binary.BigEndian.AppendUint32(nil, 64<<20), 0, 0, 0, 9)
	sent = append(sent, "only this much"...)
	trafficBefore := s.metrics.Snapshot().TrafficIn
	c.write(sent)
	// The broker has read what was sent (its read buffer counts it) and
	// then allocates the frame's memory; give the reader time to reach
	// its next read.
	deadline := time.Now().Add(10 * time.Second)
	for s.metrics.Snapshot().TrafficIn-trafficBefore < int64(len(sent)) {
		if time.Now().After(deadline) {
			t.Fatal("the broker did not read the bytes sent within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if grown := int64(heap()) - int64(base); grown > 16<<20 {
		t.Fatalf("a 64 MiB header and %d bytes grew the heap by %d bytes", len(sent)-4, grown)
	}
}

// TestProduceOf20MiB: a Produce request far above growFrameAbove, read
// in growing steps, is appended whole and read back byte for byte.
func TestProduceOf20MiB(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.MessageMaxBytes = 32 << 20 })
	if _, err := s.createTopic("big", 1, nil); err != nil {
		t.Fatal(err)
	}
	batch := filledBatch(20, 1<<20, 3)
	c := dial(t, s)
	for i := range 2 {
		corr := c.send(produceReq("big", -1, batch))
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		c.recv(resp, corr)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(20*i) {
			t.Fatalf("produce %d: %v, offset %d", i, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}
	corr := c.send(fetchReq("big", 20, 64<<20, 64<<20))
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	c.recv(resp, corr)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) < 61 || !bytes.Equal(p.RecordBatches[12:], batch[12:]) {
		t.Fatalf("fetch: %v, %d bytes back, want the %d-byte batch sent", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches), len(batch))
	}
}
