package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// ControlPlane is what the manager needs from the cluster controller;
// *cluster.Controller implements it.
type ControlPlane interface {
	NodeID() int32
	State() *metadata.State
	Changed() <-chan struct{}
	AlterPartition(ctx context.Context, topic string, partition, leaderEpoch, partitionEpoch int32, newISR []int32) (metadata.Partition, error)
	// CaughtUp reports whether st is new enough to act on (open, lead,
	// follow, delete logs by): it holds this process's registration with
	// the metadata quorum (see cluster.Controller.CaughtUp).
	CaughtUp(st *metadata.State) bool
}

// PartitionLog is a local partition log as both sides use it.
type PartitionLog interface {
	Log
	Read(offset int64, maxBytes int32, upTo int64) ([]byte, error)
}

// Logs opens local partition logs; the server backs it with its
// storage.Store (CreatePartition is idempotent).
type Logs interface {
	// Open opens (creating it if needed) the log of a partition of the
	// topic whose id is id. A log on disk created for another id (an
	// earlier topic of the same name) is refused with an error wrapping
	// storage.ErrTopicIDMismatch; one whose id is unknown takes id.
	Open(topic string, partition int32, id metadata.TopicID, configs map[string]string) (PartitionLog, error)
	// Delete removes a deleted topic's local logs.
	Delete(topic string) error
	// DeletePartition removes one partition's local log (the metadata
	// moved it off this broker); a log already gone is not an error.
	DeletePartition(tp TopicPartition) error
	// Held lists the partitions whose logs are on this broker's disk.
	Held() []TopicPartition
}

// MinISRConfig is the topic config (and broker default) of acks=all's
// minimum ISR size.
const MinISRConfig = "min.insync.replicas"

// ManagerConfig configures a broker's replica manager.
type ManagerConfig struct {
	Control ControlPlane
	Logs    Logs
	// LagTimeMax is replica.lag.time.max.ms.
	LagTimeMax time.Duration
	// DefaultMinISR is min.insync.replicas for topics without an override
	// when the metadata holds no dynamic broker value for it.
	DefaultMinISR int
	// ISRInterval is how often ISR changes are checked and proposed.
	ISRInterval time.Duration
	// Fetch shapes the follower fetchers (LocalID, LeaderID and Addr are
	// filled in per leader).
	Fetch FetcherConfig
	// OnLeadership, when set, is called (with the manager's lock held: it
	// must not call back into the manager) when this broker starts leading
	// a partition (leader true, with the epoch) and when it stops. The
	// group coordinator loads and unloads the groups of an offsets-topic
	// partition with it.
	OnLeadership func(tp TopicPartition, leader bool, epoch int32)
	// OnHighWatermark, when set, is called (with the partition's leader
	// state locked: it must not call back into the manager or the
	// Leader) each time the high watermark of a partition this broker
	// leads moves up; the server wakes the consumers long-polling for
	// new data with it.
	OnHighWatermark func(tp TopicPartition)
	// Throttle is the replication throttle the broker starts with (see
	// Throttle); the metadata's configs are put in force over it.
	Throttle ThrottleConfig
	Logger   *slog.Logger
}

type leading struct {
	tracker *Leader
	log     PartitionLog
	obs     observableLog // nil when the log does not report appends
	cuts    cutObservableLog
}

// cutObservableLog is a log that reports the cuts a failed fsync makes
// (storage.Partition.SetCutObserver).
type cutObservableLog interface {
	SetCutObserver(fn func(storage.Cut))
}

// observableLog is a log that reports its appends and fsyncs as they
// happen (storage.Partition.SetObserver): the leader then wakes follower
// fetches when data is written, not when the producer's append returns
// after its fsync.
type observableLog interface {
	SetObserver(fn func(logEnd, ackEnd int64))
}

// trackedLog remembers whether this process has set the log's high
// watermark. Until it has, storage reports its durable end as the high
// watermark, which after a restart may include records that were never
// replicated; a broker that becomes leader then starts from the watermark
// the log restored from its checkpoint (knownHighWatermark), else from the
// log start, and lets the followers' fetches move the watermark up.
type trackedLog struct {
	PartitionLog
	hwSet atomic.Bool
}

func (t *trackedLog) SetHighWatermark(hw int64) {
	t.hwSet.Store(true)
	t.PartitionLog.SetHighWatermark(hw)
}

// WriteAsFollower writes a follower's batches without waiting for their
// durability when the log can (see followerWriter).
func (t *trackedLog) WriteAsFollower(batches []byte) (func(context.Context) error, error) {
	return writeAsFollower(context.Background(), t.PartitionLog, batches)
}

// ReadSlices locates batches in the log's files when the log can (see
// sliceReader); ok is false otherwise, and the caller reads them.
func (t *trackedLog) ReadSlices(offset int64, maxBytes int32, upTo int64) ([]storage.FileSlice, bool, error) {
	if sr, ok := t.PartitionLog.(sliceReader); ok {
		return sr.ReadSlices(offset, maxBytes, upTo)
	}
	return nil, false, nil
}

// ReadInto reads batches into rb's memory when the log can (see
// bufferedReader), else into memory of their own.
func (t *trackedLog) ReadInto(offset int64, maxBytes int32, upTo int64, rb *storage.ReadBuffers) ([]byte, error) {
	if br, ok := t.PartitionLog.(bufferedReader); ok {
		return br.ReadInto(offset, maxBytes, upTo, rb)
	}
	return t.PartitionLog.Read(offset, maxBytes, upTo)
}

// epochFence is a log that refuses leader appends made under an older
// leader epoch (storage.Partition.FenceLeaderEpoch).
type epochFence interface {
	FenceLeaderEpoch(epoch int32)
}

