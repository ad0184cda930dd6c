package ec2

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// volumeSpec is what CreateVolume, ModifyVolume and block device mappings ask for.
type volumeSpec struct {
	Size, IOPS, Throughput int
	Type                   string
}

// volumeLimits are EBS's documented bounds per volume type.
var volumeLimits = map[string]struct {
	minSize, maxSize        int
	minIOPS, maxIOPS        int
	iopsPerGiB              int // 0: IOPS cannot be set
	minThroughput, maxThrpt int // 0: throughput cannot be set
	defaultIOPS             int
}{
	"gp2":      {1, 16384, 0, 0, 0, 0, 0, 0},
	"gp3":      {1, 16384, 3000, 16000, 500, 125, 1000, 3000},
	"io1":      {4, 16384, 100, 64000, 50, 0, 0, 0},
	"io2":      {4, 65536, 100, 256000, 1000, 0, 0, 0},
	"st1":      {125, 16384, 0, 0, 0, 0, 0, 0},
	"sc1":      {125, 16384, 0, 0, 0, 0, 0, 0},
	"standard": {1, 1024, 0, 0, 0, 0, 0, 0},
}

// validate checks spec and fills AWS's defaults (gp3: 3000 IOPS, 125 MiB/s).
func (v *volumeSpec) validate() error {
	lim, ok := volumeLimits[v.Type]
	if !ok {
		return awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter volumeType is invalid. Valid types: gp2, gp3, io1, io2, st1, sc1, standard.", v.Type)
	}
	if v.Size < lim.minSize || v.Size > lim.maxSize {
		return awsapi.Errorf("InvalidParameterValue", "Volume of %dGiB is out of range for volume type %s: the size must be between %d and %d GiB.", v.Size, v.Type, lim.minSize, lim.maxSize)
	}
	if lim.iopsPerGiB == 0 {
		if v.IOPS != 0 {
			return awsapi.Errorf("InvalidParameterCombination", "The parameter iops is not supported for %s volumes.", v.Type)
		}
	} else {
		if v.IOPS == 0 {
			if lim.defaultIOPS == 0 {
				return awsapi.Errorf("MissingParameter", "The request must contain the parameter iops for %s volumes.", v.Type)
			}
			v.IOPS = lim.defaultIOPS
		}
		if v.IOPS < lim.minIOPS {
			return awsapi.Errorf("InvalidParameterValue", "Volume iops of %d is too low; minimum is %d.", v.IOPS, lim.minIOPS)
		}
		if v.IOPS > lim.maxIOPS {
			return awsapi.Errorf("InvalidParameterValue", "Volume iops of %d is too high; maximum is %d.", v.IOPS, lim.maxIOPS)
		}
		if v.IOPS > lim.minIOPS && v.IOPS > v.Size*lim.iopsPerGiB {
			return awsapi.Errorf("InvalidParameterValue", "Iops to volume size ratio of %f is too high; maximum is %f.", float64(v.IOPS)/float64(v.Size), float64(lim.iopsPerGiB))
		}
	}
	if lim.maxThrpt == 0 {
		if v.Throughput != 0 {
			return awsapi.Errorf("InvalidParameterCombination", "The parameter throughput is not supported for %s volumes.", v.Type)
		}
	} else {
		if v.Throughput == 0 {
			v.Throughput = lim.minThroughput
		}
		if v.Throughput < lim.minThroughput || v.Throughput > lim.maxThrpt {
			return awsapi.Errorf("InvalidParameterValue", "Throughput of %d MiB/s is out of range for %s volumes: it must be between %d and %d MiB/s.", v.Throughput, v.Type, lim.minThroughput, lim.maxThrpt)
		}
		// gp3: at most 0.25 MiB/s per provisioned IOPS.
		if v.Throughput > lim.minThroughput && float64(v.Throughput) > float64(v.IOPS)*0.25 {
			return awsapi.Errorf("InvalidParameterValue", "Throughput (MiBps) to iops ratio of %f is too high; maximum is 0.250000 MiBps per iops.", float64(v.Throughput)/float64(v.IOPS))
		}
	}
	return nil
}

// reportedIOPS is what DescribeVolumes shows: gp2 gets 3 IOPS per GiB (100 to 16000).
func (v *volume) reportedIOPS() int {
	if v.Type == "gp2" {
		return min(max(3*v.Size, 100), 16000)
	}
	return v.IOPS
}

