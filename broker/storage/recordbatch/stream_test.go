package recordbatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// bombBatch is a batch of one keyed record whose value is size zero bytes,
// compressed with codec: a compression bomb, a few KB that inflate to size.
// zstdWindow, when not 0, is the window the zstd frame declares (an
// attacker picks the largest the broker takes); snappy is framed as the
// Java producer frames it.
func bombBatch(t testing.TB, codec, size, zstdWindow int) []byte {
	t.Helper()
	recs := AppendNewRecord(nil, NewRecord{Key: []byte("k"), Value: make([]byte, size)})
	h := Header{PartitionLeaderEpoch: -1, Attributes: int16(codec), BaseTimestamp: 1000, MaxTimestamp: 1000,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 1}
	var body []byte
	switch {
	case codec == CodecZstd && zstdWindow != 0:
		var buf bytes.Buffer
		w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(zstdWindow), zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(recs)
		w.Close()
		body = buf.Bytes()
	case codec == CodecSnappy:
		var buf bytes.Buffer
		x := &xerialWriter{dst: &buf}
		x.Write(recs)
		x.Close()
		body = buf.Bytes()
	default:
		var err error
		if body, err = Compress(codec, recs); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, HeaderSize+len(body))
	copy(b[HeaderSize:], body)
	putHeader(b, h)
	return b
}

