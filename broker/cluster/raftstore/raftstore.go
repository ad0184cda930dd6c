// Package raftstore keeps the Raft log of a controller in a bbolt file and
// its stable state (current term, vote) in a small file of fixed size
// beside it (termVoteFile): hashicorp/raft's LogStore and StableStore.
// Every write is fsynced before it returns (a bbolt transaction on
// commit), so what Raft was told is stored survives a crash.
//
// Entry layout (big-endian): index u64, term u64, type u8, appended-at
// Unix nanoseconds i64, data length u32, data, extensions length u32,
// extensions. Keys of the log bucket are the 8-byte big-endian index, so
// bbolt's order is log order.
//
// The store keeps space of its own on the disk (Options.Reserve): the
// metadata log shares the data volume with the partitions' logs, and
// without it a full volume froze the broker's metadata (see reserve).
package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

var (
	logsBucket   = []byte("logs")
	stableBucket = []byte("stable")
)

// errKeyNotFound carries the exact text hashicorp/raft compares against
// (it checks err.Error() == "not found" for a missing term or vote).
var errKeyNotFound = errors.New("not found")

// Store is a bbolt-backed raft.LogStore and a raft.StableStore kept in
// a file of its own.
type Store struct {
	db *bolt.DB
	tv *termVoteFile
	// mu is held shared by every operation and exclusively by Close,
	// which so waits for the operations under way. Raft.Shutdown does not
	// wait for a heartbeat its transport is handling (hashicorp/raft's
	// processHeartbeat runs on the connection's goroutine); one that
	// saved a newer term after the controller closed the store got
	// bbolt's "database not open", and Raft panics on a failed save
	// ("failed to save current term", seen in a -race run of
	// broker/cluster). An operation that comes after Close never returns:
	// Raft has stopped, and an error would crash the process, while
	// answering as saved what was not is what Raft must never do.
	mu     sync.RWMutex
	closed bool
	// logMu holds a log write from the reserve's check to its commit, so
	// that two log writes cannot both pass the check on the same space.
	logMu sync.Mutex

	pageSize int64
	res      reserve
}

// Options configure a Store.
type Options struct {
	// Reserve is how many bytes the store keeps allocated on its disk
	// past the data it holds (0: none); see reserve.
	Reserve int64
	// Logger, when set, is told when the reserve cannot be kept.
	Logger *slog.Logger
}

// reserve keeps the store's file allocated Options.Reserve bytes past the
// data in it, with fallocate(FALLOC_FL_KEEP_SIZE): blocks of the file
// itself, past its end, that no other file can take.
//
// Why. The Raft store is on the data volume with the partitions' logs
// (one EBS volume per broker). When the partitions fill it, bbolt's
// writes into new pages of its file (its file grows by truncate, which
// allocates nothing on tmpfs, ext4 or xfs) fail with ENOSPC: Raft cannot
// store the entries it is sent, the broker applies no metadata and
// answers Metadata with the leaders it knew before its disk filled, so
// its clients are sent back to it (docs/benchmarks.md, "A full disk
// hands its broker's partitions over"). With the reserve, those writes
// land on blocks the file already owns, so the metadata log goes on
// while the partitions' appends are refused, until the reserve is used
// up (Options.Reserve of new log entries not compacted by a snapshot,
// which also cannot be written while the disk is full). It is topped up
// after each write that brought the data past half of it, and again once
// space returns.
//
// Why not a separate reserve file released on ENOSPC: the space it
// gives back is free to everything on the volume, and the follower
// fetches, the producers' retries and the disk probe (storage.Store.ProbeSpace,
// which would then report the disk writable and bring the broker back
// into the ISRs) would take it before Raft does.
//
// The last eighth of it (termVoteShare) is kept back from log entries
// (admit). It was kept for the StableStore's writes, when they were bbolt
// writes: hashicorp/raft panics when it cannot save its current term
// ("failed to save current term", at every new term it hears of: an
// election, a heartbeat of a new leader) and refuses its vote when it
// cannot save that. Those writes now overwrite a file of their own
// (termVoteFile), which a full volume does not stop; the kept part still
// leaves DeleteRange (which a snapshot's compaction runs) and an admit
// estimate that fell short room to write.
type reserve struct {
	size int64 // set at Open, then read only
	// termVote is the part of the reserve log entries may not take; set
	// at Open, then read only.
	termVote int64
	log      *slog.Logger

	mu     sync.Mutex
	f      *os.File // the store's file, for fallocate; nil: no reserve
	to     int64    // allocated up to here
	end    int64    // the data's end at the last keep
	failed bool     // the last top-up failed (logged once)
	// exhausted: a write failed with ENOSPC since the last one that
	// passed (logged once).
	exhausted bool
	// logStopped: a log write was refused to keep termVote; the log
	// takes nothing more until a top-up passes (logged once).
	logStopped bool
}

