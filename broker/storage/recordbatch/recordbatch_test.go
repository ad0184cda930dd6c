package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
)

func records(n int, withTombstone bool) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		value := []byte(fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte("x"), 50)))
		if withTombstone && i == n-1 {
			value = nil
		}
		b = AppendNewRecord(b, NewRecord{
			OffsetDelta: int32(i), TimestampDelta: int64(i * 10),
			Key: []byte(fmt.Sprintf("key-%d", i)), Value: value,
			Headers: []RecordHeader{{Key: "h", Value: []byte("v")}},
		})
	}
	return b
}

func batch(t *testing.T, codec int, n int) []byte {
	t.Helper()
	b, err := Encode(Header{
		PartitionLeaderEpoch: -1, Attributes: int16(codec), LastOffsetDelta: int32(n - 1),
		BaseTimestamp: 1000, MaxTimestamp: 1000 + int64(10*(n-1)),
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(n),
	}, records(n, false))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncodeParseCheckEveryCodec(t *testing.T) {
	for codec := CodecNone; codec <= CodecZstd; codec++ {
		t.Run(fmt.Sprint(codec), func(t *testing.T) {
			b := batch(t, codec, 20)
			h, err := ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Size() != len(b) || h.Codec() != codec || h.RecordCount != 20 || h.LastOffset() != 19 {
				t.Fatalf("header %+v for %d bytes", h, len(b))
			}
			if err := Check(&h, b); err != nil {
				t.Fatal(err)
			}
			if err := ValidateProduced(&h, b); err != nil {
				t.Fatal(err)
			}
			recs, err := Decompress(codec, b[HeaderSize:])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(recs, records(20, false)) {
				t.Fatal("decompressed records differ from what was encoded")
			}
		})
	}
}

func TestRewritesKeepCRCValid(t *testing.T) {
	b := batch(t, CodecLz4, 3)
	SetBaseOffset(b, 1234)
	SetPartitionLeaderEpoch(b, 7)
	h, _ := ParseHeader(b)
	if err := Check(&h, b); err != nil {
		t.Fatalf("offset and epoch rewrite broke the CRC: %v", err)
	}
	if h.BaseOffset != 1234 || h.PartitionLeaderEpoch != 7 {
		t.Fatalf("rewrite not applied: %+v", h)
	}
	SetLogAppendTime(b, 99)
	h, _ = ParseHeader(b)
	if err := Check(&h, b); err != nil || !h.IsLogAppendTime() || h.MaxTimestamp != 99 {
		t.Fatalf("LogAppendTime rewrite: %+v, %v", h, err)
	}
}

func TestCheckAndValidateRejections(t *testing.T) {
	reencode := func(mod func(*Header)) []byte {
		b := batch(t, CodecNone, 3)
		h, _ := ParseHeader(b)
		mod(&h)
		nb, err := Encode(h, b[HeaderSize:])
		if err != nil {
			t.Fatal(err)
		}
		return nb
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", batch(t, CodecNone, 1)[:40], ErrTruncated},
		{"short body", batch(t, CodecNone, 3)[:100], ErrTruncated},
		{"crc", func() []byte { b := batch(t, CodecNone, 3); b[70] ^= 1; return b }(), ErrCorrupt},
		{"magic", func() []byte { b := batch(t, CodecNone, 3); b[offMagic] = 1; return b }(), ErrCorrupt},
		{"no records", reencode(func(h *Header) { h.RecordCount = 0; h.LastOffsetDelta = -1 }), ErrInvalid},
		{"count vs delta", reencode(func(h *Header) { h.LastOffsetDelta = 5 }), ErrInvalid},
		{"count vs records", reencode(func(h *Header) { h.RecordCount = 4; h.LastOffsetDelta = 3 }), ErrInvalid},
		{"unknown codec", func() []byte {
			b := batch(t, CodecNone, 3)
			binary.BigEndian.PutUint16(b[offAttributes:], 5)
			binary.BigEndian.PutUint32(b[offCRC:], ComputeCRC(b))
			return b
		}(), ErrInvalid},
		{"unknown attribute", reencode(func(h *Header) { h.Attributes = 0x100 }), ErrInvalid},
		{"delete horizon", reencode(func(h *Header) { h.Attributes = DeleteHorizonBit }), ErrInvalid},
		{"producer without epoch", reencode(func(h *Header) { h.ProducerID = 5 }), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(tc.b)
			if err == nil {
				err = Check(&h, tc.b)
			}
			if err == nil {
				err = ValidateProduced(&h, tc.b)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIncrementSequenceWraps(t *testing.T) {
	for _, tc := range []struct{ seq, delta, want int32 }{
		{0, 4, 4}, {math.MaxInt32 - 2, 2, math.MaxInt32}, {math.MaxInt32 - 2, 3, 0}, {math.MaxInt32, 5, 4},
	} {
		if got := IncrementSequence(tc.seq, tc.delta); got != tc.want {
			t.Errorf("IncrementSequence(%d, %d) = %d, want %d", tc.seq, tc.delta, got, tc.want)
		}
	}
}

func TestXerialSnappy(t *testing.T) {
	raw, err := Compress(CodecSnappy, records(5, true))
	if err != nil {
		t.Fatal(err)
	}
	// Frame the raw block the way the Java client's snappy-java does.
	framed := append([]byte{}, xerialMagic...)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	framed = binary.BigEndian.AppendUint32(framed, uint32(len(raw)))
	framed = append(framed, raw...)
	got, err := Decompress(CodecSnappy, framed)
	if err != nil || !bytes.Equal(got, records(5, true)) {
		t.Fatalf("xerial-framed snappy: %v", err)
	}
}

func TestDecompressionBombIsRefused(t *testing.T) {
	saved := decompressLimit
	decompressLimit = 1 << 20
	t.Cleanup(func() { decompressLimit = saved })
	huge := make([]byte, decompressLimit+1024)
	for codec := CodecGzip; codec <= CodecZstd; codec++ {
		c, err := Compress(codec, huge)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decompress(codec, c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("codec %d: %d compressed bytes inflating past the limit: err %v", codec, len(c), err)
		}
	}
}

func TestRecordRoundTripAndTimestampRebase(t *testing.T) {
	var got []Record
	err := ForEachRecord(records(3, true), func(r *Record) error {
		got = append(got, *r)
		return nil
	})
	if err != nil || len(got) != 3 || got[2].Value != nil || string(got[1].Key) != "key-1" || got[1].TimestampDelta != 10 {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	var re []byte
	for i := range got {
		re = AppendRecord(re, &got[i], got[i].TimestampDelta-1000)
	}
	i := 0
	err = ForEachRecord(re, func(r *Record) error {
		if r.TimestampDelta != got[i].TimestampDelta-1000 || !bytes.Equal(r.Key, got[i].Key) || !bytes.Equal(r.Value, got[i].Value) || r.OffsetDelta != got[i].OffsetDelta {
			return fmt.Errorf("record %d changed: %+v", i, r)
		}
		i++
		return nil
	})
	if err != nil || i != 3 {
		t.Fatalf("re-encoded records: %v (%d)", err, i)
	}
}

// FuzzForEachRecord: arbitrary records sections never panic, and whatever
// parses re-encodes to records that parse to the same fields.
func FuzzForEachRecord(f *testing.F) {
	f.Add(records(3, true))
	f.Add([]byte{0x02, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var parsed []Record
		if err := ForEachRecord(data, func(r *Record) error { parsed = append(parsed, *r); return nil }); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var re []byte
		for i := range parsed {
			re = AppendRecord(re, &parsed[i], parsed[i].TimestampDelta)
		}
		i := 0
		err := ForEachRecord(re, func(r *Record) error {
			p := parsed[i]
			if r.OffsetDelta != p.OffsetDelta || r.TimestampDelta != p.TimestampDelta || !bytes.Equal(r.Key, p.Key) ||
				!bytes.Equal(r.Value, p.Value) || (r.Key == nil) != (p.Key == nil) || (r.Value == nil) != (p.Value == nil) {
				return fmt.Errorf("record %d differs after re-encoding", i)
			}
			i++
			return nil
		})
		if err != nil || i != len(parsed) {
			t.Fatalf("re-encoded records: %v (%d of %d)", err, i, len(parsed))
		}
	})
}

// FuzzDecompress: hostile compressed input never panics or exceeds the limit.
func FuzzDecompress(f *testing.F) {
	for codec := CodecGzip; codec <= CodecZstd; codec++ {
		c, _ := Compress(codec, records(4, false))
		f.Add(codec, c)
	}
	f.Fuzz(func(t *testing.T, codec int, data []byte) {
		out, err := Decompress(codec&7, data)
		if err == nil && len(out) > MaxDecompressedBytes {
			t.Fatalf("decompressed %d bytes, past the limit", len(out))
		}
	})
}
