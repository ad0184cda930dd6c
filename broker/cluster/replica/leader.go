package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/storage"
)

// Errors of the leader side, with the Kafka codes the server answers.
var (
	// ErrNotEnoughReplicas: acks=all refused before the append, the ISR is
	// smaller than min.insync.replicas (NOT_ENOUGH_REPLICAS, 19).
	ErrNotEnoughReplicas = errors.New("not enough in-sync replicas")
	// ErrNotEnoughReplicasAfterAppend: the batch was appended and reached
	// the high watermark, but the ISR shrank below min.insync.replicas
	// meanwhile (NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20). Producers retry.
	ErrNotEnoughReplicasAfterAppend = errors.New("not enough in-sync replicas after append")
	// ErrNotLeader: this broker no longer leads the partition at the
	// epoch the request was taken under (NOT_LEADER_OR_FOLLOWER, 6).
	ErrNotLeader = errors.New("not the leader of this partition")
	// ErrSuperseded: Update was given a partition state older than one
	// it had (see Update); nothing changed.
	ErrSuperseded = errors.New("partition state older than the tracker's")
	// ErrNotReplica: a follower fetch from a broker that is not a replica
	// (NOT_LEADER_OR_FOLLOWER as Kafka answers it).
	ErrNotReplica = errors.New("fetching broker is not a replica")
)

// DefaultLagTimeMax is replica.lag.time.max.ms's Kafka default.
const DefaultLagTimeMax = 30 * time.Second

// LeaderConfig configures the leader side of one partition.
type LeaderConfig struct {
	LocalID int32
	// LagTimeMax is replica.lag.time.max.ms: a follower that has not been
	// caught up for this long leaves the ISR.
	LagTimeMax time.Duration
	// MinISR is min.insync.replicas for acks=all.
	MinISR int
	// SetHighWatermark receives every advance of the high watermark; the
	// server passes storage.Partition.SetHighWatermark, which also wakes
	// long-polling consumers.
	SetHighWatermark func(int64)
	// Now is the clock (tests replace it).
	Now func() time.Time
}

type followerState struct {
	// incarnation is the follower broker's registration (broker epoch)
	// its fetches came from; 0 while unknown.
	incarnation        int64
	leo                int64 // -1 until it fetches
	lastCaughtUp       time.Time
	lastFetch          time.Time
	lastFetchLeaderLEO int64
}

type waiter struct {
	offset int64 // done when the high watermark passes it
	done   chan error
}

