package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// termVoteFile holds Raft's stable state (current term, last vote term
// and candidate: hashicorp/raft's StableStore keys) outside bbolt, in a
// file of fixed size written in place.
//
// Why not bbolt. A bbolt write takes new pages (copy on write) and reuses
// a freed one only once no read transaction that could still see it is
// open: a read open across two saves (Raft reads its log while it
// replicates, the reserve's top-up reads the file's size) keeps the pages
// the first freed from the second, which takes new ones. On a full volume
// they came out of the part of the reserve kept back from the log, or,
// with no reserve (a file system without fallocate), there were none: the
// save failed with ENOSPC, and hashicorp/raft panics when it cannot save
// its current term (TestTermAndVoteSavedOnAFullVolumeUnderReads and
// TestVoterWithoutAReserveSavesTermAndVote crashed so before this file).
// A save that grows bbolt's file also waits for every open read (bbolt
// remaps the file), holding Raft's main loop. This file's blocks are
// allocated when it is created (written whole, not sparse), so a save
// overwrites blocks the file owns (on file systems that overwrite in
// place: ext4, xfs, tmpfs; not copy-on-write ones) and needs no new space,
// and no reader can hold anything of it.
//
// Layout: two slots of termVoteSlot bytes. A save writes the whole state
// into the slot that does not hold the newest state, then fsyncs: a save
// torn by a crash leaves the other slot, the state before it, which is
// what Raft was last told is saved. A slot is: magic "TRTV", sequence
// u64, payload length u32, payload, CRC-32C of all that (big-endian). The
// payload is the keys in order, each a u16 length and the key, then a u16
// length and the value. At start the valid slot with the higher sequence
// is the state; a file with no valid slot is refused (a disk that lost
// both is not one to vote from).
type termVoteFile struct {
	mu    sync.Mutex
	f     *os.File
	seq   uint64
	state map[string][]byte
}

const (
	termVoteSlot  = 4096
	termVoteMagic = "TRTV"
	// termVoteHeader: magic, sequence, payload length; then the CRC.
	termVoteHeader = 4 + 8 + 4
	termVoteMax    = termVoteSlot - termVoteHeader - 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTermVoteTooLarge is a state that does not fit a slot: Raft's keys
// and values (a term, a node id or address) take tens of bytes.
var errTermVoteTooLarge = errors.New("raft term and vote state over its slot")

// termVotePath is the file beside the bbolt file at dbPath.
func termVotePath(dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), "raft-term-vote")
}

// openTermVote opens the file at path; when there is none, it creates it
// holding initial (the state bbolt held before this file existed), so
// that an upgraded voter keeps the term and vote it had saved.
func openTermVote(path string, initial func() (map[string][]byte, error)) (*termVoteFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		state, err := initial()
		if err != nil {
			return nil, err
		}
		if err := createTermVote(path, state); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the raft term and vote file: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("opening the raft term and vote file: %w", err)
	}
	var buf [2 * termVoteSlot]byte
	if _, err := io.ReadFull(f, buf[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the raft term and vote file %s: %w", path, err)
	}
	t := &termVoteFile{f: f}
	found := false
	for i := range 2 {
		seq, state, ok := decodeTermVote(buf[i*termVoteSlot : (i+1)*termVoteSlot])
		if ok && (!found || seq > t.seq) {
			t.seq, t.state, found = seq, state, true
		}
	}
	if !found {
		f.Close()
		return nil, fmt.Errorf("the raft term and vote file %s holds no valid copy of the term and vote (both slots fail their checksum): this voter cannot tell what it voted; restore the file or rebuild this node", path)
	}
	return t, nil
}

// createTermVote writes a new file holding state in its first slot, by
// a temporary file renamed into place, so that a crash leaves either no
// file (the next start creates it again) or a whole one.
func createTermVote(path string, state map[string][]byte) error {
	slot, err := encodeTermVote(1, state)
	if err != nil {
		return err
	}
	buf := make([]byte, 2*termVoteSlot)
	copy(buf, slot)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("creating the raft term and vote file: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("creating the raft term and vote file %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func encodeTermVote(seq uint64, state map[string][]byte) ([]byte, error) {
	var payload []byte
	for _, k := range slices.Sorted(maps.Keys(state)) {
		v := state[k]
		if len(k) > termVoteMax || len(v) > termVoteMax {
			return nil, fmt.Errorf("%w: key %q of %d bytes", errTermVoteTooLarge, k, len(v))
		}
		payload = binary.BigEndian.AppendUint16(payload, uint16(len(k)))
		payload = append(payload, k...)
		payload = binary.BigEndian.AppendUint16(payload, uint16(len(v)))
		payload = append(payload, v...)
	}
	if len(payload) > termVoteMax {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errTermVoteTooLarge, len(payload), termVoteMax)
	}
	b := make([]byte, 0, termVoteSlot)
	b = append(b, termVoteMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b[:termVoteSlot], nil
}

// decodeTermVote reads one slot; ok is false for a slot never written,
// torn or damaged.
func decodeTermVote(slot []byte) (seq uint64, state map[string][]byte, ok bool) {
	if !bytes.Equal(slot[:4], []byte(termVoteMagic)) {
		return 0, nil, false
	}
	seq = binary.BigEndian.Uint64(slot[4:])
	n := int(binary.BigEndian.Uint32(slot[12:]))
	if n > termVoteMax {
		return 0, nil, false
	}
	end := termVoteHeader + n
	if crc32.Checksum(slot[:end], castagnoli) != binary.BigEndian.Uint32(slot[end:]) {
		return 0, nil, false
	}
	state = map[string][]byte{}
	p := slot[termVoteHeader:end]
	for len(p) > 0 {
		if len(p) < 2 {
			return 0, nil, false
		}
		kl := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+kl+2 {
			return 0, nil, false
		}
		k := string(p[2 : 2+kl])
		p = p[2+kl:]
		vl := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+vl {
			return 0, nil, false
		}
		state[k] = bytes.Clone(p[2 : 2+vl])
		p = p[2+vl:]
	}
	return seq, state, true
}

// set saves k = v: written and fsynced before it returns. A failed save
// leaves the state as it was (in memory, and in the slot not written).
func (t *termVoteFile) set(k, v []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := maps.Clone(t.state)
	next[string(k)] = bytes.Clone(v)
	slot, err := encodeTermVote(t.seq+1, next)
	if err != nil {
		return err
	}
	off := int64((t.seq+1)%2) * termVoteSlot
	if _, err := t.f.WriteAt(slot, off); err != nil {
		return fmt.Errorf("saving raft %s: %w", k, err)
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("saving raft %s: %w", k, err)
	}
	t.seq++
	t.state = next
	return nil
}

// get returns the saved value of k; ok is false when none was saved.
func (t *termVoteFile) get(k []byte) (v []byte, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok = t.state[string(k)]
	return bytes.Clone(v), ok
}

func (t *termVoteFile) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.f.Close()
}
