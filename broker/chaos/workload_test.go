package chaos

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDrainEndsOnALogRetentionEmptied: a partition whose every record
// retention removed (its log start at its end) has nothing for the drain
// to read; the drain ends, recording that log start, instead of waiting
// for records that are gone. The other partition is read to its end.
func TestDrainEndsOnALogRetentionEmptied(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process; skipped with -short")
	}
	c, ctx := servingBroker(t, map[string]string{"log.retention.check.interval.ms": "200"}, 60*time.Second)
	cfg := WorkloadConfig{Brokers: c.Bootstrap(), Topic: "emptied", Partitions: 2, Logger: testLogger(),
		TopicConfigs: RetentionConfigs(time.Second, 1024, 0)}
	if err := CreateTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.DefaultProduceTopic("emptied"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(p int32, n int) {
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 20)
	adm := kadm.NewClient(cl)
	for {
		starts, err1 := adm.ListStartOffsets(ctx, "emptied")
		ends, err2 := adm.ListEndOffsets(ctx, "emptied")
		s, _ := starts.Lookup("emptied", 0)
		e, _ := ends.Lookup("emptied", 0)
		if err1 == nil && err2 == nil && e.Offset == 20 && s.Offset == 20 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("retention did not empty partition 0: start %d, end %d (%v %v)", s.Offset, e.Offset, err1, err2)
		case <-time.After(200 * time.Millisecond):
		}
	}
	produce(1, 5) // after: retention keeps them a second at least

	rec := NewRecorder()
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	defer dcancel()
	if err := Drain(dctx, cfg, 999, rec); err != nil {
		t.Fatalf("drain: %v", err)
	}
	start := map[string]int64{}
	read := map[string]map[int64]bool{"emptied-0": {}, "emptied-1": {}}
	for _, e := range rec.Events() {
		if e.Func == LogStart {
			start[e.Key] = max(start[e.Key], e.Offset)
		}
		if e.Func == Poll && e.Status == OK {
			for _, r := range e.Reads {
				read[r.Key][r.Offset] = true
			}
		}
	}
	if start["emptied-0"] != 20 || len(read["emptied-0"]) != 0 {
		t.Fatalf("emptied-0: log start %d recorded, %d records read; want 20 and none", start["emptied-0"], len(read["emptied-0"]))
	}
	// Under load retention may remove some of emptied-1 first: each of
	// its records is read or below a log start the drain recorded.
	for o := range int64(5) {
		if !read["emptied-1"][o] && o >= start["emptied-1"] {
			t.Fatalf("emptied-1: offset %d neither read nor below the log start recorded (%d)", o, start["emptied-1"])
		}
	}
}
