package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/awsbody"
	"github.com/tributary/tributary/internal/bootconfig"
)

// EC2API is what the boot agent and its volume companion ask of EC2 with the
// instance role: find the broker's own network interface and volume by their
// tags, attach them, and grow the volume. *ec2.Client implements it.
type EC2API interface {
	DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	AttachNetworkInterface(ctx context.Context, in *ec2.AttachNetworkInterfaceInput, optFns ...func(*ec2.Options)) (*ec2.AttachNetworkInterfaceOutput, error)
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	AttachVolume(ctx context.Context, in *ec2.AttachVolumeInput, optFns ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error)
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	ModifyVolume(ctx context.Context, in *ec2.ModifyVolumeInput, optFns ...func(*ec2.Options)) (*ec2.ModifyVolumeOutput, error)
}

var _ EC2API = (*ec2.Client)(nil)

// DefaultAttachWait bounds the wait for the broker's interface and volume:
// after a replacement they stay with the old instance until EC2 has
// terminated it, which takes up to a few minutes.
const DefaultAttachWait = 5 * time.Minute

// attachPoll is the pause between two looks at an attachment.
const attachPoll = 500 * time.Millisecond

// newEC2Client builds an EC2 client from the SDK's default chain, as
// newKMSClient does.
func newEC2Client(ctx context.Context, region string) (*ec2.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	return ec2.NewFromConfig(cfg), nil
}

// attached is the broker's own network interface and volume, attached to
// this instance.
type attached struct {
	ENIID       string
	PrivateIP   string // the broker's address
	MAC         string
	SubnetID    string
	DeviceIndex int
	VolumeID    string
}

// ownTags are the filters that find the broker's objects.
func ownTags(doc *bootconfig.Document) []ec2types.Filter {
	return []ec2types.Filter{
		{Name: aws.String("tag:" + bootconfig.TagClusterID), Values: []string{doc.ClusterID}},
		{Name: aws.String("tag:" + bootconfig.TagNodeID), Values: []string{strconv.Itoa(int(doc.NodeID))}},
	}
}

// attachOwn attaches the broker's own network interface (at the document's
// device index) and data volume (at its device name) to the instance, found
// by the tags of the document's cluster and node, and waits until both are
// attached. An interface or volume still held by another instance (the one
// this instance replaces, while EC2 terminates it) is waited for, up to
// wait; it is never taken from an instance that holds it. It is idempotent:
// what is attached to this instance already is left as it is.
func attachOwn(ctx context.Context, client EC2API, instanceID string, doc *bootconfig.Document, wait time.Duration, logger *slog.Logger) (*attached, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	a := &attached{DeviceIndex: doc.Attachments.NetworkInterfaceDeviceIndex}
	if err := attachInterface(ctx, client, instanceID, doc, a, wait, logger); err != nil {
		return nil, err
	}
	if err := attachVolume(ctx, client, instanceID, doc, a, wait, logger); err != nil {
		return nil, err
	}
	return a, nil
}

// attachLoop calls look until it reports done, an error, or ctx ends; what
// it reports waiting for goes into the timeout's error.
func attachLoop(ctx context.Context, wait time.Duration, what string, look func() (done bool, waitingFor string, err error)) error {
	last := ""
	for {
		done, waitingFor, err := look()
		if err != nil || done {
			return err
		}
		last = waitingFor
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: gave up after %s: %s", what, wait, last)
			}
			return fmt.Errorf("%s: %w (%s)", what, ctx.Err(), last)
		case <-time.After(attachPoll):
		}
	}
}

func attachInterface(ctx context.Context, client EC2API, instanceID string, doc *bootconfig.Document, a *attached, wait time.Duration, logger *slog.Logger) error {
	told := ""
	what := fmt.Sprintf("attaching the network interface of cluster %s node %d", doc.ClusterID, doc.NodeID)
	return attachLoop(ctx, wait, what, func() (bool, string, error) {
		out, err := client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: ownTags(doc)})
		if err != nil {
			return false, "", fmt.Errorf("describing the broker's network interface: %w", ec2Refusal(err))
		}
		switch n := len(out.NetworkInterfaces); {
		case n == 0:
			return false, "", fmt.Errorf("no network interface is tagged %s=%s and %s=%d: the broker's address is gone (was it deleted outside Terraform?)",
				bootconfig.TagClusterID, doc.ClusterID, bootconfig.TagNodeID, doc.NodeID)
		case n > 1:
			return false, "", fmt.Errorf("%d network interfaces are tagged %s=%s and %s=%d; a broker has exactly one", n,
				bootconfig.TagClusterID, doc.ClusterID, bootconfig.TagNodeID, doc.NodeID)
		}
		eni := out.NetworkInterfaces[0]
		a.ENIID, a.PrivateIP = aws.ToString(eni.NetworkInterfaceId), aws.ToString(eni.PrivateIpAddress)
		a.MAC, a.SubnetID = aws.ToString(eni.MacAddress), aws.ToString(eni.SubnetId)
		att := eni.Attachment
		switch {
		case att != nil && aws.ToString(att.InstanceId) == instanceID:
			if att.Status == ec2types.AttachmentStatusAttached {
				a.DeviceIndex = int(aws.ToInt32(att.DeviceIndex))
				return true, "", nil
			}
			return false, fmt.Sprintf("interface %s is %s", a.ENIID, att.Status), nil
		case att != nil && aws.ToString(att.InstanceId) != "":
			holder := aws.ToString(att.InstanceId)
			state := instanceState(ctx, client, holder)
			waiting := fmt.Sprintf("interface %s is still attached to instance %s (%s)", a.ENIID, holder, state)
			if told != holder {
				logger.Info("waiting for the broker's network interface to be released by the instance it was attached to", "eni_id", a.ENIID, "instance_id", holder, "state", state)
				told = holder
			}
			return false, waiting, nil
		case eni.Status != ec2types.NetworkInterfaceStatusAvailable:
			return false, fmt.Sprintf("interface %s is %s", a.ENIID, eni.Status), nil
		}
		logger.Info("attaching the broker's network interface", "eni_id", a.ENIID, "private_ip", a.PrivateIP, "device_index", a.DeviceIndex)
		_, err = client.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
			NetworkInterfaceId: aws.String(a.ENIID), InstanceId: aws.String(instanceID), DeviceIndex: aws.Int32(int32(a.DeviceIndex)),
		})
		switch code := errorCode(err); {
		case err == nil, code == "InvalidNetworkInterface.InUse":
			return false, "attaching interface " + a.ENIID, nil
		}
		return false, "", fmt.Errorf("attaching network interface %s to %s: %w", a.ENIID, instanceID, ec2Refusal(err))
	})
}

