package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
)

// holdableFSM holds the applying of log entries from an index on, as a
// node whose state machine lags what the quorum committed: Raft goes on
// storing and committing entries, and the state it serves stays behind.
type holdableFSM struct {
	raft.FSM
	mu      sync.Mutex
	from    uint64        // entries at or past it wait; 0: none
	release chan struct{} // closed by letGo
}

func (f *holdableFSM) holdFrom(index uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.from, f.release = index, make(chan struct{})
}

func (f *holdableFSM) letGo() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.release != nil {
		close(f.release)
	}
	f.from, f.release = 0, nil
}

func (f *holdableFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	from, release := f.from, f.release
	f.mu.Unlock()
	if release != nil && l.Index >= from {
		<-release
	}
	return f.FSM.Apply(l)
}

// watchedLogStore tells when an entry that matches watch is stored: the
// moment the node, leading, proposed it.
type watchedLogStore struct {
	raft.LogStore
	mu    sync.Mutex
	watch func(*raft.Log) bool
	seen  chan struct{} // closed at the first match
}

func (s *watchedLogStore) watchFor(match func(*raft.Log) bool) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch, s.seen = match, make(chan struct{})
	return s.seen
}

func (s *watchedLogStore) saw(ls ...*raft.Log) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watch == nil {
		return
	}
	for _, l := range ls {
		if s.watch(l) {
			close(s.seen)
			s.watch = nil
			return
		}
	}
}

func (s *watchedLogStore) StoreLog(l *raft.Log) error {
	s.saw(l)
	return s.LogStore.StoreLog(l)
}

func (s *watchedLogStore) StoreLogs(ls []*raft.Log) error {
	s.saw(ls...)
	return s.LogStore.StoreLogs(ls)
}

// barrierOr matches the barrier a controller commits to catch up, and a
// command of type typ: whichever a new active controller stores first
// tells whether it waited to catch up before deciding.
func barrierOr(typ metadata.CommandType) func(*raft.Log) bool {
	return func(l *raft.Log) bool {
		return isBarrier(l) || l.Type == raft.LogCommand && len(l.Data) > 0 && metadata.CommandType(l.Data[0]) == typ
	}
}

func isBarrier(l *raft.Log) bool { return l.Type == raft.LogBarrier }

// laggingSuccessor is a cluster of three whose next active controller
// has not applied what its predecessor committed last.
type laggingSuccessor struct {
	tc     *testCluster
	fsms   map[int32]*holdableFSM
	stores map[int32]*watchedLogStore
}

func newLaggingSuccessorCluster(t *testing.T, maxBrokerPartitions int) *laggingSuccessor {
	t.Helper()
	// Filled by Start, which runs the edit in this goroutine.
	ls := &laggingSuccessor{fsms: map[int32]*holdableFSM{}, stores: map[int32]*watchedLogStore{}}
	ls.tc = &testCluster{t: t, dirs: map[int32]string{}, edit: func(c *Config) {
		id := c.NodeID
		c.MaxBrokerPartitions = maxBrokerPartitions
		c.RebalanceInterval = -1 // no preferred elections proposed meanwhile
		c.wrapFSM = func(f raft.FSM) raft.FSM {
			h := &holdableFSM{FSM: f}
			ls.fsms[id] = h
			return h
		}
		c.wrapLogStore = func(s raft.LogStore) raft.LogStore {
			w := &watchedLogStore{LogStore: s}
			ls.stores[id] = w
			return w
		}
	}}
	startTestCluster(t, ls.tc, 3)
	t.Cleanup(func() {
		// A held state machine would hold Raft's shutdown.
		for _, f := range ls.fsms {
			f.letGo()
		}
	})
	ls.tc.waitForLeader()
	ls.tc.waitForState("brokers registered", registered(1, 2, 3))
	return ls
}

