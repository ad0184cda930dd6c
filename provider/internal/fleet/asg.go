package fleet

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Each broker is an Auto Scaling group of one (min = max = desired = 1) in its
// subnet, launching from the broker's own launch template: image, instance
// type, profile, IMDSv2 required, the cluster's security group on the
// primary interface, and the broker's boot document, which tells the boot
// agent to attach the broker's ENI and volume. The group replaces a
// terminated, stopped or failing instance by itself.

// launchHashPrefix starts the description of every template version the
// provider writes; the rest is the version's launch hash, and for a version
// that reseals another (Spec.Reseal) resealsMark and that version's number.
const (
	launchHashPrefix = "tributary launch "
	resealsMark      = " reseals version "
)

// versionDescription is the description of a template version of the
// launch hash that reseals version reseals ("": an ordinary version).
func versionDescription(hash, reseals string) string {
	if reseals == "" {
		return launchHashPrefix + hash
	}
	return launchHashPrefix + hash + resealsMark + reseals
}

// parseVersionDescription reads versionDescription's hash and reseals.
func parseVersionDescription(desc string) (hash, reseals string) {
	hash, reseals, _ = strings.Cut(strings.TrimPrefix(desc, launchHashPrefix), resealsMark)
	return hash, reseals
}

// DefaultHealthCheckGracePeriod is how long a new instance's failed health
// checks are not held against it (Fleet.HealthCheckGracePeriod). A
// broker's instance boots in seconds and its EC2 status checks do not
// depend on the broker, so it is short: a stopped or failing instance is
// replaced soon after its launch too.
const DefaultHealthCheckGracePeriod = 30 * time.Second

func (f *Fleet) gracePeriod() time.Duration {
	if f.HealthCheckGracePeriod > 0 {
		return f.HealthCheckGracePeriod
	}
	return DefaultHealthCheckGracePeriod
}

// groupMember is an instance an Auto Scaling group lists.
type groupMember struct {
	version string
	// active: not being terminated by the group.
	active bool
}

// observeGroups finds the cluster's groups (by tag), fills each broker's
// group fields and returns the groups' instances.
func (f *Fleet) observeGroups(ctx context.Context, o *Observed, broker func(int32) *Broker) (map[string]groupMember, error) {
	members := map[string]groupMember{}
	pages := autoscaling.NewDescribeAutoScalingGroupsPaginator(f.AutoScaling, &autoscaling.DescribeAutoScalingGroupsInput{
		Filters: []astypes.Filter{{Name: aws.String("tag:" + TagClusterID), Values: []string{o.ClusterID}}},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing Auto Scaling groups of cluster %s: %w", o.ClusterID, err)
		}
		for _, g := range page.AutoScalingGroups {
			name := aws.ToString(g.AutoScalingGroupName)
			o.Groups = append(o.Groups, name)
			if aws.ToString(g.Status) != "" { // "Delete in progress"
				continue
			}
			id, ok := groupNodeID(g.Tags)
			if !ok {
				continue
			}
			b := broker(id)
			b.GroupName = name
			b.GroupMin, b.GroupMax, b.GroupDesired = aws.ToInt32(g.MinSize), aws.ToInt32(g.MaxSize), aws.ToInt32(g.DesiredCapacity)
			b.GroupSubnets = aws.ToString(g.VPCZoneIdentifier)
			if lt := g.LaunchTemplate; lt != nil {
				b.GroupVersion = aws.ToString(lt.Version)
			}
			for _, in := range g.Instances {
				m := groupMember{active: !strings.HasPrefix(string(in.LifecycleState), "Terminating")}
				if lt := in.LaunchTemplate; lt != nil {
					m.version = aws.ToString(lt.Version)
				}
				members[aws.ToString(in.InstanceId)] = m
			}
		}
	}
	slices.Sort(o.Groups)
	return members, nil
}

func groupNodeID(tags []astypes.TagDescription) (int32, bool) {
	for _, t := range tags {
		if aws.ToString(t.Key) == TagNodeID {
			n, err := strconv.ParseInt(aws.ToString(t.Value), 10, 32)
			return int32(n), err == nil && n > 0
		}
	}
	return 0, false
}

