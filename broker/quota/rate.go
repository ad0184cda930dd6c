package quota

import "time"

// rate is Kafka's sampled rate (org.apache.kafka.common.metrics.stats.Rate
// over a SampledStat): values are added to the current sample; a sample
// covers one window, after which the next one starts; samples older than
// every window together are forgotten. The rate is the sum of the samples
// over the time they span, which is counted as at least samples-1 whole
// windows: a client's first burst is measured against the whole quota
// window, not against the few milliseconds it took.
type rate struct {
	samples []sample
	cur     int
	last    time.Time // last record, for pruning idle rates
}

type sample struct {
	start time.Time
	value float64
}

func newRate(n int, now time.Time) *rate {
	r := &rate{samples: make([]sample, n), last: now}
	for i := range r.samples {
		r.samples[i].start = now
	}
	return r
}

// record adds v at now.
func (r *rate) record(cfg Config, v float64, now time.Time) {
	r.purge(cfg, now)
	if s := &r.samples[r.cur]; now.Sub(s.start) >= cfg.Window {
		r.cur = (r.cur + 1) % len(r.samples)
		r.samples[r.cur] = sample{start: now}
	}
	r.samples[r.cur].value += v
	r.last = now
}

// purge resets the samples that ended a whole quota window ago.
func (r *rate) purge(cfg Config, now time.Time) {
	span := time.Duration(len(r.samples)) * cfg.Window
	for i := range r.samples {
		if now.Sub(r.samples[i].start) >= span {
			r.samples[i] = sample{start: now}
		}
	}
}

// measure returns the rate per second at now, and the span it is measured
// over.
func (r *rate) measure(cfg Config, now time.Time) (float64, time.Duration) {
	r.purge(cfg, now)
	total := 0.0
	oldest := now
	for _, s := range r.samples {
		total += s.value
		if s.start.Before(oldest) {
			oldest = s.start
		}
	}
	span := r.windowSpan(cfg, now, oldest)
	return total / span.Seconds(), span
}

// windowSpan is Kafka's Rate.windowSize: the time since the oldest sample
// started, made up to samples-1 whole windows, at least 1 ms.
func (r *rate) windowSpan(cfg Config, now, oldest time.Time) time.Duration {
	elapsed := now.Sub(oldest)
	full := int(elapsed / cfg.Window)
	if minFull := len(r.samples) - 1; full < minFull {
		elapsed += time.Duration(minFull-full) * cfg.Window
	}
	return max(elapsed, time.Millisecond)
}
