package chaos

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/internal/mountpath"
)

// A node's disk (ClusterConfig.DiskSize) is a tmpfs of that size mounted
// on the node's directory, holding its data directory (the logs and the
// Raft store): a file system the run can fill without filling the
// machine's. tmpfs outlives the broker's process, so kill -9 loses
// nothing there that the broker had written; its fsync is a no-op, so a
// full disk fails the broker's write(2) with ENOSPC, which is where a
// full ext4 or xfs volume fails it too (space is reserved at write, not
// at writeback). The mount's source names the run's pid
// (tributary-chaos-<pid>-n<node>), so that a run can unmount what a run
// that crashed left mounted: its pid is gone.
//
// The disk-full fault fills a node's disk with a filler file written from
// the run's process until write(2) says ENOSPC, and the heal removes it.

var diskSource = regexp.MustCompile(`^` + netnsPrefix + `(\d+)-n\d+$`)

// fillerName is the file that fills a node's disk; it sits beside the
// data directory, not in it, so the broker never opens it.
const fillerName = "chaos-filler"

// DiskSupport says why this machine cannot give brokers disks of their
// own (nil when it can): mounting a tmpfs needs root.
func DiskSupport() error {
	if os.Geteuid() != 0 {
		return errors.New("mounting a tmpfs for each broker's data needs root")
	}
	return nil
}

// mountDisk mounts a tmpfs of size bytes at dir for node id.
func mountDisk(dir string, id int32, size int64) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	src := fmt.Sprintf("%s%d-n%d", netnsPrefix, os.Getpid(), id)
	if err := unix.Mount(src, dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0750", size)); err != nil {
		return fmt.Errorf("mounting node %d's disk (tmpfs of %d bytes) on %s: %w", id, size, dir, err)
	}
	return nil
}

// unmountDisk unmounts dir; a mount still busy (a broker's mount
// namespace holding it) is detached, so it goes with its last user.
func unmountDisk(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not mounted
		return fmt.Errorf("unmounting %s: %w", dir, err)
	}
	return nil
}

// RemoveStaleDisks unmounts the disks of runs whose process is gone.
func RemoveStaleDisks() {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	for _, m := range staleMounts(f, os.Getpid()) {
		_ = unmountDisk(m)
	}
}

// staleMounts lists the mount points of mountinfo whose source is a
// run's disk and whose run's process is gone.
func staleMounts(mountinfo io.Reader, self int) []string {
	var out []string
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 || qf[0] != "tmpfs" {
			continue
		}
		m := diskSource.FindStringSubmatch(qf[1])
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == self {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			out = append(out, mountpath.Unescape(pf[4]))
		}
	}
	return out
}

// fillDisk writes a filler file in dir until the file system has no
// space left, and returns how many bytes it wrote. Running out of space
// is the point; any other error is returned.
func fillDisk(dir string) (int64, error) {
	f, err := os.OpenFile(filepath.Join(dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return 0, nil
		}
		return 0, fmt.Errorf("filling %s: %w", dir, err)
	}
	defer f.Close()
	var written int64
	// Large writes first, then smaller ones for the last partial blocks:
	// the broker must not find a page free.
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		buf := make([]byte, chunk)
		for {
			n, err := f.Write(buf)
			written += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return written, fmt.Errorf("filling %s: %w", dir, err)
			}
		}
	}
	return written, nil
}

// freeDisk removes the filler file; one that is not there is fine.
func freeDisk(dir string) error {
	err := os.Remove(filepath.Join(dir, fillerName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// diskFree is the space left on dir's file system, in bytes.
func diskFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}
