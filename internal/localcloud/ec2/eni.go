package ec2

import (
	"context"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Private IPs are loopback addresses 127.<octet>.<subnet index>.<host>, so every instance can
// listen on its own address with the usual ports. Hosts .1-.3 and .255 stay unused, as AWS
// reserves the first four and the last address of a subnet.
const (
	firstHost = 4
	lastHost  = 254
)

func (s *Service) subnetBlock(sn *subnet) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(s.st.LoopbackOctet), byte(sn.Index), 0}), 24)
}

func (s *Service) allocateIPLocked(sn *subnet, want string) (string, error) {
	used := map[string]bool{}
	for _, e := range s.st.NetworkInterfaces {
		if e.SubnetID == sn.ID {
			used[e.PrivateIP] = true
		}
	}
	block := s.subnetBlock(sn)
	if want != "" {
		a, err := netip.ParseAddr(want)
		if err != nil || !block.Contains(a) || a.As4()[3] < firstHost || a.As4()[3] > lastHost {
			return "", awsapi.Errorf("InvalidParameterValue", "Address %s does not fall within the subnet's address range (the local cloud gives subnet %s the loopback block %s)", want, sn.ID, block)
		}
		if used[want] {
			return "", awsapi.Errorf("InvalidIPAddress.InUse", "Address %s is in use.", want)
		}
		return want, nil
	}
	b := block.Addr().As4()
	for h := firstHost; h <= lastHost; h++ {
		b[3] = byte(h)
		ip := netip.AddrFrom4(b).String()
		if !used[ip] {
			return ip, nil
		}
	}
	return "", awsapi.Errorf("InsufficientFreeAddressesInSubnet", "The specified subnet %s does not have enough free addresses to satisfy the request.", sn.ID)
}

func newMAC() string {
	id := awsapi.NewID(10)
	// 0e: locally administered, unicast, as AWS's Nitro MACs.
	return "0e:" + id[0:2] + ":" + id[2:4] + ":" + id[4:6] + ":" + id[6:8] + ":" + id[8:10]
}

func privateDNSName(ip string) string {
	return "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal"
}

