package replica

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// Protocol versions the fetcher speaks. Fetch v12 is the newest that names
// topics (v13 uses ids) and the first with LastFetchedEpoch/DivergingEpoch;
// OffsetForLeaderEpoch v3 adds ReplicaID, v4 is flexible.
const (
	fetchVersion                = 12
	offsetForLeaderEpochVersion = 4
)

// FetcherConfig configures the fetcher of one leader broker.
type FetcherConfig struct {
	LocalID  int32  // this broker: the fetch's replica id
	LeaderID int32  // the broker fetched from
	Addr     string // its replication listener, host:port
	// MaxWait, MinBytes, MaxBytes and PartitionMaxBytes shape each Fetch
	// (replica.fetch.wait.max.ms 500, replica.fetch.min.bytes 1,
	// replica.fetch.response.max.bytes 10 MiB, replica.fetch.max.bytes 1 MiB).
	MaxWait           time.Duration
	MinBytes          int32
	MaxBytes          int32
	PartitionMaxBytes int32
	// Backoff is the pause after an error (replica.fetch.backoff.ms 1000).
	Backoff time.Duration
	// OnConnFailure, when set, is called (on the fetcher's goroutine: it
	// must not block) each time the connection to the leader fails or
	// cannot be made: the controller may then find the leader's process
	// gone and fence it without waiting for its lease.
	OnConnFailure func(leaderID int32)
	// OnDiskFull, when set, is called (on the fetcher's goroutine: it must
	// not block) each time the leader's batches for a partition, fetched
	// at leaderEpoch, could not be written for lack of space
	// (storage.NoSpace): the replica manager then takes this broker out
	// of the ISR instead of letting it hold acks=all produces.
	OnDiskFull func(tp TopicPartition, leaderEpoch int32)
	// TLS, when set, gives the client configuration to dial the leader's
	// replication listener with (serverName is the leader's host): the
	// follower presents its broker certificate and checks the leader's.
	TLS func(serverName string) *tls.Config
	// Throttle, when set, is the broker's replication throttle: its
	// follower side limits what is fetched for throttled replicas.
	Throttle *Throttle
	// OnFetch, when set, is called on the fetcher's goroutine after each
	// Fetch that was answered and applied: request is the Fetch's round
	// trip (the time the leader parked it included), durable the time
	// spent writing the response's partitions and waiting until they were
	// durable, bytes the record bytes written. It must be quick.
	OnFetch func(request, durable time.Duration, bytes int)
	Logger  *slog.Logger
}

func (c *FetcherConfig) defaults() {
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.MinBytes <= 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 10 << 20
	}
	if c.PartitionMaxBytes <= 0 {
		c.PartitionMaxBytes = 1 << 20
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) }

type fetchPartition struct {
	log         Log
	leaderEpoch int32
	// checkDivergence: ask OffsetForLeaderEpoch before fetching (set when
	// following starts at a new epoch, and after OFFSET_OUT_OF_RANGE).
	checkDivergence bool
	retryAt         time.Time
	// refusals counts the leader's refusals in a row; the backoff grows
	// with it (see backoff).
	refusals int
	// failures counts the answers in a row that could not be applied to
	// the log (see failed); an applied one resets it.
	failures int
	// caughtUp: the last answer left the log at or past the leader's high
	// watermark. The follower throttle never holds back a caught-up
	// replica (Kafka's PartitionFetchState.isReplicaInSync: no lag).
	caughtUp bool
}