// Leader tracks one partition this broker leads: each follower's log end
// offset (from its fetch offsets), whether it is caught up, the high
// watermark (the smallest log end offset in the ISR), the acks=all
// producers waiting for it, and the ISR change to ask the controller for.
//
// The ISR used for the high watermark is Kafka's "maximal ISR" (KIP-497):
// the committed ISR plus the members of an ISR change in flight, so that a
// follower being added counts at once and one being removed keeps counting
// until the controller committed its removal: the high watermark can only
// be more conservative than either ISR.
type Leader struct {
	cfg LeaderConfig

	mu       sync.Mutex
	part     metadata.Partition
	resigned bool
	// gone is resigned, read without mu (Resigned).
	gone atomic.Bool
	// newest is the newest partition state this tracker was given (by
	// leader epoch, then partition epoch): part, or the state that made
	// it resign. The broker's own metadata can lag behind it, since the
	// controller's answer to an ISR change comes before the broker applies
	// the entries committed ahead of that change; see Update.
	newest metadata.Partition
	// leo is the leader's own log end offset: what followers can fetch.
	leo int64
	// ackEnd is the end of the leader's own durable data (per the flush
	// policy): the high watermark counts the leader's copy up to here.
	ackEnd    int64
	hw        int64
	epochFrom int64 // first offset of this leader epoch
	followers map[int32]*followerState
	// pending is the proposed ISR of the change in flight, nil when none;
	// change is that change. A change whose outcome is unknown (the
	// request timed out or failed on the way) stays pending, counted in
	// the maximal ISR, until the metadata shows a newer partition epoch:
	// the controller may have committed it, and with it the completion of
	// a reassignment that makes a just-added replica eligible to lead.
	// resend marks such a change to be sent again as it was.
	pending []int32
	change  ISRChange
	resend  bool
	waiters []*waiter
	// logFailed: a failed fsync cut the leader's log back (LogCut) and the
	// controller is to be told, so that the partition is led at a new
	// epoch; logReport: the report is in flight or was taken.
	logFailed, logReport bool
	// diskFull: an append failed for lack of space (WriteFailed) and the
	// controller is to be told (ReplicaDiskFull), so that another ISR
	// member leads; diskReport: that report is in flight; diskReportAt:
	// when the last one was sent (see DiskFullDue).
	diskFull, diskReport bool
	diskReportAt         time.Time
	// data is closed when the leader's log end moves (or it resigns), to
	// wake follower fetches long-polling for new data.
	data chan struct{}
	// wake holds, by follower, the channel its parked fetch waits on
	// (NotifyAfter): signalled, without blocking, when the log end moves
	// or the leader resigns, then cleared.
	wake map[int32]chan<- struct{}
	// quietUntil (Unix nanoseconds, 0: none) is a time before which
	// nothing the broker's periodic check looks at can be due: no ISR
	// change, no log failure or full disk to report (see ISRCheckDue).
	// Written under mu, read without it.
	quietUntil atomic.Int64
}

// NewLeader starts leading p (which must name LocalID as leader) with the
// local log ending at leo and the high watermark known so far at hw.
// Followers start unknown; they have LagTimeMax to fetch before they leave
// the ISR.
func NewLeader(cfg LeaderConfig, p metadata.Partition, leo, hw int64) (*Leader, error) {
	if p.Leader != cfg.LocalID {
		return nil, fmt.Errorf("%w: partition led by %d, this is %d", ErrNotLeader, p.Leader, cfg.LocalID)
	}
	if cfg.LagTimeMax <= 0 {
		cfg.LagTimeMax = DefaultLagTimeMax
	}
	if cfg.MinISR < 1 {
		cfg.MinISR = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SetHighWatermark == nil {
		cfg.SetHighWatermark = func(int64) {}
	}
	l := &Leader{cfg: cfg, part: p.Clone(), newest: p.Clone(), leo: leo, ackEnd: leo, hw: min(hw, leo), epochFrom: leo, followers: map[int32]*followerState{}, data: make(chan struct{})}
	now := cfg.Now()
	for _, r := range p.Replicas {
		if r != cfg.LocalID {
			l.followers[r] = &followerState{leo: -1, lastCaughtUp: now, lastFetch: now}
		}
	}
	// Publish the starting high watermark at once: until the replication
	// layer sets one, storage reports its durable end, which may include
	// records no follower has.
	cfg.SetHighWatermark(l.hw)
	l.advanceLocked()
	return l, nil
}

// Epoch is the leader epoch this tracker leads at.
func (l *Leader) Epoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.part.LeaderEpoch
}

// HighWatermark is the offset below which every ISR member has the data.
func (l *Leader) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hw
}

// epochAndHighWatermark is Epoch and HighWatermark under one lock.
func (l *Leader) epochAndHighWatermark() (int32, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.part.LeaderEpoch, l.hw
}

// ISR is the committed ISR.
func (l *Leader) ISR() []int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.part.ISR)
}

