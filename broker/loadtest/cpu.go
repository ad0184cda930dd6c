package loadtest

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// CPU is what one throughput phase cost in CPU time: this process's (the
// franz-go producer or consumer: the benchmark runs its clients in
// process) and the server processes' (tributary brokers or kfake), over
// the phase's wall time, for the bytes it moved. On one machine both sides
// draw on the same cores, so when they are all busy the throughput is
// cores / (client + server CPU per byte), whatever the broker's design.
type CPU struct {
	Client, Server time.Duration
	// Machine is the busy CPU time of every process on the machine over
	// the phase (/proc/stat): above Client + Server when something else
	// ran (other benchmarks, builds, the kernel's writeback).
	Machine time.Duration
	Wall    time.Duration
	Bytes   int64
}

// Add sums two phases' costs (the rounds of a TLS table).
func (c CPU) Add(o CPU) CPU {
	return CPU{Client: c.Client + o.Client, Server: c.Server + o.Server, Machine: c.Machine + o.Machine, Wall: c.Wall + o.Wall, Bytes: c.Bytes + o.Bytes}
}

// Measured reports whether the phase moved bytes over a measured time.
func (c CPU) Measured() bool { return c.Bytes > 0 && c.Wall > 0 }

func (c CPU) perGiB(d time.Duration) float64 {
	if c.Bytes <= 0 {
		return 0
	}
	return d.Seconds() / (float64(c.Bytes) / (1 << 30))
}

// ClientPerGiB is the client's CPU seconds per GiB moved.
func (c CPU) ClientPerGiB() float64 { return c.perGiB(c.Client) }

// ServerPerGiB is the servers' CPU seconds per GiB moved.
func (c CPU) ServerPerGiB() float64 { return c.perGiB(c.Server) }

// PerGiB is client and server CPU seconds per GiB moved.
func (c CPU) PerGiB() float64 { return c.perGiB(c.Client + c.Server) }

// Cores is the cores client and server kept busy on average.
func (c CPU) Cores() float64 {
	if c.Wall <= 0 {
		return 0
	}
	return (c.Client + c.Server).Seconds() / c.Wall.Seconds()
}

// MachineCores is the cores every process on the machine kept busy on
// average over the phase.
func (c CPU) MachineCores() float64 {
	if c.Wall <= 0 {
		return 0
	}
	return c.Machine.Seconds() / c.Wall.Seconds()
}

// CPUBoundShare: a phase whose client and server keep at least this share
// of the machine's cores busy is CPU-bound (no core was idle for long).
const CPUBoundShare = 0.9

// CPUBound reports whether client and server used the machine's cores
// (within 10 %).
func (c CPU) CPUBound(machineCores float64) bool {
	return machineCores > 0 && c.Cores() >= CPUBoundShare*machineCores
}

// CeilingMiBps is the throughput machineCores carry at this phase's CPU
// cost per byte, client's and server's, with nothing else running: what
// the phase would reach if it were CPU-bound on the whole machine.
func (c CPU) CeilingMiBps(machineCores float64) float64 {
	per := c.PerGiB()
	if per <= 0 {
		return 0
	}
	return machineCores / per * 1024
}

// ImpliedRatio is the throughput ratio of a to b that their CPU costs
// imply when both are CPU-bound on the same cores: b's client and server
// CPU per GiB over a's. 0 when either was not measured.
func ImpliedRatio(a, b CPU) float64 {
	pa, pb := a.PerGiB(), b.PerGiB()
	if pa <= 0 || pb <= 0 {
		return 0
	}
	return pb / pa
}

// NeededPerGiB is the client and server CPU per GiB a must cost at most
// for a CPU-bound a to reach ratio times CPU-bound b's throughput on the
// same cores, and what that leaves a's server with a's client as it is
// (negative: out of reach with this client).
func NeededPerGiB(a, b CPU, ratio float64) (total, server float64) {
	if ratio <= 0 || b.PerGiB() <= 0 {
		return 0, 0
	}
	total = b.PerGiB() / ratio
	return total, total - a.ClientPerGiB()
}

// cpuMeter measures a CPU from its start to its stop.
type cpuMeter struct {
	pids                    []int
	start                   time.Time
	client, server, machine time.Duration
}

// startCPU samples this process's, the server pids' and the machine's CPU
// time now.
func startCPU(pids []int) (*cpuMeter, error) {
	m := &cpuMeter{pids: pids}
	var err error
	if m.client, m.server, m.machine, err = m.sample(); err != nil {
		return nil, err
	}
	m.start = time.Now()
	return m, nil
}

