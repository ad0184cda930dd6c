package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuTimes are the host's CPU times from the first line of /proc/stat, in
// USER_HZ ticks since boot, summed over every CPU.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// total is every tick spent; guest time is already inside user and nice.
func (c cpuTimes) total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// userHZ is the unit of /proc/stat: 100 ticks a second on every Linux
// architecture we build for (USER_HZ is fixed by the kernel ABI).
const userHZ = 100

func readCPUTimes(procRoot string) (cpuTimes, error) {
	path := filepath.Join(procRoot, "stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("reading CPU times: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	fields := strings.Fields(string(line))
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("reading CPU times: unexpected first line of %s: %q", path, line)
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
			return cpuTimes{}, fmt.Errorf("reading CPU times: %s field %d: %w", path, i+1, err)
		}
	}
	return cpuTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}, nil
}

// cpuPercent is the share of each CPU state between two readings, in
// percent, as MSK's CpuUser, CpuSystem, CpuIdle and CpuIoWait. User
// includes nice time; System is kernel time without interrupt handling.
type cpuPercent struct {
	User, System, Idle, IOWait float64
}

func cpuBetween(prev, cur cpuTimes) (cpuPercent, bool) {
	if cur.total() <= prev.total() {
		return cpuPercent{}, false
	}
	d := float64(cur.total() - prev.total())
	pct := func(a, b uint64) float64 {
		if b < a {
			return 0
		}
		return 100 * float64(b-a) / d
	}
	return cpuPercent{
		User:   pct(prev.User+prev.Nice, cur.User+cur.Nice),
		System: pct(prev.System, cur.System),
		Idle:   pct(prev.Idle, cur.Idle),
		IOWait: pct(prev.IOWait, cur.IOWait),
	}, true
}

// memInfo is the host's memory from /proc/meminfo, in bytes.
type memInfo struct {
	Total, Free, Available, Buffers, Cached, SwapTotal, SwapFree uint64
}

// Used is memory in use: total minus what the kernel could hand out
// without swapping (MemAvailable), the figure `free` prints as used.
func (m memInfo) Used() uint64 { return m.Total - min(m.Available, m.Total) }

// SwapUsed is swap in use.
func (m memInfo) SwapUsed() uint64 { return m.SwapTotal - min(m.SwapFree, m.SwapTotal) }

func readMemInfo(procRoot string) (memInfo, error) {
	path := filepath.Join(procRoot, "meminfo")
	f, err := os.Open(path)
	if err != nil {
		return memInfo{}, fmt.Errorf("reading memory usage: %w", err)
	}
	defer f.Close()
	var m memInfo
	fields := map[string]*uint64{
		"MemTotal": &m.Total, "MemFree": &m.Free, "MemAvailable": &m.Available, "Buffers": &m.Buffers,
		"Cached": &m.Cached, "SwapTotal": &m.SwapTotal, "SwapFree": &m.SwapFree,
	}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		p, want := fields[name]
		if !ok || !want {
			continue
		}
		parts := strings.Fields(rest)
		if len(parts) == 0 {
			return memInfo{}, fmt.Errorf("reading memory usage: %s has no value for %s", path, name)
		}
		v, err := strconv.ParseUint(parts[0], 10, 64)
		if err != nil {
			return memInfo{}, fmt.Errorf("reading memory usage: %s %s: %w", path, name, err)
		}
		if len(parts) > 1 && parts[1] == "kB" {
			v *= 1024
		}
		*p = v
		found++
	}
	if err := sc.Err(); err != nil {
		return memInfo{}, fmt.Errorf("reading memory usage: %w", err)
	}
	if found < len(fields) {
		return memInfo{}, fmt.Errorf("reading memory usage: %s lacks some of MemTotal, MemFree, MemAvailable, Buffers, Cached, SwapTotal, SwapFree", path)
	}
	return m, nil
}

// netCounters are packet totals of every network interface but loopback,
// from /proc/net/dev.
type netCounters struct {
	RxPackets, RxErrors, RxDropped, TxPackets, TxErrors, TxDropped uint64
}

func readNetCounters(procRoot string) (netCounters, error) {
	path := filepath.Join(procRoot, "net", "dev")
	data, err := os.ReadFile(path)
	if err != nil {
		return netCounters{}, fmt.Errorf("reading network counters: %w", err)
	}
	var n netCounters
	lines := strings.Split(string(data), "\n")
	for _, line := range lines {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(name, "|") {
			continue // the two header lines
		}
		if strings.TrimSpace(name) == "lo" {
			continue // loopback traffic never leaves the host
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return netCounters{}, fmt.Errorf("reading network counters: %s: short line for %s", path, strings.TrimSpace(name))
		}
		var v [16]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return netCounters{}, fmt.Errorf("reading network counters: %s %s: %w", path, strings.TrimSpace(name), err)
			}
		}
		// Receive: bytes packets errs drop fifo frame compressed multicast;
		// transmit: bytes packets errs drop fifo colls carrier compressed.
		n.RxPackets += v[1]
		n.RxErrors += v[2]
		n.RxDropped += v[3]
		n.TxPackets += v[9]
		n.TxErrors += v[10]
		n.TxDropped += v[11]
	}
	return n, nil
}

// diskUsage is a file system's space, as df shows it.
type diskUsage struct {
	Size, Used, Avail uint64 // bytes; Avail is what unprivileged writers can still use
}

// UsedPercent is df's Use%: used / (used + available). Blocks reserved for
// root count as neither, so a full disk reads 100%.
func (d diskUsage) UsedPercent() float64 {
	if d.Used+d.Avail == 0 {
		return 0
	}
	return 100 * float64(d.Used) / float64(d.Used+d.Avail)
}

var errNoPath = errors.New("no path")

func readDiskUsage(path string) (diskUsage, error) {
	if path == "" {
		return diskUsage{}, errNoPath
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return diskUsage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return diskUsage{
		Size:  st.Blocks * bs,
		Used:  (st.Blocks - st.Bfree) * bs,
		Avail: st.Bavail * bs,
	}, nil
}

// ReadMemTotal is the host's memory (MemTotal of /proc/meminfo under
// procRoot), in bytes.
func ReadMemTotal(procRoot string) (uint64, error) {
	m, err := readMemInfo(procRoot)
	return m.Total, err
}

// ProcessMemory is the memory the process may use: its cgroup's
// memory.max (cgroup v2, the cgroup /proc/self/cgroup names, under
// cgroupRoot) or the host's MemTotal (under procRoot), whichever is lower;
// from says which, and ok is false when neither can be read.
func ProcessMemory(procRoot, cgroupRoot string) (total int64, from string, ok bool) {
	if m, err := ReadMemTotal(procRoot); err == nil && m > 0 && m < math.MaxInt64 {
		total, from = int64(m), "host memory"
	}
	if c, ok := cgroupMemoryMax(cgroupRoot); ok && (total == 0 || c < total) {
		total, from = c, "cgroup memory.max"
	}
	return total, from, total > 0
}

// cgroupMemoryMax reads the cgroup v2 memory limit of the process; false
// when there is none ("max") or it cannot be read.
func cgroupMemoryMax(cgroupRoot string) (int64, bool) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// cgroup v2: "0::/path".
		path, ok := strings.CutPrefix(sc.Text(), "0::")
		if !ok {
			continue
		}
		b, err := os.ReadFile(cgroupRoot + path + "/memory.max")
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n, err == nil && n > 0
	}
	return 0, false
}
