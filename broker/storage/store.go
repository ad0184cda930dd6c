package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrUnknownTopicOrPartition: no such partition in the store (UNKNOWN_TOPIC_OR_PARTITION).
var ErrUnknownTopicOrPartition = errors.New("unknown topic or partition")

type partitionKey struct {
	topic     string
	partition int32
}

// Store is the set of partition logs under one data directory.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	mu     sync.RWMutex
	parts  map[partitionKey]*Partition
	closed bool
	// creating holds the partitions whose files CreatePartition is
	// writing, without the store lock: each channel closes when its
	// creation ends. creates counts them, for Close.
	creating map[partitionKey]chan struct{}
	creates  sync.WaitGroup
	// entries makes the data directory's new partition directories
	// durable, one fsync for the creations under way together.
	entries *dirSyncer

	// syncData fsyncs segment data on the append path; tests replace it
	// to inject fsync failures.
	syncData func(*os.File) error
	// syncFault, when set, is used instead of syncData (SetSyncFault).
	syncFault atomic.Pointer[func(*os.File) error]
	// sync runs the sync rounds of every partition (group commit).
	sync *syncer
	// del deletes segments after file.delete.delay.ms (segdelete.go).
	del *deleter
	// cleanerKeys holds the key hasher of the last finished cleaner pass,
	// its 1 MiB keep-buffer included, for the next pass (takeKeyHasher).
	cleanerKeys chan *keyHasher
	// method is the resolved Options.SyncMethod. Under SyncFS, fsDir is
	// the data directory, open for syncfs (one descriptor for the store's
	// life: syncfs reports the writeback errors since the descriptor's
	// last call), syncFS the call (tests replace it), and fsFailed is set
	// once a syncfs failed: rounds fdatasync each file from then on.
	method   SyncMethod
	fsDir    *os.File
	syncFS   func(*os.File) error
	fsFailed atomic.Bool

	stop        chan struct{}
	bg          sync.WaitGroup
	cleanerOnce sync.Once
}

// SetSyncFault makes the fsyncs of segment data on the append path (the
// sync rounds) call fn instead, from the next one on; nil restores them.
// While it is set, rounds sync each file, also under SyncFS, so that fn
// sees every file a round covers.
// It injects a failing disk into a running broker: fn may fail some files
// (f.Name() says which partition) as an EIO or a full disk at writeback
// would, and call the real fsync (f.Sync) for the others.
func (st *Store) SetSyncFault(fn func(f *os.File) error) {
	if fn == nil {
		st.syncFault.Store(nil)
		return
	}
	st.syncFault.Store(&fn)
}

// wholeFileSystem is the descriptor to syncfs for a round, or nil when the
// round syncs each file.
func (st *Store) wholeFileSystem() *os.File {
	if st.fsDir == nil || st.fsFailed.Load() || st.syncFault.Load() != nil {
		return nil
	}
	return st.fsDir
}

// SyncMethod is how sync rounds make data durable: SyncFS or SyncFdatasync
// (Options.SyncMethod resolved for the data directory), SyncFdatasync once
// a syncfs has failed.
func (st *Store) SyncMethod() SyncMethod {
	if st.method == SyncFS && !st.fsFailed.Load() {
		return SyncFS
	}
	return SyncFdatasync
}

// syncFile fsyncs a segment's data in a sync round.
func (st *Store) syncFile(f *os.File) error {
	if fn := st.syncFault.Load(); fn != nil {
		return (*fn)(f)
	}
	return st.syncData(f)
}

