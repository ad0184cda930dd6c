package fetchwire

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// memFile stands in for storage.FileSlice: record batches that reach the
// socket through its descriptor, not through Writer's buffers.
type memFile struct {
	b    []byte
	sent int
}

func (f *memFile) Len() int { return len(f.b) }

func (f *memFile) SendTo(c syscall.RawConn) (int64, error) {
	start := f.sent
	var werr error
	err := c.Write(func(fd uintptr) bool {
		for f.sent < len(f.b) {
			n, err := unix.Write(int(fd), f.b[f.sent:])
			if n > 0 {
				f.sent += n
			}
			switch {
			case errors.Is(err, unix.EAGAIN):
				return false
			case errors.Is(err, unix.EINTR):
			case err != nil:
				werr = err
				return true
			}
		}
		return true
	})
	if werr == nil {
		werr = err
	}
	return int64(f.sent - start), werr
}

// TestFilePiecesMatchKmsg: a response whose record batches are in files,
// written by WritePieces on TCP, is on the wire the bytes kmsg encodes for
// the same response with the batches in memory, for every served version.
func TestFilePiecesMatchKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	srv, peer := tcpPair(t)
	defer srv.Close()
	w := NewWriter(srv)
	if !w.CanSendFiles() {
		t.Fatal("a TCP connection cannot send files")
	}
	for version := int16(4); version <= 16; version++ {
		for round := range 20 {
			resp := randomFetchResponse(rng, version)
			want := kmsgFrame(int32(round), resp)
			// Every other partition with batches has them in a file, in
			// one or two pieces; its RecordBatches go nil.
			files := map[[2]int][]FileRecords{}
			k := 0
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					p := &resp.Topics[i].Partitions[j]
					if len(p.RecordBatches) == 0 {
						continue
					}
					if k++; k%2 == 0 {
						continue
					}
					cut := len(p.RecordBatches) / 3
					files[[2]int{i, j}] = []FileRecords{&memFile{b: p.RecordBatches[:cut]}, &memFile{b: p.RecordBatches[cut:]}}
					p.RecordBatches = nil
				}
			}
			pieces, ok := EncodeFiles(int32(round), resp, func(t, p int) []FileRecords { return files[[2]int{t, p}] })
			if !ok {
				t.Fatalf("v%d: refused a response without unknown tags", version)
			}
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(want))
				if _, err := io.ReadFull(peer, b); err != nil {
					b = nil
				}
				got <- b
			}()
			before := w.Sent()
			if err := w.WritePieces(pieces); err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("v%d round %d: the wire differs from kmsg's encoding\ngot  %x\nwant %x", version, round, b, want)
			}
			if n := w.Sent() - before; n != int64(len(want)) {
				t.Fatalf("v%d: Sent counted %d bytes of a %d-byte response", version, n, len(want))
			}
		}
	}
	// Over TLS (any other stream) the batches cannot go by sendfile.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if NewWriter(a).CanSendFiles() {
		t.Fatal("a non-TCP stream claims to send files")
	}
	if err := NewWriter(a).WritePieces([]Piece{{File: &memFile{b: []byte{1}}}}); err == nil {
		t.Fatal("WritePieces on a non-TCP stream succeeded")
	}
}
