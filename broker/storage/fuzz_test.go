package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// seedLog returns a small valid segment: batches with offsets assigned.
func seedLog(t testing.TB, codecs ...int) []byte {
	var out []byte
	next := int64(0)
	for i, c := range codecs {
		b := makeBatch(t, batchSpec{records: 1 + i%3, valueSize: 20, codec: c})
		recordbatch.SetBaseOffset(b, next)
		h, _ := recordbatch.ParseHeader(b)
		next = h.LastOffset() + 1
		out = append(out, b...)
	}
	return out
}

// FuzzRecovery writes arbitrary bytes as a partition's only segment and
// opens the store as after a crash. Invariants: Open succeeds (a torn or
// corrupt tail is cut, never fatal), the segment left on disk is a prefix of
// the input made only of whole CRC-valid batches in offset order, the log
// end follows the last of them, and an append lands exactly there.
func FuzzRecovery(f *testing.F) {
	valid := seedLog(f, 0, 1, 2, 3, 4)
	f.Add(valid)
	f.Add(valid[:len(valid)-7])
	f.Add(append(bytes.Clone(valid), 0xde, 0xad))
	flipped := bytes.Clone(valid)
	flipped[100] ^= 0x40
	f.Add(flipped)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := memTempDir(t)
		part := filepath.Join(dir, "fz-0")
		if err := os.MkdirAll(part, 0o755); err != nil {
			t.Fatal(err)
		}
		seg := filepath.Join(part, segmentName(0)+logSuffix)
		if err := os.WriteFile(seg, data, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Open(dir, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatalf("Open after a crash must recover, got %v", err)
		}
		defer st.Close()
		p, ok := st.Partition("fz", 0)
		if !ok {
			t.Fatal("partition not recovered")
		}
		left, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, left) {
			t.Fatalf("recovered segment (%d bytes) is not a prefix of the input", len(left))
		}
		end := int64(0)
		for pos := 0; pos < len(left); {
			h, err := recordbatch.ParseHeader(left[pos:])
			if err != nil || pos+h.Size() > len(left) {
				t.Fatalf("recovered segment has a partial batch at %d: %v", pos, err)
			}
			if err := recordbatch.Check(&h, left[pos:pos+h.Size()]); err != nil {
				t.Fatalf("recovered segment keeps a bad batch at %d: %v", pos, err)
			}
			if h.BaseOffset < end {
				t.Fatalf("recovered batch at %d goes back to offset %d after %d", pos, h.BaseOffset, end)
			}
			end = h.LastOffset() + 1
			pos += h.Size()
		}
		if p.LogEndOffset() != end {
			t.Fatalf("log end %d, want %d after the recovered batches", p.LogEndOffset(), end)
		}
		res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 1}), AppendOptions{})
		if err != nil || res.BaseOffset != end {
			t.Fatalf("append after recovery: %+v, %v; want offset %d", res, err, end)
		}
	})
}

// FuzzAppend appends arbitrary bytes. Invariants: either a typed error and
// an unchanged log, or the bytes are stored and read back identical except
// for the offset and leader-epoch fields the broker assigns.
func FuzzAppend(f *testing.F) {
	f.Add(seedLog(f, 0))
	f.Add(seedLog(f, 4, 2))
	f.Add(makeBatch(f, batchSpec{records: 3, producerID: 1, producerEpoch: 0, baseSequence: 0}))
	f.Add([]byte("not a batch at all"))
	f.Add(make([]byte, 61))
	typed := []error{ErrCorruptMessage, ErrRecordTooLarge, ErrInvalidRecord, ErrUnsupportedMessageFormat,
		ErrOutOfOrderSequence, ErrInvalidProducerEpoch, ErrUnknownProducerID}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Open(memTempDir(t), Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		p, err := st.CreatePartition("fa", 0, TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		orig := bytes.Clone(data)
		res, err := p.Append(context.Background(), data, AppendOptions{LeaderEpoch: 3})
		if err != nil {
			known := false
			for _, e := range typed {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Fatalf("Append failed with an untyped error: %v", err)
			}
			if p.LogEndOffset() != 0 || p.Size() != 0 {
				t.Fatalf("rejected input changed the log: end %d size %d", p.LogEndOffset(), p.Size())
			}
			return
		}
		got, err := p.Read(0, int32(len(orig)+1), p.HighWatermark())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(orig) {
			t.Fatalf("read back %d bytes, appended %d", len(got), len(orig))
		}
		next := int64(0)
		for pos := 0; pos < len(got); {
			h, err := recordbatch.ParseHeader(got[pos:])
			if err != nil {
				t.Fatal(err)
			}
			if h.BaseOffset != next || h.PartitionLeaderEpoch != 3 {
				t.Fatalf("batch at %d: offset %d epoch %d, want %d and 3", pos, h.BaseOffset, h.PartitionLeaderEpoch, next)
			}
			next = h.LastOffset() + 1
			// Blank the broker-assigned fields in both and compare the rest.
			a, b := bytes.Clone(got[pos:pos+h.Size()]), bytes.Clone(orig[pos:pos+h.Size()])
			for _, x := range [][]byte{a, b} {
				recordbatch.SetBaseOffset(x, 0)
				recordbatch.SetPartitionLeaderEpoch(x, 0)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("batch at %d changed beyond offset and epoch", pos)
			}
			pos += h.Size()
		}
		if res.BaseOffset != 0 || res.LastOffset != next-1 || p.LogEndOffset() != next {
			t.Fatalf("result %+v, log end %d; want [0, %d]", res, p.LogEndOffset(), next-1)
		}
	})
}

