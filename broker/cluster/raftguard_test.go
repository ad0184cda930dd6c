package cluster

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// streamConn is a net.Conn that reads a fixed stream.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (c streamConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// raftStream encodes requests as hashicorp/raft's NetworkTransport sends
// them: the RPC type byte, the request in msgpack, an InstallSnapshot's
// data after it.
type raftStream struct {
	buf bytes.Buffer
	enc *codec.Encoder
}

func newRaftStream() *raftStream {
	s := &raftStream{}
	s.enc = codec.NewEncoder(&s.buf, &codec.MsgpackHandle{})
	return s
}

func (s *raftStream) add(t *testing.T, typ byte, req any, data []byte) {
	t.Helper()
	s.buf.WriteByte(typ)
	if err := s.enc.Encode(req); err != nil {
		t.Fatal(err)
	}
	s.buf.Write(data)
}

// TestRaftGuardConnPassesBytesThrough: the transport reads through the
// check exactly the bytes the peer sent, request after request, an
// InstallSnapshot's data included, whatever its read sizes; a refused
// request ends the stream after the requests before it, with the reason.
func TestRaftGuardConnPassesBytesThrough(t *testing.T) {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("2"), Addr: []byte("10.0.0.2:9095")}
	snapshot := bytes.Repeat([]byte("snapshot data "), 1000)
	s := newRaftStream()
	s.add(t, raftRPCAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 3}, nil)
	s.add(t, raftRPCRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr, Term: 4, LastLogIndex: 9}, nil)
	s.add(t, raftRPCInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: 4, Size: int64(len(snapshot))}, snapshot)
	s.add(t, raftRPCTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr}, nil)
	var entries []*raft.Log
	for i := range 64 {
		entries = append(entries, &raft.Log{Index: uint64(10 + i), Term: 4, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 200)})
	}
	s.add(t, raftRPCAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 4, PrevLogEntry: 9, PrevLogTerm: 4, Entries: entries, LeaderCommitIndex: 9}, nil)
	s.add(t, raftRPCRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hdr, Term: 5}, nil)
	sent := s.buf.Bytes()

	var seen []byte
	for _, size := range []int{1, 7, 4096, 1 << 20} {
		seen = seen[:0]
		g := newRaftGuardConn(streamConn{r: bytes.NewReader(sent)}, func(typ byte, h raft.RPCHeader) error {
			seen = append(seen, typ)
			if string(h.ID) != "2" || string(h.Addr) != "10.0.0.2:9095" {
				t.Errorf("%s: header %+v", raftRPCName(typ), h)
			}
			return nil
		})
		got, err := readAllIn(g, size)
		if err != nil {
			t.Fatalf("reads of %d bytes: %v", size, err)
		}
		if !bytes.Equal(got, sent) {
			t.Fatalf("reads of %d bytes: %d bytes read, want the %d sent unchanged", size, len(got), len(sent))
		}
		if want := []byte{0, 1, 2, 3, 0, 4}; !bytes.Equal(seen, want) {
			t.Fatalf("checked %v, want %v", seen, want)
		}
	}

	// The third request refused: the transport reads the first two
	// whole, then the refusal.
	errNo := errors.New("not this one")
	n := 0
	g := newRaftGuardConn(streamConn{r: bytes.NewReader(sent)}, func(byte, raft.RPCHeader) error {
		if n++; n == 3 {
			return errNo
		}
		return nil
	})
	got, err := readAllIn(g, 4096)
	if !errors.Is(err, errNo) || !errors.Is(err, errRaftRPCRefused) {
		t.Fatalf("err %v, want the refusal", err)
	}
	first := newRaftStream()
	first.add(t, raftRPCAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 3}, nil)
	first.add(t, raftRPCRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr, Term: 4, LastLogIndex: 9}, nil)
	if !bytes.Equal(got, first.buf.Bytes()) {
		t.Fatalf("read %d bytes before the refusal, want the first two requests (%d bytes)", len(got), first.buf.Len())
	}

	// A stream cut inside a request, and an unknown type.
	for name, stream := range map[string][]byte{"cut": sent[:len(sent)/2], "unknown type": {9, 0x80}} {
		g := newRaftGuardConn(streamConn{r: bytes.NewReader(stream)}, func(byte, raft.RPCHeader) error { return nil })
		if _, err := readAllIn(g, 4096); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: err %v, want an error other than EOF", name, err)
		}
	}
}

// readAllIn reads r to its end in reads of size bytes (io.EOF is the end).
func readAllIn(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// BenchmarkRaftGuardConn is the check's cost per request read: a
// heartbeat, and an AppendEntries of 64 entries of 200 bytes.
func BenchmarkRaftGuardConn(b *testing.B) {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("2"), Addr: []byte("10.0.0.2:9095")}
	var entries []*raft.Log
	for i := range 64 {
		entries = append(entries, &raft.Log{Index: uint64(10 + i), Term: 4, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 200)})
	}
	for _, bc := range []struct {
		name string
		req  *raft.AppendEntriesRequest
	}{
		{"heartbeat", &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 3}},
		{"64 entries", &raft.AppendEntriesRequest{RPCHeader: hdr, Term: 4, PrevLogEntry: 9, PrevLogTerm: 4, Entries: entries, LeaderCommitIndex: 9}},
	} {
		var one bytes.Buffer
		one.WriteByte(raftRPCAppendEntries)
		if err := codec.NewEncoder(&one, &codec.MsgpackHandle{}).Encode(bc.req); err != nil {
			b.Fatal(err)
		}
		const perStream = 256
		stream := bytes.Repeat(one.Bytes(), perStream)
		for _, guarded := range []bool{false, true} {
			name := bc.name + "/unchecked"
			if guarded {
				name = bc.name + "/checked"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(one.Len()))
				buf := make([]byte, 256<<10)
				for i := 0; i < b.N; i += perStream {
					var r io.Reader = bytes.NewReader(stream)
					if guarded {
						r = newRaftGuardConn(streamConn{r: r}, func(byte, raft.RPCHeader) error { return nil })
					}
					for {
						if _, err := r.Read(buf); err != nil {
							break
						}
					}
				}
			})
		}
	}
}
