package ec2

import (
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Launch templates: versioned RunInstances parameters. A version's data is kept as the
// LaunchTemplateData.* parameters it was created with (the same names RunInstances takes), so
// launching from a template is RunInstances with the template's parameters under the request's
// own: one launch path, whether an instance comes from a request, a template or an Auto Scaling
// group.

type launchTemplate struct {
	ID             string             `json:"id"` // lt-...
	Name           string             `json:"name"`
	Created        time.Time          `json:"created"`
	CreatedBy      string             `json:"createdBy"`
	DefaultVersion int                `json:"defaultVersion"`
	LatestVersion  int                `json:"latestVersion"`
	Versions       []*templateVersion `json:"versions"`
	Tags           tags               `json:"tags"`
}

type templateVersion struct {
	Number      int       `json:"number"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	CreatedBy   string    `json:"createdBy"`
	Data        params    `json:"data"` // RunInstances parameters
}

var templateNamePattern = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)

// maxTemplateVersions is EC2's quota of versions per launch template.
const maxTemplateVersions = 10000

// templateData reads LaunchTemplateData.* and checks what EC2 checks when a version is created:
// the values that must parse, user data, metadata options and tag resource types.
func templateData(p params) (params, error) {
	data := p.sub("LaunchTemplateData")
	for _, name := range []string{"DisableApiTermination", "DisableApiStop", "EbsOptimized", "Monitoring.Enabled"} {
		if _, err := data.boolean(name, false); err != nil {
			return nil, err
		}
	}
	if ud := data.str("UserData"); ud != "" {
		if err := checkUserData(ud); err != nil {
			return nil, err
		}
	}
	if id := data.str("ImageId"); id != "" {
		if err := checkID(id, "ami", "InvalidAMIID.Malformed"); err != nil {
			return nil, err
		}
	}
	md := data.sub("MetadataOptions")
	if v := md.str("HttpTokens"); v != "" && v != "optional" && v != "required" {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter HttpTokens is invalid. Valid values: optional, required.", v)
	}
	for _, rt := range data.tagSpecTypes() {
		if rt != "instance" && rt != "volume" && rt != "network-interface" {
			return nil, awsapi.Errorf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	for _, rt := range []string{"instance", "volume", "network-interface"} {
		if _, err := data.tagSpecs(rt); err != nil {
			return nil, err
		}
	}
	return data, nil
}

func (s *Service) createLaunchTemplate(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	name, err := p.required("LaunchTemplateName")
	if err != nil {
		return nil, err
	}
	if !templateNamePattern.MatchString(name) {
		return nil, awsapi.Errorf("InvalidLaunchTemplateName.MalformedException", "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.'")
	}
	data, err := templateData(p)
	if err != nil {
		return nil, err
	}
	for _, rt := range p.tagSpecTypes() {
		if rt != "launch-template" {
			return nil, awsapi.Errorf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
	}
	ltTags, err := p.tagSpecs("launch-template")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prior, err := s.idempotentLocked("CreateLaunchTemplate", p); err != nil {
		return nil, err
	} else if prior != "" {
		return respond(req, &struct {
			meta
			LaunchTemplate xLaunchTemplate `xml:"launchTemplate"`
		}{LaunchTemplate: s.xLaunchTemplateLocked(s.st.LaunchTemplates[prior])})
	}
	for _, lt := range s.st.LaunchTemplates {
		if lt.Name == name {
			return nil, awsapi.Errorf("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
		}
	}
	now := s.now()
	lt := &launchTemplate{ID: newID("lt"), Name: name, Created: now, CreatedBy: req.Caller.ARN, DefaultVersion: 1, LatestVersion: 1, Tags: ltTags,
		Versions: []*templateVersion{{Number: 1, Description: p.str("VersionDescription"), Created: now, CreatedBy: req.Caller.ARN, Data: data}}}
	s.st.LaunchTemplates[lt.ID] = lt
	s.rememberLocked("CreateLaunchTemplate", p, lt.ID)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		LaunchTemplate xLaunchTemplate `xml:"launchTemplate"`
	}{LaunchTemplate: s.xLaunchTemplateLocked(lt)})
}

// findTemplateLocked finds a launch template by id or name (exactly one of them).
func (s *Service) findTemplateLocked(id, name string) (*launchTemplate, error) {
	switch {
	case id != "" && name != "":
		return nil, awsapi.Errorf("InvalidParameterCombination", "Specify either a launch template ID or a launch template name, not both.")
	case id != "":
		if lt, ok := s.st.LaunchTemplates[id]; ok {
			return lt, nil
		}
		if err := checkID(id, "lt", "InvalidLaunchTemplateId.Malformed"); err != nil {
			return nil, err
		}
		return nil, awsapi.Errorf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
	case name != "":
		for _, lt := range s.st.LaunchTemplates {
			if lt.Name == name {
				return lt, nil
			}
		}
		return nil, awsapi.Errorf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
	}
	return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter LaunchTemplateId or LaunchTemplateName")
}

// version resolves "$Latest", "$Default", a number, or "" (the default version).
func (lt *launchTemplate) version(ref string) (*templateVersion, error) {
	n := lt.DefaultVersion
	switch ref {
	case "", "$Default":
	case "$Latest":
		n = lt.LatestVersion
	default:
		v, err := strconv.Atoi(ref)
		if err != nil || v < 1 {
			return nil, awsapi.Errorf("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for template %s.", ref, lt.ID)
		}
		n = v
	}
	for _, v := range lt.Versions {
		if v.Number == n {
			return v, nil
		}
	}
	return nil, awsapi.Errorf("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for template %s.", ref, lt.ID)
}

func (s *Service) createLaunchTemplateVersion(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	data, err := templateData(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(p.str("LaunchTemplateId"), p.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	if src := p.str("SourceVersion"); src != "" {
		base, err := lt.version(src)
		if err != nil {
			return nil, err
		}
		data = overlay(base.Data, data)
	}
	if len(lt.Versions) >= maxTemplateVersions {
		return nil, awsapi.Errorf("LaunchTemplateVersionLimitExceeded", "You've reached the maximum number of versions (%d) for the launch template.", maxTemplateVersions)
	}
	lt.LatestVersion++
	v := &templateVersion{Number: lt.LatestVersion, Description: p.str("VersionDescription"), Created: s.now(), CreatedBy: req.Caller.ARN, Data: data}
	lt.Versions = append(lt.Versions, v)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		Version xTemplateVersion `xml:"launchTemplateVersion"`
	}{Version: xTemplateVersionOf(lt, v)})
}

func (s *Service) modifyLaunchTemplate(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(p.str("LaunchTemplateId"), p.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	if ref := p.str("SetDefaultVersion"); ref != "" {
		v, err := lt.version(ref)
		if err != nil {
			return nil, err
		}
		lt.DefaultVersion = v.Number
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		LaunchTemplate xLaunchTemplate `xml:"launchTemplate"`
	}{LaunchTemplate: s.xLaunchTemplateLocked(lt)})
}

func (s *Service) deleteLaunchTemplate(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(p.str("LaunchTemplateId"), p.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	delete(s.st.LaunchTemplates, lt.ID)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &struct {
		meta
		LaunchTemplate xLaunchTemplate `xml:"launchTemplate"`
	}{LaunchTemplate: s.xLaunchTemplateLocked(lt)})
}

func (s *Service) deleteLaunchTemplateVersions(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(p.str("LaunchTemplateId"), p.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	type result struct {
		LaunchTemplateID   string `xml:"launchTemplateId"`
		LaunchTemplateName string `xml:"launchTemplateName"`
		VersionNumber      int    `xml:"versionNumber"`
		ErrorCode          string `xml:"responseError>code,omitempty"`
		ErrorMessage       string `xml:"responseError>message,omitempty"`
	}
	out := &struct {
		meta
		Deleted    []result `xml:"successfullyDeletedLaunchTemplateVersionSet>item"`
		NotDeleted []result `xml:"unsuccessfullyDeletedLaunchTemplateVersionSet>item"`
	}{}
	for _, ref := range p.list("LaunchTemplateVersion") {
		n, _ := strconv.Atoi(ref)
		r := result{LaunchTemplateID: lt.ID, LaunchTemplateName: lt.Name, VersionNumber: n}
		i := -1
		for j, v := range lt.Versions {
			if v.Number == n {
				i = j
			}
		}
		switch {
		case i < 0:
			r.ErrorCode, r.ErrorMessage = "launchTemplateVersionDoesNotExist", "The specified launch template version does not exist."
			out.NotDeleted = append(out.NotDeleted, r)
		case n == lt.DefaultVersion:
			r.ErrorCode, r.ErrorMessage = "unexpectedError", "The default version of a launch template cannot be deleted: make another version the default first, or delete the template."
			out.NotDeleted = append(out.NotDeleted, r)
		default:
			lt.Versions = append(lt.Versions[:i], lt.Versions[i+1:]...)
			out.Deleted = append(out.Deleted, r)
		}
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, out)
}

func (s *Service) describeLaunchTemplates(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("LaunchTemplateId")
	for _, name := range p.list("LaunchTemplateName") {
		lt, err := s.findTemplateLocked("", name)
		if err != nil {
			return nil, err
		}
		ids = append(ids, lt.ID)
	}
	for _, id := range ids {
		if _, err := s.findTemplateLocked(id, ""); err != nil {
			return nil, err
		}
	}
	keep, err := selectMatching(s.st.LaunchTemplates, ids, parseFilters(p), func(lt *launchTemplate) (tags, fieldFunc) {
		return lt.Tags, func(name string) ([]string, bool) {
			switch name {
			case "launch-template-name":
				return []string{lt.Name}, true
			case "create-time":
				return []string{ec2Time(lt.Created)}, true
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	pg, next, err := page(keep, p, 1, 200)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Templates []xLaunchTemplate `xml:"launchTemplates>item"`
		NextToken string            `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Templates = append(out.Templates, s.xLaunchTemplateLocked(s.st.LaunchTemplates[id]))
	}
	return respond(req, out)
}

