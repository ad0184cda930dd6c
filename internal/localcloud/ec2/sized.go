package ec2

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Sized volumes. A plain volume is a directory: it holds whatever is written to it, and a
// broker on it never runs out of space nor sees its volume's size. With Options.SizedVolumes a
// volume made by CreateVolume is what EBS gives an instance instead: a block device of the
// volume's size (a loop device over a sparse file, <volumes>/<id>.img) holding an XFS
// filesystem, mounted at the volume's directory. Writes past its size fail with ENOSPC, statfs
// (df) reports its size, and ModifyVolume grows the device when the modification reaches
// "optimizing", as EBS does, while the filesystem keeps its size until someone on the instance
// grows it (xfs_growfs), as on EC2. The emulator formats the filesystem when it creates the
// volume (on EC2 the boot agent formats a blank volume at first boot; the local agent is handed
// the mounted directory). Volumes of block device mappings (root volumes) stay directories.
//
// Mounting needs root, losetup (util-linux/mount) and mkfs.xfs (xfsprogs). The mounts live
// while the emulator runs: Close unmounts them and detaches their loop devices, Start mounts
// them again.

// backingFile is the sparse file behind a sized volume.
func (s *Service) backingFile(id string) string { return filepath.Join(s.volumesDir(), id+".img") }

// makeSizedVolume creates the backing file of sizeGiB, formats it and mounts it at the
// volume's directory.
func (s *Service) makeSizedVolume(id string, sizeGiB int) (err error) {
	file := s.backingFile(id)
	if err := os.MkdirAll(s.volumesDir(), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("creating the backing file of %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = s.releaseSizedVolume(id)
			_ = os.Remove(file)
		}
	}()
	terr := f.Truncate(int64(sizeGiB) << 30)
	if cerr := f.Close(); terr == nil {
		terr = cerr
	}
	if terr != nil {
		return fmt.Errorf("sizing the backing file of %s: %w", id, terr)
	}
	dev, err := attachLoop(file)
	if err != nil {
		return err
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-L", "tributary", dev).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.xfs %s for volume %s: %w: %s", dev, id, err, strings.TrimSpace(string(out)))
	}
	return s.mountSizedVolume(id)
}

// mountSizedVolume mounts a sized volume at its directory unless it is mounted there already,
// attaching its backing file to a loop device first when none holds it.
func (s *Service) mountSizedVolume(id string) error {
	dir := s.VolumeDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", id, err)
	}
	if mounted, err := isMountPoint(dir); err != nil || mounted {
		return err
	}
	dev, err := loopOf(s.backingFile(id))
	if err != nil {
		return err
	}
	if dev == "" {
		if dev, err = attachLoop(s.backingFile(id)); err != nil {
			return err
		}
	}
	if err := unix.Mount(dev, dir, "xfs", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mounting volume %s (%s) at %s: %w", id, dev, dir, err)
	}
	return nil
}

// growSizedVolume extends the backing file to sizeGiB and has the loop device re-read its
// size: the device grows under a mounted filesystem, as an EBS volume's NVMe device does.
func (s *Service) growSizedVolume(id string, sizeGiB int) error {
	file := s.backingFile(id)
	if err := os.Truncate(file, int64(sizeGiB)<<30); err != nil {
		return fmt.Errorf("growing the backing file of %s: %w", id, err)
	}
	dev, err := loopOf(file)
	if err != nil || dev == "" {
		return err // not attached: the next mount sees the new size
	}
	if out, err := exec.Command("losetup", "-c", dev).CombinedOutput(); err != nil {
		return fmt.Errorf("losetup -c %s for volume %s: %w: %s", dev, id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// releaseSizedVolume unmounts a sized volume and detaches its loop device; its data stays in
// the backing file.
func (s *Service) releaseSizedVolume(id string) error {
	dir := s.VolumeDir(id)
	var errs []error
	if mounted, err := isMountPoint(dir); err != nil {
		errs = append(errs, err)
	} else if mounted {
		if err := unix.Unmount(dir, 0); err != nil {
			// Something still has a file open (an instance process being killed); detach
			// the mount now and let the kernel finish when it is let go.
			if err2 := unix.Unmount(dir, unix.MNT_DETACH); err2 != nil {
				errs = append(errs, fmt.Errorf("unmounting volume %s at %s: %w", id, dir, err))
			}
		}
	}
	dev, err := loopOf(s.backingFile(id))
	if err != nil {
		errs = append(errs, err)
	} else if dev != "" {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("losetup -d %s for volume %s: %w: %s", dev, id, err, strings.TrimSpace(string(out))))
		}
	}
	return errors.Join(errs...)
}

// removeSizedVolume releases a sized volume and deletes its data.
func (s *Service) removeSizedVolume(id string) error {
	err := s.releaseSizedVolume(id)
	if rerr := os.Remove(s.backingFile(id)); rerr != nil && !os.IsNotExist(rerr) {
		err = errors.Join(err, rerr)
	}
	return err
}

// attachLoop attaches file to a free loop device and returns the device.
func attachLoop(file string) (string, error) {
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup -f %s: %w: %s (sized volumes need root and loop devices)", file, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// loopOf returns the loop device that holds file, or "".
func loopOf(file string) (string, error) {
	out, err := exec.Command("losetup", "-n", "-O", "NAME", "-j", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup -j %s: %w: %s", file, err, strings.TrimSpace(string(out)))
	}
	dev, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(dev), nil
}

// isMountPoint reports whether dir is the root of a mount (its device differs from its
// parent's).
func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(dir), err)
	}
	return st.Dev != parent.Dev, nil
}
