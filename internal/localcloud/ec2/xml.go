package ec2

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// The XML shapes EC2 answers with (API version 2016-11-15). Element names follow the EC2
// service model's locationName, which both the Go SDK and botocore decode.

const ec2XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

func ec2Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// meta is embedded in every output body: EC2 puts requestId first inside <ActionResponse>.
type meta struct {
	RequestID string `xml:"requestId"`
}

func (m *meta) setRequestID(id string) { m.RequestID = id }

type output interface{ setRequestID(string) }

// respond encodes body (a pointer to a struct embedding meta, with the output's members) as
// <ActionResponse xmlns="...">.
func respond(req *awsapi.Request, body output) (*awsapi.Response, error) {
	body.setRequestID(req.RequestID)
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	start := xml.StartElement{Name: xml.Name{Local: req.Action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: ec2XMLNS}}}
	if err := xml.NewEncoder(&buf).EncodeElement(body, start); err != nil {
		return nil, fmt.Errorf("encoding %s response: %w", req.Action, err)
	}
	return &awsapi.Response{Header: http.Header{"Content-Type": {"text/xml;charset=UTF-8"}}, Body: buf.Bytes()}, nil
}

// returnTrue is the body of calls that answer <return>true</return>.
type returnTrue struct {
	meta
	Return bool `xml:"return"`
}

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagItems(t tags) []xTag {
	keys := sortedKeys(t)
	out := make([]xTag, 0, len(keys))
	for _, k := range keys {
		out = append(out, xTag{Key: k, Value: t[k]})
	}
	return out
}

type xGroup struct {
	GroupID   string `xml:"groupId"`
	GroupName string `xml:"groupName"`
}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xVPC struct {
	VPCID           string `xml:"vpcId"`
	OwnerID         string `xml:"ownerId"`
	State           string `xml:"state"`
	CIDRBlock       string `xml:"cidrBlock"`
	CIDRAssociation []struct {
		AssociationID string `xml:"associationId"`
		CIDRBlock     string `xml:"cidrBlock"`
		State         string `xml:"cidrBlockState>state"`
	} `xml:"cidrBlockAssociationSet>item"`
	DHCPOptionsID   string `xml:"dhcpOptionsId"`
	InstanceTenancy string `xml:"instanceTenancy"`
	IsDefault       bool   `xml:"isDefault"`
	Tags            []xTag `xml:"tagSet>item,omitempty"`
}

type xSubnet struct {
	SubnetID                string `xml:"subnetId"`
	SubnetARN               string `xml:"subnetArn"`
	State                   string `xml:"state"`
	OwnerID                 string `xml:"ownerId"`
	VPCID                   string `xml:"vpcId"`
	CIDRBlock               string `xml:"cidrBlock"`
	AvailableIPAddressCount int    `xml:"availableIpAddressCount"`
	AvailabilityZone        string `xml:"availabilityZone"`
	AvailabilityZoneID      string `xml:"availabilityZoneId"`
	DefaultForAZ            bool   `xml:"defaultForAz"`
	MapPublicIPOnLaunch     bool   `xml:"mapPublicIpOnLaunch"`
	AssignIPv6OnCreation    bool   `xml:"assignIpv6AddressOnCreation"`
	Tags                    []xTag `xml:"tagSet>item,omitempty"`
}

