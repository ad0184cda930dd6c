package clienttest

// Client tests against a three-broker cluster of `tributary-broker run`
// processes on loopback (racks a, b, c; replication factor 3;
// min.insync.replicas 2): acks=all writes survive kill -9 of a partition
// leader, and a SIGTERM rolling restart of every broker fails no produce.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// testCluster is three broker processes that form one cluster.
type testCluster struct {
	t *testing.T
	// With in-cluster TLS: replication and the metadata quorum over TLS
	// with broker certificates of ca both ways.
	ca *tlstest.CA
	// clientCA signs client certificates; the brokers' truststore holds
	// it beside ca, as a broker-wide truststore does beside a mutual-TLS
	// client listener.
	clientCA *tlstest.CA
	files    map[int32]string // config file per node id
	addrs    map[int32]string // client listener per node id
	procs    map[int32]*brokerProcess
	mu       sync.Mutex // guards procs
}

// startCluster starts n brokers (voters all) and waits until each serves
// and lists every broker in its Metadata.
func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return startClusterTLS(t, n, false)
}

// startClusterTLS is startCluster, with in-cluster encryption when
// inCluster: REPLICATION (9093) and CONTROLLER (9095) listeners over SSL,
// each broker with its own certificate for its address, every broker
// requiring its peers' certificates. Clients still use PLAINTEXT 9092.
func startClusterTLS(t *testing.T, n int, inCluster bool) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs three broker processes")
	}
	// Cluster tests mostly wait (leases, elections): they run side by
	// side, each cluster on its own ports and directories.
	t.Parallel()
	c := &testCluster{t: t, files: map[int32]string{}, addrs: map[int32]string{}, procs: map[int32]*brokerProcess{}}
	// Each broker gets its own loopback address with MSK's fixed ports,
	// as on the local cloud: ports below the ephemeral range, so a
	// restarted broker never finds its port taken by an outgoing
	// connection, and each cluster of the parallel tests on its own
	// 127.x.y.0/24.
	subnet := loopbackSubnet(t)
	var voters []string
	for id := int32(1); id <= int32(n); id++ {
		c.addrs[id] = fmt.Sprintf("%s.%d:9092", subnet, id)
		voters = append(voters, fmt.Sprintf("%d@%s.%d:9095", id, subnet, id))
	}
	dir := t.TempDir()
	if inCluster {
		var err error
		if c.ca, err = tlstest.NewCA("cluster CA"); err != nil {
			t.Fatal(err)
		}
		if c.clientCA, err = tlstest.NewCA("client CA"); err != nil {
			t.Fatal(err)
		}
		if err := tlstest.WriteFile(filepath.Join(dir, "ca.pem"), c.ca.PEM+c.clientCA.PEM); err != nil {
			t.Fatal(err)
		}
	}
	for id := int32(1); id <= int32(n); id++ {
		replPort := "9093"
		host, _, _ := net.SplitHostPort(c.addrs[id])
		listeners := fmt.Sprintf("listeners=PLAINTEXT://%s\nadvertised.listeners=PLAINTEXT://%s\ninter.broker.listener.port=%s\n", c.addrs[id], c.addrs[id], replPort)
		if inCluster {
			// Each broker's certificate names its node, as the
			// provider's do: its peers bind its replica and node ids.
			cert, err := c.ca.IssueNode(fmt.Sprintf("broker-%d", id), id, host)
			if err != nil {
				t.Fatal(err)
			}
			keystore := filepath.Join(dir, fmt.Sprintf("keystore-%d.pem", id))
			if err := tlstest.WriteFile(keystore, cert.Keystore()); err != nil {
				t.Fatal(err)
			}
			listeners = fmt.Sprintf(`listeners=PLAINTEXT://%[1]s:9092,REPLICATION://%[1]s:9093,CONTROLLER://%[1]s:9095
advertised.listeners=PLAINTEXT://%[1]s:9092,REPLICATION://%[1]s:9093
listener.security.protocol.map=REPLICATION:SSL,CONTROLLER:SSL
inter.broker.listener.name=REPLICATION
controller.listener.names=CONTROLLER
ssl.keystore.type=PEM
ssl.keystore.location=%[2]s
ssl.truststore.location=%[3]s
listener.name.replication.ssl.client.auth=required
listener.name.controller.ssl.client.auth=required
metrics.listen=%[1]s:11001
tributary.metrics.cloudwatch.enable=false
`, host, keystore, filepath.Join(dir, "ca.pem"))
		}
		conf := fmt.Sprintf(`node.id=%d
broker.rack=%c
%slog.dirs=%s
cluster.id=clienttest-cluster
controller.quorum.voters=%s
default.replication.factor=3
min.insync.replicas=2
group.initial.rebalance.delay.ms=0
`, id, 'a'+rune(id-1), listeners, filepath.Join(dir, fmt.Sprint("node-", id)), strings.Join(voters, ","))
		c.files[id] = filepath.Join(dir, fmt.Sprintf("broker-%d.properties", id))
		if err := os.WriteFile(c.files[id], []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Voters wait for a quorum before they serve: start them together.
	for id := range c.files {
		c.procs[id] = c.spawn(id)
	}
	for id, p := range c.procs {
		c.waitServing(id, p)
	}
	c.waitBrokers(n)
	return c
}

var (
	subnetMu   sync.Mutex
	subnetNext = 0
)

// loopbackSubnet returns a 127.x.y prefix whose .1-.3 addresses have
// nothing listening on the broker ports (another test or a stale broker).
func loopbackSubnet(t *testing.T) string {
	t.Helper()
	subnetMu.Lock()
	defer subnetMu.Unlock()
	base := 200 + os.Getpid()%50 // apart from the local cloud's 127.16.x.y
	for range 250 {
		subnetNext++
		prefix := fmt.Sprintf("127.%d.%d", base, subnetNext%250)
		free := true
		for id := 1; id <= 3 && free; id++ {
			for _, port := range []string{"9092", "9093", "9095"} {
				ln, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("%s.%d", prefix, id), port))
				if err != nil {
					free = false
					break
				}
				ln.Close()
			}
		}
		if free {
			return prefix
		}
	}
	t.Fatal("no free loopback /24 for a test cluster")
	return ""
}

