package ec2

import (
	"context"
	"encoding/base64"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// instanceFields answers DescribeInstances filters for one instance.
func (s *Service) instanceFieldsLocked(inst *instance) fieldFunc {
	return func(name string) ([]string, bool) {
		switch name {
		case "instance-id":
			return []string{inst.ID}, true
		case "instance-state-name":
			return []string{inst.State}, true
		case "instance-state-code":
			return []string{strconv.Itoa(stateCodes[inst.State])}, true
		case "instance-type":
			return []string{inst.InstanceType}, true
		case "image-id":
			return []string{inst.ImageID}, true
		case "availability-zone", "placement.availability-zone":
			return []string{inst.AZ}, true
		case "subnet-id":
			return []string{inst.SubnetID}, true
		case "vpc-id":
			return []string{inst.VPCID}, true
		case "reservation-id":
			return []string{inst.ReservationID}, true
		case "client-token":
			return []string{inst.ClientToken}, true
		case "key-name":
			return []string{inst.KeyName}, true
		case "launch-index", "ami-launch-index":
			return []string{strconv.Itoa(inst.LaunchIndex)}, true
		case "architecture":
			return []string{inst.Architecture}, true
		case "owner-id":
			return []string{s.account}, true
		case "iam-instance-profile.arn":
			return []string{inst.InstanceProfileARN}, true
		case "metadata-options.http-tokens":
			return []string{inst.HTTPTokens}, true
		case "metadata-options.http-endpoint":
			return []string{inst.HTTPEndpoint}, true
		case "state-reason-code":
			return []string{inst.StateReasonCode}, true
		case "state-reason-message":
			return []string{inst.StateReasonMessage}, true
		case "root-device-name":
			return []string{inst.RootDevice}, true
		case "root-device-type":
			return []string{"ebs"}, true
		case "tenancy", "placement.tenancy":
			return []string{"default"}, true
		}
		var out []string
		switch name {
		case "private-ip-address", "network-interface.addresses.private-ip-address", "network-interface.private-ip-address":
			for _, e := range s.interfacesOfLocked(inst.ID) {
				if name != "private-ip-address" || e.Attachment.DeviceIndex == 0 {
					out = append(out, e.PrivateIP)
				}
			}
			return out, true
		case "private-dns-name":
			if e := s.primaryInterfaceLocked(inst.ID); e != nil {
				out = append(out, privateDNSName(e.PrivateIP))
			}
			return out, true
		case "network-interface.network-interface-id", "network-interface-id":
			for _, e := range s.interfacesOfLocked(inst.ID) {
				out = append(out, e.ID)
			}
			return out, true
		case "network-interface.subnet-id":
			for _, e := range s.interfacesOfLocked(inst.ID) {
				out = append(out, e.SubnetID)
			}
			return out, true
		case "network-interface.attachment.delete-on-termination":
			for _, e := range s.interfacesOfLocked(inst.ID) {
				out = append(out, boolString(e.Attachment.DeleteOnTermination))
			}
			return out, true
		case "instance.group-id", "group-id", "network-interface.group-id":
			for _, e := range s.interfacesOfLocked(inst.ID) {
				out = append(out, e.Groups...)
			}
			return out, true
		case "instance.group-name", "group-name", "network-interface.group-name":
			for _, e := range s.interfacesOfLocked(inst.ID) {
				for _, g := range s.groupRefsLocked(e.Groups) {
					out = append(out, g.GroupName)
				}
			}
			return out, true
		case "block-device-mapping.volume-id", "volume-id":
			for _, v := range s.volumesOfLocked(inst.ID) {
				out = append(out, v.ID)
			}
			return out, true
		case "block-device-mapping.device-name":
			for _, v := range s.volumesOfLocked(inst.ID) {
				out = append(out, v.Attachment.Device)
			}
			return out, true
		case "block-device-mapping.status":
			for _, v := range s.volumesOfLocked(inst.ID) {
				out = append(out, v.Attachment.State)
			}
			return out, true
		case "block-device-mapping.delete-on-termination":
			for _, v := range s.volumesOfLocked(inst.ID) {
				out = append(out, boolString(v.Attachment.DeleteOnTermination))
			}
			return out, true
		}
		return nil, false
	}
}

func (s *Service) describeInstances(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("InstanceId")
	if len(ids) > 0 {
		if p.has("MaxResults") {
			return nil, awsapi.Errorf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		if _, err := s.findInstancesLocked(ids); err != nil {
			return nil, err
		}
	}
	filters := parseFilters(p)
	matched, err := selectMatching(s.st.Instances, ids, filters, func(inst *instance) (tags, fieldFunc) {
		return inst.Tags, s.instanceFieldsLocked(inst)
	})
	if err != nil {
		return nil, err
	}
	// Pages hold instances ordered by (launch time, id) so a reservation's instances stay together.
	var keep []string
	order := map[string]string{}
	for _, id := range matched {
		inst := s.st.Instances[id]
		key := inst.LaunchTime.UTC().Format("20060102T150405.000000000") + "/" + inst.ReservationID + "/" + strconv.Itoa(1000+inst.LaunchIndex) + "/" + id
		order[key] = id
		keep = append(keep, key)
	}
	sort.Strings(keep)
	pg, next, err := page(keep, p, 5, 1000)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Reservations items[xReservation] `xml:"reservationSet"`
		NextToken    string              `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, key := range pg {
		inst := s.st.Instances[order[key]]
		n := len(out.Reservations)
		if n == 0 || out.Reservations[n-1].ReservationID != inst.ReservationID {
			out.Reservations = append(out.Reservations, xReservation{ReservationID: inst.ReservationID, OwnerID: s.account})
			n++
		}
		out.Reservations[n-1].Instances = append(out.Reservations[n-1].Instances, s.xInstanceLocked(inst))
	}
	return respond(req, out)
}

// statusLocked computes the two EC2 status checks: the instance check fails while a running
// instance's process is down (crashed and waiting to be restarted).
func (s *Service) statusLocked(inst *instance) (system, instanceStatus string) {
	switch inst.State {
	case statePending:
		return "initializing", "initializing"
	case stateRunning:
		if inst.Program == "" {
			return "ok", "ok"
		}
		if _, alive := s.machines.Running(inst.ID); alive {
			return "ok", "ok"
		}
		return "ok", "impaired"
	}
	return "not-applicable", "not-applicable"
}

func (s *Service) describeInstanceStatus(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	includeAll, err := p.boolean("IncludeAllInstances", false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("InstanceId")
	if len(ids) > 0 {
		if p.has("MaxResults") {
			return nil, awsapi.Errorf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		if _, err := s.findInstancesLocked(ids); err != nil {
			return nil, err
		}
	}
	candidates := s.st.Instances
	if !includeAll {
		candidates = keepWhere(candidates, func(inst *instance) bool { return inst.State == stateRunning })
	}
	filters := parseFilters(p)
	keep, err := selectMatching(candidates, ids, filters, func(inst *instance) (tags, fieldFunc) {
		sys, ist := s.statusLocked(inst)
		return nil, func(name string) ([]string, bool) {
			switch name {
			case "availability-zone":
				return []string{inst.AZ}, true
			case "instance-state-name":
				return []string{inst.State}, true
			case "instance-state-code":
				return []string{strconv.Itoa(stateCodes[inst.State])}, true
			case "instance-status.status":
				return []string{ist}, true
			case "instance-status.reachability":
				return []string{reachability(ist)}, true
			case "system-status.status":
				return []string{sys}, true
			case "system-status.reachability":
				return []string{reachability(sys)}, true
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
		Statuses  items[xInstanceStatus] `xml:"instanceStatusSet"`
		NextToken string                 `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		inst := s.st.Instances[id]
		sys, ist := s.statusLocked(inst)
		out.Statuses = append(out.Statuses, xInstanceStatus{InstanceID: id, AvailabilityZone: inst.AZ, AvailabilityZoneID: s.zoneID(inst.AZ),
			InstanceState:     xState{stateCodes[inst.State], inst.State},
			SystemStatus:      xStatusSummary{sys, []xStatusDetail{{"reachability", reachability(sys)}}},
			InstanceStatus:    xStatusSummary{ist, []xStatusDetail{{"reachability", reachability(ist)}}},
			AttachedEBSStatus: xStatusSummary{sys, []xStatusDetail{{"reachability", reachability(sys)}}}})
	}
	return respond(req, out)
}

func reachability(status string) string {
	switch status {
	case "ok":
		return "passed"
	case "impaired":
		return "failed"
	case "initializing":
		return "initializing"
	}
	return "insufficient-data"
}

// xAttrValue is an attribute's <value>; an unset attribute (no user data, no kernel) is an
// empty element, as EC2 answers.
type xAttrValue struct {
	Value string `xml:"value,omitempty"`
}

type xAttrBool struct {
	Value bool `xml:"value"`
}

// xGroupSet and xDeviceSet are lists written even when empty.
type xGroupSet struct {
	Items []xGroup `xml:"item"`
}

type xDeviceSet struct {
	Items []xInstanceBlockDevice `xml:"item"`
}

type xEnclaveOptions struct {
	Enabled bool `xml:"enabled"`
}

// describeInstanceAttribute answers one attribute of DescribeInstanceAttribute's list.
func (s *Service) describeInstanceAttribute(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	attr, err := p.required("Attribute")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, err := s.findInstanceLocked(id)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		InstanceID         string           `xml:"instanceId"`
		InstanceType       *xAttrValue      `xml:"instanceType,omitempty"`
		Kernel             *xAttrValue      `xml:"kernel,omitempty"`
		Ramdisk            *xAttrValue      `xml:"ramdisk,omitempty"`
		UserData           *xAttrValue      `xml:"userData,omitempty"`
		Groups             *xGroupSet       `xml:"groupSet,omitempty"`
		DisableTermination *xAttrBool       `xml:"disableApiTermination,omitempty"`
		DisableStop        *xAttrBool       `xml:"disableApiStop,omitempty"`
		ShutdownBehavior   *xAttrValue      `xml:"instanceInitiatedShutdownBehavior,omitempty"`
		RootDeviceName     *xAttrValue      `xml:"rootDeviceName,omitempty"`
		BlockDeviceMapping *xDeviceSet      `xml:"blockDeviceMapping,omitempty"`
		ProductCodes       *struct{}        `xml:"productCodes,omitempty"`
		EBSOptimized       *xAttrBool       `xml:"ebsOptimized,omitempty"`
		SourceDestCheck    *xAttrBool       `xml:"sourceDestCheck,omitempty"`
		SriovNetSupport    *xAttrValue      `xml:"sriovNetSupport,omitempty"`
		EnaSupport         *xAttrBool       `xml:"enaSupport,omitempty"`
		EnclaveOptions     *xEnclaveOptions `xml:"enclaveOptions,omitempty"`
	}{InstanceID: id}
	x := s.xInstanceLocked(inst)
	switch attr {
	case "instanceType":
		out.InstanceType = &xAttrValue{inst.InstanceType}
	case "kernel":
		out.Kernel = &xAttrValue{}
	case "ramdisk":
		out.Ramdisk = &xAttrValue{}
	case "userData":
		out.UserData = &xAttrValue{inst.UserData}
	case "groupSet":
		out.Groups = &xGroupSet{Items: x.Groups}
	case "disableApiTermination":
		out.DisableTermination = &xAttrBool{inst.DisableAPITermination}
	case "disableApiStop":
		out.DisableStop = &xAttrBool{inst.DisableAPIStop}
	case "instanceInitiatedShutdownBehavior":
		out.ShutdownBehavior = &xAttrValue{inst.ShutdownBehavior}
	case "rootDeviceName":
		out.RootDeviceName = &xAttrValue{inst.RootDevice}
	case "blockDeviceMapping":
		out.BlockDeviceMapping = &xDeviceSet{Items: x.BlockDeviceMapping}
	case "productCodes":
		out.ProductCodes = &struct{}{}
	case "ebsOptimized":
		out.EBSOptimized = &xAttrBool{inst.EBSOptimized}
	case "sourceDestCheck":
		out.SourceDestCheck = &xAttrBool{x.SourceDestCheck}
	case "sriovNetSupport":
		out.SriovNetSupport = &xAttrValue{}
	case "enaSupport":
		out.EnaSupport = &xAttrBool{true}
	case "enclaveOptions":
		out.EnclaveOptions = &xEnclaveOptions{}
	default:
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter attribute is invalid. Unknown attribute.", attr)
	}
	return respond(req, out)
}

