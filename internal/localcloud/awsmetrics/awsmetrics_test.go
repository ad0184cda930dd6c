package awsmetrics

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/localcloud/cloudwatch"
	"github.com/tributary/tributary/internal/localcloud/ec2"
)

type fakeSource struct{ usage []ec2.Usage }

func (f *fakeSource) RunningUsage() []ec2.Usage { return f.usage }

type datum struct {
	ns, name, dim string
	value         float64
}

type recorder struct{ data []datum }

func (r *recorder) PutServiceMetric(ns, name string, dims []cloudwatch.Dimension, v float64, _ string, _ time.Time) {
	r.data = append(r.data, datum{ns, name, dims[0].Name + "=" + dims[0].Value, v})
}

func (r *recorder) last(name, dim string) (float64, bool) {
	for i := len(r.data) - 1; i >= 0; i-- {
		if r.data[i].name == name && r.data[i].dim == dim {
			return r.data[i].value, true
		}
	}
	return 0, false
}

// setProc writes the /proc/<pid>/stat and io the publisher reads.
func setProc(t *testing.T, root string, pid int, cpuTicks, ioBytes uint64) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// utime carries the ticks; stime, cutime and cstime are 0. The
	// command name holds a space and a parenthesis, as names may.
	stat := fmt.Sprintf("%d (tributary broker) S 1 1 1 0 -1 4194560 100 0 0 0 %d 0 0 0 20 0 8 0 100 1000 10\n", pid, cpuTicks)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	io := fmt.Sprintf("rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: %d\nwrite_bytes: 0\ncancelled_write_bytes: 0\n", ioBytes)
	if err := os.WriteFile(filepath.Join(dir, "io"), []byte(io), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCreditArithmetic(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	src := &fakeSource{usage: []ec2.Usage{
		{InstanceID: "i-t", InstanceType: "t3.micro", Burstable: true, VCPUs: 2, PID: 42,
			Volumes: []ec2.VolumeUsage{{VolumeID: "vol-gp2", Type: "gp2", SizeGiB: 20}, {VolumeID: "vol-gp3", Type: "gp3", SizeGiB: 20}}},
		{InstanceID: "i-m", InstanceType: "m7i.large", VCPUs: 2, PID: 43,
			Volumes: []ec2.VolumeUsage{{VolumeID: "vol-big", Type: "gp2", SizeGiB: 6000}}},
	}}
	rec := &recorder{}
	p := New(Options{Source: src, Sink: rec, ProcRoot: root, Now: func() time.Time { return now }})
	setProc(t, root, 42, 1000, 0)
	setProc(t, root, 43, 0, 0)
	p.Tick()
	if v, _ := rec.last("CPUCreditBalance", "InstanceId=i-t"); v != 0 {
		t.Errorf("a new T instance starts with %v credits, want 0", v)
	}
	if v, _ := rec.last("BurstBalance", "VolumeId=vol-gp2"); v != 100 {
		t.Errorf("a new gp2 volume's bucket is %v %%, want 100", v)
	}

	// An hour: a micro earns 12 credits; 60 s of CPU (6000 ticks) is one
	// credit. The 20 GiB gp2 volume's baseline is 100 IOPS (its floor), so
	// an hour refills 360,000 credits, more than 1 GiB of I/O (4096 ops
	// of 256 KiB) drains: it stays full. Then a burst of 10,000 GiB drains.
	now = now.Add(time.Hour)
	setProc(t, root, 42, 7000, 1<<30)
	p.Tick()
	if v, _ := rec.last("CPUCreditBalance", "InstanceId=i-t"); math.Abs(v-11) > 1e-9 {
		t.Errorf("CPUCreditBalance after an hour with a CPU-minute used = %v, want 11", v)
	}
	if v, _ := rec.last("CPUCreditUsage", "InstanceId=i-t"); math.Abs(v-1) > 1e-9 {
		t.Errorf("CPUCreditUsage = %v, want 1", v)
	}
	if v, _ := rec.last("BurstBalance", "VolumeId=vol-gp2"); v != 100 {
		t.Errorf("BurstBalance = %v, want 100", v)
	}
	now = now.Add(time.Second)
	setProc(t, root, 42, 7000, 1<<30+10000<<30) // 40,960,000 ops of 256 KiB: more than the bucket
	p.Tick()
	if v, _ := rec.last("BurstBalance", "VolumeId=vol-gp2"); v != 0 {
		t.Errorf("BurstBalance after draining the bucket = %v, want 0", v)
	}
	now = now.Add(time.Minute)
	p.Tick()
	if v, _ := rec.last("BurstBalance", "VolumeId=vol-gp2"); math.Abs(v-100*6000.0/gp2BucketCredits) > 1e-9 {
		t.Errorf("BurstBalance a minute later = %v, want the baseline's 6,000 credits as a share", v)
	}

	// Credits stop at 24 hours of earnings.
	now = now.Add(48 * time.Hour)
	p.Tick()
	if v, _ := rec.last("CPUCreditBalance", "InstanceId=i-t"); v != 24*12 {
		t.Errorf("CPUCreditBalance after two idle days = %v, want the cap 288", v)
	}
	// A restarted program: its process's CPU time is all new.
	src.usage[0].PID = 44
	setProc(t, root, 44, 12000, 0) // two CPU-minutes
	now = now.Add(time.Minute)
	p.Tick()
	if v, _ := rec.last("CPUCreditUsage", "InstanceId=i-t"); math.Abs(v-2) > 1e-9 {
		t.Errorf("CPUCreditUsage after a restart = %v, want 2", v)
	}

	for _, d := range rec.data {
		switch {
		case d.dim == "InstanceId=i-m":
			t.Errorf("an m7i instance got %s", d.name)
		case d.dim == "VolumeId=vol-gp3":
			t.Errorf("a gp3 volume got %s", d.name)
		case d.dim == "VolumeId=vol-big" && d.name == "BurstBalance" && d.value != 100:
			t.Errorf("a gp2 volume at its 16,000 IOPS ceiling reads %v %%, want 100", d.value)
		}
		if ebs := d.name == "BurstBalance" || strings.HasPrefix(d.name, "Volume"); ebs && d.ns != "AWS/EBS" || !ebs && d.ns != "AWS/EC2" {
			t.Errorf("%s in %s", d.name, d.ns)
		}
	}
}

// TestVolumeBytes: an instance with one volume besides its root volume
// gets VolumeReadBytes and VolumeWriteBytes on it, the bytes its process
// read and wrote in the interval (nothing on the first tick, all of a
// restarted process's I/O); one with two such volumes gets neither, since
// its I/O cannot be split between them, and a root volume never does.
func TestVolumeBytes(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC)
	src := &fakeSource{usage: []ec2.Usage{
		{InstanceID: "i-one", InstanceType: "m7i.large", VCPUs: 2, PID: 50,
			Volumes: []ec2.VolumeUsage{{VolumeID: "vol-root", Type: "gp3", SizeGiB: 8, Root: true}, {VolumeID: "vol-data", Type: "gp3", SizeGiB: 100}}},
		{InstanceID: "i-two", InstanceType: "m7i.large", VCPUs: 2, PID: 51,
			Volumes: []ec2.VolumeUsage{{VolumeID: "vol-a", Type: "gp3", SizeGiB: 10}, {VolumeID: "vol-b", Type: "gp3", SizeGiB: 10}}},
	}}
	setIO := func(pid int, read, write uint64) {
		t.Helper()
		setProc(t, root, pid, 0, 0)
		io := fmt.Sprintf("rchar: 1\nwchar: 2\nread_bytes: %d\nwrite_bytes: %d\ncancelled_write_bytes: 0\n", read, write)
		if err := os.WriteFile(filepath.Join(root, fmt.Sprint(pid), "io"), []byte(io), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	p := New(Options{Source: src, Sink: rec, ProcRoot: root, Now: func() time.Time { return now }})
	setIO(50, 1000, 5000)
	setIO(51, 1000, 5000)
	p.Tick()
	if _, ok := rec.last("VolumeReadBytes", "VolumeId=vol-data"); ok {
		t.Error("VolumeReadBytes on the first tick, with no interval to count")
	}
	now = now.Add(time.Minute)
	setIO(50, 4096+1000, 1<<20+5000)
	p.Tick()
	if v, _ := rec.last("VolumeReadBytes", "VolumeId=vol-data"); v != 4096 {
		t.Errorf("VolumeReadBytes = %v, want 4096", v)
	}
	if v, _ := rec.last("VolumeWriteBytes", "VolumeId=vol-data"); v != 1<<20 {
		t.Errorf("VolumeWriteBytes = %v, want 1 MiB", v)
	}
	src.usage[0].PID = 52 // restarted: its counters start again
	setIO(52, 10, 20)
	now = now.Add(time.Minute)
	p.Tick()
	if r, _ := rec.last("VolumeReadBytes", "VolumeId=vol-data"); r != 10 {
		t.Errorf("VolumeReadBytes after a restart = %v, want 10", r)
	}
	for _, d := range rec.data {
		if d.dim == "VolumeId=vol-a" || d.dim == "VolumeId=vol-b" || d.dim == "VolumeId=vol-root" {
			t.Errorf("%s got %s", d.dim, d.name)
		}
	}
}