// Update takes a new partition state from the metadata log. If it no
// longer names this broker as leader at the same leader epoch, the tracker
// resigns: every waiting producer gets ErrNotLeader and Update returns it.
//
// A state older than one the tracker was given (a lower leader epoch, or
// the same with a lower partition epoch) changes nothing and returns
// ErrSuperseded. The controller answers the leader's ISR change with the
// partition it committed, which this broker's copy of the metadata reaches
// only after the entries committed ahead of it; those still show the
// partition as it was. Taken as news, they would undo a committed change:
// drop a replica the controller counts in the ISR (and may elect) from the
// high watermark, or, after a change that moved the leadership away (a
// reassignment it completed), make this broker lead again at the old
// epoch beside the new leader.
func (l *Leader) Update(p metadata.Partition) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if olderPartition(p, l.newest) {
		return ErrSuperseded
	}
	l.newest = p.Clone()
	if l.resigned {
		return ErrNotLeader
	}
	if p.Leader != l.cfg.LocalID || p.LeaderEpoch != l.part.LeaderEpoch {
		l.resignLocked()
		return ErrNotLeader
	}
	if p.PartitionEpoch != l.part.PartitionEpoch {
		// The change we proposed was committed or superseded: the
		// metadata has settled it.
		l.pending, l.resend = nil, false
	}
	l.part = p.Clone()
	// Replicas or the ISR may have changed: the next check looks.
	l.quietUntil.Store(0)
	now := l.cfg.Now()
	for _, r := range p.Replicas {
		if _, ok := l.followers[r]; !ok && r != l.cfg.LocalID {
			l.followers[r] = &followerState{leo: -1, lastCaughtUp: now, lastFetch: now}
		}
	}
	l.advanceLocked()
	return nil
}

// olderPartition orders two states of one partition by their epochs: each
// leadership change bumps the leader epoch, every change the partition
// epoch.
func olderPartition(p, than metadata.Partition) bool {
	if p.LeaderEpoch != than.LeaderEpoch {
		return p.LeaderEpoch < than.LeaderEpoch
	}
	return p.PartitionEpoch < than.PartitionEpoch
}

// Incarnations tells the tracker which registration (broker epoch) of
// each replica's broker the metadata shows. A follower whose broker
// registered again (it restarted) forgets the log end its previous
// process fetched to, as Kafka's leader does with broker epochs (KIP-903):
// the new process may hold less (an unflushed tail lost with the machine,
// a volume replaced), and until it fetches, that stale offset would count
// for the high watermark and let it join the ISR without the records. It
// starts over as a follower that has not fetched yet.
func (l *Leader) Incarnations(epochs map[int32]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, f := range l.followers {
		e, ok := epochs[id]
		if !ok || e == f.incarnation {
			continue
		}
		if f.incarnation != 0 {
			f.leo, f.lastFetchLeaderLEO = -1, 0
		}
		f.incarnation = e
	}
}

// Resigned says whether the tracker has resigned (for good: a tracker
// never leads again), without its lock.
func (l *Leader) Resigned() bool { return l.gone.Load() }

// Resign stops leading: waiting producers get ErrNotLeader.
func (l *Leader) Resign() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resignLocked()
}

func (l *Leader) resignLocked() {
	if !l.resigned {
		close(l.data)
		l.wakeLocked()
	}
	l.resigned = true
	l.gone.Store(true)
	for _, w := range l.waiters {
		w.done <- ErrNotLeader
	}
	l.waiters = nil
}

// Appended records that the leader's log now ends (durably) at leo.
func (l *Leader) Appended(leo int64) { l.LogAdvanced(leo, leo) }

// LogAdvanced records that the leader's log ends at logEnd, durable (per
// the flush policy) up to ackEnd; smaller values than already known are
// ignored. Storage reports each append as soon as it is written, before
// its fsync: follower fetches parked for data are answered at once, so
// the followers copy it while the leader's own fsync runs, and the high
// watermark counts the leader's copy only up to ackEnd.
func (l *Leader) LogAdvanced(logEnd, ackEnd int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned {
		return
	}
	if logEnd > l.leo {
		l.leo = logEnd
		close(l.data)
		l.data = make(chan struct{})
		l.wakeLocked()
	}
	if ackEnd > l.ackEnd {
		l.ackEnd = ackEnd
		l.advanceLocked()
	}
}

