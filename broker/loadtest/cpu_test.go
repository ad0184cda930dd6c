package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestCPUArithmetic(t *testing.T) {
	gib := int64(1 << 30)
	c := CPU{Client: 2 * time.Second, Server: time.Second, Machine: 4 * time.Second, Wall: 2 * time.Second, Bytes: 2 * gib}
	for name, got := range map[string][2]float64{
		"ClientPerGiB":    {c.ClientPerGiB(), 1},
		"ServerPerGiB":    {c.ServerPerGiB(), 0.5},
		"PerGiB":          {c.PerGiB(), 1.5},
		"Cores":           {c.Cores(), 1.5},
		"MachineCores":    {c.MachineCores(), 2},
		"CeilingMiBps(2)": {c.CeilingMiBps(2), 2 / 1.5 * 1024},
	} {
		if math.Abs(got[0]-got[1]) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got[0], got[1])
		}
	}
	// 1.5 of 2 cores is under 90 %; 1.8 of 2 is CPU-bound.
	if c.CPUBound(2) {
		t.Errorf("1.5 cores of 2 counted as CPU-bound")
	}
	bound := CPU{Client: 2 * time.Second, Server: 1600 * time.Millisecond, Wall: 2 * time.Second, Bytes: gib}
	if !bound.CPUBound(2) || bound.CPUBound(4) {
		t.Errorf("1.8 cores: CPU-bound of 2 %v (want true), of 4 %v (want false)", bound.CPUBound(2), bound.CPUBound(4))
	}
	// Summed rounds: the costs of the sum are the weighted costs.
	sum := c.Add(bound)
	if sum.Bytes != 3*gib || sum.Client != 4*time.Second || sum.Server != 2600*time.Millisecond || sum.Wall != 4*time.Second {
		t.Errorf("sum %+v", sum)
	}
	if got, want := sum.PerGiB(), 6.6/3; math.Abs(got-want) > 1e-9 {
		t.Errorf("PerGiB of the sum = %v, want %v", got, want)
	}
	var none CPU
	if none.Measured() || none.PerGiB() != 0 || none.Cores() != 0 || none.CeilingMiBps(2) != 0 || none.CPUBound(2) {
		t.Errorf("an unmeasured phase has figures: %+v", none)
	}
}

// The ratio two CPU-bound sides reach on the same cores is the inverse of
// their costs; the cost one side needs for a target follows from the
// other's, and what its server may spend from its own client's cost.
func TestImpliedRatioAndNeeded(t *testing.T) {
	gib := int64(1 << 30)
	// tributary: client 2.1 + broker 1.2 = 3.3 s/GiB; kfake: 2.0 + 0.8 = 2.8.
	trib := CPU{Client: 2100 * time.Millisecond, Server: 1200 * time.Millisecond, Wall: time.Second, Bytes: gib}
	kfake := CPU{Client: 2000 * time.Millisecond, Server: 800 * time.Millisecond, Wall: time.Second, Bytes: gib}
	if got, want := ImpliedRatio(trib, kfake), 2.8/3.3; math.Abs(got-want) > 1e-9 {
		t.Errorf("ImpliedRatio = %v, want %v", got, want)
	}
	total, server := NeededPerGiB(trib, kfake, 2)
	if math.Abs(total-1.4) > 1e-9 || math.Abs(server-(1.4-2.1)) > 1e-9 {
		t.Errorf("NeededPerGiB(2x) = %v, %v; want 1.4, -0.7", total, server)
	}
	total, server = NeededPerGiB(trib, kfake, 0.5)
	if math.Abs(total-5.6) > 1e-9 || math.Abs(server-3.5) > 1e-9 {
		t.Errorf("NeededPerGiB(0.5x) = %v, %v; want 5.6, 3.5", total, server)
	}
	if r := ImpliedRatio(trib, CPU{}); r != 0 {
		t.Errorf("ImpliedRatio against an unmeasured side = %v, want 0", r)
	}
	if total, _ := NeededPerGiB(trib, CPU{}, 2); total != 0 {
		t.Errorf("NeededPerGiB against an unmeasured side = %v, want 0", total)
	}
}

