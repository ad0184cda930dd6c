// Package ec2 emulates Amazon EC2 (query protocol, API version 2016-11-15) for the local cloud:
// a default VPC with a default subnet in three Availability Zones, security groups, network
// interfaces with loopback private IPs, EBS volumes backed by directories, images registered
// from local binaries, and instances that really run as child processes with their own
// instance metadata service (see package machine and imds).
//
// All state is one JSON document in the state directory, written atomically after every
// change; New recovers it and Start boots again the instances that were running.
package ec2

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/loopback"
	"github.com/tributary/tributary/internal/localcloud/machine"
)

// Options configures the EC2 service.
type Options struct {
	Env      awsapi.Env
	Keys     awsapi.KeyResolver             // KMS; nil: KmsKeyId values are not checked
	Profiles awsapi.InstanceProfileResolver // IAM; nil: instance profiles are refused
	// Endpoint returns the emulator's URL, given to instances as AWS_ENDPOINT_URL.
	Endpoint func() string
	// LoopbackOctet fixes the second octet of private IPs (127.<octet>.x.y); 0 claims a free one.
	// A state directory keeps the octet it was created with.
	LoopbackOctet int
	// StopGracePeriod is how long an instance gets between SIGTERM and SIGKILL (default 30s).
	StopGracePeriod time.Duration
	// TransitionDelay is how long transitional states (volume creating, attaching, modifying)
	// last, so clients see them as on AWS (default 200ms).
	TransitionDelay time.Duration
	// TerminatedRetention is how long a terminated instance stays visible (AWS: about an hour).
	TerminatedRetention time.Duration
	// InstanceEnv is added to every instance's environment (KEY=VALUE).
	InstanceEnv []string
	// RestartDelay is the first delay before a crashed instance program is restarted; it
	// doubles with every failure in a row, up to 32 times (default 1s).
	RestartDelay time.Duration
	// AvailabilityZones are the zones' letter suffixes (default a, b, c).
	AvailabilityZones []string
	// VolumeModificationCooldown is the least time between two modifications of one volume
	// (EBS: 6 hours, the default); tests shorten it.
	VolumeModificationCooldown time.Duration
	// SizedVolumes makes every new volume an XFS filesystem of the volume's size on a loop
	// device, mounted at its directory, instead of a plain directory (see sized.go). It needs
	// root, losetup and xfsprogs.
	SizedVolumes bool
}

// Service is the EC2 API.
type Service struct {
	opts     Options
	account  string
	region   string
	dir      string
	log      *slog.Logger
	now      func() time.Time
	machines *machine.Manager
	claim    *loopback.Claim

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	st       *state
	creds    map[string]awsapi.Credential // instance id -> current role credentials
	bootedAt map[string]time.Time         // instance id -> when its process last started
	// keepInterfaces is the KeepInterfacesOnTerminate fault.
	keepInterfaces bool
}

