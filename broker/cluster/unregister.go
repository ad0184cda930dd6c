package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// opUnregister asks the active controller to forget a broker that left the
// cluster for good.
const opUnregister rpcOp = "unregister"

// UnregisterBroker forgets broker id for good, on the active controller:
// its registration goes (fenced first, so it leads nothing and is in no
// ISR) with its dynamic configs, and it leaves the Raft configuration it
// joined as a non-voter, so the controller stops replicating the metadata
// log to it. Call it once the broker has stopped: a broker still running
// registers again at its next heartbeat, as in Kafka. Its replicas are not
// moved; drain the broker with reassignments first. A voter is refused
// (metadata.ErrInvalidRequest, see voterError); an id neither registered nor in the Raft configuration is
// metadata.ErrUnknownBroker, so a repeated call after success says so.
func (ctl *Controller) UnregisterBroker(ctx context.Context, id int32) error {
	if err := ctl.voterError(id); err != nil {
		return err
	}
	_, err := ctl.onLeader(ctx, rpcRequest{Op: opUnregister, NodeID: id})
	return err
}

// voterError refuses to unregister a voter of the metadata quorum (the only
// node of a cluster of one is its voter). The voters are fixed by
// controller.quorum.voters, which every broker's configuration lists:
// removing one would leave those lists naming a member that is gone, so it
// is refused rather than done halfway.
func (ctl *Controller) voterError(id int32) error {
	if slices.ContainsFunc(ctl.cfg.Voters, func(v Voter) bool { return v.ID == id }) || (len(ctl.cfg.Voters) == 0 && id == ctl.cfg.NodeID) {
		return fmt.Errorf("%w: broker %d is a voter of the metadata quorum (controller.quorum.voters) and cannot be unregistered", metadata.ErrInvalidRequest, id)
	}
	return nil
}

// unregisterLocal runs UnregisterBroker on the active controller. The
// registration goes first: once the Raft configuration no longer lists the
// broker, its metadata would no longer be replicated to it, and a broker
// whose registration outlived that could not follow the cluster. A failure
// between the two steps is finished by a repeated call.
func (ctl *Controller) unregisterLocal(ctx context.Context, id int32) error {
	if ctl.raft.State() != raft.Leader {
		return ErrNotController
	}
	if err := ctl.voterError(id); err != nil {
		return err
	}
	_, registered := ctl.fsm.Current().Brokers[id]
	if registered {
		b, err := metadata.Encode(metadata.UnregisterBroker{NodeID: id})
		if err != nil {
			return err
		}
		if _, err := ctl.applyLocal(ctx, b); err != nil {
			return fmt.Errorf("unregistering broker %d: %w", id, err)
		}
	}
	f := ctl.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("reading the Raft configuration: %w", err)
	}
	member := slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == serverID(id) })
	if member {
		if err := ctl.raft.RemoveServer(serverID(id), 0, rpcTimeout).Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
				return fmt.Errorf("%w: %v", ErrNotController, err)
			}
			return fmt.Errorf("removing node %d from the Raft configuration: %w", id, err)
		}
	}
	if !registered && !member {
		return fmt.Errorf("%w: %d", metadata.ErrUnknownBroker, id)
	}
	ctl.log.Info("unregistered a broker that left the cluster", "broker", id, "was_registered", registered, "was_raft_member", member)
	return nil
}
