package ec2

import "time"

// state is everything EC2 knows; it is saved as one JSON document after every change.
type state struct {
	// LoopbackOctet is the second octet of every private IP (127.<octet>.<subnet>.<host>),
	// fixed when the state is created so addresses survive restarts.
	LoopbackOctet int `json:"loopbackOctet"`
	// NextSubnetIndex is the third octet given to the next subnet.
	NextSubnetIndex int `json:"nextSubnetIndex"`

	VPCs              map[string]*vpc                `json:"vpcs"`
	Subnets           map[string]*subnet             `json:"subnets"`
	SecurityGroups    map[string]*securityGroup      `json:"securityGroups"`
	NetworkInterfaces map[string]*networkInterface   `json:"networkInterfaces"`
	Volumes           map[string]*volume             `json:"volumes"`
	Modifications     map[string]*volumeModification `json:"volumeModifications"` // by volume id
	Images            map[string]*image              `json:"images"`
	Instances         map[string]*instance           `json:"instances"`
	LaunchTemplates   map[string]*launchTemplate     `json:"launchTemplates"`
	// Idempotency maps "<Action>/<ClientToken>" to what the first call did.
	Idempotency map[string]*idempotentCall `json:"idempotency"`
	// DownZones are the Availability Zones taken down by the fault API.
	DownZones map[string]bool `json:"downZones"`
}

type idempotentCall struct {
	ParamsHash string    `json:"paramsHash"`
	ResultID   string    `json:"resultId"` // reservation, volume or network interface id
	Created    time.Time `json:"created"`
}

type tags map[string]string

type vpc struct {
	ID        string `json:"id"`
	CIDR      string `json:"cidr"`
	IsDefault bool   `json:"isDefault"`
	Tags      tags   `json:"tags"`
}

type subnet struct {
	ID           string `json:"id"`
	VPCID        string `json:"vpcId"`
	CIDR         string `json:"cidr"`
	AZ           string `json:"az"`
	DefaultForAZ bool   `json:"defaultForAz"`
	// Index is the third octet of the subnet's loopback block 127.<octet>.<index>.0/24.
	Index int  `json:"index"`
	Tags  tags `json:"tags"`
}

type securityGroup struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	VPCID       string   `json:"vpcId"`
	Ingress     []sgRule `json:"ingress"`
	Egress      []sgRule `json:"egress"`
	Tags        tags     `json:"tags"`
}

// sgRule is one rule: a protocol and port range for one peer (a CIDR or a security group).
type sgRule struct {
	ID          string `json:"id"`       // sgr-...
	Protocol    string `json:"protocol"` // "-1", "tcp", "udp", "icmp" or a number
	FromPort    int    `json:"fromPort"`
	ToPort      int    `json:"toPort"`
	CIDR        string `json:"cidr,omitempty"`
	CIDRv6      string `json:"cidrv6,omitempty"`
	GroupID     string `json:"groupId,omitempty"`
	Description string `json:"description,omitempty"`
}

type networkInterface struct {
	ID              string         `json:"id"`
	SubnetID        string         `json:"subnetId"`
	Description     string         `json:"description"`
	PrivateIP       string         `json:"privateIp"`
	MAC             string         `json:"mac"`
	Groups          []string       `json:"groups"`
	SourceDestCheck bool           `json:"sourceDestCheck"`
	Tags            tags           `json:"tags"`
	Attachment      *eniAttachment `json:"attachment,omitempty"`
}

type eniAttachment struct {
	ID                  string    `json:"id"` // eni-attach-...
	InstanceID          string    `json:"instanceId"`
	DeviceIndex         int       `json:"deviceIndex"`
	Status              string    `json:"status"` // attaching | attached | detaching
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
}

type volume struct {
	ID         string         `json:"id"`
	AZ         string         `json:"az"`
	Size       int            `json:"size"` // GiB
	Type       string         `json:"type"`
	IOPS       int            `json:"iops,omitempty"`
	Throughput int            `json:"throughput,omitempty"`
	Encrypted  bool           `json:"encrypted"`
	KMSKeyID   string         `json:"kmsKeyId,omitempty"` // key ARN
	State      string         `json:"state"`              // creating | available | in-use | deleting | deleted | error
	Created    time.Time      `json:"created"`
	Tags       tags           `json:"tags"`
	Attachment *volAttachment `json:"attachment,omitempty"`
	// Sized marks a volume whose directory is a loop-mounted XFS filesystem of its size
	// (Options.SizedVolumes).
	Sized bool `json:"sized,omitempty"`
}

type volAttachment struct {
	InstanceID          string    `json:"instanceId"`
	Device              string    `json:"device"`
	State               string    `json:"state"` // attaching | attached | detaching
	AttachTime          time.Time `json:"attachTime"`
	DeleteOnTermination bool      `json:"deleteOnTermination"`
}

