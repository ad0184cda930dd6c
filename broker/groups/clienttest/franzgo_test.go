package clienttest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConsumer is one member of a consumer group that commits what it
// processed before it lets a rebalance happen, so no record is processed
// twice and none is skipped.
type groupConsumer struct {
	name string
	cl   *kgo.Client
	stop context.CancelFunc
	done chan struct{}
}

type tally struct {
	mu     sync.Mutex
	seen   map[string]int
	byName map[string]int
	errs   []error
}

func (tl *tally) count() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.seen)
}

func (tl *tally) consumedBy(name string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.byName[name]
}

func startConsumer(t *testing.T, addr, group, topic, name string, tl *tally) *groupConsumer {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(3*time.Second),
		kgo.HeartbeatInterval(100*time.Millisecond),
		kgo.RebalanceTimeout(5*time.Second),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gc := &groupConsumer{name: name, cl: cl, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(gc.done)
		for ctx.Err() == nil {
			fetches := cl.PollRecords(ctx, 200)
			recs := fetches.Records()
			tl.mu.Lock()
			for _, r := range recs {
				tl.seen[string(r.Value)]++
				tl.byName[name]++
			}
			tl.mu.Unlock()
			if len(recs) > 0 {
				if err := cl.CommitRecords(context.Background(), recs...); err != nil {
					tl.mu.Lock()
					tl.errs = append(tl.errs, fmt.Errorf("%s commit: %w", name, err))
					tl.mu.Unlock()
				}
			}
			cl.AllowRebalance()
		}
	}()
	return gc
}

// close stops polling, then leaves the group (LeaveGroup) and closes.
func (gc *groupConsumer) close() {
	gc.stop()
	<-gc.done
	gc.cl.AllowRebalance()
	gc.cl.Close()
}

// TestFranzGoGroupRebalancesWithoutLossOrDuplicates: three franz-go
// consumers join and leave one group while records flow; every record is
// processed exactly once, and each rebalance spreads the partitions over the
// members present.
func TestFranzGoGroupRebalancesWithoutLossOrDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, _ := startBroker(t, t.TempDir())
	adm := newAdmin(t, addr)
	const topic, group = "orders", "workers"
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	tl := &tally{seen: map[string]int{}, byName: map[string]int{}}

	produce(t, ctx, addr, topic, 0, 300)
	a := startConsumer(t, addr, group, topic, "a", tl)
	waitUntil(t, "a to consume the first 300 records", 20*time.Second, func() bool { return tl.count() == 300 })

	b := startConsumer(t, addr, group, topic, "b", tl)
	c := startConsumer(t, addr, group, topic, "c", tl)
	waitUntil(t, "three stable members", 20*time.Second, func() bool {
		d := describeGroup(t, ctx, adm, group)
		return d.State == "Stable" && len(d.Members) == 3
	})
	produce(t, ctx, addr, topic, 300, 900)
	waitUntil(t, "900 records", 20*time.Second, func() bool { return tl.count() == 900 })
	for _, name := range []string{"b", "c"} {
		if tl.consumedBy(name) == 0 {
			t.Fatalf("member %s got no partition after joining", name)
		}
	}

	a.close()
	waitUntil(t, "two stable members after a left", 20*time.Second, func() bool {
		d := describeGroup(t, ctx, adm, group)
		return d.State == "Stable" && len(d.Members) == 2
	})
	produce(t, ctx, addr, topic, 900, 1200)
	waitUntil(t, "1200 records", 20*time.Second, func() bool { return tl.count() == 1200 })
	b.close()
	c.close()

	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, err := range tl.errs {
		t.Error(err)
	}
	for i := range 1200 {
		if n := tl.seen[strconv.Itoa(i)]; n != 1 {
			t.Errorf("record %d processed %d times, want once", i, n)
		}
	}

	// The committed offsets cover the whole topic.
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		o, ok := offsets.Lookup(topic, e.Partition)
		if !ok || o.At != e.Offset {
			t.Errorf("partition %d committed %v, want the end offset %d", e.Partition, o.At, e.Offset)
		}
	})
}

// TestCommittedOffsetsSurviveBrokerRestart: offsets committed through a
// client are served again after the broker restarts on the same data.
func TestCommittedOffsetsSurviveBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	addr, stop := startBroker(t, dir)
	adm := newAdmin(t, addr)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "t"); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	produce(t, ctx, addr, "t", 0, 30)
	commits := kadm.Offsets{}
	for p := range int32(3) {
		commits.Add(kadm.Offset{Topic: "t", Partition: p, At: int64(p + 5), LeaderEpoch: -1, Metadata: "m" + strconv.Itoa(int(p))})
	}
	resp, err := adm.CommitOffsets(ctx, "manual", commits)
	if err != nil || resp.Error() != nil {
		t.Fatalf("CommitOffsets: %v %v", err, resp.Error())
	}
	stop()

	addr2, _ := startBroker(t, dir)
	adm2 := newAdmin(t, addr2)
	fetched, err := adm2.FetchOffsets(ctx, "manual")
	if err != nil || fetched.Error() != nil {
		t.Fatalf("FetchOffsets after restart: %v %v", err, fetched.Error())
	}
	for p := range int32(3) {
		o, ok := fetched.Lookup("t", p)
		if !ok || o.At != int64(p+5) || o.Metadata != "m"+strconv.Itoa(int(p)) {
			t.Errorf("t/%d after restart = %+v, want offset %d", p, o, p+5)
		}
	}
	groups, err := adm2.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if _, ok := groups["manual"]; !ok {
		t.Errorf("group lost after restart: %v", groups.Groups())
	}
}
