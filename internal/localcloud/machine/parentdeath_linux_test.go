package machine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// helperDirEnv, when set, makes TestInstanceDiesWithTheEmulator the
// emulator side: it boots one instance whose process writes its pid to
// that directory, then waits to be killed.
const helperDirEnv = "TRIBUTARY_MACHINE_HELPER_DIR"

// TestInstanceDiesWithTheEmulator kills, with SIGKILL, a process that runs
// a machine manager with one instance booted, as go test kills nothing
// but panics when a test binary passes its -timeout, and a crash or the
// OOM killer end an emulator: no deferred cleanup, no ShutdownAll. The
// instance's process must not outlive it (the kernel's parent-death
// signal), or a timed-out acceptance run leaves brokers running.
func TestInstanceDiesWithTheEmulator(t *testing.T) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		m, _ := newManager(t)
		// Not shellSpec: this process is killed, so a t.TempDir of its own
		// would never be removed; the instance works in the parent's.
		spec := Spec{InstanceID: "i-helper", Binary: "/bin/sh",
			Args: []string{"-c", `echo $$ > "$DIR/leader.tmp" && mv "$DIR/leader.tmp" "$DIR/leader"; exec sleep 600`},
			Env:  []string{"PATH=/usr/bin:/bin", "DIR=" + dir},
			Dir:  dir, ConsoleLog: filepath.Join(dir, "console.log"), IMDSEnvVar: "IMDS"}
		if _, err := m.Boot(spec); err != nil {
			t.Fatal(err)
		}
		select {} // until killed
	}
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestInstanceDiesWithTheEmulator$", "-test.timeout=2m")
	helper.Env = append(os.Environ(), helperDirEnv+"="+dir)
	var out bytes.Buffer
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	leader := readPID(t, filepath.Join(dir, "leader"))
	t.Cleanup(func() { _ = syscall.Kill(leader, syscall.SIGKILL) })
	if !alive(leader) {
		t.Fatalf("instance process %d not running before the emulator dies; emulator output:\n%s", leader, out.String())
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(leader) {
		if time.Now().After(deadline) {
			t.Fatalf("instance process %d still runs 10 s after its emulator was killed", leader)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs: it exists and is not a zombie waiting
// for a reaper (a container's first process may never reap it).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}
