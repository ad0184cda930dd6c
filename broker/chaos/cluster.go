package chaos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// NodeSpec is one broker process of a test cluster. Each node gets its
// own address so that it looks like its own machine: a 127.0.0.x on
// loopback, as in the local cloud, or with ClusterConfig.Netns its
// namespace's address on the run's bridge.
type NodeSpec struct {
	ID              int32
	Rack            string
	Host            string // 127.0.0.x, or the node's address in its namespace
	KafkaPort       int
	ControllerPort  int
	ReplicationPort int // inter.broker.listener.port: followers fetch here
	DataDir         string
}

// KafkaAddr is the node's client address.
func (n NodeSpec) KafkaAddr() string { return net.JoinHostPort(n.Host, fmt.Sprint(n.KafkaPort)) }

// ControllerAddr is the node's Raft address.
func (n NodeSpec) ControllerAddr() string {
	return net.JoinHostPort(n.Host, fmt.Sprint(n.ControllerPort))
}

// ClusterConfig describes the processes to run.
type ClusterConfig struct {
	// Binary is the tributary-broker executable.
	Binary string
	// Dir holds each node's data directory, config file and log.
	Dir string
	// Nodes is how many brokers; racks cycle a, b, c.
	Nodes int
	// Settings are extra broker settings for every node (Kafka names),
	// e.g. min.insync.replicas.
	Settings map[string]string
	// TLS runs every connection over TLS: clients on an SSL listener
	// (trusting the run's CA), replication and the metadata quorum with
	// broker certificates both ways. Each node gets its own certificate
	// for its address from a CA made for the run.
	TLS bool
	// Netns runs each broker in its own network namespace (Network), so
	// that the network between brokers can be cut: the partition faults
	// need it. It needs root and ip(8).
	Netns bool
	// DiskSize, when positive, gives each broker a disk of its own of that
	// many bytes (a tmpfs mounted on the node's directory, holding its data
	// directory) that the disk-full fault fills. It needs root.
	DiskSize int64
}

// Cluster runs broker processes and injects process faults: kill -9,
// SIGSTOP/SIGCONT, SIGTERM, restart, and the loss of a whole rack ("AZ").
type Cluster struct {
	cfg   ClusterConfig
	nodes []NodeSpec
	ca    *tlstest.CA // with TLS
	net   *Network    // with Netns

	mu      sync.Mutex
	procs   map[int32]*process
	crashes []Crash
	disks   []string         // mounted disks, unmounted by Close
	full    map[int32]func() // disks FillDisk keeps full: stops that, until FreeDisks
}

type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process exited
	paused bool
	log    *os.File
	// stopped is set when the run sent SIGKILL or SIGTERM: an exit
	// without it is the broker's own (Crashes).
	stopped bool
}

// Crash is a broker process that exited without the run stopping it.
type Crash struct {
	Node  int32
	At    time.Time
	State string // how it ended (exit status or signal)
}

// NewCluster lays out the nodes (addresses, ports, directories, config
// files) without starting them.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, errors.New("a cluster needs at least one node")
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("broker binary: %w", err)
	}
	c := &Cluster{cfg: cfg, procs: map[int32]*process{}, full: map[int32]func(){}}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	if cfg.DiskSize > 0 {
		if err := DiskSupport(); err != nil {
			return nil, err
		}
		RemoveStaleDisks()
	}
	if cfg.Netns {
		var ids []int32
		for i := range cfg.Nodes {
			ids = append(ids, int32(i+1))
		}
		var err error
		if c.net, err = NewNetwork(ids); err != nil {
			return nil, fmt.Errorf("the run's network: %w", err)
		}
	}
	if err := c.layOut(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// layOut makes the CA, the nodes' addresses, ports, directories and
// config files.
func (c *Cluster) layOut() error {
	cfg := c.cfg
	if cfg.TLS {
		var err error
		if c.ca, err = tlstest.NewCA("tributary-chaos CA"); err != nil {
			return err
		}
		if err := tlstest.WriteFile(c.caPath(), c.ca.PEM); err != nil {
			return err
		}
	}
	for i := range cfg.Nodes {
		host := fmt.Sprintf("127.0.0.%d", 10+i)
		var ports []int
		if c.net != nil {
			// The namespace is the node's alone: the MSK ports are free.
			var err error
			if host, err = c.net.Addr(int32(i + 1)); err != nil {
				return err
			}
			ports = []int{9092, 9095, 9093}
		} else {
			var err error
			if ports, err = FreePorts(host, 3); err != nil {
				return err
			}
		}
		n := NodeSpec{ID: int32(i + 1), Rack: string(rune('a' + i%3)), Host: host, KafkaPort: ports[0], ControllerPort: ports[1], ReplicationPort: ports[2],
			DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("node-%d", i+1), "data")}
		if cfg.DiskSize > 0 {
			disk := c.diskPath(n.ID)
			if err := mountDisk(disk, n.ID, cfg.DiskSize); err != nil {
				return err
			}
			c.disks = append(c.disks, disk)
			n.DataDir = filepath.Join(disk, "data")
		}
		if err := os.MkdirAll(n.DataDir, 0o750); err != nil {
			return err
		}
		if c.ca != nil {
			cert, err := c.ca.IssueNode(fmt.Sprintf("broker-%d", n.ID), n.ID, n.Host)
			if err != nil {
				return err
			}
			if err := tlstest.WriteFile(c.keystorePath(n.ID), cert.Keystore()); err != nil {
				return err
			}
		}
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		if err := os.WriteFile(c.configPath(n.ID), []byte(c.configFile(n)), 0o640); err != nil {
			return fmt.Errorf("writing config of node %d: %w", n.ID, err)
		}
	}
	return nil
}