// termVoteShare: termVote is Options.Reserve / termVoteShare (2 MiB of
// the 16 MiB default). Hundreds of terms and votes even if bbolt reused
// no page, and room for an admit estimate that fell short by far.
const termVoteShare = 8

// admit lets a log write that may take need bytes past the data's end
// go on while it leaves termVote of the reserve to the term and vote. A
// write that would cut into that part first tries to top the reserve up
// to need + size past the data (a volume with room, a large write), then
// to need + termVote past it (a volume with less room than the whole
// reserve: a small one, or one filling); if both fail (the volume is
// full) it is refused with ENOSPC, as past the reserve: Raft answers the
// leader that it could not store the entries, or, as the leader, steps
// down. Once one is refused the log stays stopped until the volume gives
// space again, smaller writes included: the broker is behind from then
// on anyway, and a log that took a small entry here and there out of
// what it already has would say it is going and stopped by turns.
func (r *reserve) admit(need int64) error {
	if r.size <= 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	if !r.logStopped && r.to-r.end-need >= r.termVote {
		return nil
	}
	end := r.end + need + r.size
	err := fallocate(r.f, end)
	if err == nil {
		r.to = end
		r.reservedAgain()
		return nil
	}
	if least := r.end + need + r.termVote; least > r.to && fallocate(r.f, least) == nil {
		r.to = least
		if r.logStopped {
			r.logStopped = false
			r.log.Info("raft store: the volume has room again for the metadata log and the term and vote's part of the reserve", "file", r.f.Name(), "allocated_to", r.to)
		}
		return nil
	}
	if !r.failed {
		r.failed = true
		r.log.Warn("raft store: the data volume is full; the metadata log is living on its reserve until space frees", "file", r.f.Name(), "reserve_left", max(r.to-r.end, 0), "data_end", r.end, "allocated_to", r.to, "err", err)
	}
	if !r.logStopped {
		r.logStopped = true
		r.log.Error("raft store: the data volume is full and the metadata log has used its reserve up to the part kept for the term and vote: this broker stores and applies no metadata until space frees", "file", r.f.Name(), "reserve_left", max(r.to-r.end, 0), "kept_for_term_and_vote", r.termVote, "err", err)
	}
	return fmt.Errorf("raft store %s: the volume is full and the %d bytes left of the reserve are kept for the term and vote: %w", r.f.Name(), max(r.to-r.end, 0), unix.ENOSPC)
}

// reservedAgain notes a top-up that passed (r.mu held): the volume has
// room again, and a stopped log goes on.
func (r *reserve) reservedAgain() {
	r.logStopped = false
	if r.failed {
		r.failed = false
		r.log.Info("raft store: space reserved again; the metadata log is off its reserve", "file", r.f.Name(), "allocated_to", r.to)
	}
}

// keep tops the reservation up to size bytes past dataEnd when less than
// half of it is left. A failure leaves what was allocated: the store
// goes on in what is left of it.
func (r *reserve) keep(dataEnd int64) {
	if r.size <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return
	}
	r.end = dataEnd
	if dataEnd+r.size/2 <= r.to && !r.failed {
		return
	}
	end := dataEnd + r.size
	err := fallocate(r.f, end)
	switch {
	case err == nil:
		r.to = end
		r.reservedAgain()
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS):
		r.log.Warn("raft store: the file system cannot reserve space (fallocate); a full disk will stop this broker's metadata", "file", r.f.Name(), "err", err)
		r.f.Close()
		r.f = nil
	case !r.failed:
		r.failed = true
		r.log.Warn("raft store: the data volume is full; the metadata log is living on its reserve until space frees", "file", r.f.Name(), "reserve_left", max(r.to-dataEnd, 0), "data_end", dataEnd, "allocated_to", r.to, "err", err)
	}
}

