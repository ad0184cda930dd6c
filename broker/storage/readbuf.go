package storage

import (
	"math/bits"
	"sync"
)

// ReadBuffers holds the memory that reads of one response are made into,
// so that it can be used again once the response is sent. A Fetch response
// of 50 MiB otherwise costs a fresh 50 MiB allocation, which the runtime
// clears and the kernel faults in page by page before pread overwrites it:
// about half of a broker's CPU time in reading the log. Its owner (the
// connection that sends the response) calls Release after the last byte
// of the response was handed to the socket, never before: Release gives
// the memory to the next reader.
//
// The zero value is ready to use. A ReadBuffers is used by one goroutine
// at a time. A nil *ReadBuffers allocates every read as before.
type ReadBuffers struct {
	blocks []*readBlock
	// cur is the block small reads are cut from, and used its bytes taken.
	cur  *readBlock
	used int
}

// readBlock is one pooled buffer (a pointer, so that sync.Pool holds it
// without allocating).
type readBlock struct{ b []byte }

const (
	// minReadBlockShift: reads share blocks of at least 64 KiB, so a fetch
	// of many small partitions takes one block, not one per partition.
	minReadBlockShift = 16
	// maxReadBlockShift: reads larger than 64 MiB are allocated for
	// themselves and left to the garbage collector, so that the pools
	// never hold more than a few blocks of what a Fetch usually asks for.
	maxReadBlockShift = 26
)

// readPools are the free blocks by size: pool i holds blocks of
// 1<<(minReadBlockShift+i) bytes. sync.Pool lets the garbage collector
// take blocks that stay unused across collections, so an idle broker does
// not keep the memory of its busiest moment.
var readPools [maxReadBlockShift - minReadBlockShift + 1]sync.Pool

// alloc returns n bytes for a read, not cleared: the caller overwrites
// all of them. The slice's capacity is n, so an append to it cannot run
// into the bytes of another read.
func (rb *ReadBuffers) alloc(n int) []byte {
	if rb == nil {
		return make([]byte, n)
	}
	if rb.cur != nil && len(rb.cur.b)-rb.used >= n {
		b := rb.cur.b[rb.used : rb.used+n : rb.used+n]
		rb.used += n
		return b
	}
	shift := max(bits.Len(uint(n-1)), minReadBlockShift)
	if n <= 0 || shift > maxReadBlockShift {
		return make([]byte, n)
	}
	pool := &readPools[shift-minReadBlockShift]
	blk, _ := pool.Get().(*readBlock)
	if blk == nil {
		blk = &readBlock{b: make([]byte, 1<<shift)}
	}
	rb.blocks = append(rb.blocks, blk)
	// The block whose free rest is the larger serves the next small
	// reads.
	if rb.cur == nil || len(blk.b)-n > len(rb.cur.b)-rb.used {
		rb.cur, rb.used = blk, n
	}
	return blk.b[:n:n]
}

// Release gives the blocks back for other reads. Every slice a read
// returned into rb is invalid afterwards: call it only when nothing reads
// them any more (the response is written, or was dropped unsent). rb can
// be used again after it.
func (rb *ReadBuffers) Release() {
	if rb == nil {
		return
	}
	for i, blk := range rb.blocks {
		readPools[bits.Len(uint(len(blk.b)))-1-minReadBlockShift].Put(blk)
		rb.blocks[i] = nil
	}
	rb.blocks = rb.blocks[:0]
	rb.cur, rb.used = nil, 0
}