func attachVolume(ctx context.Context, client EC2API, instanceID string, doc *bootconfig.Document, a *attached, wait time.Duration, logger *slog.Logger) error {
	told := ""
	want := doc.DataVolume.VolumeID
	what := fmt.Sprintf("attaching data volume %s", want)
	return attachLoop(ctx, wait, what, func() (bool, string, error) {
		out, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: ownTags(doc)})
		if err != nil {
			return false, "", fmt.Errorf("describing the broker's volume: %w", ec2Refusal(err))
		}
		var v *ec2types.Volume
		for i := range out.Volumes {
			switch id := aws.ToString(out.Volumes[i].VolumeId); {
			case id == want:
				v = &out.Volumes[i]
			case out.Volumes[i].State != ec2types.VolumeStateDeleting && out.Volumes[i].State != ec2types.VolumeStateDeleted:
				return false, "", fmt.Errorf("volume %s is tagged as this broker's data volume, but the boot document names %s", id, want)
			}
		}
		if v == nil {
			return false, "", fmt.Errorf("data volume %s (tagged %s=%s, %s=%d) does not exist: the broker's data is gone (was it deleted outside Terraform?)",
				want, bootconfig.TagClusterID, doc.ClusterID, bootconfig.TagNodeID, doc.NodeID)
		}
		a.VolumeID = want
		// An EBS volume of this kind has at most one attachment.
		if len(v.Attachments) > 0 {
			att := v.Attachments[0]
			holder := aws.ToString(att.InstanceId)
			if holder == instanceID {
				if att.State == ec2types.VolumeAttachmentStateAttached {
					return true, "", nil
				}
				return false, fmt.Sprintf("volume %s is %s", want, att.State), nil
			}
			state := instanceState(ctx, client, holder)
			if told != holder {
				logger.Info("waiting for the broker's data volume to be released by the instance it was attached to", "volume_id", want, "instance_id", holder, "state", state)
				told = holder
			}
			return false, fmt.Sprintf("volume %s is still %s to instance %s (%s)", want, att.State, holder, state), nil
		}
		if v.State != ec2types.VolumeStateAvailable {
			return false, fmt.Sprintf("volume %s is %s", want, v.State), nil
		}
		logger.Info("attaching the broker's data volume", "volume_id", want, "device", doc.DataVolume.DeviceName)
		_, err = client.AttachVolume(ctx, &ec2.AttachVolumeInput{
			VolumeId: aws.String(want), InstanceId: aws.String(instanceID), Device: aws.String(doc.DataVolume.DeviceName),
		})
		switch code := errorCode(err); {
		case err == nil, code == "VolumeInUse", code == "IncorrectState":
			return false, "attaching volume " + want, nil
		}
		return false, "", fmt.Errorf("attaching volume %s to %s: %w", want, instanceID, ec2Refusal(err))
	})
}

// instanceState says what state an instance is in, for the logs ("gone" or
// "unknown" when it cannot be said).
func instanceState(ctx context.Context, client EC2API, id string) string {
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if errorCode(err) == "InvalidInstanceID.NotFound" {
		return "gone"
	}
	if err != nil {
		return "unknown"
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if in.State != nil {
				return string(in.State.Name)
			}
		}
	}
	return "gone"
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// ec2Refusal adds to an authorization failure what the instance role lacks.
func ec2Refusal(err error) error {
	switch errorCode(err) {
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
		return fmt.Errorf("%w (the instance role may attach, describe and grow only the cluster's own tagged network interfaces and volumes: "+
			"it needs ec2:Describe* and ec2:AttachNetworkInterface, ec2:AttachVolume, ec2:ModifyVolume where ec2:ResourceTag/%s is this cluster's id)",
			err, bootconfig.TagClusterID)
	}
	return err
}
