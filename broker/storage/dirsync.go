package storage

import "sync"

// dirSyncer makes new entries of one directory durable, sharing one fsync
// of it among the callers that ask at the same time: partitions created
// together (a broker given a topic of thousands of partitions creates them
// several at a time) each add an entry to the data directory, and one
// fsync of it after all of them were added covers them all.
//
// A round covers an entry only if it began after the entry was made: a
// caller that finds a round under way waits for the next one, which the
// first caller to see the directory idle begins for everyone waiting.
// Rounds run one at a time.
//
// A failed round fails every caller it was meant to cover, and, because a
// failed fsync may have dropped the entries it was writing back while a
// later one reports success, every caller waiting for a round that began
// after it as well, until a caller starts afresh with a new entry.
type dirSyncer struct {
	dir    string
	syncFn func(dir string) error // syncDir; a test's in tests

	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64 // rounds begun
	ended   uint64 // rounds finished
	// failed is the last round that failed (0: none) and failErr its error.
	failed  uint64
	failErr error
}

func newDirSyncer(dir string, syncFn func(string) error) *dirSyncer {
	d := &dirSyncer{dir: dir, syncFn: syncFn}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// syncEntries returns once an fsync of the directory that began after the
// call has ended, with its error.
func (d *dirSyncer) syncEntries() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	need := d.started + 1 // the round under way, if any, began too early
	for d.ended < need {
		if d.running {
			d.cond.Wait()
			continue
		}
		d.running = true
		d.started++
		round := d.started
		d.mu.Unlock()
		err := d.syncFn(d.dir)
		d.mu.Lock()
		d.running = false
		d.ended = round
		if err != nil {
			d.failed, d.failErr = round, err
		}
		d.cond.Broadcast()
	}
	if d.failed >= need {
		return d.failErr
	}
	return nil
}
