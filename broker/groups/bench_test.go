package groups

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/tributary/tributary/broker/storage"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func benchCoordinator(b *testing.B, log OffsetLog) *Coordinator {
	b.Helper()
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := New(context.Background(), log, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func benchPartitionLog(b *testing.B, policy storage.FlushPolicy) *PartitionLog {
	b.Helper()
	st, err := storage.Open(b.TempDir(), storage.Options{FlushPolicy: policy, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	l, err := OpenPartitionLog(st)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkOffsetCommit measures OffsetCommit requests of 10 partitions
// each, from 8 clients per CPU in separate groups, per offsets log.
func BenchmarkOffsetCommit(b *testing.B) {
	logs := []struct {
		name string
		open func(b *testing.B) OffsetLog
	}{
		{"memory", func(*testing.B) OffsetLog { return NewMemoryLog() }},
		{"partition-fsync", func(b *testing.B) OffsetLog { return benchPartitionLog(b, storage.FlushGroup) }},
		{"partition-nofsync", func(b *testing.B) OffsetLog { return benchPartitionLog(b, storage.FlushNone) }},
	}
	for _, l := range logs {
		b.Run(l.name, func(b *testing.B) {
			c := benchCoordinator(b, l.open(b))
			ctx := context.Background()
			var groups atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(8) // many clients share each fsync (group commit)
			b.RunParallel(func(pb *testing.PB) {
				req := commitReq(8, fmt.Sprintf("bench-%d", groups.Add(1)), "", -1, "t", 0, 0)
				for p := int32(1); p < 10; p++ {
					req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: p, LeaderEpoch: -1})
				}
				var offset int64
				for pb.Next() {
					offset++
					for i := range req.Topics[0].Partitions {
						req.Topics[0].Partitions[i].Offset = offset
					}
					if code := c.OffsetCommit(ctx, req).Topics[0].Partitions[0].ErrorCode; code != 0 {
						b.Fatalf("commit: %s", codeName(code))
					}
				}
			})
			b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "offsets/s")
		})
	}
}

// BenchmarkReplay measures start-up: rebuilding 1,000 groups of 100
// committed partitions each (100,000 records) from __consumer_offsets.
func BenchmarkReplay(b *testing.B) {
	l := benchPartitionLog(b, storage.FlushNone)
	ctx := context.Background()
	c := benchCoordinator(b, l)
	for g := range 1000 {
		req := commitReq(8, fmt.Sprintf("group-%d", g), "", -1, "t", 0, 1)
		for p := int32(1); p < 100; p++ {
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: p, Offset: int64(p), LeaderEpoch: -1})
		}
		if code := c.OffsetCommit(ctx, req).Topics[0].Partitions[0].ErrorCode; code != 0 {
			b.Fatalf("commit: %s", codeName(code))
		}
	}
	_ = c.Close()
	b.ResetTimer()
	for range b.N {
		c := benchCoordinator(b, l)
		if n := len(c.Groups()); n != 1000 {
			b.Fatalf("replayed %d groups", n)
		}
		_ = c.Close()
	}
	b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