// New loads (or creates) the EC2 state under opts.Env.StateDir. Instances do not run until Start.
func New(opts Options) (*Service, error) {
	if opts.Env.StateDir == "" {
		return nil, errors.New("ec2: a state directory is required")
	}
	if opts.Env.Credentials == nil {
		return nil, errors.New("ec2: a credential store is required")
	}
	opts.Env = opts.Env.WithDefaults()
	if opts.StopGracePeriod == 0 {
		opts.StopGracePeriod = 30 * time.Second
	}
	if opts.TransitionDelay == 0 {
		opts.TransitionDelay = 200 * time.Millisecond
	}
	if opts.RestartDelay == 0 {
		opts.RestartDelay = time.Second
	}
	if opts.TerminatedRetention == 0 {
		opts.TerminatedRetention = time.Hour
	}
	if len(opts.AvailabilityZones) == 0 {
		opts.AvailabilityZones = []string{"a", "b", "c"}
	}
	if opts.VolumeModificationCooldown == 0 {
		opts.VolumeModificationCooldown = 6 * time.Hour
	}
	if opts.Endpoint == nil {
		opts.Endpoint = func() string { return "" }
	}
	s := &Service{
		opts: opts, account: opts.Env.Account, region: opts.Env.Region, dir: opts.Env.StateDir,
		log: opts.Env.Logger, now: opts.Env.Now, creds: map[string]awsapi.Credential{}, bootedAt: map[string]time.Time{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, d := range []string{s.dir, s.volumesDir(), filepath.Join(s.dir, "instances"), filepath.Join(s.dir, "images")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("ec2: creating %s: %w", d, err)
		}
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.claimLoopback(); err != nil {
		return nil, err
	}
	s.machines = machine.NewManager(s, s.onProcessExit, s.log)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureDefaultVPCLocked()
	s.recoverLocked()
	if err := s.saveLocked(); err != nil {
		_ = s.claim.Release()
		return nil, err
	}
	return s, nil
}

func (s *Service) claimLoopback() error {
	want := s.st.LoopbackOctet
	if want == 0 {
		want = s.opts.LoopbackOctet
	}
	var err error
	if want != 0 {
		s.claim, err = loopback.ClaimOctet(want)
		if errors.Is(err, loopback.ErrTaken) {
			// Two emulators on one block would hand out the same IPs; refuse rather than collide.
			return fmt.Errorf("ec2: private IPs 127.%d.0.0/16 are in use by another local cloud: %w", want, err)
		}
	} else {
		s.claim, err = loopback.ClaimFree()
	}
	if err != nil {
		return fmt.Errorf("ec2: %w", err)
	}
	s.st.LoopbackOctet = s.claim.Octet
	return nil
}

// Start boots the instances that were running when the state was saved. Call it once the
// endpoint is listening (instances talk to it as soon as they start).
func (s *Service) Start() {
	s.mu.Lock()
	for _, id := range sortedKeys(s.st.Volumes) {
		if s.st.Volumes[id].Sized {
			if err := s.mountSizedVolume(id); err != nil {
				s.log.Error("mounting a sized volume failed", "volume", id, "err", err)
			}
		}
	}
	var ids []string
	for _, inst := range s.st.Instances {
		if inst.State == statePending {
			ids = append(ids, inst.ID)
		}
	}
	s.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		s.goBoot(id, 0, false)
	}
	s.wg.Add(1)
	go s.reapTerminated()
}

// Close stops every instance process (SIGTERM, then SIGKILL after the grace period) without
// changing their recorded state, so a restart boots them again, and saves the state.
func (s *Service) Close() error {
	s.cancel()
	s.machines.ShutdownAll(s.opts.StopGracePeriod)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.saveLocked()
	for _, id := range sortedKeys(s.st.Volumes) {
		if s.st.Volumes[id].Sized {
			err = errors.Join(err, s.releaseSizedVolume(id))
		}
	}
	if rerr := s.claim.Release(); err == nil {
		err = rerr
	}
	return err
}

// Machines exposes the process manager (for the fault API and diagnostics).
func (s *Service) Machines() *machine.Manager { return s.machines }

func (s *Service) statePath() string  { return filepath.Join(s.dir, "state.json") }
func (s *Service) volumesDir() string { return filepath.Join(s.dir, "volumes") }

// VolumeDir is the directory that holds the data of volume id.
func (s *Service) VolumeDir(id string) string { return filepath.Join(s.volumesDir(), id) }

func (s *Service) instanceDir(id string) string { return filepath.Join(s.dir, "instances", id) }

// ConsoleLogPath is the file holding an instance's console output.
func (s *Service) ConsoleLogPath(id string) string {
	return filepath.Join(s.instanceDir(id), "console.log")
}

func (s *Service) load() error {
	s.st = &state{}
	data, err := os.ReadFile(s.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("ec2: reading state: %w", err)
	default:
		if err := json.Unmarshal(data, s.st); err != nil {
			return fmt.Errorf("ec2: decoding state %s: %w", s.statePath(), err)
		}
	}
	st := s.st
	if st.VPCs == nil {
		st.VPCs = map[string]*vpc{}
	}
	if st.Subnets == nil {
		st.Subnets = map[string]*subnet{}
	}
	if st.SecurityGroups == nil {
		st.SecurityGroups = map[string]*securityGroup{}
	}
	if st.NetworkInterfaces == nil {
		st.NetworkInterfaces = map[string]*networkInterface{}
	}
	if st.Volumes == nil {
		st.Volumes = map[string]*volume{}
	}
	if st.Modifications == nil {
		st.Modifications = map[string]*volumeModification{}
	}
	if st.Images == nil {
		st.Images = map[string]*image{}
	}
	if st.Instances == nil {
		st.Instances = map[string]*instance{}
	}
	if st.LaunchTemplates == nil {
		st.LaunchTemplates = map[string]*launchTemplate{}
	}
	if st.Idempotency == nil {
		st.Idempotency = map[string]*idempotentCall{}
	}
	if st.DownZones == nil {
		st.DownZones = map[string]bool{}
	}
	// Every resource has a tag map, so tagging never writes to a nil map.
	fix := func(t *tags) {
		if *t == nil {
			*t = tags{}
		}
	}
	for _, x := range st.VPCs {
		fix(&x.Tags)
	}
	for _, x := range st.Subnets {
		fix(&x.Tags)
	}
	for _, x := range st.SecurityGroups {
		fix(&x.Tags)
	}
	for _, x := range st.NetworkInterfaces {
		fix(&x.Tags)
	}
	for _, x := range st.Volumes {
		fix(&x.Tags)
	}
	for _, x := range st.Images {
		fix(&x.Tags)
	}
	for _, x := range st.Instances {
		fix(&x.Tags)
	}
	for _, x := range st.LaunchTemplates {
		fix(&x.Tags)
	}
	return nil
}

func (s *Service) saveLocked() error {
	data, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return fmt.Errorf("ec2: encoding state: %w", err)
	}
	if err := awsapi.WriteFileAtomic(s.statePath(), data, 0o644); err != nil {
		return fmt.Errorf("ec2: saving state: %w", err)
	}
	return nil
}

