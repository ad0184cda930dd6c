package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tributary/tributary/internal/testenv"
)

// mountSmallTmpfs mounts a 2 MiB tmpfs, so writes really fail with ENOSPC.
func mountSmallTmpfs(t *testing.T) string {
	t.Helper()
	testenv.Root(t, "mounting a small tmpfs for the full-disk test")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs for the full-disk test: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestFullDiskReturnsStorageErrorAndRecovers(t *testing.T) {
	dir := mountSmallTmpfs(t)
	data := filepath.Join(dir, "data")
	st, err := Open(data, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })                                   // before the umount (cleanups run last-in first-out)
	p := mustCreate(t, st, "full", 0, TopicConfig{SegmentBytes: 64 << 10}) // rolls happen near the full disk too
	// Fill the disk with a file we can free later, leaving ~100 KiB.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 1900<<10), 0o644); err != nil && !errors.Is(err, errNoSpace()) {
		t.Fatal(err)
	}
	var acked int64
	var storageErr error
	for i := 0; i < 1000 && storageErr == nil; i++ {
		res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 4, valueSize: 1000}), AppendOptions{})
		switch {
		case err == nil:
			acked = res.LastOffset + 1
		case errors.Is(err, ErrStorage):
			storageErr = err
		default:
			t.Fatalf("append on a filling disk: %v (want success or ErrStorage)", err)
		}
	}
	if storageErr == nil {
		t.Fatal("the disk never filled up")
	}
	t.Logf("after %d acknowledged records: %v", acked, storageErr)
	if p.LogEndOffset() != acked {
		t.Fatalf("after ENOSPC the log end is %d, want the last acknowledged end %d", p.LogEndOffset(), acked)
	}
	// Every acknowledged batch reads back intact.
	if got := int64(len(readAll(t, p, 0, acked))) * 4; got != acked {
		t.Fatalf("read %d records after ENOSPC, want %d", got, acked)
	}
	// Space returns: appends work again, at the right offset.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(context.Background(), makeBatch(t, batchSpec{records: 4, valueSize: 1000}), AppendOptions{})
	if err != nil || res.BaseOffset != acked {
		t.Fatalf("append after freeing space: %+v, %v; want offset %d", res, err, acked)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("Close after a full disk: %v", err)
	}
	st2 := openStore(t, data, Options{})
	p2, _ := st2.Partition("full", 0)
	if p2.LogEndOffset() != acked+4 {
		t.Fatalf("after restart the log end is %d, want %d", p2.LogEndOffset(), acked+4)
	}
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
}

func errNoSpace() error { return syscall.ENOSPC }
