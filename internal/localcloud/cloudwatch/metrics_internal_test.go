package cloudwatch

import (
	"testing"
	"time"
)

func TestPeriodStartAlignsToEpoch(t *testing.T) {
	tests := []struct {
		t      time.Time
		period time.Duration
		want   time.Time
	}{
		{time.Unix(1000, 0), 420 * time.Second, time.Unix(840, 0)},
		{time.Unix(840, 0), 420 * time.Second, time.Unix(840, 0)},
		{time.Unix(839, 999), 420 * time.Second, time.Unix(420, 0)},
		{time.Unix(3599, 0), time.Hour, time.Unix(0, 0)},
		{time.Unix(-1, 0), time.Minute, time.Unix(-60, 0)},
	}
	for _, tt := range tests {
		if got := periodStart(tt.t, tt.period); !got.Equal(tt.want) {
			t.Errorf("periodStart(%v, %v) = %v, want %v", tt.t.Unix(), tt.period, got.Unix(), tt.want.Unix())
		}
	}
}

func TestPercentile(t *testing.T) {
	values := []float64{5, 1, 4, 2, 3}
	ones := []float64{1, 1, 1, 1, 1}
	tests := []struct {
		pct  float64
		want float64
	}{
		{0, 1}, {20, 1}, {21, 2}, {50, 3}, {90, 5}, {100, 5},
	}
	for _, tt := range tests {
		if got := percentile(values, ones, tt.pct); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.pct, got, tt.want)
		}
	}
	// Counts weight the values: 1 once and 10 nine times puts the median at 10.
	if got := percentile([]float64{1, 10}, []float64{1, 9}, 50); got != 10 {
		t.Errorf("weighted p50 = %v, want 10", got)
	}
}
