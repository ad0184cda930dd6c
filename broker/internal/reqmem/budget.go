// Package reqmem bounds the memory of request frames read from sockets,
// broker-wide (Kafka's queued.max.request.bytes), and reads them: every
// listener's frames, before and after authentication, on client and
// replication listeners, go through ReadFrame, so the bound is applied in
// one place.
//
// A frame is charged to its Budget for the size its header announces
// before a byte of its body is read, as Kafka's memory pool is: a
// connection that cannot get its charge waits, reading nothing (TCP
// backpressure), until frames of other connections give theirs back.
// Charging the whole frame at once, rather than as its bytes arrive, is
// what keeps the waits from deadlocking: a connection that waits holds no
// part of a frame, so every charge held belongs to a frame that is read to
// its end (or whose connection ends) without waiting for another. A frame
// larger than the whole budget could never be charged: it is refused at
// once (ErrTooLarge), never left to wait.
package reqmem

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by a charge that waited when its connection or
// tracker ended first.
var ErrClosed = errors.New("request memory: connection ended while waiting for memory")

// TooLargeError refuses a frame larger than the whole budget.
type TooLargeError struct {
	Size, Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("a request of %d bytes is larger than the broker's whole request memory (%d bytes)", e.Size, e.Limit)
}

// Budget bounds the bytes of the request frames charged to it at once.
// Waiters are served in the order they came, so a large frame is not
// starved by a stream of small ones. The zero value is not usable: see
// NewBudget. A Budget is safe for concurrent use.
type Budget struct {
	mu      sync.Mutex
	limit   int64 // <= 0: no bound
	held    int64
	waiters []*waiter

	heldNow   atomic.Int64 // held, for readers that do not lock
	waits     atomic.Int64
	waitNanos atomic.Int64
	refused   atomic.Int64
	waiting   atomic.Int64
}

type waiter struct {
	n     int64
	ready chan error // buffered: nil once charged, or the refusal
}

// NewBudget returns a budget of limit bytes (<= 0: no bound, charges are
// only counted).
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit}
}

// SetLimit changes the bound (<= 0: none). Waiters that now fit are
// charged, and waiters larger than a lowered bound are refused.
func (b *Budget) SetLimit(limit int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit == limit {
		return
	}
	b.limit = limit
	b.grantLocked()
}

// Stats is what a budget reports to the metrics.
type Stats struct {
	Held    int64 // bytes charged now
	Limit   int64 // the bound, 0 for none
	Waiting int64 // charges waiting now
	Waits   int64 // charges that had to wait, since the start
	// WaitSeconds is the time the charges that ended their wait waited,
	// in all.
	WaitSeconds float64
	Refused     int64 // frames refused as larger than the whole budget
}

// Stats reports the budget's state and counters.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	limit := b.limit
	b.mu.Unlock()
	return Stats{
		Held: b.heldNow.Load(), Limit: max(limit, 0), Waiting: b.waiting.Load(), Waits: b.waits.Load(),
		WaitSeconds: time.Duration(b.waitNanos.Load()).Seconds(), Refused: b.refused.Load(),
	}
}

// acquire charges n bytes, waiting while they do not fit, until done is
// closed (ErrClosed). n larger than the bound is refused at once.
func (b *Budget) acquire(n int64, done <-chan struct{}) error {
	b.mu.Lock()
	if b.limit > 0 && n > b.limit {
		limit := b.limit
		b.mu.Unlock()
		b.refused.Add(1)
		return &TooLargeError{Size: n, Limit: limit}
	}
	if len(b.waiters) == 0 && (b.limit <= 0 || b.held+n <= b.limit) {
		b.held += n
		b.heldNow.Store(b.held)
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan error, 1)}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	b.waits.Add(1)
	b.waiting.Add(1)
	start := time.Now()
	defer func() {
		b.waiting.Add(-1)
		b.waitNanos.Add(int64(time.Since(start)))
	}()
	select {
	case err := <-w.ready:
		return err
	case <-done:
	}
	b.mu.Lock()
	if i := slices.Index(b.waiters, w); i >= 0 {
		b.waiters = slices.Delete(b.waiters, i, i+1)
		// w may have been the head that held the others back.
		b.grantLocked()
		b.mu.Unlock()
		return ErrClosed
	}
	b.mu.Unlock()
	// Charged (or refused) while done was being closed.
	if err := <-w.ready; err != nil {
		return err
	}
	b.release(n)
	return ErrClosed
}

// grantLocked charges the waiters at the head of the queue that fit, in
// order, and refuses those larger than the bound.
func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		switch {
		case b.limit > 0 && w.n > b.limit:
			b.refused.Add(1)
			w.ready <- &TooLargeError{Size: w.n, Limit: b.limit}
		case b.limit <= 0 || b.held+w.n <= b.limit:
			b.held += w.n
			b.heldNow.Store(b.held)
			w.ready <- nil
		default:
			return
		}
		b.waiters = slices.Delete(b.waiters, 0, 1)
	}
}

// release gives n charged bytes back and charges the waiters they let in.
func (b *Budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.held -= n
	b.heldNow.Store(b.held)
	b.grantLocked()
	b.mu.Unlock()
}

// Tracker is one connection's account with a budget: what its frames
// hold, so that ReleaseAll gives it all back when the connection ends,
// whichever path dropped a frame without releasing it (a request read
// ahead and never processed). A nil *Tracker charges nothing.
type Tracker struct {
	b      *Budget
	mu     sync.Mutex
	held   int64
	closed bool
}

// Tracker returns a new account with b (nil b: a nil Tracker).
func (b *Budget) Tracker() *Tracker {
	if b == nil {
		return nil
	}
	return &Tracker{b: b}
}

func (t *Tracker) acquire(n int64, done <-chan struct{}) error {
	if t == nil {
		return nil
	}
	if err := t.b.acquire(n, done); err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.b.release(n)
		return ErrClosed
	}
	t.held += n
	t.mu.Unlock()
	return nil
}

func (t *Tracker) release(n int64) {
	if t == nil || n == 0 {
		return
	}
	t.mu.Lock()
	if t.closed {
		// ReleaseAll gave it back already.
		t.mu.Unlock()
		return
	}
	t.held -= n
	t.mu.Unlock()
	t.b.release(n)
}

// ReleaseAll gives back what the connection's frames still hold and ends
// the account: a charge after it is refused (ErrClosed), a release after
// it does nothing. It returns the bytes given back.
func (t *Tracker) ReleaseAll() int64 {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	n := t.held
	t.held, t.closed = 0, true
	t.mu.Unlock()
	t.b.release(n)
	return n
}
