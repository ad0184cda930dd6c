package replica

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// sessionLeader is a replication listener's fetch serving (no socket)
// over in-memory logs led by broker 1, with followers 2 and 3.
type sessionLeader struct {
	srv   *ReplicationServer
	clock *clock
	parts map[TopicPartition]*leaderPart
}

func newSessionLeader(t *testing.T, maxSessions int, tps ...TopicPartition) *sessionLeader {
	t.Helper()
	sl := &sessionLeader{clock: &clock{now: time.Unix(1000, 0)}, parts: map[TopicPartition]*leaderPart{}}
	for _, tp := range tps {
		log := &memLog{}
		log.appendLeader(t, 0, 5, tp.String())
		tr, err := NewLeader(LeaderConfig{LocalID: 1, LagTimeMax: 30 * time.Second, Now: sl.clock.Now, SetHighWatermark: log.SetHighWatermark},
			metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2, 3}}, log.LogEndOffset(), 0)
		if err != nil {
			t.Fatal(err)
		}
		sl.parts[tp] = &leaderPart{log: log, tracker: tr}
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		lp, ok := sl.parts[TopicPartition{topic, partition}]
		if !ok {
			return nil, nil, false
		}
		return lp.tracker, lp.log, true
	}
	sl.srv = &ReplicationServer{lookup: lookup, sessions: newSessionCache(maxSessions), ctx: context.Background()}
	return sl
}

// sessionFetch is a follower's Fetch without waiting: id and epoch of the
// session, the partitions named at fetch offsets, the partitions forgotten.
func sessionFetch(replica, id, epoch int32, named map[TopicPartition]int64, forgotten ...TopicPartition) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(fetchVersion)
	req.ReplicaID, req.SessionID, req.SessionEpoch, req.MinBytes = replica, id, epoch, 1
	for tp, off := range named {
		t := kmsg.NewFetchRequestTopic()
		t.Topic = tp.Topic
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.CurrentLeaderEpoch, p.FetchOffset, p.LastFetchedEpoch, p.PartitionMaxBytes = tp.Partition, 0, off, -1, 1<<20
		t.Partitions = append(t.Partitions, p)
		req.Topics = append(req.Topics, t)
	}
	for _, tp := range forgotten {
		t := kmsg.NewFetchRequestForgottenTopic()
		t.Topic, t.Partitions = tp.Topic, []int32{tp.Partition}
		req.ForgottenTopics = append(req.ForgottenTopics, t)
	}
	return req
}

// answered lists the partitions of a response, with whether each has records.
func answered(resp *kmsg.FetchResponse) []string {
	var out []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, fmt.Sprintf("%s-%d records=%v hw=%d err=%d", t.Topic, p.Partition, len(p.RecordBatches) > 0, p.HighWatermark, p.ErrorCode))
		}
	}
	slices.Sort(out)
	return out
}

func (sl *sessionLeader) fetch(t *testing.T, req *kmsg.FetchRequest, code int16, want ...string) *kmsg.FetchResponse {
	t.Helper()
	resp, _ := sl.srv.serveFetch(req, readVia{})
	got := answered(resp)
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if resp.ErrorCode != code || !slices.Equal(got, want) {
		t.Fatalf("session %d epoch %d: error %d, answered %q; want error %d, %q", req.SessionID, req.SessionEpoch, resp.ErrorCode, got, code, want)
	}
	return resp
}