// failOverTo makes the follower next the active controller while the
// entries from before holds the index on are not applied there: it holds
// next's state machine, runs before on the active controller (which
// commits and applies its changes), and transfers the leadership to next.
// It then runs op on next and lets next's state machine go once next
// stores an entry that matches release, or op returns; op's error is
// returned. before's changes are checked missing from next's state until
// then.
func (ls *laggingSuccessor) failOverTo(next *Controller, before func(ctx context.Context, leader *Controller), release func(*raft.Log) bool, op func(ctx context.Context) error) error {
	t, tc := ls.tc.t, ls.tc
	t.Helper()
	ctx := ctxT(t)
	id := next.cfg.NodeID
	leader := tc.waitForLeader()
	if leader == next {
		t.Fatal("next is already the active controller")
	}
	ls.fsms[id].holdFrom(next.raft.LastIndex() + 1)
	before(ctx, leader)
	held := leader.State().Index
	if next.State().Index >= held {
		t.Fatalf("node %d applied index %d with its state machine held", id, held)
	}
	checkFor(t, 10*time.Second, func() error {
		l := tc.waitForLeaderQuiet()
		if l == next {
			return nil
		}
		if l.IsActive() {
			if err := l.raft.LeadershipTransferToServer(serverID(id), raft.ServerAddress(next.Addr())).Error(); err != nil {
				return fmt.Errorf("transferring the leadership from %d to %d: %w", l.cfg.NodeID, id, err)
			}
		}
		return fmt.Errorf("node %d is not the active controller", id)
	})
	if got := next.State().Index; got >= held {
		t.Fatalf("node %d, now the active controller, applied index %d before the test let it go", id, got)
	}
	seen := ls.stores[id].watchFor(release)
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	select {
	case <-seen:
	case err := <-done:
		done <- err
	}
	ls.fsms[id].letGo()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("no answer within 20 s")
		return nil
	}
}

func (ls *laggingSuccessor) follower() *Controller { return ls.tc.follower() }

// fill3 is n partitions with a replica on each of brokers 1, 2 and 3.
func fill3(n int) [][]int32 {
	out := make([][]int32, n)
	for i := range out {
		out[i] = []int32{1, 2, 3}
	}
	return out
}

// A controller elected before it applied the topic its predecessor
// created last refuses a topic that, with that one, would put more than
// max.broker.partitions replicas on a broker, as its predecessor would
// have: it checks once it has applied every committed change.
func TestNewControllerCountsTheLastTopicBeforeMaxBrokerPartitions(t *testing.T) {
	const limit = 4
	ls := newLaggingSuccessorCluster(t, limit)
	next := ls.follower()
	err := ls.failOverTo(next, func(ctx context.Context, leader *Controller) {
		if _, err := leader.CreateTopicAssigned(ctx, "a", fill3(3), nil); err != nil {
			t.Fatal(err)
		}
	}, barrierOr(metadata.TypeCreateTopic), func(ctx context.Context) error {
		_, err := next.CreateTopicAssigned(ctx, "b", fill3(2), nil)
		return err
	})
	if !errors.Is(err, metadata.ErrPolicyViolation) {
		t.Fatalf("2 more replicas on brokers holding 3 under max.broker.partitions %d, on a controller just elected: %v, want ErrPolicyViolation", limit, err)
	}
	ls.tc.waitForState("a alone", func(st *metadata.State) error {
		if _, ok := st.Topic("b"); ok {
			return errors.New("topic b was created")
		}
		if held := placement.LoadOf(st).Replicas; held[1] != 3 || held[2] != 3 || held[3] != 3 {
			return fmt.Errorf("replicas per broker %v, want 3 each", held)
		}
		return nil
	})
}

// A CreatePartitions to the count its predecessor grew the topic to just
// before the failover (a retry whose answer was lost, or the same request
// twice) is refused as asking for no new partition: a controller that had
// not applied the growth added the partitions a second time.
func TestNewControllerSeesTheLastCreatePartitions(t *testing.T) {
	ls := newLaggingSuccessorCluster(t, 0)
	ctx := ctxT(t)
	if _, err := ls.follower().CreateTopicAssigned(ctx, "t", fill3(1), nil); err != nil {
		t.Fatal(err)
	}
	ls.tc.waitForState("t", func(st *metadata.State) error {
		if _, ok := st.Topic("t"); !ok {
			return errors.New("no topic t")
		}
		return nil
	})
	next := ls.follower()
	err := ls.failOverTo(next, func(ctx context.Context, leader *Controller) {
		if _, err := leader.CreatePartitions(ctx, "t", 2, nil); err != nil {
			t.Fatal(err)
		}
	}, barrierOr(metadata.TypeCreatePartitions), func(ctx context.Context) error {
		_, err := next.CreatePartitions(ctx, "t", 2, nil)
		return err
	})
	if !errors.Is(err, metadata.ErrInvalidPartitions) {
		t.Errorf("growing t to the 2 partitions it has, on a controller just elected: %v, want ErrInvalidPartitions", err)
	}
	ls.tc.waitForState("t of 2 partitions", func(st *metadata.State) error {
		if tp, _ := st.Topic("t"); tp.NumPartitions() != 2 {
			return fmt.Errorf("t has %d partitions, want 2", tp.NumPartitions())
		}
		return nil
	})
}

