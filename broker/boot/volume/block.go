package volume

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/internal/mountpath"
)

// Block is an EBS volume seen as a block device.
//
// Finding it: on Nitro instances every EBS volume is an NVMe device whose
// serial number is the volume id without its dash ("vol0123..."); udev links
// it as /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123..., and the
// serial is also in /sys/block/nvme*/device/serial, which works when udev has
// not run (yet). On older Xen instances the device keeps the attachment's
// device name (/dev/sdf, which the kernel names /dev/xvdf).
//
// Formatting: only a device on which blkid finds no signature at all is
// formatted (XFS), and mkfs.xfs is run without -f so it refuses on its own if
// it sees anything. A device with any other signature (another filesystem, a
// partition table, LVM, LUKS) is refused, never touched.
type Block struct {
	VolumeID   string        // vol-0123456789abcdef0
	DeviceName string        // the attachment's device name (/dev/sdf); used only when the NVMe serial finds nothing
	MountPath  string        // where to mount it: /var/lib/tributary in the image
	Wait       time.Duration // how long to wait for the attachment; DefaultWait when zero
	Logger     *slog.Logger

	// Where the system is. Empty means the real paths; tests point DevDir and
	// SysBlockDir at temporary trees.
	DevDir        string // /dev
	SysBlockDir   string // /sys/block
	MountInfoPath string // /proc/self/mountinfo
}

var _ Volume = (*Block)(nil)

// growThreshold is how much bigger the device must be than the filesystem
// before it is grown. XFS leaves a sliver of a device that does not fill an
// allocation group unused, so "bigger by a few KiB" is not growth; EBS
// volumes grow in whole GiB.
const growThreshold = 64 << 20

// Prepare finds the device, formats it if (and only if) it is blank, mounts
// it at MountPath unless it is already mounted there, and grows the
// filesystem when the device grew.
func (b *Block) Prepare(ctx context.Context) (string, error) {
	logger := loggerOr(b.Logger).With("volume_id", b.VolumeID)
	if b.MountPath == "" {
		return "", errors.New("no mount path configured")
	}
	dev, err := b.waitForDevice(ctx)
	if err != nil {
		return "", err
	}
	logger.Info("found data volume device", "device", dev)

	mounted, err := b.mountedHere(dev)
	if err != nil {
		return "", err
	}
	if mounted {
		logger.Info("data volume is already mounted", "device", dev, "mount_path", b.MountPath)
	} else {
		if err := b.ensureFilesystem(ctx, logger, dev); err != nil {
			return "", err
		}
		if err := os.MkdirAll(b.MountPath, 0o755); err != nil {
			return "", fmt.Errorf("creating mount point: %w", err)
		}
		// noatime: a broker reads its segments constantly; updating access
		// times would turn every read into a write. The volume holds only
		// log data: no device nodes, set-uid or executable files.
		flags := uintptr(unix.MS_NOATIME | unix.MS_NODEV | unix.MS_NOSUID | unix.MS_NOEXEC)
		if err := unix.Mount(dev, b.MountPath, "xfs", flags, ""); err != nil {
			return "", fmt.Errorf("mounting %s (xfs) at %s: %w", dev, b.MountPath, err)
		}
		logger.Info("mounted data volume", "device", dev, "mount_path", b.MountPath)
	}

	if err := b.growIfNeeded(ctx, logger, dev); err != nil {
		return "", err
	}
	return b.MountPath, nil
}

// nvmeSerial is the serial an EBS volume has as an NVMe device.
func nvmeSerial(volumeID string) string { return strings.ReplaceAll(volumeID, "-", "") }

func (b *Block) devDir() string {
	if b.DevDir == "" {
		return "/dev"
	}
	return b.DevDir
}

func (b *Block) sysBlockDir() string {
	if b.SysBlockDir == "" {
		return "/sys/block"
	}
	return b.SysBlockDir
}

func (b *Block) mountInfoPath() string {
	if b.MountInfoPath == "" {
		return "/proc/self/mountinfo"
	}
	return b.MountInfoPath
}

