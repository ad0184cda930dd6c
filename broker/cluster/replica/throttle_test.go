package replica

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/quota"
)

// throttleState is a metadata state with topic t0 (3 partitions) and the
// given throttle configs.
func throttleState(topicConfigs map[string]string, brokerConfigs map[int32]map[string]string) *metadata.State {
	st := metadata.Empty()
	st.Topics["t0"] = metadata.NewTopic("t0", metadata.TopicID{}, topicConfigs, make([]metadata.Partition, 3)...)
	st.Topics["other"] = metadata.NewTopic("other", metadata.TopicID{}, nil, make([]metadata.Partition, 3)...)
	for id, c := range brokerConfigs {
		st.BrokerConfigs[id] = c
	}
	return st
}

func TestThrottleUpdate(t *testing.T) {
	tests := []struct {
		name                   string
		topic                  map[string]string
		brokers                map[int32]map[string]string
		static                 ThrottleConfig
		leader, follower       []int32 // throttled partitions of t0 on broker 1
		leaderRate, followRate int64
	}{
		{name: "nothing set", leaderRate: math.MaxInt64, followRate: math.MaxInt64},
		{name: "pairs name the broker whose side applies",
			topic:  map[string]string{"leader.replication.throttled.replicas": "0:1,1:2,2:1", "follower.replication.throttled.replicas": "1:1,0:3"},
			leader: []int32{0, 2}, follower: []int32{1}, leaderRate: math.MaxInt64, followRate: math.MaxInt64},
		{name: "wildcard",
			topic:    map[string]string{"follower.replication.throttled.replicas": "*"},
			follower: []int32{0, 1, 2}, leaderRate: math.MaxInt64, followRate: math.MaxInt64},
		{name: "node rate over cluster default over static",
			brokers: map[int32]map[string]string{
				1:                       {"leader.replication.throttled.rate": "1000"},
				metadata.ClusterDefault: {"leader.replication.throttled.rate": "2000", "follower.replication.throttled.rate": "3000"},
			},
			static:     ThrottleConfig{LeaderRate: 5, FollowerRate: 6},
			leaderRate: 1000, followRate: 3000},
		{name: "static rate when the metadata has none", static: ThrottleConfig{LeaderRate: 5, FollowerRate: 6}, leaderRate: 5, followRate: 6},
		{name: "another broker's rate does not apply",
			brokers:    map[int32]map[string]string{2: {"leader.replication.throttled.rate": "1000"}},
			leaderRate: math.MaxInt64, followRate: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := NewThrottle(1, tt.static, nil)
			th.Update(throttleState(tt.topic, tt.brokers))
			for p := int32(0); p < 3; p++ {
				tp := TopicPartition{"t0", p}
				if got, want := th.LeaderThrottled(tp), contains(tt.leader, p); got != want {
					t.Errorf("leader side of %s: throttled %v, want %v", tp, got, want)
				}
				if got, want := th.FollowerThrottled(tp), contains(tt.follower, p); got != want {
					t.Errorf("follower side of %s: throttled %v, want %v", tp, got, want)
				}
				if th.LeaderThrottled(TopicPartition{"other", p}) || th.FollowerThrottled(TopicPartition{"other", p}) {
					t.Errorf("other-%d is throttled, its topic sets nothing", p)
				}
			}
			if got := th.Leader.Bound(); got != tt.leaderRate {
				t.Errorf("leader rate %d, want %d", got, tt.leaderRate)
			}
			if got := th.Follower.Bound(); got != tt.followRate {
				t.Errorf("follower rate %d, want %d", got, tt.followRate)
			}
		})
	}
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestLeaderThrottleHoldsOnlyOutOfSyncThrottledReplicas checks the
// leader side as Kafka's shouldLeaderThrottle: over the rate, a throttled
// partition's data is held from a follower outside the ISR, never from
// one in it, and an unthrottled partition is served whatever the rate.
func TestLeaderThrottleHoldsOnlyOutOfSyncThrottledReplicas(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	th := NewThrottle(1, ThrottleConfig{Windows: quota.Config{Samples: 2, Window: time.Second}}, clk.Now)
	th.Update(throttleState(map[string]string{"leader.replication.throttled.replicas": "0:1"},
		map[int32]map[string]string{1: {"leader.replication.throttled.rate": "100"}}))

	newPart := func(isr []int32) (*Leader, *memLog) {
		log := &memLog{}
		log.appendLeader(t, 1, 5, "x")
		l, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 1, ISR: isr}, log.LogEndOffset(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return l, log
	}
	outOfSync, outLog := newPart([]int32{1, 3})
	unthrottled, unLog := newPart([]int32{1, 3})
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		switch topic {
		case "t0":
			return outOfSync, outLog, true
		case "other":
			return unthrottled, unLog, true
		}
		return nil, nil, false
	}
	fetch := func(replica int32, topic string) kmsg.FetchResponseTopicPartition {
		req := fetchReq(1, 0, -1, 0)
		req.ReplicaID = replica
		req.Topics[0].Topic = topic
		return HandleFetch(context.Background(), req, lookup, th).Topics[0].Partitions[0]
	}

	// Under the rate the first fetch gets its data, and is counted.
	first := fetch(2, "t0")
	if len(first.RecordBatches) == 0 {
		t.Fatal("a throttled replica under the rate got no data")
	}
	if !th.Leader.Exceeded() {
		t.Fatalf("%d bytes at 100 B/s over 1 s: the rate (%.0f B/s) should be over the bound", len(first.RecordBatches), th.Leader.Rate())
	}
	// Over it: replica 2 (outside the ISR) is held, with its offset and
	// the high watermark still answered; replica 3 (in the ISR) is not.
	held := fetch(2, "t0")
	if len(held.RecordBatches) != 0 || held.ErrorCode != 0 || held.HighWatermark != 0 {
		t.Fatalf("out-of-sync replica over the rate: %d bytes, code %d, hw %d; want none, 0, 0", len(held.RecordBatches), held.ErrorCode, held.HighWatermark)
	}
	if inSync := fetch(3, "t0"); len(inSync.RecordBatches) == 0 {
		t.Fatal("an in-sync replica was held back by the throttle")
	}
	// A partition no throttled-replicas config names is not held and not
	// counted.
	before := th.Leader.Rate()
	if un := fetch(2, "other"); len(un.RecordBatches) == 0 {
		t.Fatal("an unthrottled partition was held back")
	}
	if after := th.Leader.Rate(); after != before {
		t.Fatalf("an unthrottled partition's bytes were counted: rate %.1f -> %.1f", before, after)
	}
	// Once the measured rate is back under the bound, the data flows again.
	clk.advance(time.Minute)
	if again := fetch(2, "t0"); len(again.RecordBatches) == 0 {
		t.Fatal("the throttled replica got nothing once the rate was back under the bound")
	}
}

