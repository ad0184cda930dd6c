package server

import (
	"errors"
	"io"
	"math/bits"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
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
// are allocated as before.

const (
	// minFrameShift: small frames share the smallest class (4 KiB).
	minFrameShift = 12
	// maxFrameShift: frames larger than 16 MiB are allocated for
	// themselves, so the pools never hold more than a few blocks of the
	// size producers send.
	maxFrameShift = 24

	// growFrameAbove: a frame announced larger than this is read into
	// memory that grows with the bytes that arrive (growing from this
	// size), not allocated whole on its 4-byte size header. Otherwise any
	// client of a PLAINTEXT listener (or any authenticated one) pins
	// socket.request.max.bytes (100 MiB) per connection by sending a
	// header and nothing more. Frames up to this size (every request of a
	// producer with kgo's default 1 MB batches to a few partitions) are
	// allocated at once as before, pooled for Produce: the bound on what a
	// header alone pins is this size per connection, as before
	// authentication on a SASL listener it is saslMaxFrame.
	growFrameAbove = 1 << 20
	// growFrameStep: each step of the growth takes a block this many
	// times the last. Producers to a broker leading many partitions send
	// requests of a few MiB (16 partitions flat out: 2-4 MiB), which all
	// take the growth: with 4 a 3 MiB frame is read into 1 MiB and then
	// its own block, one copy of 1 MiB, where doubling made two (1 and
	// 2 MiB) and filled one more pool class. What a connection holds stays
	// within 4 times what it sent.
	growFrameStep = 4
)

// framePools hold free frames by size: pool i holds blocks of
// 1<<(minFrameShift+i) bytes. sync.Pool lets the garbage collector take
// the blocks an idle broker no longer uses.
var framePools [maxFrameShift - minFrameShift + 1]sync.Pool

// frameBlock is one pooled block (a pointer, so that sync.Pool holds it
// without allocating).
type frameBlock struct{ b []byte }

// allocFrame returns n bytes for a request frame, not cleared (the caller
// reads all n of them from the socket), and the block to hand back to
// releaseFrame, nil when the frame is not pooled.
func allocFrame(n int) ([]byte, *frameBlock) {
	shift := max(bits.Len(uint(n-1)), minFrameShift)
	if n <= 0 || shift > maxFrameShift {
		return make([]byte, n), nil
	}
	blk, _ := framePools[shift-minFrameShift].Get().(*frameBlock)
	if blk == nil {
		blk = &frameBlock{b: make([]byte, 1<<shift)}
	}
	return blk.b[:n:n], blk
}

// readFrameBody reads a frame body of n bytes from r: pooled (allocFrame)
// when pooled is set, else allocated. Above growFrameAbove the memory
// grows with the bytes read, each step a block growFrameStep times the
// last (pooled ones from the pools, the smaller block given back), so the
// copies add up to less than n/3. The block is nil when the frame is not pooled. io.EOF means
// no body byte came; a body cut short later is io.ErrUnexpectedEOF.
func readFrameBody(r io.Reader, n int, pooled bool) ([]byte, *frameBlock, error) {
	alloc := func(size int) ([]byte, *frameBlock) {
		if pooled {
			return allocFrame(size)
		}
		return make([]byte, size), nil
	}
	frame, blk := alloc(min(n, growFrameAbove))
	got := 0
	for {
		m, err := io.ReadFull(r, frame[got:])
		got += m
		if err != nil {
			putFrameBlock(blk)
			if got > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		if got == n {
			return frame, blk, nil
		}
		next, nextBlk := alloc(min(n, growFrameStep*len(frame)))
		copy(next, frame[:got])
		putFrameBlock(blk)
		frame, blk = next, nextBlk
	}
}

// putFrameBlock gives a block back to its pool (nil: nothing to give).
func putFrameBlock(blk *frameBlock) {
	if blk != nil {
		framePools[bits.Len(uint(len(blk.b)))-1-minFrameShift].Put(blk)
	}
}

// releaseFrame gives a Produce request's frame back once its records are
// appended. The request's record batches point into the frame: they are
// dropped, so that nothing can read them after the memory serves another
// request.
func (r *request) releaseFrame() {
	blk := r.frame
	if blk == nil {
		return
	}
	r.frame = nil
	if pr, ok := r.kreq.(*kmsg.ProduceRequest); ok {
		for i := range pr.Topics {
			for j := range pr.Topics[i].Partitions {
				pr.Topics[i].Partitions[j].Records = nil
			}
		}
	}
	putFrameBlock(blk)
}
