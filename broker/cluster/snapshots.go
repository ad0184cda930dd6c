package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotStore is hashicorp/raft's file snapshot store (cfg.Dir/snapshots,
// on the data volume) with snapshots written by a sink of its own that
// leaves nothing behind when a snapshot fails. The layout and format are
// the file store's, which lists, opens (checking the CRC) and reaps them:
// a snapshot is written into "<term>-<index>-<ms>.tmp" (meta.json and
// state.bin, fsynced) and renamed without the suffix once whole; List and
// Open never see a .tmp directory, so a half-written snapshot is never
// used.
//
// Why a sink of its own: the file store's sink, on a full volume, left
// its .tmp directory when Create's first metadata write failed, and when
// Cancel's flush failed it returned before closing state.bin, so the
// directory stayed with the part of state.bin that fitted and the file
// stayed open (its blocks held even once removed). Each failed local
// snapshot and each snapshot a leader sent to a full follower left one,
// every try, and nothing ever removed them: space the partitions and the
// Raft store need once the volume frees. Here a failed Create, Write,
// Close or Cancel closes the file and removes the directory, and opening
// the store removes what a crash left (newSnapshotStore).
//
// pending records that the last snapshot failed, so that the controller
// takes one as soon as the volume has room again (storeSpaceLoop) rather
// than at Raft's next SnapshotInterval.
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir string // cfg.Dir/snapshots
	log *slog.Logger

	pending  atomic.Bool
	failures atomic.Int64
}

// snapshotsRetained is how many snapshots the store keeps.
const snapshotsRetained = 2

// newSnapshotStore opens the snapshot store under dir and removes the
// .tmp directories a process that stopped mid-snapshot left: none is
// being written before Raft starts.
func newSnapshotStore(dir string, log *slog.Logger, hlog hclog.Logger) (*snapshotStore, error) {
	fs, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, hlog)
	if err != nil {
		return nil, err
	}
	s := &snapshotStore{FileSnapshotStore: fs, dir: filepath.Join(dir, "snapshots"), log: log}
	left, err := filepath.Glob(filepath.Join(s.dir, "*.tmp"))
	if err != nil {
		return nil, err
	}
	for _, p := range left {
		if err := os.RemoveAll(p); err != nil {
			return nil, fmt.Errorf("removing the unfinished snapshot %s: %w", p, err)
		}
		log.Info("removed an unfinished raft snapshot", "path", p)
	}
	return s, nil
}

// snapshotMeta is hashicorp/raft's fileSnapshotMeta, meta.json: what
// FileSnapshotStore reads back.
type snapshotMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// Create implements raft.SnapshotStore.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}
	name := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	k := &snapshotSink{
		store: s,
		dir:   filepath.Join(s.dir, name+".tmp"),
		// Peers is the encoding of configurations before snapshot
		// version 1; nothing reads it from a version 1 snapshot.
		meta: snapshotMeta{SnapshotMeta: raft.SnapshotMeta{
			Version: version, ID: name, Index: index, Term: term,
			Configuration: configuration, ConfigurationIndex: configurationIndex,
		}},
		hash: crc64.New(crc64.MakeTable(crc64.ECMA)),
	}
	err := os.MkdirAll(k.dir, 0o755)
	if err == nil {
		err = k.writeMeta()
	}
	if err == nil {
		k.f, err = os.Create(filepath.Join(k.dir, "state.bin"))
	}
	if err != nil {
		k.fail()
		return nil, fmt.Errorf("creating raft snapshot %s: %w", name, err)
	}
	k.buf = bufio.NewWriter(io.MultiWriter(k.f, k.hash))
	return k, nil
}

// snapshotSink writes one snapshot; see snapshotStore.
type snapshotSink struct {
	store *snapshotStore
	dir   string // the .tmp directory
	meta  snapshotMeta
	f     *os.File // state.bin
	hash  hash.Hash64
	buf   *bufio.Writer
	ended bool
}

// ID implements raft.SnapshotSink.
func (k *snapshotSink) ID() string { return k.meta.ID }