func TestFetchSessionEpochsAndEviction(t *testing.T) {
	a, b := TopicPartition{"orders", 0}, TopicPartition{"orders", 1}
	sl := newSessionLeader(t, 1, a, b)
	ok := int16(0)

	// A full fetch opens a session and answers everything named.
	resp := sl.fetch(t, sessionFetch(2, 0, 0, map[TopicPartition]int64{a: 5, b: 5}), ok,
		"orders-0 records=false hw=0 err=0", "orders-1 records=false hw=0 err=0")
	id := resp.SessionID
	if id == 0 {
		t.Fatal("a full fetch with epoch 0 opened no session")
	}
	// Nothing named, nothing new: nothing answered.
	sl.fetch(t, sessionFetch(2, id, 1, nil), ok)
	// The same epoch again (a retried or duplicated fetch) is refused;
	// the session stays and takes the right epoch.
	sl.fetch(t, sessionFetch(2, id, 1, nil), kerr.InvalidFetchSessionEpoch.Code)
	sl.fetch(t, sessionFetch(2, id, 3, nil), kerr.InvalidFetchSessionEpoch.Code)
	// a, absent from this fetch, is fetched at the offset last named: its
	// new records come.
	sl.parts[a].log.appendLeader(t, 0, 2, "new")
	sl.parts[a].tracker.Appended(7)
	sl.fetch(t, sessionFetch(2, id, 2, nil), ok, "orders-0 records=true hw=0 err=0")
	// A partition named is answered even without news; b, forgotten, is
	// not answered any more, though it has records past where it was.
	sl.parts[b].log.appendLeader(t, 0, 2, "new")
	sl.parts[b].tracker.Appended(7)
	sl.fetch(t, sessionFetch(2, id, 3, map[TopicPartition]int64{a: 7}, b), ok, "orders-0 records=false hw=0 err=0")
	// A high watermark moved by the other follower is news.
	if _, err := sl.parts[a].tracker.Fetched(3, 7); err != nil {
		t.Fatal(err)
	}
	sl.fetch(t, sessionFetch(2, id, 4, nil), ok, "orders-0 records=false hw=7 err=0")
	sl.fetch(t, sessionFetch(2, id, 5, nil), ok)
	// An error is news: a's leadership moves away (its tracker resigns
	// first, as the manager's does, see Lookup).
	lp := sl.parts[a]
	lp.tracker.Resign()
	delete(sl.parts, a)
	sl.fetch(t, sessionFetch(2, id, 6, nil), ok, fmt.Sprintf("orders-0 records=false hw=0 err=%d", kerr.NotLeaderForPartition.Code))
	// It comes back, with a tracker of its own: the session serves that
	// one, not the resigned tracker it looked up before.
	tr, err := NewLeader(LeaderConfig{LocalID: 1, LagTimeMax: 30 * time.Second, Now: sl.clock.Now, SetHighWatermark: lp.log.SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2, 3}}, lp.log.LogEndOffset(), 7)
	if err != nil {
		t.Fatal(err)
	}
	sl.parts[a] = &leaderPart{log: lp.log, tracker: tr}
	sl.fetch(t, sessionFetch(2, id, 7, nil), ok, "orders-0 records=false hw=7 err=0")

	// An unknown session.
	sl.fetch(t, sessionFetch(2, id+100, 1, nil), kerr.FetchSessionIDNotFound.Code)
	// Another follower's session is not this one's.
	sl.fetch(t, sessionFetch(3, id, 7, nil), kerr.FetchSessionIDNotFound.Code)
	// The cache holds one session: follower 3's evicts follower 2's,
	// whose next incremental fetch is told so.
	resp3 := sl.fetch(t, sessionFetch(3, 0, 0, map[TopicPartition]int64{a: 7}), ok, "orders-0 records=false hw=7 err=0")
	sl.fetch(t, sessionFetch(2, id, 7, nil), kerr.FetchSessionIDNotFound.Code)
	// Follower 2 starts over with a full fetch, and its new session
	// replaces its previous one (here: evicts 3's, the cache being full).
	again := sl.fetch(t, sessionFetch(2, 0, 0, map[TopicPartition]int64{a: 7}), ok, "orders-0 records=false hw=7 err=0").SessionID
	if again == 0 || again == id {
		t.Fatalf("new session %d (old %d)", again, id)
	}
	sl.fetch(t, sessionFetch(3, resp3.SessionID, 1, nil), kerr.FetchSessionIDNotFound.Code)
	sl.fetch(t, sessionFetch(2, again, 1, nil), ok)
	// Epoch -1 closes the session and is answered as a sessionless fetch.
	sl.fetch(t, sessionFetch(2, again, -1, map[TopicPartition]int64{a: 7}), ok, "orders-0 records=false hw=7 err=0")
	sl.fetch(t, sessionFetch(2, again, 2, nil), kerr.FetchSessionIDNotFound.Code)
	if n := sl.srv.sessions.len(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// A partition absent from incremental fetches is fetched at the offset
// last named: it counts as the follower's position for the high watermark
// and keeps the follower in the ISR past replica.lag.time.max.ms.
func TestAbsentPartitionKeepsFollowerPosition(t *testing.T) {
	a, b := TopicPartition{"orders", 0}, TopicPartition{"orders", 1}
	sl := newSessionLeader(t, 10, a, b)
	// The leader's own copy of a's records is not durable yet.
	la := sl.parts[a]
	la.log.appendLeader(t, 0, 5, "more")
	la.tracker.LogAdvanced(10, 5)
	if _, err := la.tracker.Fetched(3, 10); err != nil {
		t.Fatal(err)
	}
	id := sl.fetch(t, sessionFetch(2, 0, 0, map[TopicPartition]int64{a: 10, b: 5}), 0,
		"orders-0 records=false hw=5 err=0", "orders-1 records=false hw=0 err=0").SessionID
	for epoch := int32(1); epoch <= 4; epoch++ {
		sl.clock.advance(10 * time.Second)
		if _, err := la.tracker.Fetched(3, 10); err != nil {
			t.Fatal(err)
		}
		sl.fetch(t, sessionFetch(2, id, epoch, nil), 0)
	}
	// 40 s after follower 2 last named a, it is still in sync.
	if ch, changed := la.tracker.ProposeISRChange(func(int32) bool { return true }); changed {
		t.Fatalf("follower dropped from the ISR while fetching in its session: %+v", ch)
	}
	// The leader's copy becomes durable: the high watermark counts
	// follower 2 at the offset it last named.
	la.tracker.LogAdvanced(10, 10)
	if hw := la.tracker.HighWatermark(); hw != 10 {
		t.Fatalf("high watermark %d, want 10", hw)
	}
	sl.fetch(t, sessionFetch(2, id, 5, nil), 0, "orders-0 records=false hw=10 err=0")
}

// sessionOf is follower replica's session at the fake leader: id and the
// epoch its next incremental fetch must carry (0, 0 without one).
func sessionOf(fl *fakeLeader, replica int32) (id, epoch int32) {
	c := fl.srv.sessions
	c.mu.Lock()
	s, ok := c.byReplica[replica]
	c.mu.Unlock()
	if !ok {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.epoch
}

// A follower of many idle partitions names none of them once its session
// is open; records, a leadership change mid-session and the leader's
// eviction of the session all still reach it.
func TestFollowerFetchSession(t *testing.T) {
	fl := newFakeLeader(t)
	var (
		mu       sync.Mutex
		requests []int
	)
	fl.srv.OnFetch(func(_ time.Duration, requestBytes, _ int) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, requestBytes)
	})
	const n = 50
	leaders, followers := map[TopicPartition]*memLog{}, map[TopicPartition]*memLog{}
	trackers := map[TopicPartition]*Leader{}
	for i := range n {
		tp := TopicPartition{"orders", int32(i)}
		leaders[tp], followers[tp] = &memLog{}, &memLog{}
		leaders[tp].appendLeader(t, 0, 2, tp.String())
		tr, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 2, SetHighWatermark: leaders[tp].SetHighWatermark},
			metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, leaders[tp].LogEndOffset(), 0)
		if err != nil {
			t.Fatal(err)
		}
		trackers[tp] = tr
		fl.set(tp, &leaderPart{log: leaders[tp], tracker: tr})
	}
	// A long Backoff: the session's eviction must not cost one.
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 50 * time.Millisecond, Backoff: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	for tp, log := range followers {
		f.Add(tp, 0, log)
	}
	caughtUp := func() error {
		for tp := range leaders {
			if err := sameLog(followers[tp], leaders[tp])(); err != nil {
				return fmt.Errorf("%s: %w", tp, err)
			}
			if hw, want := followers[tp].HighWatermark(), trackers[tp].HighWatermark(); hw != want {
				return fmt.Errorf("%s: follower hw %d, leader's %d", tp, hw, want)
			}
		}
		return nil
	}
	checkFor(t, 10*time.Second, caughtUp)
	// Idle: the fetches name nothing (a full one names 50 partitions,
	// over 1 KB).
	mu.Lock()
	requests = nil
	mu.Unlock()
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(requests) < 3 {
			return fmt.Errorf("%d fetches", len(requests))
		}
		for _, r := range requests {
			if r > 100 {
				return fmt.Errorf("idle fetches of %v bytes", requests)
			}
		}
		return nil
	})

	// Records on one partition reach the follower, with the high watermark.
	tp7 := TopicPartition{"orders", 7}
	leaders[tp7].appendLeader(t, 0, 3, "later")
	trackers[tp7].Appended(leaders[tp7].LogEndOffset())
	checkFor(t, 5*time.Second, caughtUp)

	// A leadership change mid-session: broker 1 is elected again at epoch
	// 1 and writes at it; the follower follows at the new epoch.
	trackers[tp7].Resign()
	leaders[tp7].appendLeader(t, 1, 2, "epoch1")
	tr, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 2, SetHighWatermark: leaders[tp7].SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1, 2}}, leaders[tp7].LogEndOffset(), leaders[tp7].HighWatermark())
	if err != nil {
		t.Fatal(err)
	}
	trackers[tp7] = tr
	fl.set(tp7, &leaderPart{log: leaders[tp7], tracker: tr})
	f.Add(tp7, 1, followers[tp7])
	checkFor(t, 5*time.Second, caughtUp)

	// The leader evicts the session: the follower's next fetch is refused
	// with FETCH_SESSION_ID_NOT_FOUND, and it opens a new one at once
	// (twice: the first refusal could also be passed by a pause cut
	// short by an old wake-up).
	for range 2 {
		checkFor(t, 5*time.Second, func() error {
			if id, epoch := sessionOf(fl, 2); id == 0 || epoch < 2 {
				return fmt.Errorf("session %d at epoch %d", id, epoch)
			}
			return nil
		})
		old, _ := sessionOf(fl, 2)
		fl.srv.sessions.drop(old, 2)
		checkFor(t, 5*time.Second, func() error {
			if id, _ := sessionOf(fl, 2); id == 0 || id == old {
				return fmt.Errorf("session %d (evicted %d)", id, old)
			}
			return nil
		})
	}
	for _, tp := range []TopicPartition{tp7, {"orders", 30}} {
		leaders[tp].appendLeader(t, trackers[tp].Epoch(), 2, "after")
		trackers[tp].Appended(leaders[tp].LogEndOffset())
	}
	checkFor(t, 5*time.Second, caughtUp)
}

