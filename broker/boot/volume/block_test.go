package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/internal/testenv"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// requireLoopTools ends the test (testenv.Missing) unless it can make loop
// devices and XFS filesystems, and run the further tools named.
func requireLoopTools(t *testing.T, tools ...string) {
	t.Helper()
	testenv.Root(t, "attaching loop devices and mounting")
	debianPackage := map[string]string{"losetup": "mount", "blkid": "util-linux", "mkfs.ext4": "e2fsprogs"}
	for _, tool := range append([]string{"losetup", "blkid", "mkfs.xfs", "xfs_info", "xfs_growfs"}, tools...) {
		pkg, ok := debianPackage[tool]
		if !ok {
			pkg = "xfsprogs"
		}
		testenv.Tool(t, tool, pkg)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testenv.Missing(t, "loop devices are unavailable here (/dev/loop-control missing)")
	}
}

// loopDevice attaches a sparse file of size bytes as a loop device and
// detaches it (unmounting anything on it first) when the test ends.
func loopDevice(t *testing.T, size int64) (dev, backing string) {
	t.Helper()
	backing = filepath.Join(t.TempDir(), "volume.img")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", backing).CombinedOutput()
	if err != nil {
		testenv.Missing(t, "loop devices are unavailable here: losetup: %v: %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("detaching %s: %v: %s", dev, err, out)
		}
	})
	return dev, backing
}

// unmountOnCleanup unmounts path when the test ends (registered after the
// loop device, so it runs before the detach).
func unmountOnCleanup(t *testing.T, path string) {
	t.Helper()
	t.Cleanup(func() { unmountIfMounted(t, path) })
}

func unmountIfMounted(t *testing.T, path string) {
	t.Helper()
	if err := unix.Unmount(path, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		t.Errorf("unmounting %s: %v\n%s", path, err, holders(path))
	}
}

// deviceState describes, for a failure message, what the machine says
// about dev and mountPath: the loop device's backing file and what is
// mounted at either. A test that failed once under load and not on rerun
// can then say whether its device or mount point was shared.
func deviceState(dev, mountPath string) string {
	var b strings.Builder
	out, err := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE,AUTOCLEAR", dev).CombinedOutput()
	fmt.Fprintf(&b, "losetup %s: %s (%v)\n", dev, strings.TrimSpace(string(out)), err)
	var st unix.Stat_t
	devNum := "?"
	if unix.Stat(dev, &st) == nil {
		devNum = fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		fmt.Fprintf(&b, "mountinfo: %v\n", err)
	}
	for line := range strings.Lines(string(info)) {
		if f := strings.Fields(line); len(f) >= 5 && (f[2] == devNum || strings.HasPrefix(f[4], mountPath)) {
			fmt.Fprintf(&b, "mounted (%s): %s", devNum, line)
		}
	}
	b.WriteString(holders(mountPath))
	return b.String()
}

// holders names the processes whose working directory, root or open
// files are under path: what makes an unmount fail with EBUSY.
func holders(path string) string {
	var b strings.Builder
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		links := []string{filepath.Join(proc, "cwd"), filepath.Join(proc, "root")}
		fds, _ := filepath.Glob(filepath.Join(proc, "fd", "*"))
		for _, l := range append(links, fds...) {
			target, err := os.Readlink(l)
			if err != nil || (target != path && !strings.HasPrefix(target, path+"/")) {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(proc, "comm"))
			fmt.Fprintf(&b, "held by pid %s (%s): %s -> %s\n", filepath.Base(proc), strings.TrimSpace(string(comm)), l, target)
		}
	}
	if b.Len() == 0 {
		return "no process has a directory or file open under " + path + "\n"
	}
	return b.String()
}

