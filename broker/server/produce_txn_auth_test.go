package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// TestProduceTransactionalRecordsNeedTransactionalID: a transactional
// batch in a Produce request without a transactional id is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (Kafka's KafkaApis rule), so a
// principal that may write the topic cannot append, with another
// producer's id and epoch, into that producer's open transaction, which
// its commit would then make visible. A transactional id the principal
// may write, and idempotent batches, go on as before.
func TestProduceTransactionalRecordsNeedTransactionalID(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	id := "victim"
	v := initTransactionalID(t, s, id)
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, id, v.id, v.epoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	if c := errorCodes(exchange(t, s, add)); c[0] != 0 {
		t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(c[0]))
	}
	if code := rawProduce(t, s, &id, "t", 0, txnBatch(t, v.id, v.epoch, 0, true)); code != 0 {
		t.Fatalf("the transaction's own produce: %v", kerr.ErrorForCode(code))
	}
	ctx := testCtxFor(t, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	end := listOffset(ctx, t, cl, "t", 0, 0)
	if code := rawProduce(t, s, nil, "t", 0, txnBatch(t, v.id, v.epoch, 1, true)); code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("a transactional batch without a transactional id: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	// Behind a first batch that is not transactional too.
	two := append(batch(-1, -1, -1, 1, 10), txnBatch(t, v.id, v.epoch, 1, true)...)
	if code := rawProduce(t, s, nil, "t", 0, two); code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("a transactional second batch without a transactional id: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if got := listOffset(ctx, t, cl, "t", 0, 0); got != end {
		t.Errorf("the refused produces moved the high watermark from %d to %d", end, got)
	}
	if code := rawProduce(t, s, &id, "t", 0, txnBatch(t, v.id, v.epoch, 1, true)); code != 0 {
		t.Errorf("the transaction's next produce: %v", kerr.ErrorForCode(code))
	}
	if code := rawProduce(t, s, nil, "t", 0, batch(-1, -1, -1, 1, 10)); code != 0 {
		t.Errorf("a plain batch: %v", kerr.ErrorForCode(code))
	}
}

// txnRecords is one transactional batch of a record from producer pid at
// epoch.
func txnRecords(pid int64, epoch int16) []byte {
	now := time.Now().UnixMilli()
	h := recordbatch.Header{PartitionLeaderEpoch: -1, ProducerID: pid, ProducerEpoch: epoch, Attributes: recordbatch.TransactionalBit,
		RecordCount: 1, BaseTimestamp: now, MaxTimestamp: now}
	b, err := recordbatch.Encode(h, recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Value: []byte("v")}))
	if err != nil {
		panic(err)
	}
	return b
}

// TestProduceIdempotentDuringTransactionRefused: an idempotent
// (non-transactional) batch carrying the producer id and epoch of a
// producer whose transaction is open on the partition is refused with
// INVALID_TXN_STATE, as Kafka's ProducerAppendInfo ("Expected
// transactional write from producer"): appended, it would sit among the
// transaction's records where no marker covers it, and take the
// transaction's next sequence. A batch repeating the sequences of a batch
// already written answers as that duplicate and writes nothing, as
// Kafka's findDuplicateBatch, which comes first. The transaction goes on:
// its next batch, its commit or abort, and a read_committed read that
// sees exactly its records (or none), then the producer's idempotent
// batch after it.
func TestProduceIdempotentDuringTransactionRefused(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprintf("commit=%v", commit), func(t *testing.T) {
			s := startServer(t)
			if _, err := s.createTopic("t", 1, nil); err != nil {
				t.Fatal(err)
			}
			id := "victim"
			v := initTransactionalID(t, s, id)
			add := kmsg.NewPtrAddPartitionsToTxnRequest()
			add.Version, add.TransactionalID, add.ProducerID, add.ProducerEpoch = 3, id, v.id, v.epoch
			add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			if c := errorCodes(exchange(t, s, add)); c[0] != 0 {
				t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(c[0]))
			}
			if code := rawProduce(t, s, &id, "t", 0, txnBatch(t, v.id, v.epoch, 0, true)); code != 0 {
				t.Fatalf("the transaction's first produce: %v", kerr.ErrorForCode(code))
			}
			ctx := testCtxFor(t, 30*time.Second)
			cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			end := listOffset(ctx, t, cl, "t", 0, 0)
			if code := rawProduce(t, s, nil, "t", 0, txnBatch(t, v.id, v.epoch, 1, false)); code != kerr.InvalidTxnState.Code {
				t.Errorf("an idempotent batch with the open transaction's producer id and epoch: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
			}
			if code := rawProduce(t, s, nil, "t", 0, txnBatch(t, v.id, v.epoch+1, 0, false)); code != kerr.InvalidTxnState.Code {
				t.Errorf("an idempotent batch with the open transaction's producer id at a newer epoch: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
			}
			if code := rawProduce(t, s, nil, "t", 0, txnBatch(t, v.id, v.epoch, 0, false)); code != 0 {
				t.Errorf("an idempotent batch repeating the transaction's first sequence: %v, want the duplicate's answer", kerr.ErrorForCode(code))
			}
			if got := listOffset(ctx, t, cl, "t", 0, 0); got != end {
				t.Errorf("the refused produces moved the high watermark from %d to %d", end, got)
			}
			if code := rawProduce(t, s, &id, "t", 0, txnBatch(t, v.id, v.epoch, 1, true)); code != 0 {
				t.Fatalf("the transaction's next produce: %v", kerr.ErrorForCode(code))
			}
			endTxn := kmsg.NewPtrEndTxnRequest()
			endTxn.Version, endTxn.TransactionalID, endTxn.ProducerID, endTxn.ProducerEpoch, endTxn.Commit = 3, id, v.id, v.epoch, commit
			if code := exchange(t, s, endTxn).(*kmsg.EndTxnResponse).ErrorCode; code != 0 {
				t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
			}
			state := "CompleteAbort"
			if commit {
				state = "CompleteCommit"
			}
			waitTxnState(ctx, t, cl, id, state)
			// With the transaction over, the producer id writes
			// idempotently again, at its next sequence.
			if code := rawProduce(t, s, nil, "t", 0, txnBatch(t, v.id, v.epoch, 2, false)); code != 0 {
				t.Fatalf("an idempotent batch after the transaction ended: %v", kerr.ErrorForCode(code))
			}
			// Two transactional records, the marker, the idempotent one.
			stable := waitStable(ctx, t, cl, "t", 0)
			if stable != 4 {
				t.Errorf("end offset %d, want 4", stable)
			}
			want := 1
			if commit {
				want = 3
			}
			if got := readValues(ctx, t, s.Addr().String(), "t", true, map[int32]int64{0: stable}); len(got) != want {
				t.Errorf("read_committed read %d records (%q), want %d", len(got), got, want)
			}
		})
	}
}
