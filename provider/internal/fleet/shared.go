package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tributary/tributary/internal/bootconfig"
)

// Ports brokers use between themselves (ARCHITECTURE.md).
const (
	InterBrokerPort = 9093
	ControllerPort  = 9095
	// MetricsPort and NodeMetricsPort are open monitoring's Prometheus
	// endpoints (MSK's JMX exporter and node exporter ports).
	MetricsPort     = 11001
	NodeMetricsPort = 11002
)

// allTags returns the user's tags plus the provider's, as a sorted map.
func (s *Spec) allTags(component string, nodeID int32) map[string]string {
	tags := maps.Clone(s.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	tags[TagClusterID] = s.ClusterID
	tags[TagClusterName] = s.Name
	tags[TagComponent] = component
	name := s.Name + "-" + component
	if nodeID > 0 {
		tags[TagNodeID] = nodeIDTag(nodeID)
		name = fmt.Sprintf("%s-broker-%d-%s", s.Name, nodeID, component)
	}
	if _, ok := tags["Name"]; !ok {
		tags["Name"] = name
	}
	return tags
}

func ec2Tags(m map[string]string) []ec2types.Tag {
	out := make([]ec2types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func tagSpec(rt ec2types.ResourceType, m map[string]string) []ec2types.TagSpecification {
	return []ec2types.TagSpecification{{ResourceType: rt, Tags: ec2Tags(m)}}
}

// ensureSecurityGroup creates the cluster's security group if missing and
// makes its ingress rules exactly the desired ones.
func (f *Fleet) ensureSecurityGroup(ctx context.Context, s *Spec, o *Observed) error {
	if o.SecurityGroupID == "" {
		f.log(ctx, "creating security group", "cluster_id", s.ClusterID)
		out, err := f.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName:         aws.String("tributary-" + s.ClusterID),
			Description:       aws.String("Tributary cluster " + s.Name + " (" + s.ClusterID + ")"),
			VpcId:             aws.String(s.Subnets[0].VPCID),
			TagSpecifications: tagSpec(ec2types.ResourceTypeSecurityGroup, s.allTags("brokers", 0)),
		})
		if err != nil {
			return fmt.Errorf("creating security group for cluster %s: %w", s.ClusterID, err)
		}
		o.SecurityGroupID = aws.ToString(out.GroupId)
		o.VPCID = s.Subnets[0].VPCID
		o.Tags = maps.Clone(s.Tags) // created with them
		if o.Tags == nil {
			o.Tags = map[string]string{}
		}
	}
	return f.syncIngress(ctx, s, o.SecurityGroupID)
}

// rule is one ingress permission in a comparable form.
type rule struct {
	port   int32
	cidr   string // or
	source string // security group id
}

func (r rule) permission() ec2types.IpPermission {
	p := ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(r.port), ToPort: aws.Int32(r.port)}
	switch {
	case r.source != "":
		p.UserIdGroupPairs = []ec2types.UserIdGroupPair{{GroupId: aws.String(r.source)}}
	case strings.Contains(r.cidr, ":"):
		p.Ipv6Ranges = []ec2types.Ipv6Range{{CidrIpv6: aws.String(r.cidr)}}
	default:
		p.IpRanges = []ec2types.IpRange{{CidrIp: aws.String(r.cidr)}}
	}
	return p
}

func (s *Spec) desiredRules(groupID string) map[rule]bool {
	want := map[rule]bool{}
	for _, port := range s.ClientPorts {
		want[rule{port: port, source: groupID}] = true
		for _, c := range s.ClientCIDRs {
			want[rule{port: port, cidr: c}] = true
		}
	}
	for _, port := range s.MonitoringPorts {
		for _, c := range s.MonitoringCIDRs {
			want[rule{port: port, cidr: c}] = true
		}
	}
	// Replication and the metadata quorum stay inside the cluster.
	want[rule{port: InterBrokerPort, source: groupID}] = true
	want[rule{port: ControllerPort, source: groupID}] = true
	return want
}

