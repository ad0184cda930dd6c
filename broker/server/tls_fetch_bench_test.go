package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkConsumeByListener reads the same 64 MiB (16 partitions of
// 1 KiB records) through a PLAINTEXT and an SSL listener of one broker,
// with the consumer settings of make bench's TLS table (50 MiB fetches,
// 10 MiB per partition). Client and broker share this process, so a CPU
// profile (-cpuprofile) splits the cost of TLS into the broker's
// encryption and the client's decryption.
func BenchmarkConsumeByListener(b *testing.B) {
	e := newTLSEnv(b)
	s, _ := startListeners(b, threeListeners(e))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const (
		topic       = "bench-consume"
		recordBytes = 1024
		total       = 64 << 20
	)
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	value := make([]byte, recordBytes)
	_, _ = rand.Read(value)
	for range total / recordBytes {
		prod.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for _, l := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"PLAINTEXT", nil},
		{"SSL", []kgo.Opt{kgo.DialTLSConfig(clientTLS(b, e.ca, nil))}},
	} {
		b.Run(l.name, func(b *testing.B) {
			b.SetBytes(total)
			cpu0 := processCPU(b)
			for range b.N {
				name := map[string]string{"PLAINTEXT": "CLIENT", "SSL": "CLIENT_SECURE"}[l.name]
				cons, err := kgo.NewClient(append([]kgo.Opt{
					kgo.SeedBrokers(s.ListenerAddr(name).String()), kgo.ConsumeTopics(topic),
					kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
					kgo.FetchMaxBytes(50 << 20), kgo.FetchMaxPartitionBytes(10 << 20),
				}, l.opts...)...)
				if err != nil {
					b.Fatal(err)
				}
				read := 0
				for read < total/recordBytes {
					fs := cons.PollFetches(ctx)
					if err := fs.Err0(); err != nil {
						b.Fatal(fmt.Errorf("consuming: %w", err))
					}
					read += fs.NumRecords()
				}
				cons.Close()
			}
			// CPU time is what the machine's other load does not change:
			// wall-clock throughput on a shared machine does.
			b.ReportMetric(float64((processCPU(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
