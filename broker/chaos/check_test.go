package chaos

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// builder writes histories for tests.
type builder struct {
	events []Event
	t0     time.Time
}

func (b *builder) add(e Event) {
	e.Index = len(b.events)
	e.Time = b.t0.Add(time.Duration(e.Index) * time.Millisecond)
	b.events = append(b.events, e)
}

func (b *builder) invoke(p int, key string, v int64) {
	b.add(Event{Process: p, Status: Invoke, Func: Send, Key: key, Value: v})
}

func (b *builder) complete(p int, key string, v int64, st Status, off int64) {
	b.add(Event{Process: p, Status: st, Func: Send, Key: key, Value: v, Offset: off})
}

func (b *builder) send(p int, key string, v int64, st Status, off int64) {
	b.invoke(p, key, v)
	b.complete(p, key, v, st, off)
}

func (b *builder) poll(p int, final bool, reads ...Read) {
	b.add(Event{Process: p, Status: Invoke, Func: Poll})
	b.add(Event{Process: p, Status: OK, Func: Poll, Reads: reads, Final: final})
}

func (b *builder) seek(p int, key string) { b.add(Event{Process: p, Func: Seek, Key: key}) }

func reads(key string, from int64, values ...int64) []Read {
	out := make([]Read, len(values))
	for i, v := range values {
		out[i] = Read{Key: key, Offset: from + int64(i), Value: v}
	}
	return out
}

// clean: two producers on two keys, one failed and one indeterminate send
// that never show up, a consumer that reads as it goes, and a final drain.
func clean() *builder {
	b := running()
	b.drain(cleanLog()...)
	return b
}

// cleanLog is what the drain of the clean history reads.
func cleanLog() []Read {
	return append(reads("t-0", 0, 100, 101, 103), reads("t-1", 0, 200, 202, 203)...)
}

// drain appends the final read-back of every key.
func (b *builder) drain(rs ...Read) {
	b.seek(9, "t-0")
	b.seek(9, "t-1")
	b.poll(9, true, rs...)
}

// running is the clean history up to its drain.
func running() *builder {
	b := &builder{t0: time.Unix(0, 0)}
	b.send(1, "t-0", 100, OK, 0)
	b.send(2, "t-1", 200, OK, 0)
	b.send(1, "t-0", 101, OK, 1)
	b.send(2, "t-1", 201, Info, 0) // timed out; never written
	b.send(1, "t-0", 102, Fail, 0)
	b.send(2, "t-1", 202, OK, 1)
	b.seek(3, "t-0")
	b.seek(3, "t-1")
	b.poll(3, false, reads("t-0", 0, 100)...)
	b.poll(3, false, append(reads("t-0", 1, 101), reads("t-1", 0, 200, 202)...)...)
	b.send(1, "t-0", 103, OK, 2)
	b.send(2, "t-1", 203, Info, 2) // indeterminate but written: fine
	b.poll(3, false, reads("t-0", 2, 103)...)
	return b
}

func TestCleanHistoryIsValid(t *testing.T) {
	b := clean()
	res := Check(b.events, Options{RequireAllSeen: true})
	if !res.Valid {
		t.Fatalf("clean history flagged:\n%s", res.Report(b.events, 0))
	}
	st := res.Stats
	if st.Sends != 8 || st.Acknowledged != 5 || st.Failed != 1 || st.Indeterminate != 2 || st.Keys != 2 || st.Records != 11 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(res.Report(b.events, 0), "valid") {
		t.Fatal("report does not say valid")
	}
}

