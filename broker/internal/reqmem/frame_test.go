package reqmem

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"testing"
)

// TestReadFrameAllocatesWhatArrives: a frame announced far above its
// first read, of which only a few bytes come, allocates about the first
// read, not the size announced; pooled or not, from GrowAbove (client
// listeners) or from 64 KiB (the replication listener).
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	const announced = 64 << 20
	for _, first := range []int{0, 64 << 10} {
		for _, pooled := range []bool{false, true} {
			br := bufio.NewReader(bytes.NewReader([]byte("only this much")))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := ReadFrame(br, announced, nil, Options{Pooled: pooled, First: first})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("first %d, pooled %v: a body cut short: %v, want %v", first, pooled, err, io.ErrUnexpectedEOF)
			}
			bound := uint64(2 * GrowAbove)
			if first > 0 {
				bound = uint64(2 * first)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > bound {
				t.Errorf("first %d, pooled %v: a %d-byte frame of which 14 bytes came allocated %d bytes", first, pooled, announced, got)
			}
		}
	}
}

// TestReadFrame: whole bodies below, at and above the first read are read
// exactly, from whole, dribbling and io.EOF-with-the-last-bytes readers;
// no body byte is io.EOF, a body cut short io.ErrUnexpectedEOF; what a
// frame was charged goes back on Release, and nothing stays charged after
// an error.
func TestReadFrame(t *testing.T) {
	full := make([]byte, 5*GrowAbove+12345+10)
	for i := range full {
		full[i] = byte(i * 7)
	}
	b := NewBudget(int64(len(full)))
	tr := b.Tracker()
	for _, first := range []int{0, 64 << 10} {
		for _, n := range []int{0, 1, 4096, 64<<10 + 1, GrowAbove - 1, GrowAbove, GrowAbove + 1, 2 * GrowAbove, len(full) - 10} {
			for _, pooled := range []bool{false, true} {
				for name, r := range map[string]func() io.Reader{
					"whole":     func() io.Reader { return bytes.NewReader(full[:n+10]) },
					"dribbling": func() io.Reader { return &chunked{b: full[:n+10], step: 1000} },
					"eof":       func() io.Reader { return &eofWithLast{b: full[:n]} },
				} {
					f, err := ReadFrame(bufio.NewReaderSize(r(), 4096), n, tr, Options{Pooled: pooled, First: first})
					if err != nil || !bytes.Equal(f.B, full[:n]) {
						t.Errorf("%d bytes, first %d, pooled %v, %s: %d bytes, %v", n, first, pooled, name, len(f.B), err)
					}
					if pooled != f.Pooled() && n <= 1<<maxFrameShift && n > 0 {
						t.Errorf("%d bytes, pooled %v: block %v", n, pooled, f.Pooled())
					}
					if got := b.Stats().Held; got != int64(n) {
						t.Errorf("%d bytes: %d charged, want %d", n, got, n)
					}
					f.Release()
					f.Release()
					if got := b.Stats().Held; got != 0 {
						t.Fatalf("%d bytes: %d still charged after Release", n, got)
					}
				}
			}
		}
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 3*GrowAbove, tr, Options{Pooled: true}); err != io.EOF {
		t.Errorf("no body byte: %v, want io.EOF", err)
	}
	if _, err := ReadFrame(bytes.NewReader(full[:GrowAbove+5]), 3*GrowAbove, tr, Options{Pooled: true}); err != io.ErrUnexpectedEOF {
		t.Errorf("a body cut short after the first step: %v, want io.ErrUnexpectedEOF", err)
	}
	if got := b.Stats().Held; got != 0 {
		t.Errorf("%d bytes charged after failed reads", got)
	}
}

// TestReadFrameArrivedTakesOneBlock: a frame above the first read whose
// bytes have arrived (Options.Arrived) is read into one block, without
// the growth's copies: unpooled, a 3 MiB frame allocates its 3 MiB, where
// growing allocates 1 MiB and then the 3 MiB (and copies the first).
// What the block may be stays within growStep times what arrived: with
// 300 KiB there, the first block is 1.2 MiB, and with 14 bytes there it
// is GrowAbove, as without Arrived.
func TestReadFrameArrivedTakesOneBlock(t *testing.T) {
	const n = 3 << 20
	full := make([]byte, n+10)
	for i := range full {
		full[i] = byte(i * 13)
	}
	for _, tc := range []struct {
		name     string
		arrived  int
		min, max uint64 // bytes allocated by ReadFrame
	}{
		{"all there", n, n, n + 64<<10},
		{"nothing told", -1, n + GrowAbove, 2 * n},
		{"a quarter there", n / 4, n, n + 64<<10},
		{"300 KiB there", 300 << 10, n + 1200<<10, n + 1300<<10},
		{"a header's worth", 14, n + GrowAbove, 2 * n},
	} {
		var opts Options
		if tc.arrived >= 0 {
			arrived := tc.arrived
			opts.Arrived = func() int { return arrived }
		}
		br := bufio.NewReaderSize(bytes.NewReader(full), 4096)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f, err := ReadFrame(br, n, nil, opts)
		runtime.ReadMemStats(&after)
		if err != nil || !bytes.Equal(f.B, full[:n]) {
			t.Fatalf("%s: %d bytes, %v", tc.name, len(f.B), err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got < tc.min || got > tc.max {
			t.Errorf("%s: a %d-byte frame allocated %d bytes, want %d to %d", tc.name, n, got, tc.min, tc.max)
		}
		f.Release()
	}
}

// chunked returns at most step bytes per Read.
type chunked struct {
	b    []byte
	step int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// eofWithLast returns io.EOF with the last bytes, as io.Reader allows.
type eofWithLast struct{ b []byte }

func (e *eofWithLast) Read(p []byte) (int, error) {
	n := copy(p, e.b)
	e.b = e.b[n:]
	if len(e.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// BenchmarkReadFrame reads pooled Produce frames of a given size from
// memory: "whole" allocates the size announced and reads it (the read
// before GrowAbove), "grow" is ReadFrame, charged to a budget. Up to
// GrowAbove both allocate the same; above it the growth adds its copies.
// "arrived" is ReadFrame told the whole frame is there (Options.Arrived).
func BenchmarkReadFrame(b *testing.B) {
	tr := NewBudget(1 << 30).Tracker()
	for _, size := range []int{1 << 20, 3 << 20, 16 << 20} {
		src := make([]byte, size)
		for _, mode := range []string{"whole", "grow", "arrived"} {
			b.Run(mode+"/"+strconv.Itoa(size>>20)+"MiB", func(b *testing.B) {
				b.SetBytes(int64(size))
				r := bytes.NewReader(src)
				br := bufio.NewReaderSize(r, 64<<10)
				for b.Loop() {
					r.Reset(src)
					br.Reset(r)
					if mode == "whole" {
						frame, blk := allocPooled(size)
						if _, err := io.ReadFull(br, frame); err != nil {
							b.Fatal(err)
						}
						putBlock(blk)
						continue
					}
					opts := Options{Pooled: true}
					if mode == "arrived" {
						opts.Arrived = func() int { return br.Buffered() + r.Len() }
					}
					f, err := ReadFrame(br, size, tr, opts)
					if err != nil {
						b.Fatal(err)
					}
					f.Release()
				}
			})
		}
	}
}