// FuzzRecoveryDamage builds a valid log of n batches, cuts it at cut and
// flips bits of one byte inside a batch's CRC-covered part (or its CRC),
// then recovers. The exact expectation: the log keeps precisely the batches
// before the first torn or damaged one (CRC-32C catches every burst of up
// to 32 bits), and appends continue after them.
func FuzzRecoveryDamage(f *testing.F) {
	f.Add(uint8(5), uint32(1000), uint32(130), byte(0x01))
	f.Add(uint8(3), uint32(0xffffffff), uint32(0), byte(0))
	f.Add(uint8(8), uint32(333), uint32(999), byte(0x80))
	f.Fuzz(func(t *testing.T, n uint8, cut uint32, flip uint32, xor byte) {
		count := int(n%12) + 1
		codecs := make([]int, count)
		for i := range codecs {
			codecs[i] = (i + int(n)) % 5
		}
		log := seedLog(t, codecs...)
		var starts []int
		for pos := 0; pos < len(log); {
			h, _ := recordbatch.ParseHeader(log[pos:])
			starts = append(starts, pos)
			pos += h.Size()
		}
		starts = append(starts, len(log))
		length := int(cut % uint32(len(log)+1))
		// The flip lands in [start+17, end) of the batch it falls in.
		flipAt := int(flip % uint32(len(log)))
		damaged := -1
		for k := 0; k+1 < len(starts); k++ {
			if flipAt >= starts[k] && flipAt < starts[k+1] {
				flipAt = max(flipAt, starts[k]+17)
				if xor != 0 {
					damaged = k
				}
			}
		}
		data := bytes.Clone(log)
		data[flipAt] ^= xor
		data = data[:length]
		want := 0
		for want+1 < len(starts) && starts[want+1] <= length && want != damaged {
			want++
		}

		dir := memTempDir(t)
		part := filepath.Join(dir, "fd-0")
		if err := os.MkdirAll(part, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(part, segmentName(0)+logSuffix), data, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Open(dir, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer st.Close()
		p, _ := st.Partition("fd", 0)
		got := readAll(t, p, 0, p.HighWatermark())
		if len(got) != want {
			t.Fatalf("%d batches, cut at %d of %d, damage in batch %d: recovered %d batches, want %d", count, length, len(log), damaged, len(got), want)
		}
		end := int64(0)
		if want > 0 {
			end = got[want-1].LastOffset() + 1
		}
		if res, err := p.Append(context.Background(), makeBatch(t, batchSpec{}), AppendOptions{}); err != nil || res.BaseOffset != end {
			t.Fatalf("append after recovery: %+v, %v; want offset %d", res, err, end)
		}
	})
}

// FuzzAppendAsFollower: arbitrary leader bytes are refused with a typed
// error and leave the log as it was, or are stored and read back byte for
// byte, with the log end after their last offset.
func FuzzAppendAsFollower(f *testing.F) {
	f.Add(seedLog(f, 0, 4, 2))
	f.Add(seedLog(f, 1)[:70])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Open(memTempDir(t), Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		p, err := st.CreatePartition("ff", 0, TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		orig := bytes.Clone(data)
		if err := p.AppendAsFollower(context.Background(), data); err != nil {
			if !errors.Is(err, ErrCorruptMessage) && !errors.Is(err, ErrInvalidRecord) && !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("untyped error: %v", err)
			}
			if p.LogEndOffset() != 0 || p.Size() != 0 {
				t.Fatalf("refused input changed the log: end %d size %d", p.LogEndOffset(), p.Size())
			}
			return
		}
		if len(orig) == 0 {
			return
		}
		got, err := p.Read(0, int32(len(orig)+1), p.HighWatermark())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, orig) {
			t.Fatalf("stored %d bytes differ from the %d given", len(got), len(orig))
		}
	})
}
