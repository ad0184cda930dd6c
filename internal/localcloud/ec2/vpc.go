package ec2

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// zones are the region's Availability Zone names, in order.
func (s *Service) zones() []string {
	out := make([]string, 0, len(s.opts.AvailabilityZones))
	for _, z := range s.opts.AvailabilityZones {
		out = append(out, s.region+z)
	}
	return out
}

// zoneID maps us-east-1b to use1-az2, the zone id form AWS reports (region code: the
// geography, the abbreviated direction and the number: use1, euw2, apse1, cac1).
func (s *Service) zoneID(az string) string {
	for i, z := range s.zones() {
		if z == az {
			return fmt.Sprintf("%s-az%d", regionCode(s.region), i+1)
		}
	}
	return ""
}

func regionCode(region string) string {
	directions := map[string]string{"east": "e", "west": "w", "north": "n", "south": "s", "central": "c",
		"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}
	parts := strings.Split(region, "-")
	code := ""
	for i, p := range parts {
		switch {
		case i == 0:
			code += p
		case directions[p] != "":
			code += directions[p]
		default:
			code += p
		}
	}
	return code
}

func (s *Service) validZone(az string) bool {
	for _, z := range s.zones() {
		if z == az {
			return true
		}
	}
	return false
}

// ensureDefaultVPCLocked creates the default VPC (172.31.0.0/16), one default /20 subnet per
// zone and the VPC's default security group, as every AWS account has.
func (s *Service) ensureDefaultVPCLocked() {
	for _, v := range s.st.VPCs {
		if v.IsDefault {
			return
		}
	}
	v := &vpc{ID: newID("vpc"), CIDR: "172.31.0.0/16", IsDefault: true, Tags: tags{}}
	s.st.VPCs[v.ID] = v
	s.createDefaultGroupLocked(v.ID)
	for i, az := range s.zones() {
		sn := &subnet{ID: newID("subnet"), VPCID: v.ID, CIDR: fmt.Sprintf("172.31.%d.0/20", i*16), AZ: az, DefaultForAZ: true, Tags: tags{}}
		s.st.NextSubnetIndex++
		sn.Index = s.st.NextSubnetIndex
		s.st.Subnets[sn.ID] = sn
	}
}

func (s *Service) defaultVPCLocked() *vpc {
	for _, v := range s.st.VPCs {
		if v.IsDefault {
			return v
		}
	}
	return nil
}

func (s *Service) describeAvailabilityZones(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	filters := parseFilters(p)
	names := p.list("ZoneName")
	ids := p.list("ZoneId")
	out := &struct {
		meta
		Zones items[xAvailabilityZone] `xml:"availabilityZoneInfo"`
	}{}
	for _, az := range s.zones() {
		if len(names) > 0 && !slices.Contains(names, az) || len(ids) > 0 && !slices.Contains(ids, s.zoneID(az)) {
			continue
		}
		state := "available"
		if s.st.DownZones[az] {
			state = "impaired"
		}
		z := xAvailabilityZone{ZoneName: az, ZoneID: s.zoneID(az), ZoneState: state, RegionName: s.region, GroupName: s.region, NetworkBorderGroup: s.region, OptInStatus: "opt-in-not-required", ZoneType: "availability-zone"}
		ok, err := matches(filters, nil, func(name string) ([]string, bool) {
			switch name {
			case "zone-name":
				return []string{z.ZoneName}, true
			case "zone-id":
				return []string{z.ZoneID}, true
			case "state":
				return []string{z.ZoneState}, true
			case "region-name":
				return []string{z.RegionName}, true
			case "zone-type":
				return []string{z.ZoneType}, true
			case "opt-in-status":
				return []string{z.OptInStatus}, true
			case "group-name", "network-border-group":
				return []string{s.region}, true
			}
			return nil, false
		})
		if err != nil {
			return nil, err
		}
		if ok {
			out.Zones = append(out.Zones, z)
		}
	}
	return respond(req, out)
}

func (s *Service) describeRegions(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	type region struct {
		RegionName     string `xml:"regionName"`
		RegionEndpoint string `xml:"regionEndpoint"`
		OptInStatus    string `xml:"optInStatus"`
	}
	out := &struct {
		meta
		Regions []region `xml:"regionInfo>item"`
	}{}
	names := p.list("RegionName")
	if len(names) == 0 || slices.Contains(names, s.region) {
		out.Regions = append(out.Regions, region{s.region, "ec2." + s.region + ".amazonaws.com", "opt-in-not-required"})
	}
	return respond(req, out)
}

func (s *Service) describeAccountAttributes(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defaultVPC := "none"
	if v := s.defaultVPCLocked(); v != nil {
		defaultVPC = v.ID
	}
	s.mu.Unlock()
	type value struct {
		Value string `xml:"attributeValue"`
	}
	type attr struct {
		Name   string  `xml:"attributeName"`
		Values []value `xml:"attributeValueSet>item"`
	}
	all := []attr{
		{"supported-platforms", []value{{"VPC"}}},
		{"default-vpc", []value{{defaultVPC}}},
		{"max-instances", []value{{"64"}}},
		{"vpc-max-security-groups-per-interface", []value{{"5"}}},
		{"max-elastic-ips", []value{{"5"}}},
		{"vpc-max-elastic-ips", []value{{"5"}}},
	}
	names := p.list("AttributeName")
	out := &struct {
		meta
		Attrs []attr `xml:"accountAttributeSet>item"`
	}{}
	for _, a := range all {
		if len(names) == 0 || slices.Contains(names, a.Name) {
			out.Attrs = append(out.Attrs, a)
		}
	}
	return respond(req, out)
}

func (s *Service) xVPCLocked(v *vpc) xVPC {
	x := xVPC{VPCID: v.ID, OwnerID: s.account, State: "available", CIDRBlock: v.CIDR, DHCPOptionsID: "dopt-" + v.ID[4:12], InstanceTenancy: "default", IsDefault: v.IsDefault, Tags: tagItems(v.Tags)}
	x.CIDRAssociation = append(x.CIDRAssociation, struct {
		AssociationID string `xml:"associationId"`
		CIDRBlock     string `xml:"cidrBlock"`
		State         string `xml:"cidrBlockState>state"`
	}{"vpc-cidr-assoc-" + v.ID[4:], v.CIDR, "associated"})
	return x
}

func (s *Service) createVPC(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	cidr, err := p.required("CidrBlock")
	if err != nil {
		return nil, err
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() || prefix.Masked() != prefix {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter cidrBlock is invalid. This is not a valid CIDR block.", cidr)
	}
	if prefix.Bits() < 16 || prefix.Bits() > 28 {
		return nil, awsapi.Errorf("InvalidVpc.Range", "The CIDR '%s' is invalid.", cidr)
	}
	t, err := p.tagSpecs("vpc")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &vpc{ID: newID("vpc"), CIDR: cidr, Tags: t}
	s.st.VPCs[v.ID] = v
	s.createDefaultGroupLocked(v.ID)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		VPC xVPC `xml:"vpc"`
	}{VPC: s.xVPCLocked(v)})
}