// The long poll of a session waits on one channel per fetch (NotifyAfter)
// and is woken by an append to any of its partitions.
func TestParkedSessionFetchWakesOnAppend(t *testing.T) {
	fl := newFakeLeader(t)
	logs := map[TopicPartition]*memLog{}
	trackers := map[TopicPartition]*Leader{}
	for i := range 3 {
		tp := TopicPartition{"orders", int32(i)}
		logs[tp] = &memLog{}
		logs[tp].appendLeader(t, 0, 1, "x")
		tr, err := NewLeader(LeaderConfig{LocalID: 1, SetHighWatermark: logs[tp].SetHighWatermark},
			metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}}, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		trackers[tp] = tr
		fl.set(tp, &leaderPart{log: logs[tp], tracker: tr})
	}
	req := sessionFetch(2, 0, 0, map[TopicPartition]int64{{"orders", 0}: 1, {"orders", 1}: 1, {"orders", 2}: 1})
	req.MaxWaitMillis = 30_000
	done := make(chan *kmsg.FetchResponse, 1)
	go func() {
		resp, _ := fl.srv.serveFetch(req, readVia{})
		done <- resp
	}()
	tp := TopicPartition{"orders", 2}
	// Append until the parked fetch has registered and is woken.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case resp := <-done:
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.Partition == 2 && len(rp.RecordBatches) > 0 {
						return
					}
				}
			}
			t.Fatalf("woken without the records: %q", answered(resp))
		case <-deadline:
			t.Fatal("the parked fetch was not woken by the append")
		case <-time.After(20 * time.Millisecond):
			if logs[tp].LogEndOffset() == 1 {
				logs[tp].appendLeader(t, 0, 1, "y")
				trackers[tp].Appended(2)
			}
		}
	}
}