// fenceOlderEpochs makes the log refuse leader appends below epoch, when
// it can. A produce that took this broker's leadership at an older epoch
// just before it ended may reach the log late, after this replica started
// following the new leader and copied records from it: appended then, it
// would sit where the new leader has other records, which the new leader
// counts as replicated here once this replica fetches past them.
func (t *trackedLog) fenceOlderEpochs(epoch int32) {
	if f, ok := t.PartitionLog.(epochFence); ok {
		f.FenceLeaderEpoch(epoch)
	}
}

// epochStarter is a log with a leader-epoch cache that can record an
// epoch before its first append (storage.Partition.AssignLeaderEpochStart).
type epochStarter interface {
	AssignLeaderEpochStart(epoch int32)
}

// startEpoch records, when the log can, that leader epoch epoch starts at
// the log end: a follower asking OffsetForLeaderEpoch (or fetching with a
// LastFetchedEpoch) for an epoch newer than any this replica wrote, which
// it got from the previous leader, is then told where this leader's log
// stops agreeing with it (the start of this epoch) instead of
// UNDEFINED_EPOCH, on which it would truncate to its high watermark and
// could drop acknowledged records while it stays in the ISR.
func (t *trackedLog) startEpoch(epoch int32) {
	if s, ok := t.PartitionLog.(epochStarter); ok {
		s.AssignLeaderEpochStart(epoch)
	}
}

// highWatermarkKeeper is a log that says whether its high watermark was
// set by the replication layer, in this process or restored from a
// checkpoint (storage.Partition.KnownHighWatermark).
type highWatermarkKeeper interface {
	KnownHighWatermark() (int64, bool)
}

// knownHighWatermark is the high watermark to start leading from: the one
// this process set, else the one the log restored from its checkpoint,
// else the log start. A restored watermark is one this broker had as
// leader or had from its leader as follower, so every record below it was
// in the whole ISR of its time: a leader elected from the ISR has them
// all, and they are committed whatever happened since (a truncation moves
// the saved watermark down with the log end, and it is clamped to the log
// end). Starting there, instead of at the log start, the watermark of a
// restarted broker that leads before its followers fetch does not go
// back to the log start (consumers answered with no data, ListOffsets
// latest moving backwards) for a fetch round; the Leader only moves it up.
func (t *trackedLog) knownHighWatermark() int64 {
	if t.hwSet.Load() {
		return t.HighWatermark()
	}
	if k, ok := t.PartitionLog.(highWatermarkKeeper); ok {
		if hw, ok := k.KnownHighWatermark(); ok {
			return max(hw, t.LogStartOffset())
		}
	}
	return t.LogStartOffset()
}

type following struct {
	leader int32
	epoch  int32
	addr   string
}

// Manager makes this broker play its part for every partition it holds a
// replica of, as the metadata says: it leads (a Leader tracker whose high
// watermark drives the log's, answering follower fetches, proposing ISR
// changes) or it follows (a Fetcher per leader broker), and it switches as
// leaderships move.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger
	id  int32

	mu        sync.Mutex
	leaders   map[TopicPartition]*leading
	following map[TopicPartition]following
	fetchers  map[string]*Fetcher // by leader id and address
	logs      map[TopicPartition]*trackedLog
	// reporting holds the brokers whose unreachability is being reported
	// to the controller (one report in flight per broker).
	reportingMu sync.Mutex
	reporting   map[int32]bool
	// diskReports holds, by partition, this broker's last report that it
	// cannot write what it follows for lack of space (see
	// reportFollowerDiskFull).
	diskReports map[TopicPartition]diskReport
	// heldBackLogged holds the command types heldBack logged as held
	// back, until they are not.
	heldBackLogged map[metadata.CommandType]bool
	// probing: a probe of a full disk is under way; probedAt: when the
	// last one started (see probeDisk).
	probing  bool
	probedAt time.Time

	// topics are the ids of the topics this broker holds replicas of, as
	// seen in the metadata: a topic that disappears (or comes back with a
	// new id) was deleted, and its local logs go.
	topics map[string]metadata.TopicID
	// strayChecked: the logs on disk were compared with a caught-up
	// state once (deleteStrayLogs).
	strayChecked bool

	// reconciled is the index of the last metadata state the roles were
	// brought in line with; reconciledCh closes when it moves.
	reconciledMu sync.Mutex
	reconciled   int64
	reconciledCh chan struct{}
	// seen is the index of the newest metadata state the run loop has
	// looked at, acted on or not (tests wait for it).
	seen atomic.Int64

	throttle *Throttle

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// StartManager starts following the metadata.
func StartManager(cfg ManagerConfig) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ISRInterval <= 0 {
		cfg.ISRInterval = 500 * time.Millisecond
	}
	if cfg.DefaultMinISR < 1 {
		cfg.DefaultMinISR = 1
	}
	m := &Manager{
		cfg: cfg, id: cfg.Control.NodeID(),
		log:       cfg.Logger.With("component", "replicas", "node", cfg.Control.NodeID()),
		leaders:   map[TopicPartition]*leading{},
		following: map[TopicPartition]following{},
		fetchers:  map[string]*Fetcher{},
		logs:      map[TopicPartition]*trackedLog{},
		topics:    map[string]metadata.TopicID{},
		reporting: map[int32]bool{},

		diskReports:    map[TopicPartition]diskReport{},
		heldBackLogged: map[metadata.CommandType]bool{},
		done:           make(chan struct{}),

		reconciledCh: make(chan struct{}),
	}
	m.throttle = NewThrottle(m.id, cfg.Throttle, nil)
	if st := cfg.Control.State(); st != nil {
		m.throttle.Update(st)
	}
	m.cfg.Fetch.Throttle = m.throttle
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.run()
	return m
}

// Throttle is this broker's replication throttle; the replication
// listener holds back throttled replicas' data with it.
func (m *Manager) Throttle() *Throttle { return m.throttle }

