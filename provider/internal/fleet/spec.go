// Package fleet builds, observes, changes and removes the AWS objects of a
// Tributary cluster: per broker a persistent ENI, a persistent encrypted EBS
// volume, a launch template and an Auto Scaling group of one whose instance
// attaches both at boot; per cluster a security group, an optional KMS key
// and an optional instance role and profile.
//
// Healing is AWS's: a broker's group replaces a terminated, stopped or
// failing instance by itself, with nobody running Terraform, and the new
// instance's boot agent attaches the broker's ENI (as a secondary interface:
// an Auto Scaling group cannot launch on an existing interface) and volume,
// found by their tags. Rolling changes go through the templates: a new
// version, then the brokers replaced one at a time through their groups.
//
// Every object carries the tag TagClusterID, so a cluster can always be found
// again from its id alone: a create that failed midway is completed by the
// next run of Ensure, and Delete finds everything to remove, even objects the
// Terraform state never heard of. Brokers carry TagNodeID too; the broker's
// identity is its ENI and volume, never its instance, so a broker whose
// instance vanished comes back with the same address and data.
package fleet

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/bootconfig"
)

// Tags the provider puts on every AWS object it creates.
const (
	// TagClusterID and TagNodeID are how the boot agent finds the broker's
	// own interface and volume (bootconfig's tags).
	TagClusterID   = bootconfig.TagClusterID
	TagClusterName = "tributary:cluster-name"
	TagNodeID      = bootconfig.TagNodeID
	// TagComponent says what an object is for, for people reading the console.
	TagComponent = "tributary:component"
	// TagVersion and TagComponent are the broker image's tags (seam S4).
	TagVersion = "tributary:version"
	// TagAutoscalingTarget and TagAutoscalingMaxSize on a volume turn on
	// storage autoscaling; the broker's volume companion reads them.
	TagAutoscalingTarget  = "tributary:autoscaling-target-utilization"
	TagAutoscalingMaxSize = "tributary:autoscaling-max-volume-size"
)

// DataDeviceName is the device name the data volume is attached as.
const DataDeviceName = "/dev/sdf"

// InterfaceDeviceIndex is where an instance attaches its broker's ENI: the
// first secondary interface, beside the primary one its launch created.
const InterfaceDeviceIndex = 1

// Subnet is one of the cluster's subnets; the cluster has one per AZ.
type Subnet struct {
	ID               string
	AvailabilityZone string
	VPCID            string
}

// Storage is the per-broker data volume.
type Storage struct {
	SizeGiB    int32
	VolumeType string
	// IOPS and ThroughputMiBps are 0 when the volume type's default applies.
	IOPS            int32
	ThroughputMiBps int32
	// KMSKeyARN is the key to encrypt volumes with; empty means the cluster
	// creates (and later deletes) its own customer-managed key.
	KMSKeyARN string
	// Autoscaling, when set, lets the brokers grow their own volumes.
	Autoscaling *StorageAutoscaling
}

// StorageAutoscaling is MSK's storage autoscaling: a broker whose volume is
// used at or past TargetUtilization percent grows it (by the larger of 10
// GiB and 10%), up to MaxSizeGiB.
type StorageAutoscaling struct {
	TargetUtilization int32
	MaxSizeGiB        int32
}

// Spec is the desired cluster.
type Spec struct {
	ClusterID    string
	Name         string
	ImageID      string
	InstanceType string
	BrokersPerAZ int
	// Subnets, in the order that assigns AZs to node ids: broker i (from 0)
	// lives in Subnets[i % len(Subnets)] and has node id i+1.
	Subnets []Subnet
	// SecurityGroupIDs are attached to every broker ENI besides the cluster's own.
	SecurityGroupIDs []string
	// ClientCIDRs may reach the client ports.
	ClientCIDRs []string
	ClientPorts []int32
	// MonitoringCIDRs may reach MonitoringPorts (open monitoring's
	// Prometheus endpoints).
	MonitoringCIDRs []string
	MonitoringPorts []int32
	Storage         Storage
	// InstanceProfile is the name of an existing profile; empty means the
	// cluster creates a least-privilege role and profile.
	InstanceProfile string
	// IAMAuthorization lets a created broker role ask IAM about clients'
	// policies (iam:SimulatePrincipalPolicy, iam:GetRole): the brokers
	// authorize IAM principals by their kafka-cluster:* permissions.
	IAMAuthorization bool
	// Tags go on every object, under the provider's own tributary:* tags.
	Tags map[string]string
	// UserData renders the boot document of one broker, given every
	// broker's address; the fleet does not know the document's shape.
	UserData func(node Node, controllers []Node) ([]byte, error)
	// BootSettingsHash is a hash of the settings every broker's boot
	// document carries (listeners, broker settings, monitoring), computed by
	// the caller, which knows the document; a change rolls the brokers.
	BootSettingsHash string
	// MetricsNamespace is the CloudWatch namespace the created role may
	// write to.
	MetricsNamespace string
	// LogGroup is the CloudWatch Logs group the created role may create
	// and write to; empty, the role may not write logs.
	LogGroup string
	// LogObjects is the S3 object ARN pattern (arn:aws:s3:::<bucket>/<prefix>/*)
	// the created role may put log objects under; empty, none.
	LogObjects string
	// LogStream is the ARN of the Firehose delivery stream the created
	// role may put log records to; empty, none.
	LogStream string
	// Reissue names brokers whose boot documents are rendered again, in a
	// new launch template version that Roll then launches, although their
	// launch settings are unchanged: what the documents carry besides the
	// settings (the broker's certificate) is due for renewal.
	Reissue map[int32]bool
	// Reseal names brokers whose boot documents are rendered again, in a
	// new launch template version their groups launch from then on,
	// although their launch settings are unchanged, without replacing the
	// instance that runs: what changes is only what a running broker never
	// reads again after its boot (the secrets sealed for the provider,
	// which a refresh reads from the version a group launches; the
	// certificate a renewal in place delivered, which the broker serves
	// already). The
	// version names the one it reseals (Broker.GroupReseals), so NeedsRoll
	// does not count the instance launched from that one as out of date. A
	// broker that rolls anyway (or has no running instance of its group)
	// gets an ordinary new version.
	Reseal map[int32]bool
}

