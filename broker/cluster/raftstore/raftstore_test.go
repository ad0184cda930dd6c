package raftstore

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLogStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s := open(t, path)
	if first, _ := s.FirstIndex(); first != 0 {
		t.Fatalf("empty first index %d", first)
	}
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1 + i/5, Type: raft.LogCommand, Data: []byte{byte(i)}, AppendedAt: time.Unix(0, int64(i)*1000)})
	}
	logs[3].Extensions = []byte("ext")
	logs[4].Data = nil
	if err := s.StoreLogs(logs[:9]); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLog(logs[9]); err != nil {
		t.Fatal(err)
	}
	for _, want := range logs {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("entry %d: got %+v want %+v", want.Index, got, *want)
		}
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 5 || last != 10 {
		t.Fatalf("after deleting 1-4: first %d last %d", first, last)
	}
	var l raft.Log
	if err := s.GetLog(2, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	// Survives a reopen.
	s.Close()
	s = open(t, path)
	if last, _ := s.LastIndex(); last != 10 {
		t.Fatalf("after reopen last %d", last)
	}
}

func TestStableStore(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "raft.db"))
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key must say exactly %q for hashicorp/raft, got %v", "not found", err)
	}
	if _, err := s.GetUint64([]byte("x")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing uint64: %v", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("got %d %v", v, err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("k")); err == nil {
		t.Fatal("a 1-byte value read as uint64")
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	b := encodeLog(&raft.Log{Index: 1, Data: []byte("hello"), Extensions: []byte("x")})
	for n := range len(b) {
		var l raft.Log
		if err := decodeLog(b[:n], &l); err == nil {
			t.Fatalf("decoded a %d-byte prefix of %d", n, len(b))
		}
	}
}

// Raft panics when a save of its term or vote fails, and Raft.Shutdown
// does not wait for a heartbeat its transport is handling: a save that
// races Close must not fail (before, bbolt's "database not open"), and
// one after Close must not return as if the value were saved.
func TestSavesRacingCloseNeverFail(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "raft.db"))
	failed := make(chan error, 4)
	saved := make(chan struct{}, 4)
	for range 4 {
		go func() {
			for term := uint64(1); ; term++ {
				if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
					failed <- err
					return
				}
				select {
				case saved <- struct{}{}:
				default:
				}
			}
		}()
	}
	<-saved
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		t.Fatalf("a save racing Close failed: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The savers are blocked for good now, as Raft's would be.
}
