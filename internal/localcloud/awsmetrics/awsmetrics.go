// Package awsmetrics publishes the metrics AWS itself keeps about the local
// cloud's instances and volumes, measured on the processes that run them:
// CPUCreditBalance and CPUCreditUsage in AWS/EC2 (dimension InstanceId)
// for burstable (T) instances, BurstBalance in AWS/EBS (dimension
// VolumeId) for gp2 volumes. MSK shows both per broker; a Tributary
// cluster's operators read them where AWS puts them, and in the local
// cloud they are there too.
//
// The credit arithmetic is EC2's and EBS's; what an emulator cannot know
// exactly is approximated and said so:
//   - CPU credits: one credit is one vCPU at 100 % for one minute. An
//     instance earns its type's credits per hour (EC2's table), spends the
//     CPU time its process used (utime + stime of /proc/<pid>/stat,
//     children included), and holds at most 24 hours of earnings. It
//     starts at 0, as T3 and T4g instances do (unlimited mode, the
//     default); surplus credits of unlimited mode are not modelled, so the
//     balance stops at 0.
//   - gp2 burst: a volume's bucket holds 5.4 million I/O credits and starts
//     full; it fills at the volume's baseline, 3 IOPS per GiB (at least
//     100, at most 16,000), and drains by the I/O operations the volume
//     serves. The emulator knows the bytes the instance's process read
//     from and wrote to storage (/proc/<pid>/io read_bytes and
//     write_bytes), not its operations: it counts 256 KiB per operation,
//     the largest I/O gp2 counts as one, so the drain is a lower bound. A
//     volume of 5,334 GiB or more has a baseline of 16,000 IOPS and never
//     bursts; AWS still reports 100 % for it, as here.
//
// VolumeReadBytes and VolumeWriteBytes (AWS/EBS, VolumeId) are the bytes
// the instance's process read from and wrote to storage during the interval
// (/proc/<pid>/io read_bytes and write_bytes: what reached the block layer,
// page-cache hits excluded, as EBS sees them). The emulator cannot tell one
// volume's I/O from another's: they are published for an instance with
// exactly one volume besides its root volume (a broker's data volume, where
// its log segments are), counting all the process's I/O, so an upper bound
// of that volume's; an instance with more volumes gets none. Not on the
// tick that first sees a volume (there is no interval yet).
// EBS's other volume metrics (VolumeReadOps, VolumeWriteOps,
// VolumeTotalRead/WriteTime, VolumeQueueLength, VolumeIdleTime) need
// operation counts and latencies per device, which the emulator does not
// have: they are not published.
package awsmetrics

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/cloudwatch"
	"github.com/tributary/tributary/internal/localcloud/ec2"
)

// Source lists the running instances (ec2.Service).
type Source interface {
	RunningUsage() []ec2.Usage
}

// Sink records a datum in an AWS namespace (cloudwatch.Service).
type Sink interface {
	PutServiceMetric(namespace, name string, dims []cloudwatch.Dimension, value float64, unit string, t time.Time)
}

