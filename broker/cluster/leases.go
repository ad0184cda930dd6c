package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// Broker leases live in the active controller's memory, as in KRaft: a
// broker renews its lease with a heartbeat request to the active
// controller (opHeartbeat), which writes nothing to the metadata log for
// it. The log records only changes of a broker's state: its registration
// (which carries a first lease), a fencing (FenceBroker, when a lease
// lapsed or its process is gone) and an unfencing (a BrokerHeartbeat
// command, proposed by the controller when a fenced broker's heartbeat
// comes back). Logging every renewal cost three voters an append and
// fsync ten times a second and a snapshot every few minutes, for a value
// only the active controller reads.
//
// A new active controller knows no renewal: it gives every broker a whole
// lease from its election (the brokers renew with it well within that;
// while there was no leader their heartbeats failed through no fault of
// theirs), as it does after its own process stalled. A broker's lease is
// the latest of that, the one in the metadata (its registration's, or a
// renewal an older version logged) and the last one renewed here. A
// broker proven gone (its port refuses a probe) is fenced without
// waiting for any of them (probeAndFence).

// leaseTable is the active controller's record of lease renewals, per
// broker incarnation (node id and broker epoch).
type leaseTable struct {
	mu     sync.Mutex
	leases map[int32]brokerLease
}

type brokerLease struct {
	epoch  int64
	expiry time.Time
}

// renew extends the lease of one incarnation to until. A renewal of an
// older incarnation than the one recorded is ignored.
func (l *leaseTable) renew(id int32, epoch int64, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases == nil {
		l.leases = map[int32]brokerLease{}
	}
	if cur, ok := l.leases[id]; ok && cur.epoch > epoch {
		return
	}
	l.leases[id] = brokerLease{epoch: epoch, expiry: until}
}

// expiry is the end of the lease renewed here for this incarnation.
func (l *leaseTable) expiry(id int32, epoch int64) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, ok := l.leases[id]
	if !ok || cur.epoch != epoch {
		return time.Time{}, false
	}
	return cur.expiry, true
}

// leaseLapsed reports whether broker b's current incarnation holds no
// lease at now: neither the one given at leaderSince (this node's
// election, or the end of its stall), nor the one the metadata carries,
// nor one renewed with this controller runs past now.
func (ctl *Controller) leaseLapsed(b *metadata.Broker, now, leaderSince time.Time) bool {
	end := leaderSince.Add(ctl.cfg.Lease)
	if e := time.UnixMilli(b.LeaseExpiryMs); e.After(end) {
		end = e
	}
	if e, ok := ctl.leases.expiry(b.NodeID, b.Epoch); ok && e.After(end) {
		end = e
	}
	return end.Before(now)
}

// fenceLapsed fences, on the active controller, every unfenced broker
// whose lease lapsed, one FenceBroker command each (naming the
// incarnation, so that one registered since is left alone).
func (ctl *Controller) fenceLapsed(ctx context.Context, st *metadata.State, now, leaderSince time.Time) {
	if st.CheckProposable(metadata.TypeFenceBroker) != nil {
		ctl.expireLapsed(ctx, st, now, leaderSince)
		return
	}
	for _, id := range st.BrokerIDs() {
		b := st.Brokers[id]
		if b.Fenced || !ctl.leaseLapsed(b, now, leaderSince) {
			continue
		}
		fenced, err := proposeAs[bool](ctx, ctl, metadata.FenceBroker{NodeID: id, BrokerEpoch: b.Epoch})
		switch {
		case err != nil:
			ctl.log.Warn("fencing a broker whose lease ended", "broker", id, "err", err)
		case fenced:
			ctl.log.Warn("fenced a broker whose lease ended", "broker", id, "broker_epoch", b.Epoch)
		}
	}
}

// expireLapsed is fenceLapsed while a registered broker of an older
// version would halt on FenceBroker: lapsed leases are fenced as before
// FenceBroker existed, by ExpireLeases, which fences every broker whose
// lease in the metadata ended. This controller keeps renewals in memory,
// so a live broker's lease in the metadata may have ended long ago:
// before the ExpireLeases, each such broker whose lease runs here gets
// it written to the log (a BrokerHeartbeat, as older versions logged
// every renewal). Only a mixed-version cluster with a lapsed lease pays
// for these entries.
func (ctl *Controller) expireLapsed(ctx context.Context, st *metadata.State, now, leaderSince time.Time) {
	lapsed := func(b *metadata.Broker) bool { return !b.Fenced && ctl.leaseLapsed(b, now, leaderSince) }
	if !slices.ContainsFunc(st.BrokerIDs(), func(id int32) bool { return lapsed(st.Brokers[id]) }) {
		return
	}
	for _, id := range st.BrokerIDs() {
		b := st.Brokers[id]
		if b.Fenced || lapsed(b) {
			continue
		}
		// The ExpireLeases is stamped a little after now: a lease in the
		// metadata ending within a heartbeat interval is renewed too.
		if time.UnixMilli(b.LeaseExpiryMs).After(now.Add(ctl.cfg.HeartbeatInterval)) {
			continue
		}
		end := leaderSince.Add(ctl.cfg.Lease)
		if e, ok := ctl.leases.expiry(id, b.Epoch); ok && e.After(end) {
			end = e
		}
		leaseMs := max(end.Sub(now).Milliseconds(), ctl.cfg.HeartbeatInterval.Milliseconds())
		if _, err := ctl.propose(ctx, metadata.BrokerHeartbeat{NodeID: id, BrokerEpoch: b.Epoch, LeaseMs: leaseMs}); err != nil {
			// Fencing now could fence this live broker: wait for the
			// next round.
			ctl.log.Warn("logging a live broker's lease before expiring lapsed ones", "broker", id, "err", err)
			return
		}
	}
	fenced, err := proposeAs[[]int32](ctx, ctl, metadata.ExpireLeases{})
	switch {
	case err != nil:
		ctl.log.Warn("expiring lapsed leases", "err", err)
	case len(fenced) > 0:
		ctl.log.Warn("fenced brokers whose lease ended (ExpireLeases: a registered broker does not know FenceBroker)", "brokers", fenced)
	}
}

