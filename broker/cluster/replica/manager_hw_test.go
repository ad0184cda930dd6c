package replica

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// TestRestartedLeaderStartsFromItsSavedHighWatermark: a broker restarted
// on its storage leads a partition before any follower fetches; its high
// watermark starts where the log's checkpoint left it (not at the log
// start, where consumers would find nothing and ListOffsets latest would
// move back), clamped to the log end; a log whose watermark was never set
// starts at its log start, since records above it may never have been
// replicated.
func TestRestartedLeaderStartsFromItsSavedHighWatermark(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *storage.Store {
		t.Helper()
		st, err := storage.Open(dir, storage.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	id := metadata.TopicID{1}
	st := open()
	for i, hw := range []int64{6, -1} {
		p, err := st.CreatePartitionWithID("t", int32(i), storage.TopicID(id), storage.TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Append(ctx, produced(t, 10, -1, 0, "v"), storage.AppendOptions{LeaderEpoch: 0}); err != nil {
			t.Fatal(err)
		}
		if hw >= 0 {
			p.SetHighWatermark(hw)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open()
	t.Cleanup(func() { _ = st.Close() })

	ctl := newStateControl(t)
	ctl.apply(metadata.InitCluster{ClusterID: "c"})
	for _, b := range []int32{1, 2} {
		ctl.apply(metadata.RegisterBroker{NodeID: b, Rack: fmt.Sprint(b), ReplicationAddr: "127.0.0.1:1",
			Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 1}}, NowMs: 1000, LeaseMs: 3_600_000})
	}
	_, idx := ctl.apply(metadata.CreateTopic{Name: "t", ID: id, Assignments: [][]int32{{1, 2}, {1, 2}}})
	mgr := StartManager(ManagerConfig{Control: ctl, Logs: StoreLogs{Store: st}, DefaultMinISR: 1, ISRInterval: time.Hour, Logger: logger(t)})
	t.Cleanup(mgr.Close)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := mgr.WaitReconciled(wctx, idx); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{6, 0} {
		l, log, ok := mgr.Leader("t", int32(i))
		if !ok {
			t.Fatalf("not leading t-%d", i)
		}
		if got := l.HighWatermark(); got != want {
			t.Errorf("t-%d: the restarted leader's high watermark starts at %d, want %d", i, got, want)
		}
		if got := log.HighWatermark(); got != want {
			t.Errorf("t-%d: the log's high watermark is %d, want %d", i, got, want)
		}
	}
}
