package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

var objectAsOptions = basetypes.ObjectAsOptions{UnhandledNullAsEmpty: true, UnhandledUnknownAsEmpty: true}

// splitBrokerConfig separates broker_config by the broker's settings table:
// dynamic settings are applied to the running brokers (IncrementalAlterConfigs
// on the cluster-wide default) and never ride in the boot document, so that
// removing one restores the default rather than a value the brokers were
// launched with; every other setting is in the boot document, and changing
// it rolls the brokers.
func splitBrokerConfig(all map[string]string) (static, dynamic map[string]string) {
	for k, v := range all {
		if s, ok := config.Lookup(k); ok && s.Dynamic {
			if dynamic == nil {
				dynamic = map[string]string{}
			}
			dynamic[k] = v
			continue
		}
		if static == nil {
			static = map[string]string{}
		}
		static[k] = v
	}
	return static, dynamic
}

// clusterWideConfig is what the brokers hold as cluster-wide dynamic
// settings after an apply: broker_config's dynamic settings and the
// provider's SizedConfig.
func (cs *clusterSpec) clusterWideConfig() map[string]string {
	out := maps.Clone(cs.DynamicConfig)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, cs.SizedConfig)
	return out
}

// clusterSpec is everything needed to build a cluster's fleet spec and boot
// documents, read from a plan.
type clusterSpec struct {
	fleet.Spec
	// StaticConfig is broker_config's static settings (boot document),
	// DynamicConfig its dynamic ones (applied live); see splitBrokerConfig.
	StaticConfig  map[string]string
	DynamicConfig map[string]string
	// SizedConfig is the cluster-wide dynamic settings the provider sets
	// where broker_config does not name them (sizedBrokerConfig):
	// max.broker.partitions by instance type.
	SizedConfig        map[string]string
	Listeners          []bootconfig.Listener
	EnhancedMonitoring string
	// Logging is where the brokers ship their logs (nil: nowhere).
	Logging *bootconfig.Logging
	// OpenMonitoring is who may scrape which exporter (nil: none enabled).
	OpenMonitoring *bootconfig.OpenMonitoring
	// Security is what the security blocks ask for; CA signs the broker
	// certificates (nil when nothing uses TLS); SuperUsers are the brokers'
	// and the provider's principals.
	Security   securitySettings
	CA         *pki.CA
	SuperUsers []string
	// seal encrypts a node's secrets with the cluster's key (sealSecrets),
	// sealProvider the provider's secrets (providerSecrets; nil when there
	// are none).
	seal         func(nodeID int32, s *bootconfig.Secrets) (*bootconfig.Envelope, error)
	sealProvider func() (*bootconfig.Envelope, error)
	// admin is the provider's own identity (nil when IAM or no
	// authentication lets it in).
	admin *adminIdentity
	// Access is how the provider reaches the brokers (kafkaAccessTo).
	Access kafkaAccess
	// Throttle is the replication throttle of the partitions a scale-out
	// or scale-in moves (replication_throttle_bytes_per_second).
	Throttle int64
	// now is when certificates issued for this apply start, and
	// certificateValidity how long they are valid.
	now                 time.Time
	certificateValidity time.Duration
	// renewed are the certificates renewInPlace delivered that the brokers
	// serve, by node id. A broker's boot document is rendered with its
	// renewed pair rather than a certificate issued for the render, so
	// that the template version resealed after the renewal holds the pair
	// the broker runs, not a third one.
	renewed map[int32]*pki.Leaf
}

