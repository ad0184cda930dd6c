package chaos

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Network gives each broker of a run its own network namespace, so that
// the run can cut the network between brokers for real: a namespace per
// node with a veth whose other end is in a bridge in the root namespace,
// addresses from a private /24 that no route of the machine covers (the
// bridge holds .1, so the run's clients, in the root namespace, reach
// every broker over it; node i holds .10+i). Every name starts with the
// run's prefix (namespaces tributary-chaos-<pid>-<k>-<node>, links
// tc<pid>k<k>b and tc<pid>k<k>v<node>), so that a run can remove what a
// run that crashed left behind: its pid is gone.
//
// A cut between two brokers is a permanent neighbour entry, in each one's
// namespace, that gives the other's address a hardware address nobody
// has. Frames to it leave the sender, the bridge floods them (it never
// learned that address), and every port drops them: the traffic is
// silently lost in both directions, established connections included,
// as a firewall's DROP or a dead link between Availability Zones loses
// it. Retransmissions and new connections time out; nothing is refused.
// Blackhole or prohibit routes would be simpler but are not a network
// fault: the sender's own kernel fails the send at once (connect returns
// EINVAL or EACCES), which a broker can tell from a partition.
//
// Each of the two entries drops one direction only (Drop): with one of
// them the cut is asymmetric, which over TCP means that one side still
// receives what the other sends and acts on it, while its answers and
// acknowledgements are lost. The clients' side is the root namespace's
// address on the bridge: an entry for it in a broker's namespace cuts that
// broker from the run's clients and from nothing else.
type Network struct {
	prefix string // namespaces: prefix + "-<node>"
	link   string // links: link + "b" (bridge) and link + "v<node>"
	subnet netip.Prefix
	nodes  []int32

	mu   sync.Mutex
	cuts map[[2]int32]bool // [from, to]: from's packets to to are dropped
}

// Names of what runs create, and the pattern that finds a run's pid in
// them.
const netnsPrefix = "tributary-chaos-"

var (
	netnsName = regexp.MustCompile(`^` + netnsPrefix + `(\d+)-\d+-\d+$`)
	linkName  = regexp.MustCompile(`^tc(\d+)k\d+(b|[vp]\d+)$`)
	netSerial atomic.Uint32
)

// unreachableMAC is the hardware address a cut gives a peer: locally
// administered, never any interface's.
const unreachableMAC = "02:74:72:69:62:00"

// NetnsSupport says why this machine cannot run brokers in network
// namespaces (nil when it can): it needs root and iproute2's ip.
func NetnsSupport() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("ip (Debian package iproute2) is not installed")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("no network namespaces in this kernel: %w", err)
	}
	return nil
}

// ip runs ip(8), returning its output or an error quoting it.
func ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// lockNetwork serialises the runs of this machine while one of them picks
// a subnet or removes stale namespaces.
func lockNetwork() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tributary-chaos-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("network lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// NewNetwork creates the bridge and a namespace per node. On error it
// removes what it created.
func NewNetwork(nodes []int32) (*Network, error) {
	if err := NetnsSupport(); err != nil {
		return nil, err
	}
	unlock, err := lockNetwork()
	if err != nil {
		return nil, err
	}
	defer unlock()
	RemoveStaleNetworks()
	subnet, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	k := netSerial.Add(1) % 100
	n := &Network{
		prefix: fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), k),
		link:   fmt.Sprintf("tc%dk%d", os.Getpid(), k),
		subnet: subnet,
		nodes:  slices.Clone(nodes),
		cuts:   map[[2]int32]bool{},
	}
	if err := n.create(); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

func (n *Network) create() error {
	br := n.link + "b"
	gw := n.Gateway() + "/24"
	for _, args := range [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", gw, "dev", br},
		{"link", "set", br, "up"},
	} {
		if _, err := ip(args...); err != nil {
			return err
		}
	}
	for _, id := range n.nodes {
		ns, host, peer := n.Namespace(id), n.link+"v"+fmt.Sprint(id), n.link+"p"+fmt.Sprint(id)
		addr, err := n.Addr(id)
		if err != nil {
			return err
		}
		for _, args := range [][]string{
			{"netns", "add", ns},
			{"link", "add", host, "type", "veth", "peer", "name", peer},
			{"link", "set", peer, "netns", ns},
			{"-n", ns, "link", "set", peer, "name", "eth0"},
			{"link", "set", host, "master", br},
			{"link", "set", host, "up"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		} {
			if _, err := ip(args...); err != nil {
				return fmt.Errorf("namespace of node %d: %w", id, err)
			}
		}
	}
	return nil
}

// freeSubnet picks a /24 of 10.213.0.0/16 that no address or route of
// the root namespace overlaps (another run's bridge included).
func freeSubnet() (netip.Prefix, error) {
	var used []netip.Prefix
	for _, args := range [][]string{{"-4", "-o", "addr", "show"}, {"-4", "route", "show", "table", "all"}} {
		out, err := ip(args...)
		if err != nil {
			return netip.Prefix{}, err
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil && p.Bits() > 0 {
				used = append(used, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				used = append(used, netip.PrefixFrom(a, 32))
			}
		}
	}
	for third := range 256 {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(third), 0}), 24)
		if !slices.ContainsFunc(used, cand.Overlaps) {
			return cand, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 in 10.213.0.0/16 for the run's network")
}

// RemoveStaleNetworks removes the namespaces and links that runs whose
// process is gone left behind.
func RemoveStaleNetworks() {
	stale := func(pid string) bool {
		p, err := strconv.Atoi(pid)
		if err != nil || p == os.Getpid() {
			return false
		}
		_, err = os.Stat(fmt.Sprintf("/proc/%d", p))
		return errors.Is(err, os.ErrNotExist)
	}
	if out, err := ip("-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if m := linkName.FindStringSubmatch(name); m != nil && stale(m[1]) {
				_, _ = ip("link", "del", name)
			}
		}
	}
	if out, err := ip("netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if m := netnsName.FindStringSubmatch(f[0]); m != nil && stale(m[1]) {
				_, _ = ip("netns", "del", f[0])
			}
		}
	}
}

