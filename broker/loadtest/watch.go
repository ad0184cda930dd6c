package loadtest

import (
	"context"
	"errors"
	"sync"
	"time"
)

// watcher follows a producer's acknowledgements during the failover
// measurement: when the last one came, and the first one of a record
// sent after the killed process was gone.
type watcher struct {
	mu        sync.Mutex
	lastAck   time.Time
	armedAt   time.Time
	recovered chan time.Time // set by arm, sent to once
	nFailed   int
	firstErr  error
}

func newWatcher() *watcher { return &watcher{} }

func (w *watcher) acked(sentAt time.Time, err error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		// Records still buffered when the benchmark stops are failed by
		// the client; they say nothing about the cluster.
		if errors.Is(err, context.Canceled) {
			return
		}
		w.nFailed++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	w.lastAck = now
	if w.recovered != nil && sentAt.After(w.armedAt) {
		w.recovered <- now
		w.recovered = nil
	}
}

// arm returns a channel that receives the acknowledgement time of the
// first record sent from now on.
func (w *watcher) arm() <-chan time.Time {
	ch := make(chan time.Time, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armedAt = time.Now()
	w.recovered = ch
	return ch
}

// flowing reports whether a record was acknowledged within the last d.
func (w *watcher) flowing(d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.lastAck.IsZero() && time.Since(w.lastAck) < d
}

func (w *watcher) failures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nFailed
}

func (w *watcher) firstError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstErr
}
