package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

func TestAppendReadRoundTrip(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "orders", 0, TopicConfig{})
	var sent [][]byte
	next := int64(0)
	for i := 0; i < 20; i++ {
		b := makeBatch(t, batchSpec{records: 1 + i%4, valueSize: 100})
		orig := bytes.Clone(b)
		res := mustAppend(t, p, b)
		if res.BaseOffset != next || res.LastOffset != next+int64(1+i%4)-1 {
			t.Fatalf("batch %d: offsets [%d,%d], want base %d", i, res.BaseOffset, res.LastOffset, next)
		}
		recordbatch.SetBaseOffset(orig, next)
		recordbatch.SetPartitionLeaderEpoch(orig, 0)
		sent = append(sent, orig)
		next = res.LastOffset + 1
	}
	if got := p.LogEndOffset(); got != next {
		t.Fatalf("LogEndOffset = %d, want %d", got, next)
	}
	if got := p.HighWatermark(); got != next {
		t.Fatalf("HighWatermark = %d, want %d", got, next)
	}
	all, err := p.Read(0, 1<<20, p.HighWatermark())
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Join(sent, nil); !bytes.Equal(all, want) {
		t.Fatalf("read %d bytes, want the %d bytes appended", len(all), len(want))
	}
	// Reading from an offset in the middle of a batch starts at that batch.
	b, err := p.Read(sent0Last(t, sent)+1, 1, next)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, sent[1]) {
		t.Fatalf("read from batch 1 returned %d bytes, want exactly batch 1 (%d bytes; KIP-74 first batch whole)", len(b), len(sent[1]))
	}
	if _, err := p.Read(next+1, 100, next); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: err %v, want ErrOffsetOutOfRange", err)
	}
	if b, err := p.Read(next, 100, next); err != nil || len(b) != 0 {
		t.Fatalf("read at end: %d bytes, err %v; want none", len(b), err)
	}
}

func sent0Last(t *testing.T, sent [][]byte) int64 {
	t.Helper()
	h, err := recordbatch.ParseHeader(sent[0])
	if err != nil {
		t.Fatal(err)
	}
	return h.LastOffset()
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	p := mustCreate(t, st, "t", 3, TopicConfig{SegmentBytes: 1000})
	for i := 0; i < 30; i++ {
		mustAppend(t, p, makeBatch(t, batchSpec{records: 2, valueSize: 50}))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, dir, Options{})
	p2, ok := st2.Partition("t", 3)
	if !ok {
		t.Fatal("partition t-3 not recovered")
	}
	if p2.LogEndOffset() != 60 {
		t.Fatalf("LogEndOffset after reopen = %d, want 60", p2.LogEndOffset())
	}
	if got := len(readAll(t, p2, 0, 60)); got != 30 {
		t.Fatalf("read %d batches after reopen, want 30", got)
	}
	if p2.Config().SegmentBytes != 1000 {
		t.Fatalf("segment.bytes after reopen = %d, want 1000", p2.Config().SegmentBytes)
	}
	res := mustAppend(t, p2, makeBatch(t, batchSpec{records: 1}))
	if res.BaseOffset != 60 {
		t.Fatalf("append after reopen got offset %d, want 60", res.BaseOffset)
	}
	_ = context.Background
}
