package storage

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Delayed deletion, as Kafka's file.delete.delay.ms. A fetch sends record
// batches straight from the segment files (FileSlice.SendTo), located
// under the partition lock and sent without it. A segment that leaves the
// log meanwhile (retention, DeleteRecords, compaction's replaced segment,
// a deleted topic) would close the descriptor under a send in progress,
// and its connection would be closed (ErrSliceGone): every consumer and
// follower reading the oldest segment when retention runs would
// reconnect. So such a segment is taken out of the log at once (no new
// read finds it), its files are renamed (".deleted"; a deleted
// partition's directory is renamed to "*-delete") and its descriptors
// stay open until the delay has passed; then they are closed and the
// files removed. A send of a slice made before the deletion finishes
// with the bytes it was made of.
//
// Truncation is different: it drops batches that are not, or no longer,
// the log's (a diverged suffix), and a slice of them must fail; it
// removes segments at once and cuts the active one in place (cuts).

// deletedFileSuffix marks a segment's files waiting for their deletion;
// start-up removes any left by a crash before the log is opened.
const deletedFileSuffix = ".deleted"

// shortSpaceWindow: for this long after a write failed for lack of space
// (ENOSPC, EDQUOT), deletions do not wait (diskShort).
const shortSpaceWindow = time.Minute

// shortSpaceShare: below this share of its size available on the data
// directory's file system, deletions do not wait (diskShort).
const shortSpaceShare = 0.05

// doomedFiles is one deletion waiting for its delay: the segments whose
// descriptors it closes, and the files and directories it removes then.
type doomedFiles struct {
	due   time.Time
	segs  []*segment
	paths []string // files, removed
	dirs  []string // directories, removed with everything in them
	bytes int64    // their size, for PendingDeletion
}

// deleter runs the deletions waiting for their delay. Its clock is the
// wall clock (time.Now), not Options.Now: the delay is for sends in
// progress, which take real time.
type deleter struct {
	st   *Store
	wake chan struct{} // capacity 1

	mu      sync.Mutex
	pending []doomedFiles
	// done: the store closed and ran what was pending; later deletions
	// run at once.
	done bool

	pendingSegments atomic.Int64
	pendingBytes    atomic.Int64
	// noSpaceAt is when a write last failed for lack of space (unix ns).
	noSpaceAt atomic.Int64
	// closeBudget bounds how long finish removes files.
	closeBudget time.Duration
	// statfs, when set, replaces unix.Statfs (tests).
	statfs atomic.Pointer[func(dir string, st *unix.Statfs_t) error]
}

func newDeleter(st *Store) *deleter {
	return &deleter{st: st, wake: make(chan struct{}, 1), closeBudget: time.Second}
}

// PendingDeletion is what waits for file.delete.delay.ms: segments out of
// every log (deleted partitions' included) whose files are still open and
// on disk, and their size in bytes, which the file system counts as used
// until they are removed.
func (st *Store) PendingDeletion() (segments int, bytes int64) {
	return int(st.del.pendingSegments.Load()), st.del.pendingBytes.Load()
}

// noteWriteError records a write that failed for lack of space: the
// deletions waiting for their delay run now, and later ones do not wait
// (diskShort), since deleting is how a full disk gets space back.
func (d *deleter) noteWriteError(err error) {
	if !NoSpace(err) {
		return
	}
	d.noSpaceAt.Store(time.Now().UnixNano())
	d.poke()
}

func (d *deleter) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// diskShort reports whether deletions must not wait: a write failed for
// lack of space within shortSpaceWindow, or less than shortSpaceShare of
// the data directory's file system is available.
func (d *deleter) diskShort() bool {
	if at := d.noSpaceAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < shortSpaceWindow {
		return true
	}
	statfs := unix.Statfs
	if fn := d.statfs.Load(); fn != nil {
		statfs = *fn
	}
	var fs unix.Statfs_t
	if err := statfs(d.st.dir, &fs); err != nil || fs.Blocks == 0 {
		return false
	}
	return float64(fs.Bavail) < shortSpaceShare*float64(fs.Blocks)
}

// schedule runs f after delay, or now when the delay is not positive, the
// disk is short or the store has closed.
func (d *deleter) schedule(f doomedFiles, delay time.Duration) {
	if delay > 0 && !d.diskShort() {
		f.due = time.Now().Add(delay)
		d.mu.Lock()
		if !d.done {
			d.pending = append(d.pending, f)
			d.pendingSegments.Add(int64(len(f.segs)))
			d.pendingBytes.Add(f.bytes)
			d.mu.Unlock()
			d.poke()
			return
		}
		d.mu.Unlock()
	}
	d.run(f)
}

// run closes f's segments and removes its files.
func (d *deleter) run(f doomedFiles) {
	var errs []error
	for _, s := range f.segs {
		errs = append(errs, s.close())
	}
	for _, p := range f.paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
		}
	}
	for _, dir := range f.dirs {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		d.st.log.Warn("deleting files after file.delete.delay.ms; what is left goes at the next start", "err", err)
	}
}

