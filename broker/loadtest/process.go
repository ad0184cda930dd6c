package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a tributary-broker run process.
type Process struct {
	Addr string
	// Listeners are the bound address of each listener, by name.
	Listeners map[string]string
	cmd       *exec.Cmd
	done      chan struct{}
}

var (
	servingRE  = regexp.MustCompile(`msg="serving Kafka protocol" listen=(\S+)`)
	listenerRE = regexp.MustCompile(`msg=listener name=(\S+) protocol=\S+ addr=(\S+)`)
)

// StartBroker runs `bin run` on 127.0.0.1 (port chosen by the kernel, or
// listen if given) with dataDir and waits until it serves. extra are
// more flags.
func StartBroker(ctx context.Context, bin, dataDir, listen string, extra ...string) (*Process, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	args := append([]string{"run", "--listen", listen, "--data-dir", dataDir}, extra...)
	return start(ctx, exec.Command(bin, args...))
}

// StartBrokerConfig runs `bin run --config configFile` with env added to
// the environment and waits until it serves.
func StartBrokerConfig(ctx context.Context, bin, configFile string, env ...string) (*Process, error) {
	cmd := exec.Command(bin, "run", "--config", configFile)
	cmd.Env = env
	return start(ctx, cmd)
}

func start(ctx context.Context, cmd *exec.Cmd) (*Process, error) {
	// The "serving" line that gives the address is logged at info.
	cmd.Env = append(append(os.Environ(), cmd.Env...), "TRIBUTARY_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	listeners := map[string]string{}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			// Listener lines come before the serving line, which hands
			// the map over.
			if m := listenerRE.FindStringSubmatch(sc.Text()); m != nil && listeners != nil {
				listeners[m[1]] = m[2]
			}
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil && listeners != nil {
				p.Listeners, listeners = listeners, nil
				addrCh <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case p.Addr = <-addrCh:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before serving", cmd.Path)
	case <-ctx.Done():
		p.Kill()
		return nil, fmt.Errorf("%s did not serve: %w", cmd.Path, ctx.Err())
	}
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM (clean shutdown) and waits, killing after limit.
func (p *Process) Stop(limit time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.Kill()
	}
}

// RSS is the resident set size of a process (VmRSS in /proc/<pid>/status).
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTicks = 100

// ProcessCPU is the user and system CPU time a process has used so far
// (utime and stime of /proc/<pid>/stat), at a resolution of 10 ms.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := parsePIDStat(string(b))
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return t, nil
}

// parsePIDStat reads utime and stime from a /proc/<pid>/stat line.
func parsePIDStat(s string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: the fields counted from 3 start after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields, want at least 15", len(f)+2)
	}
	var ticks int64
	for _, v := range f[11:13] { // fields 14 and 15: utime, stime
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