// Open opens (creating if needed) the data directory dir, takes an
// exclusive lock on it and recovers every partition found there. See
// recoverPartition for what recovery checks.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	policy, err := ParseFlushPolicy(string(opts.FlushPolicy))
	if err != nil {
		return nil, err
	}
	opts.FlushPolicy = policy
	if opts.SyncMethod, err = ParseSyncMethod(string(opts.SyncMethod)); err != nil {
		return nil, err
	}
	st := &Store{dir: dir, opts: opts, log: opts.Logger, parts: make(map[partitionKey]*Partition), creating: map[partitionKey]chan struct{}{}, cleanerKeys: make(chan *keyHasher, 1),
		syncData: fdatasync, syncFS: syncfs, stop: make(chan struct{})}
	st.sync = newSyncer(st)
	st.del = newDeleter(st)
	st.entries = newDirSyncer(dir, syncDir)
	if st.log == nil {
		st.log = slog.Default()
	}
	st.log = st.log.With("component", "storage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("data directory %s is in use by another process: %w", dir, err)
	}
	st.lock = lock
	if st.method, err = chooseSyncMethod(opts.SyncMethod, dir); err != nil {
		lock.Close()
		return nil, err
	}
	if st.method == SyncFS {
		if st.fsDir, err = os.Open(dir); err != nil {
			lock.Close()
			return nil, fmt.Errorf("opening data directory %s for syncfs: %w", dir, err)
		}
	}

	markerPath := filepath.Join(dir, cleanShutdownMarker)
	_, statErr := os.Stat(markerPath)
	clean := statErr == nil
	start := time.Now()
	if err := st.recoverAll(clean); err != nil {
		st.closeAll()
		lock.Close()
		return nil, err
	}
	// From here on a crash is unclean until Close writes the marker again.
	if clean {
		if err := os.Remove(markerPath); err != nil {
			st.closeAll()
			lock.Close()
			return nil, fmt.Errorf("removing clean-shutdown marker: %w", err)
		}
		if err := syncDir(dir); err != nil {
			st.closeAll()
			lock.Close()
			return nil, err
		}
	}
	st.log.Info("storage opened", "dir", dir, "partitions", len(st.parts), "clean_shutdown", clean,
		"flush_policy", string(opts.FlushPolicy), "sync_method", string(st.method), "took", time.Since(start).Round(time.Millisecond))

	st.bg.Add(3)
	go st.sync.loop()
	go st.checkpointLoop()
	go st.del.loop()
	if opts.FlushPolicy == FlushInterval {
		st.bg.Add(1)
		go st.flushLoop()
	}
	return st, nil
}

// recoverAll loads every partition directory, a few at a time.
func (st *Store) recoverAll(clean bool) error {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return fmt.Errorf("listing data directory %s: %w", st.dir, err)
	}
	type job struct {
		dir, topic string
		partition  int32
	}
	var jobs []job
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		path := filepath.Join(st.dir, name)
		if strings.HasSuffix(name, deletedSuffix) {
			// A topic deletion interrupted by a crash: finish it.
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("finishing deletion of %s: %w", path, err)
			}
			continue
		}
		if name == "controller" || name == "lost+found" {
			continue // the metadata quorum's directory; a file system's own
		}
		topic, partition, ok := parsePartitionDir(name)
		if !ok {
			st.log.Warn("ignoring directory that is not a partition", "dir", path)
			continue
		}
		jobs = append(jobs, job{dir: path, topic: topic, partition: partition})
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)*2))
	)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := st.recoverPartition(j.dir, j.topic, j.partition, clean)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("recovering %s: %w", j.dir, err))
				return
			}
			st.parts[partitionKey{j.topic, j.partition}] = p
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

const deletedSuffix = "-delete"

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidTopicName reports whether Kafka would accept name as a topic name.
func ValidTopicName(name string) bool {
	return topicNameRE.MatchString(name) && name != "." && name != ".."
}

func partitionDirName(topic string, partition int32) string {
	return topic + "-" + strconv.Itoa(int(partition))
}

// parsePartitionDir splits "<topic>-<partition>" at the last dash.
func parsePartitionDir(name string) (string, int32, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || n < 0 || !ValidTopicName(name[:i]) {
		return "", 0, false
	}
	return name[:i], int32(n), true
}

// Dir is the data directory.
func (st *Store) Dir() string { return st.dir }

// CreatePartition creates the log of a partition, or returns the existing
// one with cfg applied (it is idempotent). The log's topic id stays
// unknown; see CreatePartitionWithID.
func (st *Store) CreatePartition(topic string, partition int32, cfg TopicConfig) (*Partition, error) {
	return st.CreatePartitionWithID(topic, partition, TopicID{}, cfg)
}

