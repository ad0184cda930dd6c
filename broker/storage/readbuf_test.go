package storage

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// TestReadIsolatedIntoMatchesRead: reads into pooled buffers return the
// bytes a read into fresh memory does (one segment, across segments, a
// first batch over the limit, the high watermark), and the buffers, once
// released and filled again by other reads, give every read the bytes it
// read and nothing of another's.
func TestReadIsolatedIntoMatchesRead(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "rb", 0, TopicConfig{SegmentBytes: 64 << 10})
	for i := range 40 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1 + i%5, valueSize: 100 + 700*(i%7)}))
	}
	p.SetHighWatermark(35)
	cases := []struct {
		name     string
		offset   int64
		maxBytes int32
	}{
		{"whole log, across segments", 0, 1 << 20},
		{"a few batches", 3, 9000},
		{"first batch over the limit", 10, 1},
		{"from the middle to the high watermark", 80, 1 << 20},
		{"at the high watermark", p.HighWatermark(), 1 << 20},
	}
	var rb ReadBuffers
	for round := range 3 {
		got := make([][]byte, len(cases))
		for i, c := range cases {
			want, err := p.ReadIsolated(c.offset, c.maxBytes, ReadUncommitted)
			if err != nil {
				t.Fatalf("%s: ReadIsolated: %v", c.name, err)
			}
			res, err := p.ReadIsolatedInto(c.offset, c.maxBytes, ReadUncommitted, &rb)
			if err != nil {
				t.Fatalf("%s: ReadIsolatedInto: %v", c.name, err)
			}
			if !bytes.Equal(res.Records, want.Records) || res.HighWatermark != want.HighWatermark || res.LastStableOffset != want.LastStableOffset {
				t.Fatalf("round %d, %s: %d bytes (HW %d) into buffers, %d bytes (HW %d) into fresh memory", round, c.name, len(res.Records), res.HighWatermark, len(want.Records), want.HighWatermark)
			}
			if cap(res.Records) != len(res.Records) && len(res.Records) > 0 {
				// An append to one read's records must not run into
				// the next read's.
				t.Fatalf("%s: records of %d bytes with a capacity of %d", c.name, len(res.Records), cap(res.Records))
			}
			got[i] = res.Records
		}
		// Every read's bytes are still its own once the others are done.
		for i, c := range cases {
			want, err := p.ReadIsolated(c.offset, c.maxBytes, ReadUncommitted)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[i], want.Records) {
				t.Fatalf("round %d, %s: a later read overwrote this one's records", round, c.name)
			}
		}
		rb.Release()
	}
}

// TestReadBuffersDoNotOverlap: the slices of one ReadBuffers never share
// a byte, small reads share a block, and each is exactly as long as asked.
func TestReadBuffersDoNotOverlap(t *testing.T) {
	var rb ReadBuffers
	defer rb.Release()
	sizes := []int{1, 100, 40 << 10, 30 << 10, 5, 1 << 20, 70 << 10, 3, 64 << 10, 200}
	type span struct{ from, to uintptr }
	var spans []span
	for _, n := range sizes {
		b := rb.alloc(n, n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("alloc(%d): len %d, cap %d", n, len(b), cap(b))
		}
		from := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		s := span{from, from + uintptr(n)}
		for _, o := range spans {
			if s.from < o.to && o.from < s.to {
				t.Fatalf("alloc(%d) overlaps an earlier slice", n)
			}
		}
		spans = append(spans, s)
	}
	if len(rb.blocks) >= len(sizes) {
		t.Fatalf("%d reads took %d blocks: small reads do not share", len(sizes), len(rb.blocks))
	}
	var nilRB *ReadBuffers
	if b := nilRB.alloc(10, 10); len(b) != 10 {
		t.Fatalf("a nil ReadBuffers allocated %d bytes for 10", len(b))
	}
	nilRB.Release()
}

