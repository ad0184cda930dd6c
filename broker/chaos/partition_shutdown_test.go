package chaos

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// TestControllerShutsDownAfterItsPartitionHeals: the active controller is
// cut from the other brokers twice (2 s each, healed in between), and a
// second after the heal it gets SIGTERM, while producers run. It must exit
// within 15 s, each of six rounds. hashicorp/raft's pipelined replication
// left a replication goroutine of the deposed controller blocked for good
// (netPipeline.AppendEntries against decodeResponses), and Raft.Shutdown
// waited for it: the broker stayed in its shutdown until killed (the
// first or second round, in each of the runs that found it). On a hang
// the broker gets SIGQUIT, and the failure quotes its goroutines. It runs
// with the CI-sized chaos runs (TRIBUTARY_CHAOS set).
func TestControllerShutsDownAfterItsPartitionHeals(t *testing.T) {
	if os.Getenv("TRIBUTARY_CHAOS") == "" {
		testenv.Missing(t, "set TRIBUTARY_CHAOS=2m to run the partition chaos tests (make test does)")
	}
	needNetns(t)
	c, err := NewCluster(ClusterConfig{Binary: buildBroker(t), Dir: t.TempDir(), Nodes: 3, Netns: true,
		Settings: map[string]string{"min.insync.replicas": "2", "default.replication.factor": "3"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes() {
		if err := c.WaitServing(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
	}
	cfg := WorkloadConfig{Brokers: c.Bootstrap(), Partitions: 6, ReplicationFactor: 3, Producers: 2, Consumers: 1, Rate: 200, Logger: testLogger()}
	cfg.defaults()
	if err := WaitCluster(ctx, cfg, 3); err != nil {
		t.Fatal(err)
	}
	if err := CreateTopic(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder()
	cctx, stop := context.WithCancel(ctx)
	wait := runClients(cctx, cfg, rec)
	defer func() { stop(); wait() }()
	n := &nemesis{cfg: NemesisConfig{Logger: testLogger(), Topic: cfg.Topic}, c: c, rec: rec, rnd: newRand(1)}
	nw := c.Network()
	for round := range 6 {
		if err := c.WaitAnswering(ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		var id int32 = -1
		for deadline := time.Now().Add(20 * time.Second); id < 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if md, err := n.metadata(ctx); err == nil {
				id = md.Controller
			}
		}
		if id < 0 {
			t.Fatalf("round %d: no active controller", round)
		}
		var others []int32
		for _, x := range c.Nodes() {
			if x.ID != id {
				others = append(others, x.ID)
			}
		}
		for range 2 {
			if err := nw.Partition([]int32{id}, others); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			if err := nw.HealAll(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		start := time.Now()
		if err := c.Terminate(id, 15*time.Second); err != nil {
			if pid, ok := c.PID(id); ok {
				_ = syscall.Kill(pid, syscall.SIGQUIT) // the runtime prints every goroutine
				time.Sleep(2 * time.Second)
			}
			_ = c.Kill(id)
			log := c.Log(id, 1<<20)
			if i := strings.Index(log, "SIGQUIT"); i >= 0 {
				log = log[i:]
			}
			t.Fatalf("round %d: the controller, broker %d, cut off and healed, did not exit on SIGTERM: %v\n%s", round, id, err, log[:min(len(log), 64<<10)])
		}
		t.Logf("round %d: broker %d, the controller, exited %v after SIGTERM", round, id, time.Since(start).Round(time.Millisecond))
		if err := c.Start(id); err != nil {
			t.Fatal(err)
		}
	}
}