func (s *Service) describeLaunchTemplateVersions(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lt, err := s.findTemplateLocked(p.str("LaunchTemplateId"), p.str("LaunchTemplateName"))
	if err != nil {
		return nil, err
	}
	var versions []*templateVersion
	if refs := p.list("LaunchTemplateVersion"); len(refs) > 0 {
		for _, ref := range refs {
			v, err := lt.version(ref)
			if err != nil {
				return nil, err
			}
			versions = append(versions, v)
		}
	} else {
		lo, err := p.integer("MinVersion", 1)
		if err != nil {
			return nil, err
		}
		hi, err := p.integer("MaxVersion", lt.LatestVersion)
		if err != nil {
			return nil, err
		}
		for _, v := range lt.Versions {
			if v.Number >= lo && v.Number <= hi {
				versions = append(versions, v)
			}
		}
	}
	sort.SliceStable(versions, func(i, j int) bool { return versions[i].Number > versions[j].Number })
	out := &struct {
		meta
		Versions []xTemplateVersion `xml:"launchTemplateVersionSet>item"`
	}{}
	for _, v := range versions {
		out.Versions = append(out.Versions, xTemplateVersionOf(lt, v))
	}
	return respond(req, out)
}

// withLaunchTemplate resolves RunInstances' LaunchTemplate.* and returns the parameters to launch
// with: the template version's, overlaid by the request's own (minus LaunchTemplate.*).
func (s *Service) withLaunchTemplate(p params) (params, error) {
	spec := p.sub("LaunchTemplate")
	if len(spec) == 0 {
		return p, nil
	}
	s.mu.Lock()
	lt, err := s.findTemplateLocked(spec.str("LaunchTemplateId"), spec.str("LaunchTemplateName"))
	var v *templateVersion
	if err == nil {
		v, err = lt.version(spec.str("Version"))
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	own := params{}
	for k, val := range p {
		if !strings.HasPrefix(k, "LaunchTemplate.") {
			own[k] = val
		}
	}
	return overlay(v.Data, own), nil
}

// overlay returns base with every top-level member that top sets replaced by top's (a list or
// structure as a whole, as RunInstances' parameters override a template's), except tag
// specifications, which merge by resource type with top's tags winning.
func overlay(base, top params) params {
	member := func(k string) string { m, _, _ := strings.Cut(k, "."); return m }
	set := map[string]bool{}
	for k := range top {
		set[member(k)] = true
	}
	out := params{}
	for k, v := range base {
		if !set[member(k)] {
			out[k] = v
		}
	}
	for k, v := range top {
		if member(k) != "TagSpecification" {
			out[k] = v
		}
	}
	if set["TagSpecification"] {
		merged := map[string]tags{}
		var order []string
		for _, src := range []params{base, top} {
			for _, spec := range src.structs("TagSpecification") {
				rt := spec.str("ResourceType")
				if merged[rt] == nil {
					merged[rt] = tags{}
					order = append(order, rt)
				}
				for _, t := range spec.structs("Tag") {
					merged[rt][t.str("Key")] = t.str("Value")
				}
			}
		}
		for i, rt := range order {
			prefix := "TagSpecification." + strconv.Itoa(i+1)
			out[prefix+".ResourceType"] = rt
			for j, k := range sortedKeys(merged[rt]) {
				out[prefix+".Tag."+strconv.Itoa(j+1)+".Key"] = k
				out[prefix+".Tag."+strconv.Itoa(j+1)+".Value"] = merged[rt][k]
			}
		}
	}
	return out
}

// XML shapes.

type xLaunchTemplate struct {
	ID             string `xml:"launchTemplateId"`
	Name           string `xml:"launchTemplateName"`
	CreateTime     string `xml:"createTime"`
	CreatedBy      string `xml:"createdBy"`
	DefaultVersion int    `xml:"defaultVersionNumber"`
	LatestVersion  int    `xml:"latestVersionNumber"`
	Tags           []xTag `xml:"tagSet>item"`
}

func (s *Service) xLaunchTemplateLocked(lt *launchTemplate) xLaunchTemplate {
	return xLaunchTemplate{ID: lt.ID, Name: lt.Name, CreateTime: ec2Time(lt.Created), CreatedBy: lt.CreatedBy,
		DefaultVersion: lt.DefaultVersion, LatestVersion: lt.LatestVersion, Tags: tagItems(lt.Tags)}
}

type xTemplateVersion struct {
	TemplateID     string        `xml:"launchTemplateId"`
	TemplateName   string        `xml:"launchTemplateName"`
	VersionNumber  int           `xml:"versionNumber"`
	Description    string        `xml:"versionDescription,omitempty"`
	CreateTime     string        `xml:"createTime"`
	CreatedBy      string        `xml:"createdBy"`
	DefaultVersion bool          `xml:"defaultVersion"`
	Data           xTemplateData `xml:"launchTemplateData"`
}

func xTemplateVersionOf(lt *launchTemplate, v *templateVersion) xTemplateVersion {
	return xTemplateVersion{TemplateID: lt.ID, TemplateName: lt.Name, VersionNumber: v.Number, Description: v.Description,
		CreateTime: ec2Time(v.Created), CreatedBy: v.CreatedBy, DefaultVersion: v.Number == lt.DefaultVersion, Data: xTemplateDataOf(v.Data)}
}

// xTemplateData is ResponseLaunchTemplateData for the members the local cloud launches with.
type xTemplateData struct {
	ImageID            string              `xml:"imageId,omitempty"`
	InstanceType       string              `xml:"instanceType,omitempty"`
	KeyName            string              `xml:"keyName,omitempty"`
	UserData           string              `xml:"userData,omitempty"`
	IamInstanceProfile *xTemplateProfile   `xml:"iamInstanceProfile,omitempty"`
	SecurityGroupIDs   []string            `xml:"securityGroupIdSet>item,omitempty"`
	SecurityGroups     []string            `xml:"securityGroupSet>item,omitempty"`
	NetworkInterfaces  []xTemplateENI      `xml:"networkInterfaceSet>item,omitempty"`
	BlockDevices       []xTemplateBDM      `xml:"blockDeviceMappingSet>item,omitempty"`
	MetadataOptions    *xTemplateMetadata  `xml:"metadataOptions,omitempty"`
	TagSpecifications  []xTemplateTagSpec  `xml:"tagSpecificationSet>item,omitempty"`
	Placement          *xTemplatePlacement `xml:"placement,omitempty"`
	DisableTermination *bool               `xml:"disableApiTermination,omitempty"`
	DisableStop        *bool               `xml:"disableApiStop,omitempty"`
	ShutdownBehavior   string              `xml:"instanceInitiatedShutdownBehavior,omitempty"`
	EBSOptimized       *bool               `xml:"ebsOptimized,omitempty"`
	Monitoring         *xTemplateMonitor   `xml:"monitoring,omitempty"`
}

type xTemplateProfile struct {
	Arn  string `xml:"arn,omitempty"`
	Name string `xml:"name,omitempty"`
}

type xTemplateENI struct {
	DeviceIndex         *int     `xml:"deviceIndex,omitempty"`
	NetworkInterfaceID  string   `xml:"networkInterfaceId,omitempty"`
	SubnetID            string   `xml:"subnetId,omitempty"`
	Groups              []string `xml:"groupSet>groupId,omitempty"`
	PrivateIPAddress    string   `xml:"privateIpAddress,omitempty"`
	Description         string   `xml:"description,omitempty"`
	DeleteOnTermination *bool    `xml:"deleteOnTermination,omitempty"`
}

type xTemplateBDM struct {
	DeviceName string        `xml:"deviceName"`
	NoDevice   string        `xml:"noDevice,omitempty"`
	EBS        *xTemplateEBS `xml:"ebs,omitempty"`
}

type xTemplateEBS struct {
	VolumeSize          *int   `xml:"volumeSize,omitempty"`
	VolumeType          string `xml:"volumeType,omitempty"`
	Iops                *int   `xml:"iops,omitempty"`
	Throughput          *int   `xml:"throughput,omitempty"`
	Encrypted           *bool  `xml:"encrypted,omitempty"`
	KmsKeyID            string `xml:"kmsKeyId,omitempty"`
	DeleteOnTermination *bool  `xml:"deleteOnTermination,omitempty"`
}

type xTemplateMetadata struct {
	HTTPTokens   string `xml:"httpTokens,omitempty"`
	HTTPEndpoint string `xml:"httpEndpoint,omitempty"`
	HopLimit     *int   `xml:"httpPutResponseHopLimit,omitempty"`
	MetadataTags string `xml:"instanceMetadataTags,omitempty"`
}

type xTemplateTagSpec struct {
	ResourceType string `xml:"resourceType"`
	Tags         []xTag `xml:"tagSet>item"`
}

type xTemplatePlacement struct {
	AvailabilityZone string `xml:"availabilityZone,omitempty"`
}

type xTemplateMonitor struct {
	Enabled bool `xml:"enabled"`
}

func optInt(p params, name string) *int {
	if v, ok := p[name]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			return &n
		}
	}
	return nil
}