// Fetcher replicates partitions from one leader broker: one loop, one
// connection, one Fetch for all its partitions, as Kafka's replica fetcher
// thread. Before fetching a partition at a new leader epoch it asks the
// leader where its own log diverges (OffsetForLeaderEpoch, KIP-101/279)
// and truncates there; a DivergingEpoch in a Fetch response (KIP-595 style)
// is handled the same way.
type Fetcher struct {
	cfg FetcherConfig
	log *slog.Logger

	mu    sync.Mutex
	parts map[TopicPartition]*fetchPartition
	// order is parts sorted by (topic, partition), rebuilt by snapshot
	// after an Add or a Remove: requests list partitions in a stable
	// order, and sorting every partition each round was 6 % of an idle
	// broker's samples with 5,000 partitions (docs/benchmarks.md).
	order      []orderedPartition
	orderStale bool
	wake       chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	connMu sync.Mutex // guards conn between the loop and Close
	conn   *conn
	// fetching is set while a Fetch is in flight; interrupted when Add
	// cut it short (see Add).
	fetching    atomic.Bool
	interrupted atomic.Bool

	// The fetch session with the leader (session.go), used by the loop
	// only: its id and the epoch of the next fetch (0: the next is a full
	// fetch that opens one), and what the leader holds for each partition
	// of it: the state last sent, which it fetches at until told another.
	// It lives as long as the connection: any failure starts over with a
	// full fetch.
	sessionID    int32
	sessionEpoch int32
	session      map[TopicPartition]sentPartition
	// sent is the partitions of the fetch in flight (plan), reused
	// from round to round.
	sent map[TopicPartition]sentFetch
}

// sentPartition is a partition's fetch state as the leader's session holds
// it, and which following of it (p) sent it.
type sentPartition struct {
	p                               *fetchPartition
	currentLeaderEpoch, lastFetched int32
	fetchOffset, logStart           int64
	maxBytes                        int32
}

// resetSession forgets the fetch session: the next fetch is a full one.
func (f *Fetcher) resetSession() {
	f.sessionID, f.sessionEpoch = 0, 0
	clear(f.session)
}

// StartFetcher starts the loop; it fetches nothing until Add.
func StartFetcher(cfg FetcherConfig) *Fetcher {
	cfg.defaults()
	f := &Fetcher{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "fetcher", "leader", cfg.LeaderID),
		parts:   map[TopicPartition]*fetchPartition{},
		wake:    make(chan struct{}, 1),
		session: map[TopicPartition]sentPartition{},
		done:    make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go f.run()
	return f
}

// Add starts (or restarts) following a partition at leaderEpoch. The
// first fetch is preceded by a divergence check.
//
// A Fetch in flight is cut short (its connection is closed and the next
// one dialled at once): it may be parked at the leader for up to MaxWait
// with nothing to return, while the partition added is typically one
// whose leadership just moved here, whose acks=all producers wait for
// this follower.
func (f *Fetcher) Add(tp TopicPartition, leaderEpoch int32, log Log) {
	f.mu.Lock()
	f.parts[tp] = &fetchPartition{log: log, leaderEpoch: leaderEpoch, checkDivergence: true}
	f.orderStale = true
	f.mu.Unlock()
	f.poke()
	if f.fetching.Load() {
		f.connMu.Lock()
		if f.conn != nil {
			f.interrupted.Store(true)
			_ = f.conn.c.SetReadDeadline(time.Now())
		}
		f.connMu.Unlock()
	}
}

// Remove stops following a partition. Once it returns, nothing this
// fetcher learnt from the leader (a truncation, records, a high watermark)
// reaches the partition's log any more: the caller may make the replica
// lead it (see applyToLog).
func (f *Fetcher) Remove(tp TopicPartition) {
	f.mu.Lock()
	delete(f.parts, tp)
	f.orderStale = true
	f.mu.Unlock()
}

// Len is how many partitions this fetcher follows.
func (f *Fetcher) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parts)
}

// Close stops the loop and waits for it. A request in flight is cut
// short: Close never waits for a leader's answer.
func (f *Fetcher) Close() {
	f.cancel()
	f.connMu.Lock()
	if f.conn != nil {
		_ = f.conn.c.SetDeadline(time.Now())
	}
	f.connMu.Unlock()
	<-f.done
}

func (f *Fetcher) setConn(c *conn) {
	f.resetSession()
	f.connMu.Lock()
	defer f.connMu.Unlock()
	if f.conn != nil {
		f.conn.close()
	}
	f.conn = c
	if c != nil && f.ctx.Err() != nil {
		_ = c.c.SetDeadline(time.Now()) // Close raced the dial
	}
}

func (f *Fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *Fetcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.wake:
		return true
	case <-f.ctx.Done():
		return false
	}
}