// TestReadBudgetBoundsReads: reads charged to a budget get what is left
// of it, whole batches that are a prefix of what an unbounded read
// returns; a read that finds it spent still gets its first batch whole,
// once per ReadBuffers (KIP-74, so every fetch progresses), also a batch
// larger than the whole budget; a later read of the same ReadBuffers gets
// nothing; Release gives every byte back.
func TestReadBudgetBoundsReads(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "budget", 0, TopicConfig{SegmentBytes: 1 << 20})
	for range 60 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 4, valueSize: 5000})) // ~20 KiB
	}
	big := mustCreate(t, st, "budget-big", 0, TopicConfig{})
	mustAppend(t, big, makeBatch(t, batchSpec{records: 1, valueSize: 300 << 10}))
	p.SetHighWatermark(p.LogEndOffset())
	big.SetHighWatermark(big.LogEndOffset())
	all, err := p.Read(0, 1<<30, p.HighWatermark())
	if err != nil {
		t.Fatal(err)
	}
	firstBatch, err := p.Read(0, 1, p.HighWatermark())
	if err != nil {
		t.Fatal(err)
	}

	const limit = 256 << 10
	b := NewReadBudget(limit)
	rb1 := b.Buffers()
	got, err := p.ReadInto(0, 1<<30, p.HighWatermark(), rb1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) > limit || !bytes.Equal(got, all[:len(got)]) || len(got) == len(all) {
		t.Fatalf("a read of %d bytes under a budget of %d returned %d bytes (prefix of the log: %v)", len(all), limit, len(got), bytes.Equal(got, all[:min(len(got), len(all))]))
	}
	if b.Held() > limit || b.Cut() != 1 {
		t.Fatalf("held %d of a %d budget, %d reads cut (want 1)", b.Held(), limit, b.Cut())
	}

	// Spent: the next fetch gets its first batch whole, past the budget.
	rb2 := b.Buffers()
	got2, err := p.ReadInto(0, 1<<30, p.HighWatermark(), rb2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got2, firstBatch) {
		t.Fatalf("a read that found the budget spent returned %d bytes, want its first batch (%d)", len(got2), len(firstBatch))
	}
	if over := b.Held() - limit; over > int64(len(firstBatch)) {
		t.Fatalf("the budget is exceeded by %d bytes, more than the one batch of %d", over, len(firstBatch))
	}
	// Its second read gets nothing: one batch past the budget per
	// ReadBuffers.
	if got3, err := big.ReadInto(0, 1<<30, big.HighWatermark(), rb2); err != nil || len(got3) != 0 {
		t.Fatalf("a second read past the budget returned %d bytes, %v", len(got3), err)
	}
	rb1.Release()
	rb2.Release()
	rb2.Release()
	if b.Held() != 0 {
		t.Fatalf("%d bytes held once every ReadBuffers is released", b.Held())
	}

	// A batch larger than the whole budget still comes whole.
	small := NewReadBudget(64 << 10)
	rb := small.Buffers()
	whole, err := big.ReadInto(0, 1, big.HighWatermark(), rb)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := big.Read(0, 1, big.HighWatermark())
	if !bytes.Equal(whole, want) || len(whole) < 300<<10 {
		t.Fatalf("a batch of %d bytes under a budget of 64 KiB: read %d bytes", len(want), len(whole))
	}
	rb.Release()
	if small.Held() != 0 {
		t.Fatalf("%d bytes held after Release", small.Held())
	}

	// Unbounded, a budget only counts.
	count := NewReadBudget(0)
	rb = count.Buffers()
	if got, err := p.ReadInto(0, 1<<30, p.HighWatermark(), rb); err != nil || !bytes.Equal(got, all) {
		t.Fatalf("an unbounded budget's read returned %d of %d bytes, %v", len(got), len(all), err)
	}
	if count.Held() < int64(len(all)) {
		t.Fatalf("an unbounded budget counts %d bytes held for a read of %d", count.Held(), len(all))
	}
	rb.Release()
	// A read that ends at its segment's end takes one block, the
	// smallest that holds it.
	if _, err := big.ReadInto(0, 1<<30, big.HighWatermark(), rb); err != nil || count.Held() != 512<<10 {
		t.Fatalf("a read of %d bytes holds %d bytes (want one block of 512 KiB), %v", big.LogEndOffset(), count.Held(), err)
	}
	rb.Release()
	if count.Held() != 0 || count.Cut() != 0 {
		t.Fatalf("an unbounded budget: %d held after Release, %d reads cut", count.Held(), count.Cut())
	}
}

