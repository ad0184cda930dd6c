package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFinalOffsetReadWaitsForUndecidedTransaction: the final read of a
// group's offset does not answer while a transaction's offset commit to
// that group is undecided (a plain OffsetFetch would answer the previous
// offset at once, which the check then holds against the commit); once
// the transaction commits, it answers the new offset.
func TestFinalOffsetReadWaitsForUndecidedTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process; skipped with -short")
	}
	c, err := NewCluster(ClusterConfig{Binary: buildBroker(t), Dir: t.TempDir(), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.WaitServing(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cfg := WorkloadConfig{Brokers: c.Bootstrap(), Partitions: 1, OpTimeout: 5 * time.Second, Logger: testLogger()}
	cfg.defaults()
	cfg.txnDefaults()
	if err := createTxnTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	const process = txnProducerBase
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.TransactionalID(fmt.Sprintf("chaos-txn-producer-%d", process)),
		kgo.DefaultProduceTopic(cfg.TxnTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Transaction n commits offset n to the process's group.
	txn := func(n int64, end bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(n))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := commitTxnOffset(ctx, cl, cfg, process, n); err != nil {
			t.Fatal(err)
		}
		if end {
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn(1, true)
	txn(2, false)

	rec := NewRecorder()
	done := make(chan error, 1)
	go func() { done <- RunOffsetObserver(ctx, cfg, []int{process}, rec, true) }()
	select {
	case err := <-done:
		t.Fatalf("the final offset read answered (%v) while transaction 2 was undecided: %+v", err, finalReads(rec))
	case <-time.After(1500 * time.Millisecond):
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reads := finalReads(rec)
	if len(reads) != 1 || reads[0].Value != 2 {
		t.Fatalf("final offset reads %+v, want one of offset 2", reads)
	}
}

// finalReads are the answered final offset reads.
func finalReads(rec *Recorder) []Event {
	var out []Event
	for _, e := range rec.Events() {
		if e.Func == OffsetRead && e.Final && e.Status == OK {
			out = append(out, e)
		}
	}
	return out
}