func (s *Service) deleteVPC(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("VpcId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.VPCs[id]; !ok {
		return nil, awsapi.Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	}
	for _, sn := range s.st.Subnets {
		if sn.VPCID == id {
			return nil, awsapi.Errorf("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for _, g := range s.st.SecurityGroups {
		if g.VPCID == id && g.Name != "default" {
			return nil, awsapi.Errorf("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted.", id)
		}
	}
	for gid, g := range s.st.SecurityGroups {
		if g.VPCID == id {
			delete(s.st.SecurityGroups, gid)
		}
	}
	delete(s.st.VPCs, id)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) describeVPCs(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("VpcId")
	for _, id := range ids {
		if _, ok := s.st.VPCs[id]; !ok {
			return nil, awsapi.Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	filters := parseFilters(p)
	keep, err := selectMatching(s.st.VPCs, ids, filters, func(v *vpc) (tags, fieldFunc) {
		return v.Tags, func(name string) ([]string, bool) {
			switch name {
			case "vpc-id":
				return []string{v.ID}, true
			case "cidr", "cidr-block-association.cidr-block", "cidrBlock":
				return []string{v.CIDR}, true
			case "is-default", "isDefault":
				return []string{boolString(v.IsDefault)}, true
			case "state":
				return []string{"available"}, true
			case "owner-id":
				return []string{s.account}, true
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
		VPCs      items[xVPC] `xml:"vpcSet"`
		NextToken string      `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.VPCs = append(out.VPCs, s.xVPCLocked(s.st.VPCs[id]))
	}
	return respond(req, out)
}

func (s *Service) describeVPCAttribute(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("VpcId")
	if err != nil {
		return nil, err
	}
	attr, err := p.required("Attribute")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	v, ok := s.st.VPCs[id]
	s.mu.Unlock()
	if !ok {
		return nil, awsapi.Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
	}
	type boolValue struct {
		Value bool `xml:"value"`
	}
	out := &struct {
		meta
		VPCID     string     `xml:"vpcId"`
		Support   *boolValue `xml:"enableDnsSupport,omitempty"`
		Hostnames *boolValue `xml:"enableDnsHostnames,omitempty"`
		Metrics   *boolValue `xml:"enableNetworkAddressUsageMetrics,omitempty"`
	}{VPCID: id}
	switch attr {
	case "enableDnsSupport":
		out.Support = &boolValue{true}
	case "enableDnsHostnames":
		out.Hostnames = &boolValue{v.IsDefault}
	case "enableNetworkAddressUsageMetrics":
		out.Metrics = &boolValue{false}
	default:
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid.", attr)
	}
	return respond(req, out)
}

func (s *Service) xSubnetLocked(sn *subnet) xSubnet {
	prefix, _ := netip.ParsePrefix(sn.CIDR)
	total := 1<<(32-prefix.Bits()) - 5 // AWS reserves five addresses per subnet
	for _, e := range s.st.NetworkInterfaces {
		if e.SubnetID == sn.ID {
			total--
		}
	}
	return xSubnet{SubnetID: sn.ID, SubnetARN: fmt.Sprintf("arn:aws:ec2:%s:%s:subnet/%s", s.region, s.account, sn.ID), State: "available",
		OwnerID: s.account, VPCID: sn.VPCID, CIDRBlock: sn.CIDR, AvailableIPAddressCount: total, AvailabilityZone: sn.AZ,
		AvailabilityZoneID: s.zoneID(sn.AZ), DefaultForAZ: sn.DefaultForAZ, MapPublicIPOnLaunch: sn.DefaultForAZ, Tags: tagItems(sn.Tags)}
}

func (s *Service) createSubnet(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	vpcID, err := p.required("VpcId")
	if err != nil {
		return nil, err
	}
	cidr, err := p.required("CidrBlock")
	if err != nil {
		return nil, err
	}
	t, err := p.tagSpecs("subnet")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.st.VPCs[vpcID]
	if !ok {
		return nil, awsapi.Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() || prefix.Masked() != prefix {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter cidrBlock is invalid. This is not a valid CIDR block.", cidr)
	}
	vp, _ := netip.ParsePrefix(v.CIDR)
	if prefix.Bits() < vp.Bits() || !vp.Contains(prefix.Addr()) || prefix.Bits() > 28 {
		return nil, awsapi.Errorf("InvalidSubnet.Range", "The CIDR '%s' is invalid.", cidr)
	}
	for _, o := range s.st.Subnets {
		op, _ := netip.ParsePrefix(o.CIDR)
		if o.VPCID == vpcID && op.Overlaps(prefix) {
			return nil, awsapi.Errorf("InvalidSubnet.Conflict", "The CIDR '%s' conflicts with another subnet", cidr)
		}
	}
	az := p.str("AvailabilityZone")
	if az == "" {
		if zid := p.str("AvailabilityZoneId"); zid != "" {
			for _, z := range s.zones() {
				if s.zoneID(z) == zid {
					az = z
				}
			}
			if az == "" {
				return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter availabilityZoneId is invalid.", zid)
			}
		} else {
			az = s.zones()[0]
		}
	}
	if !s.validZone(az) {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: %s.", az, strings.Join(s.zones(), ", "))
	}
	if s.st.NextSubnetIndex >= 254 {
		return nil, awsapi.Errorf("SubnetLimitExceeded", "The local cloud supports at most 254 subnets (one loopback /24 each)")
	}
	s.st.NextSubnetIndex++
	sn := &subnet{ID: newID("subnet"), VPCID: vpcID, CIDR: cidr, AZ: az, Index: s.st.NextSubnetIndex, Tags: t}
	s.st.Subnets[sn.ID] = sn
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		Subnet xSubnet `xml:"subnet"`
	}{Subnet: s.xSubnetLocked(sn)})
}

func (s *Service) deleteSubnet(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("SubnetId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Subnets[id]; !ok {
		return nil, awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	}
	for _, e := range s.st.NetworkInterfaces {
		if e.SubnetID == id {
			return nil, awsapi.Errorf("DependencyViolation", "The subnet '%s' has dependencies and cannot be deleted.", id)
		}
	}
	delete(s.st.Subnets, id)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) describeSubnets(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("SubnetId")
	missing := missingKeys(s.st.Subnets, ids)
	if len(missing) > 0 {
		return nil, notFound("InvalidSubnetID.NotFound", "subnet", missing)
	}
	filters := parseFilters(p)
	keep, err := selectMatching(s.st.Subnets, ids, filters, func(sn *subnet) (tags, fieldFunc) {
		return sn.Tags, func(name string) ([]string, bool) {
			switch name {
			case "subnet-id":
				return []string{sn.ID}, true
			case "vpc-id", "vpcId":
				return []string{sn.VPCID}, true
			case "availability-zone", "availabilityZone":
				return []string{sn.AZ}, true
			case "availability-zone-id":
				return []string{s.zoneID(sn.AZ)}, true
			case "cidr-block", "cidr", "cidrBlock":
				return []string{sn.CIDR}, true
			case "default-for-az", "defaultForAz":
				return []string{boolString(sn.DefaultForAZ)}, true
			case "state":
				return []string{"available"}, true
			case "owner-id":
				return []string{s.account}, true
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
		Subnets   items[xSubnet] `xml:"subnetSet"`
		NextToken string         `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Subnets = append(out.Subnets, s.xSubnetLocked(s.st.Subnets[id]))
	}
	return respond(req, out)
}
