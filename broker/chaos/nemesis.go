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

	// The network partitions (ClusterConfig.Netns): packets between the
	// two sides are dropped, both ways, established connections
	// included; the run's clients still reach every broker. They heal
	// after the fault's duration.

	// PartitionIsolate cuts a random broker from every other broker: a
	// leader on it keeps its clients (the stale-leader case).
	PartitionIsolate FaultKind = "partition-isolate"
	// PartitionHalves splits the brokers into a random minority and the
	// majority (with three brokers, one against two).
	PartitionHalves FaultKind = "partition-halves"
	// PartitionLeader cuts the active controller, or the leader of a
	// random partition of the topic, from every other broker.
	PartitionLeader FaultKind = "partition-leader"
	// PartitionBridge is Jepsen's bridge: two halves that cannot reach
	// each other, and one broker that reaches both (three or more
	// brokers).
	PartitionBridge FaultKind = "partition-bridge"
	// PartitionOneWay drops one direction only (Network.Drop) between a
	// random broker and one other broker, or every other broker (the
	// quorum), half the time each; which direction is random too. Over TCP
	// the side whose packets are dropped still receives and acts on what
	// the other sends (a follower's fetches, a Raft leader's appends), but
	// its answers are lost.
	PartitionOneWay FaultKind = "partition-oneway"
	// PartitionClients cuts a random broker from the run's clients (its
	// packets to them are dropped) but not from the other brokers: the
	// cluster sees a healthy broker, leader of its partitions, that no
	// producer or consumer reaches.
	PartitionClients FaultKind = "partition-clients"

	// DiskFull fills a random running broker's disk
	// (ClusterConfig.DiskSize) until writes fail with ENOSPC, for the
	// fault's duration; the heal frees it.
	DiskFull FaultKind = "disk-full"
)

// AllFaults is every process fault kind.
var AllFaults = []FaultKind{KillRandom, KillLeader, KillController, PauseRandom, RestartRandom, LoseRack}

// PartitionFaults is every network partition kind; they need the brokers
// in network namespaces (ClusterConfig.Netns).
var PartitionFaults = []FaultKind{PartitionIsolate, PartitionHalves, PartitionLeader, PartitionBridge, PartitionOneWay, PartitionClients}

// IsPartition reports whether the fault cuts the network.
func (k FaultKind) IsPartition() bool { return slices.Contains(PartitionFaults, k) }

// NeedsDisks reports whether the fault needs the brokers on disks of their
// own (ClusterConfig.DiskSize).
func (k FaultKind) NeedsDisks() bool { return k == DiskFull }

// CheckFaults refuses an empty list, a kind nobody knows, a partition
// without the network namespaces that make it, and a full disk without
// the brokers' own disks.
func CheckFaults(kinds []FaultKind, netns, disks bool) error {
	if len(kinds) == 0 {
		return errors.New("no fault kind")
	}
	known := append(append(slices.Clone(AllFaults), Reassign, DiskFull), PartitionFaults...)
	var errs []error
	for _, k := range kinds {
		switch {
		case !slices.Contains(known, k):
			errs = append(errs, fmt.Errorf("unknown fault kind %q (known: %v)", k, known))
		case k.IsPartition() && !netns:
			errs = append(errs, fmt.Errorf("fault %s cuts the network between brokers: it needs each broker in its own network namespace (root, ip(8))", k))
		case k.NeedsDisks() && !disks:
			errs = append(errs, fmt.Errorf("fault %s fills a broker's disk: it needs each broker on a disk of its own (a tmpfs of -disk-size; root)", k))
		}
	}
	return errors.Join(errs...)
}

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

// newRand is the nemesis's source of choices: one seed, one schedule.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x7472696275746172)) }

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

// network is the run's network of namespaces, for a partition fault of kind.
func (n *nemesis) network(kind FaultKind) (*Network, error) {
	nw := n.c.Network()
	if nw == nil {
		return nil, fmt.Errorf("%s: the brokers are not in network namespaces", kind)
	}
	return nw, nil
}

// nodeIDs are the ids of every broker of the run, serving or not.
func (n *nemesis) nodeIDs() []int32 {
	var ids []int32
	for _, node := range n.c.Nodes() {
		ids = append(ids, node.ID)
	}
	return ids
}

// serving are the ids of the brokers running and not paused.
func (n *nemesis) serving() []int32 {
	var ids []int32
	for _, node := range n.c.Nodes() {
		if n.c.Running(node.ID) && !n.c.Paused(node.ID) {
			ids = append(ids, node.ID)
		}
	}
	return ids
}

