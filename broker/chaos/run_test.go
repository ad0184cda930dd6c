package chaos

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// buildBroker compiles tributary-broker from this checkout.
func buildBroker(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		testenv.Missing(t, "cannot find the module root to build the broker: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tributary-broker")
	cmd := exec.Command("go", "build", "-o", bin, "./broker/cmd/tributary-broker")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the broker: %v\n%s", err, out)
	}
	return bin
}

// servingBroker starts a one-broker cluster with settings and waits until
// it serves; the context it returns ends wait after the start.
func servingBroker(t *testing.T, settings map[string]string, wait time.Duration) (*Cluster, context.Context) {
	t.Helper()
	c, err := NewCluster(ClusterConfig{Binary: buildBroker(t), Dir: t.TempDir(), Nodes: 1, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	if err := c.WaitServing(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}

func testLogger() *slog.Logger {
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// TestSingleBrokerUnderProcessFaults runs the whole harness against one
// broker process: kill -9, SIGSTOP/SIGCONT and SIGTERM+restart while
// idempotent acks=all producers and consumers run, and transactional
// producers with read_committed consumers. With one copy the
// guarantee comes from fsync before acknowledging: no acknowledged write
// may be lost across kill -9.
func TestSingleBrokerUnderProcessFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes; skipped with -short")
	}
	bin := buildBroker(t)
	for _, useTLS := range []bool{false, true} {
		name := "plaintext"
		if useTLS {
			name = "TLS" // every client connection over TLS
		}
		t.Run(name, func(t *testing.T) { singleBrokerUnderProcessFaults(t, bin, useTLS) })
	}
}

func singleBrokerUnderProcessFaults(t *testing.T, bin string, useTLS bool) {
	c, err := NewCluster(ClusterConfig{Binary: bin, Dir: t.TempDir(), Nodes: 1, TLS: useTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	out, err := Run(ctx, RunConfig{
		Cluster:  c,
		Workload: WorkloadConfig{Partitions: 3, Producers: 2, Consumers: 1, OpTimeout: 5 * time.Second, TxnProducers: 2, TxnConsumers: 1},
		Nemesis:  NemesisConfig{Faults: []FaultKind{KillRandom, PauseRandom, RestartRandom}, Interval: 1500 * time.Millisecond, Duration: 500 * time.Millisecond, Seed: 1},
		Duration: 7 * time.Second,
		Settle:   time.Second,
		Logger:   testLogger(),
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, c.Log(1, 4096))
	}
	t.Logf("%d faults\n%s", out.Faults, out.Result.Report(out.Events, 20))
	if out.Faults < 3 {
		t.Fatalf("only %d faults injected", out.Faults)
	}
	if out.Result.Stats.Acknowledged < 20 {
		t.Fatalf("only %d acknowledged sends: the workload barely ran", out.Result.Stats.Acknowledged)
	}
	if out.Result.Stats.TxnCommitted < 5 || out.Result.Stats.TxnAborted == 0 || out.Result.Stats.OffsetReads == 0 {
		t.Fatalf("transactions: %+v: the transactional workload barely ran", out.Result.Stats)
	}
	if !out.Result.Valid {
		t.Fatalf("anomalies:\n%s", out.Result.Report(out.Events, 50))
	}
}

// TestThreeBrokersUnderFaults is the CI run: three broker processes
// (racks a, b, c), replication factor 3, min.insync.replicas 2, every
// process fault kind, with each broker in its own network namespace every
// network partition kind (one-way and client-side ones included), and
// with each broker on a small disk of its own the full disk; at least 10
// faults; once in plaintext with topics (the idempotent and the
// transactional one) whose segments retention deletes (and delays
// deleting) under the faults, and once with every connection
// over TLS. It takes minutes, so it runs only when TRIBUTARY_CHAOS is set
// to its duration (e.g. TRIBUTARY_CHAOS=2m); `make chaos`-length runs use
// the tributary-chaos command. On a machine that cannot make namespaces or
// mount a tmpfs (not root, no ip) the runs go without those faults and
// the subtests "partitions" and "disk-full" say so: they skip, or fail in
// CI.
func TestThreeBrokersUnderFaults(t *testing.T) {
	env := os.Getenv("TRIBUTARY_CHAOS")
	if env == "" {
		testenv.Missing(t, "set TRIBUTARY_CHAOS=2m to run the three-broker chaos test (make test does)")
	}
	d, err := time.ParseDuration(env)
	if err != nil {
		t.Fatalf("TRIBUTARY_CHAOS=%q: %v", env, err)
	}
	bin := buildBroker(t)
	netnsErr, diskErr := NetnsSupport(), DiskSupport()
	for _, useTLS := range []bool{false, true} {
		name := "plaintext"
		if useTLS {
			// Clients on SSL listeners, replication and the metadata
			// quorum with broker certificates both ways.
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) { threeBrokersUnderFaults(t, bin, d, useTLS, netnsErr == nil, diskErr == nil) })
	}
	t.Run("partitions", func(t *testing.T) {
		if netnsErr != nil {
			testenv.Missing(t, "the runs above injected no network partition: %v", netnsErr)
		}
	})
	t.Run("disk-full", func(t *testing.T) {
		if diskErr != nil {
			testenv.Missing(t, "the runs above filled no disk: %v", diskErr)
		}
	})
}

// chaosRetention is the plaintext CI run's retention.ms: short enough
// that segments of 16 KiB (a few seconds of the workload) are deleted
// many times in a run, long enough that consumers keep up.
const chaosRetention = 10 * time.Second

func threeBrokersUnderFaults(t *testing.T, bin string, d time.Duration, useTLS, netns, disks bool) {
	faults := slices.Clone(AllFaults)
	if netns {
		faults = append(faults, PartitionFaults...)
	}
	settings := map[string]string{"min.insync.replicas": "2", "default.replication.factor": "3"}
	cc := ClusterConfig{Binary: bin, Dir: t.TempDir(), Nodes: 3, TLS: useTLS, Netns: netns, Settings: settings}
	if disks {
		faults = append(faults, DiskFull)
		cc.DiskSize = 256 << 20
	}
	workload := WorkloadConfig{Partitions: 6, ReplicationFactor: 3, Producers: 3, Consumers: 2, Rate: 200, TxnProducers: 2, TxnConsumers: 1}
	var retention time.Duration
	if !useTLS {
		retention = chaosRetention
		settings["log.retention.check.interval.ms"] = "1000"
		workload.TopicConfigs = RetentionConfigs(retention, 16<<10, 2*time.Second)
		workload.RereadEvery = retention / 2
	}
	c, err := NewCluster(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Minute)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	out, err := Run(ctx, RunConfig{
		Cluster:   c,
		Workload:  workload,
		Nemesis:   NemesisConfig{Faults: faults, Interval: 5 * time.Second, Duration: 2 * time.Second, Seed: seed},
		Duration:  d,
		Retention: retention,
		Logger:    testLogger(),
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("seed %d: %d faults\n%s", seed, out.Faults, out.Result.Report(out.Events, 20))
	if out.Faults < 10 {
		t.Fatalf("only %d faults injected", out.Faults)
	}
	if out.Result.Stats.Acknowledged == 0 {
		t.Fatal("no send was acknowledged: the workload made no progress")
	}
	if out.Result.Stats.TxnCommitted == 0 {
		t.Fatal("no transaction committed: the transactional workload made no progress")
	}
	if retention > 0 && out.Result.Stats.Removed == 0 {
		t.Fatalf("retention of %v removed no acknowledged send in %v: the run did not test it", retention, d)
	}
	if retention > 0 && out.Result.Stats.TxnRemoved == 0 {
		t.Fatalf("retention of %v removed no committed transactional value in %v: the run did not test it", retention, d)
	}
	if !out.Result.Valid {
		t.Fatalf("anomalies:\n%s", out.Result.Report(out.Events, 50))
	}
}

func TestWaitClusterNoticesMissingBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process; skipped with -short")
	}
	c, ctx := servingBroker(t, nil, 20*time.Second)
	cfg := WorkloadConfig{Brokers: c.Bootstrap()}
	if err := WaitCluster(ctx, cfg, 1); err != nil {
		t.Fatalf("one broker, one expected: %v", err)
	}
	short, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if err := WaitCluster(short, cfg, 3); err == nil || !strings.Contains(err.Error(), "1 of 3 brokers") {
		t.Fatalf("three expected, one there: %v", err)
	}
}

func TestClusterProcessControl(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	dir, bin := fakeBroker(t)
	c, err := NewCluster(ClusterConfig{Binary: bin, Dir: dir, Nodes: 3, Settings: map[string]string{"min.insync.replicas": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg, err := os.ReadFile(c.configPath(2))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node.id=2", "broker.rack=b", "listeners=PLAINTEXT://127.0.0.11:", "controller.quorum.voters=1@127.0.0.10:", "inter.broker.listener.port=", "min.insync.replicas=2"} {
		if !strings.Contains(string(cfg), want) {
			t.Fatalf("config lacks %q:\n%s", want, cfg)
		}
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(1); err != nil || !c.Paused(1) {
		t.Fatalf("pause: %v", err)
	}
	if err := c.Kill(2); err != nil || c.Running(2) {
		t.Fatalf("kill: %v", err)
	}
	killed, err := c.KillRack("c")
	if err != nil || len(killed) != 1 || killed[0] != 3 {
		t.Fatalf("lose rack c: %v %v", killed, err)
	}
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int32{1, 2, 3} {
		if !c.Running(id) || c.Paused(id) {
			t.Fatalf("node %d not running after heal", id)
		}
	}
	if err := c.Terminate(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if cr := c.Crashes(); len(cr) != 0 {
		t.Fatalf("exits the cluster caused reported as crashes: %+v", cr)
	}
	// Node 2 dies of something the run did not do.
	pid, ok := c.PID(2)
	if !ok {
		t.Fatal("node 2 not running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Running(2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if cr := c.Crashes(); len(cr) != 1 || cr[0].Node != 2 || !strings.Contains(cr[0].State, "killed") {
		t.Fatalf("crashes %+v, want node 2 killed", cr)
	}
}

// TestRunFailsFastWhenABrokerCannotComeBack: a broker that the nemesis
// killed cannot start again (its config file was broken meanwhile). The
// run ends soon after the failed restart, naming the broker and with its
// log's reason, instead of its clients waiting out the faulty phase and
// the drain.
func TestRunFailsFastWhenABrokerCannotComeBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker process; skipped with -short")
	}
	c, err := NewCluster(ClusterConfig{Binary: buildBroker(t), Dir: t.TempDir(), Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	broken := make(chan error, 1)
	go func() {
		// Once the broker serves it has read its config: from now on a
		// restart meets a listener it cannot parse.
		for !c.Running(1) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := c.WaitServing(ctx, 1); err != nil {
			broken <- err
			return
		}
		broken <- os.WriteFile(c.configPath(1), []byte("node.id=1\nlisteners=NOT A LISTENER\n"), 0o640)
	}()
	start := time.Now()
	_, err = Run(ctx, RunConfig{
		Cluster:  c,
		Workload: WorkloadConfig{Partitions: 1, Producers: 1, Consumers: 1, OpTimeout: 5 * time.Second},
		Nemesis:  NemesisConfig{Faults: []FaultKind{KillRandom}, Interval: time.Second, Duration: 200 * time.Millisecond, Seed: 1},
		Duration: 2 * time.Minute,
		Logger:   testLogger(),
	})
	took := time.Since(start)
	if berr := <-broken; berr != nil {
		t.Fatal(berr)
	}
	if err == nil || !strings.Contains(err.Error(), "node 1 exited") || !strings.Contains(err.Error(), "NOT A LISTENER") {
		t.Fatalf("run with a broker that cannot restart: %v, want its exit and the reason from its log", err)
	}
	if took > 30*time.Second {
		t.Fatalf("the run took %v to report a broker that could not restart", took)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}

// fakeBroker writes a stand-in for the broker binary into a new temporary
// directory and returns both: a script that execs /bin/sleep, so that
// "fake-broker run --config FILE" sleeps a minute as that very process
// (the process control, kill -9 and SIGSTOP included, does not care what
// runs).
func fakeBroker(t *testing.T) (dir, bin string) {
	t.Helper()
	sleep := testenv.Tool(t, "sleep", "coreutils")
	dir = t.TempDir()
	bin = filepath.Join(dir, "fake-broker")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec "+sleep+" 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}
