package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// failPartitionSyncs makes the fsyncs of one partition's segment files on
// a broker fail with EIO, as a failing disk's do, after delay (so that
// followers woken at the write can fetch it first); other files sync.
func failPartitionSyncs(s *Server, topic string, partition int32, delay time.Duration) {
	dir := fmt.Sprintf("%s-%d", topic, partition)
	s.store.SetSyncFault(func(f *os.File) error {
		if filepath.Base(filepath.Dir(f.Name())) != dir {
			return f.Sync()
		}
		time.Sleep(delay)
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
	})
}

// TestLeaderLogFailureMovesLeadership: the leader's fsyncs of a partition
// fail while an acks=all producer writes to it. The leader must not hand
// the offsets of the records it cut (which its followers, woken at the
// write, copied) to other records at the same leader epoch: it reports its
// failed log, the controller elects another ISR member at a new epoch and
// takes the broker out of the ISR, and the producer goes on there. Once
// the disk works again the broker catches up and rejoins the ISR without
// a restart. Every acknowledged record is then in the log once, and the
// three replicas hold the same bytes.
func TestLeaderLogFailureMovesLeadership(t *testing.T) {
	c := startInProcessCluster(t)
	const topic = "logfail"
	c.createReplicated(topic, 1)
	old, oldEpoch := c.leader(topic, 0)

	var seeds []string
	for _, s := range c.servers {
		seeds = append(seeds, s.Addr().String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(30*time.Second), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var mu sync.Mutex
	acked := map[string]bool{}
	failed := 0
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			var recs []*kgo.Record
			for j := range 5 {
				recs = append(recs, kgo.StringRecord(fmt.Sprintf("r-%d-%d", i, j)))
			}
			res := cl.ProduceSync(context.Background(), recs...)
			mu.Lock()
			for _, r := range res {
				if r.Err == nil {
					acked[string(r.Record.Value)] = true
				} else {
					failed++
				}
			}
			mu.Unlock()
		}
	}()
	defer func() {
		stop()
		<-done
	}()
	waitCluster(t, 20*time.Second, func() error {
		if n := ackedCount(); n < 200 {
			return fmt.Errorf("%d records acknowledged before the fault, want 200", n)
		}
		return nil
	})

	faulted := time.Now()
	failPartitionSyncs(c.servers[old], topic, 0, 20*time.Millisecond)
	t.Logf("broker %d, leader at epoch %d, fails its fsyncs of %s-0 after %d acknowledged records", old, oldEpoch, topic, ackedCount())
	var moved *partition
	waitCluster(t, 20*time.Second, func() error {
		for id, s := range c.servers {
			p, ok := s.lookupPartition(topic, 0)
			if !ok || p.leader == old || p.leader < 0 || p.leaderEpoch <= oldEpoch || slices.Contains(p.isr, old) {
				return fmt.Errorf("broker %d sees %s-0 led by %d at epoch %d, ISR %v; want another leader at a newer epoch, broker %d out of the ISR", id, topic, p.leader, p.leaderEpoch, p.isr, old)
			}
			moved = p
		}
		return nil
	})
	t.Logf("%v after the fault every broker sees broker %d leading at epoch %d, ISR %v", time.Since(faulted).Round(time.Millisecond), moved.leader, moved.leaderEpoch, moved.isr)
	afterMove := ackedCount()
	waitCluster(t, 20*time.Second, func() error {
		if n := ackedCount(); n < afterMove+200 {
			return fmt.Errorf("%d records acknowledged, want %d (200 after the leadership moved)", n, afterMove+200)
		}
		return nil
	})

	c.servers[old].store.SetSyncFault(nil) // the disk works again
	healed := time.Now()
	waitCluster(t, 30*time.Second, func() error {
		p, _ := c.servers[old].lookupPartition(topic, 0)
		if len(p.isr) != 3 {
			return fmt.Errorf("broker %d has not rejoined the ISR: %v", old, p.isr)
		}
		return nil
	})
	t.Logf("broker %d back in the ISR %v after its fsyncs work again", old, time.Since(healed).Round(time.Millisecond))
	stop()
	<-done

	// Every acknowledged record once, read by a consumer.
	leader, _ := c.leader(topic, 0)
	hw := c.servers[leader].store
	lp, _ := hw.Partition(topic, 0)
	end := lp.HighWatermark()
	seen := consumeValues(t, seeds, topic, end)
	mu.Lock()
	var lost, twice []string
	for v := range acked {
		switch seen[v] {
		case 0:
			lost = append(lost, v)
		case 1:
		default:
			twice = append(twice, v)
		}
	}
	t.Logf("%d records acknowledged, %d failed, %d in the log (high watermark %d)", len(acked), failed, len(seen), end)
	mu.Unlock()
	if len(lost) > 0 || len(twice) > 0 {
		t.Fatalf("acknowledged records lost: %d %v; written twice: %d %v", len(lost), head(lost), len(twice), head(twice))
	}

	// No divergence: the replicas hold the same batches up to the high
	// watermark, the old leader's cut included.
	want, err := lp.Read(0, 64<<20, end)
	if err != nil {
		t.Fatal(err)
	}
	waitCluster(t, 20*time.Second, func() error {
		for id, s := range c.servers {
			p, _ := s.store.Partition(topic, 0)
			if p.LogEndOffset() < end {
				return fmt.Errorf("broker %d's log ends at %d, before the high watermark %d", id, p.LogEndOffset(), end)
			}
			got, err := p.Read(0, 64<<20, end)
			if err != nil {
				return fmt.Errorf("broker %d: %w", id, err)
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("broker %d's log below offset %d differs from the leader's (%d and %d bytes)", id, end, len(got), len(want))
			}
		}
		return nil
	})
}

