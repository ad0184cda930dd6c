package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Resolved is what Ensure settled besides the brokers.
type Resolved struct {
	KeyARN string
	// Profiles is the instance profile each broker launches with, by node
	// id: its own role's, or the one the spec names for all.
	Profiles map[int32]string
}

// instanceLaunchHash covers everything an instance of the spec is launched
// from: image, instance type, instance profile and the boot settings.
func (s *Spec) instanceLaunchHash(profile string) string {
	h := sha256.Sum256([]byte(strings.Join([]string{s.ImageID, s.InstanceType, profile, s.BootSettingsHash}, "\x00")))
	return hex.EncodeToString(h[:8])
}

// Ensure creates whatever of the spec is missing: the shared objects, every
// broker's ENI and volume, its launch template (a new version when the spec
// launches something else) and its Auto Scaling group of one, and waits
// until every group runs an instance. A broker whose instance vanished is
// its group's to replace; a broker without a group gets one (its instance
// comes back with its old ENI and volume). It also applies the in-place
// changes: security group rules and ENI groups, volume size, IOPS,
// throughput, type and autoscaling tags. It does not replace instances that
// run: brokers launched from an older template version, and brokers of an
// earlier provider running on instances of no group, are Roll's.
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
	profiles, err := f.ensureRoles(ctx, s, o, keyARN)
	if err != nil {
		return nil, err
	}
	res := &Resolved{KeyARN: keyARN, Profiles: profiles}

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
		nodes[i] = Node{NodeID: b.NodeID, AvailabilityZone: b.AvailabilityZone, PrivateIP: b.PrivateIP, PrivateDNSName: b.PrivateDNSName, VolumeID: b.VolumeID}
	}
	controllers := nodes[:s.ControllerCount()]

	err = forEach(brokers, func(b *Broker) error {
		version, err := f.ensureTemplate(ctx, s, b, nodes, controllers, profiles[b.NodeID], o.SecurityGroupID)
		if err != nil {
			return err
		}
		if b.Legacy() {
			if b.InstanceState == "running" || b.InstanceState == "pending" {
				return nil // it moves into its group in Roll, gated on the cluster's health
			}
			// Stopped: it serves nothing; it makes way for its group now.
			if err := f.terminate(ctx, []string{b.InstanceID}); err != nil {
				return err
			}
			b.InstanceID, b.InstanceState = "", ""
			if err := f.waitReleased(ctx, b); err != nil {
				return err
			}
		}
		if err := f.ensureGroup(ctx, s, b, version); err != nil {
			return err
		}
		if b.InstanceID != "" && (b.InstanceState == "running" || b.InstanceState == "pending") {
			return nil
		}
		f.log(ctx, "waiting for the broker's Auto Scaling group to launch its instance", "node_id", b.NodeID, "group", b.GroupName)
		if err := f.waitGroupInstance(ctx, b, ""); err != nil {
			return err
		}
		f.log(ctx, "broker instance running", "node_id", b.NodeID, "instance_id", b.InstanceID)
		return nil
	})
	o.Brokers = brokers
	if err != nil {
		return res, err
	}
	// Tags last: they go on every object, including the ones made above.
	return res, f.syncTags(ctx, s, o)
}

// waitReleased waits until EC2 has released the broker's ENI and volume
// from a terminated instance.
func (f *Fleet) waitReleased(ctx context.Context, b *Broker) error {
	if err := f.waitENIAvailable(ctx, b.ENIID); err != nil {
		return err
	}
	return f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateAvailable, "")
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
		b.PrivateDNSName = aws.ToString(out.NetworkInterface.PrivateDnsName)
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
			AvailabilityZone: aws.String(b.AvailabilityZone),
			Size:             aws.Int32(st.SizeGiB),
			VolumeType:       ec2types.VolumeType(st.VolumeType),
			Encrypted:        aws.Bool(true),
			KmsKeyId:         aws.String(keyARN),
		}
		if st.IOPS > 0 {
			in.Iops = aws.Int32(st.IOPS)
		}
		if st.ThroughputMiBps > 0 {
			in.Throughput = aws.Int32(st.ThroughputMiBps)
		}
		tags := s.allTags("data", b.NodeID)
		maps.Copy(tags, s.autoscalingTags())
		in.TagSpecifications = tagSpec(ec2types.ResourceTypeVolume, tags)
		out, err := f.EC2.CreateVolume(ctx, in)
		if err != nil {
			return fmt.Errorf("creating volume in %s: %w", b.AvailabilityZone, err)
		}
		b.VolumeID = aws.ToString(out.VolumeId)
		b.VolumeSizeGiB, b.VolumeType, b.VolumeIOPS, b.VolumeThroughput = st.SizeGiB, st.VolumeType, aws.ToInt32(out.Iops), aws.ToInt32(out.Throughput)
		b.VolumeKMSKeyID, b.VolumeEncrypted = aws.ToString(out.KmsKeyId), true
		b.VolumeTags = s.autoscalingTags()
		return f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateAvailable, "")
	}
	if err := f.syncAutoscalingTags(ctx, s, b); err != nil {
		return err
	}
	return f.modifyVolume(ctx, s, b)
}

// autoscalingTags are the volume tags that turn storage autoscaling on (none
// when it is off).
func (s *Spec) autoscalingTags() map[string]string {
	a := s.Storage.Autoscaling
	if a == nil {
		return map[string]string{}
	}
	return map[string]string{
		TagAutoscalingTarget:  strconv.Itoa(int(a.TargetUtilization)),
		TagAutoscalingMaxSize: strconv.Itoa(int(a.MaxSizeGiB)),
	}
}

// syncAutoscalingTags makes the volume's autoscaling tags the spec's: a
// change of the autoscaling settings is a tag change the broker's volume
// companion picks up, no replacement.
func (f *Fleet) syncAutoscalingTags(ctx context.Context, s *Spec, b *Broker) error {
	want := s.autoscalingTags()
	if maps.Equal(want, b.VolumeTags) {
		return nil
	}
	f.log(ctx, "setting storage autoscaling on volume", "node_id", b.NodeID, "volume_id", b.VolumeID, "tags", want)
	if len(want) > 0 {
		if _, err := f.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{b.VolumeID}, Tags: ec2Tags(want)}); err != nil {
			return fmt.Errorf("tagging volume %s for storage autoscaling: %w", b.VolumeID, err)
		}
	}
	var del []ec2types.Tag
	for k := range b.VolumeTags {
		if _, ok := want[k]; !ok {
			del = append(del, ec2types.Tag{Key: aws.String(k)})
		}
	}
	if len(del) > 0 {
		if _, err := f.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{b.VolumeID}, Tags: del}); err != nil {
			return fmt.Errorf("removing the storage autoscaling tags of volume %s: %w", b.VolumeID, err)
		}
	}
	b.VolumeTags = want
	return nil
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
