package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// volumeVisibleWait is how long a new volume may stay invisible to
// DescribeVolumes before the wait gives up on it.
const volumeVisibleWait = 30 * time.Second

// errNotYet tells poll to try again.
var errNotYet = errors.New("not yet")

// poll calls check every interval until it returns nil or an error other
// than errNotYet, or ctx ends. what names the wait in the error; last is the
// most recent status, included when the wait times out.
func (f *Fleet) poll(ctx context.Context, what string, check func() (status string, err error)) error {
	var last string
	for {
		status, err := check()
		if status != "" {
			last = status
		}
		if !errors.Is(err, errNotYet) {
			if err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if last != "" {
				return fmt.Errorf("waiting for %s: %w (last status: %s)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(f.interval()):
		}
	}
}

// stateReason formats an instance's StateReason for an error message.
func stateReason(in ec2types.Instance) string {
	var parts []string
	if in.StateReason != nil {
		parts = append(parts, strings.TrimSpace(aws.ToString(in.StateReason.Code)+": "+aws.ToString(in.StateReason.Message)))
	}
	if r := aws.ToString(in.StateTransitionReason); r != "" {
		parts = append(parts, r)
	}
	if len(parts) == 0 {
		return "no reason given by EC2"
	}
	return strings.Join(parts, "; ")
}

func (f *Fleet) describeInstance(ctx context.Context, id string) (*ec2types.Instance, error) {
	out, err := f.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		if errorCode(err) == "InvalidInstanceID.NotFound" {
			return nil, nil
		}
		return nil, err
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			return &in, nil
		}
	}
	return nil, nil
}

// waitInstanceRunning waits until the instance runs; if it stops or
// terminates instead, the error carries EC2's StateReason.
func (f *Fleet) waitInstanceRunning(ctx context.Context, id string) error {
	return f.poll(ctx, "instance "+id+" to run", func() (string, error) {
		in, err := f.describeInstance(ctx, id)
		switch {
		case err != nil:
			return "", fmt.Errorf("describing instance %s: %w", id, err)
		case in == nil:
			// EC2 is eventually consistent: a new id may not be visible yet.
			return "not visible yet", errNotYet
		}
		state := in.State.Name
		switch state {
		case ec2types.InstanceStateNameRunning:
			return string(state), nil
		case ec2types.InstanceStateNamePending:
			return string(state), errNotYet
		default:
			return string(state), fmt.Errorf("instance %s went %s instead of running: %s", id, state, stateReason(*in))
		}
	})
}

// waitInstanceTerminated waits until the instance is terminated (or gone).
func (f *Fleet) waitInstanceTerminated(ctx context.Context, id string) error {
	return f.poll(ctx, "instance "+id+" to terminate", func() (string, error) {
		in, err := f.describeInstance(ctx, id)
		switch {
		case err != nil:
			return "", fmt.Errorf("describing instance %s: %w", id, err)
		case in == nil || in.State.Name == ec2types.InstanceStateNameTerminated:
			return "terminated", nil
		}
		return string(in.State.Name), errNotYet
	})
}

// waitVolume waits until the volume is in the wanted state, optionally
// attached to an instance (wantAttachedTo non-empty).
func (f *Fleet) waitVolume(ctx context.Context, id string, want ec2types.VolumeState, wantAttachedTo string) error {
	seen := false
	start := time.Now()
	// missing tells "not visible yet" (EC2's eventual consistency right
	// after CreateVolume) from "gone": EBS deletes a new volume it cannot
	// encrypt, so a volume that was seen and vanished, or never shows up,
	// is a failure with a likely cause.
	missing := func() (string, error) {
		if !seen && time.Since(start) < volumeVisibleWait {
			return "not visible yet", errNotYet
		}
		return "gone", fmt.Errorf("volume %s disappeared after it was created: EBS deletes a new volume it cannot encrypt; "+
			"check that the KMS key exists, is enabled and lets this caller and EBS use it (kms:CreateGrant, kms:GenerateDataKeyWithoutPlaintext, kms:Decrypt)", id)
	}
	return f.poll(ctx, fmt.Sprintf("volume %s to be %s", id, want), func() (string, error) {
		out, err := f.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err != nil {
			if errorCode(err) == "InvalidVolume.NotFound" {
				if want == ec2types.VolumeStateDeleted {
					return "deleted", nil
				}
				return missing()
			}
			return "", fmt.Errorf("describing volume %s: %w", id, err)
		}
		if len(out.Volumes) == 0 {
			return missing()
		}
		seen = true
		v := out.Volumes[0]
		switch {
		case v.State == ec2types.VolumeStateError:
			return string(v.State), fmt.Errorf("volume %s is in state error (EBS could not create or attach it; check the KMS key's policy allows EBS to use it)", id)
		case v.State != want:
			return string(v.State), errNotYet
		case wantAttachedTo != "":
			for _, a := range v.Attachments {
				if aws.ToString(a.InstanceId) == wantAttachedTo && a.State == ec2types.VolumeAttachmentStateAttached {
					return "attached", nil
				}
			}
			return "attaching", errNotYet
		}
		return string(v.State), nil
	})
}

// waitENIAvailable waits until the ENI is detached.
func (f *Fleet) waitENIAvailable(ctx context.Context, id string) error {
	return f.poll(ctx, "network interface "+id+" to detach", func() (string, error) {
		out, err := f.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
		if err != nil {
			if errorCode(err) == "InvalidNetworkInterfaceID.NotFound" {
				return "gone", nil
			}
			return "", fmt.Errorf("describing network interface %s: %w", id, err)
		}
		if len(out.NetworkInterfaces) == 0 {
			return "gone", nil
		}
		st := out.NetworkInterfaces[0].Status
		if st == ec2types.NetworkInterfaceStatusAvailable {
			return string(st), nil
		}
		return string(st), errNotYet
	})
}

// retryWhile retries fn while transient(err) says the failure is one of
// AWS's named eventual-consistency errors (e.g. a new instance profile not
// yet visible to EC2), until ctx ends. Any other error returns at once.
func (f *Fleet) retryWhile(ctx context.Context, what string, transient func(error) bool, fn func() error) error {
	return f.poll(ctx, what, func() (string, error) {
		err := fn()
		switch {
		case err == nil:
			return "", nil
		case transient(err):
			return err.Error(), errNotYet
		}
		return "", err
	})
}
