package storage

import (
	"bytes"
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
		b := rb.alloc(n)
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
	if b := nilRB.alloc(10); len(b) != 10 {
		t.Fatalf("a nil ReadBuffers allocated %d bytes for 10", len(b))
	}
	nilRB.Release()
}
