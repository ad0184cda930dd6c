package storage

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// Cleaner benchmarks: one log-cleaner pass (Partition.compact) per op over
// a log written afresh before each op (outside the timer, so -benchmem's
// B/op is the pass's own allocation).
//
//	TMPDIR=/dev/shm go test ./broker/storage/ -run XXX -bench Cleaner -benchmem -benchtime 20x
//
// cpu-s/GiB is the process's CPU time (getrusage) during the passes per
// GiB of inflated records in the cleaned segments.

// cleanerBenchLog writes batches into a fresh compacted partition, rolls
// past them and checkpoints, so that a pass may clean every segment
// holding them.
func cleanerBenchLog(b *testing.B, batches [][]byte) (*Partition, func()) {
	b.Helper()
	dir, err := os.MkdirTemp("", "tributary-cleaner-bench-")
	if err != nil {
		b.Fatal(err)
	}
	st, err := Open(dir, Options{Logger: quietLogger(), SyncMethod: SyncFdatasync})
	if err != nil {
		b.Fatal(err)
	}
	done := func() {
		st.Close()
		os.RemoveAll(dir)
	}
	p, err := st.CreatePartition("cleaner", 0, TopicConfig{CleanupPolicy: CleanupCompact, SegmentBytes: 1 << 20, DeleteRetentionMs: time.Hour})
	if err != nil {
		done()
		b.Fatal(err)
	}
	for _, batch := range append(batches, makeBatch(b, batchSpec{records: 1, keys: []string{"roll"}, valueSize: 1<<20 - 4096})) {
		if _, err := p.Append(context.Background(), append([]byte(nil), batch...), AppendOptions{}); err != nil {
			done()
			b.Fatal(err)
		}
	}
	if err := p.checkpoint(); err != nil {
		done()
		b.Fatal(err)
	}
	return p, done
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runCleanerBench times b.N passes, each over a fresh log of batches
// holding inflated bytes of records.
func runCleanerBench(b *testing.B, batches [][]byte, inflated int64) {
	b.ReportAllocs()
	b.SetBytes(inflated)
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p, done := cleanerBenchLog(b, batches)
		before := p.Size()
		b.StartTimer()
		start := cpuTime()
		if err := p.compact(context.Background()); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - start
		b.StopTimer()
		if p.Size() >= before {
			b.Fatalf("the pass did not shrink the log: %d -> %d bytes", before, p.Size())
		}
		done()
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/(float64(inflated)*float64(b.N)/(1<<30)), "cpu-s/GiB")
}

// BenchmarkCleanerBomb: a gzip batch of two records, "a" with a value of
// 64 MiB of zeros and "b", which a later batch supersedes: the pass maps
// the batch's keys and rewrites it with "a" alone (about 65 KB of gzip
// on disk).
func BenchmarkCleanerBomb(b *testing.B) {
	const size = 64 << 20
	recs := recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Key: []byte("a"), Value: make([]byte, size)})
	recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: 1, TimestampDelta: 1, Key: []byte("b"), Value: []byte("old")})
	bomb, err := recordbatch.Encode(recordbatch.Header{Attributes: recordbatch.CodecGzip, LastOffsetDelta: 1, BaseTimestamp: 1_700_000_000_000,
		MaxTimestamp: 1_700_000_000_001, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 2}, recs)
	if err != nil {
		b.Fatal(err)
	}
	newer := makeBatch(b, batchSpec{records: 1, keys: []string{"b"}, valueSize: 10})
	runCleanerBench(b, [][]byte{bomb, newer}, int64(len(recs)))
}

// BenchmarkCleanerPass: an ordinary compacted topic, 256 batches of 64
// records of 1 KiB (16 MiB of records, values of random letters that
// compress about 2:1); the even records' keys are unique, the odd ones'
// repeat in every batch, so every batch but the last loses half its
// records and is rewritten.
func BenchmarkCleanerPass(b *testing.B) {
	const batches, perBatch, valueSize = 256, 64, 1024
	rng := rand.New(rand.NewSource(1))
	for _, codec := range []int{recordbatch.CodecNone, recordbatch.CodecGzip, recordbatch.CodecSnappy, recordbatch.CodecLz4, recordbatch.CodecZstd} {
		b.Run(fmt.Sprintf("codec=%d", codec), func(b *testing.B) {
			var log [][]byte
			inflated := int64(0)
			for i := 0; i < batches; i++ {
				spec := batchSpec{records: perBatch, codec: codec, keys: make([]string, perBatch), values: make([][]byte, perBatch)}
				for j := 0; j < perBatch; j++ {
					if j%2 == 0 {
						spec.keys[j] = fmt.Sprintf("unique-%d-%d", i, j)
					} else {
						spec.keys[j] = fmt.Sprintf("shared-%d", j)
					}
					v := make([]byte, valueSize)
					for k := range v {
						v[k] = byte('a' + rng.Intn(16))
					}
					spec.values[j] = v
				}
				batch := makeBatch(b, spec)
				log = append(log, batch)
				h, err := recordbatch.ParseHeader(batch)
				if err != nil {
					b.Fatal(err)
				}
				recs, err := recordbatch.Decompress(codec, batch[recordbatch.HeaderSize:h.Size()])
				if err != nil {
					b.Fatal(err)
				}
				inflated += int64(len(recs))
			}
			runCleanerBench(b, log, inflated)
		})
	}
}
