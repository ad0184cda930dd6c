package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/internal/testenv"
)

func openSnapshots(t *testing.T, dir string) *snapshotStore {
	t.Helper()
	s, err := newSnapshotStore(dir, testLogger(t), hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func createSnapshot(s *snapshotStore, index uint64) (raft.SnapshotSink, error) {
	return s.Create(1, index, 1, raft.Configuration{}, 1, nil)
}

// A snapshot that fails on a full volume leaves nothing there: not when
// Create fails, not when its state does not fit (Close), not when it is
// cancelled after a failed write. hashicorp/raft's file store left its
// .tmp directory, and the part of state.bin that fitted, in the first
// and the last case. Each failure marks a snapshot pending; one that is
// written clears it.
func TestFailedSnapshotsLeaveNothing(t *testing.T) {
	dir := testenv.Tmpfs(t, 1, "the full-disk tests of the metadata log")
	s := openSnapshots(t, dir)
	state := bytes.Repeat([]byte("metadata"), 64<<10) // 512 KiB

	// Cancelled after a write the full volume refused.
	sink, err := createSnapshot(s, 10)
	if err != nil {
		t.Fatal(err)
	}
	free := testenv.FillVolume(t, dir)
	if _, err := sink.Write(state); err == nil {
		t.Fatal("512 KiB written on a full volume: the test shows nothing")
	}
	_ = sink.Cancel()
	if left := unfinishedSnapshots(t, dir); len(left) > 0 {
		t.Fatalf("cancelled snapshot left %v", left)
	}
	if !s.pending.Load() {
		t.Fatal("a failed snapshot is not pending")
	}

	// Create or Close fails, whichever the full volume refuses first.
	for i := uint64(11); i <= 13; i++ {
		if sink, err := createSnapshot(s, i); err == nil {
			_, _ = sink.Write(state)
			if err := sink.Close(); err == nil {
				t.Fatalf("snapshot %d written whole on a full volume", i)
			}
		}
		if left := unfinishedSnapshots(t, dir); len(left) > 0 {
			t.Fatalf("failed snapshot %d left %v", i, left)
		}
	}
	if got := s.failures.Load(); got != 4 {
		t.Fatalf("%d failures counted, want 4", got)
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List on the full volume: %v, %v", list, err)
	}

	free()
	sink, err = createSnapshot(s, 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write(state); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if s.pending.Load() {
		t.Fatal("still pending after a snapshot was written")
	}
	if list, err := s.List(); err != nil || len(list) != 1 || list[0].Index != 20 || list[0].Size != int64(len(state)) {
		t.Fatalf("List after the space returned: %+v, %v", list, err)
	}
}

// A .tmp directory a stopped process left (a snapshot half-written at a
// kill -9) is removed when the store opens; finished snapshots stay.
func TestUnfinishedSnapshotsRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	s := openSnapshots(t, dir)
	sink, err := createSnapshot(s, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("whole")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, "snapshots", "1-9-1796500000000.tmp")
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, "state.bin"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openSnapshots(t, dir)
	if left := unfinishedSnapshots(t, dir); len(left) > 0 {
		t.Fatalf("left at start: %v", left)
	}
	if list, err := s.List(); err != nil || len(list) != 1 || list[0].Index != 7 {
		t.Fatalf("List: %+v, %v", list, err)
	}
}
