package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

func txnClient(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.DefaultProduceTopic("txn"),
		kgo.TransactionTimeout(10 * time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func testCtxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// produceTxn runs one transaction of n records on partition p and ends it.
func produceTxn(ctx context.Context, t *testing.T, cl *kgo.Client, p int32, prefix string, n int, commit bool) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("producing %s-%d: %v", prefix, i, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("ending transaction %s (commit %v): %v", prefix, commit, err)
	}
}

// readValues consumes partitions of topic from the start at an isolation
// level until it has seen offsets up to end, and returns the values.
// readValues reads topic from the start until each partition named in
// ends has shown a high watermark and a last stable offset at or past its
// end, and returns the values, partition by partition in offset order.
// Each partition is waited for on its own: a fetch that answers one
// partition says nothing of the others (the last read once returned
// when partition 0, far past partition 1's end, came back first).
func readValues(ctx context.Context, t *testing.T, addr, topic string, committed bool, ends map[int32]int64) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byPartition := map[int32][]string{}
	reached := map[int32]bool{}
	for len(reached) < len(ends) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s (committed %v) up to %v: %v; got %v", topic, committed, ends, err, byPartition)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			byPartition[r.Partition] = append(byPartition[r.Partition], string(r.Value))
		})
		// Markers are invisible; the fetch positions pass them.
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if end, ok := ends[p.Partition]; ok && p.HighWatermark >= end && p.LastStableOffset >= end {
				reached[p.Partition] = true
			}
		})
	}
	var out []string
	for _, p := range slices.Sorted(maps.Keys(byPartition)) {
		out = append(out, byPartition[p]...)
	}
	return out
}

func TestTransactionsSingleBroker(t *testing.T) {
	s := startServer(t)
	ctx := testCtxFor(t, 60*time.Second)
	addr := s.Addr().String()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "txn"); err != nil {
		t.Fatal(err)
	}

	cl := txnClient(t, addr, "producer-1")
	produceTxn(ctx, t, cl, 0, "c1", 3, true)
	produceTxn(ctx, t, cl, 0, "a1", 2, false)
	produceTxn(ctx, t, cl, 0, "c2", 1, true)

	// An open transaction holds read_committed readers back.
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Partition: 0, Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	lso := listOffset(ctx, t, admin, "txn", 0, 1)
	hw := listOffset(ctx, t, admin, "txn", 0, 0)
	if lso >= hw {
		t.Fatalf("with a transaction open: last stable offset %d, high watermark %d", lso, hw)
	}
	desc, err := adm.DescribeTransactions(ctx, "producer-1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := desc.On("producer-1", nil)
	if err != nil || d.State != "Ongoing" || len(d.Topics["txn"]) != 1 {
		t.Fatalf("DescribeTransactions: %+v %v", d, err)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil || len(listed) != 1 {
		t.Fatalf("ListTransactions Ongoing: %+v %v", listed, err)
	}
	prods, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"txn": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	prods.EachProducer(func(p kadm.DescribedProducer) {
		if p.ProducerID == d.ProducerID && p.CurrentTxnStartOffset == lso {
			found = true
		}
	})
	if !found {
		t.Fatalf("DescribeProducers does not show the open transaction at %d: %+v", lso, prods)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}

	end := waitStable(ctx, t, admin, "txn", 0)
	committed := readValues(ctx, t, addr, "txn", true, map[int32]int64{0: end})
	want := []string{"c1-0", "c1-1", "c1-2", "c2-0"}
	if fmt.Sprint(committed) != fmt.Sprint(want) {
		t.Fatalf("read_committed: %v, want %v", committed, want)
	}
	all := readValues(ctx, t, addr, "txn", false, map[int32]int64{0: end})
	if len(all) != 7 {
		t.Fatalf("read_uncommitted: %v, want all 7 records", all)
	}

	// A second incarnation fences the first: the zombie's next
	// transaction fails, the new producer's works.
	zombie := cl
	fresh := txnClient(t, addr, "producer-1")
	produceTxn(ctx, t, fresh, 1, "fresh", 1, true)
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	err = zombie.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte("zombie")}).FirstErr()
	if err == nil {
		err = zombie.EndTransaction(ctx, kgo.TryCommit)
	}
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("zombie producer: %v, want fenced", err)
	}
	end1 := waitStable(ctx, t, admin, "txn", 1)
	if got := readValues(ctx, t, addr, "txn", true, map[int32]int64{0: end, 1: end1}); fmt.Sprint(got) != fmt.Sprint(append(want, "fresh-0")) {
		t.Fatalf("after fencing, read_committed: %v", got)
	}
}

