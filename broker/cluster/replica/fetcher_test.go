package replica

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

var tp0 = TopicPartition{"orders", 0}

func checkFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leaderOf makes broker 1 lead tp0 at epoch with followers 2 and 3 in the ISR.
func leaderOf(t *testing.T, fl *fakeLeader, log *memLog, epoch int32) *leaderPart {
	t.Helper()
	tr, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 2, SetHighWatermark: log.SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: epoch, ISR: []int32{1, 2}}, log.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lp := &leaderPart{log: log, tracker: tr}
	fl.set(tp0, lp)
	return lp
}

func startFetcher(t *testing.T, fl *fakeLeader) *Fetcher {
	t.Helper()
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 50 * time.Millisecond, Backoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	return f
}

func sameLog(follower, leader *memLog) func() error {
	return func() error {
		if f, l := follower.contents(), leader.contents(); f != l {
			return fmt.Errorf("follower %s\nleader   %s", f, l)
		}
		return nil
	}
}

func TestFollowerCatchesUpAndHighWatermarkFollows(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	for i := range 5 {
		leader.appendLeader(t, 0, 3, fmt.Sprint("a", i))
	}
	lp := leaderOf(t, fl, leader, 0)
	follower := &memLog{}
	f := startFetcher(t, fl)
	f.Add(tp0, 0, follower)
	checkFor(t, 5*time.Second, sameLog(follower, leader))

	// The leader's HW moves once the follower has fetched past the data,
	// and the follower learns it on its next fetch.
	checkFor(t, 5*time.Second, func() error {
		if hw := lp.tracker.HighWatermark(); hw != 15 {
			return fmt.Errorf("leader hw %d", hw)
		}
		if hw := follower.HighWatermark(); hw != 15 {
			return fmt.Errorf("follower hw %d", hw)
		}
		return nil
	})
	// New data is replicated as it arrives (long poll).
	leader.appendLeader(t, 0, 2, "b")
	lp.tracker.Appended(leader.LogEndOffset())
	checkFor(t, 5*time.Second, sameLog(follower, leader))
	if f.Len() != 1 {
		t.Fatalf("fetcher follows %d partitions", f.Len())
	}
	f.Remove(tp0)
	if f.Len() != 0 {
		t.Fatal("Remove kept the partition")
	}
}

func TestFollowerTruncatesDivergedSuffix(t *testing.T) {
	// Broker 2 led epoch 1 and wrote 10-19 that nobody replicated; broker 1
	// was elected at epoch 2 and wrote 10-14. Broker 2 must end up with
	// broker 1's log exactly (KIP-101).
	fl := newFakeLeader(t)
	leader, follower := &memLog{}, &memLog{}
	for _, l := range []*memLog{leader, follower} {
		l.appendLeader(t, 0, 10, "common")
	}
	follower.appendLeader(t, 1, 10, "lost")
	leader.appendLeader(t, 2, 5, "new")
	leaderOf(t, fl, leader, 2)
	f := startFetcher(t, fl)
	f.Add(tp0, 2, follower)
	checkFor(t, 5*time.Second, sameLog(follower, leader))
}

func TestFollowerTruncatesOnDivergingEpoch(t *testing.T) {
	fl := newFakeLeader(t)
	leader, follower := &memLog{}, &memLog{}
	for _, l := range []*memLog{leader, follower} {
		l.appendLeader(t, 0, 4, "common")
	}
	follower.appendLeader(t, 1, 3, "lost")
	leader.appendLeader(t, 2, 2, "new")
	leaderOf(t, fl, leader, 2)
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), Logger: slog.New(slog.DiscardHandler)})
	defer f.Close()
	// A Fetch answered with DivergingEpoch (the path taken when the
	// divergence check was skipped or raced a leader change).
	p := &fetchPartition{log: follower, leaderEpoch: 2}
	f.mu.Lock()
	f.parts[tp0] = p
	f.mu.Unlock()
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = 0, 4
	if _, err := f.handlePartition(tp0, p, follower.LogEndOffset(), &rp); err != nil {
		t.Fatal(err)
	}
	if leo := follower.LogEndOffset(); leo != 4 {
		t.Fatalf("follower truncated to %d, want 4", leo)
	}
}