// FreePorts returns n ports free on host a moment ago, chosen below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range): the kernel gives
// ports of that range to every socket bound to port 0 and to outgoing
// connections, so a port found free there can be taken by anyone before
// the broker binds it (seen in CI as "bind: address already in use" on a
// broker started minutes after its ports were found). Below the range
// only a process that picks the same port on purpose can.
func FreePorts(host string, n int) ([]int, error) {
	hi := ephemeralStart()
	lo := max(hi-12000, 1024)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("finding %d free ports on %s between %d and %d: %d found in 1000 tries", n, host, lo, hi, len(out))
		}
		port := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue // taken
		}
		lns = append(lns, ln)
		out = append(out, port)
	}
	return out, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (32768 when it cannot be read, Linux's default).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start < 2048 {
		return 32768
	}
	return start
}

func (c *Cluster) configPath(id int32) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", id), "broker.properties")
}

// diskPath is where a node's own disk is mounted (ClusterConfig.DiskSize).
func (c *Cluster) diskPath(id int32) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", id), "disk")
}

func (c *Cluster) caPath() string { return filepath.Join(c.cfg.Dir, "ca.pem") }

func (c *Cluster) keystorePath(id int32) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", id), "keystore.pem")
}

// ClientOpts are the client options the cluster's listeners need: TLS
// trusting the run's CA when it runs with TLS.
func (c *Cluster) ClientOpts() []kgo.Opt {
	if c.ca == nil {
		return nil
	}
	return []kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: c.ca.Pool(), MinVersion: tls.VersionTLS12})}
}

func (c *Cluster) logPath(id int32) string {
	return filepath.Join(c.cfg.Dir, fmt.Sprintf("node-%d", id), "broker.log")
}

// configFile renders a node's properties file, with Kafka's setting names
// as the boot agent writes them.
func (c *Cluster) configFile(n NodeSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node.id=%d\nbroker.rack=%s\n", n.ID, n.Rack)
	if c.ca == nil {
		fmt.Fprintf(&b, "listeners=PLAINTEXT://%s\nadvertised.listeners=PLAINTEXT://%s\n", n.KafkaAddr(), n.KafkaAddr())
		fmt.Fprintf(&b, "inter.broker.listener.port=%d\n", n.ReplicationPort)
	} else {
		repl := net.JoinHostPort(n.Host, fmt.Sprint(n.ReplicationPort))
		fmt.Fprintf(&b, "listeners=SSL://%s,REPLICATION://%s,CONTROLLER://%s\n", n.KafkaAddr(), repl, n.ControllerAddr())
		fmt.Fprintf(&b, "advertised.listeners=SSL://%s,REPLICATION://%s\n", n.KafkaAddr(), repl)
		fmt.Fprintf(&b, "listener.security.protocol.map=REPLICATION:SSL,CONTROLLER:SSL\n")
		fmt.Fprintf(&b, "inter.broker.listener.name=REPLICATION\ncontroller.listener.names=CONTROLLER\n")
		fmt.Fprintf(&b, "ssl.keystore.type=PEM\nssl.keystore.location=%s\nssl.truststore.location=%s\n", c.keystorePath(n.ID), c.caPath())
		fmt.Fprintf(&b, "listener.name.replication.ssl.client.auth=required\nlistener.name.controller.ssl.client.auth=required\n")
	}
	fmt.Fprintf(&b, "log.dirs=%s\ncluster.id=tributary-chaos\n", n.DataDir)
	if len(c.nodes) > 1 {
		var voters []string
		for _, v := range c.nodes[:min(3, len(c.nodes))] {
			voters = append(voters, fmt.Sprintf("%d@%s", v.ID, v.ControllerAddr()))
		}
		fmt.Fprintf(&b, "controller.quorum.voters=%s\n", strings.Join(voters, ","))
	}
	keys := make([]string, 0, len(c.cfg.Settings))
	for k := range c.cfg.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, c.cfg.Settings[k])
	}
	return b.String()
}