func currentRules(perms []ec2types.IpPermission) map[rule]bool {
	have := map[rule]bool{}
	for _, p := range perms {
		if aws.ToString(p.IpProtocol) != "tcp" || aws.ToInt32(p.FromPort) != aws.ToInt32(p.ToPort) {
			// Not a rule this provider writes; report it as extra so it is revoked.
			have[rule{port: -1, cidr: fmt.Sprintf("%s/%d-%d", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort))}] = true
			continue
		}
		port := aws.ToInt32(p.FromPort)
		for _, r := range p.IpRanges {
			have[rule{port: port, cidr: aws.ToString(r.CidrIp)}] = true
		}
		for _, r := range p.Ipv6Ranges {
			have[rule{port: port, cidr: aws.ToString(r.CidrIpv6)}] = true
		}
		for _, g := range p.UserIdGroupPairs {
			have[rule{port: port, source: aws.ToString(g.GroupId)}] = true
		}
	}
	return have
}

// SyncIngress makes the cluster's security group rules exactly the spec's.
// A change of listeners opens the union of the old and new client ports
// while the brokers roll (through Ensure) and closes the old ones with this
// once every broker serves the new listeners, so no client in between loses
// the port it uses.
func (f *Fleet) SyncIngress(ctx context.Context, s *Spec, o *Observed) error {
	if o.SecurityGroupID == "" {
		return fmt.Errorf("cluster %s has no security group", s.ClusterID)
	}
	return f.syncIngress(ctx, s, o.SecurityGroupID)
}

func (f *Fleet) syncIngress(ctx context.Context, s *Spec, groupID string) error {
	out, err := f.EC2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{groupID}})
	if err != nil {
		return fmt.Errorf("describing security group %s: %w", groupID, err)
	}
	if len(out.SecurityGroups) == 0 {
		return fmt.Errorf("security group %s not found", groupID)
	}
	have := currentRules(out.SecurityGroups[0].IpPermissions)
	want := s.desiredRules(groupID)
	var add, remove []ec2types.IpPermission
	for r := range want {
		if !have[r] {
			add = append(add, r.permission())
		}
	}
	for r := range have {
		if !want[r] && r.port >= 0 {
			remove = append(remove, r.permission())
		}
	}
	if len(remove) > 0 {
		f.log(ctx, "revoking security group rules", "security_group_id", groupID, "count", len(remove))
		if _, err := f.EC2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{
			GroupId: aws.String(groupID), IpPermissions: remove,
		}); err != nil {
			return fmt.Errorf("revoking ingress rules of security group %s: %w", groupID, err)
		}
	}
	if len(add) > 0 {
		f.log(ctx, "authorizing security group rules", "security_group_id", groupID, "count", len(add))
		if _, err := f.EC2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
			GroupId: aws.String(groupID), IpPermissions: add,
		}); err != nil && errorCode(err) != "InvalidPermission.Duplicate" {
			return fmt.Errorf("authorizing ingress rules of security group %s: %w", groupID, err)
		}
	}
	return nil
}

// ensureKey creates the cluster's customer-managed key, with rotation and an
// alias that lets Observe find it again, unless the spec names a key.
func (f *Fleet) ensureKey(ctx context.Context, s *Spec, o *Observed) (string, error) {
	if s.Storage.KMSKeyARN != "" {
		return s.Storage.KMSKeyARN, nil
	}
	if o.KeyARN != "" {
		return o.KeyARN, nil
	}
	f.log(ctx, "creating KMS key", "cluster_id", s.ClusterID)
	var tags []kmstypes.Tag
	for k, v := range s.allTags("storage-key", 0) {
		tags = append(tags, kmstypes.Tag{TagKey: aws.String(k), TagValue: aws.String(v)})
	}
	slices.SortFunc(tags, func(a, b kmstypes.Tag) int { return strings.Compare(*a.TagKey, *b.TagKey) })
	out, err := f.KMS.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("Tributary cluster " + s.Name + " (" + s.ClusterID + "): broker volumes and secrets"),
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		Tags:        tags,
	})
	if err != nil {
		return "", fmt.Errorf("creating KMS key for cluster %s: %w", s.ClusterID, err)
	}
	keyID := aws.ToString(out.KeyMetadata.KeyId)
	arn := aws.ToString(out.KeyMetadata.Arn)
	// The alias first: if anything below fails, the next run finds the key
	// through it instead of creating a second one.
	if _, err := f.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(KeyAlias(s.ClusterID)), TargetKeyId: aws.String(keyID)}); err != nil {
		return "", fmt.Errorf("creating alias %s for KMS key %s: %w", KeyAlias(s.ClusterID), keyID, err)
	}
	if _, err := f.KMS.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(keyID)}); err != nil {
		return "", fmt.Errorf("enabling rotation of KMS key %s: %w", keyID, err)
	}
	o.KeyARN = arn
	return arn, nil
}