// spawn starts a broker process without waiting for it.
func (c *testCluster) spawn(id int32) *brokerProcess {
	c.t.Helper()
	cmd := exec.Command(brokerBinary(c.t), "run", "--config", c.files[id])
	stderr, err := cmd.StderrPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &brokerProcess{cmd: cmd, addr: c.addrs[id], done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
			if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
				fmt.Fprintf(os.Stderr, "broker %d: %s\n", id, sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	c.t.Cleanup(func() {
		p.kill()
		if c.t.Failed() {
			p.mu.Lock()
			logs := p.logs[max(0, len(p.logs)-15):]
			p.mu.Unlock()
			c.t.Logf("last log lines of broker %d:\n%s", id, strings.Join(logs, "\n"))
		}
	})
	return p
}

// waitServing waits until a broker logged that it serves clients.
func (c *testCluster) waitServing(id int32, p *brokerProcess) {
	c.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !p.logged(`msg="serving Kafka protocol"`) {
		select {
		case <-p.done:
			c.t.Fatalf("broker %d exited before serving: %v\n%s", id, p.exitErr, strings.Join(p.logs, "\n"))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("broker %d did not serve within 45s", id)
		}
	}
}

// bootstrap lists every broker's client address.
func (c *testCluster) bootstrap() []string {
	var out []string
	for _, a := range c.addrs {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

func (c *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.bootstrap()...)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// waitBrokers waits until every broker's Metadata lists n brokers and a
// controller. Each broker is asked directly with a fresh client: kgo may
// answer a Metadata request from its own cached response.
func (c *testCluster) waitBrokers(n int) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		views, ok := c.brokerViews(n)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("metadata of every broker never listed %d brokers and a controller within 30s: %s", n, views)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brokerViews asks each broker alone for the brokers and controller it
// sees; ok when every one lists n brokers and a controller.
func (c *testCluster) brokerViews(n int) (string, bool) {
	var out []string
	ok := true
	for _, id := range slices.Sorted(maps.Keys(c.addrs)) {
		ids, controller, err := metadataOf(c.addrs[id])
		if err != nil {
			out = append(out, fmt.Sprintf("broker %d: %v", id, err))
			ok = false
			continue
		}
		out = append(out, fmt.Sprintf("broker %d sees brokers %v, controller %d", id, ids, controller))
		ok = ok && len(ids) == n && controller >= 0
	}
	return strings.Join(out, "; "), ok
}

// metadataOf asks one broker, and only it, for the brokers it lists.
func metadataOf(addr string) ([]int32, int32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, -1, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := cl.SeedBrokers()[0].Request(ctx, kmsg.NewPtrMetadataRequest())
	if err != nil {
		return nil, -1, err
	}
	md := resp.(*kmsg.MetadataResponse)
	var ids []int32
	for _, b := range md.Brokers {
		ids = append(ids, b.NodeID)
	}
	return ids, md.ControllerID, nil
}

// waitInSync waits until every partition of topic has a leader and all n
// replicas in its ISR.
func (c *testCluster) waitInSync(topic string, n int) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("every partition of %s with %d in-sync replicas", topic, n), 45*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		adm, done := c.freshAdmin()
		defer done()
		td, err := adm.ListTopics(ctx, topic)
		if err != nil || td[topic].Err != nil || len(td[topic].Partitions) == 0 {
			return false
		}
		for _, p := range td[topic].Partitions {
			if p.Leader < 0 || len(p.ISR) != n {
				return false
			}
		}
		return true
	})
}

// leaderOf returns the node id leading a partition.
func (c *testCluster) leaderOf(topic string, partition int32) int32 {
	c.t.Helper()
	adm, done := c.freshAdmin()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		c.t.Fatal(err)
	}
	return td[topic].Partitions[partition].Leader
}