// commitLocked saves after a change; a failed save is an internal error for the caller.
func (s *Service) commitLocked() error {
	if err := s.saveLocked(); err != nil {
		s.log.Error("saving EC2 state failed", "err", err)
		return err
	}
	return nil
}

// recoverLocked finishes the transitions a previous run left half done.
func (s *Service) recoverLocked() {
	for _, inst := range s.st.Instances {
		switch inst.State {
		case statePending, stateRunning:
			inst.State = statePending // booted again by Start
		case stateStopping:
			s.setStateLocked(inst, stateStopped, "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown")
		case stateShuttingDown:
			s.finishTerminateLocked(inst)
		}
	}
	for _, v := range s.st.Volumes {
		if v.State == "creating" {
			v.State = "available"
		}
		if v.Attachment != nil {
			switch v.Attachment.State {
			case "attaching":
				v.Attachment.State = "attached"
			case "detaching":
				s.unlinkVolumeLocked(v)
				v.Attachment = nil
				v.State = "available"
			}
		}
	}
	for _, m := range s.st.Modifications {
		if m.State == "modifying" || m.State == "optimizing" {
			m.State, m.Progress, m.EndTime = "completed", 100, s.now()
		}
	}
}

// after runs fn with the lock held after d, unless the service closes first.
func (s *Service) after(d time.Duration, fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !s.sleep(d) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		fn()
		_ = s.commitLocked()
	}()
}

// sleep waits for d and reports whether it passed: false when the service closed first.
func (s *Service) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// background runs fn (without the lock) unless the service is closing.
func (s *Service) background(fn func()) {
	if s.ctx.Err() != nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

func (s *Service) reapTerminated() {
	defer s.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		changed := false
		for id, inst := range s.st.Instances {
			if inst.State == stateTerminated && s.now().Sub(inst.TerminatedAt) > s.opts.TerminatedRetention {
				delete(s.st.Instances, id)
				_ = os.RemoveAll(s.instanceDir(id))
				changed = true
			}
		}
		s.removeUnusedImageProgramsLocked()
		for k, c := range s.st.Idempotency {
			if s.now().Sub(c.Created) > 24*time.Hour {
				delete(s.st.Idempotency, k)
				changed = true
			}
		}
		if changed {
			_ = s.commitLocked()
		}
		s.mu.Unlock()
	}
}

