package quota

import (
	"math"
	"sync"
	"time"
)

// Replication is one side (leader or follower) of a broker's replication
// throttle (KIP-73; Kafka's ReplicationQuotaManager): one rate of the
// throttled replicas' bytes measured over the replication quota windows,
// against one bound in bytes per second. A bound of math.MaxInt64 (the
// configs' default) is no limit. Safe for concurrent use.
type Replication struct {
	cfg Config
	now func() time.Time

	mu    sync.Mutex
	bound int64
	r     *rate
}

// NewReplication returns an unlimited throttle measured over cfg's
// windows; now is the clock (nil: time.Now).
func NewReplication(cfg Config, now func() time.Time) *Replication {
	if now == nil {
		now = time.Now
	}
	cfg.Samples = max(cfg.Samples, 1)
	if cfg.Window <= 0 {
		cfg.Window = time.Second
	}
	return &Replication{cfg: cfg, now: now, bound: math.MaxInt64, r: newRate(cfg.Samples, now())}
}

// SetBound puts a new rate in force; what was measured is kept, as Kafka
// keeps its sensor when the config changes.
func (q *Replication) SetBound(bytesPerSecond int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bound = max(bytesPerSecond, 0)
}

// Bound is the rate in force, bytes per second.
func (q *Replication) Bound() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bound
}

// Limited reports whether a bound is set at all.
func (q *Replication) Limited() bool { return q.Bound() != math.MaxInt64 }

// Record counts bytes of throttled replicas' traffic, sent or not held
// back (Kafka counts an in-sync replica's bytes too).
func (q *Replication) Record(bytes int) {
	if bytes <= 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.r.record(q.cfg, float64(bytes), q.now())
}

// Exceeded reports whether the measured rate is above the bound: then
// throttled replicas outside the ISR get nothing until it is back.
func (q *Replication) Exceeded() bool { return q.Delay() > 0 }

// Delay is how long until the measured rate is back at the bound (0 when
// it is there): the throttled replicas wait that long. It is Kafka's
// throttle time, at most the whole quota window.
func (q *Replication) Delay() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bound == math.MaxInt64 {
		return 0
	}
	now := q.now()
	v, span := q.r.measure(q.cfg, now)
	bound := float64(q.bound)
	if v <= bound {
		return 0
	}
	if bound <= 0 {
		return q.cfg.span() // a zero rate stops the throttled replicas
	}
	d := time.Duration((v - bound) / bound * float64(span))
	return max(min(d, q.cfg.span()), time.Millisecond)
}

// Rate is the measured rate of the throttled replicas' bytes, per second.
func (q *Replication) Rate() float64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	v, _ := q.r.measure(q.cfg, q.now())
	return v
}
