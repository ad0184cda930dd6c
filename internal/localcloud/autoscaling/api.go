package autoscaling

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/ec2"
)

// params reads awsQuery parameters.
type params url.Values

func (p params) get(name string) string { return url.Values(p).Get(name) }

func (p params) has(name string) bool { _, ok := p[name]; return ok }

// list reads name.member.1, name.member.2, ... up to the first gap.
func (p params) list(name string) []string {
	var out []string
	for i := 1; p.has(name + ".member." + strconv.Itoa(i)); i++ {
		out = append(out, p.get(name+".member."+strconv.Itoa(i)))
	}
	return out
}

func (p params) integer(name string, def int) (int, error) {
	v := p.get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, validation("Value '%s' at '%s' failed to satisfy constraint: Member must be an integer", v, lowerFirst(name))
	}
	return n, nil
}

func (p params) boolean(name string, def bool) (bool, error) {
	switch strings.ToLower(p.get(name)) {
	case "":
		return def, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, validation("Value '%s' at '%s' failed to satisfy constraint: Member must be a boolean", p.get(name), lowerFirst(name))
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func validation(format string, args ...any) error {
	return &awsapi.Error{Code: "ValidationError", Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// operation serves one action with s.mu held.
type operation func(s *Service, c *call) (any, error)

type call struct {
	ctx context.Context
	req *awsapi.Request
	p   params
}

var operations = map[string]operation{
	"CreateAutoScalingGroup":              (*Service).createGroup,
	"UpdateAutoScalingGroup":              (*Service).updateGroup,
	"DeleteAutoScalingGroup":              (*Service).deleteGroup,
	"DescribeAutoScalingGroups":           (*Service).describeGroups,
	"DescribeAutoScalingInstances":        (*Service).describeInstances,
	"SetDesiredCapacity":                  (*Service).setDesiredCapacity,
	"TerminateInstanceInAutoScalingGroup": (*Service).terminateInstance,
	"SetInstanceHealth":                   (*Service).setInstanceHealth,
	"SetInstanceProtection":               (*Service).setInstanceProtection,
	"SuspendProcesses":                    (*Service).suspendProcesses,
	"ResumeProcesses":                     (*Service).resumeProcesses,
	"DescribeScalingActivities":           (*Service).describeActivities,
	"CreateOrUpdateTags":                  (*Service).createOrUpdateTags,
	"DeleteTags":                          (*Service).deleteTags,
	"DescribeTags":                        (*Service).describeTags,
}

// Handle serves one Auto Scaling request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	if req.Protocol != awsapi.ProtocolQuery {
		return nil, awsapi.Errorf("InvalidAction", "Auto Scaling speaks the awsQuery protocol only")
	}
	op, ok := operations[req.Action]
	if !ok {
		return nil, awsapi.Errorf("InvalidAction", "The local cloud does not implement Auto Scaling action %s", req.Action)
	}
	s.mu.Lock()
	out, err := op(s, &call{ctx: ctx, req: req, p: params(req.Params)})
	if err == nil {
		err = s.saveLocked()
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return awsapi.QueryResponse(req, xmlns, out)
}

// authorize checks autoscaling:<Action> on the group's ARN ("*" for calls on no group).
func (c *call) authorize(resource string) error {
	return c.req.Authorize(c.ctx, "autoscaling:"+c.req.Action, resource, nil)
}

var groupNamePattern = regexp.MustCompile(`^[\x{0020}-\x{D7FF}\x{E000}-\x{FFFD}]{1,255}$`)

// processes are the scaling processes SuspendProcesses knows.
var processes = []string{"Launch", "Terminate", "AddToLoadBalancer", "AlarmNotification", "AZRebalance", "HealthCheck", "InstanceRefresh", "ReplaceUnhealthy", "ScheduledActions"}

func (s *Service) groupLocked(name string) (*group, error) {
	if name == "" {
		return nil, validation("1 validation error detected: Value null at 'autoScalingGroupName' failed to satisfy constraint: Member must not be null")
	}
	g, ok := s.groups[name]
	if !ok || g.Deleting {
		return nil, validation("AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	return g, nil
}

// configure applies the settings Create and Update share; create tells which are required.
func (s *Service) configure(c *call, g *group, create bool) error {
	p := c.p
	if lt := p.get("LaunchTemplate.LaunchTemplateId") + p.get("LaunchTemplate.LaunchTemplateName"); lt != "" || create {
		if p.get("LaunchConfigurationName") != "" || p.has("MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.LaunchTemplateId") {
			return validation("The local cloud launches Auto Scaling groups from launch templates only (LaunchTemplate), not launch configurations or mixed instances policies.")
		}
		ref := ec2.TemplateRef{ID: p.get("LaunchTemplate.LaunchTemplateId"), Name: p.get("LaunchTemplate.LaunchTemplateName"), Version: p.get("LaunchTemplate.Version")}
		if ref.ID == "" && ref.Name == "" {
			return validation("Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
		}
		id, name, err := s.fleet.ResolveTemplate(ref)
		if err != nil {
			msg := err.Error()
			if ae, ok := err.(*awsapi.Error); ok {
				msg = ae.Message
			}
			return validation("You must use a valid fully-formed launch template. %s", msg)
		}
		// Using a launch template launches instances: the caller needs ec2:RunInstances, as AWS
		// checks when the group is created or updated.
		if err := c.req.Authorize(c.ctx, "ec2:RunInstances", "*", nil); err != nil {
			return err
		}
		if ref.Version == "" {
			ref.Version = "$Default"
		}
		g.Template, g.TemplateID, g.TemplateName = ref, id, name
	}
	var err error
	if g.Min, err = p.integer("MinSize", g.Min); err != nil {
		return err
	}
	if g.Max, err = p.integer("MaxSize", g.Max); err != nil {
		return err
	}
	if create && (!p.has("MinSize") || !p.has("MaxSize")) {
		return validation("1 validation error detected: Value null at 'minSize' or 'maxSize' failed to satisfy constraint: Member must not be null")
	}
	desired := g.Desired
	if create {
		desired = g.Min
	}
	if desired, err = p.integer("DesiredCapacity", desired); err != nil {
		return err
	}
	if !create && !p.has("DesiredCapacity") {
		desired = max(min(g.Desired, g.Max), g.Min)
	}
	switch {
	case g.Min < 0 || g.Max < 0:
		return validation("MinSize and MaxSize must be at least 0.")
	case g.Min > g.Max:
		return validation("The parameter MaxSize must be greater than or equal to MinSize (%d > %d).", g.Min, g.Max)
	case desired < g.Min:
		return validation("Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, g.Min, g.Max)
	case desired > g.Max:
		return validation("Desired capacity:%d must be between the specified min size:%d and max size:%d", desired, g.Min, g.Max)
	}
	g.Desired = desired
	if v := p.get("VPCZoneIdentifier"); v != "" {
		var subnets, zones []string
		for _, sn := range strings.Split(v, ",") {
			sn = strings.TrimSpace(sn)
			az, err := s.fleet.SubnetZone(sn)
			if err != nil {
				return validation("The subnet ID '%s' does not exist", sn)
			}
			subnets = append(subnets, sn)
			if !slices.Contains(zones, az) {
				zones = append(zones, az)
			}
		}
		g.Subnets, g.Zones = subnets, zones
	} else if azs := p.list("AvailabilityZones"); len(azs) > 0 {
		for _, az := range azs {
			if !slices.Contains(s.fleet.Zones(), az) {
				return validation("Invalid Availability Zone: %s", az)
			}
		}
		g.Subnets, g.Zones = nil, azs
	}
	if create && len(g.Zones) == 0 {
		return validation("At least one Availability Zone or VPC Subnet is required.")
	}
	if v := p.get("HealthCheckType"); v != "" {
		if v != "EC2" && v != "ELB" && v != "VPC_LATTICE" && v != "EBS" {
			return validation("Value '%s' at 'healthCheckType' failed to satisfy constraint", v)
		}
		g.HealthCheckType = v
	}
	if g.GracePeriod, err = p.integer("HealthCheckGracePeriod", g.GracePeriod); err != nil {
		return err
	}
	if g.DefaultCooldown, err = p.integer("DefaultCooldown", g.DefaultCooldown); err != nil {
		return err
	}
	if g.ProtectNew, err = p.boolean("NewInstancesProtectedFromScaleIn", g.ProtectNew); err != nil {
		return err
	}
	if tp := p.list("TerminationPolicies"); len(tp) > 0 {
		g.TerminationOrder = tp
	}
	return nil
}

func (s *Service) createGroup(c *call) (any, error) {
	name := c.p.get("AutoScalingGroupName")
	if !groupNamePattern.MatchString(name) {
		return nil, validation("1 validation error detected: Value '%s' at 'autoScalingGroupName' failed to satisfy constraint: Member must have length between 1 and 255", name)
	}
	g := &group{Name: name, UUID: newUUID(), HealthCheckType: "EC2", DefaultCooldown: 300, Created: s.now(), Instances: map[string]*member{}}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	if old, ok := s.groups[name]; ok {
		msg := "AutoScalingGroup by this name already exists - A group with the name " + name + " already exists"
		if old.Deleting {
			// AWS's words for a name still held by a group deleted with ForceDelete
			// whose instances are not all terminated yet.
			msg += " and is pending delete.  Please wait until Autoscaling completes the deletion process before creating another group with the same name."
		}
		return nil, &awsapi.Error{Code: "AlreadyExists", Message: msg, Status: http.StatusBadRequest}
	}
	if err := s.configure(c, g, true); err != nil {
		return nil, err
	}
	tags, err := tagsFrom(c.p, name)
	if err != nil {
		return nil, err
	}
	g.Tags = mergeTags(nil, tags)
	s.groups[name] = g
	return nil, nil
}

func (s *Service) updateGroup(c *call) (any, error) {
	g, err := s.groupLocked(c.p.get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	updated := *g
	if err := s.configure(c, &updated, false); err != nil {
		return nil, err
	}
	*g = updated
	return nil, nil
}

func (s *Service) deleteGroup(c *call) (any, error) {
	g, err := s.groupLocked(c.p.get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	force, err := c.p.boolean("ForceDelete", false)
	if err != nil {
		return nil, err
	}
	if len(g.Instances) > 0 && !force {
		return nil, &awsapi.Error{Code: "ResourceInUse", Message: "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.", Status: http.StatusBadRequest}
	}
	if len(g.Instances) == 0 {
		delete(s.groups, g.Name)
		return nil, nil
	}
	g.Deleting, g.Desired = true, 0
	return nil, nil
}

func (s *Service) setDesiredCapacity(c *call) (any, error) {
	g, err := s.groupLocked(c.p.get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	if !c.p.has("DesiredCapacity") {
		return nil, validation("1 validation error detected: Value null at 'desiredCapacity' failed to satisfy constraint: Member must not be null")
	}
	n, err := c.p.integer("DesiredCapacity", 0)
	if err != nil {
		return nil, err
	}
	if n > g.Max {
		return nil, validation("New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", n, g.Max)
	}
	if n < g.Min {
		return nil, validation("New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", n, g.Min)
	}
	g.Desired = n
	return nil, nil
}

// memberLocked finds the group of an instance.
func (s *Service) memberLocked(id string) (*group, *member, error) {
	for _, name := range sortedKeys(s.groups) {
		if m, ok := s.groups[name].Instances[id]; ok {
			return s.groups[name], m, nil
		}
	}
	return nil, nil, validation("Instance Id not found - No managed instance found for instance ID: %s", id)
}

func (s *Service) terminateInstance(c *call) (any, error) {
	id := c.p.get("InstanceId")
	g, m, err := s.memberLocked(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	if !c.p.has("ShouldDecrementDesiredCapacity") {
		return nil, validation("1 validation error detected: Value null at 'shouldDecrementDesiredCapacity' failed to satisfy constraint: Member must not be null")
	}
	decrement, err := c.p.boolean("ShouldDecrementDesiredCapacity", false)
	if err != nil {
		return nil, err
	}
	cause := "At " + isoTime(s.now()) + " instance " + id + " was taken out of service in response to a user request"
	if decrement {
		if g.Desired <= g.Min {
			return nil, validation("Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.Min)
		}
		g.Desired--
		cause += fmt.Sprintf(", shrinking the capacity from %d to %d.", g.Desired+1, g.Desired)
	} else {
		cause += "."
	}
	m.Lifecycle = "Terminating"
	status, msg := "InProgress", ""
	if err := s.fleet.TerminateForGroup(id); err != nil {
		status, msg = "Failed", err.Error()
	}
	x := activityOf(g, s.recordLocked(g, "Terminating EC2 instance: "+id, cause, id, status, msg))
	x.AutoScalingGroupARN = s.groupARN(g)
	return struct {
		Activity activityXML `xml:"Activity"`
	}{x}, nil
}

func (s *Service) setInstanceHealth(c *call) (any, error) {
	g, m, err := s.memberLocked(c.p.get("InstanceId"))
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	switch h := c.p.get("HealthStatus"); h {
	case "Healthy", "Unhealthy":
		respectGrace, err := c.p.boolean("ShouldRespectGracePeriod", true)
		if err != nil {
			return nil, err
		}
		if h == "Unhealthy" && respectGrace && s.now().Before(m.Launched.Add(secondsOf(g.GracePeriod))) {
			return nil, validation("The instance %s is still in its health check grace period.", m.ID)
		}
		m.Health, m.Why = h, ""
	default:
		return nil, validation("Value '%s' at 'healthStatus' failed to satisfy constraint: Healthy or Unhealthy", h)
	}
	return nil, nil
}

func (s *Service) setInstanceProtection(c *call) (any, error) {
	g, err := s.groupLocked(c.p.get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	protect, err := c.p.boolean("ProtectedFromScaleIn", false)
	if err != nil {
		return nil, err
	}
	for _, id := range c.p.list("InstanceIds") {
		m, ok := g.Instances[id]
		if !ok {
			return nil, validation("The instance %s is not part of Auto Scaling group %s.", id, g.Name)
		}
		m.Protected = protect
	}
	return nil, nil
}

func (s *Service) suspendProcesses(c *call) (any, error) { return s.setProcesses(c, true) }
func (s *Service) resumeProcesses(c *call) (any, error)  { return s.setProcesses(c, false) }

func (s *Service) setProcesses(c *call, suspend bool) (any, error) {
	g, err := s.groupLocked(c.p.get("AutoScalingGroupName"))
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(g)); err != nil {
		return nil, err
	}
	names := c.p.list("ScalingProcesses")
	if len(names) == 0 {
		names = processes
	}
	for _, n := range names {
		if !slices.Contains(processes, n) {
			return nil, validation("Invalid scaling process name: %s", n)
		}
	}
	if g.Suspended == nil {
		g.Suspended = map[string]string{}
	}
	for _, n := range names {
		if suspend {
			g.Suspended[n] = "User suspended at " + isoTime(s.now())
		} else {
			delete(g.Suspended, n)
		}
	}
	return nil, nil
}

// Tags.

// tagsFrom reads Tags.member.N; every tag must name the group.
func tagsFrom(p params, group string) ([]groupTag, error) {
	var out []groupTag
	for i := 1; p.has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
		prefix := "Tags.member." + strconv.Itoa(i) + "."
		key := p.get(prefix + "Key")
		if key == "" || len(key) > 128 || len(p.get(prefix+"Value")) > 256 {
			return nil, validation("Tag keys must be 1-128 characters and values at most 256 characters.")
		}
		if strings.HasPrefix(strings.ToLower(key), "aws:") {
			return nil, validation("Tag keys starting with 'aws:' are reserved for internal use: %s", key)
		}
		if rid := p.get(prefix + "ResourceId"); group != "" && rid != "" && rid != group {
			return nil, validation("The tag %s names Auto Scaling group %s, not %s.", key, rid, group)
		}
		if rt := p.get(prefix + "ResourceType"); rt != "" && rt != "auto-scaling-group" {
			return nil, validation("Invalid resource type %s: tags belong to an auto-scaling-group.", rt)
		}
		propagate, err := p.boolean(prefix+"PropagateAtLaunch", false)
		if err != nil {
			return nil, err
		}
		out = append(out, groupTag{Key: key, Value: p.get(prefix + "Value"), PropagateAtLaunch: propagate})
	}
	return out, nil
}

func mergeTags(base, add []groupTag) []groupTag {
	out := append([]groupTag(nil), base...)
	for _, t := range add {
		i := slices.IndexFunc(out, func(o groupTag) bool { return o.Key == t.Key })
		if i >= 0 {
			out[i] = t
		} else {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b groupTag) int { return strings.Compare(a.Key, b.Key) })
	if len(out) > 50 {
		return nil
	}
	return out
}

// tagTargets groups Tags.member.N by the group each names.
func (s *Service) tagTargets(c *call) (map[string][]groupTag, error) {
	byGroup := map[string][]groupTag{}
	for i := 1; c.p.has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
		name := c.p.get("Tags.member." + strconv.Itoa(i) + ".ResourceId")
		one := params{}
		for k, v := range c.p {
			if rest, ok := strings.CutPrefix(k, "Tags.member."+strconv.Itoa(i)+"."); ok {
				one["Tags.member.1."+rest] = v
			}
		}
		tags, err := tagsFrom(one, name)
		if err != nil {
			return nil, err
		}
		g, err := s.groupLocked(name)
		if err != nil {
			return nil, err
		}
		if err := c.authorize(s.groupARN(g)); err != nil {
			return nil, err
		}
		byGroup[name] = append(byGroup[name], tags...)
	}
	return byGroup, nil
}

func (s *Service) createOrUpdateTags(c *call) (any, error) {
	byGroup, err := s.tagTargets(c)
	if err != nil {
		return nil, err
	}
	for name, tags := range byGroup {
		merged := mergeTags(s.groups[name].Tags, tags)
		if merged == nil {
			return nil, &awsapi.Error{Code: "LimitExceeded", Message: "An Auto Scaling group can have at most 50 tags.", Status: http.StatusBadRequest}
		}
		s.groups[name].Tags = merged
	}
	return nil, nil
}

func (s *Service) deleteTags(c *call) (any, error) {
	byGroup, err := s.tagTargets(c)
	if err != nil {
		return nil, err
	}
	for name, tags := range byGroup {
		g := s.groups[name]
		g.Tags = slices.DeleteFunc(g.Tags, func(t groupTag) bool {
			return slices.ContainsFunc(tags, func(d groupTag) bool { return d.Key == t.Key })
		})
	}
	return nil, nil
}

type tagXML struct {
	ResourceID        string `xml:"ResourceId"`
	ResourceType      string `xml:"ResourceType"`
	Key               string `xml:"Key"`
	Value             string `xml:"Value"`
	PropagateAtLaunch bool   `xml:"PropagateAtLaunch"`
}

func tagsXMLOf(g *group) []tagXML {
	out := []tagXML{}
	for _, t := range g.Tags {
		out = append(out, tagXML{ResourceID: g.Name, ResourceType: "auto-scaling-group", Key: t.Key, Value: t.Value, PropagateAtLaunch: t.PropagateAtLaunch})
	}
	return out
}

func (s *Service) describeTags(c *call) (any, error) {
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	var all []tagXML
	for _, name := range sortedKeys(s.groups) {
		if g := s.groups[name]; !g.Deleting {
			all = append(all, tagsXMLOf(g)...)
		}
	}
	filters := map[string][]string{}
	for i := 1; c.p.has("Filters.member." + strconv.Itoa(i) + ".Name"); i++ {
		prefix := "Filters.member." + strconv.Itoa(i) + "."
		filters[c.p.get(prefix+"Name")] = c.p.list(prefix + "Values")
	}
	var keep []tagXML
	for _, t := range all {
		ok := true
		for name, values := range filters {
			switch name {
			case "auto-scaling-group":
				ok = ok && slices.Contains(values, t.ResourceID)
			case "key":
				ok = ok && slices.Contains(values, t.Key)
			case "value":
				ok = ok && slices.Contains(values, t.Value)
			case "propagate-at-launch":
				ok = ok && slices.Contains(values, strconv.FormatBool(t.PropagateAtLaunch))
			default:
				return nil, validation("Invalid filter name: %s", name)
			}
		}
		if ok {
			keep = append(keep, t)
		}
	}
	page, next, err := pageOf(keep, c.p)
	if err != nil {
		return nil, err
	}
	return struct {
		Tags      []tagXML `xml:"Tags>member"`
		NextToken string   `xml:"NextToken,omitempty"`
	}{append([]tagXML{}, page...), next}, nil
}

// pageOf pages a list by MaxRecords (1-100, default 50) and NextToken.
func pageOf[T any](all []T, p params) ([]T, string, error) {
	limit, err := p.integer("MaxRecords", 50)
	if err != nil {
		return nil, "", err
	}
	if limit < 1 || limit > 100 {
		return nil, "", validation("Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value between 1 and 100", limit)
	}
	start := 0
	if tok := p.get("NextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, aerr := strconv.Atoi(string(raw))
		if err != nil || aerr != nil || n < 0 || n > len(all) {
			return nil, "", &awsapi.Error{Code: "InvalidNextToken", Message: "The token '" + tok + "' is invalid.", Status: http.StatusBadRequest}
		}
		start = n
	}
	end := min(start+limit, len(all))
	next := ""
	if end < len(all) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return all[start:end], next, nil
}
