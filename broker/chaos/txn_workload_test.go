package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
	c, ctx := servingBroker(t, nil, 90*time.Second)
	cfg := WorkloadConfig{Brokers: c.Bootstrap(), Partitions: 1, OpTimeout: 5 * time.Second, Logger: testLogger()}
	cfg.defaults()
	cfg.txnDefaults()
	if err := createTxnTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	const process = txnProducerBase
	cl := txnTestProducer(t, cfg, process)
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

// TestDrainTxnEndsOnALogRetentionEmptied: the transactional drain ends on
// a partition whose committed transactions retention removed (its log
// start at its end), recording that log start, instead of waiting for
// records that are gone; the transactions' completions give the offsets
// their values went to, so the checker excuses every removed value and
// still holds the other partition's to the drain.
func TestDrainTxnEndsOnALogRetentionEmptied(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process; skipped with -short")
	}
	c, ctx := servingBroker(t, map[string]string{"log.retention.check.interval.ms": "200"}, 90*time.Second)
	const retention = time.Second
	cfg := WorkloadConfig{Brokers: c.Bootstrap(), Partitions: 2, OpTimeout: 5 * time.Second, Logger: testLogger(),
		TopicConfigs: RetentionConfigs(retention, 1024, 0)}
	cfg.defaults()
	if err := createTxnTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	const process = txnProducerBase
	cl := txnTestProducer(t, cfg, process)
	rec := NewRecorder()
	var n, v int64
	txn := func(p int32, commit bool) {
		t.Helper()
		n++
		writes := make([]Write, 2)
		for i := range writes {
			v++
			writes[i] = Write{Key: key(cfg.TxnTopic, p), Value: int64(process)*1_000_000_000 + v}
		}
		if !runTxn(cl, cfg, process, n, writes, commit, rec) {
			t.Fatalf("transaction %d did not complete: %+v", n, rec.Events()[len(rec.Events())-1])
		}
	}
	for range 10 {
		txn(0, true)
	}
	adm := kadm.NewClient(cl)
	for {
		starts, err1 := adm.ListStartOffsets(ctx, cfg.TxnTopic)
		ends, err2 := adm.ListEndOffsets(ctx, cfg.TxnTopic)
		s, _ := starts.Lookup(cfg.TxnTopic, 0)
		e, _ := ends.Lookup(cfg.TxnTopic, 0)
		if err1 == nil && err2 == nil && e.Offset > 0 && s.Offset == e.Offset {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("retention did not empty partition 0: start %d, end %d (%v %v)", s.Offset, e.Offset, err1, err2)
		case <-time.After(200 * time.Millisecond):
		}
	}
	txn(1, true) // after: retention keeps them a second at least
	txn(1, false)

	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	if err := DrainTxn(dctx, cfg, []int{process}, rec); err != nil {
		t.Fatalf("drain: %v", err)
	}
	events := rec.Events()
	res := Check(events, Options{RequireAllSeen: true, Retention: retention})
	if !res.Valid || res.Stats.TxnCommitted != 11 || res.Stats.TxnRemoved < 20 {
		t.Fatalf("want valid, 11 committed transactions and partition 0's 20 values removed by retention:\n%s", res.Report(events, 0))
	}
	// Partition 1's committed values are held to the drain: without them
	// the history is invalid.
	var cut []Event
	for _, e := range events {
		if e.Func == Poll && e.Final && len(e.Reads) > 0 {
			e.Reads = nil
		}
		cut = append(cut, e)
	}
	if res := Check(cut, Options{RequireAllSeen: true, Retention: retention}); res.Valid {
		t.Fatalf("a drain without partition 1's committed values passed:\n%s", res.Report(cut, 0))
	}
}

// txnTestProducer is a transactional producer with the id the workload's
// producer process would use, to the transactional topic, writing to the
// partition each record names; closed when the test ends.
func txnTestProducer(t *testing.T, cfg WorkloadConfig, process int) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.TransactionalID(fmt.Sprintf("chaos-txn-producer-%d", process)),
		kgo.DefaultProduceTopic(cfg.TxnTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
