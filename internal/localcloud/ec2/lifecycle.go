package ec2

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/imds"
	"github.com/tributary/tributary/internal/localcloud/machine"
)

func mkdirVolume(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating volume directory %s: %w", dir, err)
	}
	return nil
}

// goBoot boots a pending instance (or restarts the process of a running one whose process
// crashed, when restart is set) after delay, in the background.
func (s *Service) goBoot(id string, delay time.Duration, restart bool) {
	s.background(func() {
		if delay > 0 && !s.sleep(delay) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		inst := s.st.Instances[id]
		if inst == nil {
			return
		}
		if inst.State != statePending && !(restart && inst.State == stateRunning) {
			return
		}
		if _, alive := s.machines.Running(id); alive {
			return
		}
		s.bootLocked(inst, restart)
		_ = s.commitLocked()
	})
}

// bootLocked starts an instance's process and makes it running, or records why it could not.
// The process is started with the lock held so a concurrent stop or terminate either sees it
// running (and stops it) or prevents it from starting.
func (s *Service) bootLocked(inst *instance, restart bool) {
	if s.ctx.Err() != nil {
		return // closing: the instance boots again on the next start
	}
	if s.st.DownZones[inst.AZ] {
		s.setStateLocked(inst, stateStopped, "Server.InternalError", fmt.Sprintf("Server.InternalError: The Availability Zone %s is unavailable", inst.AZ))
		inst.DownedByZone = true
		return
	}
	for _, v := range s.volumesOfLocked(inst.ID) {
		if !s.keyUsable(v) {
			s.failLaunchLocked(inst, "Client.InvalidKMSKey.InvalidState", "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state")
			return
		}
	}
	if err := os.MkdirAll(s.instanceVolumeDir(inst.ID), 0o755); err != nil {
		s.failLaunchLocked(inst, "Server.InternalError", "Server.InternalError: Internal error on launch")
		s.log.Error("creating instance directory failed", "instance", inst.ID, "err", err)
		return
	}
	for _, v := range s.volumesOfLocked(inst.ID) {
		if v.Attachment.State == "attached" {
			s.linkVolumeLocked(v)
		}
	}
	if inst.Program != "" {
		spec := machine.Spec{
			InstanceID: inst.ID,
			Binary:     inst.Program,
			Args:       inst.Args,
			Env:        s.instanceEnvLocked(inst),
			Dir:        s.instanceDir(inst.ID),
			ConsoleLog: s.ConsoleLogPath(inst.ID),
			IMDSEnvVar: "AWS_EC2_METADATA_SERVICE_ENDPOINT",
		}
		if _, err := s.machines.Boot(spec); err != nil {
			s.log.Error("booting instance failed", "instance", inst.ID, "err", err)
			s.appendConsole(inst.ID, "[localcloud] boot failed: "+err.Error())
			s.failLaunchLocked(inst, "Server.InternalError", "Server.InternalError: Internal error on launch")
			return
		}
	}
	if !restart {
		s.setStateLocked(inst, stateRunning, "", "")
		inst.TransitionReason = ""
	}
	inst.HasRun = true
	s.bootedAt[inst.ID] = s.now()
}

// failLaunchLocked ends a boot that could not happen: a first launch terminates the instance,
// a later start leaves it stopped, as EC2 does.
func (s *Service) failLaunchLocked(inst *instance, code, message string) {
	if inst.HasRun {
		s.setStateLocked(inst, stateStopped, code, message)
		return
	}
	s.setStateLocked(inst, stateTerminated, code, message)
	s.finishTerminateLocked(inst)
}

func (s *Service) appendConsole(id, line string) {
	f, err := os.OpenFile(s.ConsoleLogPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
}

// instanceEnvLocked is the whole environment of an instance's process (S4): nothing is
// inherited from the emulator, in particular no static AWS credentials.
func (s *Service) instanceEnvLocked(inst *instance) []string {
	dir := s.instanceDir(inst.ID)
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + dir,
		"TMPDIR=" + os.TempDir(),
		"LANG=C.UTF-8",
		"AWS_REGION=" + s.region,
		"AWS_DEFAULT_REGION=" + s.region,
		"TRIBUTARY_VOLUME_DIR=" + s.instanceVolumeDir(inst.ID),
	}
	if ep := s.opts.Endpoint(); ep != "" {
		env = append(env, "AWS_ENDPOINT_URL="+ep)
	}
	return append(env, s.opts.InstanceEnv...)
}