func optBool(p params, name string) *bool {
	if v, ok := p[name]; ok {
		b := strings.EqualFold(v, "true")
		return &b
	}
	return nil
}

func xTemplateDataOf(d params) xTemplateData {
	x := xTemplateData{ImageID: d.str("ImageId"), InstanceType: d.str("InstanceType"), KeyName: d.str("KeyName"), UserData: d.str("UserData"),
		SecurityGroupIDs: d.list("SecurityGroupId"), SecurityGroups: d.list("SecurityGroup"), ShutdownBehavior: d.str("InstanceInitiatedShutdownBehavior"),
		DisableTermination: optBool(d, "DisableApiTermination"), DisableStop: optBool(d, "DisableApiStop"), EBSOptimized: optBool(d, "EbsOptimized")}
	if prof := d.sub("IamInstanceProfile"); len(prof) > 0 {
		x.IamInstanceProfile = &xTemplateProfile{Arn: prof.str("Arn"), Name: prof.str("Name")}
	}
	for _, n := range d.structs("NetworkInterface") {
		x.NetworkInterfaces = append(x.NetworkInterfaces, xTemplateENI{DeviceIndex: optInt(n, "DeviceIndex"), NetworkInterfaceID: n.str("NetworkInterfaceId"),
			SubnetID: n.str("SubnetId"), Groups: n.list("SecurityGroupId"), PrivateIPAddress: n.str("PrivateIpAddress"), Description: n.str("Description"),
			DeleteOnTermination: optBool(n, "DeleteOnTermination")})
	}
	for _, b := range d.structs("BlockDeviceMapping") {
		m := xTemplateBDM{DeviceName: b.str("DeviceName"), NoDevice: b.str("NoDevice")}
		if ebs := b.sub("Ebs"); len(ebs) > 0 {
			m.EBS = &xTemplateEBS{VolumeSize: optInt(ebs, "VolumeSize"), VolumeType: ebs.str("VolumeType"), Iops: optInt(ebs, "Iops"), Throughput: optInt(ebs, "Throughput"),
				Encrypted: optBool(ebs, "Encrypted"), KmsKeyID: ebs.str("KmsKeyId"), DeleteOnTermination: optBool(ebs, "DeleteOnTermination")}
		}
		x.BlockDevices = append(x.BlockDevices, m)
	}
	if md := d.sub("MetadataOptions"); len(md) > 0 {
		x.MetadataOptions = &xTemplateMetadata{HTTPTokens: md.str("HttpTokens"), HTTPEndpoint: md.str("HttpEndpoint"), HopLimit: optInt(md, "HttpPutResponseHopLimit"), MetadataTags: md.str("InstanceMetadataTags")}
	}
	for _, spec := range d.structs("TagSpecification") {
		ts := xTemplateTagSpec{ResourceType: spec.str("ResourceType")}
		for _, t := range spec.structs("Tag") {
			ts.Tags = append(ts.Tags, xTag{Key: t.str("Key"), Value: t.str("Value")})
		}
		x.TagSpecifications = append(x.TagSpecifications, ts)
	}
	if az := d.str("Placement.AvailabilityZone"); az != "" {
		x.Placement = &xTemplatePlacement{AvailabilityZone: az}
	}
	if m := optBool(d, "Monitoring.Enabled"); m != nil {
		x.Monitoring = &xTemplateMonitor{Enabled: *m}
	}
	return x
}
