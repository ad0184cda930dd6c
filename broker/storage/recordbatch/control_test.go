package recordbatch

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEndTxnMarkerMatchesKafka checks the control batch against franz-go's
// encoding of Kafka's ControlRecordKey and EndTxnMarker (the schemas
// clients decode), both ways.
func TestEndTxnMarkerMatchesKafka(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b, err := EncodeEndTxnMarker(77, 3, EndTxnMarker{Commit: commit, CoordinatorEpoch: 12}, 1_700_000_000_123)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(&h, b); err != nil {
			t.Fatal(err)
		}
		if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 77 || h.ProducerEpoch != 3 || h.BaseSequence != -1 ||
			h.RecordCount != 1 || h.LastOffsetDelta != 0 || h.BaseTimestamp != 1_700_000_000_123 || h.MaxTimestamp != 1_700_000_000_123 {
			t.Fatalf("marker header %+v", h)
		}
		var key, value []byte
		if err := ForEachRecord(b[HeaderSize:], func(r *Record) error {
			key, value = bytes.Clone(r.Key), bytes.Clone(r.Value)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var k kmsg.ControlRecordKey
		if err := k.ReadFrom(key); err != nil {
			t.Fatal(err)
		}
		wantType := kmsg.ControlRecordKeyTypeAbort
		if commit {
			wantType = kmsg.ControlRecordKeyTypeCommit
		}
		if k.Version != 0 || k.Type != wantType {
			t.Fatalf("control key %+v, want type %v", k, wantType)
		}
		var v kmsg.EndTxnMarker
		if err := v.ReadFrom(value); err != nil {
			t.Fatal(err)
		}
		if v.Version != 0 || v.CoordinatorEpoch != 12 {
			t.Fatalf("marker value %+v", v)
		}
		typ, m, ok, err := ParseControl(&h, b)
		if err != nil || !ok || m.Commit != commit || m.CoordinatorEpoch != 12 || (typ == ControlCommit) != commit {
			t.Fatalf("ParseControl: %d %+v %v %v", typ, m, ok, err)
		}
	}

	// A marker as kmsg writes it (value version 1 with a field we do not
	// know yet is still read).
	k := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeCommit}
	v := kmsg.EndTxnMarker{CoordinatorEpoch: 5}
	value := append(v.AppendTo(nil), 0xab, 0xcd)
	value[1] = 1
	rec := AppendNewRecord(nil, NewRecord{Key: k.AppendTo(nil), Value: value})
	b, err := Encode(Header{Attributes: ControlBit | TransactionalBit | CodecZstd, ProducerID: 1, BaseSequence: -1, RecordCount: 1}, rec)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := ParseHeader(b)
	if typ, m, ok, err := ParseControl(&h, b); err != nil || !ok || typ != ControlCommit || !m.Commit || m.CoordinatorEpoch != 5 {
		t.Fatalf("kmsg-written compressed marker: %d %+v %v %v", typ, m, ok, err)
	}
}

func TestParseControlRefusals(t *testing.T) {
	data := func(key, value []byte, n int) []byte {
		var rec []byte
		for i := 0; i < n; i++ {
			rec = AppendNewRecord(rec, NewRecord{OffsetDelta: int32(i), Key: key, Value: value})
		}
		b, err := Encode(Header{Attributes: ControlBit | TransactionalBit, ProducerID: 1, BaseSequence: -1, RecordCount: int32(n), LastOffsetDelta: int32(max(n-1, 0))}, rec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		wantOK  bool
		wantErr bool
		typ     int16
	}{
		{"empty batch (cleaned)", data(nil, nil, 0), false, false, 0},
		{"short key", data([]byte{0, 0, 1}, []byte{0, 0, 0, 0, 0, 1}, 1), false, true, 0},
		{"short value", data([]byte{0, 0, 0, 1}, []byte{0, 0, 0}, 1), false, true, 0},
		{"another control type", data([]byte{0, 0, 0, 2}, nil, 1), true, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := ParseHeader(tc.b)
			typ, _, ok, err := ParseControl(&h, tc.b)
			if ok != tc.wantOK || (err != nil) != tc.wantErr || (ok && typ != tc.typ) {
				t.Fatalf("ParseControl: type %d ok %v err %v", typ, ok, err)
			}
		})
	}
	plain := batch(t, CodecNone, 1)
	h, _ := ParseHeader(plain)
	if _, _, _, err := ParseControl(&h, plain); err == nil {
		t.Fatal("ParseControl accepted a data batch")
	}
}

// FuzzParseControl: arbitrary bytes after a control batch header never
// panic; whatever parses as a marker re-encodes to a batch that parses to
// the same marker.
func FuzzParseControl(f *testing.F) {
	for _, commit := range []bool{false, true} {
		b, _ := EncodeEndTxnMarker(1, 0, EndTxnMarker{Commit: commit, CoordinatorEpoch: 9}, 1)
		f.Add(b[HeaderSize:])
	}
	f.Add([]byte{})
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, records []byte) {
		b, err := Encode(Header{Attributes: ControlBit | TransactionalBit, ProducerID: 4, ProducerEpoch: 2, BaseSequence: -1, RecordCount: 1}, records)
		if err != nil {
			t.Fatalf("encoding %d bytes of records: %v", len(records), err)
		}
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		typ, m, ok, err := ParseControl(&h, b)
		if err != nil || !ok || (typ != ControlAbort && typ != ControlCommit) {
			return
		}
		if m.Commit != (typ == ControlCommit) {
			t.Fatalf("type %d parsed as commit=%v", typ, m.Commit)
		}
		again, err := EncodeEndTxnMarker(4, 2, m, 1)
		if err != nil {
			t.Fatal(err)
		}
		h2, _ := ParseHeader(again)
		typ2, m2, ok2, err := ParseControl(&h2, again)
		if err != nil || !ok2 || typ2 != typ || m2 != m {
			t.Fatalf("re-encoded marker parses as %d %+v %v %v, want %d %+v", typ2, m2, ok2, err, typ, m)
		}
	})
}
