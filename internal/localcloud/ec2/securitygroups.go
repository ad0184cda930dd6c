package ec2

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

func (s *Service) createDefaultGroupLocked(vpcID string) *securityGroup {
	g := &securityGroup{ID: newID("sg"), Name: "default", Description: "default VPC security group", VPCID: vpcID, Tags: tags{}}
	g.Ingress = []sgRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, GroupID: g.ID}}
	g.Egress = []sgRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}
	s.st.SecurityGroups[g.ID] = g
	return g
}

func (s *Service) defaultGroupLocked(vpcID string) *securityGroup {
	for _, g := range s.st.SecurityGroups {
		if g.VPCID == vpcID && g.Name == "default" {
			return g
		}
	}
	return s.createDefaultGroupLocked(vpcID)
}

// findGroupLocked resolves a GroupId, or a GroupName in the default VPC.
func (s *Service) findGroupLocked(id, name string) (*securityGroup, error) {
	if id != "" {
		if g, ok := s.st.SecurityGroups[id]; ok {
			return g, nil
		}
		if err := checkID(id, "sg", "InvalidGroupId.Malformed"); err != nil {
			return nil, err
		}
		return nil, awsapi.Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	if name != "" {
		dv := s.defaultVPCLocked()
		for _, g := range s.st.SecurityGroups {
			if g.Name == name && dv != nil && g.VPCID == dv.ID {
				return g, nil
			}
		}
		return nil, awsapi.Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, dv.ID)
	}
	return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter groupName or groupId")
}

func (s *Service) createSecurityGroup(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	name, err := p.required("GroupName")
	if err != nil {
		return nil, err
	}
	desc, err := p.required("GroupDescription")
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(name, "sg-") {
		return nil, awsapi.Errorf("InvalidParameterValue", "Group names may not be in the format sg-*.")
	}
	if len(name) > 255 || len(desc) > 255 {
		return nil, awsapi.Errorf("InvalidParameterValue", "Group name and description must be at most 255 characters")
	}
	t, err := p.tagSpecs("security-group")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vpcID := p.str("VpcId")
	if vpcID == "" {
		if dv := s.defaultVPCLocked(); dv != nil {
			vpcID = dv.ID
		}
	}
	if _, ok := s.st.VPCs[vpcID]; !ok {
		return nil, awsapi.Errorf("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	for _, g := range s.st.SecurityGroups {
		if g.VPCID == vpcID && g.Name == name {
			return nil, awsapi.Errorf("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpcID)
		}
	}
	g := &securityGroup{ID: newID("sg"), Name: name, Description: desc, VPCID: vpcID, Tags: t}
	g.Egress = []sgRule{{ID: newID("sgr"), Protocol: "-1", FromPort: -1, ToPort: -1, CIDR: "0.0.0.0/0"}}
	s.st.SecurityGroups[g.ID] = g
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		Return  bool   `xml:"return"`
		GroupID string `xml:"groupId"`
		ARN     string `xml:"securityGroupArn"`
		Tags    []xTag `xml:"tagSet>item,omitempty"`
	}{Return: true, GroupID: g.ID, ARN: s.groupARN(g.ID), Tags: tagItems(g.Tags)})
}

func (s *Service) groupARN(id string) string {
	return fmt.Sprintf("arn:aws:ec2:%s:%s:security-group/%s", s.region, s.account, id)
}

func (s *Service) deleteSecurityGroup(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.findGroupLocked(p.str("GroupId"), p.str("GroupName"))
	if err != nil {
		return nil, err
	}
	if g.Name == "default" {
		return nil, awsapi.Errorf("CannotDelete", "the specified group: \"%s\" name: \"default\" cannot be deleted by a user", g.ID)
	}
	for _, e := range s.st.NetworkInterfaces {
		if slices.Contains(e.Groups, g.ID) {
			return nil, awsapi.Errorf("DependencyViolation", "resource %s has a dependent object", g.ID)
		}
	}
	for _, o := range s.st.SecurityGroups {
		if o.ID == g.ID {
			continue
		}
		for _, r := range append(append([]sgRule(nil), o.Ingress...), o.Egress...) {
			if r.GroupID == g.ID {
				return nil, awsapi.Errorf("DependencyViolation", "resource %s has a dependent object", g.ID)
			}
		}
	}
	delete(s.st.SecurityGroups, g.ID)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		Return  bool   `xml:"return"`
		GroupID string `xml:"groupId"`
	}{Return: true, GroupID: g.ID})
}

