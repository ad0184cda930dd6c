package node

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// BenchmarkAcksAllReplicated measures the replication path alone: three
// in-process brokers on real storage (group-commit fsync) and loopback
// replication, 16 partitions, batches of 16 records of 1 KiB produced with
// acks=all by 16 concurrent producers. No client protocol is involved, so
// this is the cost the cluster adds on top of the server. Run with
//
//	go test -run '^$' -bench AcksAllReplicated -benchtime 5s ./broker/cluster/node/
func BenchmarkAcksAllReplicated(b *testing.B) {
	const partitions, producers, perBatch = 16, 16, 16
	br := newBrokers(b, 3)
	for _, n := range br.nodes {
		if _, err := n.Metadata.CreateTopic(context.Background(), "bench", partitions, 3, nil); err != nil {
			b.Fatal(err)
		}
		break
	}
	var recs []byte
	value := make([]byte, 1024)
	for i := range perBatch {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), Value: value})
	}
	proto, err := recordbatch.Encode(recordbatch.Header{LastOffsetDelta: perBatch - 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: perBatch}, recs)
	if err != nil {
		b.Fatal(err)
	}
	live := &liveBrokers{b: br}
	// Wait for every partition to have a leader with a full ISR.
	deadline := time.Now().Add(20 * time.Second)
	for p := int32(0); p < partitions; {
		if n, _, ok := live.leader("bench", p); ok && len(n.Controller.State().Topics["bench"].Partition(p).ISR) == 3 {
			p++
			continue
		}
		if time.Now().After(deadline) {
			b.Fatalf("partition %d not ready", p)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var mu sync.Mutex
	var lat []time.Duration
	var next sync.Mutex
	i := 0
	b.SetBytes(int64(len(proto)))
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				next.Lock()
				if i >= b.N {
					next.Unlock()
					break
				}
				i++
				next.Unlock()
				p := int32(w % partitions)
				n, part, ok := live.leader("bench", p)
				if !ok {
					b.Error("no leader")
					return
				}
				start := time.Now()
				_, err := n.Produce(context.Background(), "bench", p, -1, func(epoch int32) (storage.AppendResult, error) {
					return part.Append(context.Background(), slices.Clone(proto), storage.AppendOptions{LeaderEpoch: epoch})
				})
				if err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