// Close stops fetching and resigns every leadership (waiting producers get
// ErrNotLeader).
func (m *Manager) Close() {
	m.cancel()
	<-m.done
	m.mu.Lock()
	for tp := range m.leaders {
		m.stopLeading(tp)
	}
	fetchers := m.fetchers
	m.fetchers = map[string]*Fetcher{}
	m.mu.Unlock()
	// Outside the lock: a fetcher's request may wait on another broker,
	// whose listener looks up that broker's manager.
	for _, f := range fetchers {
		f.Close()
	}
}

// Leader returns the leader state and log of a partition this broker
// leads. The server uses it on every produce (CheckAcksAll, Appended,
// WaitReplicated, the leader epoch to append with) and as the Lookup of
// HandleFetch.
func (m *Manager) Leader(topic string, partition int32) (*Leader, PartitionLog, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.leaders[TopicPartition{topic, partition}]
	if !ok {
		return nil, nil, false
	}
	return l.tracker, l.log, true
}

// Lookup adapts Leader to HandleFetch.
func (m *Manager) Lookup(topic string, partition int32) (*Leader, LeaderLog, bool) {
	l, log, ok := m.Leader(topic, partition)
	return l, log, ok
}

func (m *Manager) run() {
	defer close(m.done)
	t := time.NewTicker(m.cfg.ISRInterval)
	defer t.Stop()
	var last *metadata.State // reconciled completely
	caughtUp := false
	for {
		changed := m.cfg.Control.Changed()
		st := m.cfg.Control.State()
		var retry <-chan time.Time
		switch {
		case !caughtUp && !m.cfg.Control.CaughtUp(st):
			// A restarting broker replays metadata older than its
			// logs; acting on it created (and fsynced) empty logs
			// for partitions that were this broker's in an old state
			// and are not any more, deleted again as strays once
			// caught up, and would open a log on disk for a topic the
			// state names under an id older than the log's. Nothing
			// is led or followed, opened or deleted, until the
			// metadata holds this process's registration. Nothing
			// waits for it meanwhile: the server serves no client
			// before the node has caught up (node.Start waits for
			// WaitReconciled at a caught-up index), so a partition
			// whose only replica is this broker (a cluster of one
			// too) takes no produce yet; a follower fetching from
			// this broker as a leader the metadata still names gets
			// NOT_LEADER_OR_FOLLOWER and retries, as it does while
			// the broker is down. The registration may be committed
			// before the controller records it (CaughtUp), with no
			// metadata change after it: look again shortly.
			retry = time.After(caughtUpPoll)
		default:
			if !caughtUp {
				caughtUp = true
				m.log.Info("metadata caught up with this broker's registration: its replicas follow it from here", "index", st.Index)
			}
			if last == nil || !st.OnlyLeasesDiffer(last) {
				m.throttle.Update(st)
				idle, complete := m.reconcile(st, last)
				for _, f := range idle {
					f.Close() // outside the lock, see Close
				}
				last = nil
				if complete {
					last = st
				}
			}
			m.markReconciled(st.Index)
		}
		m.seen.Store(st.Index)
		select {
		case <-m.ctx.Done():
			return
		case <-changed:
		case <-retry:
		case <-t.C:
			m.proposeISRChanges(st)
			m.probeDisk(st)
		}
	}
}

// caughtUpPoll is how often a manager whose metadata has not caught up
// looks at it again when no change wakes it.
const caughtUpPoll = 50 * time.Millisecond

func (m *Manager) markReconciled(index int64) {
	m.reconciledMu.Lock()
	defer m.reconciledMu.Unlock()
	if index > m.reconciled {
		m.reconciled = index
		close(m.reconciledCh)
		m.reconciledCh = make(chan struct{})
	}
}

// WaitReconciled waits until the roles of this broker (leading, following,
// logs open) follow a metadata state at least as new as index: after a
// metadata change applied here, the broker acts on it once this returns.
func (m *Manager) WaitReconciled(ctx context.Context, index int64) error {
	for {
		m.reconciledMu.Lock()
		done, ch := m.reconciled >= index, m.reconciledCh
		m.reconciledMu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-m.done:
			return errors.New("replica manager stopped")
		case <-ctx.Done():
			return fmt.Errorf("waiting for the replicas to follow metadata index %d: %w", index, ctx.Err())
		}
	}
}