// candidates lists, in order, the places the device is looked for; it is
// also what the not-attached error tells a person.
func (b *Block) candidates() []string {
	serial := nvmeSerial(b.VolumeID)
	c := []string{
		filepath.Join(b.devDir(), "disk", "by-id", "nvme-Amazon_Elastic_Block_Store_"+serial),
		filepath.Join(b.sysBlockDir(), "nvme*", "device", "serial") + " = " + serial,
	}
	if b.DeviceName != "" {
		name := strings.TrimPrefix(b.DeviceName, "/dev/")
		c = append(c, filepath.Join(b.devDir(), name))
		if rest, ok := strings.CutPrefix(name, "sd"); ok {
			c = append(c, filepath.Join(b.devDir(), "xvd"+rest))
		}
	}
	return c
}

func (b *Block) waitForDevice(ctx context.Context) (string, error) {
	var dev string
	err := waitFor(ctx, orDefault(b.Wait), func() (bool, error) {
		d, err := b.findDevice()
		if err != nil {
			return false, err
		}
		dev = d
		return d != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("waiting for volume %s to be attached (looked at %s): %w",
			b.VolumeID, strings.Join(b.candidates(), "; "), err)
	}
	return dev, nil
}

// findDevice returns the device path of the volume, or "" when it is not
// (yet) there.
func (b *Block) findDevice() (string, error) {
	serial := nvmeSerial(b.VolumeID)
	if serial == "" {
		return "", errors.New("no volume id")
	}
	byID := filepath.Join(b.devDir(), "disk", "by-id", "nvme-Amazon_Elastic_Block_Store_"+serial)
	if dev, ok := blockDevice(byID); ok {
		return dev, nil
	}

	serials, _ := filepath.Glob(filepath.Join(b.sysBlockDir(), "*", "device", "serial"))
	for _, path := range serials {
		data, err := os.ReadFile(path)
		if err != nil || strings.TrimSpace(string(data)) != serial {
			continue
		}
		name := filepath.Base(filepath.Dir(filepath.Dir(path)))
		if dev, ok := blockDevice(filepath.Join(b.devDir(), name)); ok {
			return dev, nil
		}
	}

	if b.DeviceName != "" {
		name := strings.TrimPrefix(b.DeviceName, "/dev/")
		names := []string{name}
		if rest, ok := strings.CutPrefix(name, "sd"); ok {
			names = append(names, "xvd"+rest)
		}
		for _, n := range names {
			if dev, ok := blockDevice(filepath.Join(b.devDir(), n)); ok {
				return dev, nil
			}
		}
	}
	return "", nil
}

// blockDevice resolves symlinks and reports whether path is a block device.
func blockDevice(path string) (string, bool) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	fi, err := os.Stat(resolved)
	if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return "", false
	}
	return resolved, true
}

// mountedHere reports whether dev is what is mounted at MountPath. Something
// else mounted there is an error: the broker must not write its log onto a
// filesystem that is not its volume.
func (b *Block) mountedHere(dev string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", dev, err)
	}
	want := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))

	f, err := os.Open(b.mountInfoPath())
	if err != nil {
		return false, fmt.Errorf("reading mount table: %w", err)
	}
	defer f.Close()
	target := filepath.Clean(b.MountPath)
	var found string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: id parent major:minor root mountpoint options ... - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || mountpath.Unescape(fields[4]) != target {
			continue
		}
		found = fields[2] // the last mount on top wins, as the kernel shows it
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("reading mount table: %w", err)
	}
	switch found {
	case "":
		return false, nil
	case want:
		return true, nil
	default:
		return false, fmt.Errorf("%s already has another filesystem mounted (device %s, expected %s = %s); refusing to use it",
			b.MountPath, found, dev, want)
	}
}

// Probe is what blkid found on a device.
type Probe struct {
	Blank  bool   // no signature of any kind
	Type   string // filesystem or other signature type (xfs, ext4, LVM2_member, crypto_LUKS)
	PTType string // partition table type (gpt, dos)
}

