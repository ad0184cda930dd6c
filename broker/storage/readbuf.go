package storage

import (
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
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
// A ReadBuffers made by ReadBudget.Buffers is charged to that budget for
// the memory it holds (whole blocks) until Release; a read that finds the
// budget spent gets what is left of it, or nothing (see alloc). Every
// ReadBuffers of a budget must be released, also when its response is
// dropped unsent: the charge of one that is not stays until its
// ReadTracker (if it was made by one) releases it when its owner ends,
// and counts it as a leak; without a tracker, forever.
//
// The zero value is ready to use, charged to no budget. A ReadBuffers is
// used by one goroutine at a time. A nil *ReadBuffers allocates every read
// as before.
type ReadBuffers struct {
	budget *ReadBudget
	blocks []*readBlock
	// cur is the block small reads are cut from, and used its bytes taken.
	cur  *readBlock
	used int
	// loose are the bytes of reads allocated for themselves (larger than
	// the largest block, or the one read past the budget), charged to the
	// budget and left to the garbage collector on Release.
	loose int64
	// tracker lists rb while it holds memory (nil: no owner keeps a
	// list); listed says it is on the list, tag what it reads for.
	tracker *ReadTracker
	listed  bool
	tag     string
	// over: a read has gone past the budget since the last Release (at
	// most one does); cut: a read got less than it asked because of the
	// budget (counted once per Release in the budget's Cut).
	over, cut bool
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

// ReadBudget bounds the memory the ReadBuffers of one broker hold at once:
// the record batches of fetch responses read into memory (over TLS) and
// waiting to be written. Without a bound that memory grows with the
// number of such consumers times their fetch.max.bytes (40 consumers of
// 50 MiB hold 2 GiB) until the broker is killed for it.
//
// A read that finds the budget spent gets what is left; with nothing left
// it gets nothing, except the first read past the budget of a
// ReadBuffers (see alloc), which gets what it must return whole (the
// first batch of a read, KIP-74) so that every fetch makes progress. The
// bound is therefore exceeded by at most one batch (max.message.bytes)
// per ReadBuffers in use, that is per fetch being read or written.
//
// The zero value counts what is held and bounds nothing. A ReadBudget is
// safe for concurrent use.
type ReadBudget struct {
	limit  atomic.Int64 // 0: no bound
	held   atomic.Int64
	cut    atomic.Int64
	leaked atomic.Int64
}

// NewReadBudget returns a budget of limit bytes (0: count, bound nothing).
func NewReadBudget(limit int64) *ReadBudget {
	b := new(ReadBudget)
	b.limit.Store(max(limit, 0))
	return b
}

// Buffers returns an empty ReadBuffers charged to b.
func (b *ReadBudget) Buffers() *ReadBuffers { return &ReadBuffers{budget: b} }

// Limit is the bound in bytes, 0 for none.
func (b *ReadBudget) Limit() int64 { return b.limit.Load() }

// Held is the memory the budget's ReadBuffers hold now, in bytes: 0 once
// every one of them is released.
func (b *ReadBudget) Held() int64 { return b.held.Load() }

// Cut counts the ReadBuffers (between two Releases) of which a read got
// less than it asked, or nothing, because the budget was spent.
func (b *ReadBudget) Cut() int64 { return b.cut.Load() }

// Leaked counts the ReadBuffers a ReadTracker released for an owner that
// ended without releasing them itself (ReadTracker.ReleaseAll): a path
// that drops a response and forgets its Release. It should stay 0.
func (b *ReadBudget) Leaked() int64 { return b.leaked.Load() }

// take charges n bytes if they fit under the limit (or there is none).
func (b *ReadBudget) take(n int64) bool {
	for {
		held, limit := b.held.Load(), b.limit.Load()
		if limit > 0 && held+n > limit {
			return false
		}
		if b.held.CompareAndSwap(held, held+n) {
			return true
		}
	}
}

// left is what the limit leaves, 0 when spent or when there is no limit.
func (b *ReadBudget) left() int64 {
	if limit := b.limit.Load(); limit > 0 {
		return max(limit-b.held.Load(), 0)
	}
	return 0
}

// Room is the largest read rb may still take without going past its
// budget: the unused rest of its current block, or the largest block the
// budget has room for (0 when what it has left is less than the smallest
// block). It is a hint (other readers take from the same budget); ok is
// false when rb has no bounded budget.
func (rb *ReadBuffers) Room() (n int64, ok bool) {
	if rb == nil || rb.budget == nil || rb.budget.Limit() == 0 {
		return 0, false
	}
	return int64(rb.largestFit()), true
}

// MarkCut records that the response rb's reads are for was cut short by
// the budget without a read (its reader found no room, Room).
func (rb *ReadBuffers) MarkCut() {
	if rb != nil && rb.budget != nil && !rb.cut {
		rb.cut = true
		rb.budget.cut.Add(1)
	}
}

// alloc returns want bytes for a read, not cleared: the caller overwrites
// all of them. The slice's capacity is its length, so an append to it
// cannot run into the bytes of another read.
//
// When rb's budget cannot give want bytes, alloc returns fewer, never
// fewer than need: as many as fit in the unused rest of the current block
// or in a block the budget still has room for; if that is less than need
// (the part of the read that must be returned whole: 0 when the read may
// return nothing), need bytes past the budget, for the first such read of
// rb only; nil (nothing to read) otherwise.
func (rb *ReadBuffers) alloc(want, need int) []byte {
	if rb == nil {
		return make([]byte, want)
	}
	if want <= 0 {
		return []byte{}
	}
	if b, ok := rb.fromCur(want); ok {
		return b
	}
	if b, ok := rb.newBlock(want); ok {
		return b
	}
	// The budget has no room for want.
	rb.MarkCut()
	n := min(want, rb.largestFit())
	if n > 0 && n >= need {
		if b, ok := rb.fromCur(n); ok {
			return b
		}
		if b, ok := rb.newBlock(n); ok {
			return b
		}
		// Another reader took the room meanwhile.
	}
	if need <= 0 || rb.over {
		return nil
	}
	rb.over = true
	rb.budget.held.Add(int64(need))
	rb.loose += int64(need)
	rb.holds()
	return make([]byte, need)
}

// fromCur cuts n bytes from the unused rest of the current block.
func (rb *ReadBuffers) fromCur(n int) ([]byte, bool) {
	if rb.cur == nil || len(rb.cur.b)-rb.used < n {
		return nil, false
	}
	b := rb.cur.b[rb.used : rb.used+n : rb.used+n]
	rb.used += n
	return b, true
}

// newBlock takes a block for a read of n bytes (or, over the largest
// block size, memory of n bytes), charged to the budget; false when the
// budget has no room for it.
func (rb *ReadBuffers) newBlock(n int) ([]byte, bool) {
	shift := max(bits.Len(uint(n-1)), minReadBlockShift)
	if shift > maxReadBlockShift {
		if rb.budget != nil && !rb.budget.take(int64(n)) {
			return nil, false
		}
		if rb.budget != nil {
			rb.loose += int64(n)
			rb.holds()
		}
		return make([]byte, n), true
	}
	if rb.budget != nil && !rb.budget.take(1<<shift) {
		return nil, false
	}
	pool := &readPools[shift-minReadBlockShift]
	blk, _ := pool.Get().(*readBlock)
	if blk == nil {
		blk = &readBlock{b: make([]byte, 1<<shift)}
	}
	rb.blocks = append(rb.blocks, blk)
	rb.holds()
	// The block whose free rest is the larger serves the next small
	// reads.
	if rb.cur == nil || len(blk.b)-n > len(rb.cur.b)-rb.used {
		rb.cur, rb.used = blk, n
	}
	return blk.b[:n:n], true
}

// largestFit is the largest read rb can take without going past its
// budget: the rest of the current block, or the largest block size the
// budget has room for.
func (rb *ReadBuffers) largestFit() int {
	n := 0
	if rb.cur != nil {
		n = len(rb.cur.b) - rb.used
	}
	if left := rb.budget.left(); left >= 1<<minReadBlockShift {
		n = max(n, 1<<min(bits.Len64(uint64(left))-1, maxReadBlockShift))
	}
	return n
}

// Release gives the blocks back for other reads, and their charge to the
// budget. Every slice a read returned into rb is invalid afterwards: call
// it only when nothing reads them any more (the response is written, or
// was dropped unsent). rb can be used again after it; a second Release
// gives nothing back twice, also when the second is its tracker's
// ReleaseAll: Release takes rb off its tracker's list under the list's
// lock, and only what is on the list is released there.
func (rb *ReadBuffers) Release() {
	if rb == nil {
		return
	}
	if t := rb.tracker; t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		if rb.listed {
			delete(t.held, rb)
			rb.listed = false
		}
	}
	rb.release()
}

// release gives rb's memory back and returns how much it held.
func (rb *ReadBuffers) release() int64 {
	var held int64
	for i, blk := range rb.blocks {
		held += int64(len(blk.b))
		readPools[bits.Len(uint(len(blk.b)))-1-minReadBlockShift].Put(blk)
		rb.blocks[i] = nil
	}
	held += rb.loose
	if rb.budget != nil {
		rb.budget.held.Add(-held)
	}
	rb.blocks = rb.blocks[:0]
	rb.cur, rb.used, rb.loose, rb.over, rb.cut = nil, 0, 0, false, false
	return held
}

// holds puts rb on its tracker's list once it holds memory (a block, or
// memory charged to the budget): until its Release, the tracker's
// ReleaseAll gives that memory back if rb's owner forgets to. Only the
// first charge after a Release takes the lock.
func (rb *ReadBuffers) holds() {
	if t := rb.tracker; t != nil && !rb.listed {
		t.mu.Lock()
		t.held[rb] = struct{}{}
		rb.listed = true
		t.mu.Unlock()
	}
}

// ReadTracker is the backstop of one owner of ReadBuffers (a connection):
// it lists those of its ReadBuffers that hold memory and were not
// released, so that when the owner ends, ReleaseAll gives back what a path
// that dropped a response forgot to. Without it, one such path costs the
// budget its charge for good, and enough of them cut every fetch short.
//
// A ReadTracker is safe for concurrent use: its ReadBuffers may be
// released by another goroutine (a connection's writer) than the one that
// read into them.
type ReadTracker struct {
	budget *ReadBudget
	mu     sync.Mutex
	held   map[*ReadBuffers]struct{}
}

// Tracker returns an empty ReadTracker whose Buffers are charged to b (nil:
// to no budget).
func (b *ReadBudget) Tracker() *ReadTracker {
	return &ReadTracker{budget: b, held: make(map[*ReadBuffers]struct{})}
}

// Buffers returns an empty ReadBuffers charged to t's budget and listed in
// t while it holds memory. tag names what it reads for (an API), for the
// report of ReleaseAll.
func (t *ReadTracker) Buffers(tag string) *ReadBuffers {
	return &ReadBuffers{budget: t.budget, tracker: t, tag: tag}
}

// Leak is what ReleaseAll found unreleased: the ReadBuffers, the bytes they
// held, and their tags (each once, in no particular order).
type Leak struct {
	Buffers int
	Bytes   int64
	Tags    []string
}

// ReleaseAll releases the ReadBuffers of t that hold memory and were not
// released, and counts them in the budget's Leaked. Call it once the
// owner has ended: when nothing reads into t's ReadBuffers or reads what
// they hold any more (a connection's handlers have returned and its writer
// has stopped), every one of them should have been released, so what is
// left is a leak. A ReadBuffers released afterwards gives nothing back a
// second time.
func (t *ReadTracker) ReleaseAll() Leak {
	t.mu.Lock()
	defer t.mu.Unlock()
	var leak Leak
	for rb := range t.held {
		delete(t.held, rb)
		rb.listed = false
		leak.Buffers++
		leak.Bytes += rb.release()
		if !slices.Contains(leak.Tags, rb.tag) {
			leak.Tags = append(leak.Tags, rb.tag)
		}
	}
	if leak.Buffers > 0 && t.budget != nil {
		t.budget.leaked.Add(int64(leak.Buffers))
	}
	return leak
}