// fakeByID makes a /dev stand-in whose disk/by-id has the Nitro link for
// volumeID pointing at dev, as udev makes it on an EC2 instance.
func fakeByID(t *testing.T, volumeID, dev string) string {
	t.Helper()
	devDir := t.TempDir()
	byID := filepath.Join(devDir, "disk", "by-id")
	if err := os.MkdirAll(byID, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(byID, "nvme-Amazon_Elastic_Block_Store_"+nvmeSerial(volumeID))
	if err := os.Symlink(dev, link); err != nil {
		t.Fatal(err)
	}
	return devDir
}

func TestBlockFormatsOnceMountsAndGrows(t *testing.T) {
	requireLoopTools(t)
	const volumeID = "vol-0123456789abcdef0"
	dev, backing := loopDevice(t, 400<<20)
	mountPath := filepath.Join(t.TempDir(), "tributary")
	unmountOnCleanup(t, mountPath)
	ctx := t.Context()

	vol := &Block{
		VolumeID: volumeID, MountPath: mountPath, Wait: 5 * time.Second, Logger: quietLogger(),
		DevDir: fakeByID(t, volumeID, dev), SysBlockDir: t.TempDir(),
	}

	// First boot: blank device -> formatted and mounted.
	got, err := vol.Prepare(ctx)
	if err != nil {
		t.Fatalf("first boot: %v\n%s", err, deviceState(dev, mountPath))
	}
	if got != mountPath {
		t.Fatalf("mount path = %q, want %q", got, mountPath)
	}
	probe, err := ProbeDevice(ctx, dev)
	if err != nil || probe.Type != "xfs" {
		t.Fatalf("after first boot the device holds %+v (%v), want xfs\n%s", probe, err, deviceState(dev, mountPath))
	}
	uuid := fsUUID(t, dev)
	var st unix.Statfs_t
	if err := unix.Statfs(mountPath, &st); err != nil {
		t.Fatal(err)
	}
	for flag, name := range map[int64]string{unix.ST_NOATIME: "noatime", unix.ST_NODEV: "nodev", unix.ST_NOSUID: "nosuid", unix.ST_NOEXEC: "noexec"} {
		if st.Flags&flag == 0 {
			t.Errorf("the volume is mounted without %s", name)
		}
	}
	marker := filepath.Join(mountPath, "data", "marker")
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Same boot again (service restart): already mounted, nothing changes.
	if _, err := vol.Prepare(ctx); err != nil {
		t.Fatalf("second Prepare while mounted: %v\n%s", err, deviceState(dev, mountPath))
	}

	// Reboot: unmounted, then Prepare must mount WITHOUT formatting.
	unmountIfMounted(t, mountPath)
	if _, err := vol.Prepare(ctx); err != nil {
		t.Fatalf("second boot: %v\n%s", err, deviceState(dev, mountPath))
	}
	if got := fsUUID(t, dev); got != uuid {
		t.Fatalf("filesystem UUID changed from %s to %s: the volume was reformatted\n%s", uuid, got, deviceState(dev, mountPath))
	}
	if data, err := os.ReadFile(marker); err != nil || string(data) != "kept" {
		t.Fatalf("data after second boot = %q, %v; want %q", data, err, "kept")
	}

	// The volume grows (as an EBS ModifyVolume does) and the next boot grows the filesystem.
	before, err := FilesystemSize(ctx, mountPath)
	if err != nil {
		t.Fatal(err)
	}
	unmountIfMounted(t, mountPath)
	if err := os.Truncate(backing, 800<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", dev).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s\n%s", err, out, deviceState(dev, mountPath))
	}
	if _, err := vol.Prepare(ctx); err != nil {
		t.Fatalf("boot after growth: %v\n%s", err, deviceState(dev, mountPath))
	}
	after, err := FilesystemSize(ctx, mountPath)
	if err != nil {
		t.Fatal(err)
	}
	if after < before+300<<20 {
		t.Fatalf("filesystem is %d bytes after the volume grew from 400 to 800 MiB (was %d): not grown", after, before)
	}
	if got := fsUUID(t, dev); got != uuid {
		t.Fatalf("filesystem UUID changed while growing: %s -> %s", uuid, got)
	}
	if data, err := os.ReadFile(marker); err != nil || string(data) != "kept" {
		t.Fatalf("data after growth = %q, %v; want %q", data, err, "kept")
	}
}

func fsUUID(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command("blkid", "-p", "-s", "UUID", "-o", "value", dev).Output()
	if err != nil {
		t.Fatalf("blkid %s: %v", dev, err)
	}
	return strings.TrimSpace(string(out))
}

