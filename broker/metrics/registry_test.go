package metrics

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCountersUnderConcurrency records from many goroutines (run with
// -race) while snapshots are taken, and checks every total at the end.
func TestCountersUnderConcurrency(t *testing.T) {
	r, _ := newTestRegistry(t)
	const (
		workers = 8
		rounds  = 2000
	)
	topics := []string{"orders", "payments", "audit"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	snapshots := make(chan int, 1)
	go func() { // a scraper reading concurrently: totals never decrease
		n := 0
		var last int64
		for {
			select {
			case <-stop:
				snapshots <- n
				return
			default:
			}
			s := r.Snapshot()
			if s.BytesIn < last {
				t.Errorf("BytesIn went down: %d after %d", s.BytesIn, last)
			}
			last = s.BytesIn
			n++
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				topic := topics[(w+i)%len(topics)]
				r.ConnOpened()
				r.RecordProduce(topic, 100, 3)
				r.RecordFetch(topic, 50)
				r.RecordRequest(RequestKind(i%int(numRequestKinds)), 200, time.Millisecond)
				r.RecordTrafficIn(200)
				r.RecordTrafficOut(60)
				r.ConnClosed()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-snapshots; n == 0 {
		t.Error("the scraper took no snapshot")
	}

	s := r.Snapshot()
	total := int64(workers * rounds)
	checks := []struct {
		name      string
		got, want int64
	}{
		{"BytesIn", s.BytesIn, 100 * total},
		{"MessagesIn", s.MessagesIn, 3 * total},
		{"BytesOut", s.BytesOut, 50 * total},
		{"RequestCount", s.RequestCount, total},
		{"RequestBytesSum", s.RequestBytesSum, 200 * total},
		{"Connections", s.Connections, 0},
		{"ConnectionsCreated", s.ConnectionsCreated, total},
		{"ConnectionsClosed", s.ConnectionsClosed, total},
		{"TrafficIn", s.TrafficIn, 200 * total},
		{"TrafficOut", s.TrafficOut, 60 * total},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	var perTopic, requests int64
	for _, tt := range s.Topics {
		perTopic += tt.BytesIn
	}
	for _, h := range s.RequestTimes {
		requests += h.Count
		if h.Buckets[len(h.Buckets)-1] != h.Count {
			t.Errorf("all observations are 1ms, within the last bucket: %d of %d", h.Buckets[len(h.Buckets)-1], h.Count)
		}
	}
	if perTopic != s.BytesIn || len(s.Topics) != len(topics) {
		t.Errorf("topics %v sum to %d bytes in, broker total %d", s.Topics, perTopic, s.BytesIn)
	}
	if requests != total {
		t.Errorf("request histograms count %d, want %d", requests, total)
	}
}

// TestHotPathDoesNotAllocate pins the promise of the package doc.
func TestHotPathDoesNotAllocate(t *testing.T) {
	r, _ := newTestRegistry(t)
	r.RecordProduce("orders", 1, 1) // the topic's counters are made once
	calls := map[string]func(){
		"RecordProduce": func() { r.RecordProduce("orders", 1024, 10) },
		"RecordFetch":   func() { r.RecordFetch("orders", 1024) },
		"RecordRequest": func() { r.RecordRequest(RequestProduce, 512, 3*time.Millisecond) },
		"Conn":          func() { r.ConnOpened(); r.ConnClosed() },
		"Replication":   func() { r.RecordReplicationIn(1); r.RecordReplicationOut(1) },
		"Traffic":       func() { r.RecordTrafficIn(1); r.RecordTrafficOut(1) },
		"LogFlush":      func() { r.RecordLogFlush(time.Millisecond, 2) },
		"FollowerFetch": func() { r.RecordFollowerFetch(2*time.Millisecond, time.Millisecond, 1024) },
	}
	for name, f := range calls {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %.1f times per call", name, n)
		}
	}
}

func TestRemoveTopic(t *testing.T) {
	r, _ := newTestRegistry(t)
	r.RecordProduce("gone", 10, 1)
	r.RecordProduce("kept", 10, 1)
	r.RemoveTopic("gone")
	r.RemoveTopic("never-existed")
	s := r.Snapshot()
	if len(s.Topics) != 1 || s.Topics[0].Topic != "kept" {
		t.Fatalf("topics after removal: %+v", s.Topics)
	}
	r.RecordProduce("gone", 7, 1)
	for _, tt := range r.Snapshot().Topics {
		if tt.Topic == "gone" && tt.BytesIn != 7 {
			t.Errorf("a topic created again starts from zero: BytesIn = %d", tt.BytesIn)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{0, 400 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, time.Minute} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Count != 5 || s.Sum != time.Minute+4400*time.Microsecond {
		t.Fatalf("count %d sum %v", s.Count, s.Sum)
	}
	want := map[time.Duration]int64{500 * time.Microsecond: 2, time.Millisecond: 3, 5 * time.Millisecond: 4, 10 * time.Second: 4}
	for i, b := range latencyBuckets {
		if w, ok := want[b]; ok && s.Buckets[i] != w {
			t.Errorf("bucket <= %v holds %d, want %d", b, s.Buckets[i], w)
		}
	}
}

func TestClassifyRequest(t *testing.T) {
	fetch := func(version int16, replica int32) kmsg.Request {
		r := kmsg.NewPtrFetchRequest()
		r.Version = version
		if version >= 15 {
			r.ReplicaState.ID = replica
		} else {
			r.ReplicaID = replica
		}
		return r
	}
	cases := []struct {
		req  kmsg.Request
		want RequestKind
	}{
		{kmsg.NewPtrProduceRequest(), RequestProduce},
		{fetch(12, -1), RequestFetchConsumer},
		{fetch(12, 3), RequestFetchFollower},
		{fetch(15, -1), RequestFetchConsumer},
		{fetch(16, 0), RequestFetchFollower},
		{kmsg.NewPtrMetadataRequest(), RequestOther},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if got := ClassifyRequest(c.req); got != c.want {
				t.Errorf("ClassifyRequest(%T) = %v, want %v", c.req, got, c.want)
			}
		})
	}
}