// freshAdmin is an admin client with no cached metadata: kgo may answer
// a Metadata request from a cached response, which would hide a change.
func (c *testCluster) freshAdmin() (*kadm.Client, func()) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...))
	if err != nil {
		c.t.Fatal(err)
	}
	return kadm.NewClient(cl), cl.Close
}

func (c *testCluster) proc(id int32) *brokerProcess {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[id]
}

// kill9 kills a broker with SIGKILL.
func (c *testCluster) kill9(id int32) { c.proc(id).kill() }

// stop sends SIGTERM (controlled shutdown) and waits for a clean exit.
func (c *testCluster) stop(id int32) {
	c.t.Helper()
	p := c.proc(id)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		c.t.Fatalf("broker %d did not stop within 40s of SIGTERM", id)
	}
	if p.exitErr != nil {
		c.t.Fatalf("broker %d exited with %v after SIGTERM", id, p.exitErr)
	}
}

// restart starts a stopped broker again and waits until it serves.
func (c *testCluster) restart(id int32) {
	c.t.Helper()
	p := c.spawn(id)
	c.mu.Lock()
	c.procs[id] = p
	c.mu.Unlock()
	c.waitServing(id, p)
}

func (c *testCluster) createTopic(name string, partitions int32) {
	c.t.Helper()
	adm := kadm.NewClient(c.client())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 3, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		c.t.Fatalf("creating %s: %v", name, err)
	}
	c.waitInSync(name, 3)
}

// ackedProducer produces values value-0, value-1, ... with acks=all from
// an idempotent franz-go client until stopped, recording every
// acknowledged value and every failed produce.
type ackedProducer struct {
	mu     sync.Mutex
	acked  map[string]bool
	failed []error
	stop   chan struct{}
	done   chan struct{}
}

func startAckedProducer(t *testing.T, c *testCluster, topic string) *ackedProducer {
	t.Helper()
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(60*time.Second))
	ap := &ackedProducer{acked: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(ap.done)
		var wg sync.WaitGroup
		for i := 0; ; i++ {
			select {
			case <-ap.stop:
				wg.Wait()
				return
			default:
			}
			v := fmt.Sprintf("value-%d", i)
			wg.Add(1)
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer wg.Done()
				ap.mu.Lock()
				defer ap.mu.Unlock()
				if err != nil {
					ap.failed = append(ap.failed, fmt.Errorf("%s: %w", v, err))
					return
				}
				ap.acked[v] = true
			})
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
	}()
	t.Cleanup(ap.finish)
	return ap
}

func (ap *ackedProducer) count() int {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return len(ap.acked)
}

// finish stops producing and waits for every record in flight.
func (ap *ackedProducer) finish() {
	select {
	case <-ap.stop:
	default:
		close(ap.stop)
	}
	<-ap.done
}

// waitAcked waits until at least n more records are acknowledged.
func (ap *ackedProducer) waitMore(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	want := ap.count() + n
	waitFor(t, fmt.Sprintf("%d acknowledged records", want), limit, func() bool { return ap.count() >= want })
}

// readAll consumes topic from the start until every value in want is seen.
func readAll(t *testing.T, c *testCluster, topic string, want map[string]bool) {
	t.Helper()
	cl := c.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	missing := len(want)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for missing > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d acknowledged records never read back", missing, len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			seen[v]++
			if seen[v] == 1 && want[v] {
				missing--
			}
		})
	}
}