// consumeValues reads partition 0 of topic from the start up to end and
// counts each record value it holds.
func consumeValues(t *testing.T, seeds []string, topic string, end int64) map[string]int {
	t.Helper()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]int{}
	var next int64
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for next < end {
		fs := consumer.PollFetches(cctx)
		if cctx.Err() != nil {
			t.Fatalf("consumed up to offset %d of %d: %v", next, end, cctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			next = r.Offset + 1
		})
	}
	return seen
}

func head(s []string) []string {
	slices.Sort(s)
	return s[:min(len(s), 5)]
}

// TestSingleReplicaLogFailureRefusesUntilDiskWorks: a partition with one
// replica has nobody to hand the leadership to and nobody who read past
// its durable end: while its fsyncs fail it refuses produce with
// KAFKA_STORAGE_ERROR, and once the disk works it takes writes again at
// the same leader epoch, on the offsets after the last acknowledged one.
func TestSingleReplicaLogFailureRefusesUntilDiskWorks(t *testing.T) {
	s := startServer(t)
	const topic = "alone"
	if resp := roundTrip[*kmsg.CreateTopicsResponse](t, s, createTopicsReq(topic)); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("creating %s: %v", topic, kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	produce := func(tag string) (int16, int64) {
		t.Helper()
		resp := roundTrip[*kmsg.ProduceResponse](t, s, produceReq(topic, -1, batch(-1, -1, -1, 2, 10)))
		p := resp.Topics[0].Partitions[0]
		return p.ErrorCode, p.BaseOffset
	}
	for i := range 3 {
		if code, base := produce("before"); code != 0 || base != int64(2*i) {
			t.Fatalf("produce before the fault: %v at %d", kerr.ErrorForCode(code), base)
		}
	}
	before, _ := s.lookupPartition(topic, 0)
	failPartitionSyncs(s, topic, 0, 0)
	for range 3 {
		if code, _ := produce("failing"); code != kerr.KafkaStorageError.Code {
			t.Fatalf("produce while fsync fails: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
		}
	}
	s.store.SetSyncFault(nil)
	if code, base := produce("after"); code != 0 || base != 6 {
		t.Fatalf("produce once the disk works: %v at %d, want offset 6", kerr.ErrorForCode(code), base)
	}
	after, _ := s.lookupPartition(topic, 0)
	if after.leaderEpoch != before.leaderEpoch || after.leader != before.leader {
		t.Fatalf("leader %d epoch %d after the failure, was %d epoch %d: a single replica leads on", after.leader, after.leaderEpoch, before.leader, before.leaderEpoch)
	}
	p, _ := s.store.Partition(topic, 0)
	if p.HighWatermark() != 8 {
		t.Fatalf("high watermark %d, want 8", p.HighWatermark())
	}
}
