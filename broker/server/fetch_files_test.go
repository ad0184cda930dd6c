package server

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/storage"
)

// TestConsumerFetchLeavesBatchesInFiles: on plain TCP a consumer's Fetch
// locates its record batches in the segment files, for the connection's
// writer to send with sendfile, instead of reading them into memory; the
// response is otherwise the one a read into memory builds (watermarks,
// aborted transactions) at both isolation levels, the first batch whole
// when it is over the limit (KIP-74), and the quota and the fetch session
// count the batches in files.
func TestConsumerFetchLeavesBatchesInFiles(t *testing.T) {
	s := startServer(t)
	ctx := testCtxFor(t, 60*time.Second)
	addr := s.Addr().String()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, "txn"); err != nil {
		t.Fatal(err)
	}
	cl := txnClient(t, addr, "producer-1")
	produceTxn(ctx, t, cl, 0, "c1", 3, true)
	produceTxn(ctx, t, cl, 0, "a1", 2, false)
	produceTxn(ctx, t, cl, 0, "c2", 1, true)
	waitStable(ctx, t, admin, "txn", 0)

	for _, isolation := range []int8{0, 1} {
		for _, partMax := range []int32{1 << 20, 1} {
			req := fetchReq("txn", 0, 1<<20, partMax)
			req.IsolationLevel = isolation
			memResp := s.handleFetch(ctx, anonymousAuth(s, 1), req, fetchQuota{}, fetchRead{})
			mem := memResp.Topics[0].Partitions[0]
			rd := fetchRead{rb: new(storage.ReadBuffers), files: fetchFiles{}}
			resp := s.handleFetch(ctx, anonymousAuth(s, 1), req, fetchQuota{}, rd)
			got := resp.Topics[0].Partitions[0]
			if len(got.RecordBatches) != 0 {
				t.Fatalf("isolation %d, partition max %d: %d bytes of records read into memory", isolation, partMax, len(got.RecordBatches))
			}
			sent := sendFileSlices(t, rd.files[fileKeyOf(&resp.Topics[0], 0)])
			if len(mem.RecordBatches) == 0 || !bytes.Equal(sent, mem.RecordBatches) {
				t.Fatalf("isolation %d, partition max %d: %d bytes from files, %d read into memory", isolation, partMax, len(sent), len(mem.RecordBatches))
			}
			if got.ErrorCode != mem.ErrorCode || got.HighWatermark != mem.HighWatermark || got.LastStableOffset != mem.LastStableOffset ||
				got.LogStartOffset != mem.LogStartOffset || !reflect.DeepEqual(got.AbortedTransactions, mem.AbortedTransactions) {
				t.Fatalf("isolation %d, partition max %d: from files %+v, read into memory %+v", isolation, partMax, got, mem)
			}
			if isolation == 1 && partMax > 1 && len(got.AbortedTransactions) != 1 {
				t.Fatalf("read_committed lists %d aborted transactions, want the one aborted", len(got.AbortedTransactions))
			}
			if a, b := fetchResponseBytes(resp, rd.files), fetchResponseBytes(memResp, nil); a != b {
				t.Fatalf("isolation %d, partition max %d: the quota counts %d bytes from files, %d read into memory", isolation, partMax, a, b)
			}
			sp := &sessionPartition{sent: true, sentHW: got.HighWatermark, sentLSO: got.LastStableOffset, sentLogStart: got.LogStartOffset}
			if !sp.mustRespond(&got, rd.files.bytes(&resp.Topics[0], &got)) {
				t.Fatalf("isolation %d, partition max %d: an incremental fetch session would drop a partition whose records are in files", isolation, partMax)
			}
		}
	}
}

// TestOnlyPlainConnectionsSendFiles: the batches stay in files on plain
// TCP (PLAINTEXT, SASL_PLAINTEXT), and are read into memory over TLS,
// where crypto/tls must encrypt them.
func TestOnlyPlainConnectionsSendFiles(t *testing.T) {
	s := startServer(t)
	c := dialConn(t, s)
	if !c.sendsFiles() {
		t.Fatal("a plain TCP connection reads a consumer's batches into memory")
	}
	c.rw = tls.Server(c.nc, &tls.Config{})
	if c.sendsFiles() {
		t.Fatal("a TLS connection would send batches from files past crypto/tls")
	}
}

// sendFileSlices sends slices over a loopback TCP connection with
// sendfile, as a connection's writer does, and returns what arrived.
func sendFileSlices(t *testing.T, slices []storage.FileSlice) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for i := range slices {
		if _, err := slices[i].SendTo(raw); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	return <-got
}