func TestBlockNeverFormatsAForeignFilesystem(t *testing.T) {
	requireLoopTools(t, "mkfs.ext4")
	const volumeID = "vol-0fedcba9876543210"
	dev, _ := loopDevice(t, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mountPath := filepath.Join(t.TempDir(), "tributary")
	unmountOnCleanup(t, mountPath)
	vol := &Block{
		VolumeID: volumeID, MountPath: mountPath, Wait: 5 * time.Second, Logger: quietLogger(),
		DevDir: fakeByID(t, volumeID, dev), SysBlockDir: t.TempDir(),
	}
	_, err := vol.Prepare(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ext4") || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Prepare on an ext4 volume: err = %v, want a refusal naming ext4", err)
	}
	if probe, err := ProbeDevice(t.Context(), dev); err != nil || probe.Type != "ext4" {
		t.Fatalf("the ext4 filesystem was touched: now %+v (%v)", probe, err)
	}
}

// someBlockDevice returns a block device node that exists on this machine,
// for finder tests that only stat it.
func someBlockDevice(t *testing.T) string {
	t.Helper()
	candidates, _ := filepath.Glob("/dev/loop[0-9]*")
	for _, c := range candidates {
		if dev, ok := blockDevice(c); ok {
			return dev
		}
	}
	testenv.Missing(t, "no block device node (/dev/loopN) on this machine to point the finder at")
	return ""
}