const ec2TrustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// RolePolicy is the least-privilege inline policy of one broker's role:
// decrypt only its own secrets (the encryption context of the cluster and
// its node: not another broker's, nor the provider's, which name no node);
// put metrics only into the cluster's namespace; attach to the cluster's
// instances only the cluster's own network interfaces and volumes, and grow
// only the cluster's volumes (each resource must carry the cluster's tag,
// ec2:ResourceTag); let EBS use the key for the volumes the instance
// attaches; and, when the brokers authorize IAM clients by their policies,
// ask IAM about them; when the brokers ship their logs, create and write to
// the cluster's log group and its streams only, and put objects under the
// cluster's S3 log prefix only (logObjects, an object ARN pattern); read its own delivered
// certificate's secret (and no other). Describe calls cannot be
// limited to resources in IAM.
func RolePolicy(clusterID string, nodeID int32, keyARN, namespace, logGroup, logObjects, logStream string, iamAuthorization bool) (string, error) {
	ownCluster := map[string]any{
		"StringEquals": map[string]string{"ec2:ResourceTag/" + TagClusterID: clusterID},
	}
	statements := []map[string]any{
		{
			"Sid":       "AttachOwnInterfaceAndVolume",
			"Effect":    "Allow",
			"Action":    []string{"ec2:AttachNetworkInterface", "ec2:AttachVolume"},
			"Resource":  "*",
			"Condition": ownCluster,
		},
		{
			"Sid":       "GrowOwnVolume",
			"Effect":    "Allow",
			"Action":    "ec2:ModifyVolume",
			"Resource":  "*",
			"Condition": ownCluster,
		},
		{
			"Sid":      "FindOwnInterfaceAndVolume",
			"Effect":   "Allow",
			"Action":   []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeVolumes", "ec2:DescribeInstances"},
			"Resource": "*",
		},
		{
			// Attaching an encrypted volume makes EBS take a grant on
			// its key in the caller's name.
			"Sid":      "AttachEncryptedVolumes",
			"Effect":   "Allow",
			"Action":   "kms:CreateGrant",
			"Resource": keyARN,
			"Condition": map[string]any{
				"Bool": map[string]string{"kms:GrantIsForAWSResource": "true"},
			},
		},
		{
			"Sid":      "DecryptBrokerSecrets",
			"Effect":   "Allow",
			"Action":   "kms:Decrypt",
			"Resource": keyARN,
			"Condition": map[string]any{
				"StringEquals": map[string]string{
					"kms:EncryptionContext:tributary:cluster-id": clusterID,
					"kms:EncryptionContext:tributary:node-id":    strconv.Itoa(int(nodeID)),
				},
			},
		},
		{
			// Renewed certificates arrive sealed in the broker's own
			// secret (the random suffix Secrets Manager appends is six
			// characters); another broker's stays out of reach.
			"Sid":      "ReadOwnDeliveredCertificate",
			"Effect":   "Allow",
			"Action":   "secretsmanager:GetSecretValue",
			"Resource": "arn:aws:secretsmanager:*:*:secret:" + bootconfig.CertificateSecretName(clusterID, nodeID) + "-??????",
		},
		{
			"Sid":      "PutClusterMetrics",
			"Effect":   "Allow",
			"Action":   "cloudwatch:PutMetricData",
			"Resource": "*",
			"Condition": map[string]any{
				"StringEquals": map[string]string{"cloudwatch:namespace": namespace},
			},
		},
	}
	if logGroup != "" {
		// The group's ARN names it (CreateLogGroup), its streams are
		// under it (the rest); region and account are the instance's.
		statements = append(statements, map[string]any{
			"Sid":    "ShipClusterLogs",
			"Effect": "Allow",
			"Action": []string{"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"},
			"Resource": []string{
				"arn:aws:logs:*:*:log-group:" + logGroup,
				"arn:aws:logs:*:*:log-group:" + logGroup + ":*",
			},
		})
	}
	if logObjects != "" {
		// Writing only: a broker never reads, lists or deletes log objects.
		statements = append(statements, map[string]any{
			"Sid":      "DeliverClusterLogs",
			"Effect":   "Allow",
			"Action":   "s3:PutObject",
			"Resource": logObjects,
		})
	}
	if logStream != "" {
		// Sending only, to the one stream: a broker never describes,
		// creates or deletes streams.
		statements = append(statements, map[string]any{
			"Sid":      "SendClusterLogs",
			"Effect":   "Allow",
			"Action":   []string{"firehose:PutRecord", "firehose:PutRecordBatch"},
			"Resource": logStream,
		})
	}
	if iamAuthorization {
		// IAM clients are authorized as Amazon MSK does, by their identity
		// policies' kafka-cluster:* actions (iam:SimulatePrincipalPolicy);
		// a role principal comes without its path, which iam:GetRole
		// gives. IAM cannot narrow these to the principals that connect.
		statements = append(statements, map[string]any{
			"Sid":      "AuthorizeIAMClients",
			"Effect":   "Allow",
			"Action":   []string{"iam:SimulatePrincipalPolicy", "iam:GetRole"},
			"Resource": "*",
		})
	}
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	return string(b), err
}