// minISR is a topic's min.insync.replicas: its own value, else the
// broker's dynamic value (this broker's own, then the cluster-wide one,
// both in the metadata, so a change applies at once), else the value the
// broker started with.
func (m *Manager) minISR(st *metadata.State, t *metadata.Topic) int {
	layers := []map[string]string{t.Configs, st.BrokerConfigs[m.id], st.BrokerConfigs[metadata.ClusterDefault]}
	for _, configs := range layers {
		if v, ok := configs[MinISRConfig]; ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return m.cfg.DefaultMinISR
}

// replicationAddr is where followers fetch from a broker: its replication
// listener, else its first client listener.
func replicationAddr(b *metadata.Broker) string {
	if b.ReplicationAddr != "" {
		return b.ReplicationAddr
	}
	if len(b.Listeners) > 0 {
		l := b.Listeners[0]
		return net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
	}
	return ""
}

// reconcile brings the local roles in line with the metadata. It returns
// the fetchers left with nothing to do, for the caller to close once the
// lock is released, and whether every replica's log could be opened (if
// not, the next round tries again).
//
// prev, when not nil, is the last state reconciled completely. When st
// differs from it only in partitions' states (see
// metadata.State.OnlyPartitionStatesDiffer), only the partitions that
// changed, and those whose role here is not what their state says (a
// leadership that could not start, a leader with no address), are looked
// at: a broker rejoining a cluster of thousands of partitions brings one
// ISR change per partition, and a whole pass over every partition for each
// made the rejoin quadratic.
func (m *Manager) reconcile(st, prev *metadata.State) (idle []*Fetcher, complete bool) {
	if prev != nil && st.OnlyPartitionStatesDiffer(prev) {
		if idle, ok := m.reconcileChanged(st, prev); ok {
			return idle, true
		}
	}
	return m.reconcileAll(st)
}

// reconcileAll is reconcile's pass over every partition of st.
func (m *Manager) reconcileAll(st *metadata.State) (idle []*Fetcher, complete bool) {
	m.mu.Lock()
	m.dropDeletedTopics(st)
	missing := m.missingLogs(st)
	m.mu.Unlock()
	// Opening a log creates and fsyncs its files: a topic of thousands of
	// partitions takes seconds to open. The lock is not held meanwhile:
	// every produce and fetch looks its leader up under it
	// (Manager.Leader), and a lock held across the opens stalled them for
	// as long, until the leaders' followers, unable to fetch, dropped out
	// of the ISRs.
	opened := m.openLogs(missing)
	complete = len(opened) == len(missing)
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp, log := range opened {
		m.logs[tp] = log
	}
	seen := map[TopicPartition]bool{}
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for i, p := range t.Partitions() {
			if !containsID(p.Replicas, m.id) {
				continue
			}
			tp := TopicPartition{name, int32(i)}
			seen[tp] = true
			m.topics[name] = t.ID
			log, ok := m.logs[tp]
			if !ok {
				continue // not opened (logged by openLogs): the next round tries again
			}
			m.reconcilePartition(st, t, tp, p, log)
		}
	}
	for tp := range m.leaders {
		if !seen[tp] {
			m.stopLeading(tp)
		}
	}
	for tp := range m.following {
		if !seen[tp] {
			m.stopFollowing(tp)
		}
	}
	var movedAway []TopicPartition
	for tp := range m.logs {
		if !seen[tp] {
			delete(m.logs, tp)
			movedAway = append(movedAway, tp)
		}
	}
	m.deleteMovedLogs(st, movedAway)
	for k, f := range m.fetchers {
		if f.Len() == 0 {
			idle = append(idle, f)
			delete(m.fetchers, k)
		}
	}
	return idle, complete
}

// deleteMovedLogs deletes the logs of partitions this broker no longer
// holds a replica of: movedAway, the logs it had open and st took away
// (a reassignment's last step drops the removed replicas from
// Partition.Replicas; while it is in progress they are still there), and
// once per process, at the first caught-up state, every log on disk st
// does not give it (moved away while this broker was down, or while it
// replayed an old metadata state). Nothing is deleted before st is caught
// up (ControlPlane.CaughtUp): a restarting broker replays metadata older
// than its logs, in which a partition it holds may not be its own yet,
// and deleting then would lose acknowledged records of a replica the
// current metadata counts in the ISR. Logs of topics st does not have are
// left to dropDeletedTopics and the server's start-up (DeleteTopic). A
// partition that comes back later starts from an empty log and fetches
// from its leader. Called with m.mu held, after the roles were stopped.
func (m *Manager) deleteMovedLogs(st *metadata.State, movedAway []TopicPartition) {
	if !m.cfg.Control.CaughtUp(st) {
		return
	}
	if !m.strayChecked {
		m.strayChecked = true
		for _, tp := range m.cfg.Logs.Held() {
			if _, open := m.logs[tp]; open || slices.Contains(movedAway, tp) {
				continue
			}
			t, ok := st.Topics[tp.Topic]
			if !ok || (int(tp.Partition) < t.NumPartitions() && containsID(t.Partition(tp.Partition).Replicas, m.id)) {
				continue // the topic's deletion, or a replica whose log did not open yet
			}
			m.deleteLog(tp, "deleted a stray log: the metadata does not assign this partition to this broker")
		}
	}
	for _, tp := range movedAway {
		if _, ok := st.Topics[tp.Topic]; !ok {
			continue // dropDeletedTopics
		}
		m.deleteLog(tp, "deleted the log of a partition moved off this broker")
	}
}

func (m *Manager) deleteLog(tp TopicPartition, msg string) {
	if err := m.cfg.Logs.DeletePartition(tp); err != nil {
		m.log.Error("deleting the log of a partition this broker is no longer a replica of", "partition", tp, "err", err)
		return
	}
	m.log.Info(msg, "partition", tp)
}

// reconcilePartition brings the role of this broker's replica of tp in
// line with p, its state in st.
func (m *Manager) reconcilePartition(st *metadata.State, t *metadata.Topic, tp TopicPartition, p metadata.Partition, log *trackedLog) {
	// Before this replica acts at the partition's epoch (leads,
	// follows or waits for a leader), appends made under an
	// older leadership of its own can no longer reach the log.
	log.fenceOlderEpochs(p.LeaderEpoch)
	switch p.Leader {
	case m.id:
		m.lead(tp, t, p, log, m.minISR(st, t))
		if l, ok := m.leaders[tp]; ok {
			l.tracker.Incarnations(replicaIncarnations(st, p))
		}
	case metadata.NoLeader:
		m.stopLeading(tp)
		m.stopFollowing(tp)
	default:
		m.stopLeading(tp)
		b, ok := st.Brokers[p.Leader]
		if !ok {
			m.stopFollowing(tp)
			return
		}
		m.follow(tp, p, replicationAddr(b), log)
	}
}