// BrokerCount is the number of brokers the spec asks for.
func (s *Spec) BrokerCount() int { return s.BrokersPerAZ * len(s.Subnets) }

// Placement returns the subnet of the broker with the given node id.
func (s *Spec) Placement(nodeID int32) Subnet {
	return s.Subnets[int(nodeID-1)%len(s.Subnets)]
}

// ControllerCount is how many brokers vote in the metadata quorum: the first
// broker of each AZ, at most three.
func (s *Spec) ControllerCount() int {
	return min(3, len(s.Subnets), s.BrokerCount())
}

// Validate reports spec mistakes that would otherwise surface as AWS errors.
func (s *Spec) Validate() error {
	switch {
	case s.ClusterID == "":
		return fmt.Errorf("cluster id is empty")
	case len(s.Subnets) == 0:
		return fmt.Errorf("no subnets")
	case s.BrokersPerAZ < 1:
		return fmt.Errorf("brokers_per_az must be at least 1, got %d", s.BrokersPerAZ)
	case s.ImageID == "":
		return fmt.Errorf("no broker image")
	case s.UserData == nil:
		return fmt.Errorf("no user data renderer")
	}
	seen := map[string]bool{}
	for _, sn := range s.Subnets {
		if seen[sn.AvailabilityZone] {
			return fmt.Errorf("two subnets in %s: give one subnet per Availability Zone", sn.AvailabilityZone)
		}
		seen[sn.AvailabilityZone] = true
		if sn.VPCID != s.Subnets[0].VPCID {
			return fmt.Errorf("subnets %s and %s are in different VPCs", s.Subnets[0].ID, sn.ID)
		}
	}
	return nil
}

// Node is one broker as the boot document sees it.
type Node struct {
	NodeID           int32
	AvailabilityZone string
	PrivateIP        string
	// PrivateDNSName is EC2's private DNS name of the interface
	// (ip-10-0-1-5.ec2.internal); empty where EC2 gives none.
	PrivateDNSName string
	VolumeID       string
}

// LaunchSettings are what a launch template version launches.
type LaunchSettings struct {
	ImageID, InstanceType string
	InstanceProfile       string // name or ARN, as the template holds it
	UserData              []byte // decoded
}

// Broker is the observed state of one broker.
type Broker struct {
	NodeID           int32
	AvailabilityZone string
	SubnetID         string
	ENIID            string
	PrivateIP        string
	PrivateDNSName   string
	SecurityGroupIDs []string
	VolumeID         string
	VolumeSizeGiB    int32
	VolumeType       string
	VolumeIOPS       int32
	VolumeThroughput int32
	VolumeKMSKeyID   string
	VolumeEncrypted  bool
	// VolumeTags are the volume's storage autoscaling tags.
	VolumeTags map[string]string
	// Instance fields are empty when the broker has no live instance.
	InstanceID      string
	InstanceState   string
	InstanceType    string
	ImageID         string
	InstanceProfile string // ARN of the instance's profile
	// VolumeAttached reports whether the volume is attached to InstanceID.
	VolumeAttached bool
	// ENIAttached reports whether the ENI is attached to InstanceID.
	ENIAttached bool

	// The broker's launch template: id, latest version and that version's
	// launch hash (Spec.instanceLaunchHash, in its description).
	TemplateID         string
	TemplateLatest     int64
	TemplateLatestHash string
	// TemplateLatestReseals is the version the latest version reseals
	// (Spec.Reseal), "" when it is an ordinary version.
	TemplateLatestReseals string
	// The broker's Auto Scaling group ("" when it has none: an instance
	// launched by an earlier provider, or a broker whose group is gone).
	GroupName    string
	GroupMin     int32
	GroupMax     int32
	GroupDesired int32
	GroupSubnets string
	// GroupVersion is the template version the group launches, and Launch
	// what that version holds.
	GroupVersion string
	Launch       *LaunchSettings
	// GroupReseals is the version GroupVersion reseals: the same launch
	// with the boot document rendered again (Spec.Reseal); "" when it is
	// an ordinary version.
	GroupReseals string
	// InstanceVersion is the template version the group launched the
	// instance from ("" for an instance of no group).
	InstanceVersion string
}