// A session looks each of its partitions up once, not on every fetch,
// keeps those lookups with their partitions when others are forgotten,
// and looks a partition up again once its tracker resigned.
func TestSessionKeepsLookups(t *testing.T) {
	a, b, c := TopicPartition{"orders", 0}, TopicPartition{"orders", 1}, TopicPartition{"orders", 2}
	sl := newSessionLeader(t, 10, a, b, c)
	lookups := map[TopicPartition]int{}
	inner := sl.srv.lookup
	sl.srv.lookup = func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		lookups[TopicPartition{topic, partition}]++
		return inner(topic, partition)
	}
	want := func(wa, wb, wc int) {
		t.Helper()
		if lookups[a] != wa || lookups[b] != wb || lookups[c] != wc {
			t.Fatalf("lookups %v, want %s %d, %s %d, %s %d", lookups, a, wa, b, wb, c, wc)
		}
	}
	id := sl.fetch(t, sessionFetch(2, 0, 0, map[TopicPartition]int64{a: 5, b: 5, c: 5}), 0,
		"orders-0 records=false hw=0 err=0", "orders-1 records=false hw=0 err=0", "orders-2 records=false hw=0 err=0").SessionID
	for epoch := int32(1); epoch <= 3; epoch++ {
		sl.fetch(t, sessionFetch(2, id, epoch, nil), 0)
	}
	want(1, 1, 1)
	// b forgotten: a and c keep their own trackers and logs.
	sl.fetch(t, sessionFetch(2, id, 4, nil, b), 0)
	sl.parts[c].log.appendLeader(t, 0, 2, "new")
	sl.parts[c].tracker.Appended(7)
	sl.fetch(t, sessionFetch(2, id, 5, nil), 0, "orders-2 records=true hw=0 err=0")
	sl.parts[a].log.appendLeader(t, 0, 1, "new")
	sl.parts[a].tracker.Appended(6)
	sl.fetch(t, sessionFetch(2, id, 6, map[TopicPartition]int64{c: 7}), 0, "orders-0 records=true hw=0 err=0", "orders-2 records=false hw=0 err=0")
	want(1, 1, 1)
	// c's leadership moves on: a new tracker, at a high watermark of 7.
	old := sl.parts[c]
	old.tracker.Resign()
	tr, err := NewLeader(LeaderConfig{LocalID: 1, LagTimeMax: 30 * time.Second, Now: sl.clock.Now, SetHighWatermark: old.log.SetHighWatermark},
		metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2, 3}}, old.log.LogEndOffset(), 7)
	if err != nil {
		t.Fatal(err)
	}
	sl.parts[c] = &leaderPart{log: old.log, tracker: tr}
	sl.fetch(t, sessionFetch(2, id, 7, map[TopicPartition]int64{a: 6, c: 7}), 0, "orders-0 records=false hw=0 err=0", "orders-2 records=false hw=7 err=0")
	sl.fetch(t, sessionFetch(2, id, 8, nil), 0)
	want(1, 1, 2)
}