// Nodes lists the nodes.
func (c *Cluster) Nodes() []NodeSpec { return slices.Clone(c.nodes) }

// Node returns a node by id.
func (c *Cluster) Node(id int32) (NodeSpec, bool) {
	i := slices.IndexFunc(c.nodes, func(n NodeSpec) bool { return n.ID == id })
	if i < 0 {
		return NodeSpec{}, false
	}
	return c.nodes[i], true
}

// Bootstrap is every node's client address.
func (c *Cluster) Bootstrap() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.KafkaAddr())
	}
	return out
}

// StartAll starts every node that is not running.
func (c *Cluster) StartAll() error {
	for _, n := range c.nodes {
		if err := c.Start(n.ID); err != nil {
			return err
		}
	}
	return nil
}

// Start starts a node that is not running (a restart after a kill keeps
// its data directory).
func (c *Cluster) Start(id int32) error {
	n, ok := c.Node(id)
	if !ok {
		return fmt.Errorf("no node %d", id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.procs[id]; ok && !p.exited() {
		return nil
	}
	logf, err := os.OpenFile(c.logPath(id), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.cfg.Binary, "run", "--config", c.configPath(n.ID))
	if c.net != nil {
		cmd = c.net.Command(n.ID, c.cfg.Binary, "run", "--config", c.configPath(n.ID))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a kill reaches nothing else of ours; and
	// killed by the kernel when the harness dies without stopping it (a
	// run killed from outside left its brokers running, holding their
	// ports and, under flock, the bench lock's descriptor).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting node %d: %w", id, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		c.mu.Lock()
		if !p.stopped {
			// A heal starts it again like a killed one; the run
			// reports it (a crash under a fault is a bug, not a fault).
			c.crashes = append(c.crashes, Crash{Node: id, At: time.Now(), State: cmd.ProcessState.String()})
		}
		c.mu.Unlock()
		close(p.done)
	}()
	c.procs[id] = p
	return nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether the node's process is alive (paused counts).
func (c *Cluster) Running(id int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.procs[id]
	return ok && !p.exited()
}

// PID is the process id of a running node.
func (c *Cluster) PID(id int32) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.procs[id]
	if !ok || p.exited() {
		return 0, false
	}
	return p.cmd.Process.Pid, true
}

// Paused reports whether the node is stopped by SIGSTOP.
func (c *Cluster) Paused(id int32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.procs[id]
	return ok && p.paused && !p.exited()
}

func (c *Cluster) signal(id int32, sig syscall.Signal) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.procs[id]
	if !ok || p.exited() {
		return nil, fmt.Errorf("node %d is not running", id)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.stopped = true
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signalling node %d: %w", id, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return p, nil
}

func waitExit(p *process, timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("process %d did not exit within %v", p.cmd.Process.Pid, timeout)
	}
}

// Crashes lists the broker processes that exited without the run
// stopping them, oldest first.
func (c *Cluster) Crashes() []Crash {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.crashes)
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (c *Cluster) Kill(id int32) error {
	p, err := c.signal(id, syscall.SIGKILL)
	if err != nil {
		return err
	}
	return waitExit(p, 10*time.Second)
}

// Terminate sends SIGTERM (a controlled shutdown) and waits up to timeout.
func (c *Cluster) Terminate(id int32, timeout time.Duration) error {
	if c.Paused(id) {
		if err := c.Resume(id); err != nil {
			return err
		}
	}
	p, err := c.signal(id, syscall.SIGTERM)
	if err != nil {
		return err
	}
	return waitExit(p, timeout)
}

// Pause sends SIGSTOP.
func (c *Cluster) Pause(id int32) error {
	_, err := c.signal(id, syscall.SIGSTOP)
	return err
}

// Resume sends SIGCONT.
func (c *Cluster) Resume(id int32) error {
	_, err := c.signal(id, syscall.SIGCONT)
	return err
}

// KillRack kills every node in a rack: the loss of an Availability Zone.
func (c *Cluster) KillRack(rack string) ([]int32, error) {
	var killed []int32
	for _, n := range c.nodes {
		if n.Rack == rack && c.Running(n.ID) {
			if err := c.Kill(n.ID); err != nil {
				return killed, err
			}
			killed = append(killed, n.ID)
		}
	}
	return killed, nil
}

// WaitServing waits until the node accepts Kafka connections.
func (c *Cluster) WaitServing(ctx context.Context, id int32) error {
	n, ok := c.Node(id)
	if !ok {
		return fmt.Errorf("no node %d", id)
	}
	for {
		if !c.Running(id) {
			return fmt.Errorf("node %d exited; see %s", id, c.logPath(id))
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", n.KafkaAddr())
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %d not serving on %s: %w", id, n.KafkaAddr(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitAnswering waits until every node answers a Kafka request (Metadata,
// asked of that node alone), each within limit. A node whose process
// exited (a restart that failed: a port taken, a refused config, a data
// directory it cannot open) ends the wait at once, with the tail of its
// log as the reason: clients would otherwise retry against it until their
// own timeouts, and the cause would surface only at the end of the run.
func (c *Cluster) WaitAnswering(ctx context.Context, limit time.Duration) error {
	for _, n := range c.nodes {
		if err := c.waitAnswering(ctx, n, limit); err != nil {
			return fmt.Errorf("%w\n--- node %d's log:\n%s", err, n.ID, c.Log(n.ID, 4096))
		}
	}
	return nil
}

func (c *Cluster) waitAnswering(ctx context.Context, n NodeSpec, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.KafkaAddr()), kgo.DialTimeout(time.Second)}, c.ClientOpts()...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var last error
	for {
		if !c.Running(n.ID) {
			return fmt.Errorf("node %d exited (see %s)", n.ID, c.logPath(n.ID))
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = cl.SeedBrokers()[0].Request(rctx, kmsg.NewPtrMetadataRequest())
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %d does not answer Metadata within %v: %w (last error: %v)", n.ID, limit, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Network is the run's network (nil without ClusterConfig.Netns).
func (c *Cluster) Network() *Network { return c.net }

// FillDisk fills a node's disk until it has no space left (ENOSPC for
// the broker's next write) and keeps it full until FreeDisks: every 50 ms
// the filler takes back whatever space was freed meanwhile (a failed
// checkpoint's temporary file, a deleted segment), as a disk that another
// writer keeps filling would. It returns how many bytes the first fill
// took. It needs ClusterConfig.DiskSize.
func (c *Cluster) FillDisk(id int32) (int64, error) {
	if c.cfg.DiskSize <= 0 {
		return 0, errors.New("the nodes have no disks of their own (ClusterConfig.DiskSize)")
	}
	if _, ok := c.Node(id); !ok {
		return 0, fmt.Errorf("no node %d", id)
	}
	c.mu.Lock()
	if stop, ok := c.full[id]; ok {
		c.mu.Unlock()
		stop()
		c.mu.Lock()
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	var once sync.Once
	// Registered before filling: a half-filled disk is freed too.
	c.full[id] = func() {
		once.Do(func() { close(done) })
		<-stopped
	}
	c.mu.Unlock()
	dir := c.diskPath(id)
	wrote, err := fillDisk(dir)
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = fillDisk(dir)
			}
		}
	}()
	return wrote, err
}

// FreeDisks stops keeping the disks FillDisk filled full and removes
// what it wrote.
func (c *Cluster) FreeDisks() error {
	c.mu.Lock()
	full := c.full
	c.full = map[int32]func(){}
	c.mu.Unlock()
	var errs []error
	for id, stop := range full {
		stop()
		errs = append(errs, freeDisk(c.diskPath(id)))
	}
	return errors.Join(errs...)
}

// DiskFree is the space left on a node's own disk.
func (c *Cluster) DiskFree(id int32) (int64, error) {
	if c.cfg.DiskSize <= 0 {
		return 0, errors.New("the nodes have no disks of their own (ClusterConfig.DiskSize)")
	}
	return diskFree(c.diskPath(id))
}

// Heal removes every network cut, frees filled disks, resumes paused
// nodes and starts dead ones.
func (c *Cluster) Heal() error {
	var errs []error
	if c.net != nil {
		errs = append(errs, c.net.HealAll())
	}
	errs = append(errs, c.FreeDisks())
	for _, n := range c.nodes {
		if c.Paused(n.ID) {
			errs = append(errs, c.Resume(n.ID))
		}
		if !c.Running(n.ID) {
			errs = append(errs, c.Start(n.ID))
		}
	}
	return errors.Join(errs...)
}

// Close kills every process, unmounts the nodes' disks and removes the
// run's network.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		if c.Paused(n.ID) {
			_ = c.Resume(n.ID)
		}
		if c.Running(n.ID) {
			_ = c.Kill(n.ID)
		}
	}
	_ = c.FreeDisks()
	for _, d := range c.disks {
		_ = unmountDisk(d)
	}
	c.disks = nil
	if c.net != nil {
		_ = c.net.Close()
	}
}

// Log returns the tail of a node's log, for failure reports.
func (c *Cluster) Log(id int32, maxBytes int) string {
	b, err := os.ReadFile(c.logPath(id))
	if err != nil {
		return err.Error()
	}
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	return string(b)
}
