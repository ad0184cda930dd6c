package cluster

import (
	"errors"
	"testing"
	"time"
)

// chanFuture is a raft.Future that ends when end is closed.
type chanFuture struct {
	end chan struct{}
	err error
}

func (f chanFuture) Error() error { <-f.end; return f.err }

// TestWaitShutdownIsBounded: Close's wait for Raft.Shutdown returns what
// Shutdown returns when it ends, closes the transport under a Shutdown that
// does not end in time (which ends one stuck on a connection), and gives up
// on one that does not end even then, instead of holding the broker's
// shutdown for ever.
func TestWaitShutdownIsBounded(t *testing.T) {
	const wait = 50 * time.Millisecond
	errShut := errors.New("shutdown error")

	t.Run("ends in time", func(t *testing.T) {
		f := chanFuture{end: make(chan struct{}), err: errShut}
		close(f.end)
		unstuck := 0
		err, ended := waitShutdown(f, wait, func() { unstuck++ })
		if !ended || !errors.Is(err, errShut) || unstuck != 0 {
			t.Fatalf("ended %v, err %v, unstick called %d times; want ended, its error, not called", ended, err, unstuck)
		}
	})
	t.Run("ends once unstuck", func(t *testing.T) {
		f := chanFuture{end: make(chan struct{})}
		unstuck := 0
		err, ended := waitShutdown(f, wait, func() { unstuck++; close(f.end) })
		if !ended || err != nil || unstuck != 1 {
			t.Fatalf("ended %v, err %v, unstick called %d times; want ended once unstuck", ended, err, unstuck)
		}
	})
	t.Run("never ends", func(t *testing.T) {
		f := chanFuture{end: make(chan struct{})}
		defer close(f.end) // lets the waiting goroutine go
		start := time.Now()
		_, ended := waitShutdown(f, wait, func() {})
		if ended {
			t.Fatal("a Shutdown that never ended was reported ended")
		}
		if d := time.Since(start); d < 2*wait || d > 2*wait+5*time.Second {
			t.Fatalf("gave up after %s, want about %s", d, 2*wait)
		}
	})
}
