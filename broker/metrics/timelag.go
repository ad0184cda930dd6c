package metrics

import (
	"sync"
	"time"
)

// Time lag (MSK's EstimatedTimeLag and EstimatedMaxTimeLag) is the time a
// group needs to drain its lag at the pace it consumes. The estimator
// keeps, per group and partition, the committed offsets seen over the last
// timeLagWindow and divides the lag by the rate at which the committed
// offset advanced over that window:
//
//	estimate = lag / ((committed_now - committed_then) / (now - then))
//
// with three edge cases:
//   - no lag: 0;
//   - the committed offset did not move during the window although there
//     is lag (a stalled or dead consumer, whose drain time is unbounded):
//     the seconds since it last moved, which grows with the wall clock, so
//     an alarm on the metric fires for a stuck group;
//   - a partition seen for the first time with lag: unknown until a second
//     reading, and not reported.
const (
	timeLagWindow     = 2 * time.Minute
	timeLagMaxSamples = 32
)

type timeLagKey struct {
	group, topic string
	partition    int32
}

type offsetSample struct {
	at        time.Time
	committed int64
}

type timeLagTrack struct {
	samples     []offsetSample // oldest first, one at or before now-window kept as the base
	lastAdvance time.Time      // when the committed offset last moved (or was first seen)
	seen        uint64         // generation of the last observation
}

type timeLagEstimator struct {
	mu         sync.Mutex
	tracks     map[timeLagKey]*timeLagTrack
	generation uint64
}

func (e *timeLagEstimator) init() { e.tracks = map[timeLagKey]*timeLagTrack{} }

// partitionTimeLag is one partition's estimate; Known is false when there
// is not enough history yet.
type partitionTimeLag struct {
	Seconds float64
	Known   bool
}

// observe feeds one reading of every group's lag and returns the estimates
// in the same order (lags[i].Partitions[j] -> out[i][j]). Partitions not in
// this reading are forgotten.
func (e *timeLagEstimator) observe(now time.Time, lags []GroupLag) [][]partitionTimeLag {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.generation++
	out := make([][]partitionTimeLag, len(lags))
	for i, g := range lags {
		out[i] = make([]partitionTimeLag, len(g.Partitions))
		for j, p := range g.Partitions {
			k := timeLagKey{g.Group, p.Topic, p.Partition}
			t, ok := e.tracks[k]
			if !ok {
				t = &timeLagTrack{lastAdvance: now}
				e.tracks[k] = t
			}
			t.seen = e.generation
			out[i][j] = t.add(now, p.Committed, p.Lag)
		}
	}
	for k, t := range e.tracks {
		if t.seen != e.generation {
			delete(e.tracks, k)
		}
	}
	return out
}

func (t *timeLagTrack) add(now time.Time, committed, lag int64) partitionTimeLag {
	if n := len(t.samples); n > 0 {
		last := t.samples[n-1]
		if !now.After(last.at) {
			// Two readings at the same instant (a scrape and a shipment):
			// no new information about the pace.
			return t.estimate(now, committed, lag)
		}
		if committed != last.committed {
			t.lastAdvance = now
		}
	}
	t.samples = append(t.samples, offsetSample{at: now, committed: committed})
	// Keep one sample at or before the window's start as the base, drop
	// older ones, and bound the history whatever the reading rate.
	cut := 0
	for cut+1 < len(t.samples) && !t.samples[cut+1].at.After(now.Add(-timeLagWindow)) {
		cut++
	}
	if over := len(t.samples) - cut - timeLagMaxSamples; over > 0 {
		cut += over
	}
	if cut > 0 {
		t.samples = append(t.samples[:0], t.samples[cut:]...)
	}
	return t.estimate(now, committed, lag)
}

func (t *timeLagTrack) estimate(now time.Time, committed, lag int64) partitionTimeLag {
	if lag <= 0 {
		return partitionTimeLag{Seconds: 0, Known: true}
	}
	base := t.samples[0]
	elapsed := now.Sub(base.at).Seconds()
	if elapsed <= 0 {
		return partitionTimeLag{}
	}
	consumed := committed - base.committed
	if consumed <= 0 {
		return partitionTimeLag{Seconds: now.Sub(t.lastAdvance).Seconds(), Known: true}
	}
	return partitionTimeLag{Seconds: float64(lag) / (float64(consumed) / elapsed), Known: true}
}
