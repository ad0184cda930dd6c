package ec2

// Usage is a running instance as the metrics AWS publishes about it need
// it: its process, its type's CPU credit figures and its attached volumes.
type Usage struct {
	InstanceID   string
	InstanceType string
	// Burstable is a T instance; VCPUs its vCPU count.
	Burstable bool
	VCPUs     int
	// PID is the instance's process (0 while none runs).
	PID     int
	Volumes []VolumeUsage
}

// VolumeUsage is a volume attached to a running instance.
type VolumeUsage struct {
	VolumeID string
	Type     string
	SizeGiB  int
	// Root is the instance's root volume (attached at its root device).
	Root bool
}

// RunningUsage lists the running instances, sorted by id.
func (s *Service) RunningUsage() []Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	attached := map[string][]VolumeUsage{}
	for _, id := range sortedKeys(s.st.Volumes) {
		v := s.st.Volumes[id]
		if v.Attachment != nil && v.Attachment.State == "attached" {
			root := false
			if inst := s.st.Instances[v.Attachment.InstanceID]; inst != nil {
				root = inst.RootDevice != "" && v.Attachment.Device == inst.RootDevice
			}
			attached[v.Attachment.InstanceID] = append(attached[v.Attachment.InstanceID], VolumeUsage{VolumeID: v.ID, Type: v.Type, SizeGiB: v.Size, Root: root})
		}
	}
	var out []Usage
	for _, id := range sortedKeys(s.st.Instances) {
		inst := s.st.Instances[id]
		if inst.State != "running" {
			continue
		}
		u := Usage{InstanceID: id, InstanceType: inst.InstanceType, Volumes: attached[id]}
		if it, ok := lookupInstanceType(inst.InstanceType); ok {
			u.Burstable, u.VCPUs = it.Burstable, it.VCPUs
		}
		u.PID, _ = s.machines.Running(id)
		out = append(out, u)
	}
	return out
}