// TestRemovedPartitionKeepsItsLog: answers of the old leader that arrive
// after the partition was removed from the fetcher (the manager removes
// it before it makes the replica lead) change nothing in its log: not a
// divergence (from OffsetForLeaderEpoch or a fetch), not a batch cut back,
// not the leader's log start, not records, not a high watermark. The
// replica may lead the partition by then, counting every record of its
// log and serving them; a truncation there let its high watermark pass
// offsets it then appended anew.
func TestRemovedPartitionKeepsItsLog(t *testing.T) {
	fl := newFakeLeader(t)
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), Logger: slog.New(slog.DiscardHandler)})
	defer f.Close()
	newer := &memLog{}
	newer.appendLeader(t, 0, 10, "common")
	newer.appendLeader(t, 2, 2, "more")
	more, err := newer.Read(10, 1<<20, newer.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	answers := []struct {
		name  string
		apply func(p *fetchPartition) error
	}{
		{"divergence check", func(p *fetchPartition) error { return f.truncateDiverged(tp0, p, 0, 4) }},
		{"diverging epoch", func(p *fetchPartition) error {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = 0, 4
			_, err := f.handlePartition(tp0, p, 10, &rp)
			return err
		}},
		{"log start past ours", func(p *fetchPartition) error {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.ErrorCode, rp.LogStartOffset = kerr.OffsetOutOfRange.Code, 50
			_, err := f.handlePartition(tp0, p, 10, &rp)
			return err
		}},
		{"records and high watermark", func(p *fetchPartition) error {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.HighWatermark, rp.RecordBatches = 12, more
			done, err := f.handlePartition(tp0, p, 10, &rp)
			if err == nil && done != nil {
				err = done()
			}
			return err
		}},
	}
	for _, a := range answers {
		t.Run(a.name, func(t *testing.T) {
			log := &memLog{}
			log.appendLeader(t, 0, 10, "common")
			log.SetHighWatermark(7)
			f.Add(tp0, 3, log)
			p, _ := f.part(tp0)
			f.Remove(tp0)
			before := log.contents()
			if err := a.apply(p); err != nil {
				t.Fatal(err)
			}
			if got := log.contents(); got != before {
				t.Fatalf("the removed partition's log changed:\n%s\nwas\n%s", got, before)
			}
			if hw := log.HighWatermark(); hw != 7 {
				t.Fatalf("the removed partition's high watermark moved to %d", hw)
			}
		})
	}
}

func TestFencedFollowerWaitsForNewEpoch(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	leader.appendLeader(t, 3, 4, "x")
	leaderOf(t, fl, leader, 3)
	follower := &memLog{}
	f := startFetcher(t, fl)
	f.Add(tp0, 2, follower) // stale metadata: epoch 2
	time.Sleep(100 * time.Millisecond)
	if follower.LogEndOffset() != 0 {
		t.Fatal("fetched from a leader at another epoch")
	}
	f.Add(tp0, 3, follower) // metadata caught up
	checkFor(t, 5*time.Second, sameLog(follower, leader))
}

func TestFollowerStartsOverWhenLeaderLogStartPassesIt(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	if err := leader.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	leader.appendLeader(t, 5, 3, "late")
	leaderOf(t, fl, leader, 5)
	follower := &memLog{}
	f := startFetcher(t, fl)
	f.Add(tp0, 5, follower)
	checkFor(t, 5*time.Second, sameLog(follower, leader))
}