// observeTemplates finds the cluster's launch templates (by tag) and reads,
// per broker, the latest version's launch hash and what the version its
// group launches holds.
func (f *Fleet) observeTemplates(ctx context.Context, o *Observed, broker func(int32) *Broker) error {
	pages := ec2.NewDescribeLaunchTemplatesPaginator(f.EC2, &ec2.DescribeLaunchTemplatesInput{
		Filters: []ec2types.Filter{clusterFilter(o.ClusterID)},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describing launch templates of cluster %s: %w", o.ClusterID, err)
		}
		for _, lt := range page.LaunchTemplates {
			o.Templates = append(o.Templates, aws.ToString(lt.LaunchTemplateId))
			id, ok := tagNodeID(lt.Tags)
			if !ok {
				continue
			}
			b := broker(id)
			b.TemplateID, b.TemplateLatest = aws.ToString(lt.LaunchTemplateId), aws.ToInt64(lt.LatestVersionNumber)
			versions := []string{strconv.FormatInt(b.TemplateLatest, 10)}
			if b.GroupVersion != "" && b.GroupVersion != versions[0] {
				versions = append(versions, b.GroupVersion)
			}
			out, err := f.EC2.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{
				LaunchTemplateId: lt.LaunchTemplateId, Versions: versions,
			})
			if err != nil {
				return fmt.Errorf("describing launch template %s: %w", b.TemplateID, err)
			}
			for _, v := range out.LaunchTemplateVersions {
				n := strconv.FormatInt(aws.ToInt64(v.VersionNumber), 10)
				hash, reseals := parseVersionDescription(aws.ToString(v.VersionDescription))
				if n == versions[0] {
					b.TemplateLatestHash, b.TemplateLatestReseals = hash, reseals
				}
				if n == b.GroupVersion {
					b.GroupReseals = reseals
					if v.LaunchTemplateData != nil {
						b.Launch = launchSettings(v.LaunchTemplateData)
					}
				}
			}
		}
	}
	slices.Sort(o.Templates)
	return nil
}

func launchSettings(d *ec2types.ResponseLaunchTemplateData) *LaunchSettings {
	ls := &LaunchSettings{ImageID: aws.ToString(d.ImageId), InstanceType: string(d.InstanceType)}
	if p := d.IamInstanceProfile; p != nil {
		ls.InstanceProfile = aws.ToString(p.Name)
		if ls.InstanceProfile == "" {
			ls.InstanceProfile = aws.ToString(p.Arn)
		}
	}
	if ud, err := base64.StdEncoding.DecodeString(aws.ToString(d.UserData)); err == nil {
		ls.UserData = ud
	}
	return ls
}

// templateData is what a broker's launch template version holds.
func (s *Spec) templateData(b *Broker, userData []byte, profile, securityGroup string) *ec2types.RequestLaunchTemplateData {
	return &ec2types.RequestLaunchTemplateData{
		ImageId:            aws.String(s.ImageID),
		InstanceType:       ec2types.InstanceType(s.InstanceType),
		IamInstanceProfile: &ec2types.LaunchTemplateIamInstanceProfileSpecificationRequest{Name: aws.String(profile)},
		UserData:           aws.String(base64.StdEncoding.EncodeToString(userData)),
		MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
			HttpTokens:              ec2types.LaunchTemplateHttpTokensStateRequired,
			HttpEndpoint:            ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
			HttpPutResponseHopLimit: aws.Int32(1),
		},
		// The primary interface the launch creates only reaches AWS's
		// APIs; clients and peers use the broker's own interface.
		SecurityGroupIds: []string{securityGroup},
	}
}