// Options configure a Publisher.
type Options struct {
	Source Source
	Sink   Sink
	// ProcRoot is where /proc is; default "/proc".
	ProcRoot string
	Logger   *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

const (
	gp2BucketCredits = 5_400_000
	gp2MinBaseline   = 100
	gp2MaxBaseline   = 16_000
	gp2OpBytes       = 256 << 10
	userHZ           = 100 // /proc/<pid>/stat's clock ticks per second on Linux
)

// creditsPerHour is EC2's CPU credits earned per hour by burstable size
// (T3, T3a and T4g have the same table).
var creditsPerHour = map[string]float64{
	"nano": 6, "micro": 12, "small": 24, "medium": 24, "large": 36, "xlarge": 96, "2xlarge": 192,
}

// Publisher keeps each instance's and volume's balance between ticks.
type Publisher struct {
	opts Options
	mu   sync.Mutex
	cpu  map[string]*cpuState // by instance id
	vols map[string]*volState // by volume id
	io   map[string]*ioState  // by volume id
}

type cpuState struct {
	pid     int
	ticks   uint64 // utime+stime+cutime+cstime at the last tick
	at      time.Time
	balance float64
}

// ioState is what a volume's byte counters were at the last tick.
type ioState struct {
	instance    string
	pid         int
	read, write uint64
}

type volState struct {
	instance string
	pid      int
	bytes    uint64
	at       time.Time
	credits  float64
}

// New returns a Publisher; Tick measures and publishes.
func New(opts Options) *Publisher {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Publisher{opts: opts, cpu: map[string]*cpuState{}, vols: map[string]*volState{}, io: map[string]*ioState{}}
}

// Run ticks every interval until stop is closed.
func (p *Publisher) Run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	p.Tick()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.Tick()
		}
	}
}

// Tick measures every running instance and its volumes and publishes
// their balances. A resource first seen is published at its starting
// balance; instances and volumes no longer running are forgotten (a new
// instance starts again at 0 credits, as on EC2; a volume keeps nothing
// across detachments here, which AWS would).
func (p *Publisher) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()
	seenCPU, seenVol, seenIO := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, u := range p.opts.Source.RunningUsage() {
		if u.PID == 0 {
			continue
		}
		if u.Burstable {
			seenCPU[u.InstanceID] = true
			if err := p.tickCPU(u, now); err != nil {
				p.opts.Logger.Debug("CPU credits not measured", "instance", u.InstanceID, "err", err)
			}
		}
		if v, ok := onlyDataVolume(u.Volumes); ok {
			seenIO[v.VolumeID] = true
			if err := p.tickVolumeIO(u, v, now); err != nil {
				p.opts.Logger.Debug("volume I/O not measured", "volume", v.VolumeID, "err", err)
			}
		}
		for _, v := range u.Volumes {
			if v.Type != "gp2" {
				continue
			}
			seenVol[v.VolumeID] = true
			if err := p.tickVolume(u, v, now); err != nil {
				p.opts.Logger.Debug("burst balance not measured", "volume", v.VolumeID, "err", err)
			}
		}
	}
	for id := range p.cpu {
		if !seenCPU[id] {
			delete(p.cpu, id)
		}
	}
	for id := range p.vols {
		if !seenVol[id] {
			delete(p.vols, id)
		}
	}
	for id := range p.io {
		if !seenIO[id] {
			delete(p.io, id)
		}
	}
}

// onlyDataVolume is an instance's one volume besides its root volume, when
// it has exactly one.
func onlyDataVolume(vols []ec2.VolumeUsage) (ec2.VolumeUsage, bool) {
	var data []ec2.VolumeUsage
	for _, v := range vols {
		if !v.Root {
			data = append(data, v)
		}
	}
	if len(data) != 1 {
		return ec2.VolumeUsage{}, false
	}
	return data[0], true
}

// tickVolumeIO publishes the bytes read and written since the last tick.
func (p *Publisher) tickVolumeIO(u ec2.Usage, v ec2.VolumeUsage, now time.Time) error {
	r, w, err := p.ioCounts(u.PID)
	if err != nil {
		return err
	}
	st, ok := p.io[v.VolumeID]
	p.io[v.VolumeID] = &ioState{instance: u.InstanceID, pid: u.PID, read: r, write: w}
	if !ok || st.instance != u.InstanceID {
		return nil // no interval yet
	}
	dr, dw := r, w // a restarted program's I/O is all new
	if st.pid == u.PID {
		dr, dw = r-min(st.read, r), w-min(st.write, w)
	}
	dims := []cloudwatch.Dimension{{Name: "VolumeId", Value: v.VolumeID}}
	p.opts.Sink.PutServiceMetric("AWS/EBS", "VolumeReadBytes", dims, float64(dr), "Bytes", now)
	p.opts.Sink.PutServiceMetric("AWS/EBS", "VolumeWriteBytes", dims, float64(dw), "Bytes", now)
	return nil
}