// removeUnusedImageProgramsLocked deletes the programs of deregistered images once no
// instance that may boot again refers to them.
func (s *Service) removeUnusedImageProgramsLocked() {
	entries, err := os.ReadDir(filepath.Join(s.dir, "images"))
	if err != nil {
		return
	}
	for _, e := range entries {
		id := e.Name()
		if _, ok := s.st.Images[id]; ok {
			continue
		}
		inUse := false
		for _, inst := range s.st.Instances {
			inUse = inUse || (inst.ImageID == id && inst.State != stateTerminated)
		}
		if !inUse {
			_ = os.RemoveAll(filepath.Join(s.dir, "images", id))
		}
	}
}

// Handle implements awsapi.Service.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	h, ok := handlers[req.Action]
	if !ok {
		return nil, awsapi.Errorf("InvalidAction", "The action %s is not valid for this web service.", req.Action)
	}
	p := newParams(req.Params)
	if dry, _ := p.boolean("DryRun", false); dry {
		if err := req.Authorize(ctx, "ec2:"+req.Action, "*", nil); err != nil {
			return nil, err
		}
		return nil, awsapi.ErrorfStatus(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	if resourceAuthorized[req.Action] {
		return h(s, ctx, req, p) // the handler authorizes each resource it touches
	}
	if err := req.Authorize(ctx, "ec2:"+req.Action, "*", nil); err != nil {
		return nil, err
	}
	return h(s, ctx, req, p)
}

type handler func(s *Service, ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"DescribeAvailabilityZones": (*Service).describeAvailabilityZones,
		"DescribeRegions":           (*Service).describeRegions,
		"DescribeAccountAttributes": (*Service).describeAccountAttributes,
		"CreateVpc":                 (*Service).createVPC,
		"DeleteVpc":                 (*Service).deleteVPC,
		"DescribeVpcs":              (*Service).describeVPCs,
		"DescribeVpcAttribute":      (*Service).describeVPCAttribute,
		"CreateSubnet":              (*Service).createSubnet,
		"DeleteSubnet":              (*Service).deleteSubnet,
		"DescribeSubnets":           (*Service).describeSubnets,

		"CreateSecurityGroup":           (*Service).createSecurityGroup,
		"DeleteSecurityGroup":           (*Service).deleteSecurityGroup,
		"DescribeSecurityGroups":        (*Service).describeSecurityGroups,
		"DescribeSecurityGroupRules":    (*Service).describeSecurityGroupRules,
		"AuthorizeSecurityGroupIngress": (*Service).authorizeIngress,
		"AuthorizeSecurityGroupEgress":  (*Service).authorizeEgress,
		"RevokeSecurityGroupIngress":    (*Service).revokeIngress,
		"RevokeSecurityGroupEgress":     (*Service).revokeEgress,

		"CreateNetworkInterface":          (*Service).createNetworkInterface,
		"DeleteNetworkInterface":          (*Service).deleteNetworkInterface,
		"DescribeNetworkInterfaces":       (*Service).describeNetworkInterfaces,
		"ModifyNetworkInterfaceAttribute": (*Service).modifyNetworkInterfaceAttribute,
		"AttachNetworkInterface":          (*Service).attachNetworkInterface,
		"DetachNetworkInterface":          (*Service).detachNetworkInterface,

		"CreateVolume":                 (*Service).createVolume,
		"DeleteVolume":                 (*Service).deleteVolume,
		"DescribeVolumes":              (*Service).describeVolumes,
		"ModifyVolume":                 (*Service).modifyVolume,
		"DescribeVolumesModifications": (*Service).describeVolumesModifications,
		"AttachVolume":                 (*Service).attachVolume,
		"DetachVolume":                 (*Service).detachVolume,

		"DescribeImages":  (*Service).describeImages,
		"DeregisterImage": (*Service).deregisterImage,

		"RunInstances":                  (*Service).runInstances,
		"StartInstances":                (*Service).startInstances,
		"StopInstances":                 (*Service).stopInstances,
		"RebootInstances":               (*Service).rebootInstances,
		"TerminateInstances":            (*Service).terminateInstances,
		"DescribeInstances":             (*Service).describeInstances,
		"DescribeInstanceStatus":        (*Service).describeInstanceStatus,
		"DescribeInstanceAttribute":     (*Service).describeInstanceAttribute,
		"ModifyInstanceAttribute":       (*Service).modifyInstanceAttribute,
		"ModifyInstanceMetadataOptions": (*Service).modifyInstanceMetadataOptions,
		"GetConsoleOutput":              (*Service).getConsoleOutput,
		"DescribeInstanceTypes":         (*Service).describeInstanceTypes,

		"CreateLaunchTemplate":           (*Service).createLaunchTemplate,
		"CreateLaunchTemplateVersion":    (*Service).createLaunchTemplateVersion,
		"ModifyLaunchTemplate":           (*Service).modifyLaunchTemplate,
		"DeleteLaunchTemplate":           (*Service).deleteLaunchTemplate,
		"DeleteLaunchTemplateVersions":   (*Service).deleteLaunchTemplateVersions,
		"DescribeLaunchTemplates":        (*Service).describeLaunchTemplates,
		"DescribeLaunchTemplateVersions": (*Service).describeLaunchTemplateVersions,

		"CreateTags":   (*Service).createTags,
		"DeleteTags":   (*Service).deleteTags,
		"DescribeTags": (*Service).describeTags,
	}
}

