package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/metrics"
)

// TestReplicationMetrics: acks=all produces to an RF 3 topic show in each
// broker's log flush metrics, and in the follower fetch figures of both
// sides of replication: the followers' cycles and bytes in, the leaders'
// served fetches and bytes out. Every record reaches two followers, so
// the bytes in add up to at least twice the values produced.
func TestReplicationMetrics(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("repl-metrics", 3)
	const records, size = 64, 1024
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic("repl-metrics"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range records {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: make([]byte, size), Key: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitCluster(t, 10*time.Second, func() error {
		var in, out, cycles, served int64
		for id, s := range c.servers {
			m := s.metrics.Snapshot()
			if m.LogFlushTimes.Count == 0 || m.LogFlushFiles == 0 {
				return fmt.Errorf("broker %d: %d log flushes of %d files", id, m.LogFlushTimes.Count, m.LogFlushFiles)
			}
			in += m.ReplicationBytesIn
			out += m.ReplicationBytesOut
			cycles += m.FollowerFetchTimes.Count
			served += m.RequestTimes[metrics.RequestFetchFollower].Count
		}
		if in < 2*records*size || out < 2*records*size || cycles == 0 || served == 0 {
			return fmt.Errorf("replication bytes in %d, out %d (want at least %d each); follower fetch cycles %d, fetches served %d",
				in, out, 2*records*size, cycles, served)
		}
		return nil
	})
}