// take removes from the queue and returns the deletions due at now (all
// of them with all), and the time the next one is due (zero: none).
func (d *deleter) take(now time.Time, all bool) (due []doomedFiles, next time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	kept := d.pending[:0]
	for _, f := range d.pending {
		if all || !f.due.After(now) {
			due = append(due, f)
			d.pendingSegments.Add(-int64(len(f.segs)))
			d.pendingBytes.Add(-f.bytes)
			continue
		}
		kept = append(kept, f)
		if next.IsZero() || f.due.Before(next) {
			next = f.due
		}
	}
	clear(d.pending[len(kept):])
	d.pending = kept
	return due, next
}

// loop runs deletions as they fall due, until the store stops.
func (d *deleter) loop() {
	defer d.st.bg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := d.take(time.Now(), d.diskShort())
		for _, f := range due {
			d.run(f)
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-d.st.stop:
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// finish ends the pending deletions (Store.Close, once nothing reads the
// files any more): every descriptor is closed, and the files are removed,
// oldest first, for at most closeBudget. What is left then (a high write
// rate over small segments leaves thousands of files: 12 GiB of 1 MiB
// segments took 5 s to remove on a loaded machine) stays for the next
// start, which removes it before opening the logs, so that a shutdown
// does not wait for it. Deletions scheduled after finish run at once.
func (d *deleter) finish() {
	d.mu.Lock()
	d.done = true
	d.mu.Unlock()
	due, _ := d.take(time.Now(), true)
	deadline := time.Now().Add(d.closeBudget)
	for i, f := range due {
		if time.Now().After(deadline) {
			for _, g := range due[i:] {
				for _, s := range g.segs {
					_ = s.close()
				}
			}
			d.st.log.Info("left deleted segments on disk for the next start to remove", "deletions", len(due)-i)
			return
		}
		d.run(f)
	}
}

// renameForDeletion renames the segment's files (those that exist) with
// deletedFileSuffix, the log first, and returns their new paths. The
// descriptor stays open: a slice of the segment still sends from it. On
// failure the files already renamed are in the paths returned.
func (s *segment) renameForDeletion() ([]string, error) {
	var renamed []string
	for _, p := range []string{s.logPath(), s.indexPath(), s.timeIndexPath(), s.txnIndexPath(), s.snapshotPath()} {
		err := os.Rename(p, p+deletedFileSuffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return renamed, fmt.Errorf("renaming %s for deletion: %w", p, err)
		}
		renamed = append(renamed, p+deletedFileSuffix)
	}
	return renamed, nil
}

// deleteSegmentLocked deletes a segment the caller took out of p.segments
// (retention, DeleteRecords, compaction): renamed now, closed and removed
// after file.delete.delay.ms (see deleter). Called with p.mu held.
func (p *Partition) deleteSegmentLocked(s *segment, reason string) {
	p.unsynced = dropSynced(p.unsynced, []*segment{s})
	if delay := p.cfg.FileDeleteDelay; delay > 0 {
		renamed, err := s.renameForDeletion()
		if err == nil {
			p.store.del.schedule(doomedFiles{segs: []*segment{s}, paths: renamed, bytes: s.size}, delay)
			p.store.log.Debug("segment out of the log, deleted after file.delete.delay.ms", "segment", s.logPath(), "reason", reason, "delay", delay)
			return
		}
		// Delete it now, under whichever names it has.
		p.store.log.Warn("renaming a segment for deletion; deleting it now", "segment", s.logPath(), "err", err)
		p.store.del.run(doomedFiles{paths: renamed})
	}
	if err := s.remove(); err != nil {
		p.store.log.Warn("deleting segment", "segment", s.logPath(), "err", err)
	} else {
		p.store.log.Debug("deleted segment", "segment", s.logPath(), "reason", reason)
	}
}

// closeReplacedSegmentLocked closes a segment compaction replaced: its log
// was renamed over by the compacted one and its index files removed, so
// only its descriptor is left, which a slice of it may still send from;
// it is closed after file.delete.delay.ms (the file system frees the old
// log's space then).
func (p *Partition) closeReplacedSegmentLocked(s *segment) {
	p.unsynced = dropSynced(p.unsynced, []*segment{s})
	p.store.del.schedule(doomedFiles{segs: []*segment{s}, bytes: s.size}, p.cfg.FileDeleteDelay)
}

// deletedPartitionLocked is the deletion of a partition whose directory
// DeleteTopic or DeletePartition renamed to dir: its segments' descriptors and dir, to
// schedule (without p.mu: a deletion that does not wait removes dir at
// once) with the partition's file.delete.delay.ms. Called with p.mu held,
// p closed.
func (p *Partition) deletedPartitionLocked(dir string) (doomedFiles, time.Duration) {
	segs := slices.Clone(p.segments)
	for _, s := range p.unsynced {
		if !slices.Contains(segs, s) {
			segs = append(segs, s)
		}
	}
	// Sync rounds read the files of unsynced segments under p.mu alone,
	// which the deleter does not hold when it closes them; a deleted
	// partition has nothing left to make durable.
	p.unsynced = nil
	var size int64
	for _, s := range p.segments {
		size += s.size
	}
	return doomedFiles{segs: segs, dirs: []string{dir}, bytes: size}, p.cfg.FileDeleteDelay
}
