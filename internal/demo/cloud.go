package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startCloud starts `tributary-localcloud serve` in the background (its own
// session, so it outlives this program) unless it already runs, and waits
// until its endpoint answers.
func (d *demo) startCloud(ctx context.Context) error {
	if pid, ok := d.cloudPID(); ok {
		d.say("local cloud already running (pid %d) on %s", pid, endpoint)
		return d.waitHealthy(ctx, 20*time.Second)
	}
	if err := d.checkPortFree(); err != nil {
		return err
	}
	for _, b := range []string{"terraform-provider-tributary", "tributary-broker", "tributary-localcloud"} {
		if _, err := os.Stat(filepath.Join(d.bin, b)); err != nil {
			return fmt.Errorf("bin/%s is missing: run `make build` first", b)
		}
	}
	if err := os.MkdirAll(d.cloudDir, 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(d.cloudLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(d.bin, "tributary-localcloud"), "serve",
		"--listen", listenAddr,
		"--state-dir", d.cloudDir,
		"--broker-binary", filepath.Join(d.bin, "tributary-broker"),
		"--broker-version", brokerVersion,
		"--stop-grace", "5s",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the local cloud: %w", err)
	}
	if err := os.WriteFile(d.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	// Reap it if it dies while we wait, so the health wait can tell.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	d.say("local cloud starting (pid %d) on %s, state in %s", cmd.Process.Pid, endpoint, rel(d.root, d.cloudDir))
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	healthy := make(chan error, 1)
	go func() { healthy <- d.waitHealthy(waitCtx, 30*time.Second) }()
	select {
	case err := <-exited:
		os.Remove(d.pidFile)
		return fmt.Errorf("the local cloud exited at start (%v); see %s", err, rel(d.root, d.cloudLog))
	case err := <-healthy:
		if err != nil {
			return fmt.Errorf("%w; see %s", err, rel(d.root, d.cloudLog))
		}
	}
	// The process runs in its own session and outlives this program; the
	// goroutine waiting on it ends with us.
	return nil
}

// checkPortFree refuses to start when something else holds the endpoint.
func (d *demo) checkPortFree() error {
	resp, err := http.Get(endpoint + "/_localcloud/health")
	if err != nil {
		return nil
	}
	resp.Body.Close()
	return fmt.Errorf("something already answers on %s but %s has no live pid: stop it (or run `make demo-down`) first", endpoint, rel(d.root, d.pidFile))
}

func (d *demo) waitHealthy(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(endpoint + "/_localcloud/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the local cloud did not answer on %s: %w", endpoint, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cloudPID returns the pid of the demo's local cloud if it is alive.
func (d *demo) cloudPID() (int, bool) {
	b, err := os.ReadFile(d.pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0, false
	}
	return pid, true
}

// stopCloud stops the local cloud it started: SIGTERM (the emulator stops
// its instances), then SIGKILL after a grace period.
func (d *demo) stopCloud(ctx context.Context) error {
	pid, ok := d.cloudPID()
	if !ok {
		os.Remove(d.pidFile)
		d.say("local cloud not running")
		return nil
	}
	d.say("stopping the local cloud (pid %d)", pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling the local cloud: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			os.Remove(d.pidFile)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	d.say("the local cloud did not stop in 30s; killing it")
	_ = syscall.Kill(pid, syscall.SIGKILL)
	os.Remove(d.pidFile)
	return nil
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