func (f *Fetcher) run() {
	defer close(f.done)
	defer f.setConn(nil)
	for f.ctx.Err() == nil {
		if err := f.round(); err != nil {
			if f.ctx.Err() != nil {
				return
			}
			if f.interrupted.Swap(false) {
				f.setConn(nil) // cut short by Add: dial again at once
				continue
			}
			f.log.Warn("replica fetch failed", "addr", f.cfg.Addr, "err", err)
			if f.cfg.OnConnFailure != nil && connFailure(err) {
				f.cfg.OnConnFailure(f.cfg.LeaderID)
			}
			f.setConn(nil)
			f.sleep(f.cfg.Backoff)
		}
	}
}

// connFailure reports whether err is the connection to the leader failing
// (refused, reset, closed, timed out) rather than an answer it gave.
func connFailure(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}

// snapshot returns the partitions due now, sorted for stable requests,
// and how long until the next one in backoff is due (at most Backoff);
// backedOff says whether any is.
func (f *Fetcher) snapshot() (check []TopicPartition, fetch []orderedPartition, next time.Duration, backedOff bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.orderStale {
		f.order = f.order[:0]
		for tp, p := range f.parts {
			f.order = append(f.order, orderedPartition{tp, p})
		}
		slices.SortFunc(f.order, func(a, b orderedPartition) int {
			return cmp.Or(strings.Compare(a.tp.Topic, b.tp.Topic), cmp.Compare(a.tp.Partition, b.tp.Partition))
		})
		f.orderStale = false
	}
	now := time.Now()
	next = f.cfg.Backoff
	// Sized once: grown by appends, the list of 3,334 partitions
	// allocated three times its size each round.
	fetch = make([]orderedPartition, 0, len(f.order))
	for _, o := range f.order {
		tp, p := o.tp, o.p
		switch {
		case now.Before(p.retryAt):
			next = min(next, p.retryAt.Sub(now))
			backedOff = true
		case p.checkDivergence:
			check = append(check, tp)
		default:
			fetch = append(fetch, o)
		}
	}
	return check, fetch, next, backedOff
}

// orderedPartition is an entry of Fetcher.order, and of a round's fetch:
// the following (p) the round saw, which the answer is matched against
// (Fetcher.fetch skips a partition removed or restarted meanwhile).
type orderedPartition struct {
	tp TopicPartition
	p  *fetchPartition
}

func (f *Fetcher) part(tp TopicPartition) (*fetchPartition, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.parts[tp]
	return p, ok
}

// firstRefusalBackoff is the pause after the first refusal of a
// partition by its leader; it doubles with each refusal in a row, up to
// the configured Backoff.
const firstRefusalBackoff = 20 * time.Millisecond

// backoff pauses a partition the leader refused. Right after a leadership
// change the follower often learns of it before the new leader does, and
// is refused (UNKNOWN_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER) for the few
// milliseconds the leader takes to catch up: a whole replica.fetch.backoff.ms
// then would hold every acks=all produce of the new leader that long. So
// the first retries come quickly and the pause grows to Backoff only if
// the refusals go on.
func (f *Fetcher) backoff(tp TopicPartition, p *fetchPartition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts[tp] == p {
		d := firstRefusalBackoff << min(p.refusals, 16)
		p.refusals++
		p.retryAt = time.Now().Add(min(d, f.cfg.Backoff))
	}
}

func (f *Fetcher) isCaughtUp(p *fetchPartition) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return p.caughtUp
}

// accepted resets a partition's refusal count after a good answer.
func (f *Fetcher) accepted(tp TopicPartition, p *fetchPartition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts[tp] == p {
		p.refusals = 0
	}
}

// round does one divergence check and one fetch.
func (f *Fetcher) round() error {
	check, fetch, next, backedOff := f.snapshot()
	if len(check) == 0 && len(fetch) == 0 {
		f.sleep(next)
		return nil
	}
	if f.conn == nil {
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		c, err := dialLeader(ctx, f.cfg.Addr, fmt.Sprintf("tributary-replica-%d", f.cfg.LocalID), f.cfg.TLS)
		cancel()
		if err != nil {
			return err
		}
		f.setConn(c)
	}
	if len(check) > 0 {
		if err := f.checkDivergence(check); err != nil {
			return err
		}
		// The partitions just checked are fetched in this round, not
		// after the next one, which may park at the leader for MaxWait.
		_, fetch, next, backedOff = f.snapshot()
	}
	if len(fetch) > 0 {
		return f.fetch(fetch, parkFor(f.cfg.MaxWait, next, backedOff))
	}
	return nil
}

