// Package autoscaling emulates Amazon EC2 Auto Scaling (awsQuery) for the local cloud: groups
// that launch from EC2 launch templates into their subnets, keep their desired capacity, replace
// instances that fail EC2 health checks (stopped, terminated, or with a failing instance status
// check), and scale in and out. A broker that is an Auto Scaling group of one is thereby healed
// by the cloud itself, as on AWS, with nobody running Terraform.
package autoscaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/ec2"
)

const xmlns = "http://autoscaling.amazonaws.com/doc/2011-01-01/"

// Fleet is what Auto Scaling needs from EC2. *ec2.Service implements it.
type Fleet interface {
	ResolveTemplate(ref ec2.TemplateRef) (id, name string, err error)
	SubnetZone(subnetID string) (string, error)
	DefaultSubnet(az string) (string, error)
	Zones() []string
	LaunchFromTemplate(ctx context.Context, ref ec2.TemplateRef, subnetID string, tags, systemTags map[string]string) (string, error)
	Health(id string) ec2.InstanceHealth
	TerminateForGroup(id string) error
}

// Options configures the service.
type Options struct {
	Env   awsapi.Env
	Fleet Fleet
	// Interval is how often groups are checked and brought to their desired capacity (AWS:
	// about a minute for health checks); default 10s.
	Interval time.Duration
	// ImpairedChecks is how many checks in a row an instance's status check must fail before
	// the group deems it unhealthy, so a broker that crashes and is restarted by its service
	// manager is not replaced at once; default 3.
	ImpairedChecks int
}

// Service is the emulated EC2 Auto Scaling of one account. It is safe for concurrent use.
type Service struct {
	account   string
	region    string
	statePath string
	fleet     Fleet
	log       *slog.Logger
	now       func() time.Time
	interval  time.Duration
	impaired  int

	mu     sync.Mutex
	groups map[string]*group // by name

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ awsapi.Service = (*Service)(nil)

// group is an Auto Scaling group.
type group struct {
	Name             string             `json:"name"`
	UUID             string             `json:"uuid"`
	Template         ec2.TemplateRef    `json:"template"` // as given: id or name, and version
	TemplateID       string             `json:"templateId"`
	TemplateName     string             `json:"templateName"`
	Min              int                `json:"min"`
	Max              int                `json:"max"`
	Desired          int                `json:"desired"`
	Subnets          []string           `json:"subnets,omitempty"`
	Zones            []string           `json:"zones"`
	HealthCheckType  string             `json:"healthCheckType"`
	GracePeriod      int                `json:"gracePeriod"`
	DefaultCooldown  int                `json:"defaultCooldown"`
	ProtectNew       bool               `json:"protectNew,omitempty"`
	Tags             []groupTag         `json:"tags,omitempty"`
	Created          time.Time          `json:"created"`
	Suspended        map[string]string  `json:"suspended,omitempty"` // process -> reason
	Instances        map[string]*member `json:"instances,omitempty"`
	Activities       []*activity        `json:"activities,omitempty"`
	Deleting         bool               `json:"deleting,omitempty"`
	LaunchFailures   int                `json:"launchFailures,omitempty"`
	NextLaunchTry    time.Time          `json:"nextLaunchTry,omitzero"`
	TerminationOrder []string           `json:"terminationPolicies,omitempty"`
}

type groupTag struct {
	Key               string `json:"key"`
	Value             string `json:"value"`
	PropagateAtLaunch bool   `json:"propagateAtLaunch"`
}

// member is an instance of a group.
type member struct {
	ID        string    `json:"id"`
	AZ        string    `json:"az"`
	Lifecycle string    `json:"lifecycle"` // Pending, InService, Terminating
	Health    string    `json:"health"`    // Healthy, Unhealthy
	Launched  time.Time `json:"launched"`
	Protected bool      `json:"protected,omitempty"`
	// Impaired counts checks in a row with a failing instance status check.
	Impaired int `json:"impaired,omitempty"`
	// Why is the cause recorded when the group decided to terminate the instance.
	Why string `json:"why,omitempty"`
	// Template is the launch template version the instance was launched from.
	TemplateVersion string `json:"templateVersion"`
}

type activity struct {
	ID            string    `json:"id"`
	Description   string    `json:"description"`
	Cause         string    `json:"cause"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end,omitzero"`
	Status        string    `json:"status"` // Successful, Failed, InProgress
	StatusMessage string    `json:"statusMessage,omitempty"`
	InstanceID    string    `json:"instanceId,omitempty"`
}

// maxActivities bounds each group's activity history (AWS keeps six weeks).
const maxActivities = 100

// New returns the Auto Scaling service, restoring its state from env.StateDir/autoscaling.json.
// Start begins its checks.
func New(opts Options) (*Service, error) {
	if opts.Fleet == nil {
		return nil, errors.New("autoscaling: Options.Fleet (the EC2 service) is required")
	}
	env := opts.Env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, fleet: opts.Fleet, log: env.Logger, now: env.Now,
		interval: opts.Interval, impaired: opts.ImpairedChecks, groups: map[string]*group{}}
	if s.interval <= 0 {
		s.interval = 10 * time.Second
	}
	if s.impaired <= 0 {
		s.impaired = 3
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if env.StateDir != "" {
		s.statePath = filepath.Join(env.StateDir, "autoscaling.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			var list []*group
			if err := json.Unmarshal(data, &list); err != nil {
				return nil, fmt.Errorf("reading Auto Scaling state %s: %w", s.statePath, err)
			}
			for _, g := range list {
				if g.Instances == nil {
					g.Instances = map[string]*member{}
				}
				s.groups[g.Name] = g
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading Auto Scaling state: %w", err)
		}
	}
	return s, nil
}

// Start begins checking the groups every Interval.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.interval)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.Reconcile(s.ctx)
			}
		}
	}()
}

