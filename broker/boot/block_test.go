package boot

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/internal/testenv"
)

// TestBootOnABlockDevice runs the image's two steps against a real block
// device (a loop device standing in for an EBS volume attached as a Xen
// device name): the root step formats, mounts and hands the volume over;
// the second step renders the config onto it; a second "reboot" keeps the
// data.
func TestBootOnABlockDevice(t *testing.T) {
	testenv.Root(t, "attaching a loop device and mounting it")
	for _, tool := range [][2]string{{"losetup", "mount"}, {"blkid", "util-linux"}, {"mkfs.xfs", "xfsprogs"}, {"xfs_info", "xfsprogs"}} {
		testenv.Tool(t, tool[0], tool[1])
	}
	owner, err := user.Lookup("nobody")
	if err != nil {
		testenv.Missing(t, "no user nobody to hand the volume to: %v", err)
	}

	img := filepath.Join(t.TempDir(), "ebs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 400<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		testenv.Missing(t, "loop devices are unavailable here: losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("detaching %s: %v: %s", dev, err, out)
		}
	})
	mountPath := filepath.Join(t.TempDir(), "tributary")
	unmount := func() {
		if err := unix.Unmount(mountPath, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmounting %s: %v", mountPath, err)
		}
	}
	t.Cleanup(unmount)

	e := newBootEnv(t)
	e.doc.DataVolume.DeviceName = dev // found by device name, as on a Xen instance
	e.reencode(t)

	opts := e.options()
	opts.VolumeDir = "" // a block device, not the local cloud
	opts.MountPath = mountPath

	rootStep := opts
	rootStep.VolumeOnly = true
	rootStep.DataOwner = "nobody"
	if _, st, err := e.run(t, rootStep); err != nil {
		t.Fatalf("root step: %v (status %+v)\nlogs:\n%s", err, st, e.logs.String())
	}
	if got, _ := exec.Command("blkid", "-p", "-s", "TYPE", "-o", "value", dev).Output(); strings.TrimSpace(string(got)) != "xfs" {
		t.Fatalf("device holds %q after the first boot, want xfs", got)
	}
	fi, err := os.Stat(filepath.Join(mountPath, DataDirName))
	if err != nil {
		t.Fatal(err)
	}
	if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != owner.Uid {
		t.Errorf("data directory owned by uid %s, want %s (nobody)", uid, owner.Uid)
	}

	if _, st, err := e.run(t, opts); err != nil || st.Step != bootstatus.StepExec {
		t.Fatalf("second step: %v (status %s/%s)\nlogs:\n%s", err, st.Step, st.State, e.logs.String())
	}
	cfg, err := os.ReadFile(filepath.Join(e.runtimeDir, ConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	if want := "log.dirs=" + filepath.Join(mountPath, DataDirName) + "\n"; !strings.Contains(string(cfg), want) {
		t.Errorf("config lacks %q:\n%s", want, cfg)
	}
	marker := filepath.Join(mountPath, DataDirName, "orders-0")
	if err := os.Mkdir(marker, 0o755); err != nil {
		t.Fatal(err)
	}

	// Reboot: the volume is unmounted; the root step mounts it without formatting.
	unmount()
	if _, _, err := e.run(t, rootStep); err != nil {
		t.Fatalf("root step after reboot: %v\nlogs:\n%s", err, e.logs.String())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("data lost across the reboot: %v\nlogs:\n%s", err, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "already has an XFS filesystem: not formatting") {
		t.Errorf("the second boot did not say it kept the filesystem:\n%s", e.logs.String())
	}
}