// rolePolicyName is the name of the broker role's inline policy.
const rolePolicyName = "tributary-broker"

// rolePath is the IAM path of the roles and profiles the provider creates.
const rolePath = "/tributary/"

// ensureRoles creates each broker's own role and profile unless the spec
// names a profile; it returns the profile each broker launches with, by
// node id.
func (f *Fleet) ensureRoles(ctx context.Context, s *Spec, o *Observed, keyARN string) (map[int32]string, error) {
	out := map[int32]string{}
	if s.InstanceProfile != "" {
		// A user's profile must exist: without this check RunInstances
		// would fail the same way as while a new profile propagates.
		if _, err := f.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(s.InstanceProfile)}); err != nil {
			if errorCode(err) == "NoSuchEntity" {
				return nil, fmt.Errorf("instance profile %q does not exist (instance_profile names an existing profile; omit it to let the provider create one)", s.InstanceProfile)
			}
			return nil, fmt.Errorf("reading instance profile %s: %w", s.InstanceProfile, err)
		}
		for i := range s.BrokerCount() {
			out[int32(i+1)] = s.InstanceProfile
		}
		return out, nil
	}
	for i := range s.BrokerCount() {
		id := int32(i + 1)
		name, err := f.ensureBrokerRole(ctx, s, o, keyARN, id)
		if err != nil {
			return nil, err
		}
		out[id] = name
	}
	return out, nil
}