// CreatePartitionWithID creates the log of a partition of the topic whose
// id is id, recording the id in partition.metadata, or returns the
// existing one with cfg applied (it is idempotent). An existing log whose
// id is unknown (created without one, or before ids were stored) takes
// id; one that holds another id belongs to an earlier topic of the same
// name and is refused with ErrTopicIDMismatch, for the caller to delete
// (DeletePartition) once it knows the current topic. A zero id checks
// nothing.
//
// The files are written and fsynced without the store lock, so that
// partitions are created concurrently (a broker given a topic of thousands
// of partitions opens them a few at a time) and lookups of other
// partitions never wait for a creation's fsyncs. A second creation of the
// same partition waits for the first one and returns its result.
func (st *Store) CreatePartitionWithID(topic string, partition int32, id TopicID, cfg TopicConfig) (*Partition, error) {
	if !ValidTopicName(topic) {
		return nil, fmt.Errorf("invalid topic name %q", topic)
	}
	if partition < 0 {
		return nil, fmt.Errorf("invalid partition %d", partition)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	key := partitionKey{topic, partition}
	st.mu.Lock()
	for {
		if st.closed {
			st.mu.Unlock()
			return nil, ErrClosed
		}
		if p, ok := st.parts[key]; ok {
			st.mu.Unlock()
			if err := p.ClaimTopicID(id); err != nil {
				return nil, err
			}
			p.SetConfig(cfg)
			return p, nil
		}
		ch, ok := st.creating[key]
		if !ok {
			break
		}
		st.mu.Unlock()
		<-ch
		st.mu.Lock()
	}
	done := make(chan struct{})
	st.creating[key] = done
	st.creates.Add(1)
	st.mu.Unlock()
	defer st.creates.Done()

	dir := filepath.Join(st.dir, partitionDirName(topic, partition))
	p, err := st.createPartitionDir(dir, topic, partition, id, cfg)
	if err != nil {
		os.RemoveAll(dir)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.creating, key)
	close(done)
	if err != nil {
		return nil, fmt.Errorf("%w: creating partition %s: %w", ErrStorage, dir, err)
	}
	st.parts[key] = p
	return p, nil
}

// createPartitionDir writes a new partition's directory: its empty first
// segment and partition.metadata, then one fsync of the directory for both
// entries, then the data directory's fsync for the directory itself,
// shared with the creations under way (st.entries). The partition is
// returned, and so acknowledged to the replication layer that will append
// to it, only once both are durable: an fdatasync of a segment on the
// append path makes its data durable, not the directory entries that lead
// to it.
//
// No checkpoint files are written: for an empty log they would say what
// their absence says at recovery (no recovery point: the log is checked
// from its start, which here is empty; no producer-state snapshot: the
// producers are rebuilt from that same empty log), so the partition starts
// with the state those files would have given it, and its first checkpoint
// writes them when something changes. Three fsyncs fewer per partition:
// with 5,000 partitions on each of three brokers, 45,000 fewer.
func (st *Store) createPartitionDir(dir, topic string, partition int32, id TopicID, cfg TopicConfig) (*Partition, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s, err := createSegment(dir, 0, st.opts.Now())
	if err != nil {
		return nil, err
	}
	// writePartitionMeta's fsync of dir covers the segment's entry too.
	if err := writePartitionMeta(dir, topic, partition, id, cfg); err != nil {
		_ = s.close()
		return nil, err
	}
	if err := st.entries.syncEntries(); err != nil {
		_ = s.close()
		return nil, err
	}
	p := newPartition(st, topic, partition, dir, cfg)
	p.topicID = id
	p.segments = []*segment{s}
	p.recovery = recoveryPoint{offset: 0, segment: s.base, position: 0}
	p.snapOffset = 0
	return p, nil
}

// Partition returns the log of a partition, if the store has it.
func (st *Store) Partition(topic string, partition int32) (*Partition, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	p, ok := st.parts[partitionKey{topic, partition}]
	return p, ok
}

// Partitions lists all partitions, by topic then partition number.
func (st *Store) Partitions() []*Partition {
	st.mu.RLock()
	out := make([]*Partition, 0, len(st.parts))
	for _, p := range st.parts {
		out = append(out, p)
	}
	st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out
}

// DeleteTopic closes and deletes every partition of topic. Each directory
// is renamed to "*-delete" at once, so a crash midway finishes the deletion
// at the next Open; its files are closed and removed after the topic's
// file.delete.delay.ms (see deleter), so fetches sending from them finish.
func (st *Store) DeleteTopic(topic string) error {
	return st.deletePartitions(func(k partitionKey) bool { return k.topic == topic },
		fmt.Sprintf("topic %q", topic))
}

// DeletePartition closes and deletes one partition's log, as DeleteTopic
// does for each of a topic's: the replica manager calls it when the
// metadata moves the partition off this broker. Reads and follower writes
// in flight or arriving later get ErrClosed, a fetch already sending from
// the files finishes (file.delete.delay.ms), and a partition the store does
// not hold (deleted already) is ErrUnknownTopicOrPartition. A partition
// created again afterwards starts from an empty log.
func (st *Store) DeletePartition(topic string, partition int32) error {
	key := partitionKey{topic, partition}
	return st.deletePartitions(func(k partitionKey) bool { return k == key },
		fmt.Sprintf("partition %s", partitionDirName(topic, partition)))
}

// deletePartitions deletes the partitions whose keys match; what names
// them in the not-found error.
func (st *Store) deletePartitions(match func(partitionKey) bool, what string) error {
	// The renames happen under the store lock, so a CreatePartition of the
	// same name right after cannot write into a directory about to vanish.
	// (A creation under way is not in st.parts yet: it ends as if it had
	// started after the deletion.)
	st.mu.Lock()
	var victims []*Partition
	for k, p := range st.parts {
		if match(k) {
			victims = append(victims, p)
			delete(st.parts, k)
		}
	}
	if len(victims) == 0 {
		st.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrUnknownTopicOrPartition, what)
	}
	var errs []error
	var doomed []*Partition
	var dirs []string
	for _, p := range victims {
		p.mu.Lock()
		p.closed = true
		var suffix [6]byte
		_, _ = rand.Read(suffix[:])
		to := p.dir + "." + hex.EncodeToString(suffix[:]) + deletedSuffix
		if err := os.Rename(p.dir, to); err != nil {
			p.closeFiles()
			p.mu.Unlock()
			p.wake()
			errs = append(errs, fmt.Errorf("renaming %s for deletion: %w", p.dir, err))
			continue
		}
		p.mu.Unlock()
		p.wake()
		doomed, dirs = append(doomed, p), append(dirs, to)
	}
	if err := syncDir(st.dir); err != nil {
		errs = append(errs, err)
	}
	st.mu.Unlock()
	// Outside the store lock: a deletion that does not wait removes the
	// directories now.
	for i, p := range doomed {
		p.mu.Lock()
		f, delay := p.deletedPartitionLocked(dirs[i])
		p.mu.Unlock()
		st.del.schedule(f, delay)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return nil
}

// Close stops the background work, makes every partition durable with
// fresh checkpoints, closes the files and, if all of that worked, writes the
// clean-shutdown marker.
func (st *Store) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	close(st.stop)
	st.mu.Unlock()
	st.bg.Wait()
	// A creation under way adds its partition when it ends; it must be
	// closed (and its files complete) before the clean-shutdown marker.
	st.creates.Wait()

	err := st.closeAll()
	// No partition reads now: what waits for file.delete.delay.ms goes
	// (or, past a second, waits for the next start).
	st.del.finish()
	if err == nil {
		err = writeFileAtomic(filepath.Join(st.dir, cleanShutdownMarker), nil)
	}
	if cerr := st.lock.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing lock file: %w", cerr)
	}
	return err
}

