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

// Waits bounds every kind of wait the fleet does, so that an object that
// never reaches the wanted state (an emulator that never releases an
// interface, a volume stuck attaching) ends the operation with an error
// naming it instead of holding it until Terraform's own timeout. A zero
// field takes its default; the defaults are several times what AWS
// normally takes.
type Waits struct {
	// InstanceRunning: pending to running (AWS: under a minute or two).
	InstanceRunning time.Duration
	// InstanceTerminated: shutting-down to terminated (AWS: up to a few
	// minutes).
	InstanceTerminated time.Duration
	// VolumeState: a volume created, attached or detached (AWS: seconds).
	VolumeState time.Duration
	// VolumeModification: a modification reaching "optimizing", when the
	// new size is usable.
	VolumeModification time.Duration
	// NetworkInterfaceReleased: a terminated instance's interface becoming
	// available again, or deleted.
	NetworkInterfaceReleased time.Duration
	// SecurityGroupReleased: the cluster's group deletable once no
	// interface uses it.
	SecurityGroupReleased time.Duration
	// ProfilePropagation: a new instance profile reaching EC2 (IAM is
	// eventually consistent; usually under 15 s).
	ProfilePropagation time.Duration
}

// DefaultWaits are the bounds a zero Waits field takes.
var DefaultWaits = Waits{
	InstanceRunning:          10 * time.Minute,
	InstanceTerminated:       10 * time.Minute,
	VolumeState:              5 * time.Minute,
	VolumeModification:       10 * time.Minute,
	NetworkInterfaceReleased: 5 * time.Minute,
	SecurityGroupReleased:    5 * time.Minute,
	ProfilePropagation:       2 * time.Minute,
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (f *Fleet) waits() Waits {
	w, d := f.Waits, DefaultWaits
	return Waits{
		InstanceRunning:          or(w.InstanceRunning, d.InstanceRunning),
		InstanceTerminated:       or(w.InstanceTerminated, d.InstanceTerminated),
		VolumeState:              or(w.VolumeState, d.VolumeState),
		VolumeModification:       or(w.VolumeModification, d.VolumeModification),
		NetworkInterfaceReleased: or(w.NetworkInterfaceReleased, d.NetworkInterfaceReleased),
		SecurityGroupReleased:    or(w.SecurityGroupReleased, d.SecurityGroupReleased),
		ProfilePropagation:       or(w.ProfilePropagation, d.ProfilePropagation),
	}
}

// volumeVisibleWait is how long a new volume may stay invisible to
// DescribeVolumes before the wait gives up on it.
const volumeVisibleWait = 30 * time.Second

// errNotYet tells poll to try again.
var errNotYet = errors.New("not yet")

// ErrWaitBound is wrapped by a WaitError whose wait reached its bound (a
// Waits field), as opposed to one whose context ended.
var ErrWaitBound = errors.New("wait bound reached")

// WaitError says which object a wait was for, what it waited for, and in
// which state the object was when the wait ended.
type WaitError struct {
	Object string        // e.g. "network interface eni-0abc"
	Want   string        // e.g. "be available"
	State  string        // the last state seen; "" if none was seen
	Waited time.Duration // how long it waited
	Err    error         // ErrWaitBound, the context's error, or the check's failure
}

func (e *WaitError) Error() string {
	state := e.State
	if state == "" {
		state = "not seen yet"
	}
	switch {
	case errors.Is(e.Err, ErrWaitBound):
		return fmt.Sprintf("gave up after %s waiting for %s to %s: it is still %s", e.Waited.Round(time.Second), e.Object, e.Want, state)
	case errors.Is(e.Err, context.DeadlineExceeded), errors.Is(e.Err, context.Canceled):
		return fmt.Sprintf("stopped after %s waiting for %s to %s (%v): it is still %s", e.Waited.Round(time.Second), e.Object, e.Want, e.Err, state)
	}
	return fmt.Sprintf("waiting for %s to %s: %v", e.Object, e.Want, e.Err)
}

func (e *WaitError) Unwrap() error { return e.Err }

// waitFor describes one wait: for object to reach want, at most limit.
type waitFor struct {
	object string
	want   string
	limit  time.Duration
}

// poll calls check every interval until it returns nil or an error other
// than errNotYet, the wait's limit passes, or ctx ends. check returns the
// object's current state, which the error reports if the wait ends without
// it reaching the wanted one.
func (f *Fleet) poll(ctx context.Context, w waitFor, check func() (state string, err error)) error {
	start := time.Now()
	deadline := start.Add(w.limit)
	var last string
	fail := func(err error) error {
		return &WaitError{Object: w.object, Want: w.want, State: last, Waited: time.Since(start), Err: err}
	}
	for {
		state, err := check()
		if state != "" {
			last = state
		}
		if !errors.Is(err, errNotYet) {
			if err != nil {
				return fail(err)
			}
			return nil
		}
		now := time.Now()
		if !now.Before(deadline) {
			return fail(ErrWaitBound)
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(min(f.interval(), deadline.Sub(now))):
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

// describeInstance returns the instance, or nil when EC2 does not know it.
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
	return f.poll(ctx, waitFor{"instance " + id, "run", f.waits().InstanceRunning}, func() (string, error) {
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
	return f.poll(ctx, waitFor{"instance " + id, "terminate", f.waits().InstanceTerminated}, func() (string, error) {
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
	wanted := "be " + string(want)
	if wantAttachedTo != "" {
		wanted += " and attached to " + wantAttachedTo
	}
	return f.poll(ctx, waitFor{"volume " + id, wanted, f.waits().VolumeState}, func() (string, error) {
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
		state := string(v.State)
		for _, a := range v.Attachments {
			state += fmt.Sprintf(", %s to %s", a.State, aws.ToString(a.InstanceId))
		}
		switch {
		case v.State == ec2types.VolumeStateError:
			return state, fmt.Errorf("volume %s is in state error (EBS could not create or attach it; check the KMS key's policy allows EBS to use it)", id)
		case v.State != want:
			return state, errNotYet
		case wantAttachedTo != "":
			for _, a := range v.Attachments {
				if aws.ToString(a.InstanceId) == wantAttachedTo && a.State == ec2types.VolumeAttachmentStateAttached {
					return state, nil
				}
			}
			return state, errNotYet
		}
		return state, nil
	})
}

// describeENI returns the interface, or nil when EC2 does not know it.
func (f *Fleet) describeENI(ctx context.Context, id string) (*ec2types.NetworkInterface, error) {
	out, err := f.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{id}})
	if err != nil {
		if errorCode(err) == "InvalidNetworkInterfaceID.NotFound" {
			return nil, nil
		}
		return nil, fmt.Errorf("describing network interface %s: %w", id, err)
	}
	if len(out.NetworkInterfaces) == 0 {
		return nil, nil
	}
	return &out.NetworkInterfaces[0], nil
}

// releaseStaleAttachment looks at an interface that is not available. EC2
// releases the interfaces of a terminated instance by itself, normally
// within seconds; an attachment that outlives its terminated (or vanished)
// instance is detached with Force, as terraform-provider-aws does before
// deleting an interface. (moto never releases one, and refuses to detach an
// instance's only interface.) It returns the interface's state for the
// wait's error, and whether the attachment is stale (its instance is gone)
// but EC2 refused to detach it.
func (f *Fleet) releaseStaleAttachment(ctx context.Context, eni *ec2types.NetworkInterface) (state string, refused bool, err error) {
	id := aws.ToString(eni.NetworkInterfaceId)
	att := eni.Attachment
	state = string(eni.Status)
	if att == nil {
		return state, false, nil
	}
	instID := aws.ToString(att.InstanceId)
	if instID == "" {
		return fmt.Sprintf("%s, attached to %s (not an instance)", state, aws.ToString(att.InstanceOwnerId)), false, nil
	}
	in, err := f.describeInstance(ctx, instID)
	if err != nil {
		return state, false, fmt.Errorf("describing instance %s, which network interface %s is attached to: %w", instID, id, err)
	}
	instState := "gone"
	if in != nil {
		instState = string(in.State.Name)
	}
	state = fmt.Sprintf("%s, attached to instance %s (%s)", state, instID, instState)
	if in != nil && in.State.Name != ec2types.InstanceStateNameTerminated {
		return state, false, nil // released by EC2 once the instance is gone
	}
	_, err = f.EC2.DetachNetworkInterface(ctx, &ec2.DetachNetworkInterfaceInput{AttachmentId: att.AttachmentId, Force: aws.Bool(true)})
	switch code := errorCode(err); {
	case err == nil:
		f.log(ctx, "detached network interface from terminated instance", "eni_id", id, "instance_id", instID)
		return state + ", detaching", false, nil
	case code == "InvalidAttachmentID.NotFound":
		return state + ", attachment already gone", false, nil
	case code == "OperationNotPermitted" || code == "IncorrectState":
		return fmt.Sprintf("%s; EC2 refused to detach it: %v", state, err), true, nil
	default:
		return state, false, fmt.Errorf("detaching network interface %s from terminated instance %s: %w", id, instID, err)
	}
}

// waitENIAvailable waits until the interface is available, so a new
// instance can be launched on it.
func (f *Fleet) waitENIAvailable(ctx context.Context, id string) error {
	return f.poll(ctx, waitFor{"network interface " + id, "be available", f.waits().NetworkInterfaceReleased}, func() (string, error) {
		eni, err := f.describeENI(ctx, id)
		switch {
		case err != nil:
			return "", err
		case eni == nil:
			return "gone", fmt.Errorf("network interface %s is gone: the broker's address went with it", id)
		case eni.Status == ec2types.NetworkInterfaceStatusAvailable:
			return string(eni.Status), nil
		}
		state, _, err := f.releaseStaleAttachment(ctx, eni)
		if err != nil {
			return state, err
		}
		return state, errNotYet
	})
}

// retryWhile retries fn while transient(err) says the failure is one of
// AWS's named eventual-consistency errors (e.g. a new instance profile not
// yet visible to EC2), at most limit. Any other error returns at once.
func (f *Fleet) retryWhile(ctx context.Context, w waitFor, transient func(error) bool, fn func() error) error {
	return f.poll(ctx, w, func() (string, error) {
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
