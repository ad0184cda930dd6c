package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/tributary/tributary/internal/testenv"
)

// appendEntries stores n entries of 256 bytes from index first, 50 to a
// transaction as Raft batches them.
func appendEntries(s *Store, first uint64, n int) error {
	for i := 0; i < n; i += 50 {
		var logs []*raft.Log
		for j := i; j < min(i+50, n); j++ {
			logs = append(logs, &raft.Log{Index: first + uint64(j), Term: 1, Type: raft.LogCommand, Data: make([]byte, 256)})
		}
		if err := s.StoreLogs(logs); err != nil {
			return fmt.Errorf("entries %d-%d: %w", first+uint64(i), logs[len(logs)-1].Index, err)
		}
	}
	return nil
}

// allocated is how many bytes of the file's blocks are allocated.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// A disk the partitions' logs filled does not stop the metadata log: the
// store writes into the space it reserved (1 MiB here) and goes on
// taking entries (600 of 256 bytes here; bbolt used the whole MiB after
// about 1,300), where a store without a reserve fails at once with
// ENOSPC. Once the space returns, the next
// write reserves again.
func TestReserveKeepsTheLogGoingOnAFullDisk(t *testing.T) {
	const reserve = 1 << 20
	for _, tc := range []struct {
		name    string
		reserve int64
	}{{"no reserve", 0}, {"reserve", reserve}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.Tmpfs(t, 8, "the full-disk tests of the raft store")
			path := filepath.Join(dir, "raft.db")
			s, err := Open(path, Options{Reserve: tc.reserve, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := appendEntries(s, 1, 200); err != nil {
				t.Fatal(err)
			}
			if got, ok := s.Reserve(); tc.reserve == 0 && (got != 0 || ok) || tc.reserve > 0 && (got < reserve/2 || got > reserve || !ok) {
				t.Fatalf("Reserve() = %d, %v with a reserve of %d", got, ok, tc.reserve)
			}
			free := testenv.FillVolume(t, dir)
			err = appendEntries(s, 201, 600)
			if tc.reserve == 0 {
				if err == nil {
					t.Fatal("600 entries stored on a full disk without a reserve: the test shows nothing")
				}
				t.Logf("without a reserve: %v", err)
				free()
				return
			}
			if err != nil {
				t.Fatalf("on a full disk with a %d byte reserve: %v", tc.reserve, err)
			}
			var got raft.Log
			if err := s.GetLog(800, &got); err != nil || got.Index != 800 || len(got.Data) != 256 {
				t.Fatalf("entry 800 read back: %+v, %v", got, err)
			}
			// Full and the reserve partly used: it could not be topped up.
			if s.res.to >= s.dataEnd(t)+reserve/2 {
				t.Fatalf("reserve allocated to %d on a full disk, data ends at %d", s.res.to, s.dataEnd(t))
			}
			if got, ok := s.Reserve(); !ok || got != s.res.to-s.dataEnd(t) {
				t.Fatalf("Reserve() = %d, %v on a full disk; allocated to %d, data ends at %d", got, ok, s.res.to, s.dataEnd(t))
			}
			free()
			if err := appendEntries(s, 801, 50); err != nil {
				t.Fatal(err)
			}
			end := s.dataEnd(t)
			if a := allocated(t, path); s.res.to != end+reserve || a < end+reserve {
				t.Fatalf("after the space returned: reserved to %d, %d bytes allocated; want %d (data end %d + reserve)", s.res.to, a, end+reserve, end)
			}
			if got, ok := s.Reserve(); got != reserve || !ok {
				t.Fatalf("Reserve() = %d, %v after the space returned, want %d", got, ok, reserve)
			}
		})
	}
}