// LogEndOffset is the leader's log end offset as last reported.
func (l *Leader) LogEndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leo
}

// DataAfter returns a channel closed once the leader's log end is past
// offset (at once if it already is), or the leader resigns: a follower
// fetch long-polls on it.
func (l *Leader) DataAfter(offset int64) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leo > offset || l.resigned {
		c := make(chan struct{})
		close(c)
		return c
	}
	return l.data
}

// NotifyAfter arranges for ch to be signalled (a send that does not block:
// give it a buffer of one) once the leader's log end passes offset or the
// leader resigns, and reports true instead when that is already so.
// replica is the fetching follower: a follower's registration replaces its
// previous one (a follower has one fetch parked here at a time, and a
// registration left by a fetch that ended is only a wasted signal), which
// keeps this at one entry per follower without removing any. A parked
// fetch over thousands of partitions waits on one channel so, where a
// select over a channel per partition costs it a lock and a queue entry
// on each of them every time it parks.
func (l *Leader) NotifyAfter(offset int64, replica int32, ch chan<- struct{}) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leo > offset || l.resigned {
		return true
	}
	if l.wake == nil {
		l.wake = map[int32]chan<- struct{}{}
	}
	l.wake[replica] = ch
	return false
}

func (l *Leader) wakeLocked() {
	for _, ch := range l.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	clear(l.wake)
}

// Truncated records that the leader's log was cut back (only before it
// serves as leader, or by DeleteRecords that never cuts below the HW).
func (l *Leader) Truncated(leo int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leo = leo
	l.ackEnd = min(l.ackEnd, leo)
}

// LogCut records that a failed fsync cut the leader's log back to end
// (storage.Cut): what followers can fetch ends there again. read says a
// follower had read records past end; storage then refuses this
// leadership's appends, since the follower holds other records at those
// offsets under this same epoch, and the leadership must move to a new
// epoch (LogFailureDue). It must move too when another ISR member could
// lead in its place: the disk under this one is failing. A partition
// whose only replica lost nothing anyone read just refuses writes until
// its disk works again, as storage does.
func (l *Leader) LogCut(end int64, read bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leo = min(l.leo, end)
	l.ackEnd = min(l.ackEnd, end)
	if read || len(l.part.ISR) > 1 {
		l.logFailed = true
		l.quietUntil.Store(0)
	}
}

// LogFailureDue returns the leader epoch at which to report this leader's
// failed log to the controller (Controller.LeaderLogFailed), once a cut
// made it due and no report is in flight, and marks one in flight. The
// caller reports back with LogFailureReported.
func (l *Leader) LogFailureDue() (int32, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned || !l.logFailed || l.logReport {
		return 0, false
	}
	l.logReport = true
	return l.part.LeaderEpoch, true
}

// LogFailureReported takes the outcome of a report: on success the
// caller passes the partition it got to Update (a new epoch: the tracker
// resigns). A refusal because the partition moved on needs no other
// report, the metadata brings the change; after any other error the
// report is due again.
func (l *Leader) LogFailureReported(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil || errors.Is(err, metadata.ErrNotLeader) || errors.Is(err, metadata.ErrFencedLeaderEpoch) ||
		errors.Is(err, metadata.ErrUnknownTopicOrPartition) {
		return
	}
	l.logReport = false
}

// diskFullRetry is the least time between two reports of a full disk for
// one partition. A report that no other replica can take over
// (metadata.ErrEligibleLeadersNotAvailable) changes nothing; sent again
// on each of the producers' retries, it would fill the metadata log.
const diskFullRetry = 500 * time.Millisecond

// WriteFailed takes an append this leader's log refused. One refused for
// lack of space (storage.NoSpace) makes a report due (DiskFullDue): the
// partition is better led by a replica that can write. Any other error
// changes nothing here.
func (l *Leader) WriteFailed(err error) {
	if !storage.NoSpace(err) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.diskFull = true
	l.quietUntil.Store(0)
}

