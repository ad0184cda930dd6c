// Package bootstatus is the boot agent's status file: a small JSON document
// that says which boot step the instance is at, whether it failed and why.
// The boot agent writes it after every step; the broker's health endpoint
// serves it (the broker finds it through the TRIBUTARY_BOOT_STATUS
// environment variable, which the agent sets before it execs the broker), and
// an operator can read it with cat on the instance.
//
// Format (one JSON object, rewritten atomically; times RFC 3339 UTC):
//
//	{
//	  "step": "volume",                 // the step the agent is at or stopped at
//	  "state": "failed",                // running | done | failed
//	  "error": "waiting for volume ...",// present when state is failed
//	  "time": "2026-11-25T08:30:00Z",   // when this status was written
//	  "instance_id": "i-0123...", "node_id": 1, "cluster_id": "...", // once known
//	  "steps": [                        // every step so far, oldest first
//	    {"step": "imds", "state": "done", "detail": "instance i-0123 in us-east-1a, private IP 10.0.1.5",
//	     "time": "...", "duration_ms": 12}
//	  ]
//	}
package bootstatus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// EnvPath is the environment variable that carries the status file's path
// from the boot agent to the broker it execs.
const EnvPath = "TRIBUTARY_BOOT_STATUS"

// FileName is the status file's name inside the agent's runtime directory.
const FileName = "boot-status.json"

// Step names, in the order the agent runs them.
const (
	StepIMDS     = "imds"     // read instance identity, AZ, private IP and user data from IMDSv2
	StepDocument = "document" // decode and validate the boot document
	StepAttach   = "attach"   // attach the broker's own network interface and data volume (Auto Scaling instances)
	StepSecrets  = "secrets"  // decrypt the secrets envelope with KMS
	StepVolume   = "volume"   // find, format (first boot only), mount and grow the data volume
	StepConfig   = "config"   // write the broker config and secret files
	StepExec     = "exec"     // exec `tributary-broker run`
)

// States of a step.
const (
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// Status is the content of the status file.
type Status struct {
	Step       string    `json:"step"`
	State      string    `json:"state"`
	Error      string    `json:"error,omitempty"`
	Time       time.Time `json:"time"`
	InstanceID string    `json:"instance_id,omitempty"`
	NodeID     *int32    `json:"node_id,omitempty"`
	ClusterID  string    `json:"cluster_id,omitempty"`
	Steps      []Step    `json:"steps"`
}

// Step is one step's record.
type Step struct {
	Step       string    `json:"step"`
	State      string    `json:"state"`
	Detail     string    `json:"detail,omitempty"`
	Error      string    `json:"error,omitempty"`
	Time       time.Time `json:"time"`
	DurationMS int64     `json:"duration_ms"`
}

// Read loads a status file.
func Read(path string) (*Status, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading boot status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parsing boot status %s: %w", path, err)
	}
	return &s, nil
}

// Recorder keeps the status and rewrites the file on every change. One with
// an empty Path records in memory only.
type Recorder struct {
	Path string
	Now  func() time.Time // time.Now when nil

	mu      sync.Mutex
	status  Status
	started time.Time
}

// Identify records who this instance is once the agent knows it.
func (r *Recorder) Identify(instanceID, clusterID string, nodeID *int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if instanceID != "" {
		r.status.InstanceID = instanceID
	}
	if clusterID != "" {
		r.status.ClusterID = clusterID
	}
	if nodeID != nil {
		id := *nodeID
		r.status.NodeID = &id
	}
	return r.writeLocked()
}

// Start marks step as running.
func (r *Recorder) Start(step string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.started = now
	r.status.Step, r.status.State, r.status.Error, r.status.Time = step, StateRunning, "", now
	r.status.Steps = append(r.status.Steps, Step{Step: step, State: StateRunning, Time: now})
	return r.writeLocked()
}

// Done marks the current step as done, with a detail saying what it did.
func (r *Recorder) Done(detail string) error {
	return r.finish(StateDone, detail, nil)
}

// Fail marks the current step as failed with err.
func (r *Recorder) Fail(err error) error {
	return r.finish(StateFailed, "", err)
}

func (r *Recorder) finish(state, detail string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.status.State, r.status.Time = state, now
	last := len(r.status.Steps) - 1
	if last < 0 {
		return fmt.Errorf("boot status: %s without a started step", state)
	}
	s := &r.status.Steps[last]
	s.State, s.Detail, s.Time, s.DurationMS = state, detail, now, now.Sub(r.started).Milliseconds()
	if err != nil {
		r.status.Error, s.Error = err.Error(), err.Error()
	}
	return r.writeLocked()
}

// Snapshot returns a copy of the current status.
func (r *Recorder) Snapshot() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Steps = append([]Step(nil), r.status.Steps...)
	return s
}

func (r *Recorder) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// writeLocked replaces the file atomically (write a temporary file, then
// rename), so a reader never sees half a status.
func (r *Recorder) writeLocked() error {
	if r.Path == "" {
		return nil
	}
	data, err := json.MarshalIndent(&r.status, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding boot status: %w", err)
	}
	dir := filepath.Dir(r.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing boot status: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".boot-status-*")
	if err != nil {
		return fmt.Errorf("writing boot status: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing boot status: %w", err)
	}
	// The status holds no secret; the broker (another user in the image's
	// first ExecStartPre step) and operators read it.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing boot status: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing boot status: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.Path); err != nil {
		return fmt.Errorf("writing boot status: %w", err)
	}
	return nil
}
