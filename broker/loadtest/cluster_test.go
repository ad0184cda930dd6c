package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// TestClusterFailover runs the cluster part end to end against real broker
// processes: three brokers, a replicated topic, a paced produce phase and
// one measured failover. It runs the binary TRIBUTARY_LOADTEST_BROKER names,
// which `make test` sets to the bin/tributary-broker it built:
//
//	go build -o bin/tributary-broker ./broker/cmd/tributary-broker
//	TRIBUTARY_LOADTEST_BROKER=$PWD/bin/tributary-broker go test -run TestClusterFailover ./broker/loadtest/
func TestClusterFailover(t *testing.T) {
	bin := testenv.Binary(t, "TRIBUTARY_LOADTEST_BROKER", "a built tributary-broker (go build -o bin/tributary-broker ./broker/cmd/tributary-broker)")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, bin, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	seeds := c.Bootstrap()
	if err := CreateReplicatedTopic(ctx, seeds, "bench", 3, ClusterSize); err != nil {
		t.Fatal(err)
	}
	res, err := Produce(ctx, seeds, ProduceOptions{Topic: "bench", RecordBytes: 1024, Duration: 2 * time.Second, RateBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records == 0 || res.Latency.P99 <= 0 {
		t.Fatalf("no acknowledged records: %+v", res)
	}
	kills, err := Failover(ctx, c, FailoverOptions{Topic: "failover", RecordBytes: 1024, RateBytes: 1 << 20, Kills: 1, Deadline: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(kills) != 1 {
		t.Fatalf("got %d failovers, want 1", len(kills))
	}
	k := kills[0]
	if k.Time <= 0 {
		t.Fatalf("no acknowledged produce within 30 s after killing broker %d", k.Broker)
	}
	if k.NewLeader == k.Broker {
		t.Errorf("the partition is still led by the killed broker %d", k.Broker)
	}
	t.Logf("failover after kill -9 of broker %d (controller: %v): %v, new leader %d", k.Broker, k.Controller, k.Time, k.NewLeader)
}

func TestJavaRetryBackoff(t *testing.T) {
	for _, tt := range []struct {
		fails  int
		lo, hi time.Duration
	}{
		{0, 80 * time.Millisecond, 120 * time.Millisecond},
		{1, 80 * time.Millisecond, 120 * time.Millisecond},
		{2, 160 * time.Millisecond, 240 * time.Millisecond},
		{4, 640 * time.Millisecond, 960 * time.Millisecond},
		{5, 800 * time.Millisecond, 1200 * time.Millisecond},
		{50, 800 * time.Millisecond, 1200 * time.Millisecond},
	} {
		for range 20 {
			if d := javaRetryBackoff(tt.fails); d < tt.lo || d > tt.hi {
				t.Errorf("javaRetryBackoff(%d) = %v, want within [%v, %v]", tt.fails, d, tt.lo, tt.hi)
			}
		}
	}
}