// onProcessExit reacts to an instance process that ended by itself: exit status 0 is an
// instance-initiated shutdown (stop or terminate per the instance's setting); a crash is
// restarted with backoff, as the AMI's systemd unit (Restart=on-failure) does, up to
// maxRestarts times in a row.
func (s *Service) onProcessExit(id string, code int, requested bool) {
	if requested {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.st.Instances[id]
	if inst == nil || inst.State != stateRunning || s.ctx.Err() != nil {
		return
	}
	if code == 0 {
		if inst.ShutdownBehavior == "terminate" {
			s.setStateLocked(inst, stateTerminated, "Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
			s.finishTerminateLocked(inst)
		} else {
			s.setStateLocked(inst, stateStopped, "Client.InstanceInitiatedShutdown", "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
		}
		_ = s.commitLocked()
		return
	}
	if s.now().Sub(s.bootedAt[id]) > time.Minute {
		inst.Restarts = 0
	}
	if inst.Restarts >= maxRestarts {
		// As systemd's start limit: stop trying; the instance stays running with a failed
		// instance status check until it is rebooted, or stopped and started.
		s.appendConsole(id, fmt.Sprintf("[localcloud] process failed (exit status %d) %d times in a row; not restarting it again (reboot, or stop and start the instance)", code, inst.Restarts+1))
		_ = s.commitLocked()
		return
	}
	inst.Restarts++
	delay := s.opts.RestartDelay << min(inst.Restarts-1, 5)
	s.appendConsole(id, fmt.Sprintf("[localcloud] process failed (exit status %d); restarting in %s (restart %d)", code, delay, inst.Restarts))
	_ = s.commitLocked()
	s.goBoot(id, delay, true)
}

// maxRestarts bounds the restarts of a process that keeps failing within a minute of starting.
const maxRestarts = 10

// Metadata implements imds.Source.
func (s *Service) Metadata(id string) (imds.Metadata, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst := s.st.Instances[id]
	if inst == nil {
		return imds.Metadata{}, false
	}
	md := imds.Metadata{
		InstanceID: inst.ID, ImageID: inst.ImageID, InstanceType: inst.InstanceType, Architecture: inst.Architecture,
		AccountID: s.account, Region: s.region, AZ: inst.AZ, AZID: s.zoneID(inst.AZ), ReservationID: inst.ReservationID,
		LaunchIndex: inst.LaunchIndex, PendingTime: inst.LaunchTime, HTTPTokensRequired: inst.HTTPTokens == "required",
		EndpointDisabled: inst.HTTPEndpoint == "disabled",
		MetadataTags:     inst.MetadataTags == "enabled", Tags: copyTags(inst.Tags),
		InstanceProfileARN: inst.InstanceProfileARN, InstanceProfileID: inst.InstanceProfileID, RoleName: inst.RoleName,
		BlockDevices: map[string]string{"ami": inst.RootDevice, "root": inst.RootDevice},
	}
	if inst.UserData != "" {
		md.UserData, _ = base64.StdEncoding.DecodeString(inst.UserData)
	}
	for _, e := range s.interfacesOfLocked(id) {
		sn := s.st.Subnets[e.SubnetID]
		var names []string
		for _, g := range s.groupRefsLocked(e.Groups) {
			names = append(names, g.GroupName)
		}
		ifc := imds.Interface{MAC: e.MAC, DeviceIndex: e.Attachment.DeviceIndex, ID: e.ID, PrivateIPs: []string{e.PrivateIP},
			SubnetID: e.SubnetID, OwnerID: s.account, SecurityGroupIDs: e.Groups, SecurityGroupNames: names}
		if sn != nil {
			ifc.SubnetCIDR, ifc.VPCID = sn.CIDR, sn.VPCID
			if v := s.st.VPCs[sn.VPCID]; v != nil {
				ifc.VPCCIDR = v.CIDR
			}
		}
		md.Interfaces = append(md.Interfaces, ifc)
		if e.Attachment.DeviceIndex == 0 {
			md.PrivateIP, md.Hostname, md.SecurityGroupNames = e.PrivateIP, privateDNSName(e.PrivateIP), names
		}
	}
	n := 0
	for _, v := range s.volumesOfLocked(id) {
		if v.Attachment.Device == inst.RootDevice {
			continue
		}
		n++
		md.BlockDevices["ebs"+strconv.Itoa(n)] = strings.TrimPrefix(v.Attachment.Device, "/dev/")
	}
	return md, true
}

// RoleCredentials implements imds.Source: temporary credentials of the instance profile's
// role, valid for six hours and renewed when less than an hour is left (as EC2 does).
func (s *Service) RoleCredentials(id string) (imds.RoleCredentials, error) {
	s.mu.Lock()
	inst := s.st.Instances[id]
	if inst == nil || inst.RoleARN == "" {
		s.mu.Unlock()
		return imds.RoleCredentials{}, fmt.Errorf("instance %s has no instance profile role", id)
	}
	c, ok := s.creds[id]
	roleARN, roleID := inst.RoleARN, inst.RoleID
	s.mu.Unlock()
	if !ok || c.Expiration.Sub(s.now()) < time.Hour {
		var err error
		c, err = s.opts.Env.Credentials.IssueSession(awsapi.AssumedRoleIdentity(s.account, roleARN, roleID, id), 6*time.Hour, credentialSource(id))
		if err != nil {
			return imds.RoleCredentials{}, err
		}
		s.mu.Lock()
		s.creds[id] = c
		s.mu.Unlock()
	}
	return imds.RoleCredentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken,
		Expiration: c.Expiration, LastUpdated: c.Expiration.Add(-6 * time.Hour)}, nil
}

// KeepInterfacesOnTerminate is a fault for testing clients of EC2: while on,
// an instance that terminates keeps its network interfaces attached (those
// not marked DeleteOnTermination) instead of releasing them, as moto 5.2
// leaves them. DetachNetworkInterface still refuses device index 0, and
// DeleteNetworkInterface an attached interface, as on AWS.
func (s *Service) KeepInterfacesOnTerminate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepInterfaces = on
}

// KillInstance is the fault API's hard kill: the process group gets SIGKILL and the instance
// ends stopped with a Server.InternalError reason, like a host failure of an EBS-backed
// instance; StartInstances brings it back.
func (s *Service) KillInstance(id string) error {
	s.mu.Lock()
	inst := s.st.Instances[id]
	if inst == nil {
		s.mu.Unlock()
		return notFound("InvalidInstanceID.NotFound", "instance", []string{id})
	}
	if inst.State != stateRunning && inst.State != statePending {
		s.mu.Unlock()
		return awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is %s, not running.", id, inst.State)
	}
	s.setStateLocked(inst, stateStopping, "Server.InternalError", "Server.InternalError: The instance was killed by the local cloud fault API")
	inst.TransitionReason = "Server.InternalError"
	_ = s.commitLocked()
	s.mu.Unlock()
	s.appendConsole(id, "[localcloud] fault injection: killing the instance (SIGKILL)")
	s.machines.Kill(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.st.Instances[id]; cur != nil && cur.State == stateStopping {
		cur.State = stateStopped
	}
	return s.commitLocked()
}

// CrashInstance is the fault API's process crash: the instance's program gets SIGKILL but the
// instance stays running, and the program is restarted as a crashed systemd service is.
func (s *Service) CrashInstance(id string) error {
	s.mu.Lock()
	inst := s.st.Instances[id]
	if inst == nil {
		s.mu.Unlock()
		return notFound("InvalidInstanceID.NotFound", "instance", []string{id})
	}
	state := inst.State
	s.mu.Unlock()
	if state != stateRunning {
		return awsapi.Errorf("IncorrectInstanceState", "The instance '%s' is %s, not running.", id, state)
	}
	s.appendConsole(id, "[localcloud] fault injection: crashing the instance's program (SIGKILL)")
	if !s.machines.Crash(id) {
		return awsapi.Errorf("IncorrectInstanceState", "The instance '%s' has no running program.", id)
	}
	return nil
}

// ZoneDown takes an Availability Zone out: every running instance in it is killed (SIGKILL)
// and left stopped with a Server.InternalError reason, new launches there fail with
// InsufficientInstanceCapacity, and DescribeAvailabilityZones reports it impaired.
func (s *Service) ZoneDown(az string) ([]string, error) {
	s.mu.Lock()
	if !s.validZone(az) {
		s.mu.Unlock()
		return nil, awsapi.Errorf("InvalidParameterValue", "Unknown Availability Zone %s (zones: %s)", az, strings.Join(s.zones(), ", "))
	}
	s.st.DownZones[az] = true
	var ids []string
	for _, inst := range s.st.Instances {
		if inst.AZ == az && (inst.State == stateRunning || inst.State == statePending) {
			s.setStateLocked(inst, stateStopping, "Server.InternalError", fmt.Sprintf("Server.InternalError: The Availability Zone %s is unavailable", az))
			inst.TransitionReason = "Server.InternalError"
			inst.DownedByZone = true
			ids = append(ids, inst.ID)
		}
	}
	sort.Strings(ids)
	_ = s.commitLocked()
	s.mu.Unlock()
	s.log.Warn("availability zone down (fault injection)", "az", az, "instances", ids)
	done := make(chan struct{}, len(ids))
	for _, id := range ids {
		go func() {
			s.appendConsole(id, "[localcloud] fault injection: availability zone "+az+" is down")
			s.machines.Kill(id)
			done <- struct{}{}
		}()
	}
	for range ids {
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if cur := s.st.Instances[id]; cur != nil && cur.State == stateStopping {
			cur.State = stateStopped
		}
	}
	return ids, s.commitLocked()
}

// ZoneUp ends an outage: the instances it stopped boot again.
func (s *Service) ZoneUp(az string) ([]string, error) {
	s.mu.Lock()
	if !s.validZone(az) {
		s.mu.Unlock()
		return nil, awsapi.Errorf("InvalidParameterValue", "Unknown Availability Zone %s (zones: %s)", az, strings.Join(s.zones(), ", "))
	}
	delete(s.st.DownZones, az)
	var ids []string
	for _, inst := range s.st.Instances {
		if inst.AZ == az && inst.DownedByZone && inst.State == stateStopped {
			s.setStateLocked(inst, statePending, "", "")
			inst.TransitionReason, inst.DownedByZone = "", false
			ids = append(ids, inst.ID)
		}
	}
	sort.Strings(ids)
	err := s.commitLocked()
	s.mu.Unlock()
	s.log.Info("availability zone up (fault injection)", "az", az, "instances", ids)
	for _, id := range ids {
		s.goBoot(id, 0, false)
	}
	return ids, err
}

// InstanceInfo is what the fault API and diagnostics show about an instance.
type InstanceInfo struct {
	ID           string `json:"instanceId"`
	State        string `json:"state"`
	AZ           string `json:"availabilityZone"`
	PrivateIP    string `json:"privateIp,omitempty"`
	PID          int    `json:"pid,omitempty"`
	IMDSEndpoint string `json:"imdsEndpoint,omitempty"`
	ConsoleLog   string `json:"consoleLog"`
	VolumeDir    string `json:"volumeDir"`
}

// Instances lists every instance with its process details.
func (s *Service) Instances() []InstanceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []InstanceInfo
	for _, id := range sortedKeys(s.st.Instances) {
		inst := s.st.Instances[id]
		info := InstanceInfo{ID: id, State: inst.State, AZ: inst.AZ, ConsoleLog: s.ConsoleLogPath(id), VolumeDir: filepath.Clean(s.instanceVolumeDir(id))}
		if e := s.primaryInterfaceLocked(id); e != nil {
			info.PrivateIP = e.PrivateIP
		}
		info.PID, _ = s.machines.Running(id)
		info.IMDSEndpoint, _ = s.machines.IMDSEndpoint(id)
		out = append(out, info)
	}
	return out
}
