package chaos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/internal/mountpath"
	"github.com/tributary/tributary/internal/testenv"
)

func needDisks(t *testing.T) {
	t.Helper()
	if err := DiskSupport(); err != nil {
		testenv.Missing(t, "disks of their own: %v", err)
	}
}

// mounted reports whether dir is a mount point of this process's mount
// namespace.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && mountpath.Unescape(f[4]) == dir {
			return true
		}
	}
	return false
}

// TestNodeDisksFillAndFree: each node's data directory is on its own
// tmpfs; FillDisk fills one node's until a write there fails with ENOSPC,
// keeps it full when space is freed (a file removed), and leaves the
// other's alone; FreeDisks gives the space back; Close unmounts them.
func TestNodeDisksFillAndFree(t *testing.T) {
	needDisks(t)
	dir, bin := fakeBroker(t)
	c, err := NewCluster(ClusterConfig{Binary: bin, Dir: dir, Nodes: 2, DiskSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			c.Close()
		}
	})
	write := func(id int32) error {
		n, _ := c.Node(id)
		return os.WriteFile(filepath.Join(n.DataDir, "probe"), make([]byte, 64<<10), 0o600)
	}
	for _, n := range c.Nodes() {
		if !mounted(t, c.diskPath(n.ID)) || !strings.HasPrefix(n.DataDir, c.diskPath(n.ID)+"/") {
			t.Fatalf("node %d's data directory %s is not on its own disk %s", n.ID, n.DataDir, c.diskPath(n.ID))
		}
	}
	n1, _ := c.Node(1)
	ballast := filepath.Join(n1.DataDir, "ballast") // removed once the disk is full
	if err := os.WriteFile(ballast, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	wrote, err := c.FillDisk(1)
	if err != nil {
		t.Fatal(err)
	}
	if free, err := c.DiskFree(1); err != nil || free != 0 || wrote < 3<<20 {
		t.Fatalf("node 1's disk filled with %d bytes, %d left (%v), want about 4 MiB and 0", wrote, free, err)
	}
	if err := write(1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing to node 1's full disk: %v, want ENOSPC", err)
	}
	if err := write(2); err != nil {
		t.Fatalf("writing to node 2's disk, not filled: %v", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for free, err := c.DiskFree(1); free != 0; free, err = c.DiskFree(1) {
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("node 1's disk has %d bytes free 2 s after a file was removed (%v): not kept full", free, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := write(1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing to node 1's disk, kept full: %v, want ENOSPC", err)
	}
	if err := c.FreeDisks(); err != nil {
		t.Fatal(err)
	}
	if err := write(1); err != nil {
		t.Fatalf("writing to node 1's disk once freed: %v", err)
	}
	c.Close()
	closed = true
	for _, n := range c.Nodes() {
		if mounted(t, c.diskPath(n.ID)) {
			t.Fatalf("node %d's disk is still mounted after Close", n.ID)
		}
	}
}

// TestRemoveStaleDisks: a disk left mounted by a run whose process is
// gone is unmounted; a live run's is not.
func TestRemoveStaleDisks(t *testing.T) {
	needDisks(t)
	dead := deadPID(t)
	stale, live := filepath.Join(t.TempDir(), "stale"), filepath.Join(t.TempDir(), "live")
	for _, m := range []struct {
		dir string
		pid int
	}{{stale, dead}, {live, os.Getpid()}} {
		if err := os.MkdirAll(m.dir, 0o750); err != nil {
			t.Fatal(err)
		}
		src := fmt.Sprintf("%s%d-n1", netnsPrefix, m.pid)
		if err := unix.Mount(src, m.dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unmountDisk(m.dir) })
	}
	RemoveStaleDisks()
	if mounted(t, stale) {
		t.Fatal("the dead run's disk is still mounted")
	}
	if !mounted(t, live) {
		t.Fatal("the live run's disk was unmounted")
	}
}
