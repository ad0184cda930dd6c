package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of mib MiB on a new directory, so that writes
// there really fail with ENOSPC, and unmounts it when the test ends. It
// needs root (what says what for); a mount that fails is Missing. Register
// it before whatever opens files there: cleanups run last in, first out,
// so the unmount comes after their closes.
func Tmpfs(t testing.TB, mib int, what string) string {
	t.Helper()
	Root(t, "mounting a tmpfs for "+what)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", dir).CombinedOutput(); err != nil {
		Missing(t, "cannot mount a tmpfs for %s: %v: %s", what, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// FillVolume writes a ballast file into dir until its file system
// refuses with ENOSPC, in ever smaller writes down to one byte so that no
// free byte is left; free removes the file and gives the space back. The
// writes are bounded (65,536 of each size), and a volume they do not fill
// fails the test.
func FillVolume(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	filled := false
	for _, n := range []int{len(chunk), 4096, 512, 1} {
		for range 1 << 16 {
			if _, err := f.Write(chunk[:n]); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling %s: %v", dir, err)
				}
				filled = true
				break
			}
		}
	}
	if !filled {
		t.Fatalf("%s never filled", dir)
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("freeing %s: %v", dir, err)
		}
	}
}
