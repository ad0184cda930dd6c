package reqmem

import (
	"errors"
	"io"
	"math/bits"
	"sync"
)

// Produce request frames are read into pooled memory. A fresh frame per
// request (kgo sends requests of up to about 1 MiB, hundreds a second per
// producer) is a large allocation the runtime clears and the kernel
// faults in page by page before the socket read overwrites it: 7-9 % of a
// broker's CPU producing flat out on one node (perf, docs/benchmarks.md).
// A Produce frame's only readers are the request's record batches, which
// storage copies into its files before the append returns, so the frame
// goes back to its pool as soon as the append is done. Frames of other
// requests, whose decoded fields may live on in what their handler keeps,
// are allocated.

const (
	// minFrameShift: small frames share the smallest class (4 KiB).
	minFrameShift = 12
	// maxFrameShift: frames larger than 16 MiB are allocated for
	// themselves, so the pools never hold more than a few blocks of the
	// size producers send.
	maxFrameShift = 24

	// GrowAbove is the memory a client request's body is first read
	// into: a frame announced larger grows with the bytes that arrive
	// (from this size), not allocated whole on its 4-byte size header.
	// The budget's charge bounds what headers alone can make the broker
	// reserve; the growth keeps what they make it allocate to what was
	// sent. Frames up to this size (every request of a producer with
	// kgo's default 1 MB batches to a few partitions) are allocated at
	// once, pooled for Produce.
	GrowAbove = 1 << 20
	// growStep: each step of the growth takes a block this many times
	// the last. Producers to a broker leading many partitions send
	// requests of a few MiB (16 partitions flat out: 2-4 MiB), which all
	// take the growth: with 4 a 3 MiB frame is read into 1 MiB and then
	// its own block, one copy of 1 MiB, where doubling made two (1 and
	// 2 MiB) and filled one more pool class. What a connection holds
	// stays within 4 times what it sent.
	growStep = 4
)

// framePools hold free frames by size: pool i holds blocks of
// 1<<(minFrameShift+i) bytes. sync.Pool lets the garbage collector take
// the blocks an idle broker no longer uses.
var framePools [maxFrameShift - minFrameShift + 1]sync.Pool

// block is one pooled block (a pointer, so that sync.Pool holds it
// without allocating).
type block struct{ b []byte }

// allocPooled returns n bytes, not cleared (the caller reads all n of them
// from the socket), and the block to give back, nil when n is not pooled.
func allocPooled(n int) ([]byte, *block) {
	shift := max(bits.Len(uint(n-1)), minFrameShift)
	if n <= 0 || shift > maxFrameShift {
		return make([]byte, n), nil
	}
	blk, _ := framePools[shift-minFrameShift].Get().(*block)
	if blk == nil {
		blk = &block{b: make([]byte, 1<<shift)}
	}
	return blk.b[:n:n], blk
}

// putBlock gives a block back to its pool (nil: nothing to give).
func putBlock(blk *block) {
	if blk != nil {
		framePools[bits.Len(uint(len(blk.b)))-1-minFrameShift].Put(blk)
	}
}

// Frame is a request body read by ReadFrame: its bytes, the pooled block
// they are in (if any) and its charge to a budget. Release or Uncharge it
// once nothing reads the bytes any more; the zero Frame holds nothing.
// A Frame is released by one goroutine.
type Frame struct {
	B      []byte
	blk    *block
	t      *Tracker
	charge int64
}

// Pooled says whether the frame's memory goes back to a pool on Release.
func (f *Frame) Pooled() bool { return f.blk != nil }

// Release gives the frame's charge back to its budget and its memory to
// its pool: nothing may read B afterwards. Releasing twice does nothing.
func (f *Frame) Release() {
	blk := f.blk
	f.Uncharge()
	f.blk = nil
	putBlock(blk)
}

// Uncharge gives the frame's charge back but leaves its memory to the
// garbage collector: for a frame whose bytes may still be referenced (a
// decoded request's fields, an append that failed midway), or that is
// not pooled. Uncharging twice does nothing.
func (f *Frame) Uncharge() {
	t, n := f.t, f.charge
	f.t, f.charge, f.B = nil, 0, nil
	t.release(n)
}

// Options say how ReadFrame reads a frame.
type Options struct {
	// Pooled reads into the frame pools (Produce frames, whose owner
	// calls Release once their records are appended).
	Pooled bool
	// First is the memory the body is first read into; a larger frame
	// grows with the bytes that arrive. 0: GrowAbove.
	First int
	// Done ends a wait for memory (the connection or the broker is
	// closing): ReadFrame returns ErrClosed.
	Done <-chan struct{}
	// Arrived, when set, says how many bytes of the body have been
	// received and not yet read (the reader's buffer and the socket's
	// receive queue). A frame announced above First whose bytes are
	// already there is read into a block of up to growStep times what
	// arrived at once, the block the growth would reach after reading
	// them, instead of growing into it with a copy: a producer's
	// requests of a few MiB, queued in the socket while the broker is
	// busy, cost a copy of their first MiB each (1.7 % of three brokers'
	// CPU producing flat out, docs/benchmarks.md). What a connection
	// holds stays within growStep times what it sent.
	Arrived func() int
}

// ReadFrame reads a frame body of n bytes from r, charged to t (nil: to
// nothing) before any of it is read: while t's budget has no room it
// waits, reading nothing, until other frames give theirs back or
// opts.Done is closed. A frame larger than the whole budget is refused
// (*TooLargeError) without a wait. The memory starts at opts.First bytes
// (or growStep times what opts.Arrived says is there, up to n)
// and grows by growStep times the last block a step as the bytes arrive
// (pooled ones from the pools, the smaller block given back), so the
// copies add up to less than n/3. io.EOF means no body byte came; a body
// cut short later is io.ErrUnexpectedEOF. On an error nothing is held.
func ReadFrame(r io.Reader, n int, t *Tracker, opts Options) (Frame, error) {
	if err := t.acquire(int64(n), opts.Done); err != nil {
		return Frame{}, err
	}
	first := opts.First
	if first <= 0 {
		first = GrowAbove
	}
	if n > first && opts.Arrived != nil {
		if a := opts.Arrived(); a > first/growStep {
			first = min(n, growStep*a)
		}
	}
	alloc := func(size int) ([]byte, *block) {
		if opts.Pooled {
			return allocPooled(size)
		}
		return make([]byte, size), nil
	}
	frame, blk := alloc(min(n, first))
	got := 0
	for {
		m, err := io.ReadFull(r, frame[got:])
		got += m
		if err != nil {
			putBlock(blk)
			t.release(int64(n))
			if got > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
		if got == n {
			return Frame{B: frame, blk: blk, t: t, charge: int64(n)}, nil
		}
		next, nextBlk := alloc(min(n, growStep*len(frame)))
		copy(next, frame[:got])
		putBlock(blk)
		frame, blk = next, nextBlk
	}
}