func TestEachAnomalyIsCaught(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		mutate func(b *builder) // appended to the clean history
		// history, when set, is the whole history instead: for
		// anomalies that the drain at the end has to show.
		history func() *builder
		want    string
	}{
		{"lost write", Options{}, func(b *builder) {
			b.send(1, "t-0", 104, OK, 3)
			b.send(1, "t-0", 105, OK, 4)
			b.poll(4, false, reads("t-0", 4, 105)...) // offset 3 never read
		}, nil, LostWrite},
		{name: "lost write that a consumer read", opts: Options{RequireAllSeen: true}, history: func() *builder {
			// 104 was acknowledged at offset 3 and read there; after
			// the faults the log of t-0 ends at offset 2.
			b := running()
			b.send(1, "t-0", 104, OK, 3)
			b.poll(3, false, reads("t-0", 3, 104)...)
			b.drain(cleanLog()...)
			return b
		}, want: LostWrite},
		{name: "lost write that a consumer read, replaced in the log", history: func() *builder {
			// 104 was acknowledged at offset 3 and read there; the
			// drain reads offset 3 and finds 105 there instead.
			b := running()
			b.send(1, "t-0", 104, OK, 3)
			b.poll(3, false, reads("t-0", 3, 104)...)
			b.send(1, "t-0", 105, Info, 0)
			b.drain(append(reads("t-0", 0, 100, 101, 103, 105), reads("t-1", 0, 200, 202, 203)...)...)
			return b
		}, want: LostWrite},
		{name: "vanished read past the end of the log", opts: Options{RequireAllSeen: true}, history: func() *builder {
			// 204 was never acknowledged but was read at offset 3 of
			// t-1; after the faults the log of t-1 ends at offset 2.
			b := running()
			b.send(2, "t-1", 204, Info, 0)
			b.seek(6, "t-1")
			b.poll(6, false, reads("t-1", 3, 204)...)
			b.drain(cleanLog()...)
			return b
		}, want: VanishedRead},
		{"unseen by the drain", Options{RequireAllSeen: true}, func(b *builder) {
			b.send(1, "t-0", 104, OK, 3)
		}, nil, Unseen},
		{"duplicate", Options{}, func(b *builder) {
			b.seek(4, "t-0")
			b.poll(4, false, reads("t-0", 2, 103, 101)...) // 101 again at offset 3
		}, nil, Duplicate},
		{"inconsistent offset", Options{}, func(b *builder) {
			b.send(2, "t-1", 204, OK, 1) // offset 1 already holds 202
		}, nil, InconsistentOffset},
		{"offset gap", Options{}, func(b *builder) {
			b.send(1, "t-0", 104, OK, 3)
			b.send(1, "t-0", 105, OK, 4)
			b.poll(3, false, reads("t-0", 4, 105)...) // process 3 was at 2
			b.poll(5, false, reads("t-0", 3, 104)...)
		}, nil, OffsetGap},
		{"offset reorder", Options{}, func(b *builder) {
			b.poll(3, false, reads("t-0", 1, 101)...) // process 3 was at 2
		}, nil, OffsetReorder},
		{"send reorder", Options{}, func(b *builder) {
			b.invoke(1, "t-0", 104)
			b.invoke(1, "t-0", 105)
			b.complete(1, "t-0", 105, OK, 3)
			b.complete(1, "t-0", 104, OK, 4)
			b.poll(3, false, reads("t-0", 3, 105, 104)...)
		}, nil, SendReorder},
		{"aborted read", Options{}, func(b *builder) {
			b.send(1, "t-0", 104, Fail, 0)
			b.poll(3, false, reads("t-0", 3, 104)...)
		}, nil, AbortedRead},
		{"phantom read", Options{}, func(b *builder) {
			b.poll(3, false, reads("t-0", 3, 999)...)
		}, nil, PhantomRead},
		{"vanished read", Options{}, func(b *builder) {
			// 204 was read at offset 3 of t-1 but the drain (after the
			// faults) finds offset 3 holding something else.
			b.send(2, "t-1", 204, Info, 0)
			b.send(2, "t-1", 205, OK, 3)
			b.poll(6, false, reads("t-1", 3, 204)...)
			b.poll(9, true, reads("t-1", 3, 205)...)
		}, nil, VanishedRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *builder
			if tt.history != nil {
				b = tt.history()
			} else {
				b = clean()
				tt.mutate(b)
			}
			res := Check(b.events, tt.opts)
			if res.Valid || res.Kinds()[tt.want] == 0 {
				t.Fatalf("want %s, got %v\n%s", tt.want, res.Kinds(), res.Report(b.events, 0))
			}
			report := res.Report(b.events, 0)
			if !strings.Contains(report, "INVALID") || !strings.Contains(report, tt.want) {
				t.Fatalf("report does not show the anomaly:\n%s", report)
			}
			for _, a := range res.Anomalies {
				if len(a.Events) == 0 {
					t.Fatalf("anomaly %+v cites no events", a)
				}
			}
		})
	}
}

