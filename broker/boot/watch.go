package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/tributary/tributary/broker/boot/volume"
)

// The volume companion, `tributary-broker volume-watch`: a small privileged
// process beside the broker (the broker runs without capabilities, and
// growing a mounted filesystem needs CAP_SYS_ADMIN) that keeps the data
// volume usable as it fills:
//
//   - it grows the mounted filesystem online (xfs_growfs) as soon as the
//     volume under it grew, whoever grew it (Terraform, the console, or
//     the companion itself), so more space is usable at once, without a
//     restart, and a broker whose disk was full writes again;
//   - storage autoscaling, as MSK's: when the volume's tags carry a target
//     utilization and a maximum size (the provider sets them from
//     storage.autoscaling), and the volume is used at or above the target
//     (df's Use%, the broker's KafkaDataLogsDiskUsed), it grows its own
//     volume with ec2:ModifyVolume by the larger of 10 GiB and 10%, never
//     past the maximum, never shrinking, and at most as often as EBS allows
//     (one modification per volume every 6 hours: a refusal is logged and
//     retried later);
//   - it reports a full volume (and its recovery) in its log.
//
// The settings ride on the volume's tags rather than in the boot document,
// so changing them is a tag change, not a rolling replacement.

// Volume tags of storage autoscaling.
const (
	TagAutoscalingTarget  = "tributary:autoscaling-target-utilization" // percent, 10-80
	TagAutoscalingMaxSize = "tributary:autoscaling-max-volume-size"    // GiB
)

// Watch intervals. MSK checks utilization every minute; after a
// modification the companion looks more often, so the new space is usable
// as soon as EBS gives it.
const (
	DefaultWatchInterval = time.Minute
	growingInterval      = 2 * time.Second
	growingPatience      = 15 * time.Minute
)

// EnvWatchInterval overrides the check interval (the local cloud's tests
// shorten it through the instances' environment).
const EnvWatchInterval = "TRIBUTARY_VOLUME_WATCH_INTERVAL"

// fullPercent and roomPercent are where the volume counts as full (writes
// fail) and as having room again.
const (
	fullPercent = 99.0
	roomPercent = 95.0
)

// WatchOptions configure the volume companion.
type WatchOptions struct {
	// VolumeDir is $TRIBUTARY_VOLUME_DIR: the volume is a directory (the
	// local cloud), as for the boot agent.
	VolumeDir string
	// MountPath overrides the document's data_volume.mount_path.
	MountPath string
	Interval  time.Duration // DefaultWatchInterval when zero
	IMDSWait  time.Duration
	IMDS      *imds.Client
	EC2       EC2API
	Logger    *slog.Logger
	// Checks stops after this many checks (tests); 0 runs until ctx ends.
	Checks int
}

