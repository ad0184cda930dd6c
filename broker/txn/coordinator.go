package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// MarkerWriter writes COMMIT or ABORT markers for a transaction to the
// leaders of its partitions (WriteTxnMarkers) and returns a Kafka error
// code per partition, 0 when the marker is durable on the partition's
// in-sync replicas. UNKNOWN_TOPIC_OR_PARTITION must mean that the
// partition no longer exists in the cluster (its topic was deleted).
type MarkerWriter interface {
	WriteTxnMarkers(ctx context.Context, m Markers) map[TopicPartition]int16
}

// Markers is one transaction's outcome for some of its partitions.
type Markers struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
	Partitions       []TopicPartition
}

// Config configures a Coordinator. Zero durations take Kafka's defaults.
type Config struct {
	// AllocateProducerID hands out a producer id unique in the cluster.
	AllocateProducerID func() (int64, error)
	// Markers sends the markers of decided transactions.
	Markers MarkerWriter
	// MaxTimeout is transaction.max.timeout.ms (15 min).
	MaxTimeout time.Duration
	// IDExpiration is transactional.id.expiration.ms (7 days).
	IDExpiration time.Duration
	// AbortInterval is how often timed-out transactions are looked for
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s).
	AbortInterval time.Duration
	// ExpiryInterval is how often idle ids are looked for
	// (transaction.remove.expired.transaction.cleanup.interval.ms, 1 h).
	ExpiryInterval time.Duration
	// ConcurrentWait bounds how long an AddPartitionsToTxn waits for a
	// change of its transaction in flight (another add's write, the last
	// transaction's markers) before answering CONCURRENT_TRANSACTIONS
	// (1 s). Clients back off 20 ms or more on that answer, which a
	// transaction would otherwise pay several times: each of a producer's
	// brokers adds its partitions at once, and the next transaction
	// starts while the last one's markers are still being written.
	ConcurrentWait time.Duration
	// OnShardStopped is called when a shard stopped after a failed write;
	// the server loads it again from its log.
	OnShardStopped func(partition int32)
	// Now defaults to time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Coordinator is one broker's transaction coordinator: a shard per
// partition of __transaction_state it leads.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	shards map[int32]*shard
	closed bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// afterSettledWake, when set (tests, before any request), runs in a
	// request that woke from a waiting change ending, before it takes the
	// shard's lock again: a test holds it there to let another change
	// (a timeout abort) take the lock first, as a slow scheduler may.
	afterSettledWake func()
}

