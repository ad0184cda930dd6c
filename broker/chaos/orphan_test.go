package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// orphanHarnessEnv makes this test binary act as a harness that starts
// one node and then waits to be killed (TestNodesDieWithTheirHarness).
const orphanHarnessEnv = "TRIBUTARY_CHAOS_ORPHAN_HARNESS"

func TestMain(m *testing.M) {
	if dir := os.Getenv(orphanHarnessEnv); dir != "" {
		os.Exit(runOrphanHarness(dir))
	}
	os.Exit(m.Run())
}

// runOrphanHarness starts node 1 of a cluster whose "broker" is a shell
// script that sleeps, prints the node's pid and sleeps until killed.
func runOrphanHarness(dir string) int {
	c, err := NewCluster(ClusterConfig{Binary: filepath.Join(dir, "broker.sh"), Dir: filepath.Join(dir, "cluster"), Nodes: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Start(1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pid, _ := c.PID(1)
	fmt.Println(pid)
	time.Sleep(time.Minute)
	return 0
}

// A harness killed from outside (kill -9 of the chaos run or of a test)
// must not leave its brokers running: they held ports and, under flock,
// the bench lock's descriptor.
func TestNodesDieWithTheirHarness(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nexec sleep 60\n"
	if err := os.WriteFile(filepath.Join(dir, "broker.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	harness := exec.Command(os.Args[0], "-test.run=^$")
	harness.Env = append(os.Environ(), orphanHarnessEnv+"="+dir)
	harness.Stderr = os.Stderr
	out, err := harness.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = harness.Process.Kill(); _ = harness.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the node's pid from the harness: %v", err)
	}
	pid, err := strconv.Atoi(line[:len(line)-1])
	if err != nil || pid <= 0 {
		t.Fatalf("the harness printed %q, not a pid", line)
	}
	// The node is ours to clean up if the check below fails.
	defer func() { _ = syscall.Kill(pid, syscall.SIGKILL) }()
	if err := harness.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = harness.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Signal 0 checks existence; the node is the harness's child, so
		// once it is gone (or a zombie reaped by init) this fails.
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); len(state) > 0 && isZombie(string(state)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d still runs 10 s after its harness was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isZombie reads the state field of /proc/<pid>/stat (after the command
// in parentheses).
func isZombie(stat string) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}