func (st *Store) closeAll() error {
	var mu sync.Mutex
	var errs []error
	st.forEachPartition(func(p *Partition) {
		if err := p.close(); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if st.fsDir != nil {
		_ = st.fsDir.Close() // a directory opened read-only: nothing to flush
	}
	return errors.Join(errs...)
}

// partitionWorkers bounds how many partitions are checkpointed, flushed or
// closed at once: enough to overlap fsync latency, few enough not to flood
// the disk queue.
const partitionWorkers = 8

// forEachPartition runs fn on every partition, a few at a time, and waits.
func (st *Store) forEachPartition(fn func(p *Partition)) {
	sem := make(chan struct{}, partitionWorkers)
	var wg sync.WaitGroup
	for _, p := range st.Partitions() {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(p)
		}()
	}
	wg.Wait()
}

// checkpointLoop writes recovery points every CheckpointInterval.
func (st *Store) checkpointLoop() {
	defer st.bg.Done()
	t := time.NewTicker(st.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			st.forEachPartition(func(p *Partition) {
				if err := p.checkpoint(); err != nil {
					// A checkpoint failing for space runs the waiting
					// deletions as a failed append does.
					st.del.noteWriteError(err)
					st.log.Warn("checkpoint failed", "partition", p.dir, "err", err)
				}
			})
		}
	}
}