// TestReadBudgetUnderConcurrentReads: readers sharing a small budget never
// hold more than the budget and one batch each, every read returns whole
// batches from its offset, and every byte comes back.
func TestReadBudgetUnderConcurrentReads(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "budget-concurrent", 0, TopicConfig{SegmentBytes: 256 << 10})
	const batch = 9 << 10
	for range 200 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: batch - 100}))
	}
	p.SetHighWatermark(p.LogEndOffset())
	all, err := p.Read(0, 1<<30, p.HighWatermark())
	if err != nil {
		t.Fatal(err)
	}
	const (
		readers = 12
		limit   = 512 << 10
	)
	b := NewReadBudget(limit)
	var (
		wg      sync.WaitGroup
		maxHeld atomic.Int64
		errs    = make(chan error, readers)
	)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rb := b.Buffers()
			defer rb.Release()
			for i := range 60 {
				off := int64((r*7 + i*13) % 200)
				got, err := p.ReadInto(off, int32(64<<10+i*(32<<10)), p.HighWatermark(), rb)
				if err != nil {
					errs <- err
					return
				}
				for {
					h := b.Held()
					if h <= maxHeld.Load() || maxHeld.CompareAndSwap(maxHeld.Load(), h) {
						break
					}
				}
				if len(got) == 0 {
					// Spent, and this ReadBuffers went past it
					// already: a fetch answers with what it has.
					rb.Release()
					continue
				}
				want, _ := p.Read(off, 1, p.HighWatermark())
				if !bytes.HasPrefix(got, want) || !bytes.Contains(all, got) {
					errs <- fmt.Errorf("a read from %d returned %d bytes that are not whole batches of the log from there", off, len(got))
					return
				}
				if i%3 == 0 {
					rb.Release()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Past the budget by at most one batch per reader (the one read
	// past it per ReadBuffers).
	if bound := int64(limit + readers*batch); maxHeld.Load() > bound {
		t.Fatalf("readers held up to %d bytes, over the budget of %d and a batch each (%d)", maxHeld.Load(), limit, bound)
	}
	if b.Held() != 0 {
		t.Fatalf("%d bytes held once every reader released", b.Held())
	}
	if b.Cut() == 0 {
		t.Fatal("no read was cut short: the budget was never spent, the test tests nothing")
	}
}

// TestReadTrackerReleasesWhatItsOwnerForgot: the ReadBuffers a tracker's
// owner forgot to release are released by ReleaseAll (the budget holds
// nothing after it) and counted as leaked; those released by their owner
// are not, and a ReadBuffers used again after its Release is listed again.
func TestReadTrackerReleasesWhatItsOwnerForgot(t *testing.T) {
	budget := NewReadBudget(0)
	tr := budget.Tracker()
	released := tr.Buffers("Fetch")
	released.alloc(100<<10, 0)
	released.Release()
	reused := tr.Buffers("Fetch")
	reused.alloc(10, 0)
	reused.Release()
	reused.alloc(70<<10, 0) // a long poll's next read
	forgotten := tr.Buffers("Other")
	forgotten.alloc(200<<10, 0)
	tr.Buffers("Fetch") // never read into: holds nothing
	if budget.Held() == 0 {
		t.Fatal("the reads charged nothing")
	}
	leak := tr.ReleaseAll()
	if held := budget.Held(); held != 0 {
		t.Errorf("%d bytes held after ReleaseAll", held)
	}
	slices.Sort(leak.Tags)
	if want := (Leak{Buffers: 2, Bytes: 128<<10 + 256<<10, Tags: []string{"Fetch", "Other"}}); leak.Buffers != want.Buffers || leak.Bytes != want.Bytes || !slices.Equal(leak.Tags, want.Tags) {
		t.Errorf("ReleaseAll found %+v, want %+v", leak, want)
	}
	if got := budget.Leaked(); got != 2 {
		t.Errorf("budget counts %d leaked releases, want 2", got)
	}
	if again := tr.ReleaseAll(); again.Buffers != 0 || budget.Leaked() != 2 {
		t.Errorf("a second ReleaseAll found %+v (leaked count %d)", again, budget.Leaked())
	}
}

// TestReadTrackerNeverReleasesTwice: a ReadBuffers released by its owner
// and by the tracker's ReleaseAll, in either order and at once, gives its
// charge back once: the budget never goes below what the others hold.
func TestReadTrackerNeverReleasesTwice(t *testing.T) {
	budget := NewReadBudget(0)
	other := budget.Buffers() // another connection's, held throughout
	other.alloc(64<<10, 0)
	const held = 64 << 10
	tr := budget.Tracker()

	// The owner first, then the backstop.
	rb := tr.Buffers("Fetch")
	rb.alloc(1000, 0)
	rb.Release()
	if leak := tr.ReleaseAll(); leak.Buffers != 0 {
		t.Errorf("ReleaseAll after the owner's Release found %+v", leak)
	}
	if got := budget.Held(); got != held {
		t.Fatalf("owner then backstop: budget holds %d, want %d", got, held)
	}
	// The backstop first, then a late Release by the owner.
	rb = tr.Buffers("Fetch")
	rb.alloc(1000, 0)
	if leak := tr.ReleaseAll(); leak.Buffers != 1 {
		t.Errorf("ReleaseAll found %+v, want the one buffer", leak)
	}
	rb.Release()
	if got := budget.Held(); got != held {
		t.Fatalf("backstop then owner: budget holds %d, want %d", got, held)
	}
	// Both at once, many times (run with -race).
	for range 200 {
		rb := tr.Buffers("Fetch")
		rb.alloc(1000, 0)
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); <-start; rb.Release() }()
		go func() { defer wg.Done(); <-start; tr.ReleaseAll() }()
		close(start)
		wg.Wait()
		if got := budget.Held(); got != held {
			t.Fatalf("owner and backstop at once: budget holds %d, want %d", got, held)
		}
	}
	other.Release()
	if got := budget.Held(); got != 0 {
		t.Fatalf("budget holds %d once everything is released", got)
	}
}