// DiskFullDue returns the leader epoch at which to report that this
// leader's disk is full (Controller.ReplicaDiskFull), when an append
// failed for lack of space since the last report, none is in flight and
// the last was sent at least diskFullRetry ago; it marks one in flight.
// The caller reports back with DiskFullReported.
func (l *Leader) DiskFullDue() (int32, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	if l.resigned || !l.diskFull || l.diskReport || now.Sub(l.diskReportAt) < diskFullRetry {
		return 0, false
	}
	l.diskFull, l.diskReport, l.diskReportAt = false, true, now
	return l.part.LeaderEpoch, true
}

// DiskFullReported ends a report of DiskFullDue. Whatever its outcome,
// the next is due only after another append fails for lack of space: a
// report refused because no other replica can lead waits for the
// producers' next retry to find the disk still full.
func (l *Leader) DiskFullReported() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.diskReport = false
}

// Fetched records a follower fetch at fetchOffset: the follower has every
// offset below it. It returns the high watermark to put in the response.
//
// Caught-up tracking is Kafka's: a follower is caught up at this fetch if
// it asked for the leader's end offset, and was caught up at its previous
// fetch time if it asked for at least the end offset the leader had then.
func (l *Leader) Fetched(id int32, fetchOffset int64) (int64, error) {
	return l.FetchedAt(id, fetchOffset, l.cfg.Now())
}

// FetchedAt is Fetched at now, a time the caller read from this leader's
// clock (LeaderConfig.Now): a pass over thousands of partitions reads it
// once, not once per partition.
func (l *Leader) FetchedAt(id int32, fetchOffset int64, now time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned {
		return 0, ErrNotLeader
	}
	f, ok := l.followers[id]
	if !ok || !slices.Contains(l.part.Replicas, id) {
		return 0, fmt.Errorf("%w: broker %d", ErrNotReplica, id)
	}
	// lastCaughtUp never moves back, even when two fetches of one
	// follower (without a session) pass each other with their times:
	// setQuietLocked counts on it.
	switch {
	case fetchOffset >= l.leo:
		f.lastCaughtUp = maxTime(f.lastCaughtUp, now)
	case fetchOffset >= f.lastFetchLeaderLEO:
		f.lastCaughtUp = maxTime(f.lastCaughtUp, f.lastFetch)
	}
	f.lastFetch, f.lastFetchLeaderLEO = now, l.leo
	f.leo = fetchOffset
	l.advanceLocked()
	return l.hw, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// advanceLocked recomputes the high watermark and completes the producers
// it satisfies.
func (l *Leader) advanceLocked() {
	if l.resigned {
		return
	}
	// Over the maximal ISR, the committed ISR and the members of the
	// change in flight, without building it as one slice (which
	// allocated on every follower fetch of every partition); a member in
	// both counts twice, which changes no minimum.
	hw := min(l.ackEnd, l.leo)
	for _, isr := range [2][]int32{l.part.ISR, l.pending} {
		for _, r := range isr {
			if f, ok := l.followers[r]; ok && r != l.cfg.LocalID {
				hw = min(hw, max(f.leo, 0))
			}
		}
	}
	if hw > l.hw {
		l.hw = hw
		l.cfg.SetHighWatermark(hw)
	}
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		if l.hw > w.offset {
			if len(l.part.ISR) < l.cfg.MinISR {
				w.done <- ErrNotEnoughReplicasAfterAppend
			} else {
				w.done <- nil
			}
			continue
		}
		kept = append(kept, w)
	}
	clear(l.waiters[len(kept):])
	l.waiters = kept
}

// SetMinISR changes min.insync.replicas (a topic or broker config change),
// for the produces that follow.
func (l *Leader) SetMinISR(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.MinISR = max(n, 1)
}

