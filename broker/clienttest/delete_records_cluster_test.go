package clienttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterDeleteRecordsSurvivesLeaderKill: DeleteRecords on a
// partition of three replicas moves every replica's log start, so the
// leader elected after a kill -9 of the one that took the request serves
// nothing below it. Followers take the leader's log start from its fetch
// responses, as Kafka's do; before, only the old leader's moved, and the
// new leader served the deleted records again.
func TestClusterDeleteRecordsSurvivesLeaderKill(t *testing.T) {
	c := startCluster(t, 3)
	const topic = "deleted-records"
	c.createTopic(topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	produce := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatalf("producing record %d: %v", i, err)
			}
		}
	}
	produce(0, 100)
	adm := kadm.NewClient(cl)
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 60})
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.Lookup(topic, 0); r.Err != nil || r.LowWatermark != 60 {
		t.Fatalf("DeleteRecords: %+v", r)
	}
	// An acks=all produce completes once every ISR follower fetched past
	// it, having applied the response before it, which carried the new
	// log start.
	produce(100, 1)
	victim := c.leaderOf(topic, 0)
	c.kill9(victim)
	deadline := time.Now().Add(30 * time.Second)
	leader := c.leaderOf(topic, 0)
	for ; leader == victim || leader < 0; leader = c.leaderOf(topic, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("broker %d still leads 30 s after kill -9", victim)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fresh, done := c.freshAdmin()
	defer done()
	var start int64 = -1
	for time.Now().Before(deadline) {
		starts, err := fresh.ListStartOffsets(ctx, topic)
		if err == nil {
			if o, ok := starts.Lookup(topic, 0); ok && o.Err == nil {
				start = o.Offset
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if start != 60 {
		t.Fatalf("log start on the new leader after kill -9 of %d: %d, want 60 (the deleted records are served again)", victim, start)
	}
	got := flatten(consumeAll(t, c.addrs[leader], topic, 41))
	for i := range 101 {
		if n := got[fmt.Sprint(i)]; (i < 60) != (n == 0) {
			t.Fatalf("record %d read %d times from the new leader, want it only from offset 60", i, n)
		}
	}
}