// bootDocument renders the boot document of one broker.
func (cs *clusterSpec) bootDocument(node fleet.Node, controllers []fleet.Node) *bootconfig.Document {
	doc := &bootconfig.Document{
		Version:     bootconfig.CurrentVersion,
		ClusterID:   cs.ClusterID,
		ClusterName: cs.Name,
		NodeID:      node.NodeID,
		Rack:        node.AvailabilityZone,
		Listeners:   cs.Listeners,
		Ports: bootconfig.Ports{
			InterBroker: bootconfig.DefaultInterBrokerPort,
			Controller:  bootconfig.DefaultControllerPort,
			Metrics:     bootconfig.DefaultMetricsPort,
		},
		DataVolume: bootconfig.Volume{
			VolumeID:   node.VolumeID,
			DeviceName: fleet.DataDeviceName,
			MountPath:  bootconfig.DefaultMountPath,
			Filesystem: bootconfig.DefaultFilesystem,
		},
		// The broker's group launches an instance with an interface of its
		// own; the boot agent attaches the broker's.
		Attachments: &bootconfig.Attachments{NetworkInterfaceDeviceIndex: fleet.InterfaceDeviceIndex},
		Metrics: bootconfig.Metrics{
			CloudWatch:      true,
			Namespace:       cs.MetricsNamespace,
			Level:           cs.EnhancedMonitoring,
			IntervalSeconds: 60,
		},
	}
	if l := cs.Logging; l != nil {
		doc.Logging = &bootconfig.Logging{}
		if g := logGroupOf(l); g != "" {
			doc.Logging.CloudWatchLogs = &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: g}
		}
		if l.S3 != nil && l.S3.Enabled {
			s3 := *l.S3
			doc.Logging.S3 = &s3
		}
		if fh := firehoseLogsOf(l); fh != nil {
			f := *fh
			doc.Logging.Firehose = &f
		}
	}
	if om := cs.OpenMonitoring; om != nil {
		doc.OpenMonitoring = &bootconfig.OpenMonitoring{JMXExporter: om.JMXExporter, NodeExporter: om.NodeExporter, AllowedCIDRs: slices.Clone(om.AllowedCIDRs)}
		if om.NodeExporter {
			doc.Ports.NodeMetrics = bootconfig.DefaultNodeMetricsPort
		}
	}
	if len(cs.StaticConfig) > 0 {
		doc.BrokerConfig = maps.Clone(cs.StaticConfig)
	}
	doc.InClusterTLS = cs.Security.InCluster
	if cs.CA != nil {
		doc.TLS = &bootconfig.TLS{CertificateAuthorityPEM: cs.CA.CertPEM, ClientCertificateAuthoritiesPEM: cs.Security.clientCABundle()}
	}
	doc.SuperUsers = slices.Clone(cs.SuperUsers)
	for _, c := range controllers {
		doc.Controllers = append(doc.Controllers, bootconfig.Peer{NodeID: c.NodeID, Host: c.PrivateIP, Port: bootconfig.DefaultControllerPort})
	}
	return doc
}

// userData renders and encodes the boot document (fleet.Spec.UserData).
// A broker's TLS key and certificate are made here, each time its document
// is rendered (a new launch template version), and travel only inside the
// KMS envelope.
func (cs *clusterSpec) userData(node fleet.Node, controllers []fleet.Node) ([]byte, error) {
	doc := cs.bootDocument(node, controllers)
	if cs.CA != nil {
		leaf := cs.renewed[node.NodeID]
		if leaf == nil {
			var err error
			leaf, err = cs.CA.Issue(pki.Request{
				Subject:   pki.BrokerSubject(cs.ClusterID),
				Hosts:     brokerHosts(node),
				URIs:      brokerURIs(node.NodeID),
				NotBefore: cs.now,
				Validity:  cs.certificateValidity,
				Server:    true,
				Client:    true,
			})
			if err != nil {
				return nil, fmt.Errorf("issuing the certificate of broker %d: %w", node.NodeID, err)
			}
		}
		secrets := &bootconfig.Secrets{TLSPrivateKeyPEM: leaf.KeyPEM, TLSCertificatePEM: leaf.CertPEM}
		if cs.admin != nil && cs.admin.SCRAM != nil {
			secrets.SCRAMCredentials = []bootconfig.SCRAMCredential{*cs.admin.SCRAM}
		}
		env, err := cs.seal(node.NodeID, secrets)
		if err != nil {
			return nil, fmt.Errorf("sealing the secrets of broker %d: %w", node.NodeID, err)
		}
		doc.Secrets = env
	}
	if cs.sealProvider != nil {
		env, err := cs.sealProvider()
		if err != nil {
			return nil, err
		}
		doc.ProviderSecrets = env
	}
	return doc.Encode()
}