// parkFor is how long a fetch may park at the leader: MaxWait, or less
// when a partition left out of it is in backoff. A partition the leader
// refused (typically one whose leadership the follower learnt of first,
// see backoff) is due again after a few milliseconds; parked for MaxWait
// with the partitions that have nothing new, the fetch held its retry,
// and every acks=all produce of the new leader, that long: a fresh
// topic's first requests were answered after 350-480 ms instead of
// 40-60 (docs/benchmarks.md, "A fresh producer's first
// acknowledgement"). Rounded up to a millisecond, the request's unit, so
// that the wait is never cut to nothing.
func parkFor(maxWait, next time.Duration, backedOff bool) time.Duration {
	if !backedOff || next >= maxWait {
		return maxWait
	}
	return max((next + time.Millisecond - 1).Truncate(time.Millisecond), time.Millisecond)
}

func (f *Fetcher) checkDivergence(tps []TopicPartition) error {
	sent := map[TopicPartition]*fetchPartition{}
	for _, tp := range tps {
		p, ok := f.part(tp)
		if !ok {
			continue
		}
		if p.log.LatestEpoch() < 0 {
			f.markChecked(tp, p) // an empty log cannot diverge
			continue
		}
		sent[tp] = p
	}
	if len(sent) == 0 {
		return nil
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(offsetForLeaderEpochVersion)
	req.ReplicaID = f.cfg.LocalID
	idx := map[string]int{}
	for _, tp := range tps {
		p, ok := sent[tp]
		if !ok {
			continue
		}
		i, ok := idx[tp.Topic]
		if !ok {
			t := kmsg.NewOffsetForLeaderEpochRequestTopic()
			t.Topic = tp.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			idx[tp.Topic] = i
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = tp.Partition, p.leaderEpoch, p.log.LatestEpoch()
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	r, err := f.conn.request(req, 30*time.Second)
	if err != nil {
		return err
	}
	resp := r.(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			tp := TopicPartition{t.Topic, rp.Partition}
			p, ok := sent[tp]
			if !ok {
				continue
			}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				f.log.Debug("divergence check refused", "partition", tp, "err", err)
				f.backoff(tp, p)
				continue
			}
			if err := f.truncateDiverged(tp, p, rp.LeaderEpoch, rp.EndOffset); err != nil {
				f.failed(tp, p, err) // checked again after its backoff
				continue
			}
			f.markChecked(tp, p)
		}
	}
	return nil
}

// applyToLog runs change, a change of tp's log decided on an answer of the
// leader (a truncation, a write, a high watermark), only while tp is still
// followed as p, and holds the fetcher's lock while it runs, so that Remove
// waits for it. The manager stops following a partition before it makes
// the replica lead it; an answer that arrives afterwards (a divergence
// check or a fetch in flight on a loaded machine) would otherwise cut or
// write the log of a leader: a truncation there removes records the
// leader already counts (its log end, its followers' fetch offsets) and
// may have served, and the high watermark it computes can then pass
// offsets it appends anew, acknowledging them without any copy.
func (f *Fetcher) applyToLog(tp TopicPartition, p *fetchPartition, change func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts[tp] != p {
		return nil
	}
	return change()
}

func (f *Fetcher) markChecked(tp TopicPartition, p *fetchPartition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts[tp] == p {
		p.checkDivergence = false
	}
}

// truncateDiverged cuts the local log where it stops agreeing with the
// leader, which has epoch leaderEpoch ending at endOffset: at the smaller
// of the leader's end for that epoch and ours (KIP-279). An undefined
// answer (the leader knows no epoch that old) means nothing we have above
// our high watermark can be trusted.
func (f *Fetcher) truncateDiverged(tp TopicPartition, p *fetchPartition, leaderEpoch int32, endOffset int64) error {
	return f.applyToLog(tp, p, func() error { return f.truncateDivergedLocked(tp, p, leaderEpoch, endOffset) })
}

func (f *Fetcher) truncateDivergedLocked(tp TopicPartition, p *fetchPartition, leaderEpoch int32, endOffset int64) error {
	leo := p.log.LogEndOffset()
	var to int64
	if leaderEpoch < 0 || endOffset < 0 {
		to = p.log.HighWatermark()
	} else {
		_, localEnd := p.log.EndOffsetForLeaderEpoch(leaderEpoch)
		if localEnd < 0 {
			localEnd = p.log.LogStartOffset()
		}
		to = min(endOffset, localEnd)
	}
	if to < leo {
		f.log.Info("truncating a diverged log suffix", "partition", tp, "from", leo, "to", to, "leader_epoch", leaderEpoch)
	}
	// Also at the log end: the truncation drops the epochs recorded past
	// the last record (a leadership this replica took and wrote nothing
	// in), the last fetched epoch that the leader refused.
	if err := p.log.TruncateTo(to); err != nil {
		return fmt.Errorf("truncating %s to %d: %w", tp, to, err)
	}
	return nil
}

// sentFetch is a partition in a fetch: the following that sent it and the
// fetch offset it named (or the session held).
type sentFetch struct {
	p      *fetchPartition
	offset int64
}

// fetchPlan is one fetch's request and what the answer is matched with.
// sent is empty when there is nothing to fetch; held is then the throttle's
// delay of what it held back, if any.
type fetchPlan struct {
	req         *kmsg.FetchRequest
	incremental bool
	sent        map[TopicPartition]sentFetch
	named       map[TopicPartition]sentPartition
	forgotten   []TopicPartition
	held        time.Duration
}

// plan builds the fetch of tps: every partition in a full fetch, in a
// session only those whose state the leader does not hold, and the
// session's others forgotten.
//
// What it reads of a partition that nothing changed, in the thousands
// each round on an idle follower, is kept to one lock of its log
// (FetchState) and two map operations: the following comes with the
// snapshot (no lookup under the fetcher's lock; a partition removed or
// restarted after it is skipped when the answer comes, as one removed
// during the fetch always was), and the session's partitions are walked
// for forgotten ones only when some of them were not in this fetch.
// What the fetch names is read from the log as it is, as before: the log
// end a follower reports is what AppendAsFollower returned for, i.e. was
// written and synced (the previous round waited for every write before
// this one started).
func (f *Fetcher) plan(tps []orderedPartition, maxWait time.Duration) fetchPlan {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(fetchVersion)
	req.ReplicaID = f.cfg.LocalID
	req.MaxWaitMillis = int32(maxWait.Milliseconds())
	req.MinBytes = f.cfg.MinBytes
	req.MaxBytes = f.cfg.MaxBytes
	// In a session, only what changed is named (session.go); a full
	// fetch names everything and opens one.
	incremental := f.sessionEpoch > 0
	req.SessionID, req.SessionEpoch = f.sessionID, f.sessionEpoch
	if !incremental {
		req.SessionID, req.SessionEpoch = 0, sessionEpochFull
	}
	// sent is the loop's own map, cleared each round: only the loop
	// plans and fetches, one round at a time.
	if f.sent == nil {
		f.sent = make(map[TopicPartition]sentFetch, len(tps))
	}
	sent := f.sent
	clear(sent)
	inSession := 0
	named := map[TopicPartition]sentPartition{}
	idx := map[string]int{}
	throttle := f.cfg.Throttle
	var held time.Duration
	for _, o := range tps {
		tp, p := o.tp, o.p
		if throttle.FollowerThrottled(tp) && !f.isCaughtUp(p) {
			// Over the follower rate, a throttled replica that is behind
			// is left out of this fetch, as Kafka's replica fetcher does
			// (and out of the session, which would fetch it still).
			if d := throttle.Follower.Delay(); d > 0 {
				held = d
				continue
			}
		}
		leo, epoch, logStart := p.log.FetchState()
		st := sentPartition{
			p:                  p,
			currentLeaderEpoch: p.leaderEpoch,
			fetchOffset:        leo,
			lastFetched:        epoch,
			logStart:           logStart,
			maxBytes:           f.cfg.PartitionMaxBytes,
		}
		sent[tp] = sentFetch{p, st.fetchOffset}
		if incremental {
			had, ok := f.session[tp]
			if ok {
				inSession++
			}
			if ok && had == st {
				continue // the leader's session fetches it at this state
			}
		}
		named[tp] = st
		i, ok := idx[tp.Topic]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic = tp.Topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			idx[tp.Topic] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = tp.Partition
		rp.CurrentLeaderEpoch = st.currentLeaderEpoch
		rp.FetchOffset = st.fetchOffset
		rp.LastFetchedEpoch = st.lastFetched
		rp.LogStartOffset = st.logStart
		rp.PartitionMaxBytes = st.maxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(sent) == 0 {
		return fetchPlan{held: held}
	}
	// What the session holds but this fetch does not want (removed, in
	// backoff, being checked, held back) is forgotten: the leader would
	// otherwise go on fetching it at its old state.
	var forgotten []TopicPartition
	// Every partition of the session seen in this fetch: none to forget.
	if incremental && inSession < len(f.session) {
		fidx := map[string]int{}
		for tp := range f.session {
			if _, ok := sent[tp]; ok {
				continue
			}
			forgotten = append(forgotten, tp)
			i, ok := fidx[tp.Topic]
			if !ok {
				t := kmsg.NewFetchRequestForgottenTopic()
				t.Topic = tp.Topic
				req.ForgottenTopics = append(req.ForgottenTopics, t)
				i = len(req.ForgottenTopics) - 1
				fidx[tp.Topic] = i
			}
			req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, tp.Partition)
		}
	}
	return fetchPlan{req: req, incremental: incremental, sent: sent, named: named, forgotten: forgotten, held: held}
}

func (f *Fetcher) fetch(tps []orderedPartition, maxWait time.Duration) error {
	pl := f.plan(tps, maxWait)
	if len(pl.sent) == 0 {
		if pl.held > 0 {
			// Everything due is held back: wait for the rate to come
			// down (or for Add) instead of asking again at once.
			f.sleep(min(pl.held, f.cfg.Backoff))
		}
		return nil
	}
	req, incremental, sent, named, forgotten := pl.req, pl.incremental, pl.sent, pl.named, pl.forgotten
	throttle := f.cfg.Throttle
	f.fetching.Store(true)
	sentAt := time.Now()
	r, err := f.conn.request(req, f.cfg.MaxWait+30*time.Second)
	f.fetching.Store(false)
	if err != nil {
		return err
	}
	f.interrupted.Store(false) // answered before the cut took effect
	resp := r.(*kmsg.FetchResponse)
	switch err := kerr.ErrorForCode(resp.ErrorCode); {
	case errors.Is(err, kerr.FetchSessionIDNotFound) || errors.Is(err, kerr.InvalidFetchSessionEpoch):
		// The leader evicted the session (or lost count): start over
		// with a full fetch, at once.
		f.log.Debug("fetch session ended by the leader; opening another", "session", f.sessionID, "err", err)
		f.resetSession()
		return nil
	case err != nil:
		return fmt.Errorf("fetch refused: %w", err)
	}
	// The leader now holds what this fetch named (and forgot). A
	// partition below that fails goes into backoff (failed): the next
	// fetch forgets it, and names it again, at what its log then holds,
	// when it is due; the session never holds a state for it that this
	// side did not apply.
	switch {
	case resp.SessionID == 0:
		f.resetSession() // the leader keeps no session: full fetches
	case !incremental:
		f.sessionID, f.sessionEpoch = resp.SessionID, 1
		clear(f.session)
		maps.Copy(f.session, named)
	default:
		f.sessionEpoch = nextSessionEpoch(f.sessionEpoch)
		for _, tp := range forgotten {
			delete(f.session, tp)
		}
		maps.Copy(f.session, named)
	}
	// Write every partition first, then wait for them all: the writes go
	// to the page cache and one sync round of the store makes them all
	// durable, instead of a goroutine and an fsync wait per partition.
	//
	// A partition whose answer cannot be applied (its write or
	// truncation refused by the local disk, the leader's records for it
	// unreadable) fails alone: it is backed off and the others are
	// written and reported as usual, as Kafka's fetcher delays only the
	// partitions with errors. Failing the round instead held every
	// partition of this leader, and the acks=all produces waiting for
	// this follower, for a Backoff after each fetch while one log could
	// not be written.
	type pending struct {
		tp   TopicPartition
		p    *fetchPartition
		done func() error
	}
	var (
		dones   []pending
		written int
	)
	answeredAt := time.Now()
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			rp := &t.Partitions[i]
			tp := TopicPartition{t.Topic, rp.Partition}
			sf, ok := sent[tp]
			if !ok {
				continue
			}
			p := sf.p
			if cur, ok := f.part(tp); !ok || cur != p {
				continue // removed or restarted meanwhile
			}
			if throttle.FollowerThrottled(tp) {
				throttle.Follower.Record(len(rp.RecordBatches))
			}
			done, err := f.handlePartition(tp, p, sf.offset, rp)
			if err != nil {
				if f.ctx.Err() != nil {
					return err
				}
				f.failed(tp, p, err)
			}
			if done != nil {
				dones = append(dones, pending{tp, p, done})
				written += len(rp.RecordBatches)
			}
		}
	}
	for _, d := range dones {
		if err := d.done(); err != nil {
			if f.ctx.Err() != nil {
				return err
			}
			f.failed(d.tp, d.p, err)
		}
	}
	if fn := f.cfg.OnFetch; fn != nil {
		fn(answeredAt.Sub(sentAt), time.Since(answeredAt), written)
	}
	return nil
}