// flushLoop fsyncs every partition with unsynced data every FlushInterval
// (the interval flush policy).
func (st *Store) flushLoop() {
	defer st.bg.Done()
	t := time.NewTicker(st.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			st.forEachPartition(func(p *Partition) {
				end := p.LogEndOffset()
				if p.durable.Load() < end {
					if err := p.waitDurable(context.Background(), end, p.writeGen.Load()); err != nil {
						st.log.Warn("interval flush failed", "partition", p.dir, "err", err)
					}
				}
			})
		}
	}
}

// checkpoint records a new recovery point at the log end, with the index
// entries, producer state, leader epochs and high watermark that go with
// it, when anything changed since the last one. Unlike checkpointLocked
// it holds the partition lock only to take a consistent picture and to
// record the outcome, never across an fsync: the data goes through the
// store's sync round and the small files are written and fsynced while
// appends and reads go on. cpMu keeps checkpoints and truncations apart,
// so the picture stays true of the log until its files are in place.
func (p *Partition) checkpoint() error {
	p.cpMu.Lock()
	defer p.cpMu.Unlock()
	cp, ok, err := p.prepareCheckpoint()
	if err != nil || !ok {
		return err
	}
	// Everything below the recovery point must be on disk before the
	// point is. A write discarded after a failed fsync (only above the
	// durable end) fails this wait; one discarded after it cut nothing
	// below the point.
	if err := p.waitDurable(context.Background(), cp.rp.offset, cp.gen); err != nil {
		return err
	}
	for _, path := range cp.indexes {
		if err := syncPath(path); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	if err := syncTxnIndexes(cp.txns); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	// The recovery point is renamed into place last: it must never be
	// newer than the snapshot and epochs written with it.
	if err := writeFilesAtomic(p.dir, cp.files); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if cp.epochs != nil && bytes.Equal(cp.epochs, p.epochs.encode()) {
		p.epochsDirty = false
	}
	if cp.hwChanged {
		p.hwWritten = cp.hw
	}
	if cp.snapshot {
		p.snapOffset = cp.rp.offset
	}
	if p.writeGen.Load() == cp.gen {
		for _, t := range cp.txns {
			t.seg.txn.synced = max(t.seg.txn.synced, min(t.written, t.seg.txn.onDisk))
		}
	}
	p.recovery = cp.rp
	return nil
}

// pendingCheckpoint is what checkpoint writes, taken under the lock.
type pendingCheckpoint struct {
	rp        recoveryPoint
	gen       uint64
	indexes   []string // index files written, to fsync
	txns      []pendingTxnIndex
	files     []namedContent // the checkpoint files, recovery point last
	epochs    []byte         // the leader epochs written, nil if none
	hw        int64
	hwChanged bool
	snapshot  bool
}

// prepareCheckpoint takes the picture checkpoint writes: the recovery
// point at the log end, the index entries not yet in their files (written
// now, to the page cache: a write there is quick; their fsync waits), and
// the contents of the checkpoint files. ok is false when nothing changed.
func (p *Partition) prepareCheckpoint() (cp pendingCheckpoint, ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return cp, false, nil
	}
	s := p.active()
	cp.rp = recoveryPoint{offset: p.leo, segment: s.base, position: s.size}
	cp.hwChanged = p.hwSet && min(p.hw, p.leo) != p.hwWritten
	if cp.rp == p.recovery && !p.epochsDirty && !cp.hwChanged && p.snapOffset == p.leo {
		return cp, false, nil
	}
	cp.gen = p.writeGen.Load()
	for _, seg := range p.segments {
		if seg.index.offsetsOnDisk < len(seg.index.offsets) || seg.index.timesOnDisk < len(seg.index.times) {
			if err := seg.writeIndexes(false); err != nil {
				return cp, false, fmt.Errorf("%w: %w", ErrStorage, err)
			}
			cp.indexes = append(cp.indexes, seg.indexPath(), seg.timeIndexPath())
		}
		// The snapshot written below promises the aborted-transaction
		// entries of the log before it.
		if err := seg.writeTxnIndex(false); err != nil {
			return cp, false, fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	cp.txns = pendingTxnIndexes(p.segments)
	cp.snapshot = cp.rp != p.recovery || p.snapOffset != p.leo
	if cp.snapshot {
		p.producers.expire(p.store.opts.Now().Add(-p.store.opts.ProducerIDExpiration).UnixMilli())
		cp.files = append(cp.files, namedContent{producerStateFile, p.producers.encode(p.leo)})
	}
	if p.epochsDirty {
		cp.epochs = p.epochs.encode()
		cp.files = append(cp.files, namedContent{leaderEpochFile, cp.epochs})
	}
	cp.hw = min(p.hw, p.leo)
	if cp.hwChanged {
		cp.files = append(cp.files, namedContent{highWatermarkFile, formatCheckpoint([][]int64{{cp.hw}})})
	}
	cp.files = append(cp.files, namedContent{recoveryPointFile, encodeRecoveryPoint(cp.rp)})
	return cp, true, nil
}

// syncPath fsyncs the file at path; a file removed meanwhile (retention,
// compaction) needs nothing.
func syncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	err = fdatasync(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// checkpointLocked fsyncs the data and indexes, saves the producer state and
// leader epochs, and writes the recovery point at the log end, when
// anything changed since the last checkpoint (so idle partitions cost no
// I/O, at runtime or at start-up).
func (p *Partition) checkpointLocked() error {
	s := p.active()
	rp := recoveryPoint{offset: p.leo, segment: s.base, position: s.size}
	hwChanged := p.hwSet && min(p.hw, p.leo) != p.hwWritten
	if rp == p.recovery && !p.epochsDirty && !hwChanged && p.snapOffset == p.leo {
		return nil
	}
	if p.durable.Load() < p.leo || len(p.unsynced) > 0 {
		for _, seg := range append(p.unsynced, s) {
			if seg.file == nil {
				continue
			}
			if err := seg.file.Sync(); err != nil {
				return fmt.Errorf("%w: fsync %s: %w", ErrStorage, seg.logPath(), err)
			}
		}
		p.unsynced = nil
	}
	for _, seg := range p.segments {
		if seg.index.offsetsOnDisk < len(seg.index.offsets) || seg.index.timesOnDisk < len(seg.index.times) {
			if err := seg.writeIndexes(true); err != nil {
				return fmt.Errorf("%w: %w", ErrStorage, err)
			}
		}
		// The snapshot written below promises the aborted-transaction
		// entries of the log before it.
		if err := seg.writeTxnIndex(true); err != nil {
			return fmt.Errorf("%w: %w", ErrStorage, err)
		}
	}
	// The recovery point is renamed into place last: it must never be
	// newer than the snapshot and epochs written with it.
	var files []namedContent
	writeSnapshot := rp != p.recovery || p.snapOffset != p.leo
	if writeSnapshot {
		p.producers.expire(p.store.opts.Now().Add(-p.store.opts.ProducerIDExpiration).UnixMilli())
		files = append(files, namedContent{producerStateFile, p.producers.encode(p.leo)})
	}
	if p.epochsDirty {
		files = append(files, namedContent{leaderEpochFile, p.epochs.encode()})
	}
	hw := min(p.hw, p.leo)
	if hwChanged {
		files = append(files, namedContent{highWatermarkFile, formatCheckpoint([][]int64{{hw}})})
	}
	files = append(files, namedContent{recoveryPointFile, encodeRecoveryPoint(rp)})
	if err := writeFilesAtomic(p.dir, files); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	p.epochsDirty = false
	if hwChanged {
		p.hwWritten = hw
	}
	if writeSnapshot {
		p.snapOffset = p.leo
	}
	p.recovery = rp
	before := p.durable.Load()
	advanceTo(&p.durable, p.leo)
	if before < p.leo {
		p.wake()
	}
	return nil
}

// close checkpoints and closes the partition's files.
func (p *Partition) close() error {
	p.cpMu.Lock()
	defer p.cpMu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	err := p.checkpointLocked()
	p.closed = true
	p.closeFiles()
	p.mu.Unlock()
	p.wake()
	if err != nil {
		return fmt.Errorf("closing %s: %w", p.dir, err)
	}
	return nil
}