func TestTrimToOffset(t *testing.T) {
	l := &memLog{}
	l.appendLeader(t, 0, 3, "a") // 0-2
	l.appendLeader(t, 0, 3, "b") // 3-5
	all, err := l.Read(0, 1<<20, 6)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       []byte
		offset   int64
		want     int // bytes kept
		straddle int64
	}{
		{"all from 0", all, 0, len(all), -1},
		{"drop first", all, 3, len(all) / 2, -1},
		{"nothing new", all, 6, 0, -1},
		{"straddles", all, 4, 0, 3},
		{"partial tail dropped", all[:len(all)-1], 0, len(all) / 2, -1},
		{"short tail dropped", all[:len(all)/2+20], 0, len(all) / 2, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, straddle, err := trimToOffset(tt.in, tt.offset)
			if err != nil || len(got) != tt.want || straddle != tt.straddle {
				t.Fatalf("got %d bytes straddle %d err %v; want %d, %d", len(got), straddle, err, tt.want, tt.straddle)
			}
		})
	}
	if _, _, err := trimToOffset(append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 60)...), 0); err == nil {
		t.Fatal("a corrupt batch length was accepted")
	}
}

// A partition added while the fetcher's request is parked at the leader
// (nothing new to fetch) is fetched at once, not after the parked fetch
// times out: the partition is typically one whose leadership just moved,
// and its acks=all producers wait for this follower.
func TestAddCutsAParkedFetchShort(t *testing.T) {
	fl := newFakeLeader(t)
	idle := &memLog{}
	idle.appendLeader(t, 0, 1, "idle")
	leaderOf(t, fl, idle, 0)
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 30 * time.Second, Backoff: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	f.Add(tp0, 0, &memLog{})
	checkFor(t, 5*time.Second, func() error {
		if !f.fetching.Load() {
			return fmt.Errorf("no fetch in flight")
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // let the fetch park at the leader

	tp1 := TopicPartition{"orders", 1}
	leader := &memLog{}
	leader.appendLeader(t, 0, 3, "moved")
	tr, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 2, SetHighWatermark: leader.SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, leader.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fl.set(tp1, &leaderPart{log: leader, tracker: tr})
	follower := &memLog{}
	f.Add(tp1, 0, follower)
	// Far less than the parked fetch's 30 s.
	checkFor(t, 10*time.Second, sameLog(follower, leader))
}

// OnFetch is told of every answered Fetch: its round trip, the write and
// durability wait after it, and the record bytes written, which add up
// to the leader's log (the broker's follower fetch and replication-in
// metrics); the leader's listener reports the same bytes sent
// (FetchFollowerTotalTimeMsMean, replication-out).
func TestOnFetchReportsEachFetch(t *testing.T) {
	fl := newFakeLeader(t)
	leader := &memLog{}
	for i := range 3 {
		leader.appendLeader(t, 0, 2, fmt.Sprint("a", i))
	}
	want := 0
	for _, b := range leader.batches {
		want += len(b.data)
	}
	leaderOf(t, fl, leader, 0)
	var (
		mu      sync.Mutex
		fetches int
		bytes   int
		bad     []string
		served  int // fetches the leader's listener reported
		sent    int // record bytes it reported sending
	)
	fl.srv.OnFetch(func(took time.Duration, requestBytes, recordBytes int) {
		mu.Lock()
		defer mu.Unlock()
		served++
		sent += recordBytes
		if took <= 0 || requestBytes <= 0 {
			bad = append(bad, fmt.Sprintf("served: took %v, request of %d bytes", took, requestBytes))
		}
	})
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 50 * time.Millisecond, Backoff: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
		OnFetch: func(request, durable time.Duration, n int) {
			mu.Lock()
			defer mu.Unlock()
			fetches++
			bytes += n
			if request <= 0 || durable < 0 {
				bad = append(bad, fmt.Sprintf("request %v, durable %v", request, durable))
			}
		}})
	t.Cleanup(f.Close)
	follower := &memLog{}
	f.Add(tp0, 0, follower)
	checkFor(t, 5*time.Second, sameLog(follower, leader))
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if bytes != want || fetches < 2 {
			return fmt.Errorf("%d fetches reported %d bytes, want at least 2 fetches (the data, then a parked one) and %d bytes", fetches, bytes, want)
		}
		if sent != want || served < 2 {
			return fmt.Errorf("the leader served %d fetches of %d record bytes, want at least 2 and %d bytes", served, sent, want)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
}

// A partition the leader refuses while the fetcher's other partitions
// have nothing new is retried after its backoff, not after the fetch
// parked at the leader for MaxWait: the usual refusal is a new leader
// that has not yet learnt it leads (the follower applied the metadata
// first), and the partition's acks=all producers wait for this follower.
func TestRefusedPartitionRetriedWhileOthersPark(t *testing.T) {
	fl := newFakeLeader(t)
	idle := &memLog{}
	idle.appendLeader(t, 0, 1, "idle")
	leaderOf(t, fl, idle, 0)
	var (
		mu      sync.Mutex
		fetches int
	)
	fl.srv.OnFetch(func(time.Duration, int, int) {
		mu.Lock()
		fetches++
		mu.Unlock()
	})
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 30 * time.Second, Backoff: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	idleCopy := &memLog{}
	f.Add(tp0, 0, idleCopy)
	checkFor(t, 5*time.Second, sameLog(idleCopy, idle))

	// tp1 is added while the leader does not lead it yet: refused, it
	// goes into backoff, and tp0's fetch parks at the leader.
	tp1 := TopicPartition{"orders", 1}
	follower := &memLog{}
	mu.Lock()
	before := fetches
	mu.Unlock()
	f.Add(tp1, 0, follower)
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if fetches < before+1 {
			return fmt.Errorf("no fetch answered since the Add")
		}
		return nil
	})
	checkFor(t, 5*time.Second, func() error {
		if !f.fetching.Load() {
			return fmt.Errorf("no fetch in flight")
		}
		return nil
	})
	if follower.LogEndOffset() != 0 {
		t.Fatal("fetched a partition the leader does not lead")
	}

	// The leader learns it leads tp1.
	leader := &memLog{}
	leader.appendLeader(t, 0, 3, "new")
	tr, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 2, SetHighWatermark: leader.SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, leader.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	fl.set(tp1, &leaderPart{log: leader, tracker: tr})
	// Far less than the parked fetch's 30 s.
	checkFor(t, 10*time.Second, sameLog(follower, leader))
}

