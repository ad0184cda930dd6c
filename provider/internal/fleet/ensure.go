package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Resolved is what Ensure settled besides the brokers.
type Resolved struct {
	KeyARN          string
	InstanceProfile string
}

// instanceLaunchHash covers everything an instance of the spec is launched
// from: image, instance type, instance profile and the boot settings.
func (s *Spec) instanceLaunchHash(profile string) string {
	h := sha256.Sum256([]byte(strings.Join([]string{s.ImageID, s.InstanceType, profile, s.BootSettingsHash}, "\x00")))
	return hex.EncodeToString(h[:8])
}

// NeedsRoll reports whether a broker's live instance was launched from
// something other than what the spec asks for.
func (s *Spec) NeedsRoll(b *Broker, profile string) bool {
	return b.HasLiveInstance() && b.InstanceLaunchHash != s.instanceLaunchHash(profile)
}

// Ensure creates whatever of the spec is missing: the shared objects, every
// broker's ENI and volume, and an instance for every broker that has none (a
// new broker, or one whose instance vanished: it comes back with its old ENI
// and volume). It also applies the in-place changes: security group rules and
// ENI groups, volume size, IOPS, throughput and type. It does not roll
// brokers whose instance is out of date; see Roll.
func (f *Fleet) Ensure(ctx context.Context, s *Spec, o *Observed) (*Resolved, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := f.ensureSecurityGroup(ctx, s, o); err != nil {
		return nil, err
	}
	keyARN, err := f.ensureKey(ctx, s, o)
	if err != nil {
		return nil, err
	}
	profile, err := f.ensureRole(ctx, s, o, keyARN)
	if err != nil {
		return nil, err
	}
	res := &Resolved{KeyARN: keyARN, InstanceProfile: profile}

	// Orphan instances (a crash between launch and bookkeeping) go first, so
	// they release the ENIs and volumes they may hold.
	if len(o.OrphanInstanceIDs) > 0 {
		if err := f.terminate(ctx, o.OrphanInstanceIDs); err != nil {
			return nil, err
		}
		o.OrphanInstanceIDs = nil
	}

	n := s.BrokerCount()
	brokers := make([]Broker, n)
	for i := range n {
		id := int32(i + 1)
		if b, ok := o.Broker(id); ok {
			brokers[i] = *b
		} else {
			brokers[i] = Broker{NodeID: id}
		}
		sn := s.Placement(id)
		if brokers[i].SubnetID != "" && brokers[i].SubnetID != sn.ID {
			return nil, fmt.Errorf("broker %d lives in subnet %s but the cluster now places it in %s: moving a broker between subnets needs a new volume and is not supported in place", id, brokers[i].SubnetID, sn.ID)
		}
		brokers[i].SubnetID = sn.ID
		brokers[i].AvailabilityZone = sn.AvailabilityZone
	}

	groups := append([]string{o.SecurityGroupID}, s.SecurityGroupIDs...)
	slices.Sort(groups)
	groups = slices.Compact(groups)

	// ENIs and volumes of all brokers, concurrently.
	err = forEach(brokers, func(b *Broker) error {
		if err := f.ensureENI(ctx, s, b, groups); err != nil {
			return err
		}
		return f.ensureVolume(ctx, s, b, keyARN)
	})
	if err != nil {
		return res, err
	}

	nodes := make([]Node, n)
	for i, b := range brokers {
		nodes[i] = Node{NodeID: b.NodeID, AvailabilityZone: b.AvailabilityZone, PrivateIP: b.PrivateIP, VolumeID: b.VolumeID}
	}
	controllers := nodes[:s.ControllerCount()]

	err = forEach(brokers, func(b *Broker) error {
		switch {
		case !b.HasLiveInstance():
			return f.launch(ctx, s, b, nodes, controllers, profile)
		case b.InstanceState == "stopped" || b.InstanceState == "stopping":
			return f.start(ctx, b)
		case !b.VolumeAttached:
			if err := f.waitInstanceRunning(ctx, b.InstanceID); err != nil {
				return err
			}
			return f.attach(ctx, b)
		}
		return nil
	})
	o.Brokers = brokers
	if err != nil {
		return res, err
	}
	// Tags last: they go on every object, including the ones made above.
	return res, f.syncTags(ctx, s, o)
}