// caughtUpWait bounds how long a heartbeat waits for the active
// controller's metadata to reach the broker's registration.
func (ctl *Controller) caughtUpWait() time.Duration { return ctl.cfg.HeartbeatInterval }

// heartbeatLocal renews a broker's lease on this node, the active
// controller. A stale or unknown incarnation is refused (the broker
// registers again); a fenced one is unfenced through the log.
func (ctl *Controller) heartbeatLocal(ctx context.Context, id int32, epoch, leaseMs int64) (json.RawMessage, error) {
	if leaseMs <= 0 {
		return nil, fmt.Errorf("%w: heartbeat of broker %d with a lease of %dms", metadata.ErrInvalidRequest, id, leaseMs)
	}
	received := time.Now()
	st, err := ctl.stateAt(epoch)
	if err != nil {
		return nil, err
	}
	b, ok := st.Brokers[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w: %d", metadata.ErrUnknownBroker, id)
	case b.Epoch != epoch:
		return nil, fmt.Errorf("%w: broker %d is at epoch %d, request has %d", metadata.ErrStaleBrokerEpoch, id, b.Epoch, epoch)
	}
	ctl.leases.renew(id, epoch, received.Add(time.Duration(leaseMs)*time.Millisecond))
	if !b.Fenced {
		return nil, nil
	}
	// Its lease had lapsed (or its port refused a probe) and it is back:
	// the unfencing is a change of state, so it goes through the log.
	cmd, err := metadata.Encode(metadata.BrokerHeartbeat{NodeID: id, BrokerEpoch: epoch, LeaseMs: leaseMs})
	if err != nil {
		return nil, err
	}
	return ctl.applyLocal(ctx, cmd)
}

// stateAt returns this node's metadata once it has applied index (a
// broker epoch is the Raft index of its registration): a controller just
// elected applies the entries its predecessor committed only after it
// committed one of its own, and a broker registered just before the
// election must not be told its epoch is unknown meanwhile. It waits at
// most caughtUpWait, then answers ErrNotController: the caller retries.
func (ctl *Controller) stateAt(index int64) (*metadata.State, error) {
	ctx, cancel := context.WithTimeout(ctl.ctx, ctl.caughtUpWait())
	defer cancel()
	st, err := ctl.fsm.WaitFor(ctx, func(st *metadata.State) bool { return st.Index >= index })
	switch {
	case err == nil:
		return st, nil
	case ctl.ctx.Err() != nil:
		return nil, ErrShuttingDown
	}
	return nil, fmt.Errorf("%w: its metadata (index %d) has not reached index %d yet", ErrNotController, st.Index, index)
}

// heartbeat renews this broker's lease with the active controller. An
// active controller of a version without the heartbeat request (a rolling
// upgrade) refuses it as unknown: the lease is then renewed the old way,
// by a BrokerHeartbeat command in the log, which that controller's lease
// expiry reads.
func (ctl *Controller) heartbeat(ctx context.Context) error {
	epoch, lease := ctl.brokerEpoch.Load(), ctl.cfg.Lease.Milliseconds()
	_, err := ctl.onLeader(ctx, rpcRequest{Op: opHeartbeat, NodeID: ctl.cfg.NodeID, BrokerEpoch: epoch, LeaseMs: lease})
	if isUnknownRequest(err) {
		_, err = ctl.propose(ctx, metadata.BrokerHeartbeat{NodeID: ctl.cfg.NodeID, BrokerEpoch: epoch, LeaseMs: lease})
	}
	return err
}

// isUnknownRequest reports whether err is an active controller's refusal
// of a request op it does not know: ErrUnknownRequest, or the bare text
// of a version from before that error had an identity on the wire.
func isUnknownRequest(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnknownRequest) {
		return true
	}
	var re *remoteError
	return errors.As(err, &re) && re.sentinel == nil && strings.HasPrefix(re.msg, "unknown controller request")
}
