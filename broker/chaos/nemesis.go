package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FaultKind is one kind of fault the nemesis injects.
type FaultKind string

// Fault kinds.
const (
	KillRandom     FaultKind = "kill"            // kill -9 a random broker
	KillLeader     FaultKind = "kill-leader"     // kill -9 the leader of a random partition
	KillController FaultKind = "kill-controller" // kill -9 the active controller
	PauseRandom    FaultKind = "pause"           // SIGSTOP a random broker
	RestartRandom  FaultKind = "restart"         // SIGTERM (controlled shutdown) then start
	LoseRack       FaultKind = "lose-az"         // kill -9 every broker of one rack
	// Reassign moves a random partition's replicas to another set of
	// brokers in another order, as a scale-in's drain or a rebalance does:
	// replicas join the ISR, the reassignment completes with the last of
	// them, and the leadership moves when the leader leaves or the
	// preferred replica changes. Only with more brokers than replicas does
	// the set change; with as many, the order does.
	Reassign FaultKind = "reassign"
)

// AllFaults is every fault kind.
var AllFaults = []FaultKind{KillRandom, KillLeader, KillController, PauseRandom, RestartRandom, LoseRack}

// NemesisConfig schedules faults.
type NemesisConfig struct {
	Faults []FaultKind
	// Interval between fault starts; each fault lasts Duration, then the
	// cluster is healed (paused brokers resumed, dead ones restarted).
	Interval time.Duration
	Duration time.Duration
	Seed     uint64
	Topic    string
	Logger   *slog.Logger
	// ReturnWithin bounds how long each broker may take to answer again
	// after a heal (30 s when zero); one that does not, or whose process
	// exits, ends the run with the reason.
	ReturnWithin time.Duration
}

// nemesis injects faults into a cluster and records them in the history.
type nemesis struct {
	cfg NemesisConfig
	c   *Cluster
	rec *Recorder
	rnd *rand.Rand
	n   int
}

const nemesisProcess = -1

func (n *nemesis) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	n.rec.Add(Event{Process: nemesisProcess, Func: Fault, Status: Info, Error: msg})
	n.cfg.Logger.Info("nemesis: " + msg)
}

// run injects faults until ctx ends, then heals; it returns how many
// faults it injected.
func (n *nemesis) run(ctx context.Context) (int, error) {
	t := time.NewTicker(n.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return n.n, nil
		case <-t.C:
		}
		kind := n.cfg.Faults[n.rnd.IntN(len(n.cfg.Faults))]
		if err := n.inject(ctx, kind); err != nil {
			n.note("%s failed: %v", kind, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(n.cfg.Duration):
		}
		if err := n.c.Heal(); err != nil {
			return n.n, fmt.Errorf("healing after %s: %w", kind, err)
		}
		if err := n.c.WaitAnswering(ctx, n.cfg.ReturnWithin); err != nil && ctx.Err() == nil {
			n.note("a broker did not come back after %s", kind)
			return n.n, fmt.Errorf("healing after %s: %w", kind, err)
		}
		n.note("healed")
	}
}

func (n *nemesis) randomRunning() (int32, bool) {
	var ids []int32
	for _, node := range n.c.Nodes() {
		if n.c.Running(node.ID) && !n.c.Paused(node.ID) {
			ids = append(ids, node.ID)
		}
	}
	if len(ids) == 0 {
		return 0, false
	}
	return ids[n.rnd.IntN(len(ids))], true
}

func (n *nemesis) inject(ctx context.Context, kind FaultKind) error {
	switch kind {
	case KillRandom, PauseRandom, RestartRandom:
		id, ok := n.randomRunning()
		if !ok {
			return errors.New("no running broker")
		}
		n.n++
		switch kind {
		case KillRandom:
			n.note("kill -9 broker %d", id)
			return n.c.Kill(id)
		case PauseRandom:
			n.note("SIGSTOP broker %d", id)
			return n.c.Pause(id)
		default:
			n.note("SIGTERM broker %d, then start it", id)
			err := n.c.Terminate(id, 30*time.Second)
			if err != nil {
				_ = n.c.Kill(id)
			}
			return errors.Join(err, n.c.Start(id))
		}
	case KillLeader, KillController:
		md, err := n.metadata(ctx)
		if err != nil {
			return err
		}
		id := md.Controller
		if kind == KillLeader {
			var leaders []int32
			for _, p := range md.Topics[n.cfg.Topic].Partitions.Sorted() {
				if p.Leader >= 0 {
					leaders = append(leaders, p.Leader)
				}
			}
			if len(leaders) == 0 {
				return errors.New("no partition has a leader")
			}
			id = leaders[n.rnd.IntN(len(leaders))]
		}
		if _, ok := n.c.Node(id); !ok || !n.c.Running(id) {
			return fmt.Errorf("%s: broker %d is not one of ours or not running", kind, id)
		}
		n.n++
		n.note("%s: kill -9 broker %d", kind, id)
		return n.c.Kill(id)
	case LoseRack:
		var racks []string
		for _, node := range n.c.Nodes() {
			if !slices.Contains(racks, node.Rack) {
				racks = append(racks, node.Rack)
			}
		}
		rack := racks[n.rnd.IntN(len(racks))]
		n.n++
		killed, err := n.c.KillRack(rack)
		n.note("lost AZ %s: killed brokers %v", rack, killed)
		return err
	case Reassign:
		return n.reassign(ctx)
	}
	return fmt.Errorf("unknown fault %q", kind)
}

// reassign moves a random partition of the topic onto a random set of
// running brokers (as many as it has replicas) in a random order other
// than its current one.
func (n *nemesis) reassign(ctx context.Context) error {
	cl, err := n.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	md, err := adm.Metadata(mctx, n.cfg.Topic)
	if err != nil {
		return err
	}
	parts := md.Topics[n.cfg.Topic].Partitions.Sorted()
	if len(parts) == 0 {
		return fmt.Errorf("topic %s has no partitions", n.cfg.Topic)
	}
	p := parts[n.rnd.IntN(len(parts))]
	var live []int32
	for _, node := range n.c.Nodes() {
		if n.c.Running(node.ID) && !n.c.Paused(node.ID) {
			live = append(live, node.ID)
		}
	}
	if len(live) < len(p.Replicas) {
		return fmt.Errorf("%d brokers running, partition %d has %d replicas", len(live), p.Partition, len(p.Replicas))
	}
	var target []int32
	for range 10 {
		n.rnd.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		target = slices.Clone(live[:len(p.Replicas)])
		if !slices.Equal(target, p.Replicas) {
			break
		}
	}
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(n.cfg.Topic, p.Partition, target)
	n.n++
	n.note("reassign %s-%d from %v (leader %d) to %v", n.cfg.Topic, p.Partition, p.Replicas, p.Leader, target)
	resp, err := adm.AlterPartitionAssignments(mctx, req)
	if err != nil {
		return err
	}
	return resp.Error()
}

// client is a Kafka client of the brokers serving now.
func (n *nemesis) client() (*kgo.Client, error) {
	var seeds []string
	for _, node := range n.c.Nodes() {
		if n.c.Running(node.ID) && !n.c.Paused(node.ID) {
			seeds = append(seeds, node.KafkaAddr())
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("no broker is serving")
	}
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, n.c.ClientOpts()...)...)
}

func (n *nemesis) metadata(ctx context.Context) (kadm.Metadata, error) {
	cl, err := n.client()
	if err != nil {
		return kadm.Metadata{}, err
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return kadm.NewClient(cl).Metadata(mctx, n.cfg.Topic)
}