// CheckAcksAll refuses an acks=all produce before it is appended when the
// ISR is smaller than min.insync.replicas.
func (l *Leader) CheckAcksAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned {
		return ErrNotLeader
	}
	if len(l.part.ISR) < l.cfg.MinISR {
		return fmt.Errorf("%w: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicas, l.part.ISR, l.cfg.MinISR)
	}
	return nil
}

// WaitReplicated blocks an acks=all produce until every ISR member has
// lastOffset (the high watermark is past it), the leadership is lost
// (ErrNotLeader), or ctx ends (the server answers REQUEST_TIMED_OUT).
func (l *Leader) WaitReplicated(ctx context.Context, lastOffset int64) error {
	w := &waiter{offset: lastOffset, done: make(chan error, 1)}
	l.mu.Lock()
	if l.resigned {
		l.mu.Unlock()
		return ErrNotLeader
	}
	l.waiters = append(l.waiters, w)
	l.advanceLocked()
	l.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		l.mu.Lock()
		if i := slices.Index(l.waiters, w); i >= 0 {
			l.waiters = slices.Delete(l.waiters, i, i+1)
		}
		l.mu.Unlock()
		select {
		case err := <-w.done: // completed while we were giving up
			return err
		default:
			return ctx.Err()
		}
	}
}

// ISRChange is an AlterPartition to send to the controller.
type ISRChange struct {
	LeaderEpoch    int32
	PartitionEpoch int32
	NewISR         []int32
}

// ProposeISRChange returns the ISR change that is due, if any, and marks
// it in flight: followers not caught up for LagTimeMax leave; replicas
// that are eligible (per the metadata) and have reached both the high
// watermark and the start of this leader epoch join. A change whose
// outcome is unknown is returned again, unchanged, until the metadata
// settles it. The caller sends it with Controller.AlterPartition and
// reports back with Update (success) or ISRChangeFailed.
func (l *Leader) ProposeISRChange(eligible func(int32) bool) (ISRChange, bool) {
	return l.ProposeISRChangeAt(l.cfg.Now(), eligible)
}

// ProposeISRChangeAt is ProposeISRChange at now, read from this leader's
// clock (LeaderConfig.Now) by a caller that checks many partitions in one
// pass.
func (l *Leader) ProposeISRChangeAt(now time.Time, eligible func(int32) bool) (ISRChange, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resigned {
		return ISRChange{}, false
	}
	if l.pending != nil {
		if !l.resend {
			return ISRChange{}, false
		}
		l.resend = false
		return l.change, true
	}
	var isr []int32
	changed := false
	for _, r := range l.part.Replicas {
		inISR := slices.Contains(l.part.ISR, r)
		if r == l.cfg.LocalID {
			isr = append(isr, r)
			continue
		}
		f := l.followers[r]
		switch {
		case inISR && now.Sub(f.lastCaughtUp) > l.cfg.LagTimeMax:
			changed = true // leaves
		case inISR:
			isr = append(isr, r)
		case f.leo >= l.hw && f.leo >= l.epochFrom && eligible(r):
			isr = append(isr, r)
			changed = true // joins
		}
	}
	if !changed {
		l.setQuietLocked()
		return ISRChange{}, false
	}
	l.quietUntil.Store(0)
	l.pending = isr
	l.change = ISRChange{LeaderEpoch: l.part.LeaderEpoch, PartitionEpoch: l.part.PartitionEpoch, NewISR: slices.Clone(isr)}
	l.advanceLocked()
	return l.change, true
}