// failed backs off one partition whose leader's answer could not be
// applied to its log, for the whole Backoff (Kafka delays a partition
// with a storage error by replica.fetch.backoff.ms): the usual cause is
// the local disk (full, failing), which a quick retry does not cure, and
// a full disk is reported at once by OnDiskFull. The other partitions of
// the fetch are not held.
//
// The first failure in a row is logged as a warning, then every
// failureLogEvery-th: a full disk fails every partition the broker
// follows once per Backoff, a warning a second each (over 1,000 in the
// four 20 s faults of a chaos run), which would bury everything else.
func (f *Fetcher) failed(tp TopicPartition, p *fetchPartition, err error) {
	n := 0
	f.mu.Lock()
	if f.parts[tp] == p {
		p.retryAt = time.Now().Add(f.cfg.Backoff)
		p.failures++
		n = p.failures
	}
	f.mu.Unlock()
	level := slog.LevelDebug
	if n == 1 || n%failureLogEvery == 0 {
		level = slog.LevelWarn
	}
	f.log.Log(f.ctx, level, "replica fetch failed for a partition; it is retried after the backoff, the others go on",
		"partition", tp, "backoff", f.cfg.Backoff, "failures_in_a_row", n, "err", err)
}

// failureLogEvery: a partition that keeps failing is logged as a warning
// once per this many failures in a row (a minute at the default backoff).
const failureLogEvery = 60

