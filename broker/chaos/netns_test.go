package chaos

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/internal/testenv"
)

// needNetns ends the test unless this machine can make network
// namespaces (root, ip(8)).
func needNetns(t *testing.T) {
	t.Helper()
	if err := NetnsSupport(); err != nil {
		testenv.Missing(t, "network partitions: %v", err)
	}
}

func newTestNetwork(t *testing.T, nodes ...int32) *Network {
	t.Helper()
	nw, err := NewNetwork(nodes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Close(); err != nil {
			t.Errorf("closing the network: %v", err)
		}
	})
	return nw
}

// inNamespace runs f on an OS thread that is in the network namespace
// ns: the sockets f creates belong to that namespace for their whole
// life. f must not start goroutines that open sockets.
func inNamespace(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("entering namespace %s: %v", ns, err)
	}
	f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and ends with this goroutine, so no
		// other goroutine runs in the wrong namespace.
		t.Fatalf("leaving namespace %s: %v", ns, err)
	}
	runtime.UnlockOSThread()
}

// echoServer listens on addr:port in node's namespace and echoes.
func echoServer(t *testing.T, nw *Network, node int32, port int) string {
	t.Helper()
	host, err := nw.Addr(node)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(host, fmt.Sprint(port))
	var ln net.Listener
	inNamespace(t, nw.Namespace(node), func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return addr
}

// dialFrom dials addr from node's namespace (node 0: the root namespace,
// where the run's clients are).
func dialFrom(t *testing.T, nw *Network, node int32, addr string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	if node == 0 {
		return net.DialTimeout("tcp", addr, timeout)
	}
	var c net.Conn
	var err error
	inNamespace(t, nw.Namespace(node), func() { c, err = net.DialTimeout("tcp", addr, timeout) })
	return c, err
}

// echoes reports whether one byte sent on c comes back within timeout.
func echoes(c net.Conn, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	_, err := io.ReadFull(c, b)
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestNetworkCutDropsTrafficBothWays: a cut between two nodes drops their
// packets silently in both directions: new connections time out (they
// are not refused, nor failed at once by the sender's own kernel as a
// blackhole route would), an established connection stalls; the run's
// clients and the third node still reach both; after the heal the
// stalled connection delivers what it held and new connections work.
// Closing removes every namespace and link.
func TestNetworkCutDropsTrafficBothWays(t *testing.T) {
	needNetns(t)
	nw, err := NewNetwork([]int32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = nw.Close()
		}
	})
	to1, to2 := echoServer(t, nw, 1, 9092), echoServer(t, nw, 2, 9092)
	established, err := dialFrom(t, nw, 1, to2, 2*time.Second)
	if err != nil {
		t.Fatalf("node 1 to node 2 before any cut: %v", err)
	}
	defer established.Close()
	if err := echoes(established, 2*time.Second); err != nil {
		t.Fatalf("echo before the cut: %v", err)
	}

	if err := nw.Cut(1, 2); err != nil {
		t.Fatal(err)
	}
	if got := nw.Cuts(); !slices.Equal(got, [][2]int32{{1, 2}, {2, 1}}) {
		t.Fatalf("cuts %v, want [[1 2] [2 1]]", got)
	}
	if err := echoes(established, time.Second); !isTimeout(err) {
		t.Fatalf("established connection across the cut: %v, want a timeout", err)
	}
	for _, d := range []struct {
		from int32
		to   string
	}{{1, to2}, {2, to1}} {
		start := time.Now()
		c, err := dialFrom(t, nw, d.from, d.to, time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("node %d reached %s across the cut", d.from, d.to)
		}
		if !isTimeout(err) || time.Since(start) < 900*time.Millisecond {
			t.Fatalf("node %d dialling %s across the cut: %v after %v, want a timeout (packets dropped, not refused)", d.from, d.to, err, time.Since(start))
		}
	}
	for _, d := range []struct {
		from int32
		to   string
	}{{0, to1}, {0, to2}, {3, to1}, {3, to2}} {
		c, err := dialFrom(t, nw, d.from, d.to, 2*time.Second)
		if err != nil {
			t.Fatalf("node %d (0: the clients) to %s, not cut: %v", d.from, d.to, err)
		}
		err = echoes(c, 2*time.Second)
		c.Close()
		if err != nil {
			t.Fatalf("echo from node %d to %s, not cut: %v", d.from, d.to, err)
		}
	}

	if err := nw.HealAll(); err != nil {
		t.Fatal(err)
	}
	if got := nw.Cuts(); len(got) != 0 {
		t.Fatalf("cuts after the heal: %v", got)
	}
	// The byte sent across the cut is retransmitted; its echo and this
	// one arrive once TCP's backoff lets them.
	_ = established.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := established.Write([]byte{'y'}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(established, b); err != nil {
		t.Fatalf("established connection after the heal: %v", err)
	}
	c, err := dialFrom(t, nw, 2, to1, 2*time.Second)
	if err != nil {
		t.Fatalf("node 2 to node 1 after the heal: %v", err)
	}
	c.Close()

	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	for _, id := range []int32{1, 2, 3} {
		if nsExists(nw.Namespace(id)) || linkExists(nw.link+"v"+fmt.Sprint(id)) {
			t.Fatalf("node %d's namespace or veth is left after Close", id)
		}
	}
	if linkExists(nw.link + "b") {
		t.Fatal("the bridge is left after Close")
	}
}

// TestNetworkDropIsOneWay: Drop cuts one direction only. Over an
// established connection from node 2 to node 1, with node 1's packets to
// node 2 dropped, what node 2 sends still reaches node 1's server, and
// the server's answer is lost; new connections between them time out
// (the handshake needs both ways); node 3 and the clients still reach
// node 1. Dropping node 1's packets to the clients cuts the clients off
// and leaves node 3. The heal removes both.
func TestNetworkDropIsOneWay(t *testing.T) {
	needNetns(t)
	nw := newTestNetwork(t, 1, 2, 3)
	host, err := nw.Addr(1)
	if err != nil {
		t.Fatal(err)
	}
	to1 := net.JoinHostPort(host, "9092")
	var ln net.Listener
	inNamespace(t, nw.Namespace(1), func() { ln, err = net.Listen("tcp", to1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	received := make(chan byte, 16) // what node 1's server read, from anyone
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				for {
					if _, err := c.Read(b); err != nil {
						return
					}
					received <- b[0]
					_, _ = c.Write(b)
				}
			}()
		}
	}()
	from2, err := dialFrom(t, nw, 2, to1, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer from2.Close()
	if err := echoes(from2, 2*time.Second); err != nil {
		t.Fatalf("echo before the cut: %v", err)
	}
	<-received

	if err := nw.Drop(1, 2); err != nil {
		t.Fatal(err)
	}
	if got := nw.Cuts(); !slices.Equal(got, [][2]int32{{1, 2}}) {
		t.Fatalf("cuts %v, want [[1 2]]", got)
	}
	if err := echoes(from2, time.Second); !isTimeout(err) {
		t.Fatalf("node 2's echo with node 1's packets to it dropped: %v, want a timeout", err)
	}
	select {
	case <-received: // node 2's byte arrived: its direction is open
	case <-time.After(5 * time.Second):
		t.Fatal("node 2's byte did not reach node 1: the other direction is cut too")
	}
	for _, d := range []struct {
		from int32
		ok   bool
	}{{2, false}, {3, true}, {Clients, true}} {
		c, err := dialFrom(t, nw, d.from, to1, time.Second)
		if err == nil {
			c.Close()
		}
		if d.ok != (err == nil) || (err != nil && !isTimeout(err)) {
			t.Fatalf("node %d (0: the clients) dialling node 1 with node 1's packets to node 2 dropped: %v", d.from, err)
		}
	}

	if err := nw.Drop(1, Clients); err != nil {
		t.Fatal(err)
	}
	if got := nw.Cuts(); !slices.Equal(got, [][2]int32{{1, Clients}, {1, 2}}) {
		t.Fatalf("cuts %v, want [[1 0] [1 2]]", got)
	}
	if c, err := dialFrom(t, nw, Clients, to1, time.Second); err == nil || !isTimeout(err) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("the clients dialling node 1 cut from them: %v, want a timeout", err)
	}
	c, err := dialFrom(t, nw, 3, to1, 2*time.Second)
	if err != nil {
		t.Fatalf("node 3 dialling node 1, cut from the clients only: %v", err)
	}
	c.Close()

	if err := nw.HealAll(); err != nil {
		t.Fatal(err)
	}
	if got := nw.Cuts(); len(got) != 0 {
		t.Fatalf("cuts after the heal: %v", got)
	}
	for _, from := range []int32{Clients, 2} {
		c, err := dialFrom(t, nw, from, to1, 2*time.Second)
		if err != nil {
			t.Fatalf("node %d dialling node 1 after the heal: %v", from, err)
		}
		c.Close()
	}
}

// TestNetworkProcessIsTheCommand: a broker started by ip netns exec is
// that process itself, in its namespace, so kill -9 and SIGSTOP reach it
// and not a wrapper.
func TestNetworkProcessIsTheCommand(t *testing.T) {
	needNetns(t)
	dir, bin := fakeBroker(t)
	c, err := NewCluster(ClusterConfig{Binary: bin, Dir: dir, Nodes: 3, Netns: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nw := c.Network()
	cfg, err := os.ReadFile(c.configPath(2))
	if err != nil {
		t.Fatal(err)
	}
	addr2, _ := nw.Addr(2)
	addr1, _ := nw.Addr(1)
	for _, want := range []string{"listeners=PLAINTEXT://" + addr2 + ":9092", "controller.quorum.voters=1@" + addr1 + ":9095,"} {
		if !strings.Contains(string(cfg), want) {
			t.Fatalf("config lacks %q:\n%s", want, cfg)
		}
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	pid, ok := c.PID(2)
	if !ok {
		t.Fatal("node 2 not running")
	}
	// ip execs the command once it has entered the namespace.
	var inNS string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if filepath.Base(exe) == "sleep" {
			inNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
			break
		}
	}
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join("/run/netns", nw.Namespace(2)), &want); err != nil {
		t.Fatal(err)
	}
	if inNS != fmt.Sprintf("net:[%d]", want.Ino) {
		t.Fatalf("node 2's process %d is in %q, want namespace %s (inode %d)", pid, inNS, nw.Namespace(2), want.Ino)
	}
	if err := c.Pause(2); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously.
	var status []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if status, _ = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); strings.Contains(string(status), "State:\tT") {
			break
		}
	}
	if !strings.Contains(string(status), "State:\tT") {
		t.Fatalf("SIGSTOP did not stop the process:\n%s", status)
	}
	if err := c.Kill(2); err != nil || c.Running(2) {
		t.Fatalf("kill -9: %v", err)
	}
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	if !c.Running(2) {
		t.Fatal("node 2 not running after heal")
	}
}

