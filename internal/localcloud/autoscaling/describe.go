package autoscaling

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

func secondsOf(n int) time.Duration { return time.Duration(n) * time.Second }

type launchTemplateXML struct {
	LaunchTemplateID   string `xml:"LaunchTemplateId"`
	LaunchTemplateName string `xml:"LaunchTemplateName"`
	Version            string `xml:"Version"`
}

type instanceXML struct {
	InstanceID           string            `xml:"InstanceId"`
	AvailabilityZone     string            `xml:"AvailabilityZone"`
	LifecycleState       string            `xml:"LifecycleState"`
	HealthStatus         string            `xml:"HealthStatus"`
	LaunchTemplate       launchTemplateXML `xml:"LaunchTemplate"`
	ProtectedFromScaleIn bool              `xml:"ProtectedFromScaleIn"`
	AutoScalingGroupName string            `xml:"AutoScalingGroupName,omitempty"`
}

type suspendedXML struct {
	ProcessName      string `xml:"ProcessName"`
	SuspensionReason string `xml:"SuspensionReason"`
}

type groupXML struct {
	AutoScalingGroupName             string            `xml:"AutoScalingGroupName"`
	AutoScalingGroupARN              string            `xml:"AutoScalingGroupARN"`
	LaunchTemplate                   launchTemplateXML `xml:"LaunchTemplate"`
	MinSize                          int               `xml:"MinSize"`
	MaxSize                          int               `xml:"MaxSize"`
	DesiredCapacity                  int               `xml:"DesiredCapacity"`
	DefaultCooldown                  int               `xml:"DefaultCooldown"`
	AvailabilityZones                []string          `xml:"AvailabilityZones>member"`
	LoadBalancerNames                struct{}          `xml:"LoadBalancerNames"`
	TargetGroupARNs                  struct{}          `xml:"TargetGroupARNs"`
	HealthCheckType                  string            `xml:"HealthCheckType"`
	HealthCheckGracePeriod           int               `xml:"HealthCheckGracePeriod"`
	Instances                        []instanceXML     `xml:"Instances>member"`
	CreatedTime                      string            `xml:"CreatedTime"`
	SuspendedProcesses               []suspendedXML    `xml:"SuspendedProcesses>member"`
	VPCZoneIdentifier                string            `xml:"VPCZoneIdentifier,omitempty"`
	EnabledMetrics                   struct{}          `xml:"EnabledMetrics"`
	Status                           string            `xml:"Status,omitempty"`
	Tags                             []tagXML          `xml:"Tags>member"`
	TerminationPolicies              []string          `xml:"TerminationPolicies>member"`
	NewInstancesProtectedFromScaleIn bool              `xml:"NewInstancesProtectedFromScaleIn"`
	ServiceLinkedRoleARN             string            `xml:"ServiceLinkedRoleARN"`
}

func (s *Service) templateXML(g *group) launchTemplateXML {
	return launchTemplateXML{LaunchTemplateID: g.TemplateID, LaunchTemplateName: g.TemplateName, Version: g.Template.Version}
}

