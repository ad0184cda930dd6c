package quota

import (
	"math"
	"testing"
	"time"
)

func TestReplicationThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	q := NewReplication(Config{Samples: 11, Window: time.Second}, clock)
	q.Record(1 << 30)
	if q.Exceeded() || q.Limited() || q.Bound() != math.MaxInt64 {
		t.Fatal("a throttle with no bound held traffic back")
	}
	q.SetBound(1000)
	// 1 GiB over the 10 s the rate spans at least: far over 1000 B/s, for
	// at most the whole window.
	if d := q.Delay(); d <= 0 || d > 11*time.Second {
		t.Fatalf("delay %v over the bound, want within (0, 11s]", d)
	}
	q2 := NewReplication(Config{Samples: 11, Window: time.Second}, clock)
	q2.SetBound(1000)
	q2.Record(5000) // 500 B/s over 10 s
	if q2.Exceeded() {
		t.Fatalf("5000 B over a 10 s span (%.0f B/s) is under 1000 B/s", q2.Rate())
	}
	q2.Record(6000) // 1100 B/s
	// Kafka's throttle time: (1100-1000)/1000 of the 10 s span.
	if d, want := q2.Delay(), time.Second; d != want {
		t.Fatalf("delay %v at 1100 B/s against 1000 B/s over 10 s, want %v", d, want)
	}
	// The samples are forgotten a whole window span after they started.
	now = now.Add(11 * time.Second)
	if q2.Exceeded() {
		t.Fatalf("still exceeded after the delay: %.0f B/s", q2.Rate())
	}
}
