package groups

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Coordinator is the classic consumer-group coordinator of one broker: it
// owns every group's membership state machine and committed offsets, and
// writes both to its OffsetLog. All methods are safe for concurrent use;
// requests for different groups never wait on each other (except on the
// log's own locking).
type Coordinator struct {
	cfg     Config
	log     *slog.Logger
	offsets OffsetLog

	mu     sync.Mutex // guards groups; lock order: group.mu before c.mu
	groups map[string]*group
	closed atomic.Bool

	stats counters

	// seq numbers committed offsets in log order (see committedOffset).
	seq atomic.Uint64
	// txnGroups lists, per producer id, the groups holding offsets of its
	// undecided transaction. Lock order: group.mu before txnMu.
	txnMu     sync.Mutex
	txnGroups map[int64]map[string]struct{}

	stopExpiry context.CancelFunc
	expiryDone chan struct{}
}

// New replays the offsets log to rebuild committed offsets and group
// membership, then returns a coordinator ready to serve requests. Members
// restored from the log keep their place for one session timeout, so
// consumers that keep heartbeating across a broker restart do not rebalance.
func New(ctx context.Context, offsets OffsetLog, cfg Config) (*Coordinator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if offsets == nil {
		return nil, fmt.Errorf("creating group coordinator: nil offsets log")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Coordinator{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "groups"),
		offsets: offsets,
		groups:  make(map[string]*group),

		txnGroups: make(map[int64]map[string]struct{}),
	}
	if err := c.replay(ctx); err != nil {
		c.closeGroups()
		return nil, err
	}
	expiryCtx, cancel := context.WithCancel(context.Background())
	c.stopExpiry = cancel
	c.expiryDone = make(chan struct{})
	go c.expiryLoop(expiryCtx)
	return c, nil
}

// Close stops every timer and the offset expiry loop, and answers every
// parked JoinGroup and SyncGroup with NOT_COORDINATOR so clients look for
// the coordinator again. Later requests get NOT_COORDINATOR too. Close does
// not close the OffsetLog.
func (c *Coordinator) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.stopExpiry()
	<-c.expiryDone
	c.closeGroups()
	return nil
}

func (c *Coordinator) closeGroups() {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.stopAll(kerr.NotCoordinator.Code)
		g.mu.Unlock()
	}
}

func (c *Coordinator) isClosed() bool { return c.closed.Load() }

func (c *Coordinator) now() time.Time { return c.cfg.Now() }

// lockGroup returns the named group, locked, creating it when create is
// set. It returns (nil, 0) when the group does not exist and create is
// false, and (nil, code) when the coordinator cannot serve the group.
func (c *Coordinator) lockGroup(name string, create bool) (*group, int16) {
	// A group found dead was just deleted; the next look-up sees the map
	// without it (deletion holds the group lock while it edits the map).
	for range 4 {
		if c.isClosed() {
			return nil, kerr.NotCoordinator.Code
		}
		c.mu.Lock()
		g, ok := c.groups[name]
		if !ok {
			if !create {
				c.mu.Unlock()
				return nil, 0
			}
			g = newGroup(c, name)
			c.groups[name] = g
		}
		c.mu.Unlock()
		g.mu.Lock()
		if c.isClosed() {
			// Close may have finished with this group before we locked it;
			// a request parked now would never be answered.
			g.mu.Unlock()
			return nil, kerr.NotCoordinator.Code
		}
		if g.state != stateDead {
			return g, 0
		}
		g.mu.Unlock()
	}
	return nil, kerr.CoordinatorNotAvailable.Code
}

// markDead ends a group: timers stop, parked requests are answered, and the
// group leaves the coordinator's map. The caller holds g.mu.
func (g *group) markDead() {
	g.stopAll(kerr.CoordinatorNotAvailable.Code)
	g.setState(stateDead)
	g.c.mu.Lock()
	if g.c.groups[g.name] == g {
		delete(g.c.groups, g.name)
	}
	g.c.mu.Unlock()
}

// dropIfUnused removes a group that a failed request created and that holds
// nothing, so failed joins do not leave ghost groups in ListGroups. The
// caller holds g.mu.
func (g *group) dropIfUnused() {
	if g.isEmptyOfEverything() && g.generation == 0 {
		g.markDead()
	}
}

// snapshot returns the current groups sorted by name.
func (c *Coordinator) snapshot() []*group {
	c.mu.Lock()
	groups := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		groups = append(groups, g)
	}
	c.mu.Unlock()
	slices.SortFunc(groups, func(a, b *group) int { return cmp.Compare(a.name, b.name) })
	return groups
}

// newMemberID returns a member id as Kafka forms them: the client id (or the
// group.instance.id for static members), a dash and a random UUID.
func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Client describes the connection a group request came from; DescribeGroups
// shows it per member.
type Client struct {
	// ID is the client.id from the request header.
	ID string
	// Host is the client's address as Kafka shows it, e.g. "/127.0.0.1".
	Host string
}
