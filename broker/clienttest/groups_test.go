package clienttest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupMember is one consumer of a group that commits what it processed
// before every rebalance, so after commits nothing is processed twice.
type groupMember struct {
	name string
	cl   *kgo.Client
	stop context.CancelFunc
	done chan struct{}
}

type tally struct {
	mu   sync.Mutex
	seen map[string][]string // value -> members that processed it
}

func (ta *tally) add(member, value string) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.seen[value] = append(ta.seen[value], member)
}

func (ta *tally) count() int {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return len(ta.seen)
}

func startMember(t *testing.T, addr, group, topic, name string, ta *tally) *groupMember {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Processing and committing happen between polls, and a
		// rebalance waits for AllowRebalance: a partition moves only
		// after what was processed from it is committed.
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(300*time.Millisecond),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.ClientID(name),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{name: name, cl: cl, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollRecords(ctx, 50)
			fs.EachRecord(func(r *kgo.Record) { ta.add(name, string(r.Value)) })
			if err := cl.CommitUncommittedOffsets(context.Background()); err != nil && ctx.Err() == nil {
				t.Errorf("%s: commit: %v", name, err)
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m.leave)
	return m
}

// leave stops polling and leaves the group (idempotent).
func (m *groupMember) leave() {
	m.stop()
	<-m.done
	m.cl.Close() // commits nothing more (autocommit is off) and leaves the group
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerGroupRebalances runs a group of up to three franz-go members
// that join and leave while consuming; with commits before every
// rebalance, every record is processed exactly once.
func TestConsumerGroupRebalances(t *testing.T) {
	b := startBroker(t)
	const topic, group, n = "grp", "grp-group", 3000
	b.createTopic(t, topic, 6, nil)
	prod := b.client(t, kgo.DefaultProduceTopic(topic))
	produceBatch := func(from, to int) {
		recs := make([]*kgo.Record, 0, to-from)
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("g-%d", i))})
		}
		if err := prod.ProduceSync(testContext(t, 30*time.Second), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ta := &tally{seen: map[string][]string{}}

	produceBatch(0, 1000)
	m1 := startMember(t, b.addr, group, topic, "m1", ta)
	waitFor(t, "m1 to consume", 30*time.Second, func() bool { return ta.count() >= 300 })
	m2 := startMember(t, b.addr, group, topic, "m2", ta)
	produceBatch(1000, 2000)
	m3 := startMember(t, b.addr, group, topic, "m3", ta)
	waitFor(t, "the first 2000", 30*time.Second, func() bool { return ta.count() >= 2000 })
	m1.leave()
	produceBatch(2000, n)
	waitFor(t, "every record", 30*time.Second, func() bool { return ta.count() >= n })
	m2.leave()
	m3.leave()

	ta.mu.Lock()
	defer ta.mu.Unlock()
	for i := range n {
		v := fmt.Sprintf("g-%d", i)
		if got := ta.seen[v]; len(got) != 1 {
			t.Fatalf("%s processed by %v, want exactly one member", v, got)
		}
	}
	members := map[string]int{}
	for _, ms := range ta.seen {
		members[ms[0]]++
	}
	if len(members) < 2 {
		t.Fatalf("work was not shared: %v", members)
	}
	assertCommitted(t, b, group, topic, n)
	t.Logf("records per member: %v", members)
}

// TestCommittedOffsetsSurviveRestart commits offsets, restarts the broker
// and reads them back.
func TestCommittedOffsetsSurviveRestart(t *testing.T) {
	b := startBroker(t)
	b.createTopic(t, "offs", 3, nil)
	produceSync(t, b.client(t, kgo.DefaultProduceTopic("offs")), "offs", 90, "o")
	ta := &tally{seen: map[string][]string{}}
	m := startMember(t, b.addr, "offs-group", "offs", "m", ta)
	waitFor(t, "consumption", 30*time.Second, func() bool { return ta.count() >= 90 })
	m.leave()
	assertCommitted(t, b, "offs-group", "offs", 90)
	b.restart()
	assertCommitted(t, b, "offs-group", "offs", 90)
	// A new member continues where the group left off: nothing again.
	produceSync(t, b.client(t, kgo.DefaultProduceTopic("offs")), "offs", 30, "after")
	ta2 := &tally{seen: map[string][]string{}}
	m2 := startMember(t, b.addr, "offs-group", "offs", "m2", ta2)
	waitFor(t, "new records", 30*time.Second, func() bool { return ta2.count() >= 30 })
	m2.leave()
	for v := range ta2.seen {
		if len(v) < 6 || v[:6] != "after-" {
			t.Fatalf("record %s delivered again after restart", v)
		}
	}
}