// bootSettingsHash covers the settings every broker's boot document carries
// (listeners, monitoring, the static broker settings, the cluster name): the
// fleet's BootSettingsHash. Image, instance type and profile are the fleet's
// own part of an instance's launch hash. Dynamic settings are not in the
// boot document, so changing one rolls nothing.
func (cs *clusterSpec) bootSettingsHash() string {
	b, _ := json.Marshal(struct {
		Listeners  []bootconfig.Listener
		Config     map[string]string
		Monitoring string
		Namespace  string
		Name       string
		InCluster  bool
		CA         string
		ClientCAs  string
		SuperUsers []string
		LogGroup   string                     `json:",omitempty"`
		Open       *bootconfig.OpenMonitoring `json:",omitempty"`
		LogS3      *bootconfig.S3Logs         `json:",omitempty"`
		LogFH      *bootconfig.FirehoseLogs   `json:",omitempty"`
	}{cs.Listeners, cs.StaticConfig, cs.EnhancedMonitoring, cs.MetricsNamespace, cs.Name,
		cs.Security.InCluster, certificateFingerprint(cs.CA), cs.Security.clientCABundle(), cs.SuperUsers, logGroupOf(cs.Logging),
		cs.OpenMonitoring, s3LogsOf(cs.Logging), firehoseLogsOf(cs.Logging)})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// specFromModel builds the desired cluster from a plan. Subnets and image
// must be known (ModifyPlan and Create resolve them).
func (r *clusterResource) specFromModel(ctx context.Context, m *clusterModel, clusterID string) (*clusterSpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	cs := &clusterSpec{Throttle: throttleOf(m.ReplicationThrottleBPS)}
	cs.ClusterID = clusterID
	cs.Name = m.Name.ValueString()
	cs.ImageID = m.ImageID.ValueString()
	cs.InstanceType = m.InstanceType.ValueString()
	cs.BrokersPerAZ = int(m.BrokersPerAZ.ValueInt64())
	cs.InstanceProfile = ""
	if !m.InstanceProfile.IsNull() && !m.InstanceProfile.IsUnknown() && !r.createdProfile(m.InstanceProfile.ValueString(), clusterID) {
		cs.InstanceProfile = m.InstanceProfile.ValueString()
	}
	cs.MetricsNamespace = m.MetricsNamespace.ValueString()
	cs.EnhancedMonitoring = m.EnhancedMonitoring.ValueString()
	var d diag.Diagnostics
	cs.Logging, d = m.logging(ctx)
	diags.Append(d...)
	cs.LogGroup = logGroupOf(cs.Logging)
	cs.LogObjects = logObjectsOf(cs.Logging)
	cs.LogStream = deliveryStreamARN(cs.Logging, r.data.aws.Partition, r.data.aws.Region, r.data.aws.AccountID)
	cs.OpenMonitoring, cs.MonitoringPorts, cs.MonitoringCIDRs, d = m.openMonitoring(ctx)
	diags.Append(d...)
	cs.Storage, d = m.storageSettings(ctx)
	diags.Append(d...)
	all, d := m.brokerConfig(ctx)
	diags.Append(d...)
	cs.StaticConfig, cs.DynamicConfig = splitBrokerConfig(all)
	cs.SizedConfig = sizedBrokerConfig(all, cs.InstanceType)
	cs.SecurityGroupIDs, d = stringSet(ctx, m.SecurityGroupIDs)
	diags.Append(d...)
	cs.ClientCIDRs, d = stringSet(ctx, m.ClientCIDRBlocks)
	diags.Append(d...)
	own, d := stringMap(ctx, m.Tags)
	diags.Append(d...)
	cs.Tags = mergeTags(r.data.defaultTags, own)
	subnetIDs, d := stringList(ctx, m.SubnetIDs)
	diags.Append(d...)
	if diags.HasError() {
		return nil, diags
	}
	subnets, err := describeSubnets(ctx, r.data.aws.EC2, subnetIDs)
	if err != nil {
		diags.AddError("Reading the cluster's subnets", err.Error())
		return nil, diags
	}
	cs.Subnets = subnets
	cs.Security, d = m.security(ctx)
	diags.Append(d...)
	if len(cs.Security.ClientCAARNs) > 0 {
		pems, err := privateCACertificates(ctx, r.data.aws.ACMPCA, cs.Security.ClientCAARNs, time.Now())
		if err != nil {
			diags.AddAttributeError(path.Root("client_authentication").AtName("tls").AtName("certificate_authority_arns"), "Reading the client CAs from AWS Private CA", err.Error())
			return nil, diags
		}
		cs.Security.ClientCAs = append(cs.Security.ClientCAs, pems...)
	}
	validity, err := m.certificateValidity()
	if err != nil {
		diags.AddAttributeError(path.Root("certificate_validity"), "Invalid certificate validity", err.Error())
		return nil, diags
	}
	cs.certificateValidity = validity
	cs.Listeners = cs.Security.listeners()
	cs.ClientPorts = clientPorts(cs.Listeners)
	cs.IAMAuthorization = cs.Security.IAM
	cs.BootSettingsHash = cs.bootSettingsHash()
	cs.UserData = cs.userData
	return cs, diags
}

// createdProfile reports whether a profile name is the one the provider
// creates for the cluster (so it is not a user-supplied profile).
func (r *clusterResource) createdProfile(name, clusterID string) bool {
	return clusterID != "" && name == "tributary-"+clusterID
}

// defaultAZCount is how many AZs a cluster without subnet_ids spans.
const defaultAZCount = 3

// describeSubnets returns the subnets in the given order, or the default
// VPC's default subnets in the first three AZs (sorted by AZ name) when ids
// is empty.
func describeSubnets(ctx context.Context, client *ec2.Client, ids []string) ([]fleet.Subnet, error) {
	in := &ec2.DescribeSubnetsInput{}
	if len(ids) == 0 {
		vpcs, err := client.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{
			Filters: []ec2types.Filter{{Name: aws.String("is-default"), Values: []string{"true"}}},
		})
		if err != nil {
			return nil, fmt.Errorf("looking for the default VPC: %w", err)
		}
		if len(vpcs.Vpcs) == 0 {
			return nil, fmt.Errorf("no subnet_ids given and the region has no default VPC: set subnet_ids to one subnet in each of three Availability Zones")
		}
		in.Filters = []ec2types.Filter{
			{Name: aws.String("vpc-id"), Values: []string{aws.ToString(vpcs.Vpcs[0].VpcId)}},
			{Name: aws.String("default-for-az"), Values: []string{"true"}},
		}
	} else {
		in.SubnetIds = ids
	}
	out, err := client.DescribeSubnets(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("describing subnets: %w", err)
	}
	byID := map[string]fleet.Subnet{}
	var subnets []fleet.Subnet
	for _, s := range out.Subnets {
		sn := fleet.Subnet{ID: aws.ToString(s.SubnetId), AvailabilityZone: aws.ToString(s.AvailabilityZone), VPCID: aws.ToString(s.VpcId)}
		byID[sn.ID] = sn
		subnets = append(subnets, sn)
	}
	if len(ids) > 0 {
		subnets = subnets[:0]
		for _, id := range ids {
			sn, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("subnet %s not found", id)
			}
			subnets = append(subnets, sn)
		}
	} else {
		// The default VPC has a subnet in every AZ of the region (six in
		// us-east-1); a default cluster uses the first three AZs.
		slices.SortFunc(subnets, func(a, b fleet.Subnet) int { return strings.Compare(a.AvailabilityZone, b.AvailabilityZone) })
		subnets = subnets[:min(len(subnets), defaultAZCount)]
	}
	azs := map[string]bool{}
	for _, s := range subnets {
		if azs[s.AvailabilityZone] {
			return nil, fmt.Errorf("subnets must be in different Availability Zones; %s has more than one", s.AvailabilityZone)
		}
		azs[s.AvailabilityZone] = true
	}
	if len(subnets) < 3 {
		return nil, fmt.Errorf("a cluster needs subnets in at least three Availability Zones, got %d", len(subnets))
	}
	return subnets, nil
}

