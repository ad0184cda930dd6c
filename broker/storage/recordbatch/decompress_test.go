package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestDecompressReusesDecoders: inflating a batch allocates its output and
// little else. A decoder made per batch costs 20-35 allocations (zstd's
// tables and history, gzip's flate window, lz4's block buffers).
func TestDecompressReusesDecoders(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	for _, codec := range []int{CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		recs := records(64, false)
		c, err := Compress(codec, recs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decompress(codec, c); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(50, func() {
			out, err := Decompress(codec, c)
			if err != nil || !bytes.Equal(out, recs) {
				t.Fatalf("codec %d: %v", codec, err)
			}
		})
		if allocs > 4 {
			t.Errorf("codec %d: %.1f allocations per batch, want at most 4", codec, allocs)
		}
	}
}

// TestDecompressPooledDecodersStayCorrect: a decoder that failed on one
// batch, and decoders shared by goroutines, still inflate every other
// batch to exactly its records, and the output is never shared with a
// later call.
func TestDecompressPooledDecodersStayCorrect(t *testing.T) {
	codecs := []int{CodecGzip, CodecSnappy, CodecLz4, CodecZstd}
	type input struct {
		codec int
		recs  []byte
		comp  []byte
	}
	var inputs []input
	for _, codec := range codecs {
		for n := 1; n <= 65; n += 16 {
			recs := records(n, n%2 == 0)
			c, err := Compress(codec, recs)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, input{codec, recs, c})
		}
	}
	for _, in := range inputs {
		bad := bytes.Clone(in.comp[:len(in.comp)/2])
		if _, err := Decompress(in.codec, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("codec %d: truncated input: err %v", in.codec, err)
		}
		out, err := Decompress(in.codec, in.comp)
		if err != nil || !bytes.Equal(out, in.recs) {
			t.Fatalf("codec %d after a failed batch: %v", in.codec, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var kept [][]byte
			for i := range 200 {
				in := inputs[(g*7+i)%len(inputs)]
				out, err := Decompress(in.codec, in.comp)
				if err != nil || !bytes.Equal(out, in.recs) {
					errs <- fmt.Errorf("goroutine %d, codec %d: %v", g, in.codec, err)
					return
				}
				kept = append(kept, out)
			}
			for j, out := range kept {
				if in := inputs[(g*7+j)%len(inputs)]; !bytes.Equal(out, in.recs) {
					errs <- fmt.Errorf("goroutine %d: output %d changed after later calls", g, j)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestZstdDeclaredSizeOverLimitRefusedBeforeAllocating: a frame of a few
// bytes that declares 1 GiB of content is refused without the gigabyte
// being allocated.
func TestZstdDeclaredSizeOverLimitRefusedBeforeAllocating(t *testing.T) {
	frame := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	frame = append(frame, 0xE0) // 8-byte content size, single segment
	frame = binary.LittleEndian.AppendUint64(frame, 1<<30)
	frame = append(frame, 0x01, 0x00, 0x00) // last block, raw, empty
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Decompress(CodecZstd, frame)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want ErrCorrupt", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Fatalf("allocated %d bytes for a frame declaring 1 GiB", n)
	}
}

// zstdFrame is a frame of an 8-byte declared content size followed by
// blocks; single segment, so the window is the declared size.
func zstdFrame(declared uint64, blocks ...byte) []byte {
	frame := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
	frame = append(frame, 0xE0)
	frame = binary.LittleEndian.AppendUint64(frame, declared)
	return append(frame, blocks...)
}

// TestZstdDeclaredSizeNotTrusted: a frame of a few bytes that declares
// 200 MiB, under the 256 MiB limit, is refused without the 200 MiB being
// allocated. DecodeAll allocated the declared size before decoding
// (TotalAlloc grew by 200 MiB per batch, zbomb15).
func TestZstdDeclaredSizeNotTrusted(t *testing.T) {
	for _, declared := range []uint64{200 << 20, 4 << 20} {
		frame := zstdFrame(declared, 0x01, 0x00, 0x00) // last block, raw, empty
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decompress(CodecZstd, frame)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("declared %d: err %v, want ErrCorrupt", declared, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("allocated %d bytes for a %d-byte frame declaring %d", n, len(frame), declared)
		}
	}
}

// TestZstdAllocatesWhatDecodes: every frame's declared size is checked,
// not only the first: an honest RLE frame (128 KiB from 4 bytes of block)
// followed by a frame that declares 8 MiB and holds 100 bytes is refused
// without the 8 MiB being allocated. Frames that tell the truth, with and
// without a checksum, with and without a declared size, one or several,
// inflate exactly.
func TestZstdAllocatesWhatDecodes(t *testing.T) {
	rle := []byte{0x03, 0x00, 0x10, 'x'} // last block, RLE, 128 KiB of 'x'
	honest := zstdFrame(128<<10, rle...)
	out, err := Decompress(CodecZstd, honest)
	if err != nil || !bytes.Equal(out, bytes.Repeat([]byte{'x'}, 128<<10)) {
		t.Fatalf("honest RLE frame: %d bytes, %v", len(out), err)
	}
	// last block, raw, 80 bytes
	liar := zstdFrame(8<<20, append([]byte{0x81, 0x02, 0x00}, make([]byte, 80)...)...)
	both := append(bytes.Clone(honest), liar...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Decompress(CodecZstd, both)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lying second frame: err %v, want ErrCorrupt", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
		t.Errorf("lying second frame: allocated %d bytes", n)
	}

	recs := records(2000, true)
	var framed []byte
	for range 3 {
		var buf bytes.Buffer
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(recs)
		w.Close()
		var h zstd.Header
		if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
			t.Fatalf("streamed frame declares its size (%v)", err)
		}
		framed = append(framed, buf.Bytes()...)
		out, err := Decompress(CodecZstd, framed)
		if err != nil || !bytes.Equal(out, bytes.Repeat(recs, len(framed)/buf.Len())) {
			t.Fatalf("%d frames without a size: %d bytes, %v", len(framed)/buf.Len(), len(out), err)
		}
	}
}
