package storage

import (
	"context"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// TestCleanerKeepsItsKeepBufferBetweenPasses: the buffer a pass keeps a
// compressed batch's inflated records in (up to cleanerKeptInflated) was
// grown from empty on every pass, in append's 1.25x steps: about 5 MB of
// the 10 MB a pass over a gzip bomb allocated. The store keeps it for the
// next pass now, allocated at its full size once, so a second pass
// allocates about 5 MB, under the 7 MiB this test allows (10 MB before).
func TestCleanerKeepsItsKeepBufferBetweenPasses(t *testing.T) {
	clock := &fakeClock{now: time.UnixMilli(1_700_000_000_000)}
	// Offsets 0-2 the bomb, 3 "b" again, 4 and 5 roll.
	st, p, bomb, recs := compactedBomb(t, clock, recordbatch.CodecGzip, []keyValue{{"a", make([]byte, 64<<20)}, {"b", []byte("old")}, {"t", nil}})
	// kept returns the keep-buffer the store holds for the next pass.
	kept := func() []byte {
		t.Helper()
		select {
		case k := <-st.cleanerKeys:
			st.cleanerKeys <- k
			return k.inflated.b
		default:
			t.Fatal("no key hasher kept after a pass")
			return nil
		}
	}
	pass := func() uint64 {
		t.Helper()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := p.compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	first := pass()
	buf := kept()
	if cap(buf) != cleanerKeptInflated {
		t.Fatalf("keep-buffer of %d bytes after the first pass, want %d", cap(buf), cleanerKeptInflated)
	}
	// The second pass rewrites the batch again: the tombstone's horizon
	// has passed.
	clock.now = clock.now.Add(2 * time.Hour)
	second := pass()
	t.Logf("a %d-byte gzip batch inflating to %d: first pass %d bytes allocated, second %d", len(bomb), len(recs), first, second)
	if again := kept(); unsafe.SliceData(again[:1]) != unsafe.SliceData(buf[:1]) {
		t.Fatal("the second pass allocated a keep-buffer of its own")
	}
	limit := uint64(7 << 20)
	if raceEnabled {
		// The race detector's sync.Pool drops pooled codecs at random.
		limit = 12 << 20
	}
	if second > limit {
		t.Fatalf("second pass: %d bytes allocated, want at most %d", second, limit)
	}
	latest := latestByKey(t, p)
	if _, ok := latest["t"]; ok || len(latest) != 4 || latest["a"] != (keyInfo{0, 1, false}) || latest["b"] != (keyInfo{3, 1, false}) {
		t.Fatalf("after two passes: %v", latest)
	}
}