// OnReserve reports whether the store is living on its reserve: the
// last top-up failed (the volume is full), so every new page of the log
// comes out of what is left of it (Reserve) until a top-up passes.
func (s *Store) OnReserve() bool {
	r := &s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// LogStopped reports whether the store refuses log entries to keep the
// rest of its reserve for the term and vote: the volume is full and the
// log has used the reserve up to that part, so the broker stores and
// applies no metadata until space frees. Cleared by the next top-up that
// passes (at a write, or KeepReserve's).
func (s *Store) LogStopped() bool {
	r := &s.res
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logStopped
}

// KeepReserve tries to top the reserve up now, without a write, and
// reports whether the store is still on its reserve. A store on its
// reserve tops up at each write; on a metadata log with no writes (a
// quiet cluster, or a broker whose log is stuck because the reserve is
// used up) only this call notices that the space came back.
func (s *Store) KeepReserve() (onReserve bool) {
	s.enter()
	defer s.leave()
	s.keepReserve()
	return s.OnReserve()
}

// fallocate allocates f's blocks up to end without changing its size
// (so bbolt, which sizes its file itself, sees nothing).
func fallocate(f *os.File, end int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, 0, end)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: ferr}
	}
	return nil
}

// Reserve is how many bytes the store has allocated past its data, as of
// its last write: what the metadata log can still take on a full disk.
// ok is false when the store keeps no reserve (Options.Reserve 0, or a
// file system without fallocate): then nothing is set aside. The figure
// is below Options.Reserve by what was written since the last top-up
// (at most half of it) or, while top-ups fail (a full disk), by all that
// was written since. Near Options.Reserve / termVoteShare the log stops
// (LogStopped); what the term and vote take comes out of the rest, and at
// 0 their next write into a new page fails.
func (s *Store) Reserve() (bytes int64, ok bool) {
	r := &s.res
	if r.size <= 0 {
		return 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, false
	}
	return max(r.to-r.end, 0), true
}

func (r *reserve) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// keepReserve tops the reserve up after a write.
func (s *Store) keepReserve() {
	if s.res.size <= 0 {
		return
	}
	var end int64
	if err := s.db.View(func(tx *bolt.Tx) error { end = tx.Size(); return nil }); err == nil {
		s.res.keep(end)
	}
}

// enter holds the store for one operation, or blocks for good once it
// is closed (see mu). The caller runs leave when the operation ends.
func (s *Store) enter() {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		select {}
	}
}

func (s *Store) leave() { s.mu.RUnlock() }

func (s *Store) view(fn func(*bolt.Tx) error) error {
	s.enter()
	defer s.leave()
	return s.db.View(fn)
}

// updateLog runs a write of the log, which may take need bytes of new
// pages: refused while it would cut into the part of the reserve kept
// back from the log (reserve.admit).
func (s *Store) updateLog(need int64, fn func(*bolt.Tx) error) error {
	s.enter()
	defer s.leave()
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if err := s.res.admit(need); err != nil {
		return err
	}
	return s.commit(fn)
}

func (s *Store) commit(fn func(*bolt.Tx) error) error {
	err := s.db.Update(fn)
	s.keepReserve()
	switch {
	case errors.Is(err, unix.ENOSPC):
		s.res.usedUp(err)
	case err == nil:
		s.res.wrote()
	}
	return err
}

// usedUp logs, once until a write passes again, that a write failed
// for want of space: past its reserve, the store takes no entry, so the
// broker applies no metadata (and, as the active controller, commits
// none) until space frees.
func (r *reserve) usedUp(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exhausted {
		return
	}
	r.exhausted = true
	if r.size <= 0 {
		r.log.Error("raft store: the data volume is full and the store keeps no reserve: this broker stores and applies no metadata until space frees", "err", err)
		return
	}
	r.log.Error("raft store: the data volume is full and the metadata log's reserve is used up: this broker stores and applies no metadata until space frees", "reserve", r.size, "err", err)
}

// wrote notes a write that passed: the next ENOSPC is logged again.
func (r *reserve) wrote() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exhausted = false
}

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// Open opens or creates the store file at path and reserves its space.
func Open(path string, opts Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening raft store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{logsBucket, stableBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising raft store %s: %w", path, err)
	}
	// The term and vote bbolt held before they had a file of their own
	// go into the file when it is created, so that an upgraded voter
	// keeps what it saved (the bucket is not read or written after).
	tv, err := openTermVote(termVotePath(path), func() (map[string][]byte, error) {
		state := map[string][]byte{}
		err := db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(stableBucket).ForEach(func(k, v []byte) error {
				state[string(k)] = bytes.Clone(v)
				return nil
			})
		})
		return state, err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, tv: tv, pageSize: int64(db.Info().PageSize), res: reserve{size: opts.Reserve, termVote: opts.Reserve / termVoteShare, log: opts.Logger}}
	if s.res.log == nil {
		s.res.log = slog.Default()
	}
	if s.res.size > 0 {
		// bbolt keeps its descriptor to itself; fallocate works on any
		// descriptor of the file.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			db.Close()
			tv.close()
			return nil, fmt.Errorf("opening raft store %s to reserve its space: %w", path, err)
		}
		s.res.f = f
		// What an earlier run reserved is still the file's: fallocate
		// filled every block from 0, so the blocks allocated are the
		// extent. Without it a store reopened on a full volume counted
		// no reserve, and would refuse its log at once.
		if fi, err := f.Stat(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				s.res.to = st.Blocks * 512
			}
		}
		s.keepReserve()
	}
	return s, nil
}