// TestClusterMetadataListsEveryBroker: one cluster, every broker listed with
// its rack, a controller, replication factor 3 spread over the racks.
func TestClusterMetadataListsEveryBroker(t *testing.T) {
	c := startCluster(t, 3)
	c.createTopic("spread", 3)
	ctx := testContext(t, 20*time.Second)
	// Each broker answers from its own copy of the metadata, which may
	// trail the controller's by a moment.
	var md kadm.Metadata
	waitFor(t, "metadata of spread with three partitions", 10*time.Second, func() bool {
		adm, done := c.freshAdmin()
		defer done()
		var err error
		md, err = adm.Metadata(ctx, "spread")
		return err == nil && md.Topics["spread"].Err == nil && len(md.Topics["spread"].Partitions) == 3
	})
	racks := map[int32]string{}
	for _, b := range md.Brokers {
		if b.Rack != nil {
			racks[b.NodeID] = *b.Rack
		}
	}
	if len(md.Brokers) != 3 || md.Controller < 1 || racks[1] != "a" || racks[2] != "b" || racks[3] != "c" {
		t.Fatalf("brokers %+v, controller %d", md.Brokers, md.Controller)
	}
	leaders := map[int32]bool{}
	for _, p := range md.Topics["spread"].Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 {
			t.Fatalf("partition %d: replicas %v isr %v", p.Partition, p.Replicas, p.ISR)
		}
		leaders[p.Leader] = true
	}
	if len(leaders) != 3 {
		t.Errorf("leaders of 3 partitions on %d brokers, want them balanced over 3", len(leaders))
	}
	// More replicas than brokers is refused, as Kafka does.
	resp, err := kadm.NewClient(c.client()).CreateTopic(ctx, 1, 4, nil, "too-many-replicas")
	if err == nil {
		err = resp.Err
	}
	if err == nil || !strings.Contains(err.Error(), "INVALID_REPLICATION_FACTOR") {
		t.Fatalf("replication factor 4 on 3 brokers: %v, want INVALID_REPLICATION_FACTOR", err)
	}
}

// TestClusterFranzGoKillLeader kills the leader of a partition with
// SIGKILL while an acks=all producer runs: the producer carries on
// through the new leader and no acknowledged record is lost, including
// after the killed broker returns and catches up.
func TestClusterFranzGoKillLeader(t *testing.T) {
	forEachTransport(t, testClusterFranzGoKillLeader)
}

// forEachTransport runs a cluster test in plaintext and with in-cluster
// TLS.
func forEachTransport(t *testing.T, test func(t *testing.T, inClusterTLS bool)) {
	for _, tls := range []bool{false, true} {
		name := "plaintext"
		if tls {
			name = "in-cluster TLS"
		}
		t.Run(name, func(t *testing.T) { test(t, tls) })
	}
}

func testClusterFranzGoKillLeader(t *testing.T, inClusterTLS bool) {
	c := startClusterTLS(t, 3, inClusterTLS)
	const topic = "failover"
	c.createTopic(topic, 1)
	ap := startAckedProducer(t, c, topic)
	ap.waitMore(t, 200, 20*time.Second)
	victim := c.leaderOf(topic, 0)
	c.kill9(victim)
	killed := time.Now()
	ap.waitMore(t, 200, 30*time.Second) // served by the new leader
	t.Logf("200 more records acknowledged %v after kill -9 of leader %d", time.Since(killed).Round(10*time.Millisecond), victim)
	if l := c.leaderOf(topic, 0); l == victim {
		t.Fatalf("broker %d still leads after kill -9", victim)
	}
	c.restart(victim)
	c.waitInSync(topic, 3)
	ap.waitMore(t, 100, 20*time.Second)
	ap.finish()
	if len(ap.failed) > 0 {
		t.Errorf("%d produces failed, first: %v", len(ap.failed), ap.failed[0])
	}
	readAll(t, c, topic, ap.acked)
	// The returned broker holds the same log: read from it alone once it
	// leads again (preferred leader election moves leadership back or not;
	// either way every replica is in sync now).
	t.Logf("%d acknowledged records, all read back", len(ap.acked))
}

// TestClusterRollingRestart restarts every broker in turn with SIGTERM
// (controlled shutdown) while an acks=all producer runs: no produce fails
// and every acknowledged record is read back.
func TestClusterRollingRestart(t *testing.T) {
	forEachTransport(t, testClusterRollingRestart)
}

func testClusterRollingRestart(t *testing.T, inClusterTLS bool) {
	c := startClusterTLS(t, 3, inClusterTLS)
	const topic = "rolling"
	c.createTopic(topic, 3)
	ap := startAckedProducer(t, c, topic)
	ap.waitMore(t, 100, 20*time.Second)
	for id := int32(1); id <= 3; id++ {
		c.stop(id)
		ap.waitMore(t, 50, 20*time.Second)
		c.restart(id)
		c.waitInSync(topic, 3)
		ap.waitMore(t, 50, 20*time.Second)
	}
	ap.finish()
	if len(ap.failed) > 0 {
		t.Fatalf("%d produces failed during the rolling restart, first: %v", len(ap.failed), ap.failed[0])
	}
	readAll(t, c, topic, ap.acked)
	t.Logf("%d acknowledged records through a rolling restart, none failed, all read back", len(ap.acked))
}