// brokerImage is a registered broker image.
type brokerImage struct {
	ID           string
	Name         string
	Version      string
	Architecture string
	CreationDate string
}

// findBrokerImages lists the account's broker images of a version, newest first.
func findBrokerImages(ctx context.Context, client *ec2.Client, version, arch string) ([]brokerImage, error) {
	filters := []ec2types.Filter{
		{Name: aws.String("tag:" + fleet.TagVersion), Values: []string{version}},
		{Name: aws.String("tag:" + fleet.TagComponent), Values: []string{"broker"}},
		{Name: aws.String("state"), Values: []string{"available"}},
	}
	if arch != "" {
		filters = append(filters, ec2types.Filter{Name: aws.String("architecture"), Values: []string{arch}})
	}
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("describing broker images of version %s: %w", version, err)
	}
	var imgs []brokerImage
	for _, im := range out.Images {
		imgs = append(imgs, imageFrom(im))
	}
	slices.SortFunc(imgs, func(a, b brokerImage) int { return strings.Compare(b.CreationDate, a.CreationDate) })
	return imgs, nil
}

func imageFrom(im ec2types.Image) brokerImage {
	v := ""
	for _, t := range im.Tags {
		if aws.ToString(t.Key) == fleet.TagVersion {
			v = aws.ToString(t.Value)
		}
	}
	return brokerImage{
		ID: aws.ToString(im.ImageId), Name: aws.ToString(im.Name), Version: v,
		Architecture: string(im.Architecture), CreationDate: aws.ToString(im.CreationDate),
	}
}

