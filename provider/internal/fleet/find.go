package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// Fleet performs the cluster operations with the given clients.
type Fleet struct {
	EC2         *ec2.Client
	KMS         *kms.Client
	IAM         *iam.Client
	AutoScaling *autoscaling.Client
	// Log reports progress; Terraform's tflog in the provider.
	Log func(ctx context.Context, msg string, attrs ...any)
	// PollInterval is the delay between two polls of a waiter (default 2s).
	PollInterval time.Duration
	// Waits bounds each kind of wait (zero fields: DefaultWaits).
	Waits Waits
	// HealthCheckGracePeriod of the brokers' groups (whole seconds; zero:
	// DefaultHealthCheckGracePeriod).
	HealthCheckGracePeriod time.Duration
}

func (f *Fleet) log(ctx context.Context, msg string, attrs ...any) {
	if f.Log != nil {
		f.Log(ctx, msg, attrs...)
		return
	}
	slog.InfoContext(ctx, msg, attrs...)
}

func (f *Fleet) interval() time.Duration {
	if f.PollInterval > 0 {
		return f.PollInterval
	}
	return 2 * time.Second
}

func clusterFilter(clusterID string) ec2types.Filter {
	return ec2types.Filter{Name: aws.String("tag:" + TagClusterID), Values: []string{clusterID}}
}

