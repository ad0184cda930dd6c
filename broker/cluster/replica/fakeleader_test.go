package replica

import (
	"log/slog"
	"net"
	"sync"
	"testing"
)

// fakeLeader is a leader broker's replication listener (the real
// ReplicationServer) over in-memory logs, or over a Manager's leaderships
// when lookup is set.
type fakeLeader struct {
	srv *ReplicationServer

	mu    sync.Mutex
	parts map[TopicPartition]*leaderPart
	// lookup, when set, replaces parts: the server of a Manager.
	lookup Lookup
}

type leaderPart struct {
	log     *memLog
	tracker *Leader
}

func newFakeLeader(t *testing.T) *fakeLeader {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLeader{parts: map[TopicPartition]*leaderPart{}}
	fl.srv = ServeReplication(ln, fl.find, nil, nil, nil, slog.New(slog.DiscardHandler))
	t.Cleanup(fl.close)
	return fl
}

func (fl *fakeLeader) addr() string { return fl.srv.Addr() }

func (fl *fakeLeader) close() { fl.srv.Close() }

func (fl *fakeLeader) set(tp TopicPartition, lp *leaderPart) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.parts[tp] = lp
}

func (fl *fakeLeader) find(topic string, partition int32) (*Leader, LeaderLog, bool) {
	fl.mu.Lock()
	lookup := fl.lookup
	lp, ok := fl.parts[TopicPartition{topic, partition}]
	fl.mu.Unlock()
	if lookup != nil {
		return lookup(topic, partition)
	}
	if !ok {
		return nil, nil, false
	}
	return lp.tracker, lp.log, true
}