// setQuietLocked, after a check that found no ISR change due, records
// until when none can be (quietUntil), if that can be told from the
// followers' caught-up times alone:
//
//   - Every replica is in the committed ISR and no change is in flight:
//     nothing can join, and the only change that can come is a shrink.
//   - A member leaves once now - lastCaughtUp > LagTimeMax, and
//     lastCaughtUp only ever moves forward (Fetched sets it to now or to
//     the later of itself and the previous fetch time; a replica's state
//     is made anew only when Update adds it, which clears quietUntil). So
//     no member can be due to leave before the oldest caught-up time of
//     the members plus LagTimeMax, whatever they fetch meanwhile: a
//     follower that stops fetching keeps its last caught-up time and is
//     due exactly when it was before.
//   - No failed log or full disk is waiting to be reported: LogCut and
//     WriteFailed clear quietUntil when they make one due.
//
// Everything else that changes what a check would find goes through
// Update (the replicas, the ISR, a settled change), which clears it.
func (l *Leader) setQuietLocked() {
	if l.pending != nil || l.logFailed || l.diskFull {
		l.quietUntil.Store(0)
		return
	}
	var oldest time.Time
	for _, r := range l.part.Replicas {
		if r == l.cfg.LocalID {
			continue
		}
		f, ok := l.followers[r]
		if !ok || !slices.Contains(l.part.ISR, r) {
			l.quietUntil.Store(0)
			return
		}
		if oldest.IsZero() || f.lastCaughtUp.Before(oldest) {
			oldest = f.lastCaughtUp
		}
	}
	if oldest.IsZero() {
		l.quietUntil.Store(0) // no follower: nothing to wait for, and nothing cheap to skip
		return
	}
	l.quietUntil.Store(oldest.Add(l.cfg.LagTimeMax).UnixNano())
}

// ISRCheckDue says whether the periodic check (ProposeISRChangeAt,
// LogFailureDue, DiskFullDue) can find anything due at now; false only
// when the last check proved that none of them can before a later time
// (setQuietLocked). It takes no lock: the broker's ISR check walks every
// partition it leads twice a second, and with thousands of them, idle,
// that walk was a tenth of an idle broker's CPU.
func (l *Leader) ISRCheckDue(now time.Time) bool {
	return now.UnixNano() >= l.quietUntil.Load()
}

// ISRChangeFailed reports that the change ProposeISRChange returned was not
// confirmed, with the controller's error. Only a refusal that proves
// nothing was committed (the controller checked the request against the
// partition it was based on and refused it: an ineligible replica, an
// invalid request) drops the in-flight members from the maximal ISR; the
// next ProposeISRChange then computes afresh. After any other error the
// change may have been committed (Kafka's "maximal ISR" is kept until the
// metadata settles, KIP-497): a lost answer or a timeout sends the same
// change again, and a refusal because the partition or its leadership
// moved on waits for that newer metadata, which Update brings. A refusal of
// this broker's own registration (its broker epoch is stale or unknown
// while it registers again) changes no partition, so no Update would come:
// the same change is sent again, with the new broker epoch once there is
// one, and is then either taken or refused against the partition.
func (l *Leader) ISRChangeFailed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		return // settled by Update meanwhile
	}
	switch {
	case errors.Is(err, metadata.ErrIneligibleReplica), errors.Is(err, metadata.ErrInvalidRequest):
		l.pending, l.resend = nil, false
		l.advanceLocked()
	case errors.Is(err, metadata.ErrInvalidUpdateVersion), errors.Is(err, metadata.ErrNotLeader),
		errors.Is(err, metadata.ErrFencedLeaderEpoch), errors.Is(err, metadata.ErrUnknownTopicOrPartition):
		l.resend = false
	default:
		l.resend = true
	}
}

// ErrorCode maps the replication errors of the produce path to Kafka error
// codes; 0 for errors it does not know (the caller maps those).
func ErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotEnoughReplicasAfterAppend):
		return 20 // NOT_ENOUGH_REPLICAS_AFTER_APPEND
	case errors.Is(err, ErrNotEnoughReplicas):
		return 19 // NOT_ENOUGH_REPLICAS
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNotReplica):
		return 6 // NOT_LEADER_OR_FOLLOWER
	case errors.Is(err, context.DeadlineExceeded):
		return 7 // REQUEST_TIMED_OUT
	}
	return 0
}