// New starts a coordinator with no shard loaded; Close stops it.
func New(cfg Config) (*Coordinator, error) {
	if cfg.AllocateProducerID == nil || cfg.Markers == nil {
		return nil, errors.New("transaction coordinator: AllocateProducerID and Markers are required")
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 15 * time.Minute
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = 7 * 24 * time.Hour
	}
	if cfg.AbortInterval <= 0 {
		cfg.AbortInterval = 10 * time.Second
	}
	if cfg.ExpiryInterval <= 0 {
		cfg.ExpiryInterval = time.Hour
	}
	if cfg.ConcurrentWait <= 0 {
		cfg.ConcurrentWait = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger.With("component", "txn"), shards: map[int32]*shard{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.housekeeping()
	return c, nil
}

// Close unloads every shard (stopping their marker rounds) and stops the
// timers.
func (c *Coordinator) Close() {
	c.mu.Lock()
	c.closed = true
	shards := c.shards
	c.shards = map[int32]*shard{}
	c.mu.Unlock()
	for _, sh := range shards {
		sh.stop()
	}
	c.cancel()
	c.wg.Wait()
}

func (c *Coordinator) now() int64 { return c.cfg.Now().UnixMilli() }

// ShardState is what Status reports of a partition.
type ShardState int

const (
	// ShardAbsent: not loaded here.
	ShardAbsent ShardState = iota
	// ShardLoading: replaying its log.
	ShardLoading
	// ShardReady: serving.
	ShardReady
	// ShardStopped: stopped after a failed write or replay; load it again.
	ShardStopped
)

// Status reports a partition's shard and the coordinator epoch it was
// loaded with.
func (c *Coordinator) Status(partition int32) (ShardState, int32) {
	c.mu.Lock()
	sh := c.shards[partition]
	c.mu.Unlock()
	if sh == nil {
		return ShardAbsent, 0
	}
	return sh.status(), sh.epoch
}

// Partitions lists the partitions with a shard (any state).
func (c *Coordinator) Partitions() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int32, 0, len(c.shards))
	for p := range c.shards {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Load makes this broker the coordinator of a partition of
// __transaction_state, at coordinator epoch epoch (the partition's leader
// epoch): a shard already loaded at another epoch, or stopped, is replaced.
// The log is replayed in the background; requests answer
// COORDINATOR_LOAD_IN_PROGRESS meanwhile. Then decided transactions get
// their markers sent.
func (c *Coordinator) Load(partition, epoch int32, log Log) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	old := c.shards[partition]
	if old != nil && old.epoch == epoch && old.status() != ShardStopped {
		c.mu.Unlock()
		return
	}
	sh := newShard(c, partition, epoch, log)
	c.shards[partition] = sh
	c.mu.Unlock()
	if old != nil {
		old.stop()
	}
	sh.wg.Add(1)
	go sh.load()
}

// Unload stops coordinating a partition (its leadership moved). Marker
// rounds in flight stop; the new coordinator resumes them from the log.
func (c *Coordinator) Unload(partition int32) {
	c.mu.Lock()
	sh := c.shards[partition]
	delete(c.shards, partition)
	c.mu.Unlock()
	if sh != nil {
		sh.stop()
		c.log.Info("transaction coordinator unloaded a partition", "partition", partition, "epoch", sh.epoch)
	}
}

// shardFor returns the ready shard of a partition, or the code to answer.
func (c *Coordinator) shardFor(partition int32) (*shard, int16) {
	c.mu.Lock()
	sh := c.shards[partition]
	c.mu.Unlock()
	if sh == nil {
		return nil, kerr.NotCoordinator.Code
	}
	switch sh.status() {
	case ShardReady:
		return sh, 0
	case ShardLoading, ShardStopped:
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	return nil, kerr.NotCoordinator.Code
}

func (c *Coordinator) readyShards() []*shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*shard, 0, len(c.shards))
	for _, sh := range c.shards {
		if sh.status() == ShardReady {
			out = append(out, sh)
		}
	}
	return out
}

// housekeeping aborts timed-out transactions and expires idle ids.
func (c *Coordinator) housekeeping() {
	defer c.wg.Done()
	abort := time.NewTicker(c.cfg.AbortInterval)
	defer abort.Stop()
	expire := time.NewTicker(c.cfg.ExpiryInterval)
	defer expire.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-abort.C:
			for _, sh := range c.readyShards() {
				sh.abortTimedOut()
			}
		case <-expire.C:
			for _, sh := range c.readyShards() {
				sh.expireIDs()
			}
		}
	}
}

// AbortTimedOut aborts, now, every transaction open longer than its
// timeout (the periodic check does it every AbortInterval).
func (c *Coordinator) AbortTimedOut() {
	for _, sh := range c.readyShards() {
		sh.abortTimedOut()
	}
}

// ExpireIDs forgets, now, every transactional id idle past IDExpiration.
func (c *Coordinator) ExpireIDs() {
	for _, sh := range c.readyShards() {
		sh.expireIDs()
	}
}

// writeErrorCode is the code for a failed log write.
func writeErrorCode(err error) int16 {
	if errors.Is(err, ErrNotLeader) {
		return kerr.NotCoordinator.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}

// errStopped is returned by writes of a stopped shard.
var errStopped = fmt.Errorf("%w: shard stopped", ErrNotLeader)