// ProbeDevice asks blkid, in low-level probing mode (-p: reads the device,
// not the cache), what is on dev.
func ProbeDevice(ctx context.Context, dev string) (Probe, error) {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-o", "export", dev).Output()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 2:
		// blkid's "nothing found": no filesystem, no partition table, nothing.
		return Probe{Blank: true}, nil
	case errors.As(err, &exitErr):
		// 8 is "ambiguous": more than one signature. Never guess.
		return Probe{}, fmt.Errorf("blkid -p %s exited %d: %s", dev, exitErr.ExitCode(), strings.TrimSpace(string(exitErr.Stderr)))
	default:
		return Probe{}, fmt.Errorf("running blkid (install util-linux): %w", err)
	}
	var p Probe
	for line := range strings.Lines(string(out)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "TYPE":
			p.Type = v
		case "PTTYPE":
			p.PTType = v
		}
	}
	if p.Type == "" && p.PTType == "" {
		return Probe{}, fmt.Errorf("blkid -p %s found a signature it did not name: %q", dev, strings.TrimSpace(string(out)))
	}
	return p, nil
}

func (b *Block) ensureFilesystem(ctx context.Context, logger *slog.Logger, dev string) error {
	probe, err := ProbeDevice(ctx, dev)
	if err != nil {
		return fmt.Errorf("probing %s for a filesystem: %w", dev, err)
	}
	switch {
	case probe.Type == "xfs":
		logger.Info("data volume already has an XFS filesystem: not formatting", "device", dev)
		return nil
	case !probe.Blank:
		what := probe.Type
		if what == "" {
			what = "a " + probe.PTType + " partition table"
		} else {
			what = "a " + what + " signature"
		}
		return fmt.Errorf("%s (volume %s) holds %s, not XFS: refusing to format or mount it; "+
			"attach a blank volume, or move the data to XFS yourself", dev, b.VolumeID, what)
	}

	// blkid knows many signatures, not all. A new EBS volume reads as
	// zeros, so anything else at either end of the device is data that
	// blkid did not recognise, and formatting would destroy it.
	if where, err := nonZeroEnds(dev); err != nil {
		return fmt.Errorf("checking that %s is blank: %w", dev, err)
	} else if where != "" {
		return fmt.Errorf("%s (volume %s) has no signature blkid knows, but its %s is not zeros: "+
			"refusing to format it; inspect it, or wipe it yourself if it is really unused", dev, b.VolumeID, where)
	}

	logger.Info("data volume is blank (first boot): creating an XFS filesystem", "device", dev)
	// No -f: mkfs.xfs then refuses by itself if it finds any existing
	// signature, a second guard behind the blkid probe above.
	cmd := exec.CommandContext(ctx, "mkfs.xfs", "-q", "-L", "tributary", dev)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.xfs %s: %w: %s", dev, err, strings.TrimSpace(string(out)))
	}
	logger.Info("created XFS filesystem", "device", dev)
	return nil
}

// blankCheckBytes is how much of each end of a device must be zeros for it
// to count as blank: partition tables, filesystem and RAID superblocks live there.
const blankCheckBytes = 1 << 20

// nonZeroEnds reads the first and last MiB of dev and names the first one
// that is not all zeros ("" when both are). Opening the device also proves
// the caller may read it: blkid reports "nothing found" for a device it
// cannot read, which must never be taken for blank.
func nonZeroEnds(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	buf := make([]byte, blankCheckBytes)
	for _, end := range []struct {
		name   string
		offset int64
	}{{"first MiB", 0}, {"last MiB", max(size-blankCheckBytes, 0)}} {
		n, err := f.ReadAt(buf, end.offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the %s: %w", end.name, err)
		}
		if !allZero(buf[:n]) {
			return end.name, nil
		}
	}
	return "", nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// xfsDataRe matches xfs_info's data section: "data     =    bsize=4096   blocks=262144, imaxpct=25".
var xfsDataRe = regexp.MustCompile(`(?m)^data\s+=\s+bsize=(\d+)\s+blocks=(\d+)`)

// FilesystemSize returns the size of the XFS filesystem mounted at path (its
// data section, which is what xfs_growfs grows).
func FilesystemSize(ctx context.Context, path string) (int64, error) {
	out, err := exec.CommandContext(ctx, "xfs_info", path).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("xfs_info %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	m := xfsDataRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("xfs_info %s: no data section in %q", path, out)
	}
	bsize, _ := strconv.ParseInt(string(m[1]), 10, 64)
	blocks, _ := strconv.ParseInt(string(m[2]), 10, 64)
	return bsize * blocks, nil
}

// DeviceSize returns the size of a block device in bytes, from sysfs (which
// needs no permission on the device and follows `losetup -c` and EBS
// resizes).
func DeviceSize(dev string) (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", dev, err)
	}
	return deviceNumberSize(st.Rdev)
}

