package storage

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SyncMethod is how a sync round makes data durable (log.flush.sync).
type SyncMethod string

const (
	// SyncAuto (the default) uses SyncFS when the data directory is on a
	// file system of its own (not the root file system's: the product's
	// data volume) and the kernel reports writeback errors to syncfs
	// (Linux 5.8 or later); SyncFdatasync otherwise.
	SyncAuto SyncMethod = "auto"
	// SyncFdatasync: a round fdatasyncs each file its partitions wrote,
	// concurrently.
	SyncFdatasync SyncMethod = "fdatasync"
	// SyncFS: a round makes the data directory's whole file system durable
	// with one syncfs(2). On a volume only the broker writes to, that is
	// the same data as the files' fdatasyncs, in one journal commit and one
	// device flush instead of one of each per file.
	SyncFS SyncMethod = "syncfs"
)

// ParseSyncMethod parses a log.flush.sync value; "" is SyncAuto.
func ParseSyncMethod(s string) (SyncMethod, error) {
	switch m := SyncMethod(strings.ToLower(strings.TrimSpace(s))); m {
	case "", SyncAuto:
		return SyncAuto, nil
	case SyncFdatasync, SyncFS:
		return m, nil
	}
	return "", fmt.Errorf("sync method %q: want auto, fdatasync or syncfs", s)
}

// syncfsReportsErrors says whether syncfs(2) returns writeback errors:
// before Linux 5.8 it returned 0 whatever happened to the data, which
// would acknowledge writes the disk refused.
func syncfsReportsErrors() (bool, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false, fmt.Errorf("uname: %w", err)
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8), nil
}

// kernelAtLeast compares a kernel release ("6.1.0-18-amd64") with
// major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err := strconv.Atoi(parts[0])
	if err != nil {
		return false
	}
	minStr := parts[1]
	if i := strings.IndexFunc(minStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minStr = minStr[:i]
	}
	mnr, err := strconv.Atoi(minStr)
	if err != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

// ownFileSystem says whether dir is on a file system other than the one
// holding root: a data volume of its own, whose syncfs flushes the
// broker's writes and nobody else's.
func ownFileSystem(dir, root string) (bool, error) {
	var d, r unix.Stat_t
	if err := unix.Stat(dir, &d); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Stat(root, &r); err != nil {
		return false, fmt.Errorf("stat %s: %w", root, err)
	}
	return d.Dev != r.Dev, nil
}

// chooseSyncMethod resolves m for the data directory dir: SyncAuto becomes
// SyncFS or SyncFdatasync, and SyncFS is refused on a kernel whose syncfs
// does not report writeback errors.
func chooseSyncMethod(m SyncMethod, dir string) (SyncMethod, error) {
	if m == SyncFdatasync {
		return SyncFdatasync, nil
	}
	reports, err := syncfsReportsErrors()
	if err != nil {
		return "", err
	}
	switch m {
	case SyncFS:
		if !reports {
			return "", fmt.Errorf("log.flush.sync=syncfs needs Linux 5.8 or later, whose syncfs reports writeback errors; use fdatasync")
		}
		return SyncFS, nil
	}
	own, err := ownFileSystem(dir, "/")
	if err != nil {
		return "", err
	}
	if own && reports {
		return SyncFS, nil
	}
	return SyncFdatasync, nil
}

// syncfs makes the file system holding f durable and reports the
// writeback errors it saw since the last call on f's descriptor.
func syncfs(f *os.File) error { return syncCall(f, "syncfs", unix.Syncfs) }
