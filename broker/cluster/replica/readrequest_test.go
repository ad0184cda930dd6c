package replica

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestReadRequestAllocatesWhatArrives: a request whose header announces
// maxRequestSize but whose body never comes costs the replication
// listener about firstRead, not the size announced.
func TestReadRequestAllocatesWhatArrives(t *testing.T) {
	r := bytes.NewReader([]byte("only this much"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readRequest(r, maxRequestSize)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a body cut short: %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > maxRequestSize/4 {
		t.Errorf("a %d-byte request with 14 bytes sent allocated %d bytes", maxRequestSize, got)
	}
}

// TestReadRequest: bodies of every size up to maxRequestSize are read
// whole, from readers that return a few bytes at a time or all at once,
// with or without io.EOF beside the last bytes.
func TestReadRequest(t *testing.T) {
	full := make([]byte, maxRequestSize)
	for i := range full {
		full[i] = byte(i * 7)
	}
	for _, n := range []int{10, firstRead - 1, firstRead, firstRead + 1, 3*firstRead + 5, maxRequestSize} {
		for name, r := range map[string]io.Reader{
			"whole":   bytes.NewReader(full[:n]),
			"dribble": io.LimitReader(&chunked{b: full[:n], step: 1000}, int64(n)),
			"eof":     &eofWithLast{b: full[:n]},
		} {
			got, err := readRequest(r, n)
			if err != nil || !bytes.Equal(got, full[:n]) {
				t.Errorf("%s, %d bytes: %d bytes read, %v", name, n, len(got), err)
			}
		}
	}
}

// chunked returns at most step bytes per Read.
type chunked struct {
	b    []byte
	step int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// eofWithLast returns io.EOF with the last bytes, as io.Reader allows.
type eofWithLast struct{ b []byte }

func (e *eofWithLast) Read(p []byte) (int, error) {
	n := copy(p, e.b)
	e.b = e.b[n:]
	if len(e.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}