// Write implements raft.SnapshotSink.
func (k *snapshotSink) Write(b []byte) (int, error) { return k.buf.Write(b) }

// Close implements raft.SnapshotSink: the snapshot is in place when it
// returns nil. An error before the rename removes the .tmp directory; one
// after it (syncing the directory, reaping an older snapshot) leaves the
// snapshot, whole, in place.
func (k *snapshotSink) Close() error {
	if k.ended {
		return nil
	}
	k.ended = true
	err := k.closeState()
	if err == nil {
		err = k.writeMeta()
	}
	final := strings.TrimSuffix(k.dir, ".tmp")
	if err == nil {
		err = os.Rename(k.dir, final)
	}
	if err != nil {
		k.fail()
		return fmt.Errorf("writing raft snapshot %s: %w", k.meta.ID, err)
	}
	k.store.pending.Store(false)
	if err := syncDir(k.store.dir); err != nil {
		return fmt.Errorf("raft snapshot %s: %w", k.meta.ID, err)
	}
	return k.store.ReapSnapshots()
}

// Cancel implements raft.SnapshotSink.
func (k *snapshotSink) Cancel() error {
	if k.ended {
		return nil
	}
	k.ended = true
	k.fail()
	return nil
}

// closeState flushes, fsyncs and closes state.bin, closing it whatever
// fails, and records its size and CRC.
func (k *snapshotSink) closeState() error {
	f := k.f
	k.f = nil
	err := k.buf.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			k.meta.Size = st.Size()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	k.meta.CRC = k.hash.Sum(nil)
	return err
}

// writeMeta writes meta.json, fsynced.
func (k *snapshotSink) writeMeta() error {
	f, err := os.Create(filepath.Join(k.dir, "meta.json"))
	if err != nil {
		return err
	}
	err = json.NewEncoder(f).Encode(&k.meta)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fail closes what is open, removes the .tmp directory and marks a
// snapshot pending.
func (k *snapshotSink) fail() {
	if k.f != nil {
		_ = k.f.Close()
		k.f = nil
	}
	if err := os.RemoveAll(k.dir); err != nil {
		k.store.log.Warn("cannot remove an unfinished raft snapshot", "path", k.dir, "err", err)
	}
	k.store.failures.Add(1)
	k.store.pending.Store(true)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// storeSpaceInterval is how often storeSpaceLoop looks at the Raft
// store's reserve; snapshotRetryInterval how often it retries a failed
// snapshot while the store is not on its reserve (Raft itself retries
// every SnapshotInterval, 2-4 minutes by default).
const (
	storeSpaceInterval    = time.Second
	snapshotRetryInterval = 30 * time.Second
)

// storeSpaceLoop brings the metadata log back from a full volume as soon
// as space frees. While the Raft store lives on its reserve it tries the
// top-up every storeSpaceInterval (a store tops up at each write, but a
// quiet log, or one whose reserve is used up, writes nothing); once one
// passes, a snapshot that failed meanwhile is taken at once, so the log
// that grew in the reserve is compacted and its pages freed for the next
// time, instead of at Raft's next SnapshotInterval.
func (ctl *Controller) storeSpaceLoop() {
	tick := time.NewTicker(storeSpaceInterval)
	defer tick.Stop()
	var tried time.Time
	for {
		select {
		case <-ctl.ctx.Done():
			return
		case <-tick.C:
		}
		now := false
		if ctl.store.OnReserve() {
			if ctl.store.KeepReserve() {
				continue // still full
			}
			now = true
		}
		if !ctl.snaps.pending.Load() || !now && time.Since(tried) < snapshotRetryInterval {
			continue
		}
		tried = time.Now()
		ctl.log.Info("taking a raft snapshot that failed before, to compact the metadata log", "after_reserve", now)
		switch err := ctl.raft.Snapshot().Error(); {
		case err == nil, errors.Is(err, raft.ErrNothingNewToSnapshot):
			ctl.snaps.pending.Store(false)
		case errors.Is(err, raft.ErrRaftShutdown):
			return
		default:
			ctl.log.Warn("raft snapshot failed again; retrying later", "err", err)
		}
	}
}