// describeImage returns one image by id.
func describeImage(ctx context.Context, client *ec2.Client, id string) (*brokerImage, error) {
	out, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil {
		return nil, fmt.Errorf("describing image %s: %w", id, err)
	}
	if len(out.Images) == 0 {
		return nil, fmt.Errorf("image %s not found", id)
	}
	im := imageFrom(out.Images[0])
	return &im, nil
}

// instanceArchitecture guesses an instance type's CPU architecture from its
// family name: Graviton families carry a "g" after the generation digit
// (m7g, c7gn, t4g, r8gd); everything else is x86_64.
func instanceArchitecture(instanceType string) string {
	family, _, _ := strings.Cut(instanceType, ".")
	i := strings.IndexAny(family, "0123456789")
	if i < 0 {
		return "x86_64"
	}
	if strings.Contains(strings.TrimLeft(family[i:], "0123456789"), "g") {
		return "arm64"
	}
	return "x86_64"
}

// resolveImage picks the newest image of the version for the instance
// type's architecture.
func resolveImage(ctx context.Context, client *ec2.Client, version, instanceType string) (*brokerImage, error) {
	arch := instanceArchitecture(instanceType)
	imgs, err := findBrokerImages(ctx, client, version, arch)
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		all, err := findBrokerImages(ctx, client, version, "")
		if err != nil {
			return nil, err
		}
		if len(all) > 0 {
			return nil, fmt.Errorf("broker image version %s exists only for %s, not for %s (instance type %s)", version, all[0].Architecture, arch, instanceType)
		}
		return nil, fmt.Errorf("no broker image of version %s: build one with `make ami` (AWS) or register one with `tributary-localcloud register-image --version %s` (local cloud)", version, version)
	}
	return &imgs[0], nil
}
