// Package machine runs the processes behind emulated EC2 instances: one child process per
// running instance, in its own process group, with its console (stdout and stderr) appended to
// a log file and its own instance metadata endpoint. Stopping sends SIGTERM to the whole group,
// then SIGKILL after a grace period, so nothing an instance started outlives it.
package machine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/tributary/tributary/internal/localcloud/imds"
)

// Spec describes one boot of an instance.
type Spec struct {
	InstanceID string
	Binary     string   // the image's program; started as `Binary Args...`
	Args       []string // ["boot"] for broker images
	Env        []string // the whole environment (the caller builds it; nothing is inherited)
	Dir        string   // working directory (also HOME)
	ConsoleLog string   // stdout+stderr are appended here
	// IMDSEnvVar names the variable that receives the metadata endpoint URL
	// (AWS_EC2_METADATA_SERVICE_ENDPOINT); the endpoint is started by Boot.
	IMDSEnvVar string
}

// ExitFunc is called once per boot when the process ends by itself or is stopped. requested
// is true when Shutdown or Kill caused the exit.
type ExitFunc func(instanceID string, exitCode int, requested bool)

// Manager owns the running machines. It is safe for concurrent use.
type Manager struct {
	log    *slog.Logger
	src    imds.Source
	onExit ExitFunc

	mu       sync.Mutex
	machines map[string]*running
	wg       sync.WaitGroup
}

type running struct {
	cmd       *exec.Cmd
	imds      *imds.Server
	done      chan struct{} // closed when the process has exited and been reaped
	requested bool          // a stop was asked for (guarded by Manager.mu)
	started   time.Time
}

// NewManager makes a manager whose machines read metadata from src; onExit (may be nil) is
// told about every process exit.
func NewManager(src imds.Source, onExit ExitFunc, log *slog.Logger) *Manager {
	return &Manager{log: log, src: src, onExit: onExit, machines: map[string]*running{}}
}

// Boot starts the metadata endpoint and the process of spec.InstanceID. It returns the
// metadata endpoint URL. Booting an instance that already runs is an error.
func (m *Manager) Boot(spec Spec) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.machines[spec.InstanceID]; ok {
		return "", fmt.Errorf("instance %s is already running", spec.InstanceID)
	}
	md, err := imds.Start("127.0.0.1:0", spec.InstanceID, m.src, m.log)
	if err != nil {
		return "", err
	}
	console, err := os.OpenFile(spec.ConsoleLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		md.Close()
		return "", fmt.Errorf("opening console log of %s: %w", spec.InstanceID, err)
	}
	fmt.Fprintf(console, "[localcloud] %s booting %s %v\n", time.Now().UTC().Format(time.RFC3339), spec.Binary, spec.Args)
	cmd := exec.Command(spec.Binary, spec.Args...)
	cmd.Env = append(append([]string(nil), spec.Env...), spec.IMDSEnvVar+"="+md.Endpoint())
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		console.Close()
		md.Close()
		return "", fmt.Errorf("starting %s for instance %s: %w", spec.Binary, spec.InstanceID, err)
	}
	r := &running{cmd: cmd, imds: md, done: make(chan struct{}), started: time.Now()}
	m.machines[spec.InstanceID] = r
	m.log.Info("instance process started", "instance", spec.InstanceID, "pid", cmd.Process.Pid, "imds", md.Endpoint())
	m.wg.Add(1)
	go m.wait(spec.InstanceID, r, console)
	return md.Endpoint(), nil
}

func (m *Manager) wait(id string, r *running, console *os.File) {
	defer m.wg.Done()
	err := r.cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	// Whatever the leader did, make sure no process of the group is left.
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	fmt.Fprintf(console, "[localcloud] %s process exited: %v\n", time.Now().UTC().Format(time.RFC3339), describeExit(err))
	console.Close()
	r.imds.Close()
	m.mu.Lock()
	requested := r.requested
	if m.machines[id] == r {
		delete(m.machines, id)
	}
	m.mu.Unlock()
	close(r.done)
	m.log.Info("instance process exited", "instance", id, "code", code, "requested", requested)
	if m.onExit != nil {
		m.onExit(id, code, requested)
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Running reports whether the instance's process is alive, and its pid.
func (m *Manager) Running(id string) (pid int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.machines[id]
	if !ok {
		return 0, false
	}
	return r.cmd.Process.Pid, true
}

// IMDSEndpoint is the metadata endpoint of a running instance.
func (m *Manager) IMDSEndpoint(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.machines[id]
	if !ok {
		return "", false
	}
	return r.imds.Endpoint(), true
}

// Shutdown stops the instance's process group: SIGTERM, then SIGKILL after grace. It blocks
// until the process is gone; stopping an instance that does not run is a no-op.
func (m *Manager) Shutdown(id string, grace time.Duration) {
	r := m.markRequested(id)
	if r == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		m.log.Warn("instance did not stop within the grace period; killing it", "instance", id, "grace", grace)
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// Kill sends SIGKILL to the instance's process group and waits until it is gone.
func (m *Manager) Kill(id string) {
	r := m.markRequested(id)
	if r == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
}

func (m *Manager) markRequested(id string) *running {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.machines[id]
	if !ok {
		return nil
	}
	r.requested = true
	return r
}

// Crash sends SIGKILL to the instance's process group without marking the exit as requested,
// so the owner treats it as a crash. It returns false when the instance has no process.
func (m *Manager) Crash(id string) bool {
	m.mu.Lock()
	r, ok := m.machines[id]
	m.mu.Unlock()
	if !ok {
		return false
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
	return true
}

// ShutdownAll stops every machine in parallel (SIGTERM, SIGKILL after grace) and waits.
func (m *Manager) ShutdownAll(grace time.Duration) {
	m.mu.Lock()
	ids := make([]string, 0, len(m.machines))
	for id := range m.machines {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Shutdown(id, grace)
		}()
	}
	wg.Wait()
	m.wg.Wait()
}
