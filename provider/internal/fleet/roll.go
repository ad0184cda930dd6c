package fleet

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
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
// instance NeedsRoll: one launched from an older version of its launch
// template, or one of no Auto Scaling group (an earlier provider's, which
// moves into its group). A replacement keeps the broker's ENI (and so its
// address) and its volume (and so its data): the instance is terminated
// through its group, which launches the new one from the template version
// Ensure set, whose boot agent attaches both once EC2 released them; the
// roll waits for the broker to rejoin before the next.
//
// The provider terminates and waits rather than starting an instance
// refresh: a refresh's health is EC2's or a load balancer's, while a broker
// is fit to be followed by the next only once the cluster says so (back in
// the ISR of all its partitions), which the hooks ask the brokers.
func (f *Fleet) Roll(ctx context.Context, s *Spec, o *Observed, hooks RollHooks) error {
	var pending []int32
	for _, b := range o.Brokers {
		if b.NeedsRoll() {
			pending = append(pending, b.NodeID)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	f.log(ctx, "rolling brokers one at a time", "node_ids", pending)
	for i, id := range pending {
		b, _ := o.Broker(id)
		if hooks.BeforeStop != nil {
			if err := hooks.BeforeStop(ctx, id); err != nil {
				return fmt.Errorf("not replacing broker %d (%d of %d brokers still to roll): %w", id, len(pending)-i, len(pending), err)
			}
		}
		if err := f.replace(ctx, s, b); err != nil {
			return fmt.Errorf("replacing broker %d: %w", id, err)
		}
		if hooks.AfterStart != nil {
			if err := hooks.AfterStart(ctx, id); err != nil {
				return fmt.Errorf("broker %d was replaced but did not rejoin healthy: %w", id, err)
			}
		} else if err := f.waitAttached(ctx, b); err != nil {
			return fmt.Errorf("broker %d was replaced but its instance did not take its interface and volume: %w", id, err)
		}
		f.log(ctx, "broker replaced", "node_id", id, "instance_id", b.InstanceID, "done", i+1, "of", len(pending))
	}
	return nil
}

// replace terminates the broker's instance and waits for its group's next
// one. An instance of no group is terminated, EC2's release of the ENI and
// volume waited for, and the broker's group created.
func (f *Fleet) replace(ctx context.Context, s *Spec, b *Broker) error {
	old := b.InstanceID
	f.log(ctx, "replacing broker instance", "node_id", b.NodeID, "old_instance_id", old, "group", b.GroupName)
	if b.GroupName == "" {
		if err := f.terminate(ctx, []string{old}); err != nil {
			return err
		}
		b.InstanceID, b.InstanceState, b.VolumeAttached, b.ENIAttached = "", "", false, false
		if err := f.waitReleased(ctx, b); err != nil {
			return err
		}
		if b.TemplateID == "" {
			return fmt.Errorf("broker %d has no launch template to move into a group with", b.NodeID)
		}
		f.log(ctx, "moving the broker into its Auto Scaling group", "node_id", b.NodeID)
		if err := f.ensureGroup(ctx, s, b, fmt.Sprint(b.TemplateLatest)); err != nil {
			return err
		}
		return f.waitGroupInstance(ctx, b, old)
	}
	_, err := f.AutoScaling.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(old), ShouldDecrementDesiredCapacity: aws.Bool(false),
	})
	if err != nil && !isGroupGone(err) {
		return fmt.Errorf("terminating instance %s in its group %s: %w", old, b.GroupName, err)
	}
	if err := f.waitInstanceTerminated(ctx, old); err != nil {
		return err
	}
	b.InstanceID, b.InstanceState, b.VolumeAttached, b.ENIAttached = "", "", false, false
	return f.waitGroupInstance(ctx, b, old)
}