// handlePartition applies one partition of a fetch response: errors,
// divergence, and the leader's batches, written to the local log. done,
// when not nil, waits until the batches are durable and then takes the
// leader's high watermark.
func (f *Fetcher) handlePartition(tp TopicPartition, p *fetchPartition, fetchOffset int64, rp *kmsg.FetchResponseTopicPartition) (done func() error, err error) {
	switch err := kerr.ErrorForCode(rp.ErrorCode); {
	case err == nil:
		f.accepted(tp, p)
	case errors.Is(err, kerr.OffsetOutOfRange):
		if rp.LogStartOffset > p.log.LogEndOffset() {
			// The leader deleted everything we have and more.
			return nil, f.applyToLog(tp, p, func() error {
				f.log.Info("leader's log starts past ours; starting over", "partition", tp, "at", rp.LogStartOffset)
				return p.log.TruncateFullyAndStartAt(rp.LogStartOffset)
			})
		}
		f.mu.Lock()
		p.checkDivergence = true
		f.mu.Unlock()
		return nil, nil
	default:
		// FENCED_LEADER_EPOCH (our metadata is behind), UNKNOWN_LEADER_EPOCH
		// (the leader's is), NOT_LEADER_OR_FOLLOWER, ...: the metadata will
		// move this partition or the leader will catch up.
		f.log.Debug("fetch partition refused", "partition", tp, "err", err)
		f.backoff(tp, p)
		return nil, nil
	}
	if de := rp.DivergingEpoch; de.Epoch >= 0 && de.EndOffset >= 0 {
		return nil, f.truncateDiverged(tp, p, de.Epoch, de.EndOffset)
	}
	setHW := func() error {
		return f.applyToLog(tp, p, func() error {
			leo := p.log.LogEndOffset()
			p.log.SetHighWatermark(min(rp.HighWatermark, leo))
			p.caughtUp = leo >= rp.HighWatermark
			p.failures = 0
			// The leader's log start (DeleteRecords, its retention) moves
			// ours, up to what this replica holds in sync, as Kafka's
			// followers do: a leader elected from this replica must not
			// serve again what the old one deleted. Retried at every
			// fetch, so a failure only logs.
			if start := min(rp.LogStartOffset, p.log.HighWatermark()); start > p.log.LogStartOffset() {
				if _, err := p.log.DeleteRecordsBefore(start); err != nil {
					f.log.Warn("moving the log start up to the leader's", "partition", tp, "to", start, "err", err)
				}
			}
			return nil
		})
	}
	if len(rp.RecordBatches) > 0 {
		batches, straddle, err := trimToOffset(rp.RecordBatches, fetchOffset)
		if err != nil {
			return nil, fmt.Errorf("records from leader for %s: %w", tp, err)
		}
		if straddle >= 0 {
			// Our log ends inside one of the leader's batches, so our last
			// batch is not the leader's: cut back to where its batch begins.
			return nil, f.applyToLog(tp, p, func() error {
				f.log.Info("truncating a batch that differs from the leader's", "partition", tp, "to", straddle)
				return p.log.TruncateTo(straddle)
			})
		}
		if len(batches) > 0 {
			var wait func(context.Context) error
			err := f.applyToLog(tp, p, func() error {
				var err error
				wait, err = writeAsFollower(f.ctx, p.log, batches)
				return err
			})
			if err != nil {
				if f.cfg.OnDiskFull != nil && storage.NoSpace(err) {
					f.cfg.OnDiskFull(tp, p.leaderEpoch)
				}
				return nil, fmt.Errorf("appending to %s: %w", tp, err)
			}
			if wait == nil {
				return nil, nil // no longer followed: nothing written
			}
			return func() error {
				if err := wait(f.ctx); err != nil {
					return fmt.Errorf("appending to %s: %w", tp, err)
				}
				return setHW()
			}, nil
		}
	}
	return nil, setHW()
}