func TestBlockFindsDevice(t *testing.T) {
	const volumeID = "vol-0aaaabbbbccccdddd"
	dev := someBlockDevice(t)
	name := filepath.Base(dev)

	sysWithSerial := func(t *testing.T, serial string) string {
		sys := t.TempDir()
		dir := filepath.Join(sys, name, "device")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The kernel pads NVMe serials with spaces.
		if err := os.WriteFile(filepath.Join(dir, "serial"), []byte(serial+"        \n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return sys
	}
	devWithName := func(t *testing.T, link string) string {
		d := t.TempDir()
		if err := os.Symlink(dev, filepath.Join(d, link)); err != nil {
			t.Fatal(err)
		}
		return d
	}

	tests := []struct {
		name       string
		devDir     func(t *testing.T) string
		sysDir     func(t *testing.T) string
		deviceName string
		want       string
	}{
		{"nitro by-id link", func(t *testing.T) string { return fakeByID(t, volumeID, dev) }, func(t *testing.T) string { return t.TempDir() }, "", dev},
		{"nitro sysfs serial without udev", func(*testing.T) string { return "/dev" }, func(t *testing.T) string { return sysWithSerial(t, nvmeSerial(volumeID)) }, "", dev},
		{"another volume's serial", func(*testing.T) string { return "/dev" }, func(t *testing.T) string { return sysWithSerial(t, "vol0999999999999999") }, "", ""},
		{"xen device name as given", func(t *testing.T) string { return devWithName(t, "sdf") }, func(t *testing.T) string { return t.TempDir() }, "/dev/sdf", dev},
		{"xen sdf renamed xvdf", func(t *testing.T) string { return devWithName(t, "xvdf") }, func(t *testing.T) string { return t.TempDir() }, "/dev/sdf", dev},
		{"nothing attached", func(t *testing.T) string { return t.TempDir() }, func(t *testing.T) string { return t.TempDir() }, "/dev/sdf", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Block{VolumeID: volumeID, DeviceName: tt.deviceName, DevDir: tt.devDir(t), SysBlockDir: tt.sysDir(t)}
			got, err := b.findDevice()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("findDevice() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBlockMissingVolumeNamesWhereItLooked(t *testing.T) {
	b := &Block{
		VolumeID: "vol-0123456789abcdef0", DeviceName: "/dev/sdf", MountPath: t.TempDir(),
		Wait: 300 * time.Millisecond, Logger: quietLogger(), DevDir: t.TempDir(), SysBlockDir: t.TempDir(),
	}
	start := time.Now()
	_, err := b.Prepare(t.Context())
	if !errors.Is(err, ErrNotAttached) {
		t.Fatalf("err = %v, want ErrNotAttached", err)
	}
	for _, want := range []string{"vol-0123456789abcdef0", "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0", "xvdf", "300ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("gave up after %s, want about 300ms", elapsed)
	}
}

func TestBlockRefusesAnotherFilesystemOnTheMountPath(t *testing.T) {
	const volumeID = "vol-0aaaabbbbccccdddd"
	dev := someBlockDevice(t)
	mountPath := filepath.Join(t.TempDir(), "my data") // a space, escaped as \040 in mountinfo
	mountInfo := filepath.Join(t.TempDir(), "mountinfo")
	line := fmt.Sprintf("36 25 253:99 / %s rw,noatime shared:1 - xfs /dev/other rw\n", strings.ReplaceAll(mountPath, " ", `\040`))
	if err := os.WriteFile(mountInfo, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Block{
		VolumeID: volumeID, MountPath: mountPath, Wait: time.Second, Logger: quietLogger(),
		DevDir: fakeByID(t, volumeID, dev), SysBlockDir: t.TempDir(), MountInfoPath: mountInfo,
	}
	_, err := b.Prepare(t.Context())
	if err == nil || !strings.Contains(err.Error(), "another filesystem mounted") {
		t.Fatalf("err = %v, want a refusal because 253:99 is mounted there", err)
	}
}

func TestDirectoryWaitsForTheVolume(t *testing.T) {
	root := t.TempDir()
	const volumeID = "vol-0123456789abcdef0"
	go func() {
		time.Sleep(300 * time.Millisecond) // the local cloud attaching the volume a moment later
		_ = os.Mkdir(filepath.Join(root, volumeID), 0o755)
	}()
	d := &Directory{Root: root, VolumeID: volumeID, Wait: 10 * time.Second, Logger: quietLogger()}
	got, err := d.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, volumeID); got != want {
		t.Fatalf("Prepare() = %q, want %q", got, want)
	}
}

func TestDirectoryErrors(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "vol-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		volumeID string
		want     string
	}{
		{"vol-missing", "volume not attached after 200ms"},
		{"vol-file", "not a directory"},
		{"../etc", "not a plain name"},
		{"", "not a plain name"},
	}
	for _, tt := range tests {
		t.Run(tt.volumeID, func(t *testing.T) {
			d := &Directory{Root: root, VolumeID: tt.volumeID, Wait: 200 * time.Millisecond, Logger: quietLogger()}
			_, err := d.Prepare(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestBlockNeverFormatsUnrecognisedData(t *testing.T) {
	requireLoopTools(t)
	const volumeID = "vol-0abcabcabcabcabca"
	dev, backing := loopDevice(t, 64<<20)
	// Bytes blkid has no signature for, in the last MiB: an unknown
	// filesystem, or data someone wrote straight to the device.
	f, err := os.OpenFile(backing, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("precious bytes"), 64<<20-4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if probe, err := ProbeDevice(t.Context(), dev); err != nil || !probe.Blank {
		t.Fatalf("blkid sees %+v (%v): the test needs data blkid does not recognise", probe, err)
	}
	mountPath := filepath.Join(t.TempDir(), "tributary")
	unmountOnCleanup(t, mountPath)
	vol := &Block{
		VolumeID: volumeID, MountPath: mountPath, Wait: 5 * time.Second, Logger: quietLogger(),
		DevDir: fakeByID(t, volumeID, dev), SysBlockDir: t.TempDir(),
	}
	_, err = vol.Prepare(t.Context())
	if err == nil || !strings.Contains(err.Error(), "last MiB is not zeros") {
		t.Fatalf("Prepare on a device with unrecognised data: err = %v, want a refusal", err)
	}
	data, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data[len(data)-4096:]), "precious bytes") {
		t.Fatal("the data was overwritten")
	}
}

func TestNonZeroEnds(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, size int64, at int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		if at >= 0 {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{1}, at); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"zeros", mk("zeros", 8<<20, -1), ""},
		{"first MiB", mk("head", 8<<20, 512), "first MiB"},
		{"last MiB", mk("tail", 8<<20, 8<<20-1), "last MiB"},
		{"middle is not checked", mk("middle", 8<<20, 4<<20), ""},
		{"smaller than a MiB", mk("small", 4096, 100), "first MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := nonZeroEnds(tt.path)
			if err != nil || got != tt.want {
				t.Fatalf("nonZeroEnds = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := nonZeroEnds(filepath.Join(dir, "absent")); err == nil {
		t.Error("a device that cannot be opened passed as blank")
	}
}

// TestBlockGrowsOnlineWhileMounted is an EBS volume modified under a running
// broker: the device grows while the filesystem is mounted and in use, and
// Grow (the volume companion's check) grows the filesystem at once, without
// an unmount, keeping the data.
func TestBlockGrowsOnlineWhileMounted(t *testing.T) {
	requireLoopTools(t)
	const volumeID = "vol-0bbbbccccddddeeee"
	dev, backing := loopDevice(t, 400<<20)
	mountPath := filepath.Join(t.TempDir(), "tributary")
	unmountOnCleanup(t, mountPath)
	ctx := t.Context()
	vol := &Block{
		VolumeID: volumeID, MountPath: mountPath, Wait: 5 * time.Second, Logger: quietLogger(),
		DevDir: fakeByID(t, volumeID, dev), SysBlockDir: t.TempDir(),
	}
	if _, err := vol.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	// A file held open, as the broker holds its active segment.
	f, err := os.Create(filepath.Join(mountPath, "segment.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("written before the volume grew\n"); err != nil {
		t.Fatal(err)
	}
	if g, err := vol.Grow(ctx); err != nil || g.GrewFrom != 0 {
		t.Fatalf("Grow before the volume grew: %+v, %v; want nothing done", g, err)
	}
	before, err := FilesystemSize(ctx, mountPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, 800<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", dev).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	g, err := vol.Grow(ctx)
	if err != nil {
		t.Fatalf("Grow: %v", err)
	}
	if g.GrewFrom != before || g.FilesystemBytes < before+300<<20 || g.DeviceBytes != 800<<20 {
		t.Fatalf("Grow = %+v; want the %d-byte filesystem grown to fill the 800 MiB device", g, before)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mountPath, &st); err != nil {
		t.Fatal(err)
	}
	if size := int64(st.Blocks) * st.Bsize; size < before+300<<20 {
		t.Fatalf("statfs sees %d bytes after the online grow", size)
	}
	if _, err := f.WriteString("and after\n"); err != nil {
		t.Fatalf("writing to the open file after the grow: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(mountPath, "segment.log")); err != nil || string(data) != "written before the volume grew\nand after\n" {
		t.Fatalf("file after the grow: %q, %v", data, err)
	}
}

// TestDirectoryGrows covers the local cloud's volumes: a plain directory has
// no size of its own and nothing to grow; a directory that is the mount
// point of an XFS filesystem on a loop device (a sized volume) grows with
// its device, as a Block does.
func TestDirectoryGrows(t *testing.T) {
	plain := &Directory{Root: t.TempDir(), VolumeID: "vol-0plain", Logger: quietLogger()}
	if err := os.Mkdir(plain.Path(), 0o755); err != nil {
		t.Fatal(err)
	}
	if g, err := plain.Grow(t.Context()); err != nil || g != (Growth{}) {
		t.Fatalf("Grow of a plain directory: %+v, %v; want nothing", g, err)
	}

	requireLoopTools(t)
	dev, backing := loopDevice(t, 400<<20)
	if out, err := exec.Command("mkfs.xfs", "-q", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v: %s", err, out)
	}
	root := t.TempDir()
	d := &Directory{Root: root, VolumeID: "vol-0sized", Logger: quietLogger()}
	if err := os.Mkdir(d.Path(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev, d.Path(), "xfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	unmountOnCleanup(t, d.Path())
	before, err := FilesystemSize(t.Context(), d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, 800<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", dev).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	g, err := d.Grow(t.Context())
	if err != nil || g.GrewFrom != before || g.FilesystemBytes < before+300<<20 {
		t.Fatalf("Grow of a sized directory volume: %+v, %v; want it grown from %d bytes", g, err, before)
	}
}

// TestHoldersNamesTheOpenFile: the EBUSY diagnosis of an unmount names
// this process holding a file open under the path, and nothing for a
// path nothing holds.
func TestHoldersNamesTheOpenFile(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := holders(dir)
	if want := fmt.Sprintf("held by pid %d ", os.Getpid()); !strings.Contains(got, want) || !strings.Contains(got, filepath.Join(dir, "open")) {
		t.Fatalf("holders(%s) = %q, want it to name pid %d and the open file", dir, got, os.Getpid())
	}
	if got := holders(dir + "-other"); !strings.HasPrefix(got, "no process") {
		t.Fatalf("holders of a path nothing holds = %q", got)
	}
}
