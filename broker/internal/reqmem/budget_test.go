package reqmem

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// acquireAsync charges n bytes to t on its own goroutine; the channel
// gets the result.
func acquireAsync(t *Tracker, n int64, done <-chan struct{}) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- t.acquire(n, done) }()
	return ch
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func notYet(t *testing.T, what string, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: returned (%v) while it should wait", what, err)
	case <-time.After(50 * time.Millisecond):
	}
}

func recvWithin(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10 s", what)
		return nil
	}
}

// TestBudgetWaitsInOrder: a charge that does not fit waits until enough
// is released, and waiters are charged in the order they came: a small
// one behind a large one is not let past it.
func TestBudgetWaitsInOrder(t *testing.T) {
	b := NewBudget(100)
	a, c := b.Tracker(), b.Tracker()
	if err := a.acquire(80, nil); err != nil {
		t.Fatal(err)
	}
	large := acquireAsync(c, 60, nil)
	waitFor(t, "the large charge waits", func() bool { return b.Stats().Waiting == 1 })
	small := acquireAsync(c, 10, nil) // fits now, but came after
	waitFor(t, "the small charge waits", func() bool { return b.Stats().Waiting == 2 })
	notYet(t, "a small charge behind a waiting large one", small)
	a.release(50) // 30 held: the large one fits, then the small one
	if err := recvWithin(t, "large", large); err != nil {
		t.Fatal(err)
	}
	if err := recvWithin(t, "small", small); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Held != 100 || st.Waits != 2 || st.Waiting != 0 || st.WaitSeconds <= 0 {
		t.Fatalf("stats %+v, want 100 held, 2 waits ended, none waiting, some wait time", st)
	}
	if n := a.ReleaseAll(); n != 30 {
		t.Fatalf("ReleaseAll gave back %d, want 30", n)
	}
	if n := c.ReleaseAll(); n != 70 {
		t.Fatalf("ReleaseAll gave back %d, want 70", n)
	}
	if got := b.Stats().Held; got != 0 {
		t.Fatalf("%d held after every account ended", got)
	}
}

// TestBudgetRefusesLargerThanWhole: a charge larger than the whole bound
// is refused at once, never left to wait; a waiter that a lowered bound
// makes too large is refused then; a raised bound lets waiters in.
func TestBudgetRefusesLargerThanWhole(t *testing.T) {
	b := NewBudget(100)
	tr := b.Tracker()
	var tooLarge *TooLargeError
	if err := tr.acquire(101, nil); !errors.As(err, &tooLarge) || tooLarge.Size != 101 || tooLarge.Limit != 100 {
		t.Fatalf("a 101-byte charge of a 100-byte budget: %v, want a TooLargeError", err)
	}
	if err := tr.acquire(100, nil); err != nil {
		t.Fatal(err)
	}
	w := acquireAsync(tr, 90, nil)
	waitFor(t, "waiting", func() bool { return b.Stats().Waiting == 1 })
	b.SetLimit(80)
	if err := recvWithin(t, "a waiter over a lowered bound", w); !errors.As(err, &tooLarge) {
		t.Fatalf("a waiter over a lowered bound: %v, want a TooLargeError", err)
	}
	w = acquireAsync(tr, 50, nil)
	waitFor(t, "waiting", func() bool { return b.Stats().Waiting == 1 })
	b.SetLimit(150)
	if err := recvWithin(t, "a waiter under a raised bound", w); err != nil {
		t.Fatal(err)
	}
	b.SetLimit(0) // no bound: everything fits
	if err := tr.acquire(1<<40, nil); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Refused != 2 || st.Held != 100+50+1<<40 {
		t.Fatalf("stats %+v, want 2 refused", st)
	}
}

// TestBudgetWaitEndsWithConnection: a waiter whose connection ends gets
// ErrClosed and leaves the queue (those behind it go on); a charge after
// ReleaseAll is refused and holds nothing.
func TestBudgetWaitEndsWithConnection(t *testing.T) {
	b := NewBudget(100)
	a, c := b.Tracker(), b.Tracker()
	if err := a.acquire(60, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	head := acquireAsync(c, 90, done)
	waitFor(t, "waiting", func() bool { return b.Stats().Waiting == 1 })
	behind := acquireAsync(a, 30, nil)
	waitFor(t, "waiting", func() bool { return b.Stats().Waiting == 2 })
	close(done)
	if err := recvWithin(t, "a waiter whose connection ended", head); !errors.Is(err, ErrClosed) {
		t.Fatalf("%v, want ErrClosed", err)
	}
	if err := recvWithin(t, "the waiter behind it", behind); err != nil {
		t.Fatal(err)
	}
	a.ReleaseAll()
	if err := a.acquire(10, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("a charge after ReleaseAll: %v, want ErrClosed", err)
	}
	a.release(10)
	if got := b.Stats().Held; got != 0 {
		t.Fatalf("%d held", got)
	}
}

// TestReadFrameWaitsThenReads: ReadFrame of a frame that does not fit
// reads nothing until memory is released, then reads it whole.
func TestReadFrameWaitsThenReads(t *testing.T) {
	b := NewBudget(1000)
	holder, reader := b.Tracker(), b.Tracker()
	held, err := ReadFrame(bytes.NewReader(make([]byte, 800)), 800, holder, Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.NewReader(bytes.Repeat([]byte{9}, 500))
	got := make(chan Frame, 1)
	go func() {
		f, err := ReadFrame(src, 500, reader, Options{})
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	waitFor(t, "waiting", func() bool { return b.Stats().Waiting == 1 })
	time.Sleep(20 * time.Millisecond)
	if src.Len() != 500 {
		t.Fatalf("a waiting ReadFrame read %d bytes", 500-src.Len())
	}
	held.Release()
	select {
	case f := <-got:
		if !bytes.Equal(f.B, bytes.Repeat([]byte{9}, 500)) {
			t.Fatalf("read %d bytes", len(f.B))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting 10 s after the memory was released")
	}
}
