package metrics

import (
	"math"
	"testing"
	"time"
)

func TestTimeLagEstimates(t *testing.T) {
	type reading struct {
		after     time.Duration // since the previous reading
		committed int64
		lag       int64
		want      float64
		known     bool
	}
	cases := []struct {
		name     string
		readings []reading
	}{
		{"first reading with lag is unknown", []reading{{0, 100, 50, 0, false}}},
		{"no lag is zero at once", []reading{{0, 100, 0, 0, true}}},
		{"steady consumer", []reading{
			{0, 0, 1000, 0, false},
			{time.Minute, 600, 1200, 120, true}, // 10/s: 1200 take 120 s
			{time.Minute, 1200, 300, 30, true},  // still 10/s over the 2-minute window
		}},
		{"window slides", []reading{
			{0, 0, 100, 0, false},
			{time.Minute, 6000, 100, 1, true},   // 100/s
			{time.Minute, 6000, 100, 2, true},   // window 0..2m: 50/s
			{time.Minute, 6000, 100, 120, true}, // window 1m..3m: no progress, stalled since 1m
		}},
		{"stalled consumer reports time since it last moved", []reading{
			{0, 500, 10, 0, false},
			{30 * time.Second, 500, 20, 30, true},
			{30 * time.Second, 500, 30, 60, true},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e timeLagEstimator
			e.init()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, r := range c.readings {
				now = now.Add(r.after)
				got := e.observe(now, []GroupLag{{Group: "g", Partitions: []PartitionLag{{Topic: "t", Partition: 0, Committed: r.committed, Lag: r.lag}}}})
				tl := got[0][0]
				if tl.Known != r.known || (r.known && math.Abs(tl.Seconds-r.want) > 1e-9) {
					t.Errorf("reading %d: %+v, want %v known=%v", i, tl, r.want, r.known)
				}
			}
		})
	}
}

func TestTimeLagForgetsGonePartitions(t *testing.T) {
	var e timeLagEstimator
	e.init()
	now := time.Now()
	e.observe(now, []GroupLag{{Group: "g", Partitions: []PartitionLag{{Topic: "a"}, {Topic: "b"}}}})
	e.observe(now.Add(time.Second), []GroupLag{{Group: "g", Partitions: []PartitionLag{{Topic: "a"}}}})
	if len(e.tracks) != 1 {
		t.Errorf("%d partitions tracked, want 1", len(e.tracks))
	}
	for i := range 3 * timeLagMaxSamples {
		e.observe(now.Add(time.Duration(i+2)*time.Millisecond), []GroupLag{{Group: "g", Partitions: []PartitionLag{{Topic: "a"}}}})
	}
	for _, tr := range e.tracks {
		if len(tr.samples) > timeLagMaxSamples {
			t.Errorf("%d samples kept, bound %d", len(tr.samples), timeLagMaxSamples)
		}
	}
}