// ensureBrokerRole creates one broker's role and profile, both named
// BrokerRoleName, and puts the role's policy.
func (f *Fleet) ensureBrokerRole(ctx context.Context, s *Spec, o *Observed, keyARN string, nodeID int32) (string, error) {
	name := BrokerRoleName(s.ClusterID, nodeID)
	var iamTags []iamtypes.Tag
	all := s.allTags("broker-role", nodeID)
	for _, k := range slices.Sorted(maps.Keys(all)) {
		iamTags = append(iamTags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(all[k])})
	}
	if !slices.Contains(o.RoleNames, name) {
		f.log(ctx, "creating IAM role", "role", name)
		_, err := f.IAM.CreateRole(ctx, &iam.CreateRoleInput{
			RoleName:                 aws.String(name),
			Path:                     aws.String(rolePath),
			AssumeRolePolicyDocument: aws.String(ec2TrustPolicy),
			Description:              aws.String(fmt.Sprintf("Tributary broker %d of cluster %s (%s)", nodeID, s.Name, s.ClusterID)),
			Tags:                     iamTags,
		})
		if err != nil && errorCode(err) != "EntityAlreadyExists" {
			return "", fmt.Errorf("creating IAM role %s: %w", name, err)
		}
		o.RoleNames = append(o.RoleNames, name)
		slices.Sort(o.RoleNames)
	}
	if err := f.putBrokerRolePolicy(ctx, s, keyARN, nodeID); err != nil {
		return "", err
	}
	if !slices.Contains(o.ProfileNames, name) {
		f.log(ctx, "creating IAM instance profile", "profile", name)
		_, err := f.IAM.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{
			InstanceProfileName: aws.String(name), Path: aws.String(rolePath), Tags: iamTags,
		})
		if err != nil && errorCode(err) != "EntityAlreadyExists" {
			return "", fmt.Errorf("creating IAM instance profile %s: %w", name, err)
		}
		o.ProfileNames = append(o.ProfileNames, name)
		slices.Sort(o.ProfileNames)
	}
	prof, err := f.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("reading IAM instance profile %s: %w", name, err)
	}
	hasRole := slices.ContainsFunc(prof.InstanceProfile.Roles, func(r iamtypes.Role) bool { return aws.ToString(r.RoleName) == name })
	if !hasRole {
		if _, err := f.IAM.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{
			InstanceProfileName: aws.String(name), RoleName: aws.String(name),
		}); err != nil && errorCode(err) != "LimitExceeded" {
			return "", fmt.Errorf("adding role %s to instance profile %s: %w", name, name, err)
		}
	}
	return name, nil
}

// putBrokerRolePolicy writes a broker's role's inline policy.
func (f *Fleet) putBrokerRolePolicy(ctx context.Context, s *Spec, keyARN string, nodeID int32) error {
	name := BrokerRoleName(s.ClusterID, nodeID)
	policy, err := RolePolicy(s.ClusterID, nodeID, keyARN, s.MetricsNamespace, s.LogGroup, s.LogObjects, s.LogStream, s.IAMAuthorization)
	if err != nil {
		return fmt.Errorf("rendering the broker role policy: %w", err)
	}
	if _, err := f.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
		RoleName: aws.String(name), PolicyName: aws.String(rolePolicyName), PolicyDocument: aws.String(policy),
	}); err != nil {
		return fmt.Errorf("putting the inline policy of IAM role %s: %w", name, err)
	}
	return nil
}

// SyncRolePolicy writes the created broker roles' policies for the spec
// (no role of a user's profile is touched). Turning IAM clients off keeps
// the brokers' right to ask IAM about them through Ensure, while brokers not
// yet rolled still authorize IAM clients, and drops it with this afterwards.
func (f *Fleet) SyncRolePolicy(ctx context.Context, s *Spec, keyARN string) error {
	if s.InstanceProfile != "" {
		return nil
	}
	for i := range s.BrokerCount() {
		if err := f.putBrokerRolePolicy(ctx, s, keyARN, int32(i+1)); err != nil {
			return err
		}
	}
	return nil
}