// Watch runs the volume companion until ctx ends.
func Watch(ctx context.Context, opts WatchOptions) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	client := opts.IMDS
	if client == nil {
		client = newIMDSClient()
	}
	inst, err := fetchInstance(ctx, client, orDefault(opts.IMDSWait, DefaultIMDSWait), logger)
	if err != nil {
		return err
	}
	doc, err := decodeUserData(inst.UserData)
	if err != nil {
		return err
	}
	w := &watcher{logger: logger.With("volume_id", doc.DataVolume.VolumeID), volumeID: doc.DataVolume.VolumeID, ec2: opts.EC2}
	if opts.VolumeDir != "" {
		d := &volume.Directory{Root: opts.VolumeDir, VolumeID: doc.DataVolume.VolumeID, Logger: logger}
		w.vol, w.mountPath = d, d.Path()
	} else {
		mount := opts.MountPath
		if mount == "" {
			mount = doc.DataVolume.MountPath
		}
		w.vol = &volume.Block{VolumeID: doc.DataVolume.VolumeID, DeviceName: doc.DataVolume.DeviceName, MountPath: mount, Logger: logger}
		w.mountPath = mount
	}
	if w.ec2 == nil {
		c, err := newEC2Client(ctx, inst.Region)
		if err != nil {
			return err
		}
		w.ec2 = c
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	logger.Info("watching the data volume", "volume_id", w.volumeID, "mount_path", w.mountPath, "interval", interval)
	for n := 1; ; n++ {
		w.check(ctx)
		if opts.Checks > 0 && n >= opts.Checks {
			return nil
		}
		next := interval
		if w.growing() {
			next = min(interval, growingInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
	}
}

type watcher struct {
	logger    *slog.Logger
	vol       volume.Grower
	mountPath string
	volumeID  string
	ec2       EC2API

	full bool
	// growingSince is when the companion asked EBS for more, until the
	// filesystem grew (or growingPatience passed).
	growingSince time.Time
	growingTo    int32
	lastRefusal  string
	lastGrowErr  string
}

func (w *watcher) growing() bool {
	return !w.growingSince.IsZero() && time.Since(w.growingSince) < growingPatience
}

// check is one round: grow the filesystem if the volume grew, report a
// full volume, and grow the volume when autoscaling says so.
func (w *watcher) check(ctx context.Context) {
	g, err := w.vol.Grow(ctx)
	switch {
	case err != nil:
		if err.Error() != w.lastGrowErr {
			w.logger.Error("could not check or grow the data volume's filesystem", "error", err)
			w.lastGrowErr = err.Error()
		}
	case g.GrewFrom > 0:
		w.lastGrowErr = ""
		w.logger.Info("the data volume's filesystem grew online; the space is usable now", "from_bytes", g.GrewFrom, "to_bytes", g.FilesystemBytes)
		if w.growingTo > 0 && g.DeviceBytes >= int64(w.growingTo)<<30 {
			w.growingSince, w.growingTo = time.Time{}, 0
		}
	}

	use, err := volume.DiskUsage(w.mountPath)
	if err != nil {
		w.logger.Error("reading the data volume's usage", "error", err)
		return
	}
	pct := use.UsedPercent()
	switch {
	case !w.full && pct >= fullPercent:
		w.full = true
		w.logger.Error("the data volume is full: the broker refuses writes (KAFKA_STORAGE_ERROR) until it grows",
			"used_percent", round1(pct), "available_bytes", use.Avail, "size_bytes", use.Size)
	case w.full && pct < roomPercent:
		w.full = false
		w.logger.Info("the data volume has room again", "used_percent", round1(pct), "available_bytes", use.Avail, "size_bytes", use.Size)
	}
	w.autoscale(ctx, pct)
}

// autoscale grows the volume when its tags turn autoscaling on and its use
// reached the target.
func (w *watcher) autoscale(ctx context.Context, usedPercent float64) {
	out, err := w.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{w.volumeID}})
	if err != nil || len(out.Volumes) == 0 {
		w.refused("could not read the data volume's size and autoscaling tags from EC2", fmt.Sprintf("describing volume %s: %v", w.volumeID, ec2Refusal(err)))
		return
	}
	v := out.Volumes[0]
	var target, maxSize int
	for _, t := range v.Tags {
		switch aws.ToString(t.Key) {
		case TagAutoscalingTarget:
			target, _ = strconv.Atoi(aws.ToString(t.Value))
		case TagAutoscalingMaxSize:
			maxSize, _ = strconv.Atoi(aws.ToString(t.Value))
		}
	}
	size := int(aws.ToInt32(v.Size))
	if target <= 0 || maxSize <= 0 || usedPercent < float64(target) || size >= maxSize || w.growing() {
		return
	}
	// MSK's step: the larger of 10 GiB and 10% of the size.
	next := min(size+max(10, int(math.Ceil(float64(size)/10))), maxSize)
	w.logger.Info("storage autoscaling: the data volume is used past its target; growing it",
		"used_percent", round1(usedPercent), "target_percent", target, "from_gib", size, "to_gib", next, "max_gib", maxSize)
	_, err = w.ec2.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(w.volumeID), Size: aws.Int32(int32(next))})
	switch code := errorCode(err); {
	case err == nil:
		w.lastRefusal = ""
		w.growingSince, w.growingTo = time.Now(), int32(next)
	case code == "VolumeModificationRateExceeded":
		w.refused(cannotGrow, fmt.Sprintf("EBS allows one modification per volume every 6 hours; growing volume %s waits: %v", w.volumeID, err))
	case code == "IncorrectModificationState":
		w.refused(cannotGrow, fmt.Sprintf("volume %s is being modified already; waiting for it: %v", w.volumeID, err))
	default:
		w.refused(cannotGrow, fmt.Sprintf("growing volume %s to %d GiB: %v", w.volumeID, next, ec2Refusal(err)))
	}
}

const cannotGrow = "storage autoscaling could not grow the data volume"

// refused logs why autoscaling could not act, once per distinct reason.
func (w *watcher) refused(summary, reason string) {
	if reason != w.lastRefusal {
		w.logger.Warn(summary, "reason", reason)
		w.lastRefusal = reason
	}
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// WatchMain is `tributary-broker volume-watch [flags]`; it returns when
// ctx ends or the companion cannot start.
func WatchMain(ctx context.Context, args []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("tributary-broker volume-watch", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var opts WatchOptions
	flags.StringVar(&opts.MountPath, "mount-path", "", "where the data volume is mounted (default: the boot document's data_volume.mount_path)")
	def := DefaultWatchInterval
	if v := os.Getenv(EnvWatchInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q is not a positive duration", EnvWatchInterval, v)
		}
		def = d
	}
	flags.DurationVar(&opts.Interval, "interval", def, "how often to check the volume (default $"+EnvWatchInterval+", else 1m)")
	flags.DurationVar(&opts.IMDSWait, "imds-wait", DefaultIMDSWait, "how long to retry instance metadata")
	withParent := flags.Bool("exit-with-parent", false, "stop when the process that started it (the broker) ends")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: tributary-broker volume-watch [flags]\n\n"+
			"Keeps the broker's data volume usable: grows its filesystem online when the volume grew, grows\n"+
			"the volume when storage autoscaling is on and it is used past the target, and reports a full\n"+
			"volume. Runs as root beside the broker. See docs/broker-image.md.\n\nflags:")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	opts.VolumeDir = os.Getenv(EnvVolumeDir)
	opts.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("component", "volume-watch")
	if *withParent {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go exitWithParent(ctx, cancel)
	}
	return Watch(ctx, opts)
}

// exitWithParent cancels when the companion's parent (the broker the agent
// became) ends: the companion is then adopted by another process, so its
// parent process id changes.
func exitWithParent(ctx context.Context, cancel context.CancelFunc) {
	parent := os.Getppid()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != parent {
				cancel()
				return
			}
		}
	}
}