func (s *Store) dataEnd(t *testing.T) int64 {
	t.Helper()
	var end int64
	if err := s.view(func(tx *bolt.Tx) error { end = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return end
}

// A full volume that outlasts the reserve: the store refuses the entries
// past its log's part with ENOSPC (the rest kept for the term and vote,
// TestTermAndVoteOutlastTheLog) and keeps every entry it took (read back after a
// reopen too), says it is on its reserve, and once the space returns
// KeepReserve, with no write, reserves the whole amount again; the next
// entries are stored after the last one taken.
func TestFullVolumeOutlastsTheReserve(t *testing.T) {
	const reserve = 256 << 10
	dir := testenv.Tmpfs(t, 8, "the full-disk tests of the raft store")
	path := filepath.Join(dir, "raft.db")
	var logged bytes.Buffer
	s, err := Open(path, Options{Reserve: reserve, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := appendEntries(s, 1, 100); err != nil {
		t.Fatal(err)
	}
	if s.OnReserve() {
		t.Fatal("on its reserve with room on the volume")
	}
	free := testenv.FillVolume(t, dir)
	last := uint64(100)
	for ; last < 100_000; last += 50 {
		if err := appendEntries(s, last+1, 50); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("past the reserve: %v, want ENOSPC", err)
			}
			break
		}
	}
	if last >= 100_000 {
		t.Fatal("100,000 entries stored on a full volume: the test shows nothing")
	}
	if !s.OnReserve() {
		t.Fatal("the reserve is used up, OnReserve says false")
	}
	// Refused again: said once, not per refused write.
	if err := appendEntries(s, last+1, 50); err == nil {
		t.Fatal("50 entries stored past the reserve")
	}
	if left, _ := s.Reserve(); !s.LogStopped() || left < reserve/termVoteShare {
		t.Fatalf("the log refused with %d bytes of the reserve left, LogStopped %v; want at least %d kept for the term and vote", left, s.LogStopped(), reserve/termVoteShare)
	}
	for _, line := range []string{"living on its reserve", "up to the part kept for the term and vote"} {
		if n := strings.Count(logged.String(), line); n != 1 {
			t.Fatalf("%q logged %d times, want once:\n%s", line, n, logged.String())
		}
	}
	if !s.KeepReserve() {
		t.Fatal("KeepReserve reported the reserve kept on a full volume")
	}
	t.Logf("%d entries stored, 100 before the volume filled", last)
	checkLog := func(s *Store, want uint64) {
		t.Helper()
		if first, err := s.FirstIndex(); err != nil || first != 1 {
			t.Fatalf("FirstIndex = %d, %v", first, err)
		}
		if got, err := s.LastIndex(); err != nil || got != want {
			t.Fatalf("LastIndex = %d, %v; want %d", got, err, want)
		}
		for i := uint64(1); i <= want; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil || l.Index != i || len(l.Data) != 256 {
				t.Fatalf("entry %d: %+v, %v", i, l, err)
			}
		}
	}
	checkLog(s, last)
	// Reopened while still full: nothing lost, nothing half-written, and
	// what is left of the reserve is still counted.
	left, _ := s.Reserve()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{Reserve: reserve, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatalf("reopening on the full volume: %v", err)
	}
	checkLog(s, last)
	if got, _ := s.Reserve(); got != left || !s.OnReserve() {
		t.Fatalf("reopened on the full volume: Reserve() = %d, on it %v; %d left before", got, s.OnReserve(), left)
	}

	free()
	if s.KeepReserve() || s.LogStopped() {
		t.Fatalf("KeepReserve after the space returned: still on the reserve (%v) or the log stopped (%v)", s.OnReserve(), s.LogStopped())
	}
	end := s.dataEnd(t)
	if got, ok := s.Reserve(); !ok || got != reserve || allocated(t, path) < end+reserve {
		t.Fatalf("after the space returned, with no write: Reserve() = %d, %v, %d bytes allocated; want %d past the data end %d", got, ok, allocated(t, path), reserve, end)
	}
	if err := appendEntries(s, last+1, 50); err != nil {
		t.Fatal(err)
	}
	checkLog(s, last+50)
}

// heldRead opens a read transaction on s, as Raft's reads of its log
// and the reserve's top-up open them, and keeps it open until release
// (or 5 s, so that a write waiting for bbolt to remap its file, which
// waits for the readers, is not held for good). While it is open, the
// pages each write frees are kept for it: the next write takes others,
// new ones when bbolt's freelist has none.
func heldRead(t *testing.T, s *Store) (release func()) {
	t.Helper()
	tx, err := s.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	rollback := func() { once.Do(func() { tx.Rollback() }) }
	timer := time.AfterFunc(5*time.Second, rollback)
	return func() { timer.Stop(); rollback() }
}

// Past the part of its reserve that log entries may take, the store
// still saves Raft's term and vote (hashicorp/raft panics when it cannot
// save its current term): the log is refused with ENOSPC while terms and
// votes are saved 300 times, three elections' worth at a time under a
// read held open across them. Without the part kept back, the first
// elections failed with ENOSPC: the log had taken the whole reserve, and
// the saves' new pages had none left.
func TestTermAndVoteOutlastTheLog(t *testing.T) {
	const reserve = 1 << 20
	dir := testenv.Tmpfs(t, 8, "the full-disk tests of the raft store")
	var logged bytes.Buffer
	s, err := Open(filepath.Join(dir, "raft.db"), Options{Reserve: reserve, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := appendEntries(s, 1, 100); err != nil {
		t.Fatal(err)
	}
	free := testenv.FillVolume(t, dir)
	freed := false
	defer func() {
		if !freed {
			free()
		}
	}()
	last := uint64(100)
	// In batches of 50, then one at a time: as far as the log may go.
	for _, batch := range []int{50, 1} {
		for ; last < 100_000; last += uint64(batch) {
			if err := appendEntries(s, last+1, batch); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("past the reserve: %v, want ENOSPC", err)
				}
				break
			}
		}
	}
	if last >= 100_000 {
		t.Fatal("100,000 entries stored on a full volume: the test shows nothing")
	}
	left, _ := s.Reserve()
	if !s.LogStopped() || left < reserve/termVoteShare {
		t.Fatalf("the log refused with %d bytes of the reserve left, LogStopped %v; want at least %d left, and true", left, s.LogStopped(), reserve/termVoteShare)
	}
	t.Logf("%d entries stored, %d bytes of the reserve left", last, left)

	cand := []byte("127.0.0.1:9093")
	for term := uint64(2); term < 300; {
		release := heldRead(t, s)
		for end := term + 3; term < end; term++ {
			if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
				t.Fatalf("saving term %d: %v", term, err)
			}
			if err := s.SetUint64([]byte("LastVoteTerm"), term); err != nil {
				t.Fatalf("saving the vote's term %d: %v", term, err)
			}
			if err := s.Set([]byte("LastVoteCand"), cand); err != nil {
				t.Fatalf("saving the vote of term %d: %v", term, err)
			}
		}
		release()
		if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != term-1 {
			t.Fatalf("term read back: %d, %v; want %d", got, err, term-1)
		}
	}
	after, _ := s.Reserve()
	t.Logf("298 terms and votes saved; %d bytes of the reserve left", after)
	if err := appendEntries(s, last+1, 1); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("an entry past the log's part of the reserve: %v, want ENOSPC", err)
	}
	if n := strings.Count(logged.String(), "up to the part kept for the term and vote"); n != 1 {
		t.Fatalf("the log's stop logged %d times, want once:\n%s", n, logged.String())
	}

	free()
	freed = true
	if s.KeepReserve() {
		t.Fatal("still on the reserve after the space returned")
	}
	if err := appendEntries(s, last+1, 50); err != nil {
		t.Fatalf("after the space returned: %v", err)
	}
	if s.LogStopped() {
		t.Fatal("LogStopped after the log took entries again")
	}
}