func (p *Publisher) tickCPU(u ec2.Usage, now time.Time) error {
	size := u.InstanceType[strings.IndexByte(u.InstanceType, '.')+1:]
	rate, ok := creditsPerHour[size]
	if !ok {
		return fmt.Errorf("no CPU credit rate for %s", u.InstanceType)
	}
	ticks, err := p.cpuTicks(u.PID)
	if err != nil {
		return err
	}
	st, ok := p.cpu[u.InstanceID]
	used := 0.0
	if ok {
		switch {
		case st.pid != u.PID:
			// The instance's program was restarted: its new process's
			// CPU time is all new.
			used = float64(ticks) / userHZ / 60
		case ticks > st.ticks:
			used = float64(ticks-st.ticks) / userHZ / 60
		}
		earned := rate * now.Sub(st.at).Hours()
		st.balance = min(max(st.balance+earned-used, 0), 24*rate)
	} else {
		st = &cpuState{}
		p.cpu[u.InstanceID] = st
	}
	st.pid, st.ticks, st.at = u.PID, ticks, now
	dims := []cloudwatch.Dimension{{Name: "InstanceId", Value: u.InstanceID}}
	p.opts.Sink.PutServiceMetric("AWS/EC2", "CPUCreditBalance", dims, st.balance, "Count", now)
	p.opts.Sink.PutServiceMetric("AWS/EC2", "CPUCreditUsage", dims, used, "Count", now)
	return nil
}

func (p *Publisher) tickVolume(u ec2.Usage, v ec2.VolumeUsage, now time.Time) error {
	r, w, err := p.ioCounts(u.PID)
	if err != nil {
		return err
	}
	b := r + w
	baseline := min(max(3*float64(v.SizeGiB), gp2MinBaseline), gp2MaxBaseline)
	st, ok := p.vols[v.VolumeID]
	if ok && st.instance == u.InstanceID {
		done := b // a restarted program's I/O is all new
		if st.pid == u.PID {
			done = b - min(st.bytes, b)
		}
		ops := float64((done + gp2OpBytes - 1) / gp2OpBytes)
		earned := baseline * now.Sub(st.at).Seconds()
		st.credits = min(max(st.credits+earned-ops, 0), gp2BucketCredits)
	} else {
		st = &volState{credits: gp2BucketCredits}
		p.vols[v.VolumeID] = st
	}
	st.instance, st.pid, st.bytes, st.at = u.InstanceID, u.PID, b, now
	balance := 100 * st.credits / gp2BucketCredits
	if baseline >= gp2MaxBaseline {
		balance = 100
	}
	p.opts.Sink.PutServiceMetric("AWS/EBS", "BurstBalance", []cloudwatch.Dimension{{Name: "VolumeId", Value: v.VolumeID}}, balance, "Percent", now)
	return nil
}

// cpuTicks is a process's CPU time with its waited-for children's, in
// clock ticks.
func (p *Publisher) cpuTicks(pid int) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(p.opts.ProcRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: the fields
	// after its closing parenthesis start with the state (field 3).
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var sum uint64
	for _, k := range f[11:15] { // utime stime cutime cstime: fields 14-17
		v, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		sum += v
	}
	return sum, nil
}

// ioCounts is the bytes a process read from and wrote to storage.
func (p *Publisher) ioCounts(pid int) (read, write uint64, err error) {
	data, err := os.ReadFile(filepath.Join(p.opts.ProcRoot, strconv.Itoa(pid), "io"))
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "read_bytes" && k != "write_bytes") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/io %s: %w", pid, k, err)
		}
		if k == "read_bytes" {
			read = n
		} else {
			write = n
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/proc/%d/io lacks read_bytes or write_bytes", pid)
	}
	return read, write, nil
}