func TestParkFor(t *testing.T) {
	for _, tt := range []struct {
		next      time.Duration
		backedOff bool
		want      time.Duration
	}{
		{500 * time.Millisecond, false, 500 * time.Millisecond},
		{20 * time.Millisecond, false, 500 * time.Millisecond},
		{20 * time.Millisecond, true, 20 * time.Millisecond},
		{19*time.Millisecond + time.Microsecond, true, 20 * time.Millisecond},
		{time.Microsecond, true, time.Millisecond},
		{0, true, time.Millisecond},
		{2 * time.Second, true, 500 * time.Millisecond},
	} {
		if got := parkFor(500*time.Millisecond, tt.next, tt.backedOff); got != tt.want {
			t.Errorf("parkFor(500ms, %v, %v) = %v, want %v", tt.next, tt.backedOff, got, tt.want)
		}
	}
}

// The partitions a round asks for come out sorted by topic and partition
// and follow every Add and Remove, though the order is kept between
// rounds instead of sorted each time.
func TestSnapshotOrderFollowsAddAndRemove(t *testing.T) {
	f := &Fetcher{cfg: FetcherConfig{Backoff: time.Second}, parts: map[TopicPartition]*fetchPartition{}, wake: make(chan struct{}, 1)}
	tps := []TopicPartition{{"b", 1}, {"a", 10}, {"b", 0}, {"a", 2}, {"c", 0}}
	for _, tp := range tps {
		f.Add(tp, 1, nil)
	}
	// Past the divergence check: fetched from now on.
	for _, p := range f.parts {
		p.checkDivergence = false
	}
	want := []TopicPartition{{"a", 2}, {"a", 10}, {"b", 0}, {"b", 1}, {"c", 0}}
	if _, fetch, _, _ := snapshotTPs(t, f); !slices.Equal(fetch, want) {
		t.Fatalf("fetched %v, want %v", fetch, want)
	}
	f.Remove(TopicPartition{"b", 0})
	if _, fetch, _, _ := snapshotTPs(t, f); !slices.Equal(fetch, slices.Delete(slices.Clone(want), 2, 3)) {
		t.Fatalf("fetched %v after removing b-0", fetch)
	}
	f.Add(TopicPartition{"a", 3}, 2, nil)
	f.Add(TopicPartition{"c", 0}, 2, nil) // restarted: checked first
	check, fetch, _, _ := snapshotTPs(t, f)
	if want := []TopicPartition{{"a", 3}, {"c", 0}}; !slices.Equal(check, want) {
		t.Errorf("checked %v, want %v", check, want)
	}
	if want := []TopicPartition{{"a", 2}, {"a", 10}, {"b", 1}}; !slices.Equal(fetch, want) {
		t.Errorf("fetched %v, want %v", fetch, want)
	}
	// A partition in backoff is neither, and the round learns when it is due.
	f.parts[TopicPartition{"a", 10}].retryAt = time.Now().Add(300 * time.Millisecond)
	_, fetch, next, backedOff := snapshotTPs(t, f)
	if want := []TopicPartition{{"a", 2}, {"b", 1}}; !slices.Equal(fetch, want) || !backedOff || next > 300*time.Millisecond {
		t.Errorf("fetched %v (want %v), backed off %v, next due in %v", fetch, want, backedOff, next)
	}
}