// followerWriter is a log that can write a follower's batches and wait
// for their durability in two steps (storage.Partition.WriteAsFollower).
type followerWriter interface {
	WriteAsFollower(batches []byte) (wait func(context.Context) error, err error)
}

// writeAsFollower writes batches to log and returns the wait for their
// durability; a log without the two steps appends at once.
func writeAsFollower(ctx context.Context, log Log, batches []byte) (func(context.Context) error, error) {
	if w, ok := log.(followerWriter); ok {
		return w.WriteAsFollower(batches)
	}
	if err := log.AppendAsFollower(ctx, batches); err != nil {
		return nil, err
	}
	return func(context.Context) error { return nil }, nil
}

// trimToOffset drops whole batches that end before offset (a leader answers
// from the batch containing the fetch offset) and a trailing partial batch
// (a size limit may cut one). When a batch straddles offset, our log ends
// inside one of the leader's batches; its base offset is returned as
// straddle (else -1).
func trimToOffset(b []byte, offset int64) (batches []byte, straddle int64, err error) {
	start, end := -1, 0
	for pos := 0; pos+recordbatch.LogOverhead <= len(b); {
		h, err := recordbatch.ParseHeader(b[pos:])
		if err != nil {
			if errors.Is(err, recordbatch.ErrTruncated) {
				break
			}
			return nil, -1, err
		}
		size := h.Size()
		if pos+size > len(b) {
			break
		}
		if h.LastOffset() >= offset {
			if h.BaseOffset < offset {
				return nil, h.BaseOffset, nil
			}
			if start < 0 {
				start = pos
			}
			end = pos + size
		}
		pos += size
	}
	if start < 0 {
		return nil, -1, nil
	}
	return b[start:end], -1, nil
}
