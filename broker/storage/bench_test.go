package storage

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks run on the real disk (b.TempDir), since fsync is the point.
//
//	go test ./broker/storage/ -run XXX -bench . -benchtime 2s
//
// MB/s is payload bytes appended (or read) per second.

func benchPartition(b *testing.B, policy FlushPolicy, partitions int) []*Partition {
	b.Helper()
	st, err := Open(b.TempDir(), Options{Logger: quietLogger(), FlushPolicy: policy, SyncMethod: SyncFdatasync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	var ps []*Partition
	for i := 0; i < partitions; i++ {
		p, err := st.CreatePartition("bench", int32(i), TopicConfig{SegmentBytes: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// BenchmarkAppend1KiB: one producer, batches of one 1 KiB record, each
// acknowledged before the next (the latency-bound worst case).
func BenchmarkAppend1KiB(b *testing.B) {
	for _, policy := range []FlushPolicy{FlushGroup, FlushInterval, FlushNone} {
		b.Run(string(policy), func(b *testing.B) {
			p := benchPartition(b, policy, 1)[0]
			batch := makeBatch(b, batchSpec{records: 1, valueSize: 1024})
			buf := make([]byte, len(batch))
			b.SetBytes(1024)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(buf, batch)
				if _, err := p.Append(context.Background(), buf, AppendOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppend1KiBConcurrent: 64 concurrent producers of 16 x 1 KiB
// batches on 16 partitions (the shape of the broker benchmark); the
// group policy shares each fsync among the appends waiting on a partition.
func BenchmarkAppend1KiBConcurrent(b *testing.B) {
	for _, policy := range []FlushPolicy{FlushGroup, FlushNone} {
		b.Run(string(policy), func(b *testing.B) {
			ps := benchPartition(b, policy, 16)
			batch := makeBatch(b, batchSpec{records: 16, valueSize: 1024})
			var n atomic.Int64
			b.SetBytes(16 * 1024)
			b.SetParallelism(32) // 32 x GOMAXPROCS goroutines: 64 on this 2-core machine
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, len(batch))
				p := ps[int(n.Add(1))%len(ps)]
				for pb.Next() {
					copy(buf, batch)
					if _, err := p.Append(context.Background(), buf, AppendOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAppendFsyncs: the shape of BenchmarkAppend1KiBConcurrent under
// the group policy, reporting fsyncs per append and the p50 and p99 append
// latency: what the store's sync rounds save and what they cost.
func BenchmarkAppendFsyncs(b *testing.B) {
	ps := benchPartition(b, FlushGroup, 16)
	st := ps[0].store
	var syncs atomic.Int64
	orig := st.syncData
	st.syncData = func(f *os.File) error { syncs.Add(1); return orig(f) }
	batch := makeBatch(b, batchSpec{records: 16, valueSize: 1024})
	var n atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetBytes(16 * 1024)
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, len(batch))
		p := ps[int(n.Add(1))%len(ps)]
		var mine []time.Duration
		for pb.Next() {
			copy(buf, batch)
			t := time.Now()
			if _, err := p.Append(context.Background(), buf, AppendOptions{}); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/op")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkRead: 1 MiB fetches of 16 x 1 KiB batches from the page cache.
func BenchmarkRead(b *testing.B) {
	p := benchPartition(b, FlushNone, 1)[0]
	batch := makeBatch(b, batchSpec{records: 16, valueSize: 1024})
	for i := 0; i < 1024; i++ { // 16 MiB
		buf := append([]byte(nil), batch...)
		if _, err := p.Append(context.Background(), buf, AppendOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	end := p.HighWatermark()
	b.ResetTimer()
	var total int64
	off := int64(0)
	for i := 0; i < b.N; i++ {
		data, err := p.Read(off, 1<<20, end)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
		off += int64(len(data)/len(batch)) * 16
		if off >= end {
			off = 0
		}
	}
	b.SetBytes(total / int64(b.N))
}

// BenchmarkRecoveryAfterCrash measures Open after an unclean stop of a log
// of TRIBUTARY_BENCH_LOG_MB MiB (default 256), with the recovery point one
// checkpoint behind by TRIBUTARY_BENCH_TAIL_MB MiB (default 64) that must be
// CRC-checked. Reported as ms per Open.
func BenchmarkRecoveryAfterCrash(b *testing.B) {
	logMB, tailMB := envInt("TRIBUTARY_BENCH_LOG_MB", 256), envInt("TRIBUTARY_BENCH_TAIL_MB", 64)
	dir := b.TempDir()
	st, err := Open(dir, Options{Logger: quietLogger(), FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	p, err := st.CreatePartition("rec", 0, TopicConfig{SegmentBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	batch := makeBatch(b, batchSpec{records: 16, valueSize: 1024})
	appendMB := func(mb int) {
		for written := 0; written < mb<<20; written += len(batch) {
			if _, err := p.Append(context.Background(), append([]byte(nil), batch...), AppendOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	appendMB(logMB - tailMB)
	if err := p.checkpoint(); err != nil {
		b.Fatal(err)
	}
	appendMB(tailMB)
	// Simulate kill -9: take the files as they are and drop the lock.
	crashed := filepath.Join(b.TempDir(), "crashed")
	if err := os.Rename(dir, crashed); err != nil {
		b.Fatal(err)
	}
	st.Close() // closes the files; it can no longer write the old directory
	os.Remove(filepath.Join(crashed, cleanShutdownMarker))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Each Open writes a new recovery point; put the stale one back.
		if err := writeRecoveryPoint(filepath.Join(crashed, "rec-0"), recoveryPointAt(b, crashed, logMB-tailMB, len(batch))); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		st2, err := Open(crashed, Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/open")
		b.StopTimer()
		st2.Close()
		os.Remove(filepath.Join(crashed, cleanShutdownMarker))
		b.StartTimer()
	}
	b.SetBytes(int64(tailMB) << 20)
}

// recoveryPointAt is the recovery point after mb MiB of same-size batches.
func recoveryPointAt(b *testing.B, dir string, mb, batchSize int) recoveryPoint {
	b.Helper()
	n := int64((mb<<20 + batchSize - 1) / batchSize)
	return recoveryPoint{offset: n * 16, segment: 0, position: n * int64(batchSize)}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkOpen1000Partitions: clean start-up of a store with 1,000 small
// partitions; reports ms per Open and the Go heap they hold.
func BenchmarkOpen1000Partitions(b *testing.B) {
	dir := b.TempDir()
	st, err := Open(dir, Options{Logger: quietLogger(), FlushPolicy: FlushNone})
	if err != nil {
		b.Fatal(err)
	}
	batch := makeBatch(b, batchSpec{records: 4, valueSize: 256})
	for i := 0; i < 1000; i++ {
		p, err := st.CreatePartition(fmt.Sprintf("t%d", i%50), int32(i/50), TopicConfig{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Append(context.Background(), append([]byte(nil), batch...), AppendOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		st, err := Open(dir, Options{Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/open")
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "MiB-heap")
		if len(st.Partitions()) != 1000 {
			b.Fatalf("%d partitions", len(st.Partitions()))
		}
		b.StopTimer()
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkAppendPath measures the CPU cost of the append path alone: a
// RAM file system (no disk wait) and the none flush policy, one 1 KiB record
// per append, acknowledged before the next. The plain and idempotent cases
// show what producers that use no transactions pay; the transactional one
// commits every 100 appends (a verification, then a marker).
func BenchmarkAppendPath(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec batchSpec
	}{
		{"plain", batchSpec{records: 1, valueSize: 1024}},
		{"idempotent", batchSpec{records: 1, valueSize: 1024, producerID: 11, producerEpoch: 0}},
		{"transactional", batchSpec{records: 1, valueSize: 1024, producerID: 12, producerEpoch: 0, transactional: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st, err := Open(memTempDir(b), Options{Logger: quietLogger(), FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			p, err := st.CreatePartition("path", 0, TopicConfig{SegmentBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, len(makeBatch(b, tc.spec)))
			b.SetBytes(1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				spec := tc.spec
				if spec.producerID != 0 {
					spec.baseSequence = int32(i)
				}
				b.StopTimer()
				copy(buf, makeBatch(b, spec))
				b.StartTimer()
				var opts AppendOptions
				if spec.transactional && i%100 == 0 {
					opts.VerificationGuard = p.StartTxnVerification(spec.producerID, 0, spec.baseSequence)
				}
				if _, err := p.Append(context.Background(), buf, opts); err != nil {
					b.Fatal(err)
				}
				if spec.transactional && i%100 == 99 {
					if _, err := p.AppendTxnMarker(context.Background(), TxnMarker{ProducerID: spec.producerID, Commit: true}, AppendOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkAppendPipelined: the batches of eight pipelined produce
// requests to one partition (each 16 batches of 4 x 1 KiB records, as a
// producer lingering over 16 partitions sends them) appended together:
// joined into one buffer first, as the server once did, or written with
// WriteVec from their own buffers. No fsync: the difference is CPU.
func BenchmarkAppendPipelined(b *testing.B) {
	const requests = 8
	var reqs [][]byte
	for range requests {
		var r []byte
		for range 16 {
			r = append(r, makeBatch(b, batchSpec{records: 4, valueSize: 1024})...)
		}
		reqs = append(reqs, r)
	}
	total := 0
	for _, r := range reqs {
		total += len(r)
	}
	for _, tc := range []struct {
		name  string
		write func(p *Partition, bufs [][]byte) (AppendResult, func(context.Context) error, error)
	}{
		{"joined", func(p *Partition, bufs [][]byte) (AppendResult, func(context.Context) error, error) {
			joint := make([]byte, 0, total)
			for _, r := range bufs {
				joint = append(joint, r...)
			}
			return p.Write(joint, AppendOptions{})
		}},
		{"vectored", func(p *Partition, bufs [][]byte) (AppendResult, func(context.Context) error, error) {
			return p.WriteVec(bufs, AppendOptions{})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st, err := Open(memTempDir(b), Options{Logger: quietLogger(), FlushPolicy: FlushNone, CheckpointInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			p, err := st.CreatePartition("pipelined", 0, TopicConfig{SegmentBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			bufs := make([][]byte, requests)
			for i, r := range reqs {
				bufs[i] = make([]byte, len(r))
			}
			b.SetBytes(int64(total))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i, r := range reqs {
					copy(bufs[i], r) // the requests as read off the connection
				}
				if _, _, err := tc.write(p, bufs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendWriteback: the shape of a lingering producer's requests
// on one broker: each request appends a 256 KiB batch (256 x 1 KiB records)
// to each of 16 partitions and waits until all are durable; four requests
// are in flight at once. "off" never starts write-back before the sync
// round; "256KiB" starts it as each segment passes another writebackChunk
// (segment.startWriteback). Reports the requests' p50 and p99 latency.
func BenchmarkAppendWriteback(b *testing.B) {
	for _, tc := range []struct {
		name  string
		chunk int64
	}{{"off", 1 << 62}, {"256KiB", 256 << 10}} {
		b.Run(tc.name, func(b *testing.B) {
			defer func(c int64) { writebackChunk = c }(writebackChunk)
			writebackChunk = tc.chunk
			ps := benchPartition(b, FlushGroup, 16)
			batch := makeBatch(b, batchSpec{records: 256, valueSize: 1024})
			var mu sync.Mutex
			var lat []time.Duration
			b.SetBytes(int64(len(ps)) * 256 * 1024)
			b.SetParallelism(2) // 2 x GOMAXPROCS requests in flight: 4 here
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				bufs := make([][]byte, len(ps))
				for i := range bufs {
					bufs[i] = make([]byte, len(batch))
				}
				var mine []time.Duration
				for pb.Next() {
					t := time.Now()
					var wg sync.WaitGroup
					for i, p := range ps {
						copy(bufs[i], batch)
						wg.Add(1)
						go func() {
							defer wg.Done()
							if _, err := p.Append(context.Background(), bufs[i], AppendOptions{}); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkParseProduced: the leader's checks of one produced batch of 16
// 1 KiB records before the log takes it (parseProduced), in each codec,
// with values of a repeated pattern (which the codecs shrink) and random
// ones (as the load test's, which they do not). An uncompressed batch is
// walked in place; a compressed one is streamed through its decoder
// (checkRecords). MB/s is the records' inflated bytes.
func BenchmarkParseProduced(b *testing.B) {
	random := make([][]byte, 16)
	for i := range random {
		random[i] = make([]byte, 1024)
		rand.Read(random[i])
	}
	for _, values := range []string{"pattern", "random"} {
		for codec, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
			b.Run(values+"/"+name, func(b *testing.B) {
				spec := batchSpec{records: 16, valueSize: 1024, codec: codec}
				if values == "random" {
					spec.values = random
				}
				benchParseProduced(b, makeBatch(b, spec))
			})
		}
	}
}

func benchParseProduced(b *testing.B, batch []byte) {
	b.SetBytes(16 * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := parseProduced(batch, TopicConfig{MaxMessageBytes: 1 << 20}, false); err != nil {
			b.Fatal(err)
		}
	}
}
