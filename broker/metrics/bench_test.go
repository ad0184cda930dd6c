package metrics

import (
	"fmt"
	"testing"
	"time"
)

// Benchmarks of the hot path, from many goroutines at once as the
// broker's connections call it:
//
//	go test -run '^$' -bench . -cpu 1,2 ./broker/metrics/
func BenchmarkRecordProduceParallel(b *testing.B) {
	r := New(Options{Logger: quietLogger()})
	topics := make([]string, 64)
	for i := range topics {
		topics[i] = fmt.Sprintf("topic-%d", i)
		r.RecordProduce(topics[i], 0, 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.RecordProduce(topics[i%len(topics)], 1024, 10)
			i++
		}
	})
}

func BenchmarkRecordRequestParallel(b *testing.B) {
	r := New(Options{Logger: quietLogger()})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.RecordRequest(RequestProduce, 512, 3*time.Millisecond)
		}
	})
}

func BenchmarkSnapshot(b *testing.B) {
	r := New(Options{Logger: quietLogger(), DataDir: b.TempDir()})
	for i := range 1000 {
		r.RecordProduce(fmt.Sprintf("topic-%d", i), 1, 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Snapshot()
	}
}
