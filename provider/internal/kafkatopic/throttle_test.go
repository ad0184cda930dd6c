package kafkatopic

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

func TestThrottledReplicasLists(t *testing.T) {
	parts := map[int32]kadm.PartitionDetail{0: {Replicas: []int32{1}}, 1: {Replicas: []int32{2, 3}}, 2: {Replicas: []int32{1, 2, 3}}}
	leader, follower := throttledReplicas(parts, map[int32][]int32{0: {1, 2, 3}, 1: {2, 3, 1}, 2: {1, 2}})
	if want := "0:1,1:2,1:3,2:1,2:2,2:3"; leader != want {
		t.Errorf("leader list %q, want %q (the current replicas of every moved partition)", leader, want)
	}
	if want := "0:2,0:3,1:1"; follower != want {
		t.Errorf("follower list %q, want %q (the replicas added)", follower, want)
	}
}

// TestThrottledReplicationFactorChange raises a partition's replication
// factor from 1 to 3 under a 256 KiB/s throttle while an acks=all
// producer writes to it: no produce fails, the copy keeps to the rate,
// and no throttle config is left afterwards. A throttle left by an
// interrupted apply is removed by the next change.
//
// The bound: both new replicas copy from the one leader, whose throttle
// counts what it sends to either; the rate spans at least 10 of its 11
// one-second windows (a first burst of 10 s worth) and one fetch per
// follower (1 MiB) may pass just under the rate, so copying 2 x N bytes at
// R takes at least (2N - 10R - 2 MiB) / R.
func TestThrottledReplicationFactorChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes; skipped with -short")
	}
	a, c, logs := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const (
		rate = 256 << 10
		size = 4 << 20
	)
	if err := a.Create(ctx, Spec{Name: "copied", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(c.ClientOpts(), kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("copied"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(time.Minute))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value := make([]byte, 64<<10)
	for range size / len(value) {
		_, _ = rand.Read(value)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: append([]byte(nil), value...)}).FirstErr(); err != nil {
			t.Fatalf("filling the partition: %v", err)
		}
	}

	// A steady acks=all producer through the whole change.
	var (
		mu             sync.Mutex
		acked, failed  int
		firstFailure   error
		stop, finished = make(chan struct{}), make(chan struct{})
	)
	go func() {
		defer close(finished)
		var wg sync.WaitGroup
		defer wg.Wait()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint("during-", i))}, func(_ *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					if firstFailure == nil {
						firstFailure = err
					}
					return
				}
				acked++
			})
		}
	}()

	a.Throttle = rate
	start := time.Now()
	err = a.SetReplicationFactor(ctx, "copied", 3)
	took := time.Since(start)
	close(stop)
	<-finished
	if err != nil {
		t.Fatalf("SetReplicationFactor(3): %v", err)
	}
	floor := time.Duration(float64(2*size-10*rate-(2<<20)) / rate * float64(time.Second))
	t.Logf("2 x %d MiB copied at %d KiB/s in %v (%.0f KiB/s; at least %v by the bound); %d records acknowledged meanwhile, %d failed",
		size>>20, rate>>10, took.Round(time.Millisecond), float64(2*size)/took.Seconds()/1024, floor, acked, failed)
	if failed > 0 {
		t.Errorf("%d acks=all produces failed during the change, the first: %v", failed, firstFailure)
	}
	if acked == 0 {
		t.Error("no produce was acknowledged during the change")
	}
	if took < floor {
		t.Errorf("the throttled copy took %v, less than the %v the rate allows", took, floor)
	}
	if ceiling := time.Duration(2*size/rate)*time.Second + time.Minute; took > ceiling {
		t.Errorf("the throttled copy took %v, more than %v", took, ceiling)
	}
	if !logs.contains("reassignment throttled") || !logs.contains("replication throttle removed") {
		t.Errorf("the throttle was not logged as set and removed: %v", logs.lines)
	}
	adm, err := a.admin()
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	checkNoThrottle(ctx, t, adm, "copied")

	// What an interrupted apply leaves (the throttle of a copy that is
	// over) goes at the next change, even one that moves nothing.
	v := "0:1"
	r := strconv.Itoa(rate)
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: config.LeaderThrottledReplicas, Value: &v}}, "copied"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: followerRateConfig, Value: &r}}, 2); err != nil {
		t.Fatal(err)
	}
	if err := a.SetReplicationFactor(ctx, "copied", 3); err != nil {
		t.Fatal(err)
	}
	checkNoThrottle(ctx, t, adm, "copied")
}

// checkNoThrottle fails unless no throttle config is set on topic or on
// any broker.
func checkNoThrottle(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		if hasOwn(rc, config.LeaderThrottledReplicas, config.FollowerThrottledReplicas) {
			t.Errorf("topic %s keeps a throttled-replicas config: %+v", topic, rc.Configs)
		}
	}
	for _, id := range []int32{1, 2, 3} {
		rcs, err := adm.DescribeBrokerConfigs(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, rc := range rcs {
			for _, c := range rc.Configs {
				if (c.Key == leaderRateConfig || c.Key == followerRateConfig) && c.Source != kmsg.ConfigSourceDefaultConfig {
					t.Errorf("broker %d keeps %s = %v (%v)", id, c.Key, *c.Value, c.Source)
				}
			}
		}
	}
}
