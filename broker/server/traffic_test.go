package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTrafficBytes: a franz-go producer and consumer move a known payload
// through a PLAINTEXT listener (fetch responses go out with writev) and a
// SASL/SCRAM listener over TLS (buffered records, and the SASL exchange
// read before the request loop); the broker's client traffic grows by at
// least the payload each way, and by no more than the payload plus the
// protocol's framing.
func TestTrafficBytes(t *testing.T) {
	s, e, _ := startSCRAMServer(t, map[string]string{"super.users": "User:alice;User:ANONYMOUS"})
	const (
		records = 64
		size    = 16 << 10
		payload = records * size
		// Record and batch headers, request and response framing,
		// Metadata, the group's requests, the SCRAM exchange and the
		// empty long polls come to a few hundred bytes per request:
		// far less than this.
		slack = 64 << 10
	)
	listeners := []struct {
		name string
		opts []kgo.Opt
	}{
		{"CLIENT", nil},
		{"CLIENT_SASL_SCRAM", []kgo.Opt{kgo.DialTLSConfig(clientTLS(t, e.ca, nil)), kgo.SASL(scramMech("SCRAM-SHA-512", "alice", "alice-secret"))}},
	}
	for _, l := range listeners {
		t.Run(l.name, func(t *testing.T) {
			topic := "traffic-" + l.name
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			client := func(opts ...kgo.Opt) *kgo.Client {
				t.Helper()
				cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(s.ListenerAddr(l.name).String())}, l.opts...), opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				return cl
			}
			before := s.metrics.Snapshot()

			prod := client(kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()))
			recs := make([]*kgo.Record, records)
			for i := range recs {
				v := make([]byte, size)
				_, _ = rand.Read(v) // incompressible, though nothing compresses
				recs[i] = &kgo.Record{Value: v}
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			prod.Close()

			cons := client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := 0
			for got < records {
				fs := cons.PollFetches(ctx)
				if err := fs.Err(); err != nil {
					t.Fatalf("consume after %d records: %v", got, err)
				}
				got += fs.NumRecords()
			}
			cons.Close()
			// Every connection closed: nothing of this test is still
			// being read or written.
			waitCluster(t, 10*time.Second, func() error {
				if n := s.metrics.Snapshot().Connections; n != 0 {
					return fmt.Errorf("%d client connections still open", n)
				}
				return nil
			})
			after := s.metrics.Snapshot()
			in, out := after.TrafficIn-before.TrafficIn, after.TrafficOut-before.TrafficOut
			t.Logf("payload %d bytes each way; traffic in %d, out %d", payload, in, out)
			for _, c := range []struct {
				dir string
				n   int64
			}{{"in", in}, {"out", out}} {
				if c.n < payload || c.n > payload+slack {
					t.Errorf("traffic %s grew by %d bytes for a payload of %d: want %d to %d", c.dir, c.n, payload, payload, payload+slack)
				}
			}
		})
	}
}