// syncTags makes the user's tags on every object of the cluster equal to
// the spec's (the provider's own tributary:* and Name tags stay).
func (f *Fleet) syncTags(ctx context.Context, s *Spec, o *Observed) error {
	var removed []string
	for k := range o.Tags {
		if _, ok := s.Tags[k]; !ok {
			removed = append(removed, k)
		}
	}
	slices.Sort(removed)
	var ids, groups []string
	if o.SecurityGroupID != "" {
		ids = append(ids, o.SecurityGroupID)
	}
	for _, b := range o.Brokers {
		if b.GroupName != "" {
			groups = append(groups, b.GroupName)
		}
	}
	for _, b := range o.Brokers {
		for _, id := range []string{b.ENIID, b.VolumeID, b.InstanceID} {
			if id != "" {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if maps.Equal(o.Tags, s.Tags) || (len(o.Tags) == 0 && len(s.Tags) == 0) {
		return nil
	}
	f.log(ctx, "updating tags", "cluster_id", s.ClusterID, "objects", len(ids), "removed", removed)
	if len(s.Tags) > 0 {
		if _, err := f.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: ec2Tags(s.Tags)}); err != nil {
			return fmt.Errorf("tagging the cluster's EC2 objects: %w", err)
		}
	}
	if len(removed) > 0 {
		var del []ec2types.Tag
		for _, k := range removed {
			del = append(del, ec2types.Tag{Key: aws.String(k)})
		}
		if _, err := f.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: ids, Tags: del}); err != nil {
			return fmt.Errorf("untagging the cluster's EC2 objects: %w", err)
		}
	}
	// The groups propagate the tags to the instances they launch next.
	for _, g := range groups {
		if len(s.Tags) > 0 {
			if _, err := f.AutoScaling.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: groupTags(g, s.Tags)}); err != nil {
				return fmt.Errorf("tagging Auto Scaling group %s: %w", g, err)
			}
		}
		if len(removed) > 0 {
			var del []astypes.Tag
			for _, k := range removed {
				del = append(del, astypes.Tag{ResourceId: aws.String(g), ResourceType: aws.String("auto-scaling-group"), Key: aws.String(k)})
			}
			if _, err := f.AutoScaling.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: del}); err != nil {
				return fmt.Errorf("untagging Auto Scaling group %s: %w", g, err)
			}
		}
	}
	if o.KeyARN != "" {
		var kt []kmstypes.Tag
		for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
			kt = append(kt, kmstypes.Tag{TagKey: aws.String(k), TagValue: aws.String(s.Tags[k])})
		}
		if len(kt) > 0 {
			if _, err := f.KMS.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(o.KeyARN), Tags: kt}); err != nil {
				return fmt.Errorf("tagging KMS key %s: %w", o.KeyARN, err)
			}
		}
		if len(removed) > 0 {
			if _, err := f.KMS.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(o.KeyARN), TagKeys: removed}); err != nil {
				return fmt.Errorf("untagging KMS key %s: %w", o.KeyARN, err)
			}
		}
	}
	var it []iamtypes.Tag
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		it = append(it, iamtypes.Tag{Key: aws.String(k), Value: aws.String(s.Tags[k])})
	}
	for _, name := range o.RoleNames {
		if len(it) > 0 {
			if _, err := f.IAM.TagRole(ctx, &iam.TagRoleInput{RoleName: aws.String(name), Tags: it}); err != nil {
				return fmt.Errorf("tagging role %s: %w", name, err)
			}
		}
		if len(removed) > 0 {
			if _, err := f.IAM.UntagRole(ctx, &iam.UntagRoleInput{RoleName: aws.String(name), TagKeys: removed}); err != nil {
				return fmt.Errorf("untagging role %s: %w", name, err)
			}
		}
	}
	for _, name := range o.ProfileNames {
		if len(it) > 0 {
			if _, err := f.IAM.TagInstanceProfile(ctx, &iam.TagInstanceProfileInput{InstanceProfileName: aws.String(name), Tags: it}); err != nil {
				return fmt.Errorf("tagging instance profile %s: %w", name, err)
			}
		}
		if len(removed) > 0 {
			if _, err := f.IAM.UntagInstanceProfile(ctx, &iam.UntagInstanceProfileInput{InstanceProfileName: aws.String(name), TagKeys: removed}); err != nil {
				return fmt.Errorf("untagging instance profile %s: %w", name, err)
			}
		}
	}
	o.Tags = maps.Clone(s.Tags)
	return nil
}
