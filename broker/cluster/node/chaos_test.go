package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// liveBrokers guards a brokers value shared by clients and the nemesis.
type liveBrokers struct {
	mu sync.Mutex
	b  *brokers
}

// leader finds the node leading a partition and its log.
func (l *liveBrokers) leader(topic string, partition int32) (*Node, *storage.Partition, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, n := range l.b.nodes {
		if _, ok := n.LeaderEpoch(topic, partition); ok {
			p, ok := l.b.stores[id].Partition(topic, partition)
			return n, p, ok
		}
	}
	return nil, nil, false
}

func valueBatch(t *testing.T, v int64) []byte {
	t.Helper()
	recs := recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Value: []byte(strconv.FormatInt(v, 10))})
	out, err := recordbatch.Encode(recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 1}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (l *liveBrokers) send(t *testing.T, rec *chaos.Recorder, process int, topic string, partition int32, v int64) {
	key := fmt.Sprintf("%s-%d", topic, partition)
	rec.Add(chaos.Event{Process: process, Status: chaos.Invoke, Func: chaos.Send, Key: key, Value: v})
	done := chaos.Event{Process: process, Func: chaos.Send, Key: key, Value: v}
	n, p, ok := l.leader(topic, partition)
	if !ok {
		done.Status, done.Error = chaos.Fail, "no leader"
		rec.Add(done)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	appended := false
	res, err := n.Produce(ctx, topic, partition, -1, func(epoch int32) (storage.AppendResult, error) {
		appended = true
		return p.Append(ctx, valueBatch(t, v), storage.AppendOptions{LeaderEpoch: epoch})
	})
	switch {
	case err == nil:
		done.Status, done.Offset = chaos.OK, res.BaseOffset
	case !appended:
		done.Status, done.Error = chaos.Fail, err.Error() // refused before writing anything
	default:
		done.Status, done.Error = chaos.Info, err.Error()
	}
	rec.Add(done)
}

// poll reads a partition from its leader up to the high watermark,
// starting at next; it returns the next offset to read.
func (l *liveBrokers) poll(rec *chaos.Recorder, process int, topic string, partition int32, next int64, final bool) (int64, error) {
	key := fmt.Sprintf("%s-%d", topic, partition)
	_, p, ok := l.leader(topic, partition)
	if !ok {
		return next, errors.New("no leader")
	}
	hw := p.HighWatermark()
	if next >= hw {
		return next, nil
	}
	data, err := p.Read(next, 1<<20, hw)
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		rec.Add(chaos.Event{Process: process, Func: chaos.Seek, Key: key})
		return 0, err
	}
	if err != nil {
		return next, err
	}
	var reads []chaos.Read
	for len(data) >= recordbatch.HeaderSize {
		h, err := recordbatch.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			break
		}
		err = recordbatch.ForEachRecord(data[recordbatch.HeaderSize:h.Size()], func(r *recordbatch.Record) error {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off < next || off >= hw {
				return nil
			}
			v, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				v = -1
			}
			reads = append(reads, chaos.Read{Key: key, Offset: off, Value: v})
			return nil
		})
		if err != nil {
			return next, err
		}
		data = data[h.Size():]
	}
	if len(reads) > 0 {
		rec.Add(chaos.Event{Process: process, Status: chaos.Invoke, Func: chaos.Poll})
		rec.Add(chaos.Event{Process: process, Status: chaos.OK, Func: chaos.Poll, Reads: reads, Final: final})
		next = reads[len(reads)-1].Offset + 1
	}
	return next, nil
}

// TestNoAcknowledgedWriteLostUnderBrokerFaults runs the chaos checker over
// three in-process brokers on real storage: acks=all producers and a
// consumer run while brokers crash (no controlled shutdown) or shut down
// cleanly and come back. Crashes here close files cleanly; kill -9 of
// broker processes is broker/chaos's test.
func TestNoAcknowledgedWriteLostUnderBrokerFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("three in-process brokers under faults")
	}
	const topic, partitions = "chaos", 3
	b := newBrokers(t, 3)
	live := &liveBrokers{b: b}
	for _, n := range b.nodes {
		if _, err := n.Metadata.CreateTopic(context.Background(), topic, partitions, 3, nil); err != nil {
			t.Fatal(err)
		}
		break
	}
	rec := chaos.NewRecorder()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for process := 1; process <= 2; process++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := int64(0); ctx.Err() == nil; n++ {
				live.send(t, rec, process, topic, int32(n%partitions), int64(process)*1_000_000_000+n)
				if n%16 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := map[int32]int64{}
		for p := range int32(partitions) {
			rec.Add(chaos.Event{Process: 100, Func: chaos.Seek, Key: fmt.Sprintf("%s-%d", topic, p)})
		}
		for ctx.Err() == nil {
			for p := range int32(partitions) {
				next[p], _ = live.poll(rec, 100, topic, p, next[p], false)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// The nemesis: crash or cleanly stop one broker at a time, then
	// restart it.
	rnd := rand.New(rand.NewPCG(1, 2))
	faults := 0
	for range 5 {
		time.Sleep(700 * time.Millisecond)
		live.mu.Lock()
		id := int32(1 + rnd.IntN(3))
		kind := "crash"
		if rnd.IntN(2) == 0 {
			kind = "controlled shutdown"
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = b.nodes[id].Shutdown(sctx)
			cancel()
			b.stores[id].Close()
			delete(b.nodes, id)
		} else {
			b.crash(id)
		}
		live.mu.Unlock()
		rec.Add(chaos.Event{Process: -1, Func: chaos.Fault, Status: chaos.Info, Error: fmt.Sprintf("%s of broker %d", kind, id)})
		faults++
		time.Sleep(600 * time.Millisecond)
		live.mu.Lock()
		b.restart(id)
		live.mu.Unlock()
		rec.Add(chaos.Event{Process: -1, Func: chaos.Fault, Status: chaos.Info, Error: fmt.Sprintf("restarted broker %d", id)})
	}
	// Heal: every partition fully in sync before the clients stop.
	checkFor(t, 20*time.Second, func() error {
		live.mu.Lock()
		defer live.mu.Unlock()
		st := b.nodes[1].Controller.State()
		for p := range int32(partitions) {
			if part, _ := st.Partition(topic, p); len(part.ISR) != 3 || part.Leader < 0 {
				return fmt.Errorf("partition %d: %+v", p, part)
			}
		}
		return nil
	})
	stop()
	wg.Wait()

	// Drain: read every partition from its start on the current leader.
	for p := range int32(partitions) {
		rec.Add(chaos.Event{Process: 999, Func: chaos.Seek, Key: fmt.Sprintf("%s-%d", topic, p)})
		var next int64
		checkFor(t, 10*time.Second, func() error {
			_, lp, ok := live.leader(topic, p)
			if !ok {
				return errors.New("no leader")
			}
			end := lp.LogEndOffset()
			for next < end {
				n, err := live.poll(rec, 999, topic, p, next, true)
				if err != nil {
					return err
				}
				if n == next {
					return fmt.Errorf("partition %d: high watermark below the log end %d", p, end)
				}
				next = n
			}
			return nil
		})
	}

	events := rec.Events()
	res := chaos.Check(events, chaos.Options{RequireAllSeen: true})
	t.Logf("%d faults\n%s", faults, res.Report(events, 30))
	if !res.Valid {
		t.Fatalf("anomalies under broker faults:\n%s", res.Report(events, 50))
	}
	if res.Stats.Acknowledged < 50 {
		t.Fatalf("only %d acknowledged sends", res.Stats.Acknowledged)
	}
}
