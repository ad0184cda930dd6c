package awsmetrics

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
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
		case d.dim == "VolumeId=vol-big" && d.value != 100:
			t.Errorf("a gp2 volume at its 16,000 IOPS ceiling reads %v %%, want 100", d.value)
		}
		if d.name == "BurstBalance" && d.ns != "AWS/EBS" || d.name != "BurstBalance" && d.ns != "AWS/EC2" {
			t.Errorf("%s in %s", d.name, d.ns)
		}
	}
}