// allocated is what fn allocates (TotalAlloc), with what it returned.
func allocated(fn func() error) (uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

var bombCodecs = []struct {
	name   string
	codec  int
	window int
}{{"gzip", CodecGzip, 0}, {"lz4", CodecLz4, 0}, {"snappy-xerial", CodecSnappy, 0}, {"zstd", CodecZstd, 0}, {"zstd-8MiB-window", CodecZstd, DefaultZstdMaxWindow}}

// TestScanRecordsStreamsABomb: the key check of a compacted topic walks a
// batch inflating to 64 MiB allocating a few MiB (a zstd frame's window,
// lz4's block, a xerial block), not the 64 MiB Decompress allocated for it.
func TestScanRecordsStreamsABomb(t *testing.T) {
	const size = 64 << 20
	for _, c := range bombCodecs {
		t.Run(c.name, func(t *testing.T) {
			b := bombBatch(t, c.codec, size, c.window)
			h, err := ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			var seen int
			n, err := allocated(func() error {
				return ScanRecords(&h, b, func(r *RecordInfo) error {
					if r.NullKey || r.OffsetDelta != 0 {
						return fmt.Errorf("record %+v", r)
					}
					seen++
					return nil
				})
			})
			if err != nil || seen != 1 {
				t.Fatalf("%d records, %v", seen, err)
			}
			limit := uint64(6 << 20)
			if c.window != 0 {
				limit = 2*uint64(c.window) + 2<<20
			}
			t.Logf("%d-byte batch inflating to %d: %d bytes allocated", len(b), size, n)
			if n > limit {
				t.Fatalf("%d-byte batch inflating to %d bytes: %d bytes allocated, want at most %d", len(b), size, n, limit)
			}
		})
	}
}

// TestRecompressBoundsABomb: re-compressing a bomb into a codec that
// shrinks it again allocates what the codecs hold, not the inflated
// records; into one where it stays large (uncompressed) it is refused with
// ErrTooLarge once the output passes max.message.bytes, having allocated
// about that much.
func TestRecompressBoundsABomb(t *testing.T) {
	const size = 64 << 20
	for _, c := range bombCodecs {
		t.Run(c.name, func(t *testing.T) {
			b := bombBatch(t, c.codec, size, c.window)
			h, _ := ParseHeader(b)
			to := CodecZstd
			if c.codec == CodecZstd {
				to = CodecGzip
			}
			var out []byte
			n, err := allocated(func() (err error) {
				out, err = RecompressBatch(&h, b, to, 1<<20)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// lz4's reader holds a frame's blocks, up to 4 MiB each,
			// a zstd frame its window.
			limit := uint64(8 << 20)
			if c.codec == CodecLz4 {
				limit = 16 << 20
			}
			if c.window != 0 {
				limit = 2*uint64(c.window) + 4<<20
			}
			t.Logf("%d-byte batch inflating to %d, to codec %d: %d bytes allocated", len(b), size, to, n)
			if n > limit {
				t.Fatalf("re-compressing to %d: %d bytes allocated, want at most %d", to, n, limit)
			}
			oh, err := ParseHeader(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(&oh, out); err != nil {
				t.Fatal(err)
			}
			recs, err := Decompress(oh.Codec(), out[HeaderSize:])
			if err != nil || len(recs) < size {
				t.Fatalf("re-compressed records: %d bytes, %v", len(recs), err)
			}

			n, err = allocated(func() error {
				_, err := RecompressBatch(&h, b, CodecNone, 1<<20)
				return err
			})
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("inflating to %d bytes, uncompressed: err %v, want ErrTooLarge", size, err)
			}
			t.Logf("refused uncompressed after %d bytes allocated", n)
			if n > limit+4<<20 {
				t.Fatalf("refused after %d bytes allocated, want at most %d", n, limit+4<<20)
			}
		})
	}
}

// TestStreamsShareTheSlots: bombs streamed at once never hold more than
// streamSlots streams, and together allocate less than one of them
// inflated did.
func TestStreamsShareTheSlots(t *testing.T) {
	const size, bombs = 32 << 20, 16
	b := bombBatch(t, CodecGzip, size, 0)
	h, _ := ParseHeader(b)
	var inUse, most atomic.Int32
	streamHook = func(delta int) {
		n := inUse.Add(int32(delta))
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
	}
	t.Cleanup(func() { streamHook = nil })
	n, err := allocated(func() error {
		var wg sync.WaitGroup
		errs := make(chan error, bombs)
		for i := range bombs {
			wg.Go(func() {
				if i%2 == 0 {
					errs <- ScanRecords(&h, b, nil)
				} else {
					_, err := RecompressBatch(&h, b, CodecZstd, 1<<20)
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return errors.Join(all...)
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m > int32(cap(streamSlots)) || m < 1 {
		t.Fatalf("%d streams at once, %d slots", m, cap(streamSlots))
	}
	if inUse.Load() != 0 {
		t.Fatalf("%d slots still held", inUse.Load())
	}
	if n > size {
		t.Fatalf("%d bombs of %d bytes allocated %d bytes", bombs, size, n)
	}
}

// TestStreamRefusals: what the streams refuse, and as what.
func TestStreamRefusals(t *testing.T) {
	t.Run("inflated past the limit", func(t *testing.T) {
		old := decompressLimit
		decompressLimit = 1 << 20
		t.Cleanup(func() { decompressLimit = old })
		for _, c := range bombCodecs {
			b := bombBatch(t, c.codec, 4<<20, c.window)
			h, _ := ParseHeader(b)
			if err := ScanRecords(&h, b, nil); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: err %v, want ErrCorrupt", c.name, err)
			}
		}
	})
	t.Run("zstd window over DefaultZstdMaxWindow", func(t *testing.T) {
		b := bombBatch(t, CodecZstd, 32<<20, 2*DefaultZstdMaxWindow)
		h, _ := ParseHeader(b)
		if err := ScanRecords(&h, b, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err %v, want ErrCorrupt", err)
		}
	})
	t.Run("snappy block declaring more than it holds", func(t *testing.T) {
		// A raw block: varint length 16 MiB, then one literal byte.
		body := []byte{0x80, 0x80, 0x80, 0x08, 0x00, 'x'}
		b := make([]byte, HeaderSize+len(body))
		copy(b[HeaderSize:], body)
		putHeader(b, Header{Attributes: CodecSnappy, RecordCount: 1, ProducerID: -1, BaseSequence: -1})
		h, _ := ParseHeader(b)
		n, err := allocated(func() error { return ScanRecords(&h, b, nil) })
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err %v, want ErrCorrupt", err)
		}
		if n > 1<<20 {
			t.Fatalf("allocated %d bytes", n)
		}
	})
	t.Run("more records than the header says", func(t *testing.T) {
		b := producerBatch(t, CodecLz4, 5)
		h, _ := ParseHeader(b)
		h.RecordCount = 4
		if err := ScanRecords(&h, b, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err %v, want ErrInvalid", err)
		}
		h.RecordCount = 6
		if err := ScanRecords(&h, b, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err %v, want ErrInvalid", err)
		}
	})
}

// scanAgrees checks that ScanRecords (uncompressed and zstd) accepts
// exactly the record sections ForEachRecord accepts, and reports the same
// records; and that the log cleaner's streams agree with what it did on
// the inflated records: ScanKeys reports the same records and keys, and
// RewriteRecords keeping every other record with its timestamp delta plus
// one writes what AppendRecord wrote.
func scanAgrees(t *testing.T, recs []byte) {
	var want []RecordInfo
	var wantKeys [][]byte
	var rewritten []byte
	werr := ForEachRecord(recs, func(r *Record) error {
		if len(want)%2 == 0 {
			rewritten = AppendRecord(rewritten, r, r.TimestampDelta+1)
		}
		want = append(want, RecordInfo{Attributes: r.Attributes, TimestampDelta: r.TimestampDelta, OffsetDelta: r.OffsetDelta, NullKey: r.Key == nil, NullValue: r.Value == nil})
		wantKeys = append(wantKeys, bytes.Clone(r.Key))
		return nil
	})
	for _, codec := range []int{CodecNone, CodecZstd} {
		body, err := Compress(codec, recs)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, HeaderSize+len(body))
		copy(b[HeaderSize:], body)
		putHeader(b, Header{Attributes: int16(codec), RecordCount: int32(len(want)), ProducerID: -1, BaseSequence: -1})
		h, _ := ParseHeader(b)
		var got []RecordInfo
		gerr := ScanRecords(&h, b, func(r *RecordInfo) error { got = append(got, *r); return nil })
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("codec %d on %x: ForEachRecord %v, ScanRecords %v", codec, recs, werr, gerr)
		}
		if werr == nil && fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("codec %d: scanned %v, want %v", codec, got, want)
		}
		if gerr != nil && !errors.Is(gerr, ErrInvalid) {
			t.Fatalf("codec %d on %x: %v, want ErrInvalid", codec, recs, gerr)
		}
		cleanerAgrees(t, &h, b, want, wantKeys, werr, rewritten)
	}
}

func cleanerAgrees(t *testing.T, h *Header, b []byte, want []RecordInfo, wantKeys [][]byte, werr error, rewritten []byte) {
	t.Helper()
	var got []RecordInfo
	var gotKeys [][]byte
	var key, tee bytes.Buffer
	err := ScanKeys(h, b, &key, &tee, func(r *RecordInfo) error {
		got = append(got, *r)
		k := bytes.Clone(key.Bytes())
		if r.NullKey {
			if key.Len() > 0 {
				t.Fatalf("null key given %d key bytes", key.Len())
			}
			k = nil
		} else if k == nil {
			k = []byte{}
		}
		gotKeys = append(gotKeys, k)
		key.Reset()
		return nil
	})
	if (werr == nil) != (err == nil) {
		t.Fatalf("codec %d: ForEachRecord %v, ScanKeys %v", h.Codec(), werr, err)
	}
	if werr != nil {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("codec %d: ScanKeys %v, want ErrInvalid", h.Codec(), err)
		}
		return
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprintf("%q", gotKeys) != fmt.Sprintf("%q", wantKeys) {
		t.Fatalf("codec %d: ScanKeys read %v %q, want %v %q", h.Codec(), got, gotKeys, want, wantKeys)
	}
	// The tee gets a compressed batch's inflated records, and nothing of
	// an uncompressed one (its records are read in place).
	var inflated []byte
	if h.Codec() != CodecNone {
		if want, _ := Decompress(h.Codec(), b[HeaderSize:]); !bytes.Equal(tee.Bytes(), want) {
			t.Fatalf("codec %d: tee got %d bytes, want the %d inflated", h.Codec(), tee.Len(), len(want))
		}
		inflated = bytes.Clone(tee.Bytes())
		if inflated == nil {
			inflated = []byte{}
		}
	} else if tee.Len() > 0 {
		t.Fatalf("uncompressed batch: tee got %d bytes", tee.Len())
	}
	for _, from := range [][]byte{nil, inflated} {
		nh := *h
		nh.RecordCount = int32((len(want) + 1) / 2)
		i := 0
		nb, err := RewriteRecords(h, b, from, nh, func(r *RecordInfo) (bool, int64, error) {
			i++
			return i%2 == 1, r.TimestampDelta + 1, nil
		})
		if err != nil {
			t.Fatalf("codec %d: RewriteRecords: %v", h.Codec(), err)
		}
		rh, err := ParseHeader(nb)
		cmp := rh
		cmp.BatchLength, cmp.CRC = nh.BatchLength, nh.CRC // computed anew
		if err != nil || cmp != nh || Check(&rh, nb) != nil {
			t.Fatalf("codec %d: rewritten header %+v (%v), want %+v", h.Codec(), rh, err, nh)
		}
		if out, err := Decompress(rh.Codec(), nb[HeaderSize:]); err != nil || !bytes.Equal(out, rewritten) {
			t.Fatalf("codec %d (from kept records: %t): rewritten records %x (%v), want %x", h.Codec(), from != nil, out, err, rewritten)
		}
	}
}

func FuzzScanRecordsMatchesForEachRecord(f *testing.F) {
	good := records(3, true)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(AppendNewRecord(nil, NewRecord{Headers: []RecordHeader{{Key: "", Value: nil}}}))
	f.Add([]byte{0x02, 0x00})
	f.Add([]byte{0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00})
	f.Add([]byte{0x7f})
	f.Add([]byte{0x14, 0x00, 0x00, 0x00, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, recs []byte) {
		if len(recs) > 1<<16 {
			return
		}
		scanAgrees(t, recs)
	})
}

// TestRecompressSnappyIsXerial: a re-compressed snappy batch is framed as
// the Java producer frames it, in blocks of at most 32 KiB, and decodes to
// the records it was given.
func TestRecompressSnappyIsXerial(t *testing.T) {
	in := producerBatch(t, CodecGzip, 2000)
	h, _ := ParseHeader(in)
	out, err := RecompressBatch(&h, in, CodecSnappy, math.MaxInt32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out[HeaderSize:], xerialMagic) {
		t.Fatal("not xerial framed")
	}
	got, err := Decompress(CodecSnappy, out[HeaderSize:])
	if err != nil || !bytes.Equal(got, records(2000, true)) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
}

// TestUncompressedScanTakesNoSlot: with every stream slot taken (bombs
// being streamed), a compacted topic's key check of an uncompressed batch
// still goes through at once: it inflates nothing.
func TestUncompressedScanTakesNoSlot(t *testing.T) {
	var held []streamGrant
	for range cap(streamSlots) {
		held = append(held, acquireStream())
	}
	t.Cleanup(func() {
		for _, g := range held {
			g.release()
		}
	})
	b := producerBatch(t, CodecNone, 5)
	h, _ := ParseHeader(b)
	done := make(chan error, 1)
	go func() {
		keys := 0
		err := ScanRecords(&h, b, func(r *RecordInfo) error {
			if !r.NullKey {
				keys++
			}
			return nil
		})
		if err == nil && keys != 5 {
			err = fmt.Errorf("%d keyed records, want 5", keys)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an uncompressed key check waited for a stream slot")
	}
}

// TestCleanerStreamsAcrossBuffers: the log cleaner's streams read keys
// and copy records that straddle the 32 KiB buffer (keys and values of up
// to 100 KB, null keys, tombstones, headers), in every codec, exactly as
// ForEachRecord and AppendRecord over the inflated records did.
func TestCleanerStreamsAcrossBuffers(t *testing.T) {
	var recs []byte
	for i := 0; i < 40; i++ {
		key := bytes.Repeat([]byte{byte('a' + i%26)}, (i*7919)%(40<<10))
		if i%9 == 4 {
			key = nil
		}
		value := bytes.Repeat([]byte{byte(i)}, (i*15013)%(100<<10))
		if i%7 == 3 {
			value = nil
		}
		recs = AppendNewRecord(recs, NewRecord{OffsetDelta: int32(i), TimestampDelta: int64(i) * 1000, Key: key, Value: value,
			Headers: []RecordHeader{{Key: "h", Value: bytes.Repeat([]byte("v"), i*300)}}})
	}
	var want []RecordInfo
	var wantKeys [][]byte
	var rewritten []byte
	if err := ForEachRecord(recs, func(r *Record) error {
		if len(want)%2 == 0 {
			rewritten = AppendRecord(rewritten, r, r.TimestampDelta+1)
		}
		want = append(want, RecordInfo{Attributes: r.Attributes, TimestampDelta: r.TimestampDelta, OffsetDelta: r.OffsetDelta, NullKey: r.Key == nil, NullValue: r.Value == nil})
		wantKeys = append(wantKeys, bytes.Clone(r.Key))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, codec := range []int{CodecNone, CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		b, err := Encode(Header{Attributes: int16(codec), LastOffsetDelta: 39, RecordCount: 40, ProducerID: -1, BaseSequence: -1}, recs)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := ParseHeader(b)
		cleanerAgrees(t, &h, b, want, wantKeys, nil, rewritten)
	}
}

// TestRewriteRecordsStreamsABomb: the cleaner's two reads of a batch
// inflating to 64 MiB (its keys, then the copy of its one record into a
// new batch of the same codec) allocate what the codecs hold and the
// rewritten batch, not the inflated records.
func TestRewriteRecordsStreamsABomb(t *testing.T) {
	const size = 64 << 20
	for _, c := range bombCodecs {
		t.Run(c.name, func(t *testing.T) {
			b := bombBatch(t, c.codec, size, c.window)
			h, err := ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			var nb []byte
			n, err := allocated(func() error {
				if err := ScanKeys(&h, b, io.Discard, nil, func(r *RecordInfo) error {
					if r.NullKey || r.NullValue {
						return fmt.Errorf("record %+v", r)
					}
					return nil
				}); err != nil {
					return err
				}
				var err error
				nb, err = RewriteRecords(&h, b, nil, h, func(r *RecordInfo) (bool, int64, error) { return true, r.TimestampDelta, nil })
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			// lz4 holds a 4 MiB block in its decoder and in its encoder.
			limit := uint64(10 << 20)
			if c.window != 0 {
				limit = 2*uint64(c.window) + 4<<20
			}
			if raceEnabled {
				// sync.Pool drops pooled codecs, and s2's encoder
				// allocates per block (37 MB for this batch, 3.6 MB
				// without the race detector): still less than the
				// records inflated whole.
				limit = size
			}
			t.Logf("%d-byte batch inflating to %d: %d bytes allocated, rewritten in %d bytes", len(b), size, n, len(nb))
			if n > limit {
				t.Fatalf("%d-byte batch inflating to %d bytes: %d bytes allocated, want at most %d", len(b), size, n, limit)
			}
			nh, err := ParseHeader(nb)
			if err != nil || nh.Codec() != c.codec || nh.RecordCount != 1 || Check(&nh, nb) != nil {
				t.Fatalf("rewritten header %+v, %v", nh, err)
			}
			if err := ScanRecords(&nh, nb, nil); err != nil {
				t.Fatalf("rewritten batch: %v", err)
			}
		})
	}
}

// TestCleanerStreamsTakeTheSlots: the cleaner's reads hold one of the
// produce path's stream slots while they inflate or compress, and none
// when they do neither (an uncompressed batch, or kept inflated records
// rewritten uncompressed), so the broker never runs more than streamSlots
// codecs for produce requests and the cleaner together.
func TestCleanerStreamsTakeTheSlots(t *testing.T) {
	var inUse, taken atomic.Int32
	streamHook = func(delta int) {
		inUse.Add(int32(delta))
		if delta > 0 {
			taken.Add(1)
		}
	}
	t.Cleanup(func() { streamHook = nil })
	for _, tc := range []struct {
		name     string
		codec    int // the batch's and its rewrite's
		inflated bool
		want     int32 // slots held while reading a record
	}{
		{"gzip", CodecGzip, false, 1},
		{"gzip from kept records", CodecGzip, true, 1},
		{"zstd", CodecZstd, false, 1},
		{"uncompressed", CodecNone, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := producerBatch(t, tc.codec, 5)
			h, _ := ParseHeader(b)
			taken.Store(0)
			var held []int32
			if err := ScanKeys(&h, b, io.Discard, nil, func(*RecordInfo) error { held = append(held, inUse.Load()); return nil }); err != nil {
				t.Fatal(err)
			}
			var inflated []byte
			if tc.inflated {
				inflated, _ = Decompress(tc.codec, b[HeaderSize:])
			}
			nh := h
			nh.RecordCount = 5
			if _, err := RewriteRecords(&h, b, inflated, nh, func(r *RecordInfo) (bool, int64, error) {
				held = append(held, inUse.Load())
				return true, r.TimestampDelta, nil
			}); err != nil {
				t.Fatal(err)
			}
			for i, n := range held {
				if n != tc.want {
					t.Fatalf("record read %d: %d slots held, want %d", i, n, tc.want)
				}
			}
			if n := inUse.Load(); n != 0 {
				t.Fatalf("%d slots still held", n)
			}
			if want := 2 * tc.want; taken.Load() != want {
				t.Fatalf("%d slots taken, want %d", taken.Load(), want)
			}
		})
	}
	// Kept records rewritten uncompressed inflate and compress nothing.
	b := producerBatch(t, CodecGzip, 5)
	h, _ := ParseHeader(b)
	inflated, _ := Decompress(CodecGzip, b[HeaderSize:])
	nh := h
	nh.Attributes &^= CompressionMask
	taken.Store(0)
	if _, err := RewriteRecords(&h, b, inflated, nh, func(r *RecordInfo) (bool, int64, error) { return true, r.TimestampDelta, nil }); err != nil {
		t.Fatal(err)
	}
	if taken.Load() != 0 {
		t.Fatalf("kept records rewritten uncompressed took %d slots", taken.Load())
	}
}

// TestZstdMaxWindowIsASetting: a zstd frame declaring a 16 MiB window
// (levels 20-22, --long), which Kafka decodes, is refused as corrupt at
// the default bound by the produce path's read (ScanRecords), and read
// once SetZstdMaxWindow allows 16 MiB. The log cleaner's read (ScanKeys)
// of the same frame, already stored, succeeds at every bound
// (acquireStoredStream). Out-of-range bounds are refused.
func TestZstdMaxWindowIsASetting(t *testing.T) {
	t.Cleanup(func() { _ = SetZstdMaxWindow(DefaultZstdMaxWindow) })
	const window = 16 << 20
	b := bombBatch(t, CodecZstd, 24<<20, window)
	h, _ := ParseHeader(b)
	read := func() (produce, cleaner error) {
		produce = ScanRecords(&h, b, nil)
		cleaner = ScanKeys(&h, b, io.Discard, nil, func(*RecordInfo) error { return nil })
		return
	}
	if p, c := read(); !errors.Is(p, ErrCorrupt) || c != nil {
		t.Fatalf("default bound: produce path %v (want ErrCorrupt), cleaner %v", p, c)
	}
	if err := SetZstdMaxWindow(window); err != nil {
		t.Fatal(err)
	}
	if p, c := read(); p != nil || c != nil {
		t.Fatalf("bound %d: produce path %v, cleaner %v", window, p, c)
	}
	if err := SetZstdMaxWindow(DefaultZstdMaxWindow); err != nil {
		t.Fatal(err)
	}
	if p, c := read(); !errors.Is(p, ErrCorrupt) || c != nil {
		t.Fatalf("bound set back: produce path %v (want ErrCorrupt: a pooled decoder kept the larger bound?), cleaner %v", p, c)
	}
	for _, n := range []int64{0, MinZstdMaxWindow - 1, MaxZstdMaxWindow + 1} {
		if err := SetZstdMaxWindow(n); err == nil {
			t.Errorf("SetZstdMaxWindow(%d) accepted", n)
		}
	}
	if got := ZstdMaxWindow(); got != DefaultZstdMaxWindow {
		t.Fatalf("bound %d after refused settings, want %d", got, DefaultZstdMaxWindow)
	}
}
