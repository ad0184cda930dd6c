// Package volume prepares the broker's data volume at boot: it finds the
// volume, makes sure it holds a filesystem (formatting only a blank device),
// mounts it and grows it when the volume grew.
//
// There are two implementations of one interface. Block is the real thing on
// EC2: an EBS volume that appears as a block device. Directory is the local
// cloud's volume: a directory named by the volume id that is already
// "mounted". The boot agent only ever sees Volume, so the local cloud runs the
// same agent as AWS.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Volume is a data volume the broker keeps its log on.
type Volume interface {
	// Prepare waits for the volume, makes it usable and returns the directory
	// where it is mounted. It is idempotent: calling it on every boot (or
	// twice in one boot) leaves the data as it was.
	Prepare(ctx context.Context) (mountPath string, err error)
}

// Grower is a volume whose filesystem can grow online, while the broker
// writes to it, once the volume under it grew.
type Grower interface {
	Grow(ctx context.Context) (Growth, error)
}

var (
	_ Grower = (*Block)(nil)
	_ Grower = (*Directory)(nil)
)

// DefaultWait is how long Prepare waits for a volume to be attached.
// EBS attachments usually take seconds; a volume still detaching from a
// terminated instance can take a few minutes.
const DefaultWait = 5 * time.Minute

// pollInterval is how often the volume's presence is checked while waiting.
const pollInterval = 250 * time.Millisecond

// Directory is a volume that is a directory: the local cloud's EBS volume,
// `<Root>/<VolumeID>`, which the local cloud creates when it attaches the
// volume. Nothing is formatted or mounted.
type Directory struct {
	Root     string        // $TRIBUTARY_VOLUME_DIR
	VolumeID string        // vol-...
	Wait     time.Duration // how long to wait for the directory; DefaultWait when zero
	Logger   *slog.Logger
}

var _ Volume = (*Directory)(nil)

// Prepare waits until the volume's directory exists and returns it.
func (d *Directory) Prepare(ctx context.Context) (string, error) {
	if d.VolumeID == "" || d.VolumeID != filepath.Base(d.VolumeID) || d.VolumeID == "." || d.VolumeID == ".." {
		return "", fmt.Errorf("volume id %q is not a plain name", d.VolumeID)
	}
	path := filepath.Join(d.Root, d.VolumeID)
	logger := loggerOr(d.Logger)
	err := waitFor(ctx, orDefault(d.Wait), func() (bool, error) {
		fi, err := os.Stat(path)
		switch {
		case err == nil && fi.IsDir():
			return true, nil
		case err == nil:
			return false, fmt.Errorf("%s exists but is not a directory", path)
		case os.IsNotExist(err):
			return false, nil
		default:
			return false, err
		}
	})
	if err != nil {
		return "", fmt.Errorf("waiting for volume %s at %s: %w", d.VolumeID, path, err)
	}
	logger.Info("data volume is a directory (local cloud): nothing to format or mount", "volume_id", d.VolumeID, "path", path)
	return path, nil
}

// Path is where the volume's directory is.
func (d *Directory) Path() string { return filepath.Join(d.Root, d.VolumeID) }

// Grow grows the filesystem of a directory volume that is the mount point of
// an XFS filesystem on a block device (the local cloud's sized volumes,
// which grow as EBS volumes do) when its device grew. A plain directory has
// no size of its own: nothing to grow.
func (d *Directory) Grow(ctx context.Context) (Growth, error) {
	path, err := filepath.EvalSymlinks(d.Path())
	if err != nil {
		return Growth{}, fmt.Errorf("finding volume %s: %w", d.VolumeID, err)
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Growth{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if err := unix.Stat(filepath.Dir(path), &parent); err != nil {
		return Growth{}, fmt.Errorf("stat %s: %w", filepath.Dir(path), err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return Growth{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	if st.Dev == parent.Dev || fs.Type != unix.XFS_SUPER_MAGIC {
		return Growth{}, nil
	}
	devSize, err := deviceNumberSize(st.Dev)
	if err != nil {
		return Growth{}, err
	}
	return growFilesystem(ctx, loggerOr(d.Logger), path, devSize, os.Geteuid() == 0)
}

// Usage is a filesystem's space, as df shows it.
type Usage struct {
	Size, Used, Avail uint64 // bytes; Avail is what unprivileged writers can still use
}

// UsedPercent is df's Use%: used / (used + available), the broker's
// KafkaDataLogsDiskUsed (broker/metrics computes it the same way). Blocks
// reserved for root count as neither, so a full disk reads 100%.
func (u Usage) UsedPercent() float64 {
	if u.Used+u.Avail == 0 {
		return 0
	}
	return 100 * float64(u.Used) / float64(u.Used+u.Avail)
}

// DiskUsage reads the usage of the filesystem holding path.
func DiskUsage(path string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return Usage{Size: st.Blocks * bs, Used: (st.Blocks - st.Bfree) * bs, Avail: st.Bavail * bs}, nil
}

// ErrNotAttached is returned (wrapped) when a volume did not appear in time.
var ErrNotAttached = errors.New("volume not attached")

// waitFor polls check until it reports done, fails, or wait elapses.
func waitFor(ctx context.Context, wait time.Duration, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w after %s: is it attached to this instance?", ErrNotAttached, wait)
			}
			return fmt.Errorf("%w: %w", ErrNotAttached, ctx.Err())
		case <-ticker.C:
		}
	}
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultWait
	}
	return d
}

func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
