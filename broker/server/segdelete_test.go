package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFileFetchOutlivesRetention: a consumer's fetch sent from the segment
// files (plain TCP) whose segments retention deletes while the response is
// being written still arrives whole, with the bytes it was built from, on
// a connection that stays open (file.delete.delay.ms at its default keeps
// the files open); before, the broker closed the connection mid-response.
func TestFileFetchOutlivesRetention(t *testing.T) {
	s := startServer(t)
	ctx := testCtxFor(t, 60*time.Second)
	addr := s.Addr().String()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	configs := map[string]*string{"segment.bytes": kadm.StringPtr("1048576"), "retention.bytes": kadm.StringPtr("2097152"), "retention.ms": kadm.StringPtr("-1")}
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, configs, "ret"); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("ret"), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	v := bytes.Repeat([]byte("r"), 1000)
	for range (10 << 20) / len(v) {
		prod.Produce(ctx, &kgo.Record{Value: v}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()
	p, ok := s.store.Partition("ret", 0)
	if !ok {
		t.Fatal("no log for ret-0")
	}

	// The records as a fetch returns them before retention.
	whole := rawFetchConn(t, addr)
	if err := writeFetch(whole, 1, "ret"); err != nil {
		t.Fatal(err)
	}
	want, err := readFetch(whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 9<<20 {
		t.Fatalf("a fetch of the whole log returned %d bytes", len(want))
	}

	held := rawFetchConn(t, addr)
	if err := writeFetch(held, 1, "ret"); err != nil {
		t.Fatal(err)
	}
	// The size is read: the response is built, and its writer is
	// sending it from the files, held by this client's reading.
	var size [4]byte
	if _, err := io.ReadFull(held, size[:]); err != nil {
		t.Fatal(err)
	}
	s.store.RunCleaner(context.Background())
	if p.LogStartOffset() == 0 {
		t.Fatal("retention deleted nothing")
	}
	got, err := readFetch(held, size[:])
	if err != nil {
		t.Fatalf("reading a response whose segments retention deleted meanwhile: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the held response carried %d bytes of records, different from the %d fetched before retention", len(got), len(want))
	}
	// And the connection goes on: a fetch from offset 0, now below the
	// log start, is answered OFFSET_OUT_OF_RANGE on it.
	if err := writeFetch(held, 2, "ret"); err != nil {
		t.Fatal(err)
	}
	if _, err := readFetch(held, nil); err == nil || err.Error() != fmt.Sprintf("fetch error %d", kerr.OffsetOutOfRange.Code) {
		t.Fatalf("a fetch below the new log start on the same connection: %v, want OFFSET_OUT_OF_RANGE", err)
	}
}

// rawFetchConn connects to addr without a Kafka client, with a small
// receive buffer, so that an unread response holds its writer.
func rawFetchConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}