// ensureTemplate creates the broker's launch template, or a new version of
// it when the spec launches something else than its latest version, and
// makes that version the template's default. It returns the version the
// group must launch.
func (f *Fleet) ensureTemplate(ctx context.Context, s *Spec, b *Broker, nodes, controllers []Node, profile, securityGroup string) (string, error) {
	hash := s.instanceLaunchHash(profile)
	latest := strconv.FormatInt(b.TemplateLatest, 10)
	reseals := ""
	if b.TemplateID != "" && b.TemplateLatestHash == hash && !s.Reissue[b.NodeID] {
		if !s.Reseal[b.NodeID] {
			return latest, nil
		}
		// The same launch, the document rendered again: the instance its
		// group launched from what it launches now stays. One that rolls
		// anyway, or that no group runs, gets an ordinary version.
		if b.GroupName != "" && b.GroupVersion == latest && !b.NeedsRoll() {
			reseals = b.InstanceVersion
		}
	}
	self := Node{NodeID: b.NodeID, AvailabilityZone: b.AvailabilityZone, PrivateIP: b.PrivateIP, PrivateDNSName: b.PrivateDNSName, VolumeID: b.VolumeID}
	userData, err := s.UserData(self, controllers)
	if err != nil {
		return "", fmt.Errorf("rendering the boot document: %w", err)
	}
	data := s.templateData(b, userData, profile, securityGroup)
	name := GroupName(s.ClusterID, b.NodeID)
	if b.TemplateID == "" {
		f.log(ctx, "creating launch template", "node_id", b.NodeID, "name", name, "image_id", s.ImageID, "instance_type", s.InstanceType)
		out, err := f.EC2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
			LaunchTemplateName: aws.String(name),
			VersionDescription: aws.String(versionDescription(hash, "")),
			LaunchTemplateData: data,
			// Only the provider's own tags: a template is found by them,
			// and the group carries (and propagates) the user's.
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: ec2Tags(providerTags(s.allTags("launch-template", b.NodeID)))}},
		})
		if err != nil {
			return "", fmt.Errorf("creating launch template %s: %w", name, err)
		}
		b.TemplateID, b.TemplateLatest, b.TemplateLatestHash = aws.ToString(out.LaunchTemplate.LaunchTemplateId), aws.ToInt64(out.LaunchTemplate.LatestVersionNumber), hash
		b.TemplateLatestReseals = ""
		return strconv.FormatInt(b.TemplateLatest, 10), nil
	}
	f.log(ctx, "new launch template version", "node_id", b.NodeID, "launch_template_id", b.TemplateID, "image_id", s.ImageID, "instance_type", s.InstanceType,
		"reseals_version", reseals)
	out, err := f.EC2.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{
		LaunchTemplateId: aws.String(b.TemplateID), VersionDescription: aws.String(versionDescription(hash, reseals)), LaunchTemplateData: data,
	})
	if err != nil {
		return "", fmt.Errorf("creating a version of launch template %s: %w", b.TemplateID, err)
	}
	version := strconv.FormatInt(aws.ToInt64(out.LaunchTemplateVersion.VersionNumber), 10)
	// The default follows: it is what people see first, and what moto
	// launches whatever version the group names.
	if _, err := f.EC2.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: aws.String(b.TemplateID), DefaultVersion: aws.String(version)}); err != nil {
		return "", fmt.Errorf("making version %s the default of launch template %s: %w", version, b.TemplateID, err)
	}
	b.TemplateLatest, b.TemplateLatestHash, b.TemplateLatestReseals = aws.ToInt64(out.LaunchTemplateVersion.VersionNumber), hash, reseals
	return version, nil
}

// providerTags keeps the provider's own tags (and Name).
func providerTags(all map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range all {
		if strings.HasPrefix(k, "tributary:") || k == "Name" {
			out[k] = v
		}
	}
	return out
}

// groupTags are the group's tags, every one propagated to its instances.
func groupTags(name string, tags map[string]string) []astypes.Tag {
	out := make([]astypes.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, astypes.Tag{
			ResourceId: aws.String(name), ResourceType: aws.String("auto-scaling-group"),
			Key: aws.String(k), Value: aws.String(tags[k]), PropagateAtLaunch: aws.Bool(true),
		})
	}
	return out
}

// ensureGroup creates the broker's group, or makes an existing one a group
// of one in the broker's subnet launching version.
func (f *Fleet) ensureGroup(ctx context.Context, s *Spec, b *Broker, version string) error {
	name := GroupName(s.ClusterID, b.NodeID)
	lt := &astypes.LaunchTemplateSpecification{LaunchTemplateId: aws.String(b.TemplateID), Version: aws.String(version)}
	if b.GroupName == "" {
		f.log(ctx, "creating Auto Scaling group of one", "node_id", b.NodeID, "name", name, "subnet_id", b.SubnetID, "launch_template_version", version)
		if err := f.createGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
			AutoScalingGroupName:   aws.String(name),
			LaunchTemplate:         lt,
			MinSize:                aws.Int32(1),
			MaxSize:                aws.Int32(1),
			DesiredCapacity:        aws.Int32(1),
			VPCZoneIdentifier:      aws.String(b.SubnetID),
			HealthCheckType:        aws.String("EC2"),
			HealthCheckGracePeriod: aws.Int32(int32(f.gracePeriod() / time.Second)),
			Tags:                   groupTags(name, s.allTags("broker", b.NodeID)),
		}); err != nil {
			return err
		}
		b.GroupName, b.GroupVersion, b.GroupSubnets = name, version, b.SubnetID
		b.GroupReseals = b.reseals(version)
		b.GroupMin, b.GroupMax, b.GroupDesired = 1, 1, 1
		return nil
	}
	if b.GroupVersion == version && b.GroupMin == 1 && b.GroupMax == 1 && b.GroupDesired == 1 && b.GroupSubnets == b.SubnetID {
		return nil
	}
	f.log(ctx, "updating Auto Scaling group", "node_id", b.NodeID, "name", name, "launch_template_version", version)
	if _, err := f.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(name), LaunchTemplate: lt,
		MinSize: aws.Int32(1), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1), VPCZoneIdentifier: aws.String(b.SubnetID),
	}); err != nil {
		return fmt.Errorf("updating Auto Scaling group %s: %w", name, err)
	}
	b.GroupVersion, b.GroupSubnets = version, b.SubnetID
	b.GroupReseals = b.reseals(version)
	b.GroupMin, b.GroupMax, b.GroupDesired = 1, 1, 1
	return nil
}