// forEach runs fn for every broker concurrently and joins the errors.
func forEach(brokers []Broker, fn func(b *Broker) error) error {
	errs := make([]error, len(brokers))
	var wg sync.WaitGroup
	for i := range brokers {
		wg.Go(func() {
			if err := fn(&brokers[i]); err != nil {
				errs[i] = fmt.Errorf("broker %d: %w", brokers[i].NodeID, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *Fleet) ensureENI(ctx context.Context, s *Spec, b *Broker, groups []string) error {
	if b.ENIID == "" {
		f.log(ctx, "creating network interface", "node_id", b.NodeID, "subnet_id", b.SubnetID)
		out, err := f.EC2.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{
			SubnetId:          aws.String(b.SubnetID),
			Groups:            groups,
			Description:       aws.String(fmt.Sprintf("Tributary %s broker %d", s.Name, b.NodeID)),
			TagSpecifications: tagSpec(ec2types.ResourceTypeNetworkInterface, s.allTags("eni", b.NodeID)),
		})
		if err != nil {
			return fmt.Errorf("creating network interface in %s: %w", b.SubnetID, err)
		}
		b.ENIID = aws.ToString(out.NetworkInterface.NetworkInterfaceId)
		b.PrivateIP = aws.ToString(out.NetworkInterface.PrivateIpAddress)
		b.SecurityGroupIDs = groups
		return nil
	}
	if !slices.Equal(b.SecurityGroupIDs, groups) {
		f.log(ctx, "changing security groups of network interface", "node_id", b.NodeID, "eni_id", b.ENIID, "groups", groups)
		if _, err := f.EC2.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{
			NetworkInterfaceId: aws.String(b.ENIID), Groups: groups,
		}); err != nil {
			return fmt.Errorf("setting the security groups of %s: %w", b.ENIID, err)
		}
		b.SecurityGroupIDs = groups
	}
	return nil
}

func (f *Fleet) ensureVolume(ctx context.Context, s *Spec, b *Broker, keyARN string) error {
	st := s.Storage
	if b.VolumeID == "" {
		f.log(ctx, "creating encrypted volume", "node_id", b.NodeID, "size_gib", st.SizeGiB, "type", st.VolumeType)
		in := &ec2.CreateVolumeInput{
			AvailabilityZone:  aws.String(b.AvailabilityZone),
			Size:              aws.Int32(st.SizeGiB),
			VolumeType:        ec2types.VolumeType(st.VolumeType),
			Encrypted:         aws.Bool(true),
			KmsKeyId:          aws.String(keyARN),
			TagSpecifications: tagSpec(ec2types.ResourceTypeVolume, s.allTags("data", b.NodeID)),
		}
		if st.IOPS > 0 {
			in.Iops = aws.Int32(st.IOPS)
		}
		if st.ThroughputMiBps > 0 {
			in.Throughput = aws.Int32(st.ThroughputMiBps)
		}
		out, err := f.EC2.CreateVolume(ctx, in)
		if err != nil {
			return fmt.Errorf("creating volume in %s: %w", b.AvailabilityZone, err)
		}
		b.VolumeID = aws.ToString(out.VolumeId)
		b.VolumeSizeGiB, b.VolumeType, b.VolumeIOPS, b.VolumeThroughput = st.SizeGiB, st.VolumeType, aws.ToInt32(out.Iops), aws.ToInt32(out.Throughput)
		b.VolumeKMSKeyID, b.VolumeEncrypted = aws.ToString(out.KmsKeyId), true
		return f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateAvailable, "")
	}
	return f.modifyVolume(ctx, s, b)
}

// modifyVolume grows the volume or changes its performance in place.
func (f *Fleet) modifyVolume(ctx context.Context, s *Spec, b *Broker) error {
	st := s.Storage
	in := &ec2.ModifyVolumeInput{VolumeId: aws.String(b.VolumeID)}
	changed := false
	switch {
	case st.SizeGiB < b.VolumeSizeGiB:
		return fmt.Errorf("volume %s is %d GiB and cannot shrink to %d GiB: EBS volumes only grow; moving the data to a smaller volume is not supported yet",
			b.VolumeID, b.VolumeSizeGiB, st.SizeGiB)
	case st.SizeGiB > b.VolumeSizeGiB:
		in.Size, changed = aws.Int32(st.SizeGiB), true
	}
	if st.VolumeType != "" && st.VolumeType != b.VolumeType {
		in.VolumeType, changed = ec2types.VolumeType(st.VolumeType), true
	}
	if st.IOPS > 0 && st.IOPS != b.VolumeIOPS {
		in.Iops, changed = aws.Int32(st.IOPS), true
	}
	if st.ThroughputMiBps > 0 && st.ThroughputMiBps != b.VolumeThroughput {
		in.Throughput, changed = aws.Int32(st.ThroughputMiBps), true
	}
	if !changed {
		return nil
	}
	f.log(ctx, "modifying volume", "node_id", b.NodeID, "volume_id", b.VolumeID, "size_gib", st.SizeGiB)
	out, err := f.EC2.ModifyVolume(ctx, in)
	if err != nil {
		if errorCode(err) == "VolumeModificationRateExceeded" {
			return fmt.Errorf("modifying volume %s: EBS allows one modification per volume every 6 hours: %w", b.VolumeID, err)
		}
		return fmt.Errorf("modifying volume %s: %w", b.VolumeID, err)
	}
	if m := out.VolumeModification; m != nil {
		b.VolumeSizeGiB = aws.ToInt32(m.TargetSize)
		b.VolumeType = string(m.TargetVolumeType)
		b.VolumeIOPS = aws.ToInt32(m.TargetIops)
		b.VolumeThroughput = aws.ToInt32(m.TargetThroughput)
	}
	// The new size is usable once the modification is optimizing; EBS
	// finishes optimizing in the background, with the volume in use.
	return f.poll(ctx, waitFor{"the modification of volume " + b.VolumeID, "reach optimizing", f.waits().VolumeModification}, func() (string, error) {
		out, err := f.EC2.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{b.VolumeID}})
		if err != nil {
			return "", fmt.Errorf("describing the modification of volume %s: %w", b.VolumeID, err)
		}
		// The volume's history may hold older modifications; the newest is ours.
		var latest *ec2types.VolumeModification
		for i, m := range out.VolumesModifications {
			if latest == nil || aws.ToTime(m.StartTime).After(aws.ToTime(latest.StartTime)) {
				latest = &out.VolumesModifications[i]
			}
		}
		if latest == nil {
			return "", nil
		}
		switch latest.ModificationState {
		case ec2types.VolumeModificationStateOptimizing, ec2types.VolumeModificationStateCompleted:
			return string(latest.ModificationState), nil
		case ec2types.VolumeModificationStateFailed:
			return "failed", fmt.Errorf("EBS failed to modify volume %s: %s", b.VolumeID, aws.ToString(latest.StatusMessage))
		}
		return string(latest.ModificationState), errNotYet
	})
}

