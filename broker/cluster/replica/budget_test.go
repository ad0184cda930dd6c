package replica

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/broker/storage"
)

// TestReplicationListenerChargesTLSReadsToTheBudget: over TLS, the
// batches a follower's fetch reads into memory are charged to the
// broker's read budget until the response is written: a fetch that finds
// the budget spent by others gets its first batch (so the follower
// progresses) and no more, a fetch with room gets at most what the budget
// has left (and a batch), and the charge comes back once each response is
// written and once the connection is gone.
func TestReplicationListenerChargesTLSReadsToTheBudget(t *testing.T) {
	ctx := context.Background()
	part, err := openStore(t).CreatePartition(tp0.Topic, 0, storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := part.Append(ctx, produced(t, 3000, -1, 0, fmt.Sprint("value-", i)), storage.AppendOptions{LeaderEpoch: 5}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := part.Read(0, 1<<30, part.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	first, err := part.Read(0, 1, part.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2}}, part.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		return tr, part, topic == tp0.Topic && partition == 0
	}
	ca, err := tlstest.NewCA("replica test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("127.0.0.1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(len(all) / 3)
	budget := storage.NewReadBudget(limit)
	srv := ServeReplication(ln, lookup, nil, nil, budget, slog.New(slog.DiscardHandler))
	defer srv.Close()
	c, err := dialLeader(ctx, srv.Addr(), "test", func(string) *tls.Config { return &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"} })
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	fetch := func() []byte {
		t.Helper()
		req := fetchReq(5, 0, -1, 0)
		req.Topics[0].Partitions[0].PartitionMaxBytes = 1 << 30
		r, err := c.request(req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rp := r.(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if rp.ErrorCode != 0 || !bytes.HasPrefix(all, rp.RecordBatches) || len(rp.RecordBatches) < len(first) {
			t.Fatalf("code %d, %d record bytes: not whole batches from the start of the leader's log", rp.ErrorCode, len(rp.RecordBatches))
		}
		return rp.RecordBatches
	}
	waitReleased := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); budget.Held() != 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d bytes still charged after the response was written", budget.Held())
			}
		}
	}

	if got := fetch(); int64(len(got)) > limit || len(got) == len(all) {
		t.Fatalf("a fetch under a budget of %d bytes returned %d of the log's %d", limit, len(got), len(all))
	}
	waitReleased()

	// Another reader holds the whole budget: the follower gets its
	// first batch, and nothing more.
	// (Budgets are taken in blocks of 64 KiB and up: spent is less than
	// the smallest block left.)
	other := budget.Buffers()
	for held := int64(-1); held != budget.Held(); {
		held = budget.Held()
		if _, err := part.ReadInto(0, int32(limit), part.LogEndOffset(), other); err != nil {
			t.Fatal(err)
		}
	}
	if budget.Held() <= limit-64<<10 {
		t.Fatalf("another reader holds %d of %d bytes: the budget is not spent", budget.Held(), limit)
	}
	if got := fetch(); !bytes.Equal(got, first) {
		t.Fatalf("a fetch that found the budget spent returned %d bytes, want its first batch (%d)", len(got), len(first))
	}
	other.Release()
	waitReleased()
	if budget.Cut() < 2 {
		t.Fatalf("%d reads counted as cut short, want both fetches", budget.Cut())
	}
}

// TestReplicationListenerReleasesWhatAPathForgot: read buffers a follower
// Fetch's path reads into and drops without releasing (injected) hold
// their charge while the connection lives; when it ends, the listener's
// backstop releases them and counts the leak, so the broker's fetch memory
// bound does not shrink for good.
func TestReplicationListenerReleasesWhatAPathForgot(t *testing.T) {
	ctx := context.Background()
	part, err := openStore(t).CreatePartition(tp0.Topic, 0, storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := part.Append(ctx, produced(t, 3000, -1, 0, fmt.Sprint("value-", i)), storage.AppendOptions{LeaderEpoch: 5}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2}}, part.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		return tr, part, topic == tp0.Topic && partition == 0
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	budget := storage.NewReadBudget(0)
	srv := ServeReplication(ln, lookup, nil, nil, budget, slog.New(slog.DiscardHandler))
	defer srv.Close()
	forget := func(reads *storage.ReadTracker) {
		if _, err := part.ReadInto(0, 1<<20, part.LogEndOffset(), reads.Buffers("Fetch")); err != nil {
			t.Error(err)
		}
	}
	srv.afterFetchRead.Store(&forget)
	c, err := dialLeader(ctx, srv.Addr(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.request(fetchReq(5, 0, -1, 0), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	srv.afterFetchRead.Store(nil)
	if budget.Held() == 0 {
		t.Fatal("the injected read charged nothing: the test tests nothing")
	}
	c.close()
	for deadline := time.Now().Add(5 * time.Second); budget.Held() != 0 || budget.Leaked() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still charged, %d leaked releases counted, after the connection ended", budget.Held(), budget.Leaked())
		}
	}
	if got := budget.Leaked(); got != 1 {
		t.Errorf("%d leaked releases counted, want 1", got)
	}
}