func (s *Service) modifyInstanceAttribute(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	// The attribute comes either as Attribute=name&Value=v or as <Name>.Value=v.
	value := func(name string) (string, bool) {
		if p.str("Attribute") == name {
			return p.str("Value"), true
		}
		key := string(name[0]-'a'+'A') + name[1:] + ".Value"
		v, ok := p[key]
		return v, ok
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, err := s.findInstanceLocked(id)
	if err != nil {
		return nil, err
	}
	if inst.State == stateTerminated || inst.State == stateShuttingDown {
		return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified.", id)
	}
	mustBeStopped := func() error {
		if inst.State != stateStopped {
			return awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is not in the 'stopped' state.", id)
		}
		return nil
	}
	changed := false
	if v, ok := value("instanceType"); ok {
		if err := mustBeStopped(); err != nil {
			return nil, err
		}
		if err := checkInstanceType(v, inst.Architecture); err != nil {
			return nil, err
		}
		inst.InstanceType, changed = v, true
	}
	if v, ok := value("userData"); ok {
		if err := mustBeStopped(); err != nil {
			return nil, err
		}
		if err := checkUserData(v); err != nil {
			return nil, err
		}
		inst.UserData, changed = v, true
	}
	if v, ok := value("instanceInitiatedShutdownBehavior"); ok {
		if v != "stop" && v != "terminate" {
			return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter instanceInitiatedShutdownBehavior is invalid.", v)
		}
		inst.ShutdownBehavior, changed = v, true
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"disableApiTermination", &inst.DisableAPITermination}, {"disableApiStop", &inst.DisableAPIStop}, {"ebsOptimized", &inst.EBSOptimized}} {
		if v, ok := value(b.name); ok {
			bv, err := params{"v": v}.boolean("v", false)
			if err != nil {
				return nil, err
			}
			if b.name == "ebsOptimized" {
				if err := mustBeStopped(); err != nil {
					return nil, err
				}
			}
			*b.dst, changed = bv, true
		}
	}
	if v, ok := value("sourceDestCheck"); ok {
		bv, err := params{"v": v}.boolean("v", true)
		if err != nil {
			return nil, err
		}
		e := s.primaryInterfaceLocked(id)
		if e == nil {
			return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' has no network interface.", id)
		}
		e.SourceDestCheck, changed = bv, true
	}
	if groups := p.list("GroupId"); len(groups) > 0 {
		e := s.primaryInterfaceLocked(id)
		if e == nil {
			return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' has no network interface.", id)
		}
		sn := s.st.Subnets[e.SubnetID]
		if err := s.resolveGroupsLocked(groups, sn.VPCID, sn.ID); err != nil {
			return nil, err
		}
		e.Groups, changed = groups, true
	}
	for _, m := range p.structs("BlockDeviceMapping") {
		device := m.str("DeviceName")
		found := false
		for _, v := range s.volumesOfLocked(id) {
			if v.Attachment.Device == device {
				dot, err := m.boolean("Ebs.DeleteOnTermination", v.Attachment.DeleteOnTermination)
				if err != nil {
					return nil, err
				}
				v.Attachment.DeleteOnTermination, found, changed = dot, true, true
			}
		}
		if !found {
			return nil, awsapi.Errorf("InvalidInstanceAttributeValue", "No device is currently mapped at %s", device)
		}
	}
	if !changed {
		return nil, awsapi.Errorf("InvalidParameterCombination", "No attributes specified.")
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) modifyInstanceMetadataOptions(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, err := s.findInstanceLocked(id)
	if err != nil {
		return nil, err
	}
	if inst.State == stateTerminated || inst.State == stateShuttingDown {
		return nil, awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified.", id)
	}
	if v := p.str("HttpTokens"); v != "" {
		if v != "optional" && v != "required" {
			return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter HttpTokens is invalid.", v)
		}
		inst.HTTPTokens = v
	}
	if v := p.str("HttpEndpoint"); v != "" {
		if v != "enabled" && v != "disabled" {
			return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter HttpEndpoint is invalid.", v)
		}
		inst.HTTPEndpoint = v
	}
	if v := p.str("InstanceMetadataTags"); v != "" {
		if v != "enabled" && v != "disabled" {
			return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter InstanceMetadataTags is invalid.", v)
		}
		inst.MetadataTags = v
	}
	if p.has("HttpPutResponseHopLimit") {
		n, err := p.integer("HttpPutResponseHopLimit", 1)
		if err != nil {
			return nil, err
		}
		if n < 1 || n > 64 {
			return nil, awsapi.Errorf("InvalidParameterValue", "Value (%d) for parameter HttpPutResponseHopLimit is invalid.", n)
		}
		inst.HTTPHopLimit = n
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	x := s.xInstanceLocked(inst)
	x.MetadataOptions.State = "pending"
	return respond(req, &struct {
		meta
		InstanceID string `xml:"instanceId"`
		Options    any    `xml:"instanceMetadataOptions"`
	}{InstanceID: id, Options: x.MetadataOptions})
}

// maxConsoleBytes is how much of the console GetConsoleOutput returns (AWS: the last 64 KB).
const maxConsoleBytes = 64 << 10

func (s *Service) getConsoleOutput(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, err = s.findInstanceLocked(id)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		InstanceID string `xml:"instanceId"`
		Timestamp  string `xml:"timestamp"`
		Output     string `xml:"output"`
	}{InstanceID: id, Timestamp: ec2Time(s.now())}
	f, err := os.Open(s.ConsoleLogPath(id))
	if err == nil {
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			out.Timestamp = ec2Time(st.ModTime())
			if st.Size() > maxConsoleBytes {
				_, _ = f.Seek(st.Size()-maxConsoleBytes, io.SeekStart)
			}
		}
		data, _ := io.ReadAll(io.LimitReader(f, maxConsoleBytes))
		out.Output = base64.StdEncoding.EncodeToString(data)
	}
	return respond(req, out)
}