func tagValue(tags []ec2types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func tagNodeID(tags []ec2types.Tag) (int32, bool) {
	n, err := strconv.ParseInt(tagValue(tags, TagNodeID), 10, 32)
	if err != nil || n < 1 {
		return 0, false
	}
	return int32(n), true
}

// userTags returns the tags that are not the provider's own.
func userTags(tags []ec2types.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		k := aws.ToString(t.Key)
		if strings.HasPrefix(k, "tributary:") || k == "Name" {
			continue
		}
		out[k] = aws.ToString(t.Value)
	}
	return out
}

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// Observe finds every object tagged with the cluster id and assembles the
// brokers from them.
func (f *Fleet) Observe(ctx context.Context, clusterID string) (*Observed, error) {
	o := &Observed{ClusterID: clusterID}
	byNode := map[int32]*Broker{}
	broker := func(id int32) *Broker {
		if b, ok := byNode[id]; ok {
			return b
		}
		b := &Broker{NodeID: id}
		byNode[id] = b
		return b
	}

	sgs, err := f.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
		Filters: []ec2types.Filter{clusterFilter(clusterID)},
	})
	if err != nil {
		return nil, fmt.Errorf("describing security groups of cluster %s: %w", clusterID, err)
	}
	for _, sg := range sgs.SecurityGroups {
		o.SecurityGroupID = aws.ToString(sg.GroupId)
		o.VPCID = aws.ToString(sg.VpcId)
		o.Name = tagValue(sg.Tags, TagClusterName)
		o.Tags = userTags(sg.Tags)
		o.ClientCIDRs = cidrsOf(sg.IpPermissions, func(port int32) bool { return !isMonitoringPort(port) })
		o.MonitoringCIDRs = cidrsOf(sg.IpPermissions, isMonitoringPort)
	}

	eniAttachedTo, err := f.observeInterfaces(ctx, clusterID, broker)
	if err != nil {
		return nil, err
	}

	vols := ec2.NewDescribeVolumesPaginator(f.EC2, &ec2.DescribeVolumesInput{
		Filters: []ec2types.Filter{clusterFilter(clusterID)},
	})
	attachedTo := map[int32]string{}
	for vols.HasMorePages() {
		page, err := vols.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing volumes of cluster %s: %w", clusterID, err)
		}
		for _, v := range page.Volumes {
			id, ok := tagNodeID(v.Tags)
			if !ok || v.State == ec2types.VolumeStateDeleting || v.State == ec2types.VolumeStateDeleted {
				continue
			}
			b := broker(id)
			b.VolumeTags = autoscalingTags(v.Tags)
			b.VolumeID = aws.ToString(v.VolumeId)
			b.VolumeSizeGiB = aws.ToInt32(v.Size)
			b.VolumeType = string(v.VolumeType)
			b.VolumeIOPS = aws.ToInt32(v.Iops)
			b.VolumeThroughput = aws.ToInt32(v.Throughput)
			b.VolumeKMSKeyID = aws.ToString(v.KmsKeyId)
			b.VolumeEncrypted = aws.ToBool(v.Encrypted)
			if b.AvailabilityZone == "" {
				b.AvailabilityZone = aws.ToString(v.AvailabilityZone)
			}
			for _, a := range v.Attachments {
				if a.State == ec2types.VolumeAttachmentStateAttached || a.State == ec2types.VolumeAttachmentStateAttaching {
					attachedTo[id] = aws.ToString(a.InstanceId)
				}
			}
		}
	}

	members, err := f.observeGroups(ctx, o, broker)
	if err != nil {
		return nil, err
	}
	if err := f.observeTemplates(ctx, o, broker); err != nil {
		return nil, err
	}

	insts := ec2.NewDescribeInstancesPaginator(f.EC2, &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{
			clusterFilter(clusterID),
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}},
		},
	})
	// legacy holds, per node, an instance of no group (launched on the
	// broker's interface by an earlier provider).
	legacy := map[int32]ec2types.Instance{}
	for insts.HasMorePages() {
		page, err := insts.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing instances of cluster %s: %w", clusterID, err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				instID := aws.ToString(in.InstanceId)
				id, ok := tagNodeID(in.Tags)
				if !ok {
					o.OrphanInstanceIDs = append(o.OrphanInstanceIDs, instID)
					continue
				}
				if in.State != nil && in.State.Name == ec2types.InstanceStateNameShuttingDown {
					continue // on its way out; the broker has no instance
				}
				if m, ok := members[instID]; ok {
					if !m.active {
						continue // the group is replacing it
					}
					b := broker(id)
					setInstance(b, in)
					b.InstanceVersion = m.version
					continue
				}
				if tagValue(in.Tags, "aws:autoscaling:groupName") != "" {
					continue // a group's instance the group does not list (yet, or any more)
				}
				if prev, ok := legacy[id]; ok {
					// Two instances for one broker (a crash between
					// RunInstances and tagging bookkeeping): the one holding
					// the ENI is the broker, the other an orphan.
					b := broker(id)
					if !instanceHoldsENI(in, b.ENIID) {
						o.OrphanInstanceIDs = append(o.OrphanInstanceIDs, instID)
						continue
					}
					o.OrphanInstanceIDs = append(o.OrphanInstanceIDs, aws.ToString(prev.InstanceId))
				}
				legacy[id] = in
			}
		}
	}
	for id, in := range legacy {
		b := broker(id)
		if b.InstanceID != "" {
			// The group's instance is the broker; an instance of no group
			// beside it (left by a move into the group that stopped) goes.
			o.OrphanInstanceIDs = append(o.OrphanInstanceIDs, aws.ToString(in.InstanceId))
			continue
		}
		setInstance(b, in)
	}
	slices.Sort(o.OrphanInstanceIDs)
	for _, b := range byNode {
		b.ENIAttached = b.InstanceID != "" && eniAttachedTo[b.NodeID] == b.InstanceID
	}
	for id, b := range byNode {
		b.VolumeAttached = b.InstanceID != "" && attachedTo[id] == b.InstanceID
	}

	for _, b := range byNode {
		o.Brokers = append(o.Brokers, *b)
	}
	slices.SortFunc(o.Brokers, func(a, b Broker) int { return int(a.NodeID - b.NodeID) })

	if err := f.observeKey(ctx, o); err != nil {
		return nil, err
	}
	if err := f.observeRole(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

// FindBrokers returns the brokers of a cluster with only what their network
// interfaces tell (node id, private IP, subnet, AZ, security groups, the
// instance the interface is attached to), in
// node-id order: where to reach them, from one EC2 call instead of
// Observe's several. None when the cluster has no interfaces (it does not
// exist, or was deleted).
func (f *Fleet) FindBrokers(ctx context.Context, clusterID string) ([]Broker, error) {
	byNode := map[int32]*Broker{}
	attachedTo, err := f.observeInterfaces(ctx, clusterID, func(id int32) *Broker {
		if b, ok := byNode[id]; ok {
			return b
		}
		b := &Broker{NodeID: id}
		byNode[id] = b
		return b
	})
	if err != nil {
		return nil, err
	}
	out := make([]Broker, 0, len(byNode))
	for id, b := range byNode {
		// The instance the interface is attached to, so that a caller can
		// read the broker's boot document (its listeners and CA).
		b.InstanceID = attachedTo[id]
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b Broker) int { return int(a.NodeID - b.NodeID) })
	return out, nil
}

