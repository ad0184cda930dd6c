package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// probeSize is what ProbeSpace writes: a few of a partition's appends
// and an index entry's worth of new blocks, so that a probe that passes
// leaves room for the appends that follow it.
const probeSize = 1 << 20

// probeName is the probe's file in the data directory; Open leaves it
// alone (it is no partition directory) and the next probe replaces it.
const probeName = ".space-probe"

// ProbeSpace reports whether the data directory's file system takes
// writes again after a write failed for lack of space: it writes
// probeSize bytes to a file, fdatasyncs it and removes it. The error is
// the write's (NoSpace tells a still-full disk), nil when it took them.
func (st *Store) ProbeSpace() error {
	path := filepath.Join(st.dir, probeName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%w: probing free space: %w", ErrStorage, err)
	}
	_, werr := f.Write(make([]byte, probeSize))
	if werr == nil {
		werr = fdatasync(f)
	}
	cerr := f.Close()
	rerr := os.Remove(path)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		st.del.noteWriteError(err)
		return fmt.Errorf("%w: probing free space: %w", ErrStorage, err)
	}
	return nil
}