func TestParsePIDStat(t *testing.T) {
	// comm may hold spaces and parentheses; utime 250, stime 130 ticks.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 8 0 1000 0 0\n"
	got, err := parsePIDStat(line)
	if err != nil || got != 3800*time.Millisecond {
		t.Errorf("parsePIDStat = %v, %v; want 3.8s", got, err)
	}
	for _, bad := range []string{"4242 no name here", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 x 130 0"} {
		if _, err := parsePIDStat(bad); err == nil {
			t.Errorf("parsePIDStat(%q) accepted", bad)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// user 100 nice 10 system 50 idle 1000 iowait 40 irq 5 softirq 3
	// steal 2 guest 7 guest_nice 0: busy 170 ticks.
	s := "cpu  100 10 50 1000 40 5 3 2 7 0\ncpu0 50 5 25 500 20 2 1 1 3 0\nintr 1 2 3\n"
	got, err := parseProcStat(s)
	if err != nil || got != 1700*time.Millisecond {
		t.Errorf("parseProcStat = %v, %v; want 1.7s", got, err)
	}
	for _, bad := range []string{"cpu0 1 2 3 4 5\n", "cpu 1 2\n", "cpu 1 x 3 4 5\n"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string]float64{"max 100000\n": math.Inf(1), "200000 100000": 2, "150000 100000\n": 1.5, "-1 100000": math.Inf(1)} {
		if got, err := parseCPUMax(in); err != nil || got != want {
			t.Errorf("parseCPUMax(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "max", "x 100000", "100000 0", "0 100000"} {
		if _, err := parseCPUMax(bad); err == nil {
			t.Errorf("parseCPUMax(%q) accepted", bad)
		}
	}
}

// A quota anywhere on the cgroup's path counts, the smallest wins, in
// cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us over cpu.cfs_period_us).
func TestCgroupQuota(t *testing.T) {
	files := map[string]string{
		"/sys/fs/cgroup/a/cpu.max":                       "300000 100000\n",
		"/sys/fs/cgroup/a/b/cpu.max":                     "max 100000\n",
		"/sys/fs/cgroup/cpu,cpuacct/x/cpu.cfs_quota_us":  "150000\n",
		"/sys/fs/cgroup/cpu,cpuacct/x/cpu.cfs_period_us": "100000\n",
		"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":    "-1\n",
		"/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us":   "100000\n",
		"/sys/fs/cgroup/bad/cpu.max":                     "lots\n",
	}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	for cg, want := range map[string]float64{
		"0::/a/b\n":                         3,
		"0::/\n":                            math.Inf(1),
		"4:memory:/m\n3:cpu,cpuacct:/x\n":   1.5,
		"3:cpu,cpuacct:/\n1:name=systemd:/": math.Inf(1),
		"0::/elsewhere\n":                   math.Inf(1),
	} {
		if got, err := cgroupQuota(cg, "/sys/fs/cgroup", read); err != nil || got != want {
			t.Errorf("cgroupQuota(%q) = %v, %v; want %v", cg, got, err, want)
		}
	}
	if _, err := cgroupQuota("0::/bad\n", "/sys/fs/cgroup", read); err == nil {
		t.Error("a malformed cpu.max accepted")
	}
	n, err := MachineCores()
	if err != nil || n <= 0 || math.IsInf(n, 1) {
		t.Errorf("MachineCores = %v, %v", n, err)
	}
}

// burnCommand makes the test binary a child that, on each line of its
// stdin naming a duration, spends that much CPU time of its own (by its
// own clock, whatever the machine's load) and answers "done".
const burnCommand = "burn-cpu"

func serveBurn(in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		d, err := time.ParseDuration(sc.Text())
		if err != nil {
			return err
		}
		if err := burn(d); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(out, "done"); err != nil {
			return err
		}
	}
	return sc.Err()
}

// burn spins until this process has used d more CPU time.
func burn(d time.Duration) error {
	start, err := selfCPU()
	if err != nil {
		return err
	}
	x := uint64(1)
	for {
		for range 100000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		now, err := selfCPU()
		if err != nil {
			return err
		}
		if now-start >= d {
			return nil
		}
		if x == 0 { // keeps the loop from being optimised away
			return nil
		}
	}
}

// The meter counts a server process's CPU time and this process's, each
// as spent: a child that burns 400 ms while this process burns 300 ms
// measures so on each side (at the kernel's 10 ms tick), whatever else the
// machine runs.
func TestCPUMeterCountsEachSide(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, burnCommand)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	replies := bufio.NewScanner(stdout)
	m, err := startCPU([]int{cmd.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintln(stdin, "400ms"); err != nil {
		t.Fatal(err)
	}
	if err := burn(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if !replies.Scan() || replies.Text() != "done" {
		t.Fatalf("the burner answered %q (%v)", replies.Text(), replies.Err())
	}
	c, err := m.stop(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	// The child's own clock said 400 ms; /proc reports it in ticks. This
	// process also ran the test's other goroutines (the runtime, the pipe
	// reads): a little more than the 300 ms it burned.
	if c.Server < 390*time.Millisecond || c.Server > 450*time.Millisecond {
		t.Errorf("server CPU %v, want 400ms (the child's burn)", c.Server)
	}
	if c.Client < 290*time.Millisecond || c.Client > 450*time.Millisecond {
		t.Errorf("client CPU %v, want about 300ms (this process's burn)", c.Client)
	}
	if got := c.ServerPerGiB(); math.Abs(got-c.Server.Seconds()) > 1e-9 {
		t.Errorf("ServerPerGiB over 1 GiB = %v, want %v", got, c.Server.Seconds())
	}
	// Every process's busy time includes both (and whatever else ran).
	if c.Machine < c.Client+c.Server-20*time.Millisecond {
		t.Errorf("machine busy %v, less than client %v + server %v", c.Machine, c.Client, c.Server)
	}
	if c.Wall <= 0 || c.Cores() <= 0 {
		t.Errorf("wall %v, cores %v", c.Wall, c.Cores())
	}
	// A process that is gone is an error, not a zero.
	_ = stdin.Close()
	_ = cmd.Wait()
	if _, err := m.stop(1); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("server process %d", cmd.Process.Pid)) {
		t.Errorf("the meter on a process that is gone: %v, want an error naming it", err)
	}
}