// deviceNumberSize returns the size of the block device with number rdev.
func deviceNumberSize(rdev uint64) (int64, error) {
	path := fmt.Sprintf("/sys/dev/block/%d:%d/size", unix.Major(rdev), unix.Minor(rdev))
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading the size of block device %d:%d: %w", unix.Major(rdev), unix.Minor(rdev), err)
	}
	sectors, err := strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return sectors * 512, nil // sysfs counts 512-byte sectors whatever the device's sector size
}

func (b *Block) growIfNeeded(ctx context.Context, logger *slog.Logger, dev string) error {
	root := os.Geteuid() == 0
	devSize, err := DeviceSize(dev)
	if err == nil {
		if _, err = growFilesystem(ctx, logger, b.MountPath, devSize, root); err == nil || root {
			return err
		}
	}
	if !root {
		// Only the privileged step grows; for an unprivileged run a size it
		// cannot read is no reason to keep the broker down.
		logger.Warn("could not compare the volume and filesystem sizes; growing is left to the privileged step", "error", err)
		return nil
	}
	return err
}

// Grow grows the mounted filesystem online when the device grew (an EBS
// volume modification): the volume companion's check, done while the
// broker writes to it. It needs root.
func (b *Block) Grow(ctx context.Context) (Growth, error) {
	dev, err := b.findDevice()
	if err != nil {
		return Growth{}, err
	}
	if dev == "" {
		return Growth{}, fmt.Errorf("volume %s is not attached (looked at %s)", b.VolumeID, strings.Join(b.candidates(), "; "))
	}
	devSize, err := DeviceSize(dev)
	if err != nil {
		return Growth{}, err
	}
	return growFilesystem(ctx, loggerOr(b.Logger), b.MountPath, devSize, true)
}

// Growth is what a Grow found and did.
type Growth struct {
	DeviceBytes     int64 // the device's size
	FilesystemBytes int64 // the filesystem's size after the check
	GrewFrom        int64 // the filesystem's size before, when it was grown; 0 otherwise
}

// growFilesystem grows the XFS filesystem mounted at mountPath to its
// device's size when the device is more than growThreshold bigger. Without
// root it only notices.
func growFilesystem(ctx context.Context, logger *slog.Logger, mountPath string, devSize int64, root bool) (Growth, error) {
	fsSize, err := FilesystemSize(ctx, mountPath)
	if err != nil {
		return Growth{}, err
	}
	g := Growth{DeviceBytes: devSize, FilesystemBytes: fsSize}
	if devSize-fsSize < growThreshold {
		logger.Debug("filesystem fills the volume: nothing to grow", "device_bytes", devSize, "filesystem_bytes", fsSize)
		return g, nil
	}
	if !root {
		// The image grows the volume in the privileged ExecStartPre step
		// and in its volume companion; an unprivileged run only notices.
		// The broker can still start.
		logger.Warn("volume is bigger than its filesystem but growing needs root; skipping",
			"device_bytes", devSize, "filesystem_bytes", fsSize)
		return g, nil
	}
	logger.Info("volume grew: growing the filesystem", "device_bytes", devSize, "filesystem_bytes", fsSize)
	if out, err := exec.CommandContext(ctx, "xfs_growfs", "-d", mountPath).CombinedOutput(); err != nil {
		return g, fmt.Errorf("xfs_growfs %s: %w: %s", mountPath, err, strings.TrimSpace(string(out)))
	}
	newSize, err := FilesystemSize(ctx, mountPath)
	if err != nil {
		return g, err
	}
	logger.Info("grew the filesystem", "from_bytes", fsSize, "to_bytes", newSize)
	g.GrewFrom, g.FilesystemBytes = fsSize, newSize
	return g, nil
}