type xIPRange struct {
	CIDRIP      string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type xIPv6Range struct {
	CIDRIPv6    string `xml:"cidrIpv6"`
	Description string `xml:"description,omitempty"`
}

type xGroupPair struct {
	UserID      string `xml:"userId"`
	GroupID     string `xml:"groupId"`
	Description string `xml:"description,omitempty"`
}

type xIPPermission struct {
	IPProtocol string            `xml:"ipProtocol"`
	FromPort   *int              `xml:"fromPort,omitempty"`
	ToPort     *int              `xml:"toPort,omitempty"`
	Groups     items[xGroupPair] `xml:"groups"`
	IPRanges   items[xIPRange]   `xml:"ipRanges"`
	IPv6Ranges items[xIPv6Range] `xml:"ipv6Ranges"`
}

type xSecurityGroup struct {
	OwnerID          string               `xml:"ownerId"`
	GroupID          string               `xml:"groupId"`
	GroupName        string               `xml:"groupName"`
	GroupDescription string               `xml:"groupDescription"`
	VPCID            string               `xml:"vpcId"`
	SecurityGroupARN string               `xml:"securityGroupArn"`
	IPPermissions    items[xIPPermission] `xml:"ipPermissions"`
	IPPermissionsEg  items[xIPPermission] `xml:"ipPermissionsEgress"`
	Tags             []xTag               `xml:"tagSet>item,omitempty"`
}

type xSecurityGroupRule struct {
	SecurityGroupRuleID string `xml:"securityGroupRuleId"`
	GroupID             string `xml:"groupId"`
	GroupOwnerID        string `xml:"groupOwnerId"`
	IsEgress            bool   `xml:"isEgress"`
	IPProtocol          string `xml:"ipProtocol"`
	FromPort            int    `xml:"fromPort"`
	ToPort              int    `xml:"toPort"`
	CIDRIPv4            string `xml:"cidrIpv4,omitempty"`
	CIDRIPv6            string `xml:"cidrIpv6,omitempty"`
	ReferencedGroup     *struct {
		GroupID string `xml:"groupId"`
		UserID  string `xml:"userId"`
	} `xml:"referencedGroupInfo,omitempty"`
	Description string `xml:"description,omitempty"`
	ARN         string `xml:"securityGroupRuleArn"`
	Tags        []xTag `xml:"tagSet>item,omitempty"`
}

type xPrivateIP struct {
	PrivateIPAddress string `xml:"privateIpAddress"`
	PrivateDNSName   string `xml:"privateDnsName"`
	Primary          bool   `xml:"primary"`
}

type xENIAttachment struct {
	AttachmentID        string `xml:"attachmentId"`
	InstanceID          string `xml:"instanceId,omitempty"`
	InstanceOwnerID     string `xml:"instanceOwnerId,omitempty"`
	DeviceIndex         int    `xml:"deviceIndex"`
	NetworkCardIndex    int    `xml:"networkCardIndex"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xNetworkInterface struct {
	NetworkInterfaceID string          `xml:"networkInterfaceId"`
	SubnetID           string          `xml:"subnetId"`
	VPCID              string          `xml:"vpcId"`
	AvailabilityZone   string          `xml:"availabilityZone"`
	AvailabilityZoneID string          `xml:"availabilityZoneId"`
	Description        string          `xml:"description"`
	OwnerID            string          `xml:"ownerId"`
	RequesterManaged   bool            `xml:"requesterManaged"`
	Status             string          `xml:"status"`
	MACAddress         string          `xml:"macAddress"`
	PrivateIPAddress   string          `xml:"privateIpAddress"`
	PrivateDNSName     string          `xml:"privateDnsName"`
	SourceDestCheck    bool            `xml:"sourceDestCheck"`
	InterfaceType      string          `xml:"interfaceType"`
	Groups             []xGroup        `xml:"groupSet>item"`
	Attachment         *xENIAttachment `xml:"attachment,omitempty"`
	PrivateIPs         []xPrivateIP    `xml:"privateIpAddressesSet>item"`
	Tags               []xTag          `xml:"tagSet>item,omitempty"`
}

type xVolumeAttachment struct {
	VolumeID            string `xml:"volumeId"`
	InstanceID          string `xml:"instanceId"`
	Device              string `xml:"device"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xVolume struct {
	VolumeID           string                   `xml:"volumeId"`
	Size               int                      `xml:"size"`
	SnapshotID         string                   `xml:"snapshotId"`
	AvailabilityZone   string                   `xml:"availabilityZone"`
	AvailabilityZoneID string                   `xml:"availabilityZoneId"`
	Status             string                   `xml:"status"`
	CreateTime         string                   `xml:"createTime"`
	Attachments        items[xVolumeAttachment] `xml:"attachmentSet"`
	VolumeType         string                   `xml:"volumeType"`
	IOPS               int                      `xml:"iops,omitempty"`
	Throughput         int                      `xml:"throughput,omitempty"`
	Encrypted          bool                     `xml:"encrypted"`
	KMSKeyID           string                   `xml:"kmsKeyId,omitempty"`
	MultiAttachEnabled bool                     `xml:"multiAttachEnabled"`
	Tags               []xTag                   `xml:"tagSet>item,omitempty"`
}

type xVolumeModification struct {
	VolumeID           string `xml:"volumeId"`
	ModificationState  string `xml:"modificationState"`
	TargetSize         int    `xml:"targetSize"`
	TargetIOPS         int    `xml:"targetIops,omitempty"`
	TargetVolumeType   string `xml:"targetVolumeType"`
	TargetThroughput   int    `xml:"targetThroughput,omitempty"`
	OriginalSize       int    `xml:"originalSize"`
	OriginalIOPS       int    `xml:"originalIops,omitempty"`
	OriginalVolumeType string `xml:"originalVolumeType"`
	OriginalThroughput int    `xml:"originalThroughput,omitempty"`
	Progress           int    `xml:"progress"`
	StartTime          string `xml:"startTime"`
	EndTime            string `xml:"endTime,omitempty"`
}

type xEBSBlockDevice struct {
	SnapshotID          string `xml:"snapshotId,omitempty"`
	VolumeSize          int    `xml:"volumeSize"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
	VolumeType          string `xml:"volumeType"`
	Encrypted           bool   `xml:"encrypted"`
}

type xBlockDeviceMapping struct {
	DeviceName string          `xml:"deviceName"`
	EBS        xEBSBlockDevice `xml:"ebs"`
}

type xImage struct {
	ImageID            string                `xml:"imageId"`
	ImageLocation      string                `xml:"imageLocation"`
	ImageState         string                `xml:"imageState"`
	ImageOwnerID       string                `xml:"imageOwnerId"`
	CreationDate       string                `xml:"creationDate"`
	IsPublic           bool                  `xml:"isPublic"`
	Architecture       string                `xml:"architecture"`
	ImageType          string                `xml:"imageType"`
	Name               string                `xml:"name"`
	Description        string                `xml:"description,omitempty"`
	RootDeviceType     string                `xml:"rootDeviceType"`
	RootDeviceName     string                `xml:"rootDeviceName"`
	BlockDeviceMapping []xBlockDeviceMapping `xml:"blockDeviceMapping>item"`
	VirtualizationType string                `xml:"virtualizationType"`
	Hypervisor         string                `xml:"hypervisor"`
	EnaSupport         bool                  `xml:"enaSupport"`
	BootMode           string                `xml:"bootMode"`
	ImdsSupport        string                `xml:"imdsSupport"`
	PlatformDetails    string                `xml:"platformDetails"`
	UsageOperation     string                `xml:"usageOperation"`
	Tags               []xTag                `xml:"tagSet>item,omitempty"`
}

type xInstanceEBS struct {
	VolumeID            string `xml:"volumeId"`
	Status              string `xml:"status"`
	AttachTime          string `xml:"attachTime"`
	DeleteOnTermination bool   `xml:"deleteOnTermination"`
}

type xInstanceBlockDevice struct {
	DeviceName string       `xml:"deviceName"`
	EBS        xInstanceEBS `xml:"ebs"`
}

type xInstanceNetworkInterface struct {
	NetworkInterfaceID string         `xml:"networkInterfaceId"`
	SubnetID           string         `xml:"subnetId"`
	VPCID              string         `xml:"vpcId"`
	Description        string         `xml:"description"`
	OwnerID            string         `xml:"ownerId"`
	Status             string         `xml:"status"`
	MACAddress         string         `xml:"macAddress"`
	PrivateIPAddress   string         `xml:"privateIpAddress"`
	PrivateDNSName     string         `xml:"privateDnsName"`
	SourceDestCheck    bool           `xml:"sourceDestCheck"`
	InterfaceType      string         `xml:"interfaceType"`
	Groups             []xGroup       `xml:"groupSet>item"`
	Attachment         xENIAttachment `xml:"attachment"`
	PrivateIPs         []xPrivateIP   `xml:"privateIpAddressesSet>item"`
}

type xInstance struct {
	InstanceID     string `xml:"instanceId"`
	ImageID        string `xml:"imageId"`
	InstanceState  xState `xml:"instanceState"`
	PrivateDNSName string `xml:"privateDnsName"`
	DNSName        string `xml:"dnsName"`
	Reason         string `xml:"reason"`
	KeyName        string `xml:"keyName,omitempty"`
	AMILaunchIndex int    `xml:"amiLaunchIndex"`
	InstanceType   string `xml:"instanceType"`
	LaunchTime     string `xml:"launchTime"`
	Placement      struct {
		AvailabilityZone   string `xml:"availabilityZone"`
		AvailabilityZoneID string `xml:"availabilityZoneId"`
		GroupName          string `xml:"groupName"`
		Tenancy            string `xml:"tenancy"`
	} `xml:"placement"`
	Monitoring         xMonitoring                      `xml:"monitoring"`
	SubnetID           string                           `xml:"subnetId,omitempty"`
	VPCID              string                           `xml:"vpcId,omitempty"`
	PrivateIPAddress   string                           `xml:"privateIpAddress,omitempty"`
	SourceDestCheck    bool                             `xml:"sourceDestCheck"`
	Groups             []xGroup                         `xml:"groupSet>item"`
	StateReason        *xStateReason                    `xml:"stateReason,omitempty"`
	Architecture       string                           `xml:"architecture"`
	RootDeviceType     string                           `xml:"rootDeviceType"`
	RootDeviceName     string                           `xml:"rootDeviceName"`
	BlockDeviceMapping items[xInstanceBlockDevice]      `xml:"blockDeviceMapping"`
	VirtualizationType string                           `xml:"virtualizationType"`
	ClientToken        string                           `xml:"clientToken"`
	Tags               []xTag                           `xml:"tagSet>item,omitempty"`
	Hypervisor         string                           `xml:"hypervisor"`
	NetworkInterfaces  items[xInstanceNetworkInterface] `xml:"networkInterfaceSet"`
	IAMInstanceProfile *struct {
		ARN string `xml:"arn"`
		ID  string `xml:"id"`
	} `xml:"iamInstanceProfile,omitempty"`
	EBSOptimized    bool `xml:"ebsOptimized"`
	EnaSupport      bool `xml:"enaSupport"`
	MetadataOptions struct {
		State                   string `xml:"state"`
		HTTPTokens              string `xml:"httpTokens"`
		HTTPPutResponseHopLimit int    `xml:"httpPutResponseHopLimit"`
		HTTPEndpoint            string `xml:"httpEndpoint"`
		HTTPProtocolIPv6        string `xml:"httpProtocolIpv6"`
		InstanceMetadataTags    string `xml:"instanceMetadataTags"`
	} `xml:"metadataOptions"`
	PlatformDetails string `xml:"platformDetails"`
	UsageOperation  string `xml:"usageOperation"`
	BootMode        string `xml:"currentInstanceBootMode"`
}

type xMonitoring struct {
	State string `xml:"state"`
}

type xReservation struct {
	ReservationID string           `xml:"reservationId"`
	OwnerID       string           `xml:"ownerId"`
	Groups        []xGroup         `xml:"groupSet>item"`
	Instances     items[xInstance] `xml:"instancesSet"`
}

type xStateChange struct {
	InstanceID    string `xml:"instanceId"`
	CurrentState  xState `xml:"currentState"`
	PreviousState xState `xml:"previousState"`
}

type xStatusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

type xStatusSummary struct {
	Status  string          `xml:"status"`
	Details []xStatusDetail `xml:"details>item"`
}

type xInstanceStatus struct {
	InstanceID         string         `xml:"instanceId"`
	AvailabilityZone   string         `xml:"availabilityZone"`
	AvailabilityZoneID string         `xml:"availabilityZoneId"`
	InstanceState      xState         `xml:"instanceState"`
	SystemStatus       xStatusSummary `xml:"systemStatus"`
	InstanceStatus     xStatusSummary `xml:"instanceStatus"`
	AttachedEBSStatus  xStatusSummary `xml:"attachedEbsStatus"`
}

type xAvailabilityZone struct {
	ZoneName           string `xml:"zoneName"`
	ZoneID             string `xml:"zoneId"`
	ZoneState          string `xml:"zoneState"`
	RegionName         string `xml:"regionName"`
	GroupName          string `xml:"groupName"`
	NetworkBorderGroup string `xml:"networkBorderGroup"`
	OptInStatus        string `xml:"optInStatus"`
	ZoneType           string `xml:"zoneType"`
	Messages           []struct {
		Message string `xml:"message"`
	} `xml:"messageSet>item"`
}

type xTagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

// items is a list that is always written, empty or not, as <name><item>...</item></name>:
// EC2 answers an empty Describe with an empty set, which botocore turns into [] (a missing
// element would become a missing key, and `--query` would print None).
type items[T any] []T

// MarshalXML implements xml.Marshaler.
func (l items[T]) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, it := range l {
		if err := e.EncodeElement(it, xml.StartElement{Name: xml.Name{Local: "item"}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}
