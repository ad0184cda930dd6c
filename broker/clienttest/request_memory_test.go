package clienttest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
)

// TestFranzGoLargeBatchesUnderRequestMemory: franz-go producing 512 KiB
// records in batches of up to 4 MiB, five requests in flight, is
// acknowledged and read back whole at the default request memory bound
// (8 partitions, requests of up to 32 MiB), and with a bound of 6 MiB (one
// partition, requests of up to 4 MiB), where a pipelined request that does
// not fit waits for the memory of the one before it instead of failing
// (whether one waits depends on how fast the appends go: the test asserts
// only that none is refused and nothing stays held).
func TestFranzGoLargeBatchesUnderRequestMemory(t *testing.T) {
	for _, tc := range []struct {
		name       string
		bound      int64
		partitions int32
	}{{"default", 0, 8}, {"6MiB", 6 << 20, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			cfg.QueuedMaxRequestBytes = tc.bound
			cfg.MessageMaxBytes = 8 << 20
			reg := metrics.New(metrics.Options{BrokerID: cfg.NodeID, DataDir: cfg.DataDir, Logger: testLogger()})
			b := &testBroker{t: t, dir: cfg.DataDir, cfg: cfg, log: testLogger(), reg: reg}
			b.start()
			t.Cleanup(b.stop)
			clientMemory := func() metrics.RequestMemory {
				for _, rm := range reg.Snapshot().RequestMemory {
					if rm.Listener == "client" {
						return rm
					}
				}
				t.Fatal("no client request memory in the metrics")
				return metrics.RequestMemory{}
			}
			b.createTopic(t, "big", tc.partitions, nil)
			cl := b.client(t, kgo.ProducerBatchMaxBytes(4<<20), kgo.ProducerLinger(20*time.Millisecond),
				kgo.MaxBufferedBytes(64<<20), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			const records = 64
			value := func(i int) []byte {
				return append([]byte(fmt.Sprintf("%04d", i)), bytes.Repeat([]byte{byte(i)}, 512<<10)...)
			}
			ctx := testContext(t, 60*time.Second)
			recs := make([]*kgo.Record, records)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: "big", Value: value(i)}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("producing: %v", err)
			}
			got := consumeAll(t, b.addr, "big", records, kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20))
			seen := 0
			for _, vs := range got {
				for _, v := range vs {
					var i int
					if _, err := fmt.Sscanf(v[:4], "%04d", &i); err != nil || !bytes.Equal([]byte(v), value(i)) {
						t.Fatalf("record %q... read back differs", v[:4])
					}
					seen++
				}
			}
			if seen != records {
				t.Fatalf("read back %d records, want %d", seen, records)
			}
			rm := clientMemory()
			if rm.Held != 0 || rm.Refused != 0 {
				t.Fatalf("request memory %+v: want nothing held once answered, nothing refused", rm)
			}
			t.Logf("request memory: %+v", rm)
		})
	}
}