// Close stops the checks and saves the state.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

func (s *Service) saveLocked() error {
	if s.statePath == "" {
		return nil
	}
	list := make([]*group, 0, len(s.groups))
	for _, name := range sortedKeys(s.groups) {
		list = append(list, s.groups[name])
	}
	data, err := json.MarshalIndent(list, "", " ")
	if err != nil {
		return fmt.Errorf("encoding Auto Scaling state: %w", err)
	}
	if err := awsapi.WriteFileAtomic(s.statePath, data, 0o600); err != nil {
		return fmt.Errorf("saving Auto Scaling state: %w", err)
	}
	return nil
}

func (s *Service) groupARN(g *group) string {
	return "arn:aws:autoscaling:" + s.region + ":" + s.account + ":autoScalingGroup:" + g.UUID + ":autoScalingGroupName/" + g.Name
}

// Reconcile runs one round of checks on every group: health, replacement, capacity. The
// background loop calls it every Interval; tests may call it to act at once.
func (s *Service) Reconcile(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for _, name := range sortedKeys(s.groups) {
		if s.reconcileLocked(ctx, s.groups[name]) {
			changed = true
		}
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			s.log.Error("autoscaling: saving state", "err", err)
		}
	}
}

// reconcileLocked brings one group toward its desired state; it reports whether anything changed.
func (s *Service) reconcileLocked(ctx context.Context, g *group) bool {
	now := s.now()
	changed := false
	for _, id := range sortedKeys(g.Instances) {
		m := g.Instances[id]
		h := s.fleet.Health(id)
		if !h.Exists || h.State == "terminated" {
			if m.Lifecycle != "Terminating" {
				s.recordLocked(g, "Terminating EC2 instance: "+id, "At "+isoTime(now)+" an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped.", id, "Successful", "")
			}
			delete(g.Instances, id)
			changed = true
			continue
		}
		if m.Lifecycle == "Terminating" {
			continue
		}
		if m.Lifecycle == "Pending" && h.State == "running" {
			m.Lifecycle, changed = "InService", true
		}
		if h.Impaired {
			m.Impaired++
		} else {
			m.Impaired = 0
		}
		inGrace := now.Before(m.Launched.Add(time.Duration(g.GracePeriod) * time.Second))
		if _, off := g.Suspended["HealthCheck"]; !off && !inGrace && m.Health == "Healthy" {
			why := ""
			switch {
			case h.State == "stopped" || h.State == "stopping" || h.State == "shutting-down":
				why = "an EC2 health check indicating it has been terminated or stopped"
			case m.Impaired >= s.impaired:
				why = "an EC2 instance status check failure"
			}
			if why != "" {
				m.Health, m.Why, changed = "Unhealthy", why, true
			}
		}
		if _, off := g.Suspended["ReplaceUnhealthy"]; m.Health == "Unhealthy" && !off {
			why := m.Why
			if why == "" {
				why = "a user health check (SetInstanceHealth)"
			}
			s.terminateLocked(g, m, "At "+isoTime(now)+" an instance was taken out of service in response to "+why+".")
			changed = true
		}
	}
	g.finishActivitiesLocked(now)
	if g.Deleting {
		for _, id := range sortedKeys(g.Instances) {
			if m := g.Instances[id]; m.Lifecycle != "Terminating" {
				s.terminateLocked(g, m, "At "+isoTime(now)+" the group was deleted with ForceDelete.")
				changed = true
			}
		}
		if len(g.Instances) == 0 {
			delete(s.groups, g.Name)
			return true
		}
		return changed
	}
	active := g.active()
	if _, off := g.Suspended["Launch"]; !off && len(active) < g.Desired && !now.Before(g.NextLaunchTry) {
		for n := len(active); n < g.Desired; n++ {
			if !s.launchLocked(ctx, g, now) {
				break
			}
		}
		changed = true
	}
	if _, off := g.Suspended["Terminate"]; !off && len(active) > g.Desired {
		for _, m := range g.scaleInOrder()[:len(active)-g.Desired] {
			s.terminateLocked(g, m, fmt.Sprintf("At %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d.", isoTime(now), len(active), g.Desired))
		}
		changed = true
	}
	return changed
}

