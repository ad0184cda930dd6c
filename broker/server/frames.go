package server

import (
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
	framePools[bits.Len(uint(len(blk.b)))-1-minFrameShift].Put(blk)
}