// newID makes an EC2 resource id such as i-0123456789abcdef0.
func newID(prefix string) string { return prefix + "-" + awsapi.NewID(17) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hashParams fingerprints a request's parameters (without ClientToken) for idempotency checks.
func hashParams(p params) string {
	keys := sortedKeys(p)
	h := sha256.New()
	for _, k := range keys {
		if k == "ClientToken" || k == "Action" || k == "Version" {
			continue
		}
		fmt.Fprintf(h, "%s=%s\n", k, p[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// idempotentLocked looks up an earlier call with the same client token: it returns the id the
// first call produced, or IdempotentParameterMismatch when the parameters differ.
func (s *Service) idempotentLocked(action string, p params) (string, error) {
	tok := p.str("ClientToken")
	if tok == "" {
		return "", nil
	}
	if len(tok) > 64 {
		return "", awsapi.Errorf("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. Length exceeds 64.", tok)
	}
	c, ok := s.st.Idempotency[action+"/"+tok]
	if !ok {
		return "", nil
	}
	if c.ParamsHash != hashParams(p) {
		return "", awsapi.Errorf("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
	}
	return c.ResultID, nil
}

func (s *Service) rememberLocked(action string, p params, id string) {
	if tok := p.str("ClientToken"); tok != "" {
		s.st.Idempotency[action+"/"+tok] = &idempotentCall{ParamsHash: hashParams(p), ResultID: id, Created: s.now()}
	}
}

// notFound renders AWS's error for missing ids: "The instance ID 'i-1' does not exist".
func notFound(code, what string, ids []string) error {
	if len(ids) == 1 {
		return awsapi.Errorf(code, "The %s ID '%s' does not exist", what, ids[0])
	}
	return awsapi.Errorf(code, "The %s IDs '%s' do not exist", what, strings.Join(ids, ", "))
}

// checkID validates the shape of an id ("i-" + hex) as EC2 does before looking it up.
func checkID(id, prefix, code string) error {
	rest, ok := strings.CutPrefix(id, prefix+"-")
	if !ok || rest == "" {
		return awsapi.Errorf(code, "Invalid id: \"%s\" (expecting \"%s-...\")", id, prefix)
	}
	for _, c := range rest {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return awsapi.Errorf(code, "Invalid id: \"%s\"", id)
		}
	}
	return nil
}
