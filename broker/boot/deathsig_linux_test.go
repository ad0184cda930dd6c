package boot

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage"
)

// launcherDirEnv, when set, makes TestBrokerDiesWithTheAgentsLauncher the
// launcher: it starts `tributary-broker boot` as the local cloud's machine
// manager does (the parent-death signal SIGKILL), writes the process's pid
// to that directory and waits to be killed. The agent's environment is
// this process's, without the launcher's own variables.
const (
	launcherDirEnv    = "TRIBUTARY_BOOT_LAUNCHER_DIR"
	launcherBinaryEnv = "TRIBUTARY_BOOT_LAUNCHER_BINARY"
)

// TestBrokerDiesWithTheAgentsLauncher kills, with SIGKILL, the process
// that started `tributary-broker boot` with a parent-death signal (what a
// killed acceptance test does to its local cloud), once the agent has
// exec'd the broker. The broker must be gone within 10 s: the agent's exec
// runs on a thread of its own, which Linux gives no parent-death signal,
// so without setting it again there the broker outlived its launcher and
// kept its addresses. While it runs, the broker holds its data directory:
// storage refuses a second broker there, and takes it once it is gone.
func TestBrokerDiesWithTheAgentsLauncher(t *testing.T) {
	if dir := os.Getenv(launcherDirEnv); dir != "" {
		runLauncher(t, dir)
		return
	}
	p := newBootProcess(t)
	dir := t.TempDir()
	launcher := exec.Command(os.Args[0], "-test.run=^TestBrokerDiesWithTheAgentsLauncher$", "-test.timeout=2m")
	launcher.Env = append(append([]string(nil), p.env...), launcherDirEnv+"="+dir, launcherBinaryEnv+"="+p.binary)
	var out bytes.Buffer
	launcher.Stdout, launcher.Stderr = &out, &out
	// The launcher is this test's child, with a parent-death signal of its
	// own, so that a failure here leaves nothing running.
	launcher.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	launcherEnded := make(chan struct{})
	go func() { _ = launcher.Wait(); close(launcherEnded) }()
	t.Cleanup(func() { _ = launcher.Process.Kill(); <-launcherEnded })
	console := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		return "launcher:\n" + out.String() + "\nbroker console:\n" + string(b)
	}
	pid := waitPID(t, filepath.Join(dir, "pid"), launcherEnded, console)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	// Serving Kafka: the agent has exec'd the broker in the same process.
	waitServing(t, p.plain, launcherEnded, console)
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil || exe != p.binary {
		t.Fatalf("process %d runs %q (%v), want the broker %s", pid, exe, err, p.binary)
	}
	dataDir := filepath.Join(p.e.volumeDir, testVolumeID, DataDirName)
	if st, err := storage.Open(dataDir, storage.Options{}); err == nil {
		st.Close()
		t.Fatalf("a second store opened %s while the broker runs; want it refused", dataDir)
	} else if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("a second store on %s: %v; want it refused as in use", dataDir, err)
	}

	if err := launcher.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-launcherEnded
	deadline := time.Now().Add(10 * time.Second)
	for processRuns(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the broker (pid %d) still runs 10 s after the process that started its boot agent was killed; %s", pid, console())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its lock goes with it: a broker started again takes the directory.
	// The process shows as a zombie once its first thread has exited; the
	// others may still hold its files for a moment.
	for {
		st, err := storage.Open(dataDir, storage.Options{})
		if err == nil {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the data directory 10 s after the broker was killed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runLauncher is the launcher's side of TestBrokerDiesWithTheAgentsLauncher.
func runLauncher(t *testing.T, dir string) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, launcherDirEnv+"=") && !strings.HasPrefix(kv, launcherBinaryEnv+"=") {
			env = append(env, kv)
		}
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Getenv(launcherBinaryEnv), "boot")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "pid.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "pid")); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // until killed, or the agent fails (then the test sees it)
	t.Fatalf("the boot agent ended; console in %s", dir)
}

// waitPID reads the pid the launcher writes, for 30 s at most.
func waitPID(t *testing.T, path string, ended <-chan struct{}, console func() string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatalf("pid file %s: %v", path, err)
			}
			return pid
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		select {
		case <-ended:
			t.Fatalf("the launcher ended before starting the agent; %s", console())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid from the launcher after 30 s; %s", console())
		}
	}
}

// processRuns reports whether pid runs: it exists and is not a zombie
// waiting for a reaper (a container's first process may never reap it).
func processRuns(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}