// normalizeProtocol maps the names and numbers EC2 accepts to the form it reports.
func normalizeProtocol(p string) (string, error) {
	switch strings.ToLower(p) {
	case "-1", "all":
		return "-1", nil
	case "tcp", "6":
		return "tcp", nil
	case "udp", "17":
		return "udp", nil
	case "icmp", "1":
		return "icmp", nil
	case "icmpv6", "58":
		return "icmpv6", nil
	}
	if n, err := strconv.Atoi(p); err == nil && n >= 0 && n <= 255 {
		return p, nil
	}
	return "", awsapi.Errorf("InvalidParameterValue", "Invalid value '%s' for IP protocol. Unknown protocol.", p)
}

// parsePermissions reads IpPermissions.N (or the legacy top-level CidrIp/IpProtocol form) into
// one rule per peer.
func (s *Service) parsePermissionsLocked(p params) ([]sgRule, error) {
	perms := p.structs("IpPermissions")
	if len(perms) == 0 && p.str("IpProtocol") != "" {
		legacy := params{"IpProtocol": p.str("IpProtocol"), "FromPort": p.str("FromPort"), "ToPort": p.str("ToPort")}
		if c := p.str("CidrIp"); c != "" {
			legacy["IpRanges.1.CidrIp"] = c
		}
		if n := p.str("SourceSecurityGroupName"); n != "" {
			legacy["Groups.1.GroupName"] = n
		}
		perms = []params{legacy}
	}
	if len(perms) == 0 {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter ipPermissions")
	}
	var rules []sgRule
	for _, perm := range perms {
		proto, err := normalizeProtocol(perm.str("IpProtocol"))
		if err != nil {
			return nil, err
		}
		from, to := -1, -1
		if proto != "-1" {
			if from, err = perm.integer("FromPort", -1); err != nil {
				return nil, err
			}
			if to, err = perm.integer("ToPort", -1); err != nil {
				return nil, err
			}
			if proto == "tcp" || proto == "udp" {
				if from < 0 || to > 65535 || from > to {
					return nil, awsapi.Errorf("InvalidParameterValue", "Invalid value '%d-%d' for portRange. Must specify both from and to ports with TCP/UDP.", from, to)
				}
			}
		}
		base := sgRule{Protocol: proto, FromPort: from, ToPort: to}
		n := 0
		for _, r := range perm.structs("IpRanges") {
			c := r.str("CidrIp")
			pfx, err := netip.ParsePrefix(c)
			if err != nil || !pfx.Addr().Is4() {
				return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter cidrIp is invalid. This is not a valid CIDR block.", c)
			}
			rule := base
			rule.CIDR, rule.Description = pfx.Masked().String(), r.str("Description")
			rules, n = append(rules, rule), n+1
		}
		for _, r := range perm.structs("Ipv6Ranges") {
			c := r.str("CidrIpv6")
			pfx, err := netip.ParsePrefix(c)
			if err != nil || !pfx.Addr().Is6() {
				return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter cidrIpv6 is invalid. This is not a valid IPv6 CIDR block.", c)
			}
			rule := base
			rule.CIDRv6, rule.Description = pfx.Masked().String(), r.str("Description")
			rules, n = append(rules, rule), n+1
		}
		for _, r := range perm.structs("Groups") {
			g, err := s.findGroupLocked(r.str("GroupId"), r.str("GroupName"))
			if err != nil {
				return nil, err
			}
			rule := base
			rule.GroupID, rule.Description = g.ID, r.str("Description")
			rules, n = append(rules, rule), n+1
		}
		if n == 0 {
			return nil, awsapi.Errorf("MissingParameter", "Each IP permission needs at least one of IpRanges, Ipv6Ranges or Groups")
		}
	}
	return rules, nil
}

func sameRule(a, b sgRule) bool {
	return a.Protocol == b.Protocol && a.FromPort == b.FromPort && a.ToPort == b.ToPort && a.CIDR == b.CIDR && a.CIDRv6 == b.CIDRv6 && a.GroupID == b.GroupID
}

func describeRule(r sgRule) string {
	peer := r.CIDR + r.CIDRv6 + r.GroupID
	return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", peer, strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
}

func (s *Service) authorizeIngress(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	return s.authorize(req, p, false)
}

func (s *Service) authorizeEgress(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	return s.authorize(req, p, true)
}