func (m *cpuMeter) sample() (client, server, machine time.Duration, err error) {
	for _, pid := range m.pids {
		t, err := ProcessCPU(pid)
		if err != nil {
			// A server that exited during the phase has no figure: its
			// phase is not one to report.
			return 0, 0, 0, fmt.Errorf("CPU time of server process %d: %w", pid, err)
		}
		server += t
	}
	if client, err = selfCPU(); err != nil {
		return 0, 0, 0, err
	}
	machine, err = machineCPU()
	return client, server, machine, err
}

// stop is the CPU since start, for bytes moved.
func (m *cpuMeter) stop(bytes int64) (CPU, error) {
	wall := time.Since(m.start)
	client, server, machine, err := m.sample()
	if err != nil {
		return CPU{}, err
	}
	return CPU{Client: client - m.client, Server: server - m.server, Machine: machine - m.machine, Wall: wall, Bytes: bytes}, nil
}

// machineCPU is the busy CPU time of every core since boot (/proc/stat).
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat (user nice
// system idle iowait irq softirq steal ..., in clock ticks) as busy time:
// everything but idle and iowait. guest and guest_nice are already in
// user and nice.
func parseProcStat(s string) (time.Duration, error) {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return 0, fmt.Errorf("parsing /proc/stat: %q has %d fields", line, len(f))
		}
		var busy int64
		for i, v := range f[1:min(len(f), 9)] { // user .. steal
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing /proc/stat: %q: %w", line, err)
			}
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return time.Duration(busy) * time.Second / clockTicks, nil
	}
	return 0, errors.New("parsing /proc/stat: no cpu line")
}

// MachineCores is the cores this process may run on: runtime.NumCPU (the
// CPU affinity mask) or less if its cgroup has a CPU quota (cgroup v2
// cpu.max, v1 cpu.cfs_quota_us), in this cgroup or an ancestor.
func MachineCores() (float64, error) {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return float64(runtime.NumCPU()), nil
		}
		return 0, err
	}
	quota, err := cgroupQuota(string(cg), "/sys/fs/cgroup", os.ReadFile)
	if err != nil {
		return 0, err
	}
	return math.Min(float64(runtime.NumCPU()), quota), nil
}

// cgroupQuota is the smallest CPU quota, in cores, of the cgroup that
// /proc/self/cgroup (cg) names and of its ancestors under root, +Inf when
// none has one. read is os.ReadFile (a test's fake elsewhere).
func cgroupQuota(cg, root string, read func(string) ([]byte, error)) (float64, error) {
	quota := math.Inf(1)
	for _, line := range strings.Split(strings.TrimSpace(cg), "\n") {
		// hierarchy-id:controllers:path; v2's is "0::/path".
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var v1 bool
		switch {
		case parts[0] == "0" && parts[1] == "":
		case hasController(parts[1], "cpu"):
			v1 = true
		default:
			continue
		}
		for dir := parts[2]; ; dir = filepath.Dir(dir) {
			q, err := readQuota(root, parts[1], dir, v1, read)
			if err != nil {
				return 0, err
			}
			quota = math.Min(quota, q)
			if dir == "/" || dir == "." || dir == "" {
				break
			}
		}
	}
	return quota, nil
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readQuota reads one cgroup directory's quota; a file that is not there
// (the v2 root has no cpu.max, a mount may not be visible) is no quota.
func readQuota(root, controllers, dir string, v1 bool, read func(string) ([]byte, error)) (float64, error) {
	if !v1 {
		b, err := read(filepath.Join(root, dir, "cpu.max"))
		if errors.Is(err, fs.ErrNotExist) {
			return math.Inf(1), nil
		} else if err != nil {
			return 0, err
		}
		return parseCPUMax(string(b))
	}
	base := filepath.Join(root, controllers, dir)
	q, err := read(filepath.Join(base, "cpu.cfs_quota_us"))
	if errors.Is(err, fs.ErrNotExist) {
		return math.Inf(1), nil
	} else if err != nil {
		return 0, err
	}
	p, err := read(filepath.Join(base, "cpu.cfs_period_us"))
	if err != nil {
		return 0, err
	}
	return parseCPUMax(strings.TrimSpace(string(q)) + " " + strings.TrimSpace(string(p)))
}

// parseCPUMax reads a cgroup v2 cpu.max ("max 100000" or "200000
// 100000": quota and period in µs) as cores, +Inf for no quota. A v1
// quota of -1 is no quota too.
func parseCPUMax(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("parsing a CPU quota %q: want quota and period", s)
	}
	if f[0] == "max" || f[0] == "-1" {
		return math.Inf(1), nil
	}
	quota, err := strconv.ParseFloat(f[0], 64)
	if err != nil || quota <= 0 {
		return 0, fmt.Errorf("parsing a CPU quota %q: bad quota", s)
	}
	period, err := strconv.ParseFloat(f[1], 64)
	if err != nil || period <= 0 {
		return 0, fmt.Errorf("parsing a CPU quota %q: bad period", s)
	}
	return quota / period, nil
}
