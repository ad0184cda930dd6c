package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestReadFrameAllocatesWhatArrives: before authentication a frame's
// memory follows the bytes the client sent, not the size its header
// announces, so a client that sends a header and nothing more pins almost
// nothing however many connections it opens.
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	input := binary.BigEndian.AppendUint32(nil, saslMaxFrame)
	input = append(input, "only this much"...)
	br := bufio.NewReaderSize(bytes.NewReader(input), 4096)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readFrame(br, saslMaxFrame, nil, nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a frame cut short: %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > saslMaxFrame/4 {
		t.Errorf("a %d-byte header followed by %d bytes allocated %d bytes", saslMaxFrame, len("only this much"), got)
	}
}

// TestReadFrame: whole frames up to the limit are read exactly; a size
// over the limit or negative is refused before anything is read.
func TestReadFrame(t *testing.T) {
	frame := func(size uint32, body []byte) *bufio.Reader {
		return bufio.NewReader(bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, size), body...)))
	}
	full := bytes.Repeat([]byte{7}, saslMaxFrame)
	for _, body := range [][]byte{{}, []byte("x"), full[:100_000], full} {
		got, err := readFrame(frame(uint32(len(body)), append(body, "next frame"...)), saslMaxFrame, nil, nil)
		if err != nil || !bytes.Equal(got.B, body) {
			t.Errorf("a %d-byte frame: %d bytes, %v", len(body), len(got.B), err)
		}
	}
	for _, size := range []uint32{saslMaxFrame + 1, 1 << 31, 1<<32 - 1} {
		if _, err := readFrame(frame(size, nil), saslMaxFrame, nil, nil); err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("a %d-byte size header: %v, want a refusal", size, err)
		}
	}
}