// WaitCaughtUpWithController on a controller just elected returns only
// once its state holds the topic its predecessor created last: the index
// it answers is that of a state that has applied every committed change.
func TestNewControllerAnswersAnIndexPastWhatItsPredecessorApplied(t *testing.T) {
	ls := newLaggingSuccessorCluster(t, 0)
	next := ls.follower()
	err := ls.failOverTo(next, func(ctx context.Context, leader *Controller) {
		if _, err := leader.CreateTopicAssigned(ctx, "a", fill3(1), nil); err != nil {
			t.Fatal(err)
		}
	}, isBarrier, func(ctx context.Context) error {
		if err := next.WaitCaughtUpWithController(ctx); err != nil {
			return err
		}
		if _, ok := next.State().Topic("a"); !ok {
			return fmt.Errorf("caught up with itself at index %d, without the topic its predecessor created", next.State().Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// UnregisterBroker on a controller just elected forgets a broker its
// predecessor registered last: a controller that had not applied the
// registration took the broker for unregistered, removed it from the
// Raft configuration only, and answered success with the registration
// left in the metadata.
func TestNewControllerUnregistersTheBrokerItsPredecessorRegistered(t *testing.T) {
	ls := newLaggingSuccessorCluster(t, 0)
	next := ls.follower()
	err := ls.failOverTo(next, func(ctx context.Context, leader *Controller) {
		if err := ls.tc.addNonVoter(4).WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		ls.tc.kill(4) // stopped for good, as UnregisterBroker wants
	}, func(l *raft.Log) bool {
		return l.Type == raft.LogConfiguration || barrierOr(metadata.TypeUnregisterBroker)(l)
	}, func(ctx context.Context) error {
		return next.UnregisterBroker(ctx, 4)
	})
	if err != nil {
		t.Fatalf("unregistering broker 4 on a controller just elected: %v", err)
	}
	ls.tc.waitForState("broker 4 unregistered", func(st *metadata.State) error {
		if _, ok := st.Brokers[4]; ok {
			return errors.New("broker 4 is still registered")
		}
		return nil
	})
}

// A request to a controller just elected whose state machine does not
// catch up waits for it only until its own deadline, then answers
// ErrCatchingUp, a timeout (REQUEST_TIMED_OUT), having proposed nothing:
// the topic is not there once the state machine went on and a later
// topic was applied.
func TestNewControllerThatCannotCatchUpAnswersByTheDeadline(t *testing.T) {
	ls := newLaggingSuccessorCluster(t, 0)
	next := ls.follower()
	const timeout = time.Second
	var took time.Duration
	err := ls.failOverTo(next, func(ctx context.Context, leader *Controller) {
		if _, err := leader.CreateTopicAssigned(ctx, "a", fill3(1), nil); err != nil {
			t.Fatal(err)
		}
	}, func(*raft.Log) bool { return false }, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		start := time.Now()
		_, err := next.CreateTopicAssigned(ctx, "b", fill3(1), nil)
		took = time.Since(start)
		return err
	})
	if !errors.Is(err, ErrCatchingUp) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("creating a topic on a controller that cannot catch up: %v, want ErrCatchingUp", err)
	}
	if took > timeout+time.Second {
		t.Errorf("answered after %v, its deadline %v", took, timeout)
	}
	// c comes after anything proposed for b in the log.
	checkFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := ls.tc.waitForLeaderQuiet().CreateTopicAssigned(ctx, "c", fill3(1), nil)
		if errors.Is(err, metadata.ErrTopicExists) {
			return nil
		}
		return err
	})
	ls.tc.waitForState("a and c, and no b", func(st *metadata.State) error {
		if _, ok := st.Topic("c"); !ok {
			return errors.New("no topic c")
		}
		if _, ok := st.Topic("b"); ok {
			return errors.New("topic b, refused before it was proposed, was created")
		}
		return nil
	})
}