// reseals is the version that version of the broker's template reseals,
// as far as this broker knows (its latest version's).
func (b *Broker) reseals(version string) string {
	if version == strconv.FormatInt(b.TemplateLatest, 10) {
		return b.TemplateLatestReseals
	}
	return ""
}

// createGroup creates a broker's group. EC2 Auto Scaling keeps a deleted
// group's name until the group's instances are terminated (ForceDelete) and
// refuses it meanwhile with AlreadyExists ("... already exists and is
// pending delete. Please wait until Autoscaling completes the deletion
// process before creating another group with the same name."), as it does
// when a cluster is moved into its groups soon after its groups were deleted.
// Such a group is waited for until it is gone, and the create asked again:
// taking its AlreadyExists for the broker's group left the broker with none
// once the old one went ("the Auto Scaling group ... is gone"). A group of
// the name that is not being deleted is the broker's, from an earlier try.
func (f *Fleet) createGroup(ctx context.Context, in *autoscaling.CreateAutoScalingGroupInput) error {
	name := aws.ToString(in.AutoScalingGroupName)
	logged := false
	return f.poll(ctx, waitFor{"Auto Scaling group " + name, "be created (a deleted group of that name must be gone first)", f.waits().InstanceTerminated}, func() (string, error) {
		_, err := f.AutoScaling.CreateAutoScalingGroup(ctx, in)
		if err == nil {
			return "created", nil
		}
		if errorCode(err) != "AlreadyExists" {
			return "", fmt.Errorf("creating Auto Scaling group %s: %w", name, err)
		}
		out, err := f.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return "", fmt.Errorf("describing Auto Scaling group %s: %w", name, err)
		}
		if len(out.AutoScalingGroups) == 0 {
			return "gone since the create was refused", errNotYet
		}
		g := out.AutoScalingGroups[0]
		status := aws.ToString(g.Status)
		if status == "" {
			return "created", nil
		}
		if !logged {
			f.log(ctx, "waiting for a deleted Auto Scaling group of the same name to be gone", "name", name, "status", status, "instances", len(g.Instances))
			logged = true
		}
		return fmt.Sprintf("held by a group %q with %d instances", status, len(g.Instances)), errNotYet
	})
}

// waitGroupInstance waits until the broker's group has an instance other
// than old that runs, and records it as the broker's.
func (f *Fleet) waitGroupInstance(ctx context.Context, b *Broker, old string) error {
	return f.poll(ctx, waitFor{"Auto Scaling group " + b.GroupName, "launch a running instance", f.waits().InstanceRunning}, func() (string, error) {
		out, err := f.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{b.GroupName}})
		if err != nil {
			return "", fmt.Errorf("describing Auto Scaling group %s: %w", b.GroupName, err)
		}
		if len(out.AutoScalingGroups) == 0 {
			return "gone", fmt.Errorf("the Auto Scaling group %s is gone", b.GroupName)
		}
		g := out.AutoScalingGroups[0]
		state := "no instance"
		for _, in := range g.Instances {
			id := aws.ToString(in.InstanceId)
			if id == old || strings.HasPrefix(string(in.LifecycleState), "Terminating") {
				continue
			}
			inst, err := f.describeInstance(ctx, id)
			if err != nil {
				return "", fmt.Errorf("describing instance %s: %w", id, err)
			}
			if inst == nil || inst.State == nil {
				state = "instance " + id + " not visible yet"
				continue
			}
			state = fmt.Sprintf("instance %s %s", id, inst.State.Name)
			if inst.State.Name == ec2types.InstanceStateNameRunning {
				setInstance(b, *inst)
				if lt := in.LaunchTemplate; lt != nil {
					b.InstanceVersion = aws.ToString(lt.Version)
				}
				return state, nil
			}
		}
		if act := f.lastFailedLaunch(ctx, b.GroupName); act != "" {
			state += "; last launch failed: " + act
		}
		return state, errNotYet
	})
}