// reconcileChanged is reconcile for a state st that differs from prev, the
// last one reconciled completely, only in partitions' states: the same
// topics with the same configs and partition counts, the same brokers and
// broker configs. Every replica's log is open (prev was reconciled
// completely, with the same partitions), and nothing was deleted. ok is
// false, and the caller must make a full pass, when a partition gained or
// lost this broker as a replica (a reassignment: logs to open or drop).
func (m *Manager) reconcileChanged(st, prev *metadata.State) (idle []*Fetcher, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, t := range st.Topics {
		pt := prev.Topics[name]
		for i, p := range t.Partitions() {
			if !containsID(p.Replicas, m.id) && !containsID(pt.Partition(i).Replicas, m.id) {
				continue
			}
			tp := TopicPartition{name, int32(i)}
			if samePartitionState(p, pt.Partition(i)) && m.inRole(tp, p) {
				continue
			}
			log, ok := m.logs[tp]
			if !ok || !containsID(p.Replicas, m.id) {
				return nil, false
			}
			m.reconcilePartition(st, t, tp, p, log)
		}
	}
	for k, f := range m.fetchers {
		if f.Len() == 0 {
			idle = append(idle, f)
			delete(m.fetchers, k)
		}
	}
	return idle, true
}

// samePartitionState reports whether a and b are the same state of one
// partition: every change of a partition's leader, ISR or replicas
// changes its partition epoch, and the rest is compared for safety.
func samePartitionState(a, b metadata.Partition) bool {
	return a.PartitionEpoch == b.PartitionEpoch && a.Leader == b.Leader && a.LeaderEpoch == b.LeaderEpoch &&
		slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.ISR, b.ISR)
}

// inRole reports whether this broker's role for tp is the one p gives it:
// leading it when p names this broker, following p's leader at p's epoch
// when another leads it, neither when none does. A role that could not be
// taken (a tracker that did not start, a leader without an address) is
// not: the next reconciliation tries again, as a full pass does.
func (m *Manager) inRole(tp TopicPartition, p metadata.Partition) bool {
	_, leading := m.leaders[tp]
	f, following := m.following[tp]
	switch p.Leader {
	case m.id:
		return leading && !following
	case metadata.NoLeader:
		return !leading && !following
	default:
		return !leading && following && f.leader == p.Leader && f.epoch == p.LeaderEpoch
	}
}

// logToOpen is a replica whose log this broker has not opened yet.
type logToOpen struct {
	tp      TopicPartition
	id      metadata.TopicID
	configs map[string]string
}

// missingLogs lists the replicas of this broker in st whose logs are not
// open. Only the run loop changes m.logs, so the list stays true until it
// reconciles again.
func (m *Manager) missingLogs(st *metadata.State) []logToOpen {
	var out []logToOpen
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for i, p := range t.Partitions() {
			tp := TopicPartition{name, int32(i)}
			if _, ok := m.logs[tp]; !ok && containsID(p.Replicas, m.id) {
				out = append(out, logToOpen{tp, t.ID, t.Configs})
			}
		}
	}
	return out
}

// logOpeners bounds how many logs are opened at once: enough to overlap
// the fsyncs of creating them, few enough not to flood the disk queue.
const logOpeners = 8