// resolveKMSKey checks the KmsKeyId of an encrypted volume and returns the key ARN to record.
// found=false means the key does not exist or is not usable: on AWS the call succeeds and the
// volume then disappears, which the caller mirrors.
func (s *Service) resolveKMSKey(ctx context.Context, region string, encrypted bool, keyRef string) (arn string, usable bool, err error) {
	if keyRef != "" && !encrypted {
		return "", false, awsapi.Errorf("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
	}
	if !encrypted {
		return "", true, nil
	}
	if s.opts.Keys == nil {
		if keyRef == "" {
			keyRef = fmt.Sprintf("arn:aws:kms:%s:%s:alias/aws/ebs", region, s.account)
		}
		return keyRef, true, nil
	}
	var info awsapi.KeyInfo
	if keyRef == "" {
		info, err = s.opts.Keys.DefaultEBSKey(ctx, s.account, region)
	} else {
		info, err = s.opts.Keys.ResolveKey(ctx, s.account, region, keyRef)
	}
	if errors.Is(err, awsapi.ErrNotFound) {
		return keyRef, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("resolving KMS key %q: %w", keyRef, err)
	}
	return info.ARN, info.Enabled, nil
}

// keyUsable reports whether an encrypted volume's key can be used now (it may have been
// disabled or scheduled for deletion since the volume was created).
func (s *Service) keyUsable(v *volume) bool {
	if !v.Encrypted || s.opts.Keys == nil {
		return true
	}
	info, err := s.opts.Keys.ResolveKey(context.Background(), s.account, s.region, v.KMSKeyID)
	return err == nil && info.Enabled
}

func (s *Service) createVolume(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	az, err := p.required("AvailabilityZone")
	if err != nil {
		return nil, err
	}
	if p.str("SnapshotId") != "" {
		return nil, awsapi.Errorf("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist. (The local cloud does not emulate snapshots.)", p.str("SnapshotId"))
	}
	if !p.has("Size") {
		return nil, awsapi.Errorf("MissingParameter", "The request must contain the parameter size or snapshotId")
	}
	spec := volumeSpec{Type: p.str("VolumeType")}
	if spec.Type == "" {
		spec.Type = "gp2"
	}
	if spec.Size, err = p.integer("Size", 0); err != nil {
		return nil, err
	}
	if spec.IOPS, err = p.integer("Iops", 0); err != nil {
		return nil, err
	}
	if spec.Throughput, err = p.integer("Throughput", 0); err != nil {
		return nil, err
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	encrypted, err := p.boolean("Encrypted", false)
	if err != nil {
		return nil, err
	}
	t, err := p.tagSpecs("volume")
	if err != nil {
		return nil, err
	}
	if !s.validZone(az) {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter availabilityZone is invalid. The zone does not exist in %s.", az, s.region)
	}
	keyARN, usable, err := s.resolveKMSKey(ctx, req.Region, encrypted, p.str("KmsKeyId"))
	if err != nil {
		return nil, err
	}
	id := newID("vol")
	if s.opts.SizedVolumes {
		// Formatted before the lock is taken: mkfs takes a moment.
		if err := s.makeSizedVolume(id, spec.Size); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prior, err := s.idempotentLocked("CreateVolume", p)
	if err != nil {
		s.dropUnusedVolumeLocked(id)
		return nil, err
	}
	if v, ok := s.st.Volumes[prior]; ok {
		s.dropUnusedVolumeLocked(id)
		return respond(req, &struct {
			meta
			xVolume
		}{xVolume: s.xVolumeLocked(v)})
	}
	v := &volume{ID: id, AZ: az, Size: spec.Size, Type: spec.Type, IOPS: spec.IOPS, Throughput: spec.Throughput,
		Encrypted: encrypted, KMSKeyID: keyARN, State: "creating", Created: s.now(), Tags: t, Sized: s.opts.SizedVolumes}
	if err := os.MkdirAll(s.VolumeDir(v.ID), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", v.ID, err)
	}
	s.st.Volumes[v.ID] = v
	s.rememberLocked("CreateVolume", p, v.ID)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	out := s.xVolumeLocked(v)
	s.after(s.opts.TransitionDelay, func() {
		if cur, ok := s.st.Volumes[v.ID]; ok && cur.State == "creating" {
			if !usable {
				// As on AWS: a volume whose KMS key is missing or disabled is accepted, then
				// silently removed once EBS fails to create it.
				s.log.Warn("volume creation failed: its KMS key does not exist or is not enabled; removing it as AWS does", "volume", v.ID, "kmsKeyId", v.KMSKeyID)
				s.deleteVolumeLocked(cur)
				return
			}
			cur.State = "available"
		}
	})
	return respond(req, &struct {
		meta
		xVolume
	}{xVolume: out})
}

func (s *Service) findVolumeLocked(id string) (*volume, error) {
	if v, ok := s.st.Volumes[id]; ok {
		return v, nil
	}
	if err := checkID(id, "vol", "InvalidVolumeID.Malformed"); err != nil {
		return nil, err
	}
	return nil, awsapi.Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
}

func (s *Service) xVolumeLocked(v *volume) xVolume {
	x := xVolume{VolumeID: v.ID, Size: v.Size, AvailabilityZone: v.AZ, AvailabilityZoneID: s.zoneID(v.AZ), Status: v.State,
		CreateTime: ec2Time(v.Created), VolumeType: v.Type, IOPS: v.reportedIOPS(), Throughput: v.Throughput,
		Encrypted: v.Encrypted, KMSKeyID: v.KMSKeyID, Tags: tagItems(v.Tags)}
	if a := v.Attachment; a != nil {
		x.Attachments = []xVolumeAttachment{{VolumeID: v.ID, InstanceID: a.InstanceID, Device: a.Device, Status: a.State,
			AttachTime: ec2Time(a.AttachTime), DeleteOnTermination: a.DeleteOnTermination}}
	}
	return x
}

func (s *Service) deleteVolume(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("VolumeId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.findVolumeLocked(id)
	if err != nil {
		return nil, err
	}
	if v.Attachment != nil {
		return nil, awsapi.Errorf("VolumeInUse", "Volume %s is currently attached to %s", id, v.Attachment.InstanceID)
	}
	s.deleteVolumeLocked(v)
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return respond(req, &returnTrue{Return: true})
}

func (s *Service) deleteVolumeLocked(v *volume) {
	delete(s.st.Volumes, v.ID)
	delete(s.st.Modifications, v.ID)
	if v.Sized {
		if err := s.removeSizedVolume(v.ID); err != nil {
			s.log.Warn("removing a sized volume failed", "volume", v.ID, "err", err)
		}
	}
	if err := os.RemoveAll(s.VolumeDir(v.ID)); err != nil {
		s.log.Warn("removing volume data failed", "volume", v.ID, "err", err)
	}
}

// dropUnusedVolumeLocked removes the sized volume made for a CreateVolume that turned out to
// be a repeat (or failed) before it was recorded.
func (s *Service) dropUnusedVolumeLocked(id string) {
	if !s.opts.SizedVolumes {
		return
	}
	if err := s.removeSizedVolume(id); err != nil {
		s.log.Warn("removing an unused sized volume failed", "volume", id, "err", err)
	}
	_ = os.RemoveAll(s.VolumeDir(id))
}

func (s *Service) describeVolumes(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("VolumeId")
	missing := missingKeys(s.st.Volumes, ids)
	if len(missing) > 0 {
		if len(missing) == 1 {
			return nil, awsapi.Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", missing[0])
		}
		return nil, awsapi.Errorf("InvalidVolume.NotFound", "The volumes '%s' do not exist.", strings.Join(missing, ", "))
	}
	if p.has("MaxResults") && len(ids) > 0 {
		return nil, awsapi.Errorf("InvalidParameterCombination", "The parameter volumeSet cannot be used with the parameter maxResults")
	}
	filters := parseFilters(p)
	keep, err := selectMatching(s.st.Volumes, ids, filters, func(v *volume) (tags, fieldFunc) {
		return v.Tags, func(name string) ([]string, bool) {
			switch name {
			case "volume-id":
				return []string{v.ID}, true
			case "status":
				return []string{v.State}, true
			case "availability-zone":
				return []string{v.AZ}, true
			case "size":
				return []string{strconv.Itoa(v.Size)}, true
			case "volume-type":
				return []string{v.Type}, true
			case "encrypted":
				return []string{boolString(v.Encrypted)}, true
			case "kms-key-id":
				return []string{v.KMSKeyID}, true
			case "create-time":
				return []string{ec2Time(v.Created)}, true
			case "multi-attach-enabled":
				return []string{"false"}, true
			case "snapshot-id":
				return []string{""}, true
			}
			if strings.HasPrefix(name, "attachment.") {
				a := v.Attachment
				if a == nil {
					return nil, true
				}
				switch name {
				case "attachment.instance-id":
					return []string{a.InstanceID}, true
				case "attachment.device":
					return []string{a.Device}, true
				case "attachment.status":
					return []string{a.State}, true
				case "attachment.attach-time":
					return []string{ec2Time(a.AttachTime)}, true
				case "attachment.delete-on-termination":
					return []string{boolString(a.DeleteOnTermination)}, true
				}
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	pg, next, err := page(keep, p, 5, 500)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Volumes   items[xVolume] `xml:"volumeSet"`
		NextToken string         `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Volumes = append(out.Volumes, s.xVolumeLocked(s.st.Volumes[id]))
	}
	return respond(req, out)
}

func (s *Service) modifyVolume(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	id, err := p.required("VolumeId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.findVolumeLocked(id)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeResources(ctx, req, resource{"volume", v.ID, v.Tags}); err != nil {
		return nil, err
	}
	if v.State != "available" && v.State != "in-use" {
		return nil, awsapi.Errorf("IncorrectState", "Volume '%s' is in the '%s' state.", id, v.State)
	}
	prev, modified := s.st.Modifications[id]
	if modified && (prev.State == "modifying" || prev.State == "optimizing") {
		return nil, awsapi.Errorf("IncorrectModificationState", "Volume %s is already being modified (%s); wait for the current modification to complete.", id, prev.State)
	}
	spec := volumeSpec{Size: v.Size, Type: v.Type, IOPS: v.IOPS, Throughput: v.Throughput}
	if p.has("VolumeType") && p.str("VolumeType") != v.Type {
		spec.Type, spec.IOPS, spec.Throughput = p.str("VolumeType"), 0, 0
	}
	if spec.Size, err = p.integer("Size", spec.Size); err != nil {
		return nil, err
	}
	if spec.IOPS, err = p.integer("Iops", spec.IOPS); err != nil {
		return nil, err
	}
	if spec.Throughput, err = p.integer("Throughput", spec.Throughput); err != nil {
		return nil, err
	}
	if spec.Size < v.Size {
		return nil, awsapi.Errorf("InvalidParameterValue", "New size cannot be smaller than existing size")
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if spec.Size == v.Size && spec.Type == v.Type && spec.IOPS == v.IOPS && spec.Throughput == v.Throughput {
		return nil, awsapi.Errorf("InvalidParameterCombination", "New size, type, iops and throughput are the same as the current ones; there is nothing to modify.")
	}
	// EBS allows one modification per volume every six hours, counted here from the start of
	// the previous one.
	if modified && s.now().Before(prev.StartTime.Add(s.opts.VolumeModificationCooldown)) {
		return nil, awsapi.Errorf("VolumeModificationRateExceeded",
			"You've reached the maximum modification rate per volume limit. Wait at least %s between modifications per EBS volume (volume %s was last modified at %s).",
			cooldownWords(s.opts.VolumeModificationCooldown), id, ec2Time(prev.StartTime))
	}
	m := &volumeModification{VolumeID: id, State: "modifying", StartTime: s.now(),
		OriginalSize: v.Size, OriginalType: v.Type, OriginalIOPS: v.reportedIOPS(), OriginalThroughput: v.Throughput,
		TargetSize: spec.Size, TargetType: spec.Type, TargetIOPS: spec.IOPS, TargetThroughput: spec.Throughput}
	s.st.Modifications[id] = m
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	out := s.xModification(m)
	// modifying -> optimizing (the new size and performance apply) -> completed, as EBS does.
	s.after(s.opts.TransitionDelay, func() {
		cur, ok := s.st.Volumes[id]
		if !ok || s.st.Modifications[id] != m {
			return
		}
		if cur.Sized && m.TargetSize > cur.Size {
			if err := s.growSizedVolume(id, m.TargetSize); err != nil {
				s.log.Error("growing a sized volume failed", "volume", id, "err", err)
			}
		}
		cur.Size, cur.Type, cur.IOPS, cur.Throughput = m.TargetSize, m.TargetType, m.TargetIOPS, m.TargetThroughput
		m.State, m.Progress = "optimizing", 50
		s.after(s.opts.TransitionDelay, func() {
			if s.st.Modifications[id] == m {
				m.State, m.Progress, m.EndTime = "completed", 100, s.now()
			}
		})
	})
	return respond(req, &struct {
		meta
		Modification xVolumeModification `xml:"volumeModification"`
	}{Modification: out})
}

// cooldownWords says a cooldown as EBS's message does ("6 hours").
func cooldownWords(d time.Duration) string {
	if d%time.Hour == 0 {
		if d == time.Hour {
			return "1 hour"
		}
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}

func (s *Service) xModification(m *volumeModification) xVolumeModification {
	x := xVolumeModification{VolumeID: m.VolumeID, ModificationState: m.State, TargetSize: m.TargetSize, TargetIOPS: m.TargetIOPS,
		TargetVolumeType: m.TargetType, TargetThroughput: m.TargetThroughput, OriginalSize: m.OriginalSize, OriginalIOPS: m.OriginalIOPS,
		OriginalVolumeType: m.OriginalType, OriginalThroughput: m.OriginalThroughput, Progress: m.Progress, StartTime: ec2Time(m.StartTime)}
	if !m.EndTime.IsZero() {
		x.EndTime = ec2Time(m.EndTime)
	}
	return x
}

func (s *Service) describeVolumesModifications(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := p.list("VolumeId")
	for _, id := range ids {
		if _, ok := s.st.Volumes[id]; !ok {
			return nil, awsapi.Errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	filters := parseFilters(p)
	keep, err := selectMatching(s.st.Modifications, ids, filters, func(m *volumeModification) (tags, fieldFunc) {
		return nil, func(name string) ([]string, bool) {
			switch name {
			case "volume-id":
				return []string{m.VolumeID}, true
			case "modification-state":
				return []string{m.State}, true
			case "target-size":
				return []string{strconv.Itoa(m.TargetSize)}, true
			case "target-iops":
				return []string{strconv.Itoa(m.TargetIOPS)}, true
			case "target-volume-type":
				return []string{m.TargetType}, true
			case "original-size":
				return []string{strconv.Itoa(m.OriginalSize)}, true
			case "original-volume-type":
				return []string{m.OriginalType}, true
			case "start-time":
				return []string{ec2Time(m.StartTime)}, true
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	pg, next, err := page(keep, p, 1, 500)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Modifications items[xVolumeModification] `xml:"volumeModificationSet"`
		NextToken     string                     `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, id := range pg {
		out.Modifications = append(out.Modifications, s.xModification(s.st.Modifications[id]))
	}
	return respond(req, out)
}

func validDevice(d string) bool {
	return strings.HasPrefix(d, "/dev/sd") || strings.HasPrefix(d, "/dev/xvd") || strings.HasPrefix(d, "xvd") || strings.HasPrefix(d, "/dev/nvme")
}

func (s *Service) attachVolume(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	volID, err := p.required("VolumeId")
	if err != nil {
		return nil, err
	}
	instID, err := p.required("InstanceId")
	if err != nil {
		return nil, err
	}
	device, err := p.required("Device")
	if err != nil {
		return nil, err
	}
	if !validDevice(device) {
		return nil, awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", device, device)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.findVolumeLocked(volID)
	if err != nil {
		return nil, err
	}
	inst, err := s.findInstanceLocked(instID)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeResources(ctx, req, resource{"instance", inst.ID, inst.Tags}, resource{"volume", v.ID, v.Tags}); err != nil {
		return nil, err
	}
	if inst.State != stateRunning && inst.State != stateStopped {
		return nil, awsapi.Errorf("IncorrectState", "Instance '%s' is not 'running'.", instID)
	}
	if v.Attachment != nil || v.State != "available" {
		if v.Attachment != nil {
			return nil, awsapi.Errorf("VolumeInUse", "%s is already attached to an instance", volID)
		}
		return nil, awsapi.Errorf("IncorrectState", "vol '%s' is not 'available'.", volID)
	}
	if v.AZ != inst.AZ {
		return nil, awsapi.Errorf("InvalidVolume.ZoneMismatch", "The volume '%s' is not in the same availability zone as instance '%s'", volID, instID)
	}
	for _, o := range s.volumesOfLocked(instID) {
		if o.Attachment.Device == device {
			return nil, awsapi.Errorf("InvalidParameterValue", "Invalid value '%s' for unixDevice. Attachment point %s is already in use", device, device)
		}
	}
	if !s.keyUsable(v) {
		return nil, awsapi.Errorf("IncorrectState", "The KMS key of volume '%s' (%s) is disabled or does not exist, so the volume cannot be attached.", volID, v.KMSKeyID)
	}
	v.Attachment = &volAttachment{InstanceID: instID, Device: device, State: "attaching", AttachTime: s.now()}
	v.State = "in-use"
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	out := s.xVolumeLocked(v).Attachments[0]
	s.after(s.opts.TransitionDelay, func() {
		if cur, ok := s.st.Volumes[volID]; ok && cur.Attachment != nil && cur.Attachment.InstanceID == instID && cur.Attachment.State == "attaching" {
			cur.Attachment.State = "attached"
			s.linkVolumeLocked(cur)
		}
	})
	return respond(req, &struct {
		meta
		xVolumeAttachment
	}{xVolumeAttachment: out})
}

func (s *Service) detachVolume(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	volID, err := p.required("VolumeId")
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.findVolumeLocked(volID)
	if err != nil {
		return nil, err
	}
	a := v.Attachment
	touched := []resource{{"volume", v.ID, v.Tags}}
	if a != nil {
		if inst, ok := s.st.Instances[a.InstanceID]; ok {
			touched = append(touched, resource{"instance", inst.ID, inst.Tags})
		}
	}
	if err := s.authorizeResources(ctx, req, touched...); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, awsapi.Errorf("IncorrectState", "Volume '%s' is in the 'available' state.", volID)
	}
	if id := p.str("InstanceId"); id != "" && id != a.InstanceID {
		return nil, awsapi.Errorf("InvalidAttachment.NotFound", "Volume '%s' is not attached to instance '%s'", volID, id)
	}
	if inst := s.st.Instances[a.InstanceID]; inst != nil && a.Device == inst.RootDevice && inst.State != stateStopped {
		return nil, awsapi.Errorf("IncorrectState", "Unable to detach root volume '%s' from instance '%s'", volID, a.InstanceID)
	}
	if a.State == "detaching" {
		return nil, awsapi.Errorf("IncorrectState", "Volume '%s' is already detaching.", volID)
	}
	a.State = "detaching"
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	out := s.xVolumeLocked(v).Attachments[0]
	s.after(s.opts.TransitionDelay, func() {
		if cur, ok := s.st.Volumes[volID]; ok && cur.Attachment != nil && cur.Attachment.State == "detaching" {
			s.unlinkVolumeLocked(cur)
			cur.Attachment = nil
			cur.State = "available"
		}
	})
	return respond(req, &struct {
		meta
		xVolumeAttachment
	}{xVolumeAttachment: out})
}

// volumesOfLocked lists the volumes attached (or attaching) to an instance.
func (s *Service) volumesOfLocked(instanceID string) []*volume {
	var out []*volume
	for _, id := range sortedKeys(s.st.Volumes) {
		v := s.st.Volumes[id]
		if v.Attachment != nil && v.Attachment.InstanceID == instanceID {
			out = append(out, v)
		}
	}
	return out
}

// The instance sees its attached volumes as $TRIBUTARY_VOLUME_DIR/<volume id>: symbolic links
// into the emulator's volume store, so a volume's data follows it from instance to instance.
func (s *Service) instanceVolumeDir(instanceID string) string {
	return filepath.Join(s.instanceDir(instanceID), "volumes")
}

func (s *Service) linkVolumeLocked(v *volume) {
	dir := s.instanceVolumeDir(v.Attachment.InstanceID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.log.Error("creating instance volume directory failed", "dir", dir, "err", err)
		return
	}
	link := filepath.Join(dir, v.ID)
	_ = os.Remove(link)
	target, err := filepath.Abs(s.VolumeDir(v.ID))
	if err == nil {
		err = os.Symlink(target, link)
	}
	if err != nil {
		s.log.Error("linking volume into instance failed", "volume", v.ID, "instance", v.Attachment.InstanceID, "err", err)
	}
}

func (s *Service) unlinkVolumeLocked(v *volume) {
	if v.Attachment == nil {
		return
	}
	link := filepath.Join(s.instanceVolumeDir(v.Attachment.InstanceID), v.ID)
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		s.log.Warn("unlinking volume from instance failed", "volume", v.ID, "err", err)
	}
}
