package metrics

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/internal/testenv"
)

func TestReadHostFigures(t *testing.T) {
	root := fakeProc(t, "100 10 50 800 40 0 0 0")
	cpu, err := readCPUTimes(root)
	if err != nil {
		t.Fatal(err)
	}
	if cpu.User != 100 || cpu.Nice != 10 || cpu.System != 50 || cpu.Idle != 800 || cpu.IOWait != 40 || cpu.total() != 1000 {
		t.Errorf("cpu = %+v", cpu)
	}
	m, err := readMemInfo(root)
	if err != nil {
		t.Fatal(err)
	}
	const kb = 1024
	if m.Total != 8000000*kb || m.Used() != 3000000*kb || m.Free != 1000000*kb || m.Buffers != 200000*kb || m.Cached != 3000000*kb || m.SwapUsed() != 500000*kb {
		t.Errorf("meminfo = %+v used %d", m, m.Used())
	}
	n, err := readNetCounters(root)
	if err != nil {
		t.Fatal(err)
	}
	want := netCounters{RxPackets: 1010, RxErrors: 2, RxDropped: 4, TxPackets: 2020, TxErrors: 4, TxDropped: 5}
	if n != want {
		t.Errorf("net = %+v, want %+v (loopback excluded)", n, want)
	}
}

func TestCPUBetween(t *testing.T) {
	prev := cpuTimes{User: 100, Nice: 10, System: 50, Idle: 800, IOWait: 40}
	cur := cpuTimes{User: 150, Nice: 20, System: 70, Idle: 900, IOWait: 60} // +200 ticks
	p, ok := cpuBetween(prev, cur)
	if !ok {
		t.Fatal("no percentages")
	}
	for name, c := range map[string][2]float64{"user": {p.User, 30}, "system": {p.System, 10}, "idle": {p.Idle, 50}, "iowait": {p.IOWait, 10}} {
		if math.Abs(c[0]-c[1]) > 1e-9 {
			t.Errorf("%s = %v%%, want %v%%", name, c[0], c[1])
		}
	}
	if _, ok := cpuBetween(cur, cur); ok {
		t.Error("no time passed: no percentages")
	}
}

func TestHostFigureErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := readCPUTimes(empty); err == nil {
		t.Error("missing stat: no error")
	}
	if _, err := readMemInfo(empty); err == nil {
		t.Error("missing meminfo: no error")
	}
	if _, err := readNetCounters(empty); err == nil {
		t.Error("missing net/dev: no error")
	}
	if err := os.WriteFile(filepath.Join(empty, "stat"), []byte("intr 1 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCPUTimes(empty); err == nil {
		t.Error("stat without a cpu line: no error")
	}
	if err := os.WriteFile(filepath.Join(empty, "meminfo"), []byte("MemTotal: 1 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMemInfo(empty); err == nil {
		t.Error("meminfo lacking fields: no error")
	}
	if _, err := readDiskUsage(filepath.Join(empty, "missing")); err == nil {
		t.Error("statfs of a missing path: no error")
	}
}

func TestDiskUsage(t *testing.T) {
	d, err := readDiskUsage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d.Size == 0 || d.Used+d.Avail > d.Size {
		t.Errorf("disk usage %+v", d)
	}
	if p := d.UsedPercent(); p < 0 || p > 100 {
		t.Errorf("used %v%%", p)
	}
	if p := (diskUsage{Size: 100, Used: 45, Avail: 45}).UsedPercent(); p != 50 {
		t.Errorf("45 used of 90 usable = %v%%, want 50 (df's Use%%)", p)
	}
}

// TestRealProc reads this machine's /proc, where the broker runs.
func TestRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		testenv.Missing(t, "no /proc on this system")
	}
	if _, err := readCPUTimes("/proc"); err != nil {
		t.Error(err)
	}
	if _, err := readMemInfo("/proc"); err != nil {
		t.Error(err)
	}
	if _, err := readNetCounters("/proc"); err != nil {
		t.Error(err)
	}
}