func (s *Service) authorize(req *awsapi.Request, p params, egress bool) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.findGroupLocked(p.str("GroupId"), p.str("GroupName"))
	if err != nil {
		return nil, err
	}
	rules, err := s.parsePermissionsLocked(p)
	if err != nil {
		return nil, err
	}
	existing := &g.Ingress
	if egress {
		existing = &g.Egress
	}
	for _, r := range rules {
		for _, e := range *existing {
			if sameRule(r, e) {
				return nil, awsapi.Errorf("InvalidPermission.Duplicate", "the specified rule \"%s\" already exists", describeRule(r))
			}
		}
	}
	if len(*existing)+len(rules) > 120 {
		return nil, awsapi.Errorf("RulesPerSecurityGroupLimitExceeded", "The maximum number of rules per security group has been reached.")
	}
	out := &struct {
		meta
		Return bool                 `xml:"return"`
		Rules  []xSecurityGroupRule `xml:"securityGroupRuleSet>item"`
	}{Return: true}
	for i := range rules {
		rules[i].ID = newID("sgr")
		*existing = append(*existing, rules[i])
		out.Rules = append(out.Rules, s.xRule(g, rules[i], egress))
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, out)
}

func (s *Service) revokeIngress(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	return s.revoke(req, p, false)
}

func (s *Service) revokeEgress(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	return s.revoke(req, p, true)
}

func (s *Service) revoke(req *awsapi.Request, p params, egress bool) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.findGroupLocked(p.str("GroupId"), p.str("GroupName"))
	if err != nil {
		return nil, err
	}
	existing := &g.Ingress
	if egress {
		existing = &g.Egress
	}
	var remove []int
	if ruleIDs := p.list("SecurityGroupRuleId"); len(ruleIDs) > 0 {
		for _, id := range ruleIDs {
			found := false
			for i, e := range *existing {
				if e.ID == id {
					remove, found = append(remove, i), true
				}
			}
			if !found {
				return nil, awsapi.Errorf("InvalidSecurityGroupRuleId.NotFound", "The security group rule ID '%s' does not exist", id)
			}
		}
	} else {
		rules, err := s.parsePermissionsLocked(p)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			found := false
			for i, e := range *existing {
				if sameRule(r, e) {
					remove, found = append(remove, i), true
				}
			}
			if !found {
				return nil, awsapi.Errorf("InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
			}
		}
	}
	var kept []sgRule
	var revoked []string
	for i, e := range *existing {
		if slices.Contains(remove, i) {
			revoked = append(revoked, e.ID)
			continue
		}
		kept = append(kept, e)
	}
	*existing = kept
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	type revokedRule struct {
		ID      string `xml:"securityGroupRuleId"`
		GroupID string `xml:"groupId"`
	}
	out := &struct {
		meta
		Return  bool          `xml:"return"`
		Revoked []revokedRule `xml:"revokedSecurityGroupRuleSet>item"`
	}{Return: true}
	for _, id := range revoked {
		out.Revoked = append(out.Revoked, revokedRule{id, g.ID})
	}
	return respond(req, out)
}

func (s *Service) xRule(g *securityGroup, r sgRule, egress bool) xSecurityGroupRule {
	x := xSecurityGroupRule{SecurityGroupRuleID: r.ID, GroupID: g.ID, GroupOwnerID: s.account, IsEgress: egress, IPProtocol: r.Protocol,
		FromPort: r.FromPort, ToPort: r.ToPort, CIDRIPv4: r.CIDR, CIDRIPv6: r.CIDRv6, Description: r.Description,
		ARN: fmt.Sprintf("arn:aws:ec2:%s:%s:security-group-rule/%s", s.region, s.account, r.ID)}
	if r.GroupID != "" {
		x.ReferencedGroup = &struct {
			GroupID string `xml:"groupId"`
			UserID  string `xml:"userId"`
		}{r.GroupID, s.account}
	}
	return x
}

// permissions groups rules with the same protocol and ports into IpPermissions, as EC2 shows them.
func (s *Service) permissions(rules []sgRule) []xIPPermission {
	var out []xIPPermission
	index := map[string]int{}
	for _, r := range rules {
		key := fmt.Sprintf("%s/%d/%d", r.Protocol, r.FromPort, r.ToPort)
		i, ok := index[key]
		if !ok {
			perm := xIPPermission{IPProtocol: r.Protocol}
			if r.Protocol != "-1" {
				from, to := r.FromPort, r.ToPort
				perm.FromPort, perm.ToPort = &from, &to
			}
			out = append(out, perm)
			i = len(out) - 1
			index[key] = i
		}
		switch {
		case r.CIDR != "":
			out[i].IPRanges = append(out[i].IPRanges, xIPRange{r.CIDR, r.Description})
		case r.CIDRv6 != "":
			out[i].IPv6Ranges = append(out[i].IPv6Ranges, xIPv6Range{r.CIDRv6, r.Description})
		case r.GroupID != "":
			out[i].Groups = append(out[i].Groups, xGroupPair{UserID: s.account, GroupID: r.GroupID, Description: r.Description})
		}
	}
	return out
}