// openLogs opens the logs of todo, a few at a time, and returns those that
// opened; the others are logged.
func (m *Manager) openLogs(todo []logToOpen) map[TopicPartition]*trackedLog {
	opened := make(map[TopicPartition]*trackedLog, len(todo))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, logOpeners)
	for _, o := range todo {
		if m.ctx.Err() != nil {
			break // closing: the logs opened so far are kept, the rest waits
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pl, err := m.openLog(o)
			if err != nil {
				m.log.Error("opening a replica's log", "partition", o.tp, "err", err)
				return
			}
			mu.Lock()
			opened[o.tp] = &trackedLog{PartitionLog: pl}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return opened
}

// openLog opens o's log. A log on disk of an earlier topic of the same
// name (its partition.metadata holds another topic id: the topic was
// deleted and created again while this broker was down, or before the
// deletion reached it) is deleted and created again, empty, for the
// follower to fetch: kept, it would follow the new topic's leader, be cut
// back by leader epochs that start again with the new topic, and keep the
// old topic's records under the new topic's offsets, in the ISR. Deleting
// it is safe because logs are opened only from caught-up metadata (see
// run): every topic this broker's logs were created for was created
// before such a state, so a name whose topic there has another id than
// the log's was deleted.
func (m *Manager) openLog(o logToOpen) (PartitionLog, error) {
	pl, err := m.cfg.Logs.Open(o.tp.Topic, o.tp.Partition, o.id, o.configs)
	if !errors.Is(err, storage.ErrTopicIDMismatch) {
		return pl, err
	}
	if derr := m.cfg.Logs.DeletePartition(o.tp); derr != nil {
		return nil, fmt.Errorf("deleting the log of an earlier topic of the same name (%w): %w", err, derr)
	}
	m.log.Warn("deleted a stray log: it belongs to an earlier topic of the same name", "partition", o.tp, "topic_id", o.id.String(), "err", err)
	return m.cfg.Logs.Open(o.tp.Topic, o.tp.Partition, o.id, o.configs)
}

// dropDeletedTopics deletes the local logs of topics this manager saw and
// the metadata no longer has under the same id. Only topics seen in this
// process count: the state starts empty and fills as Raft replays, which
// must not look like deletions.
func (m *Manager) dropDeletedTopics(st *metadata.State) {
	for name, id := range m.topics {
		if t, ok := st.Topics[name]; ok && t.ID == id {
			continue
		}
		for tp := range m.logs {
			if tp.Topic == name {
				m.stopLeading(tp)
				m.stopFollowing(tp)
				delete(m.logs, tp)
			}
		}
		delete(m.topics, name)
		if err := m.cfg.Logs.Delete(name); err != nil {
			m.log.Error("deleting a deleted topic's logs", "topic", name, "err", err)
			continue
		}
		m.log.Info("deleted the logs of a deleted topic", "topic", name)
	}
}

// replicaIncarnations is the registration (broker epoch) of each of p's
// replicas' brokers that st holds.
func replicaIncarnations(st *metadata.State, p metadata.Partition) map[int32]int64 {
	out := make(map[int32]int64, len(p.Replicas))
	for _, r := range p.Replicas {
		if b, ok := st.Brokers[r]; ok {
			out[r] = b.Epoch
		}
	}
	return out
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (m *Manager) lead(tp TopicPartition, t *metadata.Topic, p metadata.Partition, log *trackedLog, minISR int) {
	if l, ok := m.leaders[tp]; ok {
		switch err := l.tracker.Update(p); {
		case err == nil:
			l.tracker.SetMinISR(minISR)
			return
		case errors.Is(err, ErrSuperseded):
			// This broker's metadata has not yet reached the change
			// the controller answered the leader with (see
			// Leader.Update): keep the tracker as it is, resigned or
			// not, until it does.
			return
		}
		m.stopLeading(tp) // a new leader epoch: start afresh
	}
	m.stopFollowing(tp)
	log.startEpoch(p.LeaderEpoch)
	setHW := log.SetHighWatermark
	if on := m.cfg.OnHighWatermark; on != nil {
		setHW = func(hw int64) {
			log.SetHighWatermark(hw)
			on(tp)
		}
	}
	tracker, err := NewLeader(LeaderConfig{
		LocalID: m.id, LagTimeMax: m.cfg.LagTimeMax, MinISR: minISR, SetHighWatermark: setHW,
	}, p, log.LogEndOffset(), log.knownHighWatermark())
	if err != nil {
		m.log.Error("becoming leader", "partition", tp, "err", err)
		return
	}
	l := &leading{tracker: tracker, log: log}
	if o, ok := log.PartitionLog.(observableLog); ok {
		l.obs = o
		o.SetObserver(tracker.LogAdvanced)
	}
	if c, ok := log.PartitionLog.(cutObservableLog); ok {
		l.cuts = c
		c.SetCutObserver(func(cut storage.Cut) {
			m.log.Error("a failed fsync cut the log of a partition this broker leads", "partition", tp, "leader_epoch", p.LeaderEpoch,
				"from_offset", cut.From, "to_offset", cut.To, "read_by_followers", cut.Read, "err", cut.Err)
			tracker.LogCut(cut.From, cut.Read)
		})
	}
	m.leaders[tp] = l
	if m.cfg.OnLeadership != nil {
		m.cfg.OnLeadership(tp, true, p.LeaderEpoch)
	}
	m.log.Info("leading partition", "partition", tp, "leader_epoch", p.LeaderEpoch, "isr", p.ISR, "log_end", log.LogEndOffset())
}

func (m *Manager) stopLeading(tp TopicPartition) {
	if l, ok := m.leaders[tp]; ok {
		if l.obs != nil {
			l.obs.SetObserver(nil)
		}
		if l.cuts != nil {
			l.cuts.SetCutObserver(nil)
		}
		l.tracker.Resign()
		delete(m.leaders, tp)
		if m.cfg.OnLeadership != nil {
			m.cfg.OnLeadership(tp, false, l.tracker.Epoch())
		}
	}
}

func fetcherKey(leader int32, addr string) string { return fmt.Sprintf("%d@%s", leader, addr) }

func (m *Manager) follow(tp TopicPartition, p metadata.Partition, addr string, log PartitionLog) {
	want := following{leader: p.Leader, epoch: p.LeaderEpoch, addr: addr}
	if cur, ok := m.following[tp]; ok {
		if cur == want {
			return
		}
		m.stopFollowing(tp)
	}
	if addr == "" {
		m.log.Warn("leader has no replication address", "partition", tp, "leader", p.Leader)
		return
	}
	k := fetcherKey(p.Leader, addr)
	f, ok := m.fetchers[k]
	if !ok {
		fc := m.cfg.Fetch
		fc.LocalID, fc.LeaderID, fc.Addr = m.id, p.Leader, addr
		if fc.Logger == nil {
			fc.Logger = m.cfg.Logger
		}
		if r, ok := m.cfg.Control.(unreachableReporter); ok {
			fc.OnConnFailure = func(id int32) { m.reportUnreachable(r, id) }
		}
		fc.OnDiskFull = m.reportFollowerDiskFull
		f = StartFetcher(fc)
		m.fetchers[k] = f
	}
	f.Add(tp, p.LeaderEpoch, log)
	m.following[tp] = want
	m.log.Info("following partition", "partition", tp, "leader", p.Leader, "leader_epoch", p.LeaderEpoch)
}

// unreachableReporter is a control plane that can fence a broker found
// gone before its lease ends (*cluster.Controller).
type unreachableReporter interface {
	ReportUnreachable(ctx context.Context, id int32) (bool, error)
}

// reportTimeout bounds one report: long enough to outlast the election of
// a new active controller when the unreachable broker was the last one.
const reportTimeout = 10 * time.Second

// reportUnreachable tells the controller, in the background, that this
// broker's fetch connection to broker id failed.
func (m *Manager) reportUnreachable(r unreachableReporter, id int32) {
	m.reportingMu.Lock()
	if m.reporting[id] {
		m.reportingMu.Unlock()
		return
	}
	m.reporting[id] = true
	m.reportingMu.Unlock()
	go func() {
		defer func() {
			m.reportingMu.Lock()
			delete(m.reporting, id)
			m.reportingMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(m.ctx, reportTimeout)
		defer cancel()
		if _, err := r.ReportUnreachable(ctx, id); err != nil && m.ctx.Err() == nil {
			m.log.Debug("reporting an unreachable leader", "broker", id, "err", err)
		}
	}()
}

// reportLogFailure asks the controller to lead a partition whose log
// failed here at a new epoch (see metadata.LeaderLogFailed).
func (m *Manager) reportLogFailure(tp TopicPartition, tracker *Leader, epoch int32) {
	r, ok := m.cfg.Control.(logFailureReporter)
	if !ok {
		m.log.Error("the control plane takes no report of a failed log; the partition refuses writes at this epoch", "partition", tp, "leader_epoch", epoch)
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	np, err := r.LeaderLogFailed(ctx, tp.Topic, tp.Partition, epoch)
	cancel()
	tracker.LogFailureReported(err)
	if err != nil {
		m.log.Warn("report of a failed log not confirmed", "partition", tp, "leader_epoch", epoch, "err", err)
		return
	}
	m.log.Warn("a partition whose log failed here is led at a new epoch", "partition", tp, "leader", np.Leader, "leader_epoch", np.LeaderEpoch, "isr", np.ISR)
	_ = tracker.Update(np)
}

// diskProbeInterval is how often a broker the metadata marks full probes
// its disk for space (see probeDisk).
const diskProbeInterval = time.Second

// spaceProber is a store of logs that can tell whether its disk takes
// writes again (StoreLogs, storage.Store.ProbeSpace).
type spaceProber interface{ ProbeSpace() error }

// diskWritableReporter is a control plane that takes a broker's report
// that its disk is writable again (*cluster.Controller).
type diskWritableReporter interface {
	BrokerDiskWritable(ctx context.Context) (bool, error)
}

// probeDisk, while the metadata marks this broker's disk full (after a
// ReplicaDiskFull), writes a probe to it every diskProbeInterval, in the
// background, and reports the disk writable once one passes: the broker
// may then lead and join ISRs again, and rejoins them by catching up.
// Kafka keeps a failed log directory offline until the broker restarts.
func (m *Manager) probeDisk(st *metadata.State) {
	b, ok := st.Brokers[m.id]
	if !ok || !b.DiskFull {
		return
	}
	prober, ok := m.cfg.Logs.(spaceProber)
	if !ok {
		return
	}
	r, ok := m.cfg.Control.(diskWritableReporter)
	if !ok || m.heldBack(st, metadata.TypeBrokerDiskWritable) {
		return
	}
	m.reportingMu.Lock()
	if m.probing || time.Since(m.probedAt) < diskProbeInterval {
		m.reportingMu.Unlock()
		return
	}
	m.probing, m.probedAt = true, time.Now()
	m.reportingMu.Unlock()
	go func() {
		defer func() {
			m.reportingMu.Lock()
			m.probing = false
			m.reportingMu.Unlock()
		}()
		if err := prober.ProbeSpace(); err != nil {
			m.log.Debug("disk still full", "err", err)
			return
		}
		ctx, cancel := context.WithTimeout(m.ctx, reportTimeout)
		defer cancel()
		if _, err := r.BrokerDiskWritable(ctx); err != nil {
			if m.ctx.Err() == nil {
				m.log.Warn("report of a disk writable again not confirmed", "err", err)
			}
			return
		}
		m.log.Info("the disk takes writes again: this broker may lead and join ISRs again")
	}()
}

// heldBack reports whether a command of type t cannot be proposed with
// the metadata st (metadata.State.CheckProposable: a registered broker
// runs an older version and would halt on it); the caller then does what
// it did before the command existed. It logs once per type while held
// back, not at every report due: a full disk is due at every producer
// retry.
func (m *Manager) heldBack(st *metadata.State, t metadata.CommandType) bool {
	err := st.CheckProposable(t)
	m.reportingMu.Lock()
	defer m.reportingMu.Unlock()
	if err == nil {
		delete(m.heldBackLogged, t)
		return false
	}
	if !m.heldBackLogged[t] {
		m.heldBackLogged[t] = true
		m.log.Warn("a metadata report is held back until every broker is upgraded; the broker behaves as older versions did", "err", err)
	}
	return true
}

// diskFullReporter is a control plane that takes a replica's report that
// its disk is full (*cluster.Controller).
type diskFullReporter interface {
	ReplicaDiskFull(ctx context.Context, topic string, partition, leaderEpoch int32) (metadata.Partition, error)
}

// reportLeaderDiskFull asks the controller to hand a partition whose
// appends fail here for lack of space to another ISR member (see
// metadata.ReplicaDiskFull). When none can take it the partition stays
// here, refusing appends with KAFKA_STORAGE_ERROR (producers retry) until
// space returns, and nothing in the metadata changes.
func (m *Manager) reportLeaderDiskFull(tp TopicPartition, tracker *Leader, epoch int32) {
	defer tracker.DiskFullReported()
	r, ok := m.cfg.Control.(diskFullReporter)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	np, err := r.ReplicaDiskFull(ctx, tp.Topic, tp.Partition, epoch)
	cancel()
	if err != nil {
		m.log.Warn("a full disk refuses the appends of a partition led here; it stays here", "partition", tp, "leader_epoch", epoch, "err", err)
		return
	}
	m.log.Warn("a partition whose appends fail here for lack of space is led elsewhere", "partition", tp, "leader", np.Leader, "leader_epoch", np.LeaderEpoch, "isr", np.ISR)
	_ = tracker.Update(np)
}

// diskReport is a follower's last report of a full disk for a partition:
// in flight, or when it ended and the partition epoch the controller
// answered with (-1 when it was refused or not answered).
type diskReport struct {
	inFlight bool
	at       time.Time
	answered int32
}

// reportFollowerDiskFull tells the controller, in the background, that
// this broker could not write what it fetched for tp at leaderEpoch for
// lack of space, so that it leaves the ISR now: in it, it would hold the
// partition's acks=all produces until the leader drops it after
// replica.lag.time.max.ms. Nothing is sent when the metadata already has
// it out of the ISR (it rejoins by catching up, which takes writes that
// succeed) or at another epoch, nor more often than diskFullRetry per
// partition.
func (m *Manager) reportFollowerDiskFull(tp TopicPartition, leaderEpoch int32) {
	r, ok := m.cfg.Control.(diskFullReporter)
	if !ok {
		return
	}
	st := m.cfg.Control.State()
	if st == nil || m.heldBack(st, metadata.TypeReplicaDiskFull) {
		return
	}
	p, ok := st.Partition(tp.Topic, tp.Partition)
	if !ok || p.LeaderEpoch != leaderEpoch || p.Leader == m.id || !slices.Contains(p.ISR, m.id) {
		return
	}
	m.reportingMu.Lock()
	// A full disk stops this broker's own copy of the metadata too (its
	// Raft store cannot append), so the state above can still show it in
	// the ISR long after a report took it out: the answer's partition
	// epoch says which states are that old.
	if last, ok := m.diskReports[tp]; ok && (last.inFlight || time.Since(last.at) < diskFullRetry || p.PartitionEpoch <= last.answered) {
		m.reportingMu.Unlock()
		return
	}
	m.diskReports[tp] = diskReport{inFlight: true, answered: -1}
	m.reportingMu.Unlock()
	go func() {
		answered := int32(-1)
		defer func() {
			m.reportingMu.Lock()
			m.diskReports[tp] = diskReport{at: time.Now(), answered: answered}
			m.reportingMu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(m.ctx, reportTimeout)
		defer cancel()
		np, err := r.ReplicaDiskFull(ctx, tp.Topic, tp.Partition, leaderEpoch)
		if err == nil {
			answered = np.PartitionEpoch
		}
		if err != nil {
			if m.ctx.Err() == nil {
				m.log.Warn("report of a full disk under a followed partition not confirmed", "partition", tp, "leader_epoch", leaderEpoch, "err", err)
			}
			return
		}
		m.log.Warn("a followed partition whose writes fail here for lack of space left the ISR", "partition", tp, "leader", np.Leader, "isr", np.ISR)
	}()
}

func (m *Manager) stopFollowing(tp TopicPartition) {
	cur, ok := m.following[tp]
	if !ok {
		return
	}
	if f, ok := m.fetchers[fetcherKey(cur.leader, cur.addr)]; ok {
		f.Remove(tp)
	}
	delete(m.following, tp)
}

// logFailureReporter is a control plane that takes a leader's report of
// its failed log (*cluster.Controller).
type logFailureReporter interface {
	LeaderLogFailed(ctx context.Context, topic string, partition, leaderEpoch int32) (metadata.Partition, error)
}

// proposeISRChanges sends the due ISR changes of the partitions this
// broker leads to the controller, and the reports of leaders whose log
// failed.
func (m *Manager) proposeISRChanges(st *metadata.State) {
	m.mu.Lock()
	type proposal struct {
		tp      TopicPartition
		tracker *Leader
		change  ISRChange
	}
	type failure struct {
		tp      TopicPartition
		tracker *Leader
		epoch   int32
	}
	var todo []proposal
	var failed, full []failure
	// While a registered broker runs an older version, a failed log
	// stays due and unreported (the partition refuses appends at its
	// epoch, as before LeaderLogFailed existed) and a full disk is not
	// reported (the leader refuses appends until space returns, as
	// before ReplicaDiskFull existed).
	logFailedHeld := m.heldBack(st, metadata.TypeLeaderLogFailed)
	diskFullHeld := m.heldBack(st, metadata.TypeReplicaDiskFull)
	// One clock read for the pass: the trackers run on time.Now too (lead
	// gives them no other clock).
	now := time.Now()
	for tp, l := range m.leaders {
		if !l.tracker.ISRCheckDue(now) {
			continue // nothing can be due yet (Leader.setQuietLocked)
		}
		if !logFailedHeld {
			if epoch, ok := l.tracker.LogFailureDue(); ok {
				failed = append(failed, failure{tp, l.tracker, epoch})
				continue
			}
		}
		if epoch, ok := l.tracker.DiskFullDue(); ok {
			if diskFullHeld {
				l.tracker.DiskFullReported()
			} else {
				full = append(full, failure{tp, l.tracker, epoch})
				continue
			}
		}
		if ch, ok := l.tracker.ProposeISRChangeAt(now, st.EligibleBroker); ok {
			todo = append(todo, proposal{tp, l.tracker, ch})
		}
	}
	m.mu.Unlock()
	for _, f := range failed {
		m.reportLogFailure(f.tp, f.tracker, f.epoch)
	}
	// The changes, each of its own partition, are proposed isrProposers
	// at a time: one after the other, each waited for a Raft commit (the
	// controller's and a quorum's log fsyncs), and a broker rejoining a
	// cluster of 5,000 partitions waited for 5,000 commits in series;
	// proposed together, the quorum commits them in batches.
	sem := make(chan struct{}, isrProposers)
	var wg sync.WaitGroup
	// A full disk fails the appends of every partition the broker leads
	// at once: their reports go together, as the ISR changes do.
	for _, f := range full {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			m.reportLeaderDiskFull(f.tp, f.tracker, f.epoch)
		}()
	}
	for _, p := range todo {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			np, err := m.cfg.Control.AlterPartition(ctx, p.tp.Topic, p.tp.Partition, p.change.LeaderEpoch, p.change.PartitionEpoch, p.change.NewISR)
			cancel()
			if err != nil {
				m.log.Warn("ISR change not confirmed", "partition", p.tp, "isr", p.change.NewISR, "partition_epoch", p.change.PartitionEpoch, "err", err)
				p.tracker.ISRChangeFailed(err)
				return
			}
			m.log.Info("ISR changed", "partition", p.tp, "isr", np.ISR, "partition_epoch", np.PartitionEpoch)
			// Update resigns the tracker when the committed state names
			// another leader or epoch (a reassignment that completed without
			// this broker): the resignation settles the pending change.
			_ = p.tracker.Update(np)
		}()
	}
	wg.Wait()
}

// isrProposers bounds the ISR changes a broker has in flight at the
// controller at once.
const isrProposers = 32