func TestSeekResetsConsumerContinuity(t *testing.T) {
	b := clean()
	b.seek(3, "t-0")
	b.poll(3, false, reads("t-0", 0, 100, 101)...) // re-read after seeking
	if res := Check(b.events, Options{}); !res.Valid {
		t.Fatalf("re-reading after a seek flagged:\n%s", res.Report(b.events, 0))
	}
}

func TestHistoryRoundTrip(t *testing.T) {
	r := NewRecorder()
	for _, e := range clean().events {
		e.Time = time.Time{}
		r.Add(e)
	}
	events := r.Events()
	var buf bytes.Buffer
	if err := WriteHistory(&buf, events); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(events) || !slices.EqualFunc(back, events, func(a, b Event) bool {
		return a.Index == b.Index && a.Time.Equal(b.Time) && a.Func == b.Func && a.Status == b.Status && slices.Equal(a.Reads, b.Reads) && a.Final == b.Final
	}) {
		t.Fatal("history changed in a round trip")
	}
	if _, err := ReadHistory(strings.NewReader("{bad")); err == nil {
		t.Fatal("bad history accepted")
	}
}

func (b *builder) logStart(p int, key string, off int64) {
	b.add(Event{Process: p, Status: OK, Func: LogStart, Key: key, Offset: off})
}

// retained: four acknowledged sends to t-0; a consumer reads the first
// two; later retention moves the log start to 3 (observed by a consumer
// starting over and by the drain) and only offset 3 is read. Events are
// 1 ms apart: the sends are invoked at 0-6 ms, the log start is first
// observed at 12 ms.
func retained() *builder {
	b := &builder{t0: time.Unix(0, 0)}
	for i := range int64(4) {
		b.send(1, "t-0", 100+i, OK, i)
	}
	b.seek(3, "t-0")
	b.poll(3, false, reads("t-0", 0, 100, 101)...)
	b.seek(3, "t-0") // offset out of range: it starts over
	b.logStart(3, "t-0", 3)
	b.poll(3, false, reads("t-0", 3, 103)...)
	b.seek(9, "t-0")
	b.logStart(9, "t-0", 3)
	b.poll(9, true, reads("t-0", 3, 103)...)
	return b
}

// TestRetentionExcusesRemovedRecords: a record below a log start observed
// at least the topic's retention after its send is not lost (read before
// and gone from the drain, or never read); one the log start passed
// sooner is, and so is every one when the run set no retention.
func TestRetentionExcusesRemovedRecords(t *testing.T) {
	b := retained()
	res := Check(b.events, Options{RequireAllSeen: true, Retention: 5 * time.Millisecond})
	if !res.Valid || res.Stats.Removed != 3 {
		t.Fatalf("retention of 5 ms, the log start observed 6-12 ms after the sends: valid %v, %d removed, want valid and 3\n%s", res.Valid, res.Stats.Removed, res.Report(b.events, 0))
	}
	for _, tc := range []struct {
		name      string
		retention time.Duration
		detail    string
	}{
		{"no retention", 0, ""},
		{"removed before its time", 13 * time.Millisecond, "before its retention of 13ms"},
	} {
		res := Check(b.events, Options{RequireAllSeen: true, Retention: tc.retention})
		kinds := res.Kinds()
		// 100 and 101 were read and are not in the drain; 102 never
		// was, below offset 3 that a consumer read.
		if res.Valid || kinds[LostWrite] != 3 || res.Stats.Removed != 0 {
			t.Fatalf("%s: %v, %d removed, want 3 lost writes\n%s", tc.name, kinds, res.Stats.Removed, res.Report(b.events, 0))
		}
		for _, a := range res.Anomalies {
			if !strings.Contains(a.Detail, tc.detail) {
				t.Errorf("%s: %q does not say %q", tc.name, a.Detail, tc.detail)
			}
		}
	}
}