// TestPartitionFaultsCut: each partition kind cuts what it says, the
// heal removes it all.
func TestPartitionFaultsCut(t *testing.T) {
	needNetns(t)
	_, bin := fakeBroker(t)
	for _, tc := range []struct {
		kind  FaultKind
		nodes int
		// check gets the cut pairs, each cut both ways; for the one-way
		// kinds the directions cut, [from, to].
		check func(cuts [][2]int32) error
	}{
		{PartitionIsolate, 3, oneAgainstTheRest(3)},
		{PartitionHalves, 3, oneAgainstTheRest(3)},
		{PartitionHalves, 5, func(cuts [][2]int32) error {
			// A minority of one (4 pairs) or two (6 pairs).
			if len(cuts) != 4 && len(cuts) != 6 {
				return fmt.Errorf("%d pairs cut, want 4 or 6", len(cuts))
			}
			return nil
		}},
		{PartitionBridge, 3, func(cuts [][2]int32) error {
			if len(cuts) != 1 {
				return fmt.Errorf("%d pairs cut, want 1: the bridge reaches both others", len(cuts))
			}
			return nil
		}},
		{PartitionOneWay, 3, func(cuts [][2]int32) error {
			// One broker and one or both others, one direction.
			if len(cuts) != 1 && len(cuts) != 2 {
				return fmt.Errorf("%d directions cut, want 1 or 2", len(cuts))
			}
			if len(cuts) == 2 && cuts[0][0] != cuts[1][0] && cuts[0][1] != cuts[1][1] {
				return errors.New("the two directions cut do not share their broker on one side")
			}
			for _, p := range cuts {
				if p[0] == Clients || p[1] == Clients || slices.Contains(cuts, [2]int32{p[1], p[0]}) {
					return fmt.Errorf("%v: a cut both ways, or of the clients", p)
				}
			}
			return nil
		}},
		{PartitionClients, 3, func(cuts [][2]int32) error {
			if len(cuts) != 1 || cuts[0][1] != Clients || cuts[0][0] == Clients {
				return fmt.Errorf("cuts %v, want one broker's packets to the clients (0)", cuts)
			}
			return nil
		}},
		{PartitionBridge, 5, func(cuts [][2]int32) error {
			// Halves of 2 and 2 around the bridge.
			if len(cuts) != 4 {
				return fmt.Errorf("%d pairs cut, want 4", len(cuts))
			}
			seen := map[int32]bool{}
			for _, p := range cuts {
				seen[p[0]], seen[p[1]] = true, true
			}
			if len(seen) != 4 {
				return fmt.Errorf("nodes %v cut, want four (all but the bridge)", seen)
			}
			return nil
		}},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.kind, tc.nodes), func(t *testing.T) {
			c, err := NewCluster(ClusterConfig{Binary: bin, Dir: t.TempDir(), Nodes: tc.nodes, Netns: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			for seed := range uint64(4) {
				n := &nemesis{cfg: NemesisConfig{Logger: testLogger(), Seed: seed}, c: c, rec: NewRecorder(), rnd: newRand(seed)}
				if err := n.inject(t.Context(), tc.kind); err != nil {
					t.Fatal(err)
				}
				cuts := c.Network().Cuts()
				if tc.kind != PartitionOneWay && tc.kind != PartitionClients {
					if cuts, err = bothWays(cuts); err != nil {
						t.Fatalf("seed %d: %v", seed, err)
					}
				}
				if err := tc.check(cuts); err != nil {
					t.Fatalf("seed %d: %v (cuts %v)", seed, err, c.Network().Cuts())
				}
				if err := c.Network().HealAll(); err != nil {
					t.Fatal(err)
				}
				if cuts := c.Network().Cuts(); len(cuts) != 0 {
					t.Fatalf("cuts left after the heal: %v", cuts)
				}
			}
		})
	}
}