// launch starts a new instance for the broker with its ENI as device 0,
// waits for it to run and attaches the data volume.
func (f *Fleet) launch(ctx context.Context, s *Spec, b *Broker, nodes, controllers []Node, profile string) error {
	self := Node{NodeID: b.NodeID, AvailabilityZone: b.AvailabilityZone, PrivateIP: b.PrivateIP, VolumeID: b.VolumeID}
	userData, err := s.UserData(self, controllers)
	if err != nil {
		return fmt.Errorf("rendering the boot document: %w", err)
	}
	tags := s.allTags("broker", b.NodeID)
	tags[TagInstanceLaunchHash] = s.instanceLaunchHash(profile)
	in := &ec2.RunInstancesInput{
		ImageId:      aws.String(s.ImageID),
		InstanceType: ec2types.InstanceType(s.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:        aws.Int32(0),
			NetworkInterfaceId: aws.String(b.ENIID),
		}},
		UserData: aws.String(base64.StdEncoding.EncodeToString(userData)),
		MetadataOptions: &ec2types.InstanceMetadataOptionsRequest{
			HttpTokens:              ec2types.HttpTokensStateRequired,
			HttpEndpoint:            ec2types.InstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String(profile)},
		TagSpecifications:  tagSpec(ec2types.ResourceTypeInstance, tags),
	}
	f.log(ctx, "launching broker instance", "node_id", b.NodeID, "image_id", s.ImageID, "instance_type", s.InstanceType, "private_ip", b.PrivateIP)
	var out *ec2.RunInstancesOutput
	// A new instance profile takes seconds to reach EC2; a profile that
	// never arrives is a mistake, so the retry is bounded.
	err = f.retryWhile(ctx, waitFor{"instance profile " + profile, "be usable by EC2", f.waits().ProfilePropagation}, isProfilePropagation, func() error {
		var err error
		out, err = f.EC2.RunInstances(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("launching instance: %w", err)
	}
	inst := out.Instances[0]
	b.InstanceID = aws.ToString(inst.InstanceId)
	b.InstanceState = string(ec2types.InstanceStateNamePending)
	b.ImageID, b.InstanceType, b.InstanceLaunchHash = s.ImageID, s.InstanceType, tags[TagInstanceLaunchHash]
	if err := f.waitInstanceRunning(ctx, b.InstanceID); err != nil {
		return err
	}
	b.InstanceState = string(ec2types.InstanceStateNameRunning)
	f.log(ctx, "broker instance running", "node_id", b.NodeID, "instance_id", b.InstanceID)
	return f.attach(ctx, b)
}

// isProfilePropagation matches EC2's answer while a new instance profile is
// not yet visible to it (IAM is eventually consistent).
func isProfilePropagation(err error) bool {
	return errorCode(err) == "InvalidParameterValue" && strings.Contains(strings.ToLower(err.Error()), "iam instance profile")
}

func (f *Fleet) attach(ctx context.Context, b *Broker) error {
	// After a replacement the volume may still be detaching from the old
	// instance; AttachVolume needs it available.
	if err := f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateAvailable, ""); err != nil {
		return err
	}
	f.log(ctx, "attaching data volume", "node_id", b.NodeID, "volume_id", b.VolumeID, "instance_id", b.InstanceID)
	if _, err := f.EC2.AttachVolume(ctx, &ec2.AttachVolumeInput{
		Device: aws.String(DataDeviceName), InstanceId: aws.String(b.InstanceID), VolumeId: aws.String(b.VolumeID),
	}); err != nil {
		return fmt.Errorf("attaching volume %s to %s: %w", b.VolumeID, b.InstanceID, err)
	}
	if err := f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateInUse, b.InstanceID); err != nil {
		return err
	}
	b.VolumeAttached = true
	return nil
}

func (f *Fleet) start(ctx context.Context, b *Broker) error {
	if b.InstanceState == "stopping" {
		if err := f.waitInstanceStopped(ctx, b.InstanceID); err != nil {
			return err
		}
	}
	f.log(ctx, "starting stopped broker instance", "node_id", b.NodeID, "instance_id", b.InstanceID)
	if _, err := f.EC2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{b.InstanceID}}); err != nil {
		return fmt.Errorf("starting instance %s: %w", b.InstanceID, err)
	}
	if err := f.waitInstanceRunning(ctx, b.InstanceID); err != nil {
		return err
	}
	b.InstanceState = "running"
	if !b.VolumeAttached {
		return f.attach(ctx, b)
	}
	return nil
}

// terminate terminates instances and waits until they are gone.
func (f *Fleet) terminate(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	f.log(ctx, "terminating instances", "instance_ids", ids)
	if _, err := f.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil &&
		errorCode(err) != "InvalidInstanceID.NotFound" {
		return fmt.Errorf("terminating instances %v: %w", ids, err)
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, f.waitInstanceTerminated(ctx, id))
	}
	return errors.Join(errs...)
}