// A volume with room for the log but not for the whole reserve (a small
// one, or one that is filling) takes the log's writes with the term and
// vote's part allocated past them, and stops the log only once it is
// full, the term and vote's part still whole.
func TestVolumeSmallerThanTheReserveTakesTheLog(t *testing.T) {
	const reserve = 16 << 20
	dir := testenv.Tmpfs(t, 8, "the full-disk tests of the raft store")
	path := filepath.Join(dir, "raft.db")
	s, err := Open(path, Options{Reserve: reserve, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.OnReserve() {
		t.Fatal("a 16 MiB reserve kept on an 8 MiB volume")
	}
	if err := appendEntries(s, 1, 500); err != nil {
		t.Fatalf("on a volume with room, less than the reserve: %v", err)
	}
	if s.LogStopped() {
		t.Fatal("the log stopped on a volume with room")
	}
	if a, end := allocated(t, path), s.dataEnd(t); a < end+reserve/termVoteShare {
		t.Fatalf("%d bytes allocated, data ends at %d: the term and vote's part is not", a, end)
	}
	free := testenv.FillVolume(t, dir)
	defer free()
	last := uint64(500)
	for ; last < 100_000; last += 50 {
		if err := appendEntries(s, last+1, 50); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("on the full volume: %v, want ENOSPC", err)
			}
			break
		}
	}
	if left, _ := s.Reserve(); !s.LogStopped() || left < reserve/termVoteShare {
		t.Fatalf("the log refused with %d bytes of the reserve left, LogStopped %v; want at least %d kept", left, s.LogStopped(), reserve/termVoteShare)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatalf("saving a term on the full volume: %v", err)
	}
}