// waitStable waits until a partition has no transaction undecided (EndTxn
// answers before the markers are written) and returns its end.
func waitStable(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, p int32) int64 {
	t.Helper()
	for {
		hw, lso := listOffset(ctx, t, cl, topic, p, 0), listOffset(ctx, t, cl, topic, p, 1)
		if hw == lso {
			return hw
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s-%d: last stable offset %d stays below the high watermark %d", topic, p, lso, hw)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitTxnState waits until DescribeTransactions shows a transactional id
// in a state (EndTxn answers before the markers are written).
func waitTxnState(ctx context.Context, t *testing.T, cl *kgo.Client, id, state string) {
	t.Helper()
	adm := kadm.NewClient(cl)
	for {
		d, err := adm.DescribeTransactions(ctx, id)
		if err == nil {
			if got, err := d.On(id, nil); err == nil && got.State == state {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never reached %s", id, state)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// listOffset answers ListOffsets latest at an isolation level.
func listOffset(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, p int32, isolation int8) int64 {
	t.Helper()
	req := listOffsetsReq(topic, p, timestampLatest)
	req.Version = 5
	req.IsolationLevel = isolation
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	sp := resp.Topics[0].Partitions[0]
	if sp.ErrorCode != 0 {
		t.Fatalf("ListOffsets: %v", kerr.ErrorForCode(sp.ErrorCode))
	}
	return sp.Offset
}

// txnBatch encodes one transactional (or idempotent) batch of a record.
func txnBatch(t *testing.T, pid int64, epoch int16, seq int32, transactional bool) []byte {
	t.Helper()
	h := recordbatch.Header{PartitionLeaderEpoch: -1, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq,
		RecordCount: 1, BaseTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli()}
	if transactional {
		h.Attributes |= recordbatch.TransactionalBit
	}
	b, err := recordbatch.Encode(h, recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Value: []byte("v")}))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawProduce(t *testing.T, s *Server, id *string, topic string, p int32, batch []byte) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis, req.TransactionID = 9, -1, 5000, id
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = p, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return roundTrip[*kmsg.ProduceResponse](t, s, req).Topics[0].Partitions[0].ErrorCode
}

// TestProduceVerification: KIP-890 part 1. A transactional produce opens
// its transaction on a partition only when the coordinator has the
// partition in the transaction, so no transaction can be left hanging by a
// produce the coordinator never heard of; a fenced epoch is refused; a
// produce after the transaction ended must be added again.
func TestProduceVerification(t *testing.T) {
	s := startServer(t)
	ctx := testCtxFor(t, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "v"); err != nil {
		t.Fatal(err)
	}
	id := "raw-producer"
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version, fc.CoordinatorType, fc.CoordinatorKey = 3, 1, id
	if resp := roundTrip[*kmsg.FindCoordinatorResponse](t, s, fc); resp.ErrorCode != 0 || resp.NodeID != s.nodeID {
		t.Fatalf("FindCoordinator: %+v", resp)
	}
	ipid := kmsg.NewPtrInitProducerIDRequest()
	ipid.Version, ipid.TransactionalID, ipid.TransactionTimeoutMillis = 4, &id, 60_000
	// The coordinator's partition was just created: it may still be
	// loading (COORDINATOR_LOAD_IN_PROGRESS, which clients retry).
	var ip *kmsg.InitProducerIDResponse
	for deadline := time.Now().Add(10 * time.Second); ; {
		ip = roundTrip[*kmsg.InitProducerIDResponse](t, s, ipid)
		if ip.ErrorCode != kerr.CoordinatorLoadInProgress.Code || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ip.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ip.ErrorCode))
	}
	pid, epoch := ip.ProducerID, ip.ProducerEpoch

	if code := rawProduce(t, s, &id, "v", 0, txnBatch(t, pid, epoch, 0, true)); code != kerr.InvalidTxnState.Code {
		t.Fatalf("produce to a partition not in the transaction: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	add := func(p int32, e int16) int16 {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = 3, id, pid, e
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = "v", []int32{p}
		req.Topics = append(req.Topics, rt)
		return roundTrip[*kmsg.AddPartitionsToTxnResponse](t, s, req).Topics[0].Partitions[0].ErrorCode
	}
	if code := add(0, epoch); code != 0 {
		t.Fatalf("AddPartitionsToTxn: %v", kerr.ErrorForCode(code))
	}
	if code := rawProduce(t, s, &id, "v", 0, txnBatch(t, pid, epoch, 0, true)); code != 0 {
		t.Fatalf("produce to an added partition: %v", kerr.ErrorForCode(code))
	}
	if code := rawProduce(t, s, &id, "v", 1, txnBatch(t, pid, epoch, 0, true)); code != kerr.InvalidTxnState.Code {
		t.Fatalf("produce to the other partition: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if code := add(1, epoch+5); code != kerr.ProducerFenced.Code {
		t.Fatalf("AddPartitionsToTxn with a wrong epoch: %v, want PRODUCER_FENCED", kerr.ErrorForCode(code))
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.Version, end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = 3, id, pid, epoch, true
	if code := roundTrip[*kmsg.EndTxnResponse](t, s, end).ErrorCode; code != 0 {
		t.Fatalf("EndTxn: %v", kerr.ErrorForCode(code))
	}
	waitTxnState(ctx, t, cl, id, "CompleteCommit")
	// The transaction is over: a late produce of the same epoch cannot
	// open a new one that nobody would end.
	if code := rawProduce(t, s, &id, "v", 0, txnBatch(t, pid, epoch, 1, true)); code != kerr.InvalidTxnState.Code {
		t.Fatalf("late produce after the commit: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if lso, hw := listOffset(ctx, t, cl, "v", 0, 1), listOffset(ctx, t, cl, "v", 0, 0); lso != hw {
		t.Fatalf("a refused produce left the partition unstable: lso %d hw %d", lso, hw)
	}
	// A new epoch fences the old one at the partition too.
	ip = roundTrip[*kmsg.InitProducerIDResponse](t, s, ipid)
	if ip.ErrorCode != 0 || ip.ProducerEpoch != epoch+1 {
		t.Fatalf("InitProducerId again: %+v", ip)
	}
	if code := add(0, ip.ProducerEpoch); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	if code := rawProduce(t, s, &id, "v", 0, txnBatch(t, pid, ip.ProducerEpoch, 0, true)); code != 0 {
		t.Fatalf("produce at the new epoch: %v", kerr.ErrorForCode(code))
	}
	if code := rawProduce(t, s, &id, "v", 0, txnBatch(t, pid, epoch, 2, true)); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("produce at the fenced epoch: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}
}