// snapshotTPs is f.snapshot with the fetched partitions' names, each
// checked to come with the following the fetcher holds for it.
func snapshotTPs(t *testing.T, f *Fetcher) (check, fetch []TopicPartition, next time.Duration, backedOff bool) {
	t.Helper()
	check, parts, next, backedOff := f.snapshot()
	for _, o := range parts {
		if f.parts[o.tp] != o.p {
			t.Errorf("%v comes with a following the fetcher does not hold", o.tp)
		}
		fetch = append(fetch, o.tp)
	}
	return check, fetch, next, backedOff
}

// BenchmarkSnapshot is a round's look at the partitions of a follower
// of 3,334 (a third of 5,000 partitions with replication factor 3, two
// leaders' worth on one fetcher).
func BenchmarkSnapshot(b *testing.B) {
	f := &Fetcher{cfg: FetcherConfig{Backoff: time.Second}, parts: map[TopicPartition]*fetchPartition{}, wake: make(chan struct{}, 1)}
	for i := range 3334 {
		f.Add(TopicPartition{"idle", int32(i * 3)}, 1, nil)
	}
	for _, p := range f.parts {
		p.checkDivergence = false
	}
	b.ReportAllocs()
	for b.Loop() {
		f.snapshot()
	}
}

// BenchmarkIdleRound is the follower's side of one idle round over 3,334
// partitions (a third of 5,000 with replication factor 3): the snapshot
// and the building of an incremental fetch in a session that already
// holds every partition's state, so that nothing is named or forgotten.
func BenchmarkIdleRound(b *testing.B) {
	f := &Fetcher{cfg: FetcherConfig{Backoff: time.Second}, parts: map[TopicPartition]*fetchPartition{},
		session: map[TopicPartition]sentPartition{}, wake: make(chan struct{}, 1)}
	for i := range 3334 {
		f.Add(TopicPartition{"idle", int32(i * 3)}, 1, &memLog{start: 7})
	}
	for _, p := range f.parts {
		p.checkDivergence = false
	}
	_, fetch, _, _ := f.snapshot()
	pl := f.plan(fetch, time.Second)
	f.sessionID, f.sessionEpoch = 1, 1
	maps.Copy(f.session, pl.named)
	b.ReportAllocs()
	for b.Loop() {
		_, fetch, _, _ := f.snapshot()
		if pl := f.plan(fetch, time.Second); len(pl.sent) != 3334 || len(pl.named) != 0 || len(pl.forgotten) != 0 {
			b.Fatalf("sent %d, named %d, forgotten %d", len(pl.sent), len(pl.named), len(pl.forgotten))
		}
	}
}