// lastFailedLaunch is the newest failed scaling activity's message, which
// says why a group cannot launch (an image it may not use, no capacity).
func (f *Fleet) lastFailedLaunch(ctx context.Context, group string) string {
	out, err := f.AutoScaling.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(group), MaxRecords: aws.Int32(5)})
	if err != nil {
		return ""
	}
	for _, a := range out.Activities {
		if a.StatusCode == astypes.ScalingActivityStatusCodeFailed {
			return aws.ToString(a.StatusMessage)
		}
	}
	return ""
}

// waitAttached waits until the broker's instance has attached its ENI and
// volume (its boot agent does), for rolls that cannot ask the brokers.
func (f *Fleet) waitAttached(ctx context.Context, b *Broker) error {
	if err := f.poll(ctx, waitFor{"network interface " + b.ENIID, "be attached to " + b.InstanceID + " by its boot agent", f.waits().VolumeState}, func() (string, error) {
		eni, err := f.describeENI(ctx, b.ENIID)
		if err != nil {
			return "", err
		}
		if eni == nil {
			return "gone", fmt.Errorf("network interface %s is gone", b.ENIID)
		}
		if att := eni.Attachment; att != nil && aws.ToString(att.InstanceId) == b.InstanceID && att.Status == ec2types.AttachmentStatusAttached {
			return "attached", nil
		}
		return string(eni.Status), errNotYet
	}); err != nil {
		return err
	}
	b.ENIAttached = true
	if err := f.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateInUse, b.InstanceID); err != nil {
		return err
	}
	b.VolumeAttached = true
	return nil
}

// deleteGroups deletes the groups, terminating their instances, and waits
// until they are gone. A delete EC2 Auto Scaling refuses while an activity
// runs is asked again.
func (f *Fleet) deleteGroups(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	logged := map[string]bool{}
	return f.poll(ctx, waitFor{"Auto Scaling groups " + strings.Join(names, ", "), "be deleted with their instances", f.waits().InstanceTerminated}, func() (string, error) {
		out, err := f.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: names})
		if err != nil {
			return "", fmt.Errorf("describing Auto Scaling groups: %w", err)
		}
		if len(out.AutoScalingGroups) == 0 {
			return "deleted", nil
		}
		var left []string
		for _, g := range out.AutoScalingGroups {
			name := aws.ToString(g.AutoScalingGroupName)
			left = append(left, fmt.Sprintf("%s (%s, %d instances)", name, aws.ToString(g.Status), len(g.Instances)))
			if aws.ToString(g.Status) != "" {
				continue // "Delete in progress"
			}
			if !logged[name] {
				f.log(ctx, "deleting Auto Scaling group", "name", name)
				logged[name] = true
			}
			_, err := f.AutoScaling.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{
				AutoScalingGroupName: aws.String(name), ForceDelete: aws.Bool(true),
			})
			switch code := errorCode(err); {
			case err == nil, isGroupGone(err), code == "ScalingActivityInProgress", code == "ResourceInUse":
			default:
				return "", fmt.Errorf("deleting Auto Scaling group %s: %w", name, err)
			}
		}
		return strings.Join(left, ", "), errNotYet
	})
}

func isGroupGone(err error) bool {
	return errorCode(err) == "ValidationError" && strings.Contains(err.Error(), "not found")
}

// deleteTemplates deletes launch templates.
func (f *Fleet) deleteTemplates(ctx context.Context, ids []string) error {
	var errs []error
	for _, id := range ids {
		f.log(ctx, "deleting launch template", "launch_template_id", id)
		if _, err := f.EC2.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateId: aws.String(id)}); err != nil &&
			errorCode(err) != "InvalidLaunchTemplateId.NotFound" {
			errs = append(errs, fmt.Errorf("deleting launch template %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
