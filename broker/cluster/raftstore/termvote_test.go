package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tributary/tributary/internal/testenv"
)

// On a full volume the store saves Raft's term and vote at every
// election with reads of the log open across the saves, with no reserve
// at all (a file system without fallocate, or none configured): a save
// overwrites the term and vote file's own blocks. When the saves were
// bbolt writes, a read open across two of them kept the pages the first
// freed from the second, which then needed a page the full volume did
// not have: ENOSPC (hashicorp/raft panics on a failed term save), or a
// wait for the read to end while bbolt grew its file.
func TestTermAndVoteSavedOnAFullVolumeUnderReads(t *testing.T) {
	dir := testenv.Tmpfs(t, 8, "the full-disk tests of the raft store")
	path := filepath.Join(dir, "raft.db")
	s, err := Open(path, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := appendEntries(s, 1, 100); err != nil {
		t.Fatal(err)
	}
	free := testenv.FillVolume(t, dir)
	defer free()

	cand := []byte("127.0.0.1:9093")
	save := func(term uint64) error {
		done := make(chan error, 1)
		go func() {
			done <- errors.Join(
				s.SetUint64([]byte("CurrentTerm"), term),
				s.SetUint64([]byte("LastVoteTerm"), term),
				s.Set([]byte("LastVoteCand"), cand))
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(3 * time.Second):
			return errors.New("the saves took over 3 s")
		}
	}
	const elections = 300
	for term := uint64(2); term < elections+2; {
		release := heldRead(t, s)
		for end := term + 3; term < end; term++ {
			if err := save(term); err != nil {
				release()
				t.Fatalf("saving the term and vote of election %d: %v", term, err)
			}
		}
		release()
	}
	s.Close()
	// What was saved last is what a restart reads.
	s, err = Open(path, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != elections+1 {
		t.Fatalf("term after a reopen: %d, %v; want %d", got, err, elections+1)
	}
	if got, err := s.Get([]byte("LastVoteCand")); err != nil || string(got) != string(cand) {
		t.Fatalf("vote after a reopen: %q, %v", got, err)
	}
}

// A save torn by a crash (the slot being written damaged) leaves the
// state saved before it; a file whose slots are both damaged is refused
// at start rather than read as a voter that never voted.
func TestTermAndVoteSurviveATornSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	s := open(t, path)
	for term := uint64(1); term <= 5; term++ {
		if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	// Five saves after the creation's: sequence 6, in slot 0. Tear it
	// at every offset a crash could leave half-written.
	tvPath := termVotePath(path)
	whole, err := os.ReadFile(tvPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 2*termVoteSlot {
		t.Fatalf("term and vote file of %d bytes, want %d", len(whole), 2*termVoteSlot)
	}
	newest := 0
	if seq, _, _ := decodeTermVote(whole[termVoteSlot:]); seq == 6 {
		newest = 1
	}
	// Bytes past the slot's checksum are padding, never read.
	used := termVoteHeader + int(binary.BigEndian.Uint32(whole[newest*termVoteSlot+12:])) + 4
	for _, cut := range []int{0, 3, 13, 20, used / 2, used - 1} {
		torn := append([]byte(nil), whole...)
		for i := newest*termVoteSlot + cut; i < (newest+1)*termVoteSlot; i++ {
			torn[i] ^= 0xa5
		}
		if err := os.WriteFile(tvPath, torn, 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, path)
		got, err := s.GetUint64([]byte("CurrentTerm"))
		s.Close()
		if err != nil || got != 4 {
			t.Fatalf("torn at byte %d of the newest slot: term %d, %v; want 4, the save before", cut, got, err)
		}
	}

	damaged := append([]byte(nil), whole...)
	damaged[20] ^= 1
	damaged[termVoteSlot+20] ^= 1
	if err := os.WriteFile(tvPath, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); err == nil {
		s.Close()
		t.Fatal("opened a store whose term and vote file has no valid slot")
	} else if !strings.Contains(err.Error(), "no valid copy") {
		t.Fatalf("both slots damaged: %v", err)
	}
}

// A store written before the term and vote had a file of their own kept
// them in bbolt: the first open with the file moves them there, so an
// upgraded voter neither forgets its vote nor goes back a term.
func TestTermAndVoteMoveOutOfBbolt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	s := open(t, path)
	s.Close()
	if err := os.Remove(termVotePath(path)); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(stableBucket)
		if err := b.Put([]byte("CurrentTerm"), key(17)); err != nil {
			return err
		}
		if err := b.Put([]byte("LastVoteTerm"), key(16)); err != nil {
			return err
		}
		return b.Put([]byte("LastVoteCand"), []byte("2"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	for round := range 2 { // moved, then read from the file
		s := open(t, path)
		term, err1 := s.GetUint64([]byte("CurrentTerm"))
		voted, err2 := s.GetUint64([]byte("LastVoteTerm"))
		cand, err3 := s.Get([]byte("LastVoteCand"))
		s.Close()
		if got := fmt.Sprintf("%d %d %s %v", term, voted, cand, errors.Join(err1, err2, err3)); got != "17 16 2 <nil>" {
			t.Fatalf("open %d: term, vote term, candidate: %s; want 17 16 2", round+1, got)
		}
	}
}
