package groups_test

// End-to-end consumer-group tests: real Kafka clients against a broker
// started in the test on 127.0.0.1:0 (broker/server wires this package in).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/server"
)

// startBroker runs a broker on a loopback port with data in dir and returns
// its address and a function that shuts it down (also run at cleanup).
func startBroker(t *testing.T, dir string) (addr string, stop func()) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cfg.GroupInitialRebalanceDelay = 0
	cfg.GroupMinSessionTimeout = 100 * time.Millisecond
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := server.New(server.Options{Config: cfg, Logger: log})
	if err != nil {
		t.Fatalf("starting broker: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("listening: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("broker shutdown: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("broker serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s.Addr().String(), stop
}

func newAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func produce(t *testing.T, ctx context.Context, addr, topic string, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

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

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describeGroup(t *testing.T, ctx context.Context, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	return described[group]
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