// resolveGroupsLocked checks security group ids for an interface in vpcID.
func (s *Service) resolveGroupsLocked(ids []string, vpcID, subnetID string) error {
	if len(ids) > 5 {
		return awsapi.Errorf("SecurityGroupsPerInterfaceLimitExceeded", "The maximum number of security groups per interface has been reached.")
	}
	for _, id := range ids {
		g, ok := s.st.SecurityGroups[id]
		if !ok {
			return awsapi.Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		if g.VPCID != vpcID {
			return awsapi.Errorf("InvalidParameter", "Security group %s and subnet %s belong to different networks.", id, subnetID)
		}
	}
	return nil
}

// newInterfaceLocked creates an ENI in sn with groups (the VPC's default group when empty).
func (s *Service) newInterfaceLocked(sn *subnet, groups []string, ip, description string, t tags) (*networkInterface, error) {
	if len(groups) == 0 {
		groups = []string{s.defaultGroupLocked(sn.VPCID).ID}
	}
	if err := s.resolveGroupsLocked(groups, sn.VPCID, sn.ID); err != nil {
		return nil, err
	}
	addr, err := s.allocateIPLocked(sn, ip)
	if err != nil {
		return nil, err
	}
	if t == nil {
		t = tags{}
	}
	e := &networkInterface{ID: newID("eni"), SubnetID: sn.ID, Description: description, PrivateIP: addr, MAC: newMAC(), Groups: groups, SourceDestCheck: true, Tags: t}
	s.st.NetworkInterfaces[e.ID] = e
	return e, nil
}

func (s *Service) findInterfaceLocked(id string) (*networkInterface, error) {
	if e, ok := s.st.NetworkInterfaces[id]; ok {
		return e, nil
	}
	if err := checkID(id, "eni", "InvalidNetworkInterfaceId.Malformed"); err != nil {
		return nil, err
	}
	return nil, awsapi.Errorf("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
}

func (e *networkInterface) status() string {
	if e.Attachment == nil {
		return "available"
	}
	if e.Attachment.Status == "attached" {
		return "in-use"
	}
	return e.Attachment.Status
}

func (s *Service) xInterfaceLocked(e *networkInterface) xNetworkInterface {
	sn := s.st.Subnets[e.SubnetID]
	x := xNetworkInterface{NetworkInterfaceID: e.ID, SubnetID: e.SubnetID, Description: e.Description, OwnerID: s.account,
		Status: e.status(), MACAddress: e.MAC, PrivateIPAddress: e.PrivateIP, PrivateDNSName: privateDNSName(e.PrivateIP),
		SourceDestCheck: e.SourceDestCheck, InterfaceType: "interface", Groups: s.groupRefsLocked(e.Groups),
		PrivateIPs: []xPrivateIP{{e.PrivateIP, privateDNSName(e.PrivateIP), true}}, Tags: tagItems(e.Tags)}
	if sn != nil {
		x.VPCID, x.AvailabilityZone, x.AvailabilityZoneID = sn.VPCID, sn.AZ, s.zoneID(sn.AZ)
	}
	if a := e.Attachment; a != nil {
		x.Attachment = &xENIAttachment{AttachmentID: a.ID, InstanceID: a.InstanceID, InstanceOwnerID: s.account, DeviceIndex: a.DeviceIndex,
			Status: a.Status, AttachTime: ec2Time(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination}
	}
	return x
}

func (s *Service) groupRefsLocked(ids []string) []xGroup {
	var out []xGroup
	for _, id := range ids {
		name := ""
		if g, ok := s.st.SecurityGroups[id]; ok {
			name = g.Name
		}
		out = append(out, xGroup{GroupID: id, GroupName: name})
	}
	return out
}

func (s *Service) createNetworkInterface(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	subnetID, err := p.required("SubnetId")
	if err != nil {
		return nil, err
	}
	t, err := p.tagSpecs("network-interface")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prior, err := s.idempotentLocked("CreateNetworkInterface", p)
	if err != nil {
		return nil, err
	}
	var e *networkInterface
	if prior != "" && s.st.NetworkInterfaces[prior] != nil {
		e = s.st.NetworkInterfaces[prior]
	} else {
		sn, ok := s.st.Subnets[subnetID]
		if !ok {
			return nil, awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
		}
		ip := p.str("PrivateIpAddress")
		for _, a := range p.structs("PrivateIpAddresses") {
			if primary, _ := a.boolean("Primary", false); primary {
				ip = a.str("PrivateIpAddress")
			}
		}
		e, err = s.newInterfaceLocked(sn, p.list("SecurityGroupId"), ip, p.str("Description"), t)
		if err != nil {
			return nil, err
		}
		s.rememberLocked("CreateNetworkInterface", p, e.ID)
		if err := s.commitLocked(); err != nil {
			return nil, err
		}
	}
	return respond(req, &struct {
		meta
		NetworkInterface xNetworkInterface `xml:"networkInterface"`
		ClientToken      string            `xml:"clientToken,omitempty"`
	}{NetworkInterface: s.xInterfaceLocked(e), ClientToken: p.str("ClientToken")})
}

func (s *Service) deleteNetworkInterface(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.findInterfaceLocked(id)
	if err != nil {
		return nil, err
	}
	if e.Attachment != nil {
		return nil, awsapi.Errorf("InvalidNetworkInterface.InUse", "Network interface '%s' is currently in use.", id)
	}
	delete(s.st.NetworkInterfaces, id)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) describeNetworkInterfaces(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("NetworkInterfaceId")
	missing := missingKeys(s.st.NetworkInterfaces, ids)
	if len(missing) > 0 {
		return nil, notFound("InvalidNetworkInterfaceID.NotFound", "networkInterface", missing)
	}
	if p.has("MaxResults") && len(ids) > 0 {
		return nil, awsapi.Errorf("InvalidParameterCombination", "The parameter NetworkInterfaceIds cannot be used with the parameter MaxResults")
	}
	filters := parseFilters(p)
	keep, err := selectMatching(s.st.NetworkInterfaces, ids, filters, func(e *networkInterface) (tags, fieldFunc) {
		sn := s.st.Subnets[e.SubnetID]
		return e.Tags, func(name string) ([]string, bool) {
			switch name {
			case "network-interface-id":
				return []string{e.ID}, true
			case "subnet-id":
				return []string{e.SubnetID}, true
			case "vpc-id":
				return []string{sn.VPCID}, true
			case "availability-zone":
				return []string{sn.AZ}, true
			case "status":
				return []string{e.status()}, true
			case "private-ip-address", "addresses.private-ip-address":
				return []string{e.PrivateIP}, true
			case "private-dns-name":
				return []string{privateDNSName(e.PrivateIP)}, true
			case "mac-address":
				return []string{e.MAC}, true
			case "group-id":
				return e.Groups, true
			case "group-name":
				var names []string
				for _, g := range s.groupRefsLocked(e.Groups) {
					names = append(names, g.GroupName)
				}
				return names, true
			case "description":
				return []string{e.Description}, true
			case "owner-id":
				return []string{s.account}, true
			case "interface-type":
				return []string{"interface"}, true
			case "requester-managed":
				return []string{"false"}, true
			case "source-dest-check":
				return []string{boolString(e.SourceDestCheck)}, true
			}
			if strings.HasPrefix(name, "attachment.") {
				a := e.Attachment
				if a == nil {
					return nil, true
				}
				switch name {
				case "attachment.instance-id":
					return []string{a.InstanceID}, true
				case "attachment.attachment-id":
					return []string{a.ID}, true
				case "attachment.status":
					return []string{a.Status}, true
				case "attachment.device-index":
					return []string{strconv.Itoa(a.DeviceIndex)}, true
				case "attachment.delete-on-termination":
					return []string{boolString(a.DeleteOnTermination)}, true
				case "attachment.instance-owner-id":
					return []string{s.account}, true
				}
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	pg, next, err := page(keep, p, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Interfaces items[xNetworkInterface] `xml:"networkInterfaceSet"`
		NextToken  string                   `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Interfaces = append(out.Interfaces, s.xInterfaceLocked(s.st.NetworkInterfaces[id]))
	}
	return respond(req, out)
}

func (s *Service) modifyNetworkInterfaceAttribute(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.findInterfaceLocked(id)
	if err != nil {
		return nil, err
	}
	changed := false
	if groups := p.list("SecurityGroupId"); len(groups) > 0 {
		sn := s.st.Subnets[e.SubnetID]
		if err := s.resolveGroupsLocked(groups, sn.VPCID, sn.ID); err != nil {
			return nil, err
		}
		e.Groups, changed = groups, true
	}
	if p.has("Description.Value") {
		e.Description, changed = p.str("Description.Value"), true
	}
	if p.has("SourceDestCheck.Value") {
		v, err := p.boolean("SourceDestCheck.Value", true)
		if err != nil {
			return nil, err
		}
		e.SourceDestCheck, changed = v, true
	}
	if p.has("Attachment") {
		aid := p.str("Attachment.AttachmentId")
		if e.Attachment == nil || e.Attachment.ID != aid {
			return nil, awsapi.Errorf("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist", aid)
		}
		v, err := p.boolean("Attachment.DeleteOnTermination", e.Attachment.DeleteOnTermination)
		if err != nil {
			return nil, err
		}
		e.Attachment.DeleteOnTermination, changed = v, true
	}
	if !changed {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain an attribute to modify")
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) attachNetworkInterface(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	eniID, err := p.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	instID, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	if !p.has("DeviceIndex") {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter deviceIndex")
	}
	index, err := p.integer("DeviceIndex", 0)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.findInterfaceLocked(eniID)
	if err != nil {
		return nil, err
	}
	inst, err := s.findInstanceLocked(instID)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeResources(ctx, req, resource{"instance", inst.ID, inst.Tags}, resource{"network-interface", e.ID, e.Tags}); err != nil {
		return nil, err
	}
	if inst.State != stateRunning && inst.State != stateStopped {
		return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which a network interface can be attached.", instID)
	}
	if e.Attachment != nil {
		return nil, awsapi.Errorf("InvalidNetworkInterface.InUse", "Interface: [%s] in use.", eniID)
	}
	if sn := s.st.Subnets[e.SubnetID]; sn == nil || sn.AZ != inst.AZ {
		return nil, awsapi.Errorf("InvalidParameterCombination", "You may not attach a network interface to an instance if they are not in the same availability zone")
	}
	if index < 1 || index > 15 {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%d) for parameter deviceIndex is invalid: device index 0 is the primary interface, set at launch; additional interfaces use 1-15.", index)
	}
	for _, o := range s.interfacesOfLocked(instID) {
		if o.Attachment.DeviceIndex == index {
			return nil, awsapi.Errorf("InvalidParameterValue", "Instance '%s' already has an interface attached at device index '%d'.", instID, index)
		}
	}
	e.Attachment = &eniAttachment{ID: newID("eni-attach"), InstanceID: instID, DeviceIndex: index, Status: "attached", AttachTime: s.now()}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		AttachmentID     string `xml:"attachmentId"`
		NetworkCardIndex int    `xml:"networkCardIndex"`
	}{AttachmentID: e.Attachment.ID})
}

func (s *Service) detachNetworkInterface(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("AttachmentId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.st.NetworkInterfaces {
		if e.Attachment == nil || e.Attachment.ID != id {
			continue
		}
		touched := []resource{{"network-interface", e.ID, e.Tags}}
		if inst, ok := s.st.Instances[e.Attachment.InstanceID]; ok {
			touched = append(touched, resource{"instance", inst.ID, inst.Tags})
		}
		if err := s.authorizeResources(ctx, req, touched...); err != nil {
			return nil, err
		}
		if e.Attachment.DeviceIndex == 0 {
			return nil, awsapi.Errorf("OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
		}
		e.Attachment = nil
		if err := s.commitLocked(); err != nil {
			return nil, err
		}
		return respond(req, &returnTrue{Return: true})
	}
	return nil, awsapi.Errorf("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist", id)
}
