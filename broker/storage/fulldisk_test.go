package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tributary/tributary/internal/testenv"
)

func TestFullDiskReturnsStorageErrorAndRecovers(t *testing.T) {
	dir := testenv.Tmpfs(t, 2, "the full-disk test")
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
	if !NoSpace(storageErr) {
		t.Fatalf("the full disk's error %v is not classified as lack of space", storageErr)
	}
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

// NoSpace tells a write refused for lack of space (whose log is whole)
// from other storage failures, through the wrapping storage adds.
func TestNoSpace(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("%w: %w", ErrStorage, &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{fmt.Errorf("%w: rolling: %w", ErrStorage, &os.PathError{Op: "open", Path: "x", Err: syscall.EDQUOT}), true},
		{fmt.Errorf("%w: %w", ErrStorage, &os.PathError{Op: "write", Path: "x", Err: syscall.EIO}), false},
		{ErrStorage, false},
		{nil, false},
	} {
		if got := NoSpace(tc.err); got != tc.want {
			t.Errorf("NoSpace(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// ProbeSpace fails with a NoSpace error while the file system is full and
// passes, leaving nothing behind, once space is freed.
func TestProbeSpace(t *testing.T) {
	dir := testenv.Tmpfs(t, 2, "the full-disk test")
	st, err := Open(filepath.Join(dir, "data"), Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.ProbeSpace(); err != nil {
		t.Fatalf("probe with the disk empty: %v", err)
	}
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 3<<20), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", err)
	}
	if err := st.ProbeSpace(); !NoSpace(err) || !errors.Is(err, ErrStorage) {
		t.Fatalf("probe with the disk full: %v, want a storage error for lack of space", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := st.ProbeSpace(); err != nil {
		t.Fatalf("probe once space is freed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), probeName)); !os.IsNotExist(err) {
		t.Fatalf("the probe left its file: %v", err)
	}
}
