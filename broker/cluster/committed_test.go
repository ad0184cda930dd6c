package cluster

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// pausableListener holds, while paused, every byte its connections read
// from then on: the node behind it stops receiving the metadata log.
type pausableListener struct {
	net.Listener
	mu     sync.Mutex
	resume chan struct{} // nil while running
}

func (l *pausableListener) pause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resume == nil {
		l.resume = make(chan struct{})
	}
}

func (l *pausableListener) unpause() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resume != nil {
		close(l.resume)
		l.resume = nil
	}
}

func (l *pausableListener) gate() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.resume
}

func (l *pausableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return pausableConn{Conn: c, l: l}, nil
}

type pausableConn struct {
	net.Conn
	l *pausableListener
}

// Read holds what it read while the listener is paused (a read already
// waiting when the pause began must not deliver it either).
func (c pausableConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if g := c.l.gate(); g != nil {
		<-g
	}
	return n, err
}

// A node whose metadata lags the active controller's (here: the log does
// not reach it) waits in WaitCaughtUpWithController until it has applied
// what the controller had when asked, within its context; a topic created
// before the call is in its State when it returns. This is how a broker
// asked about a topic it does not know tells a topic just created (it
// catches up) from one that does not exist.
func TestWaitCaughtUpWithControllerWaitsForTheControllersIndex(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.waitForLeader()
	ln := &pausableListener{Listener: listen(t, "127.0.0.1:0")}
	tc.dirs[4], tc.racks[4] = t.TempDir(), "a"
	four := tc.start(4, ln)
	t.Cleanup(ln.unpause) // before the nodes close
	if err := four.WaitRegistered(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := four.WaitCaughtUpWithController(ctxT(t)); err != nil {
		t.Fatalf("a node that follows the log: %v", err)
	}

	ln.pause()
	if _, err := tc.nodes[1].CreateTopic(ctxT(t), "fresh", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := four.State().Topic("fresh"); ok {
		t.Fatal("the paused node applied the topic")
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := four.WaitCaughtUpWithController(short); err == nil {
		t.Fatal("caught up with the controller while the metadata log could not reach it")
	}

	done := make(chan error, 1)
	go func() { done <- four.WaitCaughtUpWithController(ctxT(t)) }()
	ln.unpause()
	if err := <-done; err != nil {
		t.Fatalf("once the log reaches it again: %v", err)
	}
	if _, ok := four.State().Topic("fresh"); !ok {
		t.Fatal("caught up with the controller without the topic it created before the call")
	}
}
