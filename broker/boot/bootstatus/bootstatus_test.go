package bootstatus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecorderWritesEveryStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", FileName)
	clock := time.Date(2026, 11, 25, 8, 30, 0, 0, time.UTC)
	r := &Recorder{Path: path, Now: func() time.Time { clock = clock.Add(time.Second); return clock }}

	steps := []struct {
		do        func() error
		step      string
		state     string
		wantError string
	}{
		{func() error { return r.Start(StepIMDS) }, StepIMDS, StateRunning, ""},
		{func() error { return r.Done("instance i-1") }, StepIMDS, StateDone, ""},
		{func() error { node := int32(3); return r.Identify("i-1", "c-1", &node) }, StepIMDS, StateDone, ""},
		{func() error { return r.Start(StepVolume) }, StepVolume, StateRunning, ""},
		{func() error { return r.Fail(errors.New("volume not attached")) }, StepVolume, StateFailed, "volume not attached"},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("action %d: %v", i, err)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatalf("action %d: %v", i, err)
		}
		if got.Step != s.step || got.State != s.state || got.Error != s.wantError {
			t.Fatalf("after action %d: status %s/%s %q, want %s/%s %q", i, got.Step, got.State, got.Error, s.step, s.state, s.wantError)
		}
	}

	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.InstanceID != "i-1" || got.ClusterID != "c-1" || got.NodeID == nil || *got.NodeID != 3 {
		t.Errorf("identity = %q %q %v", got.InstanceID, got.ClusterID, got.NodeID)
	}
	if len(got.Steps) != 2 {
		t.Fatalf("steps = %+v, want imds and volume", got.Steps)
	}
	if s := got.Steps[0]; s.Step != StepIMDS || s.State != StateDone || s.Detail != "instance i-1" || s.DurationMS != 1000 {
		t.Errorf("imds step = %+v", s)
	}
	if s := got.Steps[1]; s.Step != StepVolume || s.State != StateFailed || s.Error != "volume not attached" {
		t.Errorf("volume step = %+v", s)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("status file mode = %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	// Atomic replacement leaves no temporary files behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("runtime dir holds %d entries, want only the status file", len(entries))
	}
}

func TestRecorderWithoutPathKeepsStatusInMemory(t *testing.T) {
	r := &Recorder{}
	if err := r.Start(StepDocument); err != nil {
		t.Fatal(err)
	}
	if err := r.Fail(errors.New("bad")); err != nil {
		t.Fatal(err)
	}
	if s := r.Snapshot(); s.Step != StepDocument || s.State != StateFailed || s.Error != "bad" {
		t.Errorf("snapshot = %+v", s)
	}
}

func TestFinishWithoutStartIsAnError(t *testing.T) {
	r := &Recorder{}
	if err := r.Done("x"); err == nil {
		t.Error("Done without Start succeeded")
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "absent.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt file: %v", err)
	}
}
