package ec2

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// What the Auto Scaling emulator asks of EC2, in-process: the launch templates a group names,
// the zones of its subnets, launching from a template, the health of its instances, and
// terminating them. Launching goes through the same path as RunInstances.

// TemplateRef is a launch template version as a group names it.
type TemplateRef struct {
	ID      string // lt-...; or Name
	Name    string
	Version string // "$Latest", "$Default", a number; "" is $Default
}

// ResolveTemplate checks that a template version exists and returns the template's id and name
// (the group records both, as Auto Scaling describes them).
func (s *Service) ResolveTemplate(ref TemplateRef) (id, name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(ref.ID, ref.Name)
	if err != nil {
		return "", "", err
	}
	if _, err := lt.version(ref.Version); err != nil {
		return "", "", err
	}
	return lt.ID, lt.Name, nil
}

// SubnetZone returns the Availability Zone of a subnet.
func (s *Service) SubnetZone(subnetID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn, ok := s.st.Subnets[subnetID]
	if !ok {
		return "", awsapi.Errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
	}
	return sn.AZ, nil
}

// DefaultSubnet returns the default subnet of a zone.
func (s *Service) DefaultSubnet(az string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range sortedKeys(s.st.Subnets) {
		if sn := s.st.Subnets[id]; sn.DefaultForAZ && sn.AZ == az {
			return sn.ID, nil
		}
	}
	return "", awsapi.Errorf("InvalidParameterValue", "The availability zone %s has no default subnet.", az)
}

// LaunchFromTemplate launches one instance from a template version into a subnet, with tags
// added to the template's, as an Auto Scaling group launches. systemTags are set by AWS itself
// (aws:autoscaling:groupName), past the check that keeps callers out of the aws: prefix. It
// returns the instance id.
func (s *Service) LaunchFromTemplate(ctx context.Context, ref TemplateRef, subnetID string, instanceTags, systemTags map[string]string) (string, error) {
	p := params{"MinCount": "1", "MaxCount": "1", "LaunchTemplate.Version": ref.Version}
	if ref.ID != "" {
		p["LaunchTemplate.LaunchTemplateId"] = ref.ID
	} else {
		p["LaunchTemplate.LaunchTemplateName"] = ref.Name
	}
	keys := make([]string, 0, len(instanceTags))
	for k := range instanceTags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		p["TagSpecification.1.ResourceType"] = "instance"
		for i, k := range keys {
			p["TagSpecification.1.Tag."+strconv.Itoa(i+1)+".Key"] = k
			p["TagSpecification.1.Tag."+strconv.Itoa(i+1)+".Value"] = instanceTags[k]
		}
	}
	merged, err := s.withLaunchTemplate(p)
	if err != nil {
		return "", err
	}
	// The group's subnet goes where the template would put one: on the primary network
	// interface when the template describes interfaces, else on the instance. A template for a
	// group may not name an existing interface (several instances cannot share it).
	if merged.has("NetworkInterface") {
		for _, n := range merged.indices("NetworkInterface") {
			prefix := "NetworkInterface." + strconv.Itoa(n) + "."
			if merged[prefix+"NetworkInterfaceId"] != "" {
				return "", awsapi.Errorf("ValidationError", "A launch template for an Auto Scaling group may not specify a network interface ID.")
			}
			if merged[prefix+"DeviceIndex"] == "0" {
				merged[prefix+"SubnetId"] = subnetID
			}
		}
	} else {
		merged["SubnetId"] = subnetID
	}
	delete(merged, "Placement.AvailabilityZone")
	res, err := s.launch(ctx, s.region, merged)
	if err != nil {
		return "", err
	}
	if len(res.Instances) != 1 {
		return "", fmt.Errorf("launching from template %s%s: %d instances", ref.ID, ref.Name, len(res.Instances))
	}
	id := res.Instances[0].InstanceID
	if len(systemTags) > 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if inst, ok := s.st.Instances[id]; ok {
			for k, v := range systemTags {
				inst.Tags[k] = v
			}
			if err := s.commitLocked(); err != nil {
				return id, err
			}
		}
	}
	return id, nil
}

// Zones lists the region's Availability Zones.
func (s *Service) Zones() []string { return s.zones() }

// InstanceHealth is what Auto Scaling's EC2 health check sees of an instance.
type InstanceHealth struct {
	Exists     bool
	State      string // pending, running, stopping, stopped, shutting-down, terminated
	AZ         string
	LaunchTime time.Time
	// Impaired is set while the instance status check fails (a running instance whose program
	// is down, waiting to be restarted).
	Impaired bool
}

// Health reports an instance's state and status check.
func (s *Service) Health(id string) InstanceHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.st.Instances[id]
	if !ok {
		return InstanceHealth{}
	}
	_, status := s.statusLocked(inst)
	return InstanceHealth{Exists: true, State: inst.State, AZ: inst.AZ, LaunchTime: inst.LaunchTime, Impaired: status == "impaired"}
}

// TerminateForGroup terminates an instance on behalf of its Auto Scaling group, which termination
// protection does not stop (it guards against people, not against the group).
func (s *Service) TerminateForGroup(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.st.Instances[id]
	if !ok {
		return nil
	}
	s.terminateLocked(inst)
	return s.commitLocked()
}