// bothWays turns the directions cut into the pairs cut both ways, a < b;
// a direction cut without its reverse is an error.
func bothWays(cuts [][2]int32) ([][2]int32, error) {
	var out [][2]int32
	for _, p := range cuts {
		if !slices.Contains(cuts, [2]int32{p[1], p[0]}) {
			return nil, fmt.Errorf("%d to %d is cut, %d to %d is not", p[0], p[1], p[1], p[0])
		}
		if p[0] < p[1] {
			out = append(out, p)
		}
	}
	return out, nil
}

// oneAgainstTheRest checks that one node is cut from each of the others
// and nothing else is.
func oneAgainstTheRest(nodes int) func([][2]int32) error {
	return func(cuts [][2]int32) error {
		count := map[int32]int{}
		for _, p := range cuts {
			count[p[0]]++
			count[p[1]]++
		}
		if len(cuts) != nodes-1 {
			return fmt.Errorf("%d pairs cut, want %d", len(cuts), nodes-1)
		}
		for id, k := range count {
			if k == nodes-1 {
				return nil
			} else if k != 1 {
				return fmt.Errorf("node %d in %d cuts", id, k)
			}
		}
		return errors.New("no node is cut from all the others")
	}
}

// TestRemoveStaleNetworks: what a run whose process is gone left behind
// is removed; a live run's network is not.
func TestRemoveStaleNetworks(t *testing.T) {
	needNetns(t)
	live := newTestNetwork(t, 1)
	dead := deadPID(t)
	ns := fmt.Sprintf("%s%d-7-1", netnsPrefix, dead)
	link := fmt.Sprintf("tc%dk7b", dead)
	if _, err := ip("netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = ip("netns", "del", ns) })
	if _, err := ip("link", "add", link, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if linkExists(link) {
			_, _ = ip("link", "del", link)
		}
	})
	RemoveStaleNetworks()
	if nsExists(ns) || linkExists(link) {
		t.Fatalf("namespace %s or link %s of dead pid %d left", ns, link, dead)
	}
	if !nsExists(live.Namespace(1)) || !linkExists(live.link+"b") {
		t.Fatal("a live run's network was removed")
	}
}