func (s *Service) xGroupLocked(g *securityGroup) xSecurityGroup {
	return xSecurityGroup{OwnerID: s.account, GroupID: g.ID, GroupName: g.Name, GroupDescription: g.Description, VPCID: g.VPCID,
		SecurityGroupARN: s.groupARN(g.ID), IPPermissions: s.permissions(g.Ingress), IPPermissionsEg: s.permissions(g.Egress), Tags: tagItems(g.Tags)}
}

func ruleFields(rules []sgRule, field string) []string {
	var out []string
	for _, r := range rules {
		switch field {
		case "from-port":
			out = append(out, strconv.Itoa(r.FromPort))
		case "to-port":
			out = append(out, strconv.Itoa(r.ToPort))
		case "protocol":
			out = append(out, r.Protocol)
		case "cidr":
			if r.CIDR != "" {
				out = append(out, r.CIDR)
			}
		case "ipv6-cidr":
			if r.CIDRv6 != "" {
				out = append(out, r.CIDRv6)
			}
		case "group-id":
			if r.GroupID != "" {
				out = append(out, r.GroupID)
			}
		}
	}
	return out
}

func (s *Service) describeSecurityGroups(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("GroupId")
	names := p.list("GroupName")
	missing := missingKeys(s.st.SecurityGroups, ids)
	if len(missing) > 0 {
		return nil, awsapi.Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", strings.Join(missing, ", "))
	}
	candidates := s.st.SecurityGroups
	if len(names) > 0 {
		// Groups are named only in the default VPC.
		dv := s.defaultVPCLocked()
		candidates = keepWhere(candidates, func(g *securityGroup) bool {
			return slices.Contains(names, g.Name) && dv != nil && g.VPCID == dv.ID
		})
	}
	filters := parseFilters(p)
	keep, err := selectMatching(candidates, ids, filters, func(g *securityGroup) (tags, fieldFunc) {
		return g.Tags, func(name string) ([]string, bool) {
			switch name {
			case "group-id":
				return []string{g.ID}, true
			case "group-name":
				return []string{g.Name}, true
			case "vpc-id":
				return []string{g.VPCID}, true
			case "description":
				return []string{g.Description}, true
			case "owner-id":
				return []string{s.account}, true
			}
			if f, ok := strings.CutPrefix(name, "egress.ip-permission."); ok {
				return ruleFields(g.Egress, f), true
			}
			if f, ok := strings.CutPrefix(name, "ip-permission."); ok {
				return ruleFields(g.Ingress, f), true
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	if len(names) > 0 && len(keep) == 0 && len(filters) == 0 {
		return nil, awsapi.Errorf("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC", strings.Join(names, ", "))
	}
	pg, next, err := page(keep, p, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Groups    items[xSecurityGroup] `xml:"securityGroupInfo"`
		NextToken string                `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Groups = append(out.Groups, s.xGroupLocked(s.st.SecurityGroups[id]))
	}
	return respond(req, out)
}

func (s *Service) describeSecurityGroupRules(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ruleIDs := p.list("SecurityGroupRuleId")
	filters := parseFilters(p)
	type ref struct {
		g      *securityGroup
		r      sgRule
		egress bool
	}
	byID := map[string]ref{}
	for _, g := range s.st.SecurityGroups {
		for _, r := range g.Ingress {
			byID[r.ID] = ref{g, r, false}
		}
		for _, r := range g.Egress {
			byID[r.ID] = ref{g, r, true}
		}
	}
	keep, err := selectMatching(byID, ruleIDs, filters, func(x ref) (tags, fieldFunc) {
		return nil, func(name string) ([]string, bool) {
			switch name {
			case "group-id":
				return []string{x.g.ID}, true
			case "security-group-rule-id":
				return []string{x.r.ID}, true
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
		Rules     items[xSecurityGroupRule] `xml:"securityGroupRuleSet"`
		NextToken string                    `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		x := byID[id]
		out.Rules = append(out.Rules, s.xRule(x.g, x.r, x.egress))
	}
	return respond(req, out)
}
