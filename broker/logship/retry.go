package logship

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// runFlushes is every shipper's loop: flush every interval, sooner once buf
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

// lockedBackoff is a shipper's next backoff for runFlushes, taken under
// the shipper's flush lock, which guards its failures.
func lockedBackoff(mu *sync.Mutex, f *failures) func() time.Duration {
	return func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return f.backoff.next()
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

// failures is a shipper's account of its runs of failed deliveries, the
// same for every destination: the first failure of a run is logged, the
// next ones only counted, and the delivery that ends a run writes into the
// broker's log how many lines were dropped meanwhile, so a reader of the
// destination sees where lines are missing. The shipper's flush lock
// guards it.
type failures struct {
	dest    string // the destination, as a log line names it
	buf     *buffer
	log     *slog.Logger
	backoff backoff
	failing bool
	// reportedDrops is the drop count last written into the broker's
	// log.
	reportedDrops int64
}

// newFailures is the account of a shipper of buf to dest, whose backoff
// starts at base (default 1 s) and doubles up to maxWait (default, and at
// least, 1 min or base).
func newFailures(dest string, buf *buffer, log *slog.Logger, base, maxWait time.Duration) failures {
	if base <= 0 {
		base = time.Second
	}
	if maxWait < base {
		maxWait = max(time.Minute, base)
	}
	return failures{dest: dest, buf: buf, log: log, backoff: backoff{base: base, max: maxWait}}
}

// fail records a failed delivery.
func (f *failures) fail(err error) {
	if !f.failing {
		f.log.Error("delivering logs to "+f.dest+" failed; retrying with backoff, the oldest lines are dropped once the buffer is full",
			"err", err, "denied", isDenied(err), "queued", f.buf.len())
	}
	f.failing = true
}

// recovered records a delivery that went through.
func (f *failures) recovered() {
	if f.failing {
		f.log.Info("delivering logs to "+f.dest+" again", "dropped", f.buf.dropped.Load())
	}
	f.failing = false
	f.backoff.reset()
	if d := f.buf.dropped.Load(); d > f.reportedDrops {
		line, _ := json.Marshal(map[string]any{
			"time": time.Now().UTC().Format(time.RFC3339Nano), "level": "WARN",
			"msg": "log lines were dropped while " + f.dest + " could not take them", "dropped": d - f.reportedDrops, "dropped_total": d,
		})
		f.reportedDrops = d
		f.buf.add(Event{Stream: StreamBroker, UnixMs: time.Now().UnixMilli(), Message: string(line)})
	}
}

// counters are a shipper's totals since start, the same for every
// destination (Stats).
type counters struct{ puts, shipped, rejected, failed, denied atomic.Int64 }

// callFailed counts a failed call to the destination.
func (c *counters) callFailed(err error) {
	c.failed.Add(1)
	if isDenied(err) {
		c.denied.Add(1)
	}
}

// stats are the counters with buf's drops and queue.
func (c *counters) stats(buf *buffer) Stats {
	return Stats{
		Puts: c.puts.Load(), Shipped: c.shipped.Load(), Rejected: c.rejected.Load(),
		Dropped: buf.dropped.Load(), Failed: c.failed.Load(), Denied: c.denied.Load(), Queued: buf.len(),
	}
}

// partialFailure is a put that delivered some of its events: only the
// failed ones go back to the queue (Firehose's PutRecordBatch answers
// record by record).
type partialFailure struct {
	failed []Event
	err    error
}

func (p *partialFailure) Error() string { return p.err.Error() }
func (p *partialFailure) Unwrap() error { return p.err }

// deliverAll is every shipper's flush: it takes batches until the queue is
// empty or a delivery fails, and delivers each stream's events of a batch
// in the parts split cuts them into, one put each. The events of a failed
// put (only its failed ones when it returns a *partialFailure), and of the
// puts not tried after it, go back to the front of the queue in time order.
func (f *failures) deliverAll(ctx context.Context, take func() []Event, split func([]Event, Stream) [][]Event, put func(context.Context, Stream, []Event) error) error {
	for {
		batch := take()
		if len(batch) == 0 {
			f.recovered()
			return nil
		}
		var failed []Event
		var firstErr error
		for st := range streamCount {
			for _, part := range split(batch, st) {
				if firstErr != nil {
					failed = append(failed, part...)
					continue
				}
				if err := put(ctx, st, part); err != nil {
					var pf *partialFailure
					if errors.As(err, &pf) {
						failed = append(failed, pf.failed...)
					} else {
						failed = append(failed, part...)
					}
					firstErr = err
				}
			}
		}
		if firstErr != nil {
			slices.SortStableFunc(failed, func(a, b Event) int { return compareInt64(a.UnixMs, b.UnixMs) })
			f.buf.putBack(failed)
			f.fail(firstErr)
			return firstErr
		}
		f.recovered()
	}
}
