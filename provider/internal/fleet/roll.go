package fleet

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// RollHooks gate a rolling replacement on the brokers' own view of health.
type RollHooks struct {
	// BeforeStop returns an error when stopping the broker now would hurt
	// availability (a partition would fall below min.insync.replicas). The
	// roll then stops, leaving the remaining brokers untouched.
	BeforeStop func(ctx context.Context, nodeID int32) error
	// AfterStart waits until the replaced broker is back in the cluster and
	// its partitions are in sync again.
	AfterStart func(ctx context.Context, nodeID int32) error
}

// Roll replaces, one at a time and in node-id order, every broker whose
// instance was launched from something else than the spec asks for. A
// replacement keeps the broker's ENI (and so its address) and its volume
// (and so its data): terminate the instance, wait until EC2 has released
// both, launch the new instance on them, wait for the broker to rejoin.
func (f *Fleet) Roll(ctx context.Context, s *Spec, o *Observed, res *Resolved, hooks RollHooks) error {
	var pending []int32
	for _, b := range o.Brokers {
		if s.NeedsRoll(&b, res.InstanceProfile) {
			pending = append(pending, b.NodeID)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	f.log(ctx, "rolling brokers one at a time", "node_ids", pending)
	nodes := make([]Node, 0, len(o.Brokers))
	for _, b := range o.Brokers {
		nodes = append(nodes, Node{NodeID: b.NodeID, AvailabilityZone: b.AvailabilityZone, PrivateIP: b.PrivateIP, VolumeID: b.VolumeID})
	}
	controllers := nodes[:min(s.ControllerCount(), len(nodes))]
	for i, id := range pending {
		b, _ := o.Broker(id)
		if hooks.BeforeStop != nil {
			if err := hooks.BeforeStop(ctx, id); err != nil {
				return fmt.Errorf("not replacing broker %d (%d of %d brokers still to roll): %w", id, len(pending)-i, len(pending), err)
			}
		}
		if err := f.replace(ctx, s, b, nodes, controllers, res.InstanceProfile); err != nil {
			return fmt.Errorf("replacing broker %d: %w", id, err)
		}
		if hooks.AfterStart != nil {
			if err := hooks.AfterStart(ctx, id); err != nil {
				return fmt.Errorf("broker %d was replaced but did not rejoin healthy: %w", id, err)
			}
		}
		f.log(ctx, "broker replaced", "node_id", id, "instance_id", b.InstanceID, "done", i+1, "of", len(pending))
	}
	return nil
}

// replace terminates the broker's instance and launches a new one on the same
// ENI and volume.
func (f *Fleet) replace(ctx context.Context, s *Spec, b *Broker, nodes, controllers []Node, profile string) error {
	old := b.InstanceID
	f.log(ctx, "replacing broker instance", "node_id", b.NodeID, "old_instance_id", old)
	if err := f.terminate(ctx, []string{old}); err != nil {
		return err
	}
	b.InstanceID, b.InstanceState, b.VolumeAttached = "", "", false
	if err := f.waitENIAvailable(ctx, b.ENIID); err != nil {
		return err
	}
	if err := f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateAvailable, ""); err != nil {
		return err
	}
	return f.launch(ctx, s, b, nodes, controllers, profile)
}

// Retag records on the brokers' instances that they now match the spec,
// after a change was applied to the running brokers without replacing them
// (dynamic broker configuration). Only instances launched from previous are
// retagged: one that differs in more (say, its image) must still roll.
func (f *Fleet) Retag(ctx context.Context, previous, s *Spec, profile string, o *Observed) error {
	var ids []string
	var brokers []*Broker
	for i := range o.Brokers {
		b := &o.Brokers[i]
		if b.HasLiveInstance() && !previous.NeedsRoll(b, profile) {
			ids = append(ids, b.InstanceID)
			brokers = append(brokers, b)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	hash := s.instanceLaunchHash(profile)
	_, err := f.EC2.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: ids,
		Tags:      []ec2types.Tag{{Key: aws.String(TagInstanceLaunchHash), Value: aws.String(hash)}},
	})
	if err != nil {
		return fmt.Errorf("tagging instances %v: %w", ids, err)
	}
	for _, b := range brokers {
		b.InstanceLaunchHash = hash
	}
	return nil
}
