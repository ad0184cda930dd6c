package cluster

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/security/tlsconf"
)

// hashicorp/raft's NetworkTransport decodes the RPCs of an accepted
// connection in its own loop and hands Raft the request alone, without the
// connection it came on: nothing after it can tell which certificate sent
// an RPC. So the check happens before it, on the stream: raftGuardConn
// reads each request off the connection as NetworkTransport will (the RPC
// type byte, then the request in msgpack with the same codec, then an
// InstallSnapshot's data), checks the sender that the request's header
// claims against the certificate, and only then lets NetworkTransport read
// the same bytes. A refused request closes the connection before Raft sees
// any of it. Responses, written by NetworkTransport, pass through.
//
// The RPC types are hashicorp/raft's (net_transport.go, unexported): the
// wire format of every version of this broker.
const (
	raftRPCAppendEntries   byte = 0
	raftRPCRequestVote     byte = 1
	raftRPCInstallSnapshot byte = 2
	raftRPCTimeoutNow      byte = 3
	raftRPCRequestPreVote  byte = 4
)

func raftRPCName(t byte) string {
	switch t {
	case raftRPCAppendEntries:
		return "AppendEntries"
	case raftRPCRequestVote:
		return "RequestVote"
	case raftRPCInstallSnapshot:
		return "InstallSnapshot"
	case raftRPCTimeoutNow:
		return "TimeoutNow"
	case raftRPCRequestPreVote:
		return "RequestPreVote"
	}
	return fmt.Sprintf("type %d", t)
}

// errRaftRPCRefused is a Raft RPC refused on its connection; it wraps
// the reason (ErrNodeIDMismatch for a sender that is not the
// certificate's node).
var errRaftRPCRefused = errors.New("refused a Raft RPC")

// raftHeaderCheck decides whether a Raft RPC of type t whose header
// claims hdr may go on.
type raftHeaderCheck func(t byte, hdr raft.RPCHeader) error

// raftGuardConn is an accepted Raft connection whose requests are read
// and checked before the transport reads them (see above).
type raftGuardConn struct {
	net.Conn
	rec   recordingReader
	dec   *codec.Decoder
	check raftHeaderCheck
	// pending is the part of the last checked request the transport
	// has not read yet; body the bytes of an InstallSnapshot's data
	// after it, passed through unread.
	pending []byte
	body    int64
	err     error
}

func newRaftGuardConn(c net.Conn, check raftHeaderCheck) *raftGuardConn {
	g := &raftGuardConn{Conn: c, check: check}
	g.rec.r = bufio.NewReader(c)
	// The decoder reads from rec as NetworkTransport's reads from its
	// bufio.Reader: exactly the request's bytes (rec is an
	// io.ByteScanner, so the codec buffers nothing of its own).
	g.dec = codec.NewDecoder(&g.rec, &codec.MsgpackHandle{})
	return g
}

func (g *raftGuardConn) Read(p []byte) (int, error) {
	for len(g.pending) == 0 && g.body == 0 {
		if g.err != nil {
			return 0, g.err
		}
		g.err = g.next()
	}
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if int64(len(p)) > g.body {
		p = p[:g.body]
	}
	n, err := g.rec.r.Read(p)
	g.body -= int64(n)
	return n, err
}

// next reads and checks the next request. io.EOF is a connection closed
// between requests.
func (g *raftGuardConn) next() error {
	t, err := g.rec.r.ReadByte()
	if err != nil {
		return err
	}
	g.rec.buf = append(g.rec.buf[:0], t)
	var hdr raft.RPCHeader
	var size int64
	switch t {
	case raftRPCAppendEntries:
		var req raft.AppendEntriesRequest
		err = g.dec.Decode(&req)
		hdr = req.RPCHeader
	case raftRPCRequestVote:
		var req raft.RequestVoteRequest
		err = g.dec.Decode(&req)
		hdr = req.RPCHeader
	case raftRPCRequestPreVote:
		var req raft.RequestPreVoteRequest
		err = g.dec.Decode(&req)
		hdr = req.RPCHeader
	case raftRPCInstallSnapshot:
		var req raft.InstallSnapshotRequest
		err = g.dec.Decode(&req)
		hdr, size = req.RPCHeader, req.Size
	case raftRPCTimeoutNow:
		var req raft.TimeoutNowRequest
		err = g.dec.Decode(&req)
		hdr = req.RPCHeader
	default:
		return fmt.Errorf("%w: unknown RPC type %d", errRaftRPCRefused, t)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading a Raft %s: %w", raftRPCName(t), err)
	}
	if size < 0 {
		return fmt.Errorf("%w: InstallSnapshot of %d bytes", errRaftRPCRefused, size)
	}
	if err := g.check(t, hdr); err != nil {
		return fmt.Errorf("%w: %s: %w", errRaftRPCRefused, raftRPCName(t), err)
	}
	g.pending, g.body = g.rec.buf, size
	return nil
}