func (n *nemesis) randomRunning() (int32, bool) {
	ids := n.serving()
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
	case PartitionIsolate, PartitionHalves, PartitionLeader, PartitionBridge:
		return n.partition(ctx, kind)
	case PartitionOneWay:
		return n.oneWay()
	case PartitionClients:
		nw, err := n.network(kind)
		if err != nil {
			return err
		}
		nodes := n.c.Nodes()
		id := nodes[n.rnd.IntN(len(nodes))].ID
		n.n++
		n.note("%s: broker %d's packets to the clients dropped", kind, id)
		return nw.Drop(id, Clients)
	case DiskFull:
		id, ok := n.randomRunning()
		if !ok {
			return errors.New("no running broker")
		}
		n.n++
		wrote, err := n.c.FillDisk(id)
		free, ferr := n.c.DiskFree(id)
		n.note("%s: filled broker %d's disk with %d bytes (%d bytes left)", kind, id, wrote, free)
		return errors.Join(err, ferr)
	}
	return fmt.Errorf("unknown fault %q", kind)
}

// partition cuts the network between two sides of the brokers.
func (n *nemesis) partition(ctx context.Context, kind FaultKind) error {
	nw, err := n.network(kind)
	if err != nil {
		return err
	}
	ids := n.nodeIDs()
	if len(ids) < 2 || (kind == PartitionBridge && len(ids) < 3) {
		return fmt.Errorf("%s: %d brokers are too few", kind, len(ids))
	}
	others := func(id int32) []int32 {
		return slices.DeleteFunc(slices.Clone(ids), func(x int32) bool { return x == id })
	}
	n.rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	var side1, side2 []int32
	var what string
	switch kind {
	case PartitionIsolate:
		side1, side2 = ids[:1], ids[1:]
		what = fmt.Sprintf("broker %d", side1[0])
	case PartitionHalves:
		// A minority of one to floor((n-1)/2) brokers.
		m := 1 + n.rnd.IntN(max(1, (len(ids)-1)/2))
		side1, side2 = ids[:m], ids[m:]
		what = fmt.Sprintf("minority %v", side1)
	case PartitionLeader:
		md, err := n.metadata(ctx)
		if err != nil {
			return err
		}
		var leaders []int32
		for _, p := range md.Topics[n.cfg.Topic].Partitions.Sorted() {
			if p.Leader >= 0 {
				leaders = append(leaders, p.Leader)
			}
		}
		id, role, err := leaderTarget(md.Controller, leaders, n.rnd)
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		if _, ok := n.c.Node(id); !ok {
			return fmt.Errorf("%s: %s %d is not one of ours", kind, role, id)
		}
		side1, side2 = []int32{id}, others(id)
		what = fmt.Sprintf("%s, broker %d", role, id)
	case PartitionBridge:
		bridge, rest := ids[0], ids[1:]
		side1, side2 = rest[:len(rest)/2], rest[len(rest)/2:]
		what = fmt.Sprintf("bridge broker %d reaching both", bridge)
	}
	n.n++
	n.note("%s: cut %v from %v (%s)", kind, side1, side2, what)
	return nw.Partition(side1, side2)
}

// oneWay drops one direction between a random broker and one other
// broker or all of them.
func (n *nemesis) oneWay() error {
	nw, err := n.network(PartitionOneWay)
	if err != nil {
		return err
	}
	ids := n.nodeIDs()
	if len(ids) < 2 {
		return fmt.Errorf("%s: %d brokers are too few", PartitionOneWay, len(ids))
	}
	n.rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	id, others := ids[0], ids[1:]
	if n.rnd.IntN(2) == 0 {
		others = others[:1]
	}
	outgoing := n.rnd.IntN(2) == 0
	n.n++
	if outgoing {
		n.note("%s: broker %d's packets to %v dropped (theirs to it delivered)", PartitionOneWay, id, others)
	} else {
		n.note("%s: packets of %v to broker %d dropped (its to them delivered)", PartitionOneWay, others, id)
	}
	var errs []error
	for _, o := range others {
		if outgoing {
			errs = append(errs, nw.Drop(id, o))
		} else {
			errs = append(errs, nw.Drop(o, id))
		}
	}
	return errors.Join(errs...)
}

// leaderTarget picks what partition-leader cuts off: the active
// controller or a random partition leader, half the time each. Between two
// controllers the brokers' Metadata names none (-1): a partition leader
// then.
func leaderTarget(controller int32, leaders []int32, rnd *rand.Rand) (int32, string, error) {
	switch {
	case len(leaders) > 0 && (controller < 0 || rnd.IntN(2) == 0):
		return leaders[rnd.IntN(len(leaders))], "a partition leader", nil
	case controller >= 0:
		return controller, "the active controller", nil
	}
	return -1, "", errors.New("no active controller and no partition leader")
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
	live := n.serving()
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
