package loadtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWatcherSignalsOnlyRecordsSentAfterArming(t *testing.T) {
	tests := []struct {
		name       string
		sentBefore bool // the record was sent before arm
		err        error
		wantSignal bool
		wantFailed int
	}{
		{name: "sent after arming, acknowledged", wantSignal: true},
		{name: "sent before arming, acknowledged after", sentBefore: true},
		{name: "sent after arming, failed", err: errors.New("boom"), wantFailed: 1},
		{name: "cancelled at the end of the run", err: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWatcher()
			before := time.Now()
			// The clock must move between the two sends for After to
			// tell them apart, even on a coarse clock.
			for !time.Now().After(before) {
			}
			ch := w.arm()
			sentAt := time.Now().Add(time.Millisecond)
			if tt.sentBefore {
				sentAt = before
			}
			w.acked(sentAt, tt.err)
			select {
			case <-ch:
				if !tt.wantSignal {
					t.Fatal("signalled recovery for a record that does not prove it")
				}
			default:
				if tt.wantSignal {
					t.Fatal("no recovery signal")
				}
			}
			if got := w.failures(); got != tt.wantFailed {
				t.Errorf("failures = %d, want %d", got, tt.wantFailed)
			}
			if got := w.flowing(time.Minute); got != (tt.err == nil) {
				t.Errorf("flowing = %v, want %v", got, tt.err == nil)
			}
		})
	}
}

func TestWatcherSignalsOnce(t *testing.T) {
	w := newWatcher()
	ch := w.arm()
	sentAt := time.Now().Add(time.Millisecond)
	// A second acknowledgement must not block on the full channel.
	w.acked(sentAt, nil)
	w.acked(sentAt, nil)
	if _, ok := <-ch; !ok {
		t.Fatal("channel closed instead of signalled")
	}
}