// TestReadWithinReadsNothingThatDoesNotFit: a read that may not pass its
// limit (not the first data of its response) returns the batches that fit
// it, as a read into fresh memory does, and when its first batch does not
// fit returns nothing without reading it: nothing is charged to its
// budget. A read that may (KIP-74) still returns that batch whole.
func TestReadWithinReadsNothingThatDoesNotFit(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "within", 0, TopicConfig{SegmentBytes: 256 << 10})
	for i := range 12 {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 1, valueSize: 1000 + 30_000*(i%3)}))
	}
	whole, err := p.ReadIsolated(0, 1<<30, ReadUncommitted)
	if err != nil {
		t.Fatal(err)
	}
	batchAt := func(offset int64) int { // the size of the batch at offset
		b, err := p.Read(offset, 1, p.HighWatermark())
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	big := batchAt(2) // 61 KB
	budget := NewReadBudget(0)
	rb := budget.Buffers()

	res, err := p.ReadIsolatedIntoWithin(2, int32(big-1), ReadUncommitted, rb)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 0 || budget.Held() != 0 {
		t.Fatalf("a read within %d bytes of a %d-byte batch returned %d bytes and charged %d", big-1, big, len(res.Records), budget.Held())
	}
	if res.HighWatermark != p.HighWatermark() {
		t.Errorf("the read that returned nothing reports a high watermark of %d, want %d", res.HighWatermark, p.HighWatermark())
	}
	res, err = p.ReadIsolatedInto(2, int32(big-1), ReadUncommitted, rb)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != big {
		t.Fatalf("the first data of a response got %d bytes, want its first batch whole (%d)", len(res.Records), big)
	}
	rb.Release()
	for _, c := range []struct {
		offset   int64
		maxBytes int
	}{{0, 1 << 30}, {0, 40_000}, {3, 150_000}, {1, big + batchAt(1)}, {5, 1 << 20}} {
		want, err := p.ReadIsolated(c.offset, int32(c.maxBytes), ReadUncommitted)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.ReadIsolatedIntoWithin(c.offset, int32(c.maxBytes), ReadUncommitted, rb)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Records, want.Records) || len(got.Records) > c.maxBytes {
			t.Errorf("from %d within %d bytes: %d bytes, a read into fresh memory %d", c.offset, c.maxBytes, len(got.Records), len(want.Records))
		}
		rb.Release()
	}
	if len(whole.Records) < 256<<10 {
		t.Fatalf("the log holds %d bytes: no read crosses a segment", len(whole.Records))
	}
	if budget.Held() != 0 {
		t.Fatalf("%d bytes held once released", budget.Held())
	}
}