// Close waits for the operations under way and closes the file; later
// operations block for good (see Store.mu).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.res.close()
	err := s.db.Close()
	if cerr := s.tv.close(); err == nil {
		err = cerr
	}
	return err
}

func key(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

// FirstIndex implements raft.LogStore; 0 when empty.
func (s *Store) FirstIndex() (uint64, error) {
	var idx uint64
	err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(logsBucket).Cursor().First(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// LastIndex implements raft.LogStore; 0 when empty.
func (s *Store) LastIndex() (uint64, error) {
	var idx uint64
	err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(logsBucket).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// GetLog implements raft.LogStore.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	return s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(logsBucket).Get(key(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(v, out); err != nil {
			return fmt.Errorf("raft log entry %d: %w", index, err)
		}
		return nil
	})
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: all entries in one transaction.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	enc := make([][]byte, len(logs))
	var bytes int64
	for i, l := range logs {
		enc[i] = encodeLog(l)
		bytes += int64(len(enc[i])) + 8 + 16 // key, bbolt's element header
	}
	// bbolt's copy-on-write takes new pages for the entries (leaves
	// split half full: twice their bytes), and rewrites the last leaf,
	// the branches above it, the root's leaf and the freelist: 8 pages.
	need := 2*bytes + 8*s.pageSize
	return s.updateLog(need, func(tx *bolt.Tx) error {
		b := tx.Bucket(logsBucket)
		for i, l := range logs {
			if err := b.Put(key(l.Index), enc[i]); err != nil {
				return fmt.Errorf("storing raft log entry %d: %w", l.Index, err)
			}
		}
		return nil
	})
}

// DeleteRange implements raft.LogStore (inclusive bounds).
func (s *Store) DeleteRange(lo, hi uint64) error {
	// The pages it frees are listed in the freelist (8 bytes each: some
	// two per entry, never more than the file has pages), written to new
	// pages with the rewritten branches and leaves at the range's ends.
	var entries uint64
	if hi >= lo {
		entries = min(hi-lo, 1<<32) + 1
	}
	var size int64
	if err := s.view(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return err
	}
	need := min(16*int64(entries), 8*(size/s.pageSize)) + 8*s.pageSize
	return s.updateLog(need, func(tx *bolt.Tx) error {
		c := tx.Bucket(logsBucket).Cursor()
		for k, _ := c.Seek(key(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return fmt.Errorf("deleting raft log entries %d-%d: %w", lo, hi, err)
			}
		}
		return nil
	})
}

// Set implements raft.StableStore: saved in the term and vote file.
func (s *Store) Set(k, v []byte) error {
	s.enter()
	defer s.leave()
	return s.tv.set(k, v)
}

// Get implements raft.StableStore.
func (s *Store) Get(k []byte) ([]byte, error) {
	s.enter()
	defer s.leave()
	v, ok := s.tv.get(k)
	if !ok {
		return nil, errKeyNotFound
	}
	return v, nil
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(k []byte, v uint64) error { return s.Set(k, key(v)) }

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(k []byte) (uint64, error) {
	v, err := s.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft stable value %q has %d bytes, want 8", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 8+8+1+8+4+len(l.Data)+4+len(l.Extensions))
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	return append(b, l.Extensions...)
}

var errShort = errors.New("truncated entry")

func decodeLog(b []byte, l *raft.Log) error {
	if len(b) < 8+8+1+8+4 {
		return errShort
	}
	l.Index = binary.BigEndian.Uint64(b)
	l.Term = binary.BigEndian.Uint64(b[8:])
	l.Type = raft.LogType(b[16])
	if at := int64(binary.BigEndian.Uint64(b[17:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	} else {
		l.AppendedAt = time.Time{}
	}
	n := int(binary.BigEndian.Uint32(b[25:]))
	b = b[29:]
	if len(b) < n+4 {
		return errShort
	}
	// bbolt's memory is only valid inside the transaction: copy.
	l.Data = append([]byte(nil), b[:n]...)
	b = b[n:]
	m := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if len(b) != m {
		return errShort
	}
	l.Extensions = nil
	if m > 0 {
		l.Extensions = append([]byte(nil), b...)
	}
	return nil
}