// In a session, a round names only the partitions whose state the leader
// does not hold, with what their logs hold, and forgets those it leaves
// out (in backoff, removed); when it leaves none out it forgets nothing.
func TestPlanNamesAndForgetsOnlyWhatChanged(t *testing.T) {
	f := &Fetcher{cfg: FetcherConfig{Backoff: time.Second}, parts: map[TopicPartition]*fetchPartition{},
		session: map[TopicPartition]sentPartition{}, wake: make(chan struct{}, 1)}
	logs := map[TopicPartition]*memLog{}
	for i := range 6 {
		tp := TopicPartition{"t", int32(i)}
		logs[tp] = &memLog{start: 4}
		f.Add(tp, 1, logs[tp])
	}
	for _, p := range f.parts {
		p.checkDivergence = false
	}
	round := func() fetchPlan {
		t.Helper()
		_, fetch, _, _ := f.snapshot()
		pl := f.plan(fetch, time.Second)
		if pl.incremental {
			f.sessionEpoch++
			for _, tp := range pl.forgotten {
				delete(f.session, tp)
			}
		} else {
			f.sessionID, f.sessionEpoch = 1, 1
			clear(f.session)
		}
		maps.Copy(f.session, pl.named)
		for tp, s := range pl.sent {
			if end := logs[tp].LogEndOffset(); s.offset != end || s.p != f.parts[tp] {
				t.Errorf("%v sent at %d by %p, log end %d, following %p", tp, s.offset, s.p, end, f.parts[tp])
			}
		}
		return pl
	}
	names := func(pl fetchPlan) (named, forgotten []TopicPartition) {
		named = slices.Collect(maps.Keys(pl.named))
		slices.SortFunc(named, func(a, b TopicPartition) int { return cmp.Compare(a.Partition, b.Partition) })
		forgotten = slices.Clone(pl.forgotten)
		slices.SortFunc(forgotten, func(a, b TopicPartition) int { return cmp.Compare(a.Partition, b.Partition) })
		return named, forgotten
	}
	tp := func(i int32) TopicPartition { return TopicPartition{"t", i} }
	if pl := round(); pl.incremental || len(pl.named) != 6 || len(pl.sent) != 6 {
		t.Fatalf("first round: incremental %v, named %d, sent %d; want a full fetch of 6", pl.incremental, len(pl.named), len(pl.sent))
	}
	if named, forgotten := names(round()); len(named) != 0 || len(forgotten) != 0 {
		t.Fatalf("idle round named %v, forgot %v", named, forgotten)
	}
	logs[tp(2)].appendLeader(t, 1, 3, "x")
	if named, forgotten := names(round()); !slices.Equal(named, []TopicPartition{tp(2)}) || len(forgotten) != 0 {
		t.Fatalf("after an append to t-2: named %v, forgot %v", named, forgotten)
	}
	if st := f.session[tp(2)]; st.fetchOffset != 7 || st.lastFetched != 1 || st.logStart != 4 {
		t.Fatalf("session holds t-2 at %+v, want offset 7, epoch 1, start 4", st)
	}
	f.parts[tp(4)].retryAt = time.Now().Add(time.Hour)
	f.Remove(tp(5))
	if named, forgotten := names(round()); len(named) != 0 || !slices.Equal(forgotten, []TopicPartition{tp(4), tp(5)}) {
		t.Fatalf("t-4 in backoff, t-5 removed: named %v, forgot %v", named, forgotten)
	}
	f.Add(tp(0), 2, logs[tp(0)]) // restarted at a new epoch
	f.parts[tp(0)].checkDivergence = false
	f.parts[tp(4)].retryAt = time.Time{}
	if named, forgotten := names(round()); !slices.Equal(named, []TopicPartition{tp(0), tp(4)}) || len(forgotten) != 0 {
		t.Fatalf("t-0 restarted, t-4 due again: named %v, forgot %v", named, forgotten)
	}
	if named, forgotten := names(round()); len(named) != 0 || len(forgotten) != 0 {
		t.Fatalf("idle round named %v, forgot %v", named, forgotten)
	}
}