// TestLeaderThrottleLongPollWaitsForTheRate checks that a fetch whose
// only partition is held parks until MaxWait instead of answering at once
// (which would make the follower spin), and returns no data.
func TestLeaderThrottleLongPollWaitsForTheRate(t *testing.T) {
	th := NewThrottle(1, ThrottleConfig{LeaderRate: 1, Windows: quota.Config{Samples: 11, Window: time.Second}}, nil)
	th.Update(throttleState(map[string]string{"leader.replication.throttled.replicas": "*"}, nil))
	log := &memLog{}
	log.appendLeader(t, 1, 5, "x")
	l, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 1, ISR: []int32{1}}, log.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(string, int32) (*Leader, LeaderLog, bool) { return l, log, true }
	th.Leader.Record(1 << 20)
	req := fetchReq(1, 0, -1, 300*time.Millisecond)
	req.Topics[0].Topic = "t0"
	start := time.Now()
	rp := HandleFetch(context.Background(), req, lookup, th).Topics[0].Partitions[0]
	took := time.Since(start)
	if len(rp.RecordBatches) != 0 {
		t.Fatalf("held partition answered with %d bytes", len(rp.RecordBatches))
	}
	if took < 250*time.Millisecond {
		t.Fatalf("a fetch with only held data answered after %v, before its 300 ms MaxWait", took)
	}
}

// TestFollowerThrottleLeavesBehindReplicasOut checks the follower side:
// over the follower rate, a throttled partition that is behind the
// leader's high watermark is not fetched, an unthrottled one from the
// same leader is, and the throttled one catches up once the rate is back.
func TestFollowerThrottleLeavesBehindReplicasOut(t *testing.T) {
	clk := &lockedClock{now: time.Unix(1000, 0)}
	th := NewThrottle(2, ThrottleConfig{FollowerRate: 1000, Windows: quota.Config{Samples: 2, Window: time.Second}}, clk.Now)
	th.Update(throttleState(map[string]string{"follower.replication.throttled.replicas": "0:2"}, nil))
	th.Follower.Record(1 << 20) // far over 1000 B/s
	// The topics, as the metadata names them, fetched from one leader.
	throttled, free := TopicPartition{"t0", 0}, TopicPartition{"other", 0}

	fl := newFakeLeader(t)
	leaders := map[TopicPartition]*memLog{}
	for _, tp := range []TopicPartition{throttled, free} {
		log := &memLog{}
		for i := range 3 {
			log.appendLeader(t, 0, 2, fmt.Sprint(tp.Topic, i))
		}
		// The added replica is outside the ISR, so the leader's high
		// watermark is its log end and the follower is behind it.
		tr, err := NewLeader(LeaderConfig{LocalID: 1, MinISR: 1, SetHighWatermark: log.SetHighWatermark},
			metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 0, ISR: []int32{1}}, log.LogEndOffset(), log.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		fl.set(tp, &leaderPart{log: log, tracker: tr})
		leaders[tp] = log
	}
	f := StartFetcher(FetcherConfig{LocalID: 2, LeaderID: 1, Addr: fl.addr(), MaxWait: 50 * time.Millisecond, Backoff: 20 * time.Millisecond,
		Throttle: th, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	followers := map[TopicPartition]*memLog{throttled: {}, free: {}}
	f.Add(throttled, 0, followers[throttled])
	f.Add(free, 0, followers[free])

	checkFor(t, 5*time.Second, sameLog(followers[free], leaders[free]))
	// The unthrottled copy is done; the throttled one has had as long and
	// more, and got nothing.
	time.Sleep(200 * time.Millisecond)
	if got := followers[throttled].LogEndOffset(); got != 0 {
		t.Fatalf("the throttled replica fetched up to %d over the follower rate", got)
	}
	clk.advance(time.Minute)
	checkFor(t, 5*time.Second, sameLog(followers[throttled], leaders[throttled]))
	if r := th.Follower.Rate(); r == 0 {
		t.Fatal("the throttled replica's bytes were not counted")
	}
}

// lockedClock is a test clock read from the fetcher's goroutine.
type lockedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *lockedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *lockedClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
