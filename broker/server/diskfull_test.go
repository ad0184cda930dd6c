package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/testenv"
)

// tmpfsDataDirs mounts a small tmpfs per broker of a three-broker cluster
// and returns the config edit that puts each broker's data directory
// (its logs and its Raft store, as in production) on its own, so that a
// test can fill one broker's disk and get real ENOSPC from write(2).
func tmpfsDataDirs(t *testing.T) (dirs map[int32]string, edit func(*config.Config)) {
	t.Helper()
	dirs = map[int32]string{}
	for id := int32(1); id <= 3; id++ {
		// Mounted before the cluster starts, so the unmount runs after
		// the brokers' cleanups have closed their files.
		dir := testenv.Tmpfs(t, 48, "the full-disk tests")
		dirs[id] = dir
	}
	return dirs, func(c *config.Config) { c.DataDir = filepath.Join(dirs[c.NodeID], "data") }
}

// ackedProducer sends acks=all records to partition 0 of topic in a loop
// until stopped, and records which were acknowledged and how long the
// slowest send waited.
type ackedProducer struct {
	mu      sync.Mutex
	acked   map[string]bool
	failed  int
	slowest time.Duration
	stop    func()
}

func startAckedProducer(t *testing.T, seeds []string, topic string) *ackedProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.RecordDeliveryTimeout(60*time.Second), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	p := &ackedProducer{acked: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			sent := time.Now()
			res := cl.ProduceSync(context.Background(), kgo.StringRecord(fmt.Sprintf("r-%d", i)))
			took := time.Since(sent)
			p.mu.Lock()
			p.slowest = max(p.slowest, took)
			for _, r := range res {
				if r.Err == nil {
					p.acked[string(r.Record.Value)] = true
				} else {
					p.failed++
				}
			}
			p.mu.Unlock()
		}
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			cl.Close()
		})
	}
	t.Cleanup(p.stop)
	return p
}

