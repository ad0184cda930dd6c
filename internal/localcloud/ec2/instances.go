package ec2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// bdmSpec is one BlockDeviceMapping of RunInstances.
type bdmSpec struct {
	Device              string
	Spec                volumeSpec
	Encrypted           bool
	KMSKeyRef           string
	KMSKeyARN           string
	DeleteOnTermination bool
	NoDevice            bool
}

// eniSpec is one NetworkInterface of RunInstances.
type eniSpec struct {
	DeviceIndex         int
	ID                  string // existing interface
	SubnetID            string
	Groups              []string
	PrivateIP           string
	Description         string
	DeleteOnTermination *bool
}

func (s *Service) cloneStateLocked() (*state, error) {
	data, err := json.Marshal(s.st)
	if err != nil {
		return nil, err
	}
	var c state
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (s *Service) runInstances(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	p, err := s.withLaunchTemplate(p)
	if err != nil {
		return nil, err
	}
	res, err := s.launch(ctx, req.Region, p)
	if err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		xReservation
	}{xReservation: res})
}

// launch runs instances from RunInstances parameters (a launch template's already laid under
// them) and returns their reservation as RunInstances answers it, the instances still pending.
func (s *Service) launch(ctx context.Context, region string, p params) (xReservation, error) {
	fail := func(err error) (xReservation, error) { return xReservation{}, err }
	imageID, err := p.required("ImageId")
	if err != nil {
		return fail(err)
	}
	minCount, err := p.integer("MinCount", 0)
	if err != nil {
		return fail(err)
	}
	maxCount, err := p.integer("MaxCount", 0)
	if err != nil {
		return fail(err)
	}
	if minCount < 1 || maxCount < 1 {
		return fail(awsapi.Errorf("InvalidParameterValue", "MinCount and MaxCount must be at least 1"))
	}
	if minCount > maxCount {
		return fail(awsapi.Errorf("InvalidParameterValue", "MinCount (%d) must not exceed MaxCount (%d)", minCount, maxCount))
	}
	instanceType := p.str("InstanceType")
	if instanceType == "" {
		instanceType = "m1.small"
	}
	userData := p.str("UserData")
	if userData != "" {
		if err := checkUserData(userData); err != nil {
			return fail(err)
		}
	}
	md := p.sub("MetadataOptions")
	httpTokens := md.str("HttpTokens")
	if httpTokens == "" {
		httpTokens = "optional"
	}
	httpEndpoint := md.str("HttpEndpoint")
	if httpEndpoint == "" {
		httpEndpoint = "enabled"
	}
	metadataTags := md.str("InstanceMetadataTags")
	if metadataTags == "" {
		metadataTags = "disabled"
	}
	hopLimit, err := md.integer("HttpPutResponseHopLimit", 1)
	if err != nil {
		return fail(err)
	}
	if httpTokens != "optional" && httpTokens != "required" {
		return fail(awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter HttpTokens is invalid. Valid values: optional, required.", httpTokens))
	}
	if httpEndpoint != "enabled" && httpEndpoint != "disabled" {
		return fail(awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter HttpEndpoint is invalid.", httpEndpoint))
	}
	if hopLimit < 1 || hopLimit > 64 {
		return fail(awsapi.Errorf("InvalidParameterValue", "Value (%d) for parameter HttpPutResponseHopLimit is invalid. It must be between 1 and 64.", hopLimit))
	}
	shutdown := p.str("InstanceInitiatedShutdownBehavior")
	if shutdown == "" {
		shutdown = "stop"
	}
	if shutdown != "stop" && shutdown != "terminate" {
		return fail(awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter instanceInitiatedShutdownBehavior is invalid.", shutdown))
	}
	for _, rt := range p.tagSpecTypes() {
		if rt != "instance" && rt != "volume" && rt != "network-interface" {
			return fail(awsapi.Errorf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt))
		}
	}
	instTags, err := p.tagSpecs("instance")
	if err != nil {
		return fail(err)
	}
	volTags, err := p.tagSpecs("volume")
	if err != nil {
		return fail(err)
	}
	eniTags, err := p.tagSpecs("network-interface")
	if err != nil {
		return fail(err)
	}
	disableTermination, err := p.boolean("DisableApiTermination", false)
	if err != nil {
		return fail(err)
	}
	disableStop, err := p.boolean("DisableApiStop", false)
	if err != nil {
		return fail(err)
	}
	ebsOptimized, err := p.boolean("EbsOptimized", false)
	if err != nil {
		return fail(err)
	}
	monitoring, err := p.boolean("Monitoring.Enabled", false)
	if err != nil {
		return fail(err)
	}

	// Block device mappings (volumes created with the instance).
	var bdms []bdmSpec
	for _, m := range p.structs("BlockDeviceMapping") {
		b := bdmSpec{Device: m.str("DeviceName"), DeleteOnTermination: true}
		if b.Device == "" {
			return fail(awsapi.Errorf("MissingParameter", "The request must contain the parameter BlockDeviceMapping.DeviceName"))
		}
		if m.has("NoDevice") {
			b.NoDevice = true
			bdms = append(bdms, b)
			continue
		}
		ebs := m.sub("Ebs")
		if ebs.str("SnapshotId") != "" {
			return fail(awsapi.Errorf("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist. (The local cloud does not emulate snapshots.)", ebs.str("SnapshotId")))
		}
		b.Spec.Type = ebs.str("VolumeType")
		if b.Spec.Type == "" {
			b.Spec.Type = "gp3"
		}
		if b.Spec.Size, err = ebs.integer("VolumeSize", 0); err != nil {
			return fail(err)
		}
		if b.Spec.IOPS, err = ebs.integer("Iops", 0); err != nil {
			return fail(err)
		}
		if b.Spec.Throughput, err = ebs.integer("Throughput", 0); err != nil {
			return fail(err)
		}
		if b.DeleteOnTermination, err = ebs.boolean("DeleteOnTermination", true); err != nil {
			return fail(err)
		}
		if b.Encrypted, err = ebs.boolean("Encrypted", false); err != nil {
			return fail(err)
		}
		b.KMSKeyRef = ebs.str("KmsKeyId")
		bdms = append(bdms, b)
	}

	// Network interfaces.
	var enis []eniSpec
	for _, n := range p.structs("NetworkInterface") {
		e := eniSpec{ID: n.str("NetworkInterfaceId"), SubnetID: n.str("SubnetId"), Groups: n.list("SecurityGroupId"), PrivateIP: n.str("PrivateIpAddress"), Description: n.str("Description")}
		if e.DeviceIndex, err = n.integer("DeviceIndex", -1); err != nil {
			return fail(err)
		}
		if e.DeviceIndex < 0 {
			return fail(awsapi.Errorf("InvalidParameterValue", "Each network interface requires a device index."))
		}
		if n.has("DeleteOnTermination") {
			v, err := n.boolean("DeleteOnTermination", false)
			if err != nil {
				return fail(err)
			}
			e.DeleteOnTermination = &v
		}
		if e.ID != "" && (e.SubnetID != "" || len(e.Groups) > 0 || e.PrivateIP != "") {
			return fail(awsapi.Errorf("InvalidParameterCombination", "A network interface may specify either an existing network interface ID or a subnet, security groups and private IP, not both."))
		}
		if e.ID != "" && maxCount > 1 {
			return fail(awsapi.Errorf("InvalidParameterCombination", "The parameter NetworkInterfaces[%d].NetworkInterfaceId can only be used with a single instance.", len(enis)))
		}
		enis = append(enis, e)
	}
	if len(enis) > 0 {
		if p.str("SubnetId") != "" {
			return fail(awsapi.Errorf("InvalidParameterCombination", "Network interfaces and an instance-level subnet ID may not be specified on the same request"))
		}
		if p.has("SecurityGroupId") || p.has("SecurityGroup") {
			return fail(awsapi.Errorf("InvalidParameterCombination", "Network interfaces and an instance-level security groups may not be specified on the same request"))
		}
		if p.str("PrivateIpAddress") != "" {
			return fail(awsapi.Errorf("InvalidParameterCombination", "Network interfaces and an instance-level private IP address may not be specified on the same request"))
		}
		hasPrimary := false
		for _, e := range enis {
			hasPrimary = hasPrimary || e.DeviceIndex == 0
		}
		if !hasPrimary {
			return fail(awsapi.Errorf("InvalidParameterValue", "Each instance needs a network interface with device index 0."))
		}
	}

	// Instance profile (IAM).
	var profile awsapi.InstanceProfile
	prof := p.sub("IamInstanceProfile")
	if ref := prof.str("Arn") + prof.str("Name"); ref != "" {
		if prof.str("Arn") != "" && prof.str("Name") != "" {
			return fail(awsapi.Errorf("InvalidParameterCombination", "The parameter 'iamInstanceProfile.name' may not be used in combination with 'iamInstanceProfile.arn'"))
		}
		field := "iamInstanceProfile.name"
		if prof.str("Arn") != "" {
			field = "iamInstanceProfile.arn"
		}
		if s.opts.Profiles == nil {
			return fail(awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Invalid IAM Instance Profile (IAM is not emulated in this setup)", ref, field))
		}
		profile, err = s.opts.Profiles.ResolveInstanceProfile(ctx, s.account, ref)
		if err != nil {
			if errors.Is(err, awsapi.ErrNotFound) {
				return fail(awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter %s is invalid. Invalid IAM Instance Profile %s", ref, field, strings.TrimPrefix(field, "iamInstanceProfile.")))
			}
			return fail(fmt.Errorf("resolving instance profile %q: %w", ref, err))
		}
	}

	// KMS keys of the block device mappings (resolved before taking the lock: KMS is another service).
	var unusableKeys []string
	for i := range bdms {
		b := &bdms[i]
		if b.NoDevice {
			continue
		}
		arn, usable, err := s.resolveKMSKey(ctx, region, b.Encrypted, b.KMSKeyRef)
		if err != nil {
			return fail(err)
		}
		b.KMSKeyARN = arn
		if !usable {
			unusableKeys = append(unusableKeys, arn)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if prior, err := s.idempotentLocked("RunInstances", p); err != nil {
		return fail(err)
	} else if prior != "" {
		return s.reservationLocked(prior), nil
	}
	img, err := s.findImageLocked(imageID)
	if err != nil {
		return fail(err)
	}
	if err := checkInstanceType(instanceType, img.Architecture); err != nil {
		return fail(err)
	}

	// Resolve where the instances go.
	var primarySubnet *subnet
	var primaryENI *networkInterface
	instGroups := p.list("SecurityGroupId")
	for _, name := range p.list("SecurityGroup") {
		g, err := s.findGroupLocked("", name)
		if err != nil {
			return fail(err)
		}
		instGroups = append(instGroups, g.ID)
	}
	for _, e := range enis {
		if e.DeviceIndex != 0 {
			continue
		}
		if e.ID != "" {
			primaryENI, err = s.findInterfaceLocked(e.ID)
			if err != nil {
				return fail(err)
			}
			if primaryENI.Attachment != nil {
				return fail(awsapi.Errorf("InvalidNetworkInterface.InUse", "Interface: [%s] in use.", e.ID))
			}
			primarySubnet = s.st.Subnets[primaryENI.SubnetID]
		} else if e.SubnetID != "" {
			sn, ok := s.st.Subnets[e.SubnetID]
			if !ok {
				return fail(awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", e.SubnetID))
			}
			primarySubnet = sn
		}
	}
	if primarySubnet == nil {
		if id := p.str("SubnetId"); id != "" {
			sn, ok := s.st.Subnets[id]
			if !ok {
				return fail(awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id))
			}
			primarySubnet = sn
		} else {
			az := p.str("Placement.AvailabilityZone")
			if az == "" {
				az = s.zones()[0]
			}
			for _, sn := range s.st.Subnets {
				if sn.DefaultForAZ && sn.AZ == az {
					primarySubnet = sn
				}
			}
			if primarySubnet == nil {
				return fail(awsapi.Errorf("VPCIdNotSpecified", "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC."))
			}
		}
	}
	if az := p.str("Placement.AvailabilityZone"); az != "" && az != primarySubnet.AZ {
		return fail(awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter availabilityZone is invalid. Subnet '%s' is in the availability zone %s", az, primarySubnet.ID, primarySubnet.AZ))
	}
	if s.st.DownZones[primarySubnet.AZ] {
		return fail(s.capacityError(instanceType, primarySubnet.AZ))
	}
	if len(enis) == 0 {
		if err := s.resolveGroupsLocked(instGroups, primarySubnet.VPCID, primarySubnet.ID); err != nil {
			return fail(err)
		}
	}

	snapshot, err := s.cloneStateLocked()
	if err != nil {
		return fail(err)
	}
	rollback := func(err error) (xReservation, error) {
		s.st = snapshot
		return fail(err)
	}
	now := s.now()
	resID := newID("r")
	var launched []*instance
	for n := 0; n < maxCount; n++ {
		inst := &instance{
			ID: newID("i"), ReservationID: resID, ImageID: img.ID, InstanceType: instanceType, Architecture: img.Architecture,
			KeyName: p.str("KeyName"), LaunchIndex: n, LaunchTime: now, ClientToken: p.str("ClientToken"),
			AZ: primarySubnet.AZ, SubnetID: primarySubnet.ID, VPCID: primarySubnet.VPCID, UserData: userData, State: statePending,
			InstanceProfileARN: profile.ARN, InstanceProfileID: profile.ID, RoleName: profile.RoleName, RoleARN: profile.RoleARN, RoleID: profile.RoleID,
			HTTPTokens: httpTokens, HTTPEndpoint: httpEndpoint, HTTPHopLimit: hopLimit, MetadataTags: metadataTags,
			ShutdownBehavior: shutdown, DisableAPITermination: disableTermination, DisableAPIStop: disableStop,
			EBSOptimized: ebsOptimized, Monitoring: monitoring, RootDevice: img.RootDevice, Tags: copyTags(instTags),
			Program: img.Binary, Args: img.Args,
		}
		// Network interfaces: device 0 first.
		if len(enis) == 0 {
			e, err := s.newInterfaceLocked(primarySubnet, instGroups, p.str("PrivateIpAddress"), "", copyTags(eniTags))
			if err != nil {
				return rollback(err)
			}
			e.Attachment = &eniAttachment{ID: newID("eni-attach"), InstanceID: inst.ID, DeviceIndex: 0, Status: "attached", AttachTime: now, DeleteOnTermination: true}
		}
		for _, spec := range enis {
			var e *networkInterface
			deleteOnTermination := spec.ID == ""
			if spec.ID != "" {
				e = s.st.NetworkInterfaces[spec.ID]
				if e == nil {
					return rollback(awsapi.Errorf("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", spec.ID))
				}
				if e.Attachment != nil {
					return rollback(awsapi.Errorf("InvalidNetworkInterface.InUse", "Interface: [%s] in use.", spec.ID))
				}
				for k, v := range eniTags {
					e.Tags[k] = v
				}
			} else {
				sn := primarySubnet
				if spec.SubnetID != "" {
					if sn = s.st.Subnets[spec.SubnetID]; sn == nil {
						return rollback(awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", spec.SubnetID))
					}
				}
				if sn.AZ != primarySubnet.AZ {
					return rollback(awsapi.Errorf("InvalidParameterValue", "Network interfaces of one instance must be in the same availability zone"))
				}
				e, err = s.newInterfaceLocked(sn, spec.Groups, spec.PrivateIP, spec.Description, copyTags(eniTags))
				if err != nil {
					return rollback(err)
				}
			}
			if spec.DeleteOnTermination != nil {
				deleteOnTermination = *spec.DeleteOnTermination
			}
			e.Attachment = &eniAttachment{ID: newID("eni-attach"), InstanceID: inst.ID, DeviceIndex: spec.DeviceIndex, Status: "attached", AttachTime: now, DeleteOnTermination: deleteOnTermination}
		}
		// Volumes: the root volume from the image, then the mappings.
		root := bdmSpec{Device: img.RootDevice, Spec: volumeSpec{Size: img.RootSize, Type: "gp3"}, DeleteOnTermination: true}
		var extra []bdmSpec
		for _, b := range bdms {
			if b.Device == img.RootDevice {
				if b.NoDevice {
					return rollback(awsapi.Errorf("InvalidParameterValue", "The root device %s cannot be suppressed with NoDevice", b.Device))
				}
				if b.Spec.Size == 0 {
					b.Spec.Size = img.RootSize
				}
				if b.Spec.Size < img.RootSize {
					return rollback(awsapi.Errorf("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot, expect size >= %dGB", b.Spec.Size, img.RootSize))
				}
				root = b
				continue
			}
			if !b.NoDevice {
				extra = append(extra, b)
			}
		}
		for _, b := range append([]bdmSpec{root}, extra...) {
			spec := b.Spec
			if spec.Size == 0 {
				return rollback(awsapi.Errorf("MissingParameter", "The request must contain the parameter size for device %s", b.Device))
			}
			if err := spec.validate(); err != nil {
				return rollback(err)
			}
			v := &volume{ID: newID("vol"), AZ: inst.AZ, Size: spec.Size, Type: spec.Type, IOPS: spec.IOPS, Throughput: spec.Throughput,
				Encrypted: b.Encrypted, KMSKeyID: b.KMSKeyARN, State: "in-use", Created: now, Tags: copyTags(volTags),
				Attachment: &volAttachment{InstanceID: inst.ID, Device: b.Device, State: "attached", AttachTime: now, DeleteOnTermination: b.DeleteOnTermination}}
			s.st.Volumes[v.ID] = v
		}
		s.st.Instances[inst.ID] = inst
		launched = append(launched, inst)
	}
	s.rememberLocked("RunInstances", p, resID)
	for _, inst := range launched {
		for _, v := range s.volumesOfLocked(inst.ID) {
			if err := mkdirVolume(s.VolumeDir(v.ID)); err != nil {
				return rollback(err)
			}
		}
	}
	if err := s.commitLocked(); err != nil {
		return rollback(err)
	}
	res := s.reservationLocked(resID)
	for _, inst := range launched {
		if len(unusableKeys) > 0 {
			s.log.Warn("instance volumes use a KMS key that is missing or disabled; the launch will fail", "instance", inst.ID, "keys", unusableKeys)
		}
		s.goBoot(inst.ID, 0, false)
	}
	return res, nil
}

// checkUserData checks user data as EC2 does: base64, at most 16 KiB decoded.
func checkUserData(v string) error {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return awsapi.Errorf("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
	}
	if len(raw) > 16384 {
		return awsapi.Errorf("InvalidParameterValue", "User data is limited to 16384 bytes")
	}
	return nil
}

func copyTags(t tags) tags {
	out := tags{}
	for k, v := range t {
		out[k] = v
	}
	return out
}

func (s *Service) capacityError(instanceType, az string) error {
	var others []string
	for _, z := range s.zones() {
		if z != az && !s.st.DownZones[z] {
			others = append(others, z)
		}
	}
	return awsapi.ErrorfStatus(500, "InsufficientInstanceCapacity", "We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity. You can currently get %s capacity by not specifying an Availability Zone in your request or choosing %s.", instanceType, az, instanceType, strings.Join(others, ", "))
}

// reservationLocked is a reservation as RunInstances and DescribeInstances show it.
func (s *Service) reservationLocked(resID string) xReservation {
	out := xReservation{ReservationID: resID, OwnerID: s.account}
	for _, id := range sortedKeys(s.st.Instances) {
		if inst := s.st.Instances[id]; inst.ReservationID == resID {
			out.Instances = append(out.Instances, s.xInstanceLocked(inst))
		}
	}
	sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].AMILaunchIndex < out.Instances[j].AMILaunchIndex })
	return out
}

func (s *Service) findInstanceLocked(id string) (*instance, error) {
	if inst, ok := s.st.Instances[id]; ok {
		return inst, nil
	}
	if err := checkID(id, "i", "InvalidInstanceID.Malformed"); err != nil {
		return nil, err
	}
	return nil, awsapi.Errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
}

// findInstancesLocked resolves every InstanceId.N or fails with all missing ids, as EC2 does.
func (s *Service) findInstancesLocked(ids []string) ([]*instance, error) {
	if len(ids) == 0 {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	var out []*instance
	var missing []string
	for _, id := range ids {
		inst, ok := s.st.Instances[id]
		if !ok {
			if err := checkID(id, "i", "InvalidInstanceID.Malformed"); err != nil {
				return nil, err
			}
			missing = append(missing, id)
			continue
		}
		out = append(out, inst)
	}
	if len(missing) > 0 {
		return nil, notFound("InvalidInstanceID.NotFound", "instance", missing)
	}
	return out, nil
}

// interfacesOfLocked lists an instance's attached network interfaces by device index.
func (s *Service) interfacesOfLocked(instanceID string) []*networkInterface {
	var out []*networkInterface
	for _, id := range sortedKeys(s.st.NetworkInterfaces) {
		e := s.st.NetworkInterfaces[id]
		if e.Attachment != nil && e.Attachment.InstanceID == instanceID {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Attachment.DeviceIndex < out[j].Attachment.DeviceIndex })
	return out
}

func (s *Service) primaryInterfaceLocked(instanceID string) *networkInterface {
	for _, e := range s.interfacesOfLocked(instanceID) {
		if e.Attachment.DeviceIndex == 0 {
			return e
		}
	}
	return nil
}

func (s *Service) xInstanceLocked(inst *instance) xInstance {
	x := xInstance{InstanceID: inst.ID, ImageID: inst.ImageID, InstanceState: xState{stateCodes[inst.State], inst.State},
		Reason: inst.TransitionReason, KeyName: inst.KeyName, AMILaunchIndex: inst.LaunchIndex, InstanceType: inst.InstanceType,
		LaunchTime: ec2Time(inst.LaunchTime), Monitoring: xMonitoring{"disabled"}, Architecture: inst.Architecture,
		RootDeviceType: "ebs", RootDeviceName: inst.RootDevice, VirtualizationType: "hvm", ClientToken: inst.ClientToken,
		Tags: tagItems(inst.Tags), Hypervisor: "xen", EBSOptimized: inst.EBSOptimized, EnaSupport: true,
		PlatformDetails: "Linux/UNIX", UsageOperation: "RunInstances", BootMode: "uefi", SourceDestCheck: true}
	if inst.Monitoring {
		x.Monitoring.State = "enabled"
	}
	x.Placement.AvailabilityZone, x.Placement.AvailabilityZoneID, x.Placement.Tenancy = inst.AZ, s.zoneID(inst.AZ), "default"
	if inst.StateReasonCode != "" {
		x.StateReason = &xStateReason{inst.StateReasonCode, inst.StateReasonMessage}
	}
	if inst.InstanceProfileARN != "" {
		x.IAMInstanceProfile = &struct {
			ARN string `xml:"arn"`
			ID  string `xml:"id"`
		}{inst.InstanceProfileARN, inst.InstanceProfileID}
	}
	mo := &x.MetadataOptions
	mo.State, mo.HTTPTokens, mo.HTTPPutResponseHopLimit, mo.HTTPEndpoint, mo.HTTPProtocolIPv6, mo.InstanceMetadataTags =
		"applied", inst.HTTPTokens, inst.HTTPHopLimit, inst.HTTPEndpoint, "disabled", inst.MetadataTags
	if inst.State != stateTerminated {
		x.SubnetID, x.VPCID = inst.SubnetID, inst.VPCID
	}
	for _, e := range s.interfacesOfLocked(inst.ID) {
		a := e.Attachment
		ni := xInstanceNetworkInterface{NetworkInterfaceID: e.ID, SubnetID: e.SubnetID, Description: e.Description, OwnerID: s.account,
			Status: e.status(), MACAddress: e.MAC, PrivateIPAddress: e.PrivateIP, PrivateDNSName: privateDNSName(e.PrivateIP),
			SourceDestCheck: e.SourceDestCheck, InterfaceType: "interface", Groups: s.groupRefsLocked(e.Groups),
			Attachment: xENIAttachment{AttachmentID: a.ID, DeviceIndex: a.DeviceIndex, Status: a.Status, AttachTime: ec2Time(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination},
			PrivateIPs: []xPrivateIP{{e.PrivateIP, privateDNSName(e.PrivateIP), true}}}
		if sn := s.st.Subnets[e.SubnetID]; sn != nil {
			ni.VPCID = sn.VPCID
		}
		x.NetworkInterfaces = append(x.NetworkInterfaces, ni)
		if a.DeviceIndex == 0 {
			x.PrivateIPAddress, x.PrivateDNSName, x.Groups, x.SourceDestCheck = e.PrivateIP, privateDNSName(e.PrivateIP), s.groupRefsLocked(e.Groups), e.SourceDestCheck
		}
	}
	for _, v := range s.volumesOfLocked(inst.ID) {
		a := v.Attachment
		x.BlockDeviceMapping = append(x.BlockDeviceMapping, xInstanceBlockDevice{DeviceName: a.Device,
			EBS: xInstanceEBS{VolumeID: v.ID, Status: a.State, AttachTime: ec2Time(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination}})
	}
	return x
}

func transitionReason(now time.Time) string {
	return "User initiated (" + now.UTC().Format("2006-01-02 15:04:05") + " GMT)"
}

func (s *Service) setStateLocked(inst *instance, state, reasonCode, reasonMessage string) {
	inst.State = state
	inst.StateReasonCode, inst.StateReasonMessage = reasonCode, reasonMessage
}

func stateChange(inst *instance, previous string) xStateChange {
	return xStateChange{InstanceID: inst.ID, CurrentState: xState{stateCodes[inst.State], inst.State}, PreviousState: xState{stateCodes[previous], previous}}
}

func (s *Service) respondStateChanges(req *awsapi.Request, changes []xStateChange) (*awsapi.Response, error) {
	return respond(req, &struct {
		meta
		Instances []xStateChange `xml:"instancesSet>item"`
	}{Instances: changes})
}

func (s *Service) startInstances(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	insts, err := s.findInstancesLocked(p.list("InstanceId"))
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		switch inst.State {
		case stateStopped:
			if s.st.DownZones[inst.AZ] {
				return nil, s.capacityError(inst.InstanceType, inst.AZ)
			}
		case statePending, stateRunning:
		default:
			return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", inst.ID)
		}
	}
	var changes []xStateChange
	var boot []string
	for _, inst := range insts {
		prev := inst.State
		if prev == stateStopped {
			s.setStateLocked(inst, statePending, "", "")
			inst.TransitionReason, inst.DownedByZone, inst.Restarts = "", false, 0
			boot = append(boot, inst.ID)
		}
		changes = append(changes, stateChange(inst, prev))
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	for _, id := range boot {
		s.goBoot(id, 0, false)
	}
	return s.respondStateChanges(req, changes)
}

func (s *Service) stopInstances(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	force, err := p.boolean("Force", false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	insts, err := s.findInstancesLocked(p.list("InstanceId"))
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		switch inst.State {
		case statePending, stateRunning:
			if inst.DisableAPIStop {
				return nil, awsapi.Errorf("OperationNotPermitted", "The instance '%s' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.", inst.ID)
			}
		case stateStopping, stateStopped:
		default:
			return nil, awsapi.Errorf("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", inst.ID)
		}
	}
	var changes []xStateChange
	now := s.now()
	for _, inst := range insts {
		prev := inst.State
		if prev == statePending || prev == stateRunning {
			s.setStateLocked(inst, stateStopping, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
			inst.TransitionReason = transitionReason(now)
			id := inst.ID
			s.background(func() {
				if force {
					s.machines.Kill(id)
				} else {
					s.machines.Shutdown(id, s.opts.StopGracePeriod)
				}
				s.mu.Lock()
				defer s.mu.Unlock()
				if cur := s.st.Instances[id]; cur != nil && cur.State == stateStopping {
					cur.State = stateStopped
					_ = s.commitLocked()
				}
			})
		}
		changes = append(changes, stateChange(inst, prev))
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return s.respondStateChanges(req, changes)
}

func (s *Service) terminateInstances(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	insts, err := s.findInstancesLocked(p.list("InstanceId"))
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		if inst.DisableAPITermination && inst.State != stateTerminated && inst.State != stateShuttingDown {
			return nil, awsapi.Errorf("OperationNotPermitted", "The instance '%s' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.", inst.ID)
		}
	}
	var changes []xStateChange
	for _, inst := range insts {
		prev := inst.State
		s.terminateLocked(inst)
		changes = append(changes, stateChange(inst, prev))
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return s.respondStateChanges(req, changes)
}

// terminateLocked starts an instance's termination (shutting-down, then terminated once its
// process has stopped); an instance already on its way is left alone.
func (s *Service) terminateLocked(inst *instance) {
	now := s.now()
	switch inst.State {
	case stateTerminated, stateShuttingDown:
	case stateStopped:
		s.setStateLocked(inst, stateShuttingDown, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
		inst.TransitionReason = transitionReason(now)
		id := inst.ID
		s.after(s.opts.TransitionDelay, func() {
			if cur := s.st.Instances[id]; cur != nil && cur.State == stateShuttingDown {
				s.finishTerminateLocked(cur)
			}
		})
	default:
		s.setStateLocked(inst, stateShuttingDown, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
		inst.TransitionReason = transitionReason(now)
		id := inst.ID
		s.background(func() {
			s.machines.Shutdown(id, s.opts.StopGracePeriod)
			s.mu.Lock()
			defer s.mu.Unlock()
			if cur := s.st.Instances[id]; cur != nil && cur.State == stateShuttingDown {
				s.finishTerminateLocked(cur)
				_ = s.commitLocked()
			}
		})
	}
}

// finishTerminateLocked makes an instance terminated: volumes and network interfaces marked
// DeleteOnTermination are deleted, the others detached and kept (a broker's data volume and
// ENI survive, as on AWS); its role credentials are revoked.
func (s *Service) finishTerminateLocked(inst *instance) {
	inst.State = stateTerminated
	inst.TerminatedAt = s.now()
	if inst.StateReasonCode == "" {
		inst.StateReasonCode, inst.StateReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
	}
	for _, v := range s.volumesOfLocked(inst.ID) {
		s.unlinkVolumeLocked(v)
		if v.Attachment.DeleteOnTermination {
			s.deleteVolumeLocked(v)
			continue
		}
		v.Attachment = nil
		v.State = "available"
	}
	for _, e := range s.interfacesOfLocked(inst.ID) {
		if e.Attachment.DeleteOnTermination {
			delete(s.st.NetworkInterfaces, e.ID)
			continue
		}
		if !s.keepInterfaces {
			e.Attachment = nil
		}
	}
	delete(s.creds, inst.ID)
	if err := s.opts.Env.Credentials.RevokeSource(credentialSource(inst.ID)); err != nil {
		s.log.Warn("revoking instance credentials failed", "instance", inst.ID, "err", err)
	}
}

func credentialSource(instanceID string) string { return "instance:" + instanceID }

func (s *Service) rebootInstances(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	insts, err := s.findInstancesLocked(p.list("InstanceId"))
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		if inst.State == stateTerminated || inst.State == stateShuttingDown {
			return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be rebooted.", inst.ID)
		}
	}
	for _, inst := range insts {
		if inst.State != stateRunning {
			continue // AWS ignores reboots of instances that do not run
		}
		id := inst.ID
		s.background(func() {
			s.machines.Shutdown(id, s.opts.StopGracePeriod)
			s.mu.Lock()
			defer s.mu.Unlock()
			if cur := s.st.Instances[id]; cur != nil && cur.State == stateRunning {
				cur.Restarts = 0
				s.bootLocked(cur, true)
				_ = s.commitLocked()
			}
		})
	}
	return respond(req, &returnTrue{Return: true})
}