// recordingReader reads from r and keeps what it read in buf.
type recordingReader struct {
	r   *bufio.Reader
	buf []byte
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	rr.buf = append(rr.buf, p[:n]...)
	return n, err
}

func (rr *recordingReader) ReadByte() (byte, error) {
	b, err := rr.r.ReadByte()
	if err == nil {
		rr.buf = append(rr.buf, b)
	}
	return b, err
}

func (rr *recordingReader) UnreadByte() error {
	if err := rr.r.UnreadByte(); err != nil {
		return err
	}
	rr.buf = rr.buf[:len(rr.buf)-1]
	return nil
}

// guardRaftConn binds the Raft RPCs of an accepted controller connection
// to the node its certificate names: each request's header must carry
// that node's server id, and an address that is not another server's
// (raftHeader). A plaintext port has no certificate: finding 8 of
// docs/broker-security.md. A certificate that names no node (issued
// before broker certificates named their node) is served unbound, with a
// warning, as the RPC connections are (rpcPeerOf); one naming a node in
// a form this version does not read is refused.
func (ctl *Controller) guardRaftConn(c net.Conn) (net.Conn, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return c, nil
	}
	id, named, err := tlsconf.PeerNodeID(tc.ConnectionState())
	if err != nil {
		return nil, err
	}
	if !named {
		ctl.unboundPeers.Add(1)
		ctl.log.Warn("a Raft connection's certificate names no node id; its RPCs are not bound to a node (renew the broker certificates)", "remote", c.RemoteAddr())
		return c, nil
	}
	remote := c.RemoteAddr()
	return newRaftGuardConn(c, func(t byte, hdr raft.RPCHeader) error {
		err := ctl.raftHeader(id, hdr)
		if err != nil {
			ctl.refusedRaftRPCs.Add(1)
			ctl.log.Warn("refused a Raft RPC; closing its connection", "rpc", raftRPCName(t), "remote", remote, "err", err)
		}
		return err
	}), nil
}

// raftHeader checks the sender a Raft RPC's header claims against node,
// the certificate's. Raft takes the sender's identity from the header
// alone: the server id (whose vote a RequestVote asks, which voter an
// election counts) and the address (the leader's address that followers
// forward proposals to, the candidate a vote is recorded for: Raft grants
// a second RequestVote in a term to the address it voted for). So the id
// must be the certificate's node, and the address must be given (without
// it Raft falls back to the request's deprecated Leader or Candidate
// field) and not be another server's, in this node's Raft configuration or
// in controller.quorum.voters. An address no server has is let through:
// a node's own address may change (refreshOwnAddress), and a node that
// has not yet received the configuration knows no address.
func (ctl *Controller) raftHeader(node int32, hdr raft.RPCHeader) error {
	want := serverID(node)
	if raft.ServerID(hdr.ID) != want {
		return fmt.Errorf("%w: sent as server %q on a connection whose certificate names node %d", ErrNodeIDMismatch, hdr.ID, node)
	}
	if len(hdr.Addr) == 0 {
		return fmt.Errorf("%w: sent by node %d without its address", ErrNodeIDMismatch, node)
	}
	addr := string(hdr.Addr)
	for _, v := range ctl.cfg.Voters {
		if v.Addr == addr && serverID(v.ID) != want {
			return fmt.Errorf("%w: node %d claims address %s, voter %d's", ErrNodeIDMismatch, node, addr, v.ID)
		}
	}
	select {
	case <-ctl.ready:
	default:
		return nil // Raft not started: no configuration yet
	}
	f := ctl.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("reading the Raft configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.Address) == addr && srv.ID != want {
			return fmt.Errorf("%w: node %d claims address %s, server %s's", ErrNodeIDMismatch, node, addr, srv.ID)
		}
	}
	return nil
}
