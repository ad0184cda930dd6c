package boot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/boot/volume"
	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/testenv"
)

// syncBuffer is a log sink the companion writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestVolumeWatchAutoscales runs the volume companion on a local cloud
// instance whose data volume is a 1 GiB filesystem of its own (a sized
// volume): filled past the target of its autoscaling tags, the companion
// grows its own volume with ModifyVolume by MSK's step (capped at the
// maximum), the filesystem grows online as soon as the device does, and the
// space is usable. Past the target again, EBS's one modification per six
// hours holds the next growth back (logged, the volume unchanged); a full
// volume is reported.
func TestVolumeWatchAutoscales(t *testing.T) {
	testenv.Root(t, "sized local cloud volumes (loop devices and mounts)")
	for _, tool := range []string{"losetup", "mkfs.xfs", "xfs_growfs", "xfs_info"} {
		pkg := "xfsprogs"
		if tool == "losetup" {
			pkg = "mount"
		}
		testenv.Tool(t, tool, pkg)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testenv.Missing(t, "loop devices are unavailable here (/dev/loop-control missing)")
	}
	a := startAttachCloudWith(t, "c-0123abcd", localcloud.Options{SizedVolumes: true}, 1)
	ctx := t.Context()
	setTags := func(target, maxGiB int) {
		t.Helper()
		if _, err := a.root.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a.volumeID}, Tags: []ec2types.Tag{
			{Key: aws.String(TagAutoscalingTarget), Value: aws.String(fmt.Sprint(target))},
			{Key: aws.String(TagAutoscalingMaxSize), Value: aws.String(fmt.Sprint(maxGiB))},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	setTags(50, 3)
	id := a.launch(t)
	e := newBootEnv(t)
	opts := a.bootOn(t, e, id)
	// The agent attaches the volume, as at boot.
	if _, st, err := e.run(t, opts); err != nil {
		t.Fatalf("boot stopped at %s: %v\n%s", st.Step, err, e.logs.String())
	}
	dir := filepath.Join(opts.VolumeDir, a.volumeID)
	fill := func(name string, n int64) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fallocate(int(f.Fd()), 0, 0, n)
	}
	if err := fill("segment-1", 600<<20); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Watch(wctx, WatchOptions{VolumeDir: opts.VolumeDir, Interval: 100 * time.Millisecond, IMDSWait: 5 * time.Second,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s\ncompanion log:\n%s", what, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	size := func() (gib int32, fsBytes uint64) {
		out, err := a.root.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{a.volumeID}})
		if err != nil {
			t.Fatal(err)
		}
		u, err := volume.DiskUsage(dir)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToInt32(out.Volumes[0].Size), u.Size
	}
	// 1 GiB + max(10 GiB, 10%) = 11, capped at the maximum of 3.
	waitFor("the volume grown to its 3 GiB maximum and the filesystem with it", func() bool {
		gib, fs := size()
		return gib == 3 && fs > 2900<<20
	})
	if err := fill("segment-2", 1200<<20); err != nil {
		t.Fatalf("the grown space is not usable: %v", err)
	}

	// Past the target again with room to grow: EBS's cooldown refuses.
	setTags(50, 20)
	waitFor("the refusal logged", func() bool { return strings.Contains(logs.String(), "VolumeModificationRateExceeded") })
	if gib, _ := size(); gib != 3 {
		t.Fatalf("the volume is %d GiB after a refused modification", gib)
	}

	// Full.
	u, err := volume.DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fill("segment-3", int64(u.Avail)-8<<20); err != nil {
		t.Fatal(err)
	}
	waitFor("the full volume reported", func() bool { return strings.Contains(logs.String(), "the data volume is full") })
}