func (s *Service) groupXMLOf(g *group) groupXML {
	x := groupXML{AutoScalingGroupName: g.Name, AutoScalingGroupARN: s.groupARN(g), LaunchTemplate: s.templateXML(g),
		MinSize: g.Min, MaxSize: g.Max, DesiredCapacity: g.Desired, DefaultCooldown: g.DefaultCooldown,
		AvailabilityZones: append([]string{}, g.Zones...), HealthCheckType: g.HealthCheckType, HealthCheckGracePeriod: g.GracePeriod,
		Instances: []instanceXML{}, CreatedTime: isoTime(g.Created), SuspendedProcesses: []suspendedXML{},
		VPCZoneIdentifier: strings.Join(g.Subnets, ","), Tags: tagsXMLOf(g), TerminationPolicies: g.TerminationOrder,
		NewInstancesProtectedFromScaleIn: g.ProtectNew,
		ServiceLinkedRoleARN:             "arn:aws:iam::" + s.account + ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"}
	if len(x.TerminationPolicies) == 0 {
		x.TerminationPolicies = []string{"Default"}
	}
	if g.Deleting {
		x.Status = "Delete in progress"
	}
	for _, id := range sortedKeys(g.Instances) {
		x.Instances = append(x.Instances, s.instanceXMLOf(g, g.Instances[id], false))
	}
	for _, p := range sortedKeys(g.Suspended) {
		x.SuspendedProcesses = append(x.SuspendedProcesses, suspendedXML{ProcessName: p, SuspensionReason: g.Suspended[p]})
	}
	return x
}

func (s *Service) instanceXMLOf(g *group, m *member, withGroup bool) instanceXML {
	lt := s.templateXML(g)
	lt.Version = m.TemplateVersion
	x := instanceXML{InstanceID: m.ID, AvailabilityZone: m.AZ, LifecycleState: m.Lifecycle, HealthStatus: m.Health, LaunchTemplate: lt, ProtectedFromScaleIn: m.Protected}
	if withGroup {
		x.AutoScalingGroupName = g.Name
		// DescribeAutoScalingInstances spells health in capitals.
		x.HealthStatus = strings.ToUpper(m.Health)
	}
	return x
}

func (s *Service) describeGroups(c *call) (any, error) {
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	names := c.p.list("AutoScalingGroupNames")
	type filter struct {
		name   string
		values []string
	}
	var filters []filter
	for i := 1; c.p.has("Filters.member." + strconv.Itoa(i) + ".Name"); i++ {
		prefix := "Filters.member." + strconv.Itoa(i) + "."
		filters = append(filters, filter{c.p.get(prefix + "Name"), c.p.list(prefix + "Values")})
	}
	var keep []groupXML
	for _, name := range sortedKeys(s.groups) {
		g := s.groups[name]
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		ok := true
		for _, f := range filters {
			match := false
			for _, t := range g.Tags {
				switch {
				case strings.HasPrefix(f.name, "tag:"):
					match = match || t.Key == strings.TrimPrefix(f.name, "tag:") && slices.Contains(f.values, t.Value)
				case f.name == "tag-key":
					match = match || slices.Contains(f.values, t.Key)
				case f.name == "tag-value":
					match = match || slices.Contains(f.values, t.Value)
				default:
					return nil, validation("Invalid filter name: %s", f.name)
				}
			}
			ok = ok && match
		}
		if ok {
			keep = append(keep, s.groupXMLOf(g))
		}
	}
	page, next, err := pageOf(keep, c.p)
	if err != nil {
		return nil, err
	}
	return struct {
		Groups    []groupXML `xml:"AutoScalingGroups>member"`
		NextToken string     `xml:"NextToken,omitempty"`
	}{append([]groupXML{}, page...), next}, nil
}

func (s *Service) describeInstances(c *call) (any, error) {
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	ids := c.p.list("InstanceIds")
	var keep []instanceXML
	for _, name := range sortedKeys(s.groups) {
		g := s.groups[name]
		for _, id := range sortedKeys(g.Instances) {
			if len(ids) == 0 || slices.Contains(ids, id) {
				keep = append(keep, s.instanceXMLOf(g, g.Instances[id], true))
			}
		}
	}
	page, next, err := pageOf(keep, c.p)
	if err != nil {
		return nil, err
	}
	return struct {
		Instances []instanceXML `xml:"AutoScalingInstances>member"`
		NextToken string        `xml:"NextToken,omitempty"`
	}{append([]instanceXML{}, page...), next}, nil
}

type activityXML struct {
	ActivityID           string `xml:"ActivityId"`
	AutoScalingGroupName string `xml:"AutoScalingGroupName"`
	AutoScalingGroupARN  string `xml:"AutoScalingGroupARN"`
	Description          string `xml:"Description"`
	Cause                string `xml:"Cause"`
	StartTime            string `xml:"StartTime"`
	EndTime              string `xml:"EndTime,omitempty"`
	StatusCode           string `xml:"StatusCode"`
	StatusMessage        string `xml:"StatusMessage,omitempty"`
	Progress             int    `xml:"Progress"`
	Details              string `xml:"Details"`
}

func activityOf(g *group, a *activity) activityXML {
	x := activityXML{ActivityID: a.ID, AutoScalingGroupName: g.Name, Description: a.Description, Cause: a.Cause,
		StartTime: isoTime(a.Start), StatusCode: a.Status, StatusMessage: a.StatusMessage, Details: "{}"}
	if !a.End.IsZero() {
		x.EndTime, x.Progress = isoTime(a.End), 100
	}
	return x
}

func (s *Service) describeActivities(c *call) (any, error) {
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	name := c.p.get("AutoScalingGroupName")
	ids := c.p.list("ActivityIds")
	var keep []activityXML
	for _, gname := range sortedKeys(s.groups) {
		g := s.groups[gname]
		if name != "" && gname != name {
			continue
		}
		// Newest first, as Auto Scaling lists them.
		for i := len(g.Activities) - 1; i >= 0; i-- {
			a := g.Activities[i]
			if len(ids) == 0 || slices.Contains(ids, a.ID) {
				x := activityOf(g, a)
				x.AutoScalingGroupARN = s.groupARN(g)
				keep = append(keep, x)
			}
		}
	}
	if name != "" && keep == nil {
		if _, err := s.groupLocked(name); err != nil {
			return nil, err
		}
	}
	page, next, err := pageOf(keep, c.p)
	if err != nil {
		return nil, err
	}
	return struct {
		Activities []activityXML `xml:"Activities>member"`
		NextToken  string        `xml:"NextToken,omitempty"`
	}{append([]activityXML{}, page...), next}, nil
}