type volumeModification struct {
	VolumeID           string    `json:"volumeId"`
	State              string    `json:"state"` // modifying | optimizing | completed | failed
	Progress           int       `json:"progress"`
	StartTime          time.Time `json:"startTime"`
	EndTime            time.Time `json:"endTime,omitzero"`
	OriginalSize       int       `json:"originalSize"`
	OriginalType       string    `json:"originalType"`
	OriginalIOPS       int       `json:"originalIops"`
	OriginalThroughput int       `json:"originalThroughput"`
	TargetSize         int       `json:"targetSize"`
	TargetType         string    `json:"targetType"`
	TargetIOPS         int       `json:"targetIops"`
	TargetThroughput   int       `json:"targetThroughput"`
}

type image struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Description  string    `json:"description"`
	Architecture string    `json:"architecture"` // x86_64 | arm64
	OwnerID      string    `json:"ownerId"`
	Created      time.Time `json:"created"`
	// Binary is the program an instance of this image runs (a copy owned by the emulator);
	// empty for images without a program (the instance then runs without a process).
	Binary     string   `json:"binary,omitempty"`
	BinarySHA  string   `json:"binarySha256,omitempty"`
	Args       []string `json:"args,omitempty"`
	RootDevice string   `json:"rootDevice"`
	RootSize   int      `json:"rootSize"`
	Tags       tags     `json:"tags"`
}

// Instance states and their EC2 codes.
const (
	statePending      = "pending"
	stateRunning      = "running"
	stateShuttingDown = "shutting-down"
	stateTerminated   = "terminated"
	stateStopping     = "stopping"
	stateStopped      = "stopped"
)

var stateCodes = map[string]int{statePending: 0, stateRunning: 16, stateShuttingDown: 32, stateTerminated: 48, stateStopping: 64, stateStopped: 80}

type instance struct {
	ID            string    `json:"id"`
	ReservationID string    `json:"reservationId"`
	ImageID       string    `json:"imageId"`
	InstanceType  string    `json:"instanceType"`
	Architecture  string    `json:"architecture"`
	KeyName       string    `json:"keyName,omitempty"`
	LaunchIndex   int       `json:"launchIndex"`
	LaunchTime    time.Time `json:"launchTime"`
	ClientToken   string    `json:"clientToken,omitempty"`
	AZ            string    `json:"az"`
	SubnetID      string    `json:"subnetId"`
	VPCID         string    `json:"vpcId"`
	UserData      string    `json:"userData,omitempty"` // base64, as given
	State         string    `json:"state"`
	// StateReason is EC2's machine-readable reason for the last state change.
	StateReasonCode    string    `json:"stateReasonCode,omitempty"`
	StateReasonMessage string    `json:"stateReasonMessage,omitempty"`
	TransitionReason   string    `json:"transitionReason,omitempty"` // StateTransitionReason
	TerminatedAt       time.Time `json:"terminatedAt,omitzero"`

	InstanceProfileARN string `json:"instanceProfileArn,omitempty"`
	InstanceProfileID  string `json:"instanceProfileId,omitempty"`
	RoleName           string `json:"roleName,omitempty"`
	RoleARN            string `json:"roleArn,omitempty"`
	RoleID             string `json:"roleId,omitempty"`

	HTTPTokens            string `json:"httpTokens"`   // optional | required
	HTTPEndpoint          string `json:"httpEndpoint"` // enabled | disabled
	HTTPHopLimit          int    `json:"httpHopLimit"`
	MetadataTags          string `json:"metadataTags"`     // enabled | disabled
	ShutdownBehavior      string `json:"shutdownBehavior"` // stop | terminate
	DisableAPITermination bool   `json:"disableApiTermination,omitempty"`
	DisableAPIStop        bool   `json:"disableApiStop,omitempty"`
	EBSOptimized          bool   `json:"ebsOptimized,omitempty"`
	Monitoring            bool   `json:"monitoring,omitempty"`

	RootDevice string `json:"rootDevice"`
	Tags       tags   `json:"tags"`
	// Program and Args are what the instance runs, fixed at launch from its image (an instance
	// keeps running after its image is deregistered, as on AWS). Empty: no process.
	Program string   `json:"program,omitempty"`
	Args    []string `json:"args,omitempty"`
	// HasRun is set once the instance first reached running: a later boot failure stops it
	// instead of terminating it.
	HasRun bool `json:"hasRun,omitempty"`
	// DownedByZone is set when an AZ outage stopped the instance; az-up starts it again.
	DownedByZone bool `json:"downedByZone,omitempty"`
	// Restarts counts process crashes restarted in a row (reset when the process stays up).
	Restarts int `json:"restarts,omitempty"`
}