// deadPID is a pid no process has: a child that exited and was reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Skipf("pid %d was reused at once", pid)
	}
	return pid
}

func TestCheckFaults(t *testing.T) {
	for _, tc := range []struct {
		kinds        []FaultKind
		netns, disks bool
		want         string // "" for no error
	}{
		{AllFaults, false, false, ""},
		{append(slices.Clone(AllFaults), PartitionFaults...), true, false, ""},
		{[]FaultKind{Reassign}, false, false, ""},
		{nil, true, true, "no fault kind"},
		{[]FaultKind{KillRandom, "partition"}, true, true, `unknown fault kind "partition"`},
		{[]FaultKind{KillRandom, PartitionIsolate}, false, true, "partition-isolate cuts the network"},
		{[]FaultKind{PartitionBridge, PartitionLeader}, false, false, "partition-leader cuts the network"},
		{[]FaultKind{PartitionOneWay, PartitionClients}, false, false, "partition-clients cuts the network"},
		{[]FaultKind{KillRandom, DiskFull}, true, true, ""},
		{[]FaultKind{KillRandom, DiskFull}, true, false, "disk-full fills a broker's disk"},
	} {
		err := CheckFaults(tc.kinds, tc.netns, tc.disks)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckFaults(%v, netns %v, disks %v) = %v, want %q", tc.kinds, tc.netns, tc.disks, err, tc.want)
		}
	}
}

// TestLeaderTarget: partition-leader cuts the controller or a partition
// leader; with no controller named (between two), a partition leader;
// with neither, it says so.
func TestLeaderTarget(t *testing.T) {
	rnd := newRand(1)
	seen := map[string]bool{}
	for range 50 {
		id, role, err := leaderTarget(2, []int32{1, 3}, rnd)
		if err != nil || (role == "the active controller") != (id == 2) || (id != 1 && id != 2 && id != 3) {
			t.Fatalf("controller 2, leaders [1 3]: %d %q %v", id, role, err)
		}
		seen[role] = true
	}
	if len(seen) != 2 {
		t.Fatalf("50 picks chose only %v", seen)
	}
	for range 50 {
		if id, role, err := leaderTarget(-1, []int32{3}, rnd); err != nil || id != 3 || role != "a partition leader" {
			t.Fatalf("no controller, leader 3: %d %q %v", id, role, err)
		}
	}
	if id, _, err := leaderTarget(-1, nil, rnd); err == nil {
		t.Fatalf("no controller, no leader: picked %d", id)
	}
	if id, _, err := leaderTarget(1, nil, rnd); err != nil || id != 1 {
		t.Fatalf("controller 1, no leader: %d %v", id, err)
	}
}
