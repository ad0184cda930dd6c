package cluster

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// tcpStream is a raft.StreamLayer on a plain TCP listener.
type tcpStream struct{ net.Listener }

func (s tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// TestRaftTransportDoesNotPipeline: the quorum's transport refuses
// pipelined replication, so hashicorp/raft replicates one AppendEntries at
// a time and never enters the pipeline whose end can deadlock a
// replication goroutine (and with it Raft.Shutdown). With pipelining on,
// the transport dials the peer and hands back a pipeline.
func TestRaftTransportDoesNotPipeline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// A peer that accepts connections (the kernel does, from its
	// backlog) and never answers.
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	trans := newRaftTransport(tcpStream{ln}, hclog.NewNullLogger())
	defer trans.Close()
	p, err := trans.AppendEntriesPipeline("2", raft.ServerAddress(peer.Addr().String()))
	if p != nil {
		p.Close()
	}
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: pipeline %v, err %v; want ErrPipelineReplicationNotSupported", p != nil, err)
	}
}