// NeedsRoll reports whether the broker's live instance must be replaced: it
// is of no group (launched by an earlier provider: it moves into its
// group), or its group launches another template version now, other than
// one that only reseals the instance's version (Spec.Reseal).
func (b *Broker) NeedsRoll() bool {
	return b.HasLiveInstance() && (b.GroupName == "" ||
		b.InstanceVersion != b.GroupVersion && (b.GroupReseals == "" || b.GroupReseals != b.InstanceVersion))
}

// Legacy reports whether the broker runs on an instance of no Auto Scaling
// group, launched on its interface by an earlier provider.
func (b *Broker) Legacy() bool { return b.GroupName == "" && b.HasLiveInstance() }

// HasLiveInstance reports whether the broker has an instance that is not
// shutting down or gone.
func (b *Broker) HasLiveInstance() bool {
	switch b.InstanceState {
	case "pending", "running", "stopping", "stopped":
		return b.InstanceID != ""
	}
	return false
}

// Observed is what exists in AWS for a cluster id.
type Observed struct {
	ClusterID string
	Name      string
	VPCID     string
	// SecurityGroupID is the cluster's own group; empty when not found.
	SecurityGroupID string
	ClientCIDRs     []string
	// MonitoringCIDRs may reach the open monitoring ports.
	MonitoringCIDRs []string
	// KeyARN is the cluster-created KMS key, empty when none.
	KeyARN string
	// RoleNames and ProfileNames are the roles and instance profiles the
	// cluster created (each broker's own, and the one all brokers shared
	// in clusters made before brokers had their own), sorted.
	RoleNames    []string
	ProfileNames []string
	Brokers      []Broker // sorted by node id
	// Orphans are objects tagged with the cluster but not part of a broker
	// (e.g. a second instance for the same node after a crashed create).
	OrphanInstanceIDs []string
	// Groups and Templates are every Auto Scaling group and launch template
	// tagged with the cluster (names and ids), brokers' or not.
	Groups    []string
	Templates []string
	Tags      map[string]string
}

// Broker returns the observed broker with the node id, if any.
func (o *Observed) Broker(nodeID int32) (*Broker, bool) {
	i, ok := slices.BinarySearchFunc(o.Brokers, nodeID, func(b Broker, id int32) int { return int(b.NodeID - id) })
	if !ok {
		return nil, false
	}
	return &o.Brokers[i], true
}

// Empty reports whether nothing of the cluster exists.
func (o *Observed) Empty() bool {
	return o.SecurityGroupID == "" && o.KeyARN == "" && len(o.RoleNames) == 0 && len(o.ProfileNames) == 0 &&
		len(o.Brokers) == 0 && len(o.OrphanInstanceIDs) == 0 && len(o.Groups) == 0 && len(o.Templates) == 0
}

func nodeIDTag(id int32) string { return strconv.Itoa(int(id)) }

// roleName is the name stem of the roles and instance profiles a cluster
// creates (ProfileStem), and the name of the one role and profile that all
// brokers of a cluster made before brokers had their own shared.
func roleName(clusterID string) string { return "tributary-" + clusterID }

// ProfileStem is what the names of a cluster's created roles and profiles
// start with.
func ProfileStem(clusterID string) string { return roleName(clusterID) }

// BrokerRoleName is the name of a broker's own role and instance profile:
// its policy lets it decrypt only its own node's secrets.
func BrokerRoleName(clusterID string, nodeID int32) string {
	return fmt.Sprintf("%s-broker-%d", roleName(clusterID), nodeID)
}

// ownsRole reports whether a role or profile name is one the cluster
// created: a broker's own, or the shared one of an older cluster.
func ownsRole(clusterID, name string) bool {
	rest, ok := strings.CutPrefix(name, roleName(clusterID))
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "-broker-")
	id, err := strconv.ParseInt(n, 10, 32)
	return ok && err == nil && id > 0 && strconv.FormatInt(id, 10) == n
}

// OwnsProfile reports whether a role or profile name is one the provider
// created for the cluster.
func OwnsProfile(clusterID, name string) bool { return ownsRole(clusterID, name) }

// SharedProfile reports whether a profile (name or ARN) is the one all
// brokers of an older cluster shared, which let each decrypt the others'
// secrets.
func SharedProfile(clusterID, profile string) bool {
	return profile[strings.LastIndex(profile, "/")+1:] == roleName(clusterID)
}

// GroupName is the name of a broker's Auto Scaling group and of its launch
// template.
func GroupName(clusterID string, nodeID int32) string {
	return fmt.Sprintf("tributary-%s-broker-%d", clusterID, nodeID)
}

// KeyAlias is the alias of the KMS key a cluster creates.
func KeyAlias(clusterID string) string { return "alias/tributary/" + clusterID }
