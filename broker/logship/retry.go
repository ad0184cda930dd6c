package logship

import (
	"context"
	"math/rand/v2"
	"time"
)

// runFlushes is both shippers' loop: flush every interval, sooner once buf
// holds early bytes, and after a failed flush wait out the backoff next
// gives instead, until ctx is done.
func runFlushes(ctx context.Context, buf *buffer, interval time.Duration, early int, flush func(context.Context) error, next func() time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var retry <-chan time.Time // set while a failure's backoff runs
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry:
			retry = nil
		case <-tick.C:
			if retry != nil {
				continue // the backoff decides when to try again
			}
		case <-buf.ready:
			if retry != nil || buf.queuedBytes() < early {
				continue
			}
		}
		if err := flush(ctx); err != nil && ctx.Err() == nil {
			retry = time.After(next())
		}
	}
}

// backoff is the wait before the next try: it doubles with each failure, up
// to max, and half of it is random so brokers that failed together do not
// retry together. Not safe for concurrent use.
type backoff struct {
	base, max time.Duration
	cur       time.Duration
}

func (b *backoff) next() time.Duration {
	d := b.cur
	if d <= 0 {
		d = b.base
	}
	b.cur = min(2*d, b.max)
	return d/2 + rand.N(d/2+1)
}

// reset starts the next failure over at base.
func (b *backoff) reset() { b.cur = 0 }