// Namespace is the name of a node's network namespace.
func (n *Network) Namespace(id int32) string { return fmt.Sprintf("%s-%d", n.prefix, id) }

// Gateway is the root namespace's address on the bridge: where the run's
// clients come from.
func (n *Network) Gateway() string { return n.subnet.Addr().Next().String() }

// Addr is a node's address.
func (n *Network) Addr(id int32) (string, error) {
	i := slices.Index(n.nodes, id)
	if i < 0 || 10+i > 250 {
		return "", fmt.Errorf("node %d has no address in the run's network", id)
	}
	b := n.subnet.Addr().As4()
	b[3] = byte(10 + i)
	return netip.AddrFrom4(b).String(), nil
}

// Command is a command that runs in a node's namespace. ip netns exec
// execs it in place (no child), so the process is the command itself:
// kill -9 and SIGSTOP reach it, not a wrapper.
func (n *Network) Command(id int32, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Namespace(id), name}, args...)...)
}

// Clients stands for the run's clients, in the root namespace, where a
// node id is expected: Drop(id, Clients) cuts a broker from the clients.
const Clients int32 = 0

// side is where a node's (or the clients') neighbour entries live: the
// ip(8) arguments that name its namespace, its device on the run's
// network, and its address.
func (n *Network) side(id int32) (nsArgs []string, dev, addr string, err error) {
	if id == Clients {
		return nil, n.link + "b", n.Gateway(), nil
	}
	addr, err = n.Addr(id)
	return []string{"-n", n.Namespace(id)}, "eth0", addr, err
}

// Drop drops every packet from node from to node to, in that direction
// only: a permanent neighbour entry in from's namespace gives to's address
// a hardware address nobody has. Packets from to to from still arrive,
// so over TCP to's data reaches from and from's acknowledgements and
// answers are lost: from reads what to sends and acts on it, to never
// hears back (an asymmetric partition). Clients (0) as to cuts a broker's
// packets to the run's clients; as from, the clients' packets to it.
func (n *Network) Drop(from, to int32) error {
	if from == to {
		return fmt.Errorf("cannot cut node %d from itself", from)
	}
	nsArgs, dev, _, err := n.side(from)
	if err != nil {
		return err
	}
	_, _, toAddr, err := n.side(to)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cuts[[2]int32{from, to}] = true // before: a half-made cut is healed too
	_, err = ip(append(nsArgs, "neigh", "replace", toAddr, "dev", dev, "lladdr", unreachableMAC, "nud", "permanent")...)
	return err
}

// Cut drops every packet between nodes a and b, both ways.
func (n *Network) Cut(a, b int32) error {
	return errors.Join(n.Drop(a, b), n.Drop(b, a))
}

// Partition cuts every node of one side from every node of the other.
func (n *Network) Partition(side1, side2 []int32) error {
	var errs []error
	for _, a := range side1 {
		for _, b := range side2 {
			errs = append(errs, n.Cut(a, b))
		}
	}
	return errors.Join(errs...)
}

// Cuts lists the directions cut now, [from, to] (a cut both ways is two
// entries), sorted.
func (n *Network) Cuts() [][2]int32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out [][2]int32
	for p := range n.cuts {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y [2]int32) int {
		if x[0] != y[0] {
			return int(x[0] - y[0])
		}
		return int(x[1] - y[1])
	})
	return out
}

// HealAll removes every cut: the nodes learn each other's real hardware
// address again by ARP.
func (n *Network) HealAll() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for p := range n.cuts {
		nsArgs, dev, _, err := n.side(p[0])
		_, _, toAddr, err2 := n.side(p[1])
		if err = errors.Join(err, err2); err == nil {
			err = unneigh(nsArgs, dev, toAddr)
		}
		errs = append(errs, err)
		delete(n.cuts, p)
	}
	return errors.Join(errs...)
}

// unneigh removes a cut's neighbour entry; one already gone is fine.
func unneigh(nsArgs []string, dev, addr string) error {
	out, err := ip(append(slices.Clone(nsArgs), "neigh", "show", "to", addr, "dev", dev, "nud", "permanent")...)
	if err != nil || !strings.Contains(out, unreachableMAC) {
		return err
	}
	_, err = ip(append(slices.Clone(nsArgs), "neigh", "del", addr, "dev", dev)...)
	return err
}

// Close removes the bridge, the veths and the namespaces. A process
// still in a namespace keeps it (and its end of the veth) alive, so the
// root end of each veth is deleted explicitly: that removes both ends.
func (n *Network) Close() error {
	unlock, err := lockNetwork()
	if err == nil {
		defer unlock()
	}
	var errs []error
	for _, id := range n.nodes {
		host := n.link + "v" + fmt.Sprint(id)
		if linkExists(host) {
			_, err := ip("link", "del", host)
			errs = append(errs, err)
		}
		if nsExists(n.Namespace(id)) {
			_, err := ip("netns", "del", n.Namespace(id))
			errs = append(errs, err)
		}
	}
	if br := n.link + "b"; linkExists(br) {
		_, err := ip("link", "del", br)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}
