package machine

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/localcloud/imds"
)

type noMetadata struct{}

func (noMetadata) Metadata(string) (imds.Metadata, bool) { return imds.Metadata{}, false }
func (noMetadata) RoleCredentials(string) (imds.RoleCredentials, error) {
	return imds.RoleCredentials{}, nil
}

type exit struct {
	code      int
	requested bool
}

func newManager(t *testing.T) (*Manager, chan exit) {
	t.Helper()
	exits := make(chan exit, 4)
	m := NewManager(noMetadata{}, func(id string, code int, requested bool) { exits <- exit{code, requested} }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { m.ShutdownAll(time.Second) })
	return m, exits
}

// shellSpec runs script with /bin/sh, writing the pid of a background grandchild to a file.
func shellSpec(t *testing.T, id, script string) Spec {
	t.Helper()
	dir := t.TempDir()
	return Spec{InstanceID: id, Binary: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin", "DIR=" + dir},
		Dir: dir, ConsoleLog: filepath.Join(dir, "console.log"), IMDSEnvVar: "IMDS"}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d survived", pid)
}

func TestShutdownKillsTheWholeGroupAfterGrace(t *testing.T) {
	m, exits := newManager(t)
	// The leader ignores SIGTERM, so only SIGKILL after the grace period ends it; its
	// background child must die with it.
	spec := shellSpec(t, "i-1", `trap "" TERM; sleep 600 & echo $! > "$DIR/child"; echo "imds=$IMDS"; while true; do sleep 1; done`)
	if _, err := m.Boot(spec); err != nil {
		t.Fatal(err)
	}
	child := readPID(t, filepath.Join(spec.Dir, "child"))
	if _, err := m.Boot(spec); err == nil {
		t.Fatal("booted a running instance twice")
	}
	start := time.Now()
	m.Shutdown("i-1", 300*time.Millisecond)
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("shutdown did not wait for the grace period")
	}
	waitGone(t, child)
	if e := <-exits; !e.requested {
		t.Fatalf("exit reported as not requested: %+v", e)
	}
	if _, ok := m.Running("i-1"); ok {
		t.Fatal("instance still running")
	}
	console, _ := os.ReadFile(spec.ConsoleLog)
	if !strings.Contains(string(console), "imds=http://127.0.0.1:") {
		t.Fatalf("console log: %q", console)
	}
}

func TestProcessExitIsReported(t *testing.T) {
	m, exits := newManager(t)
	if _, err := m.Boot(shellSpec(t, "i-2", "exit 3")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-exits:
		if e.code != 3 || e.requested {
			t.Fatalf("exit %+v, want code 3 not requested", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit reported")
	}
}