// active are the members the group counts toward its capacity.
func (g *group) active() []*member {
	var out []*member
	for _, id := range sortedKeys(g.Instances) {
		if m := g.Instances[id]; m.Lifecycle != "Terminating" {
			out = append(out, m)
		}
	}
	return out
}

// scaleInOrder lists the unprotected active members in the order the default termination
// policy picks them: from the zone with the most instances, the oldest first.
func (g *group) scaleInOrder() []*member {
	perZone := map[string]int{}
	var candidates []*member
	for _, m := range g.active() {
		perZone[m.AZ]++
		if !m.Protected {
			candidates = append(candidates, m)
		}
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		a, b := candidates[i], candidates[j]
		if perZone[a.AZ] != perZone[b.AZ] {
			return perZone[a.AZ] > perZone[b.AZ]
		}
		return a.Launched.Before(b.Launched)
	})
	return candidates
}

// launchLocked launches one instance into the zone with the fewest, trying the other zones when
// one has no capacity; a failure is recorded and retried later with a growing delay.
func (s *Service) launchLocked(ctx context.Context, g *group, now time.Time) bool {
	count := map[string]int{}
	for _, m := range g.active() {
		count[m.AZ]++
	}
	zones := append([]string(nil), g.Zones...)
	sort.SliceStable(zones, func(i, j int) bool { return count[zones[i]] < count[zones[j]] })
	tags := map[string]string{}
	for _, t := range g.Tags {
		if t.PropagateAtLaunch {
			tags[t.Key] = t.Value
		}
	}
	cause := fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.", isoTime(now), len(g.active()), g.Desired)
	var lastErr error
	for _, az := range zones {
		subnet, err := s.subnetFor(g, az)
		if err != nil {
			lastErr = err
			continue
		}
		id, err := s.fleet.LaunchFromTemplate(ctx, g.Template, subnet, tags, map[string]string{"aws:autoscaling:groupName": g.Name})
		if err != nil {
			lastErr = err
			continue
		}
		g.Instances[id] = &member{ID: id, AZ: az, Lifecycle: "Pending", Health: "Healthy", Launched: now, Protected: g.ProtectNew, TemplateVersion: g.Template.Version}
		g.LaunchFailures, g.NextLaunchTry = 0, time.Time{}
		s.recordLocked(g, "Launching a new EC2 instance: "+id, cause, id, "Successful", "")
		return true
	}
	g.LaunchFailures++
	delay := s.interval << min(g.LaunchFailures, 5)
	g.NextLaunchTry = now.Add(delay)
	msg := "no zone to launch in"
	if lastErr != nil {
		msg = lastErr.Error()
		var ae *awsapi.Error
		if errors.As(lastErr, &ae) {
			msg = ae.Message
		}
	}
	s.recordLocked(g, "Launching a new EC2 instance.  Status Reason: "+msg, cause, "", "Failed", msg)
	s.log.Warn("autoscaling: launch failed", "group", g.Name, "err", lastErr, "retryIn", delay)
	return false
}

// subnetFor is the group's subnet in a zone: from VPCZoneIdentifier, or the zone's default
// subnet for a group given only AvailabilityZones.
func (s *Service) subnetFor(g *group, az string) (string, error) {
	if len(g.Subnets) == 0 {
		return s.fleet.DefaultSubnet(az)
	}
	for _, sn := range g.Subnets {
		if z, err := s.fleet.SubnetZone(sn); err == nil && z == az {
			return sn, nil
		}
	}
	return "", fmt.Errorf("the group has no subnet in %s", az)
}

func (s *Service) terminateLocked(g *group, m *member, cause string) {
	m.Lifecycle = "Terminating"
	status, msg := "InProgress", ""
	if err := s.fleet.TerminateForGroup(m.ID); err != nil {
		status, msg = "Failed", err.Error()
	}
	s.recordLocked(g, "Terminating EC2 instance: "+m.ID, cause, m.ID, status, msg)
}

func (s *Service) recordLocked(g *group, description, cause, instanceID, status, message string) *activity {
	now := s.now()
	a := &activity{ID: newUUID(), Description: description, Cause: cause, Start: now, Status: status, StatusMessage: message, InstanceID: instanceID}
	if status != "InProgress" {
		a.End = now
	}
	g.Activities = append(g.Activities, a)
	if len(g.Activities) > maxActivities {
		g.Activities = g.Activities[len(g.Activities)-maxActivities:]
	}
	return a
}

// finishActivitiesLocked marks termination activities done once their instance is gone.
func (g *group) finishActivitiesLocked(now time.Time) {
	for _, a := range g.Activities {
		if a.Status == "InProgress" && a.InstanceID != "" {
			if _, ok := g.Instances[a.InstanceID]; !ok {
				a.Status, a.End = "Successful", now
			}
		}
	}
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newUUID() string {
	id := awsapi.NewID(32)
	return id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
}