// observeInterfaces fills each broker's interface fields from the network
// interfaces tagged with the cluster id and a node id, and returns which
// instance each broker's interface is attached to (none when detached).
func (f *Fleet) observeInterfaces(ctx context.Context, clusterID string, broker func(nodeID int32) *Broker) (map[int32]string, error) {
	attachedTo := map[int32]string{}
	enis := ec2.NewDescribeNetworkInterfacesPaginator(f.EC2, &ec2.DescribeNetworkInterfacesInput{
		Filters: []ec2types.Filter{clusterFilter(clusterID)},
	})
	for enis.HasMorePages() {
		page, err := enis.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing network interfaces of cluster %s: %w", clusterID, err)
		}
		for _, eni := range page.NetworkInterfaces {
			id, ok := tagNodeID(eni.TagSet)
			if !ok {
				continue
			}
			b := broker(id)
			b.ENIID = aws.ToString(eni.NetworkInterfaceId)
			b.PrivateIP = aws.ToString(eni.PrivateIpAddress)
			b.PrivateDNSName = aws.ToString(eni.PrivateDnsName)
			b.SubnetID = aws.ToString(eni.SubnetId)
			b.AvailabilityZone = aws.ToString(eni.AvailabilityZone)
			b.SecurityGroupIDs = nil
			if att := eni.Attachment; att != nil && att.Status == ec2types.AttachmentStatusAttached {
				attachedTo[id] = aws.ToString(att.InstanceId)
			}
			for _, g := range eni.Groups {
				b.SecurityGroupIDs = append(b.SecurityGroupIDs, aws.ToString(g.GroupId))
			}
			slices.Sort(b.SecurityGroupIDs)
		}
	}
	return attachedTo, nil
}

// setInstance records the instance as the broker's.
func setInstance(b *Broker, in ec2types.Instance) {
	b.InstanceID = aws.ToString(in.InstanceId)
	b.InstanceState = ""
	if in.State != nil {
		b.InstanceState = string(in.State.Name)
	}
	b.InstanceType = string(in.InstanceType)
	b.ImageID = aws.ToString(in.ImageId)
	b.InstanceProfile = ""
	if in.IamInstanceProfile != nil {
		b.InstanceProfile = aws.ToString(in.IamInstanceProfile.Arn)
	}
}

// autoscalingTags returns a volume's storage autoscaling tags.
func autoscalingTags(tags []ec2types.Tag) map[string]string {
	out := map[string]string{}
	for _, k := range []string{TagAutoscalingTarget, TagAutoscalingMaxSize} {
		if v := tagValue(tags, k); v != "" {
			out[k] = v
		}
	}
	return out
}

func instanceHoldsENI(in ec2types.Instance, eniID string) bool {
	for _, ni := range in.NetworkInterfaces {
		if aws.ToString(ni.NetworkInterfaceId) == eniID {
			return true
		}
	}
	return false
}

// isMonitoringPort tells the open monitoring ports from the client ports,
// which the security group opens to CIDR blocks of their own.
func isMonitoringPort(port int32) bool {
	return port == MetricsPort || port == NodeMetricsPort
}

// cidrsOf lists the CIDRs allowed on the ports that match, sorted.
func cidrsOf(perms []ec2types.IpPermission, match func(port int32) bool) []string {
	var out []string
	for _, p := range perms {
		if !match(aws.ToInt32(p.FromPort)) {
			continue
		}
		for _, r := range p.IpRanges {
			c := aws.ToString(r.CidrIp)
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
		for _, r := range p.Ipv6Ranges {
			c := aws.ToString(r.CidrIpv6)
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// observeKey finds the key the cluster created, through its alias.
func (f *Fleet) observeKey(ctx context.Context, o *Observed) error {
	out, err := f.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(KeyAlias(o.ClusterID))})
	if err != nil {
		if errorCode(err) == "NotFoundException" {
			return nil
		}
		return fmt.Errorf("describing KMS key %s: %w", KeyAlias(o.ClusterID), err)
	}
	if md := out.KeyMetadata; md != nil && md.KeyState != "PendingDeletion" {
		o.KeyARN = aws.ToString(md.Arn)
	}
	return nil
}

// observeRole finds the roles and profiles the cluster created, by name
// under the provider's IAM path: each broker's own, and the one shared by
// every broker of a cluster made before brokers had their own.
func (f *Fleet) observeRole(ctx context.Context, o *Observed) error {
	o.RoleNames, o.ProfileNames = nil, nil
	roles := iam.NewListRolesPaginator(f.IAM, &iam.ListRolesInput{PathPrefix: aws.String(rolePath)})
	for roles.HasMorePages() {
		page, err := roles.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the IAM roles of cluster %s: %w", o.ClusterID, err)
		}
		for _, r := range page.Roles {
			if name := aws.ToString(r.RoleName); ownsRole(o.ClusterID, name) {
				o.RoleNames = append(o.RoleNames, name)
			}
		}
	}
	profiles := iam.NewListInstanceProfilesPaginator(f.IAM, &iam.ListInstanceProfilesInput{PathPrefix: aws.String(rolePath)})
	for profiles.HasMorePages() {
		page, err := profiles.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing the IAM instance profiles of cluster %s: %w", o.ClusterID, err)
		}
		for _, p := range page.InstanceProfiles {
			if name := aws.ToString(p.InstanceProfileName); ownsRole(o.ClusterID, name) {
				o.ProfileNames = append(o.ProfileNames, name)
			}
		}
	}
	slices.Sort(o.RoleNames)
	slices.Sort(o.ProfileNames)
	return nil
}
