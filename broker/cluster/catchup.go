package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// A newly elected active controller has not necessarily applied what the
// quorum committed before its election. hashicorp/raft applies committed
// entries to the state machine in a goroutine of its own, and the entries
// of the previous term that were not yet known committed commit only with
// the new leader's first entry; Raft.Apply's future resolves only after
// the entry is applied, so on a steady leader every change answered is in
// its state, but for a moment after an election the leader's state can
// miss changes the previous controller answered. A decision made on that
// state is wrong: a topic passes max.broker.partitions because the topic
// created just before the failover is not counted; a CreatePartitions
// retried after a lost answer grows the topic again; the applied index a
// reader waits for (WaitCaughtUpWithController) is older than a creation
// already answered.
//
// So before the first decision of its term the active controller commits
// a Raft barrier, which resolves once the state machine has applied every
// entry before it, and remembers the term: later requests of the term pay
// nothing. The requests that arrive meanwhile share the one barrier, each
// waiting for it until its own deadline.

// ErrCatchingUp means the active controller, newly elected, had not
// applied the changes committed before its election by the request's
// deadline. Nothing was proposed for the request; it matches
// context.DeadlineExceeded (REQUEST_TIMED_OUT, retriable).
var ErrCatchingUp error = deadlineError("the active controller, newly elected, had not applied the metadata committed before its election in time")

// leaderCatchUp is the state of a node's catch-up as the active
// controller: the last term whose barrier resolved, and the barrier of
// the current term while it is pending.
type leaderCatchUp struct {
	doneTerm atomic.Uint64
	mu       sync.Mutex
	pending  *termBarrier
}

// termBarrier is one barrier committed at the start of a term.
type termBarrier struct {
	term uint64
	done chan struct{} // closed once the barrier resolved; err is set before
	err  error
}

// caughtUpAsLeader returns once this node, the active controller, has
// applied every entry committed before its current term, or when ctx
// ends (ErrCatchingUp) or the leadership is lost (ErrNotController).
func (ctl *Controller) caughtUpAsLeader(ctx context.Context) error {
	if ctl.raft.State() != raft.Leader {
		return ErrNotController
	}
	// Read before the barrier: a barrier that resolves proves the catch-up
	// of the term it was committed in, which is this one or a later one
	// (then this term is recorded and the later one barriers again).
	term := ctl.raft.CurrentTerm()
	if ctl.catchUp.doneTerm.Load() == term {
		return nil
	}
	b := ctl.termBarrier(term)
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("%w (term %d)%s", ErrCatchingUp, term, unlessDeadline(ctx))
	}
}

// termBarrier returns the barrier of term, committing one unless one is
// pending or resolved without error.
func (ctl *Controller) termBarrier(term uint64) *termBarrier {
	c := &ctl.catchUp
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.pending; b != nil && b.term == term {
		select {
		case <-b.done:
			if b.err == nil {
				return b
			}
		default:
			return b
		}
	}
	b := &termBarrier{term: term, done: make(chan struct{})}
	c.pending = b
	// Not one of Close's goroutines (ctl.wg): Close waits for those before
	// it stops Raft, and the barrier's future ends only with the
	// leadership or Raft itself.
	go func() {
		defer close(b.done)
		b.err = barrierError(ctl.raft.Barrier(rpcTimeout).Error())
		if b.err != nil {
			return
		}
		for {
			done := c.doneTerm.Load()
			if done >= term || c.doneTerm.CompareAndSwap(done, term) {
				return
			}
		}
	}()
	return b
}

// barrierError says what a failed barrier means to the request waiting
// for it.
func barrierError(err error) error {
	switch {
	case err == nil:
		return nil
	case lostLeadership(err):
		return fmt.Errorf("%w: %v", ErrNotController, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrCatchingUp, err)
	}
	return fmt.Errorf("waiting for the metadata committed before this controller's election: %w", err)
}