func (p *ackedProducer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// waitAcked waits until n more records than now are acknowledged.
func (p *ackedProducer) waitAcked(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	want := p.count() + n
	waitCluster(t, limit, func() error {
		if got := p.count(); got < want {
			return fmt.Errorf("%d records acknowledged, want %d", got, want)
		}
		return nil
	})
}

// checkAckedOnce stops the producer and reads the partition back: every
// acknowledged record is there exactly once.
func (p *ackedProducer) checkAckedOnce(t *testing.T, c *inProcessCluster, seeds []string, topic string) {
	t.Helper()
	p.stop()
	leader, _ := c.leader(topic, 0)
	lp, _ := c.servers[leader].store.Partition(topic, 0)
	end := lp.HighWatermark()
	seen := consumeValues(t, seeds, topic, end)
	p.mu.Lock()
	defer p.mu.Unlock()
	var lost, twice []string
	for v := range p.acked {
		switch seen[v] {
		case 0:
			lost = append(lost, v)
		case 1:
		default:
			twice = append(twice, v)
		}
	}
	t.Logf("%d records acknowledged, %d failed, %d in the log (high watermark %d)", len(p.acked), p.failed, len(seen), end)
	if len(lost) > 0 || len(twice) > 0 {
		t.Fatalf("acknowledged records lost: %d %v; written twice: %d %v", len(lost), head(lost), len(twice), head(twice))
	}
}

func clusterSeeds(c *inProcessCluster) []string {
	var seeds []string
	for _, s := range c.servers {
		seeds = append(seeds, s.Addr().String())
	}
	return seeds
}

// TestFullDiskLeaderHandsOver: the disk under a partition's leader fills
// up while an acks=all producer writes to it. The leader's appends fail
// with ENOSPC before its log end moves; it reports its full disk, the
// controller elects another ISR member at a new epoch and takes the full
// broker out of the ISR, and the producer goes on there, as Kafka does
// when a log directory goes offline (KIP-112). Before, the full broker
// kept leading and refused every append until the space returned. Out of
// the ISR it cannot be elected back while full; once the space is back it
// catches up and rejoins without a restart, and no acknowledged record is
// lost or written twice.
func TestFullDiskLeaderHandsOver(t *testing.T) {
	dirs, onTmpfs := tmpfsDataDirs(t)
	c := startInProcessCluster(t, onTmpfs)
	const topic = "fullleader"
	c.createReplicated(topic, 1)
	old, oldEpoch := c.leader(topic, 0)
	seeds := clusterSeeds(c)
	prod := startAckedProducer(t, seeds, topic)
	prod.waitAcked(t, 200, 20*time.Second)

	filled := time.Now()
	free := testenv.FillVolume(t, dirs[old])
	t.Logf("broker %d, leader at epoch %d, has a full disk after %d acknowledged records", old, oldEpoch, prod.count())
	var moved *partition
	waitCluster(t, 15*time.Second, func() error {
		for id, s := range c.servers {
			p, ok := s.lookupPartition(topic, 0)
			if !ok || p.leader == old || p.leader < 0 || p.leaderEpoch <= oldEpoch || slices.Contains(p.isr, old) {
				return fmt.Errorf("broker %d sees %s-0 led by %d at epoch %d, ISR %v; want another leader at a newer epoch, broker %d out of the ISR", id, topic, p.leader, p.leaderEpoch, p.isr, old)
			}
			moved = p
		}
		return nil
	})
	t.Logf("%v after the disk filled every broker sees broker %d leading at epoch %d, ISR %v", time.Since(filled).Round(time.Millisecond), moved.leader, moved.leaderEpoch, moved.isr)
	prod.waitAcked(t, 200, 20*time.Second)
	// No flapping: while full, the broker joined no ISR and was not made
	// leader again (by the preferred-leader rebalance, every 500 ms here).
	for id, s := range c.servers {
		if p, _ := s.lookupPartition(topic, 0); p.leaderEpoch != moved.leaderEpoch || slices.Contains(p.isr, old) {
			t.Fatalf("broker %d sees %s-0 led by %d at epoch %d, ISR %v, while broker %d is still full; want epoch %d without it", id, topic, p.leader, p.leaderEpoch, p.isr, old, moved.leaderEpoch)
		}
	}
	prod.mu.Lock()
	t.Logf("200 more records acknowledged; slowest send so far %v", prod.slowest.Round(time.Millisecond))
	prod.mu.Unlock()

	free()
	freed := time.Now()
	waitCluster(t, 30*time.Second, func() error {
		p, _ := c.servers[old].lookupPartition(topic, 0)
		if len(p.isr) != 3 {
			return fmt.Errorf("broker %d has not rejoined the ISR: %v", old, p.isr)
		}
		return nil
	})
	t.Logf("broker %d back in the ISR %v after the space returned", old, time.Since(freed).Round(time.Millisecond))
	prod.checkAckedOnce(t, c, seeds, topic)
}

// TestFullDiskFollowerLeavesISR: the disk under an in-sync follower fills
// up. It cannot write what it fetches; it reports so and leaves the ISR at
// once, so acks=all produces (min.insync.replicas 2, two replicas left)
// go on being acknowledged instead of waiting for the leader to drop it
// after replica.lag.time.max.ms (30 s here, Kafka's default). Once the
// space is back it catches up and rejoins.
func TestFullDiskFollowerLeavesISR(t *testing.T) {
	dirs, onTmpfs := tmpfsDataDirs(t)
	c := startInProcessClusterTuned(t, func(o *node.Options) { o.LagTimeMax = 30 * time.Second }, onTmpfs)
	const topic = "fullfollower"
	c.createReplicated(topic, 1)
	leader, _ := c.leader(topic, 0)
	follower := int32(1)
	for follower == leader {
		follower++
	}
	seeds := clusterSeeds(c)
	prod := startAckedProducer(t, seeds, topic)
	prod.waitAcked(t, 200, 20*time.Second)

	filled := time.Now()
	free := testenv.FillVolume(t, dirs[follower])
	waitCluster(t, 10*time.Second, func() error {
		for id, s := range c.servers {
			if p, _ := s.lookupPartition(topic, 0); slices.Contains(p.isr, follower) {
				return fmt.Errorf("broker %d sees follower %d in the ISR %v", id, follower, p.isr)
			}
		}
		return nil
	})
	t.Logf("%v after its disk filled, follower %d is out of the ISR", time.Since(filled).Round(time.Millisecond), follower)
	// Acknowledged well within replica.lag.time.max.ms.
	prod.waitAcked(t, 200, 10*time.Second)
	prod.mu.Lock()
	t.Logf("slowest send so far %v", prod.slowest.Round(time.Millisecond))
	prod.mu.Unlock()

	free()
	waitCluster(t, 30*time.Second, func() error {
		p, _ := c.servers[leader].lookupPartition(topic, 0)
		if !slices.Contains(p.isr, follower) {
			return fmt.Errorf("follower %d has not rejoined the ISR: %v", follower, p.isr)
		}
		return nil
	})
	prod.checkAckedOnce(t, c, seeds, topic)
}

// TestFullBrokerFollowsMetadata: a broker's disk fills up. Its Raft store,
// on the same disk as in production, writes the metadata log into the
// space it keeps reserved (cluster.Config.MetadataLogReserve), so the
// broker goes on applying what the others do: here 300 ACL changes made
// through another broker, a Raft entry each. Without the reserve its
// store failed its appends with ENOSPC and its metadata stayed as it was
// until the space returned, so it answered Metadata with stale leaders.
func TestFullBrokerFollowsMetadata(t *testing.T) {
	dirs, onTmpfs := tmpfsDataDirs(t)
	c := startInProcessCluster(t, onTmpfs)
	const full, via = 3, 1
	free := testenv.FillVolume(t, dirs[full])
	defer free()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 300
	for i := range n {
		acl := metadata.ACL{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: fmt.Sprintf("orders-%d", i), PatternType: kmsg.ACLResourcePatternTypeLiteral,
			Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow}
		if _, err := c.nodes[via].Controller.CreateACLs(ctx, []metadata.ACL{acl}); err != nil {
			t.Fatalf("ACL %d: %v", i, err)
		}
	}
	want := c.nodes[via].Controller.State().Index
	waitCluster(t, 15*time.Second, func() error {
		if st := c.nodes[full].Controller.State(); st.Index < want || st.ACLs.Len() != n {
			return fmt.Errorf("broker %d, its disk full, applied the metadata log to index %d with %d ACLs; broker %d is at %d with %d", full, st.Index, st.ACLs.Len(), via, want, n)
		}
		return nil
	})
}
