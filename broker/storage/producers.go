package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// maxCachedBatches is how many recent batches per producer are remembered
// for duplicate detection: a producer has at most five in flight.
const maxCachedBatches = 5

type producerBatch struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

// producerEntry is what a partition knows of one producer id: Kafka's
// ProducerStateEntry.
//
// Every idempotent append copies the entry (the request's changes are
// staged until its write succeeds), so it holds only what each producer
// needs; an ongoing transaction's start time lives with the transaction.
type producerEntry struct {
	epoch int16
	// coordinatorEpoch is the epoch of the transaction coordinator that
	// wrote the producer's last marker, -1 before any.
	coordinatorEpoch int32
	lastAppend       int64 // broker clock, ms; for producer.id.expiration.ms
	// lastTimestamp is the maxTimestamp of the producer's last batch or
	// marker (DescribeProducers' LastTimestamp); -1 when unknown.
	lastTimestamp int64
	// txnFirstOffset is the first offset of the producer's ongoing
	// transaction in this partition, -1 when there is none.
	txnFirstOffset int64
	batches        []producerBatch
}

func newProducerEntry(epoch int16) *producerEntry {
	return &producerEntry{epoch: epoch, lastTimestamp: -1, coordinatorEpoch: -1, txnFirstOffset: -1}
}

func (e *producerEntry) clone() *producerEntry {
	c := *e
	c.batches = append([]producerBatch(nil), e.batches...)
	return &c
}

func (e *producerEntry) add(b producerBatch) {
	if len(e.batches) == maxCachedBatches {
		e.batches = append(e.batches[:0], e.batches[1:]...)
	}
	e.batches = append(e.batches, b)
}

// setEpoch moves the entry to epoch; the cached sequences belong to the
// old epoch and go (Kafka's maybeUpdateProducerEpoch). An ongoing
// transaction and the coordinator epoch stay.
func (e *producerEntry) setEpoch(epoch int16) {
	if e.epoch != epoch {
		e.epoch = epoch
		e.batches = e.batches[:0]
	}
}

// ongoingTxn is a transaction of this partition with no marker yet.
type ongoingTxn struct {
	producerID  int64
	firstOffset int64
	start       int64 // when its first batch was appended here (ms)
}

// completedTxn is a transaction whose marker is in the log.
type completedTxn struct {
	producerID  int64
	firstOffset int64
	lastOffset  int64 // the marker's offset
	aborted     bool
}

// VerificationGuard ties a transactional append to one verification of
// its producer with the transaction coordinator (KIP-890 part 1). Zero is
// "no guard".
type VerificationGuard uint64

var lastGuard atomic.Uint64

func nextGuard() VerificationGuard { return VerificationGuard(lastGuard.Add(1)) }

// verification is a producer's pending check with the coordinator:
// Kafka's VerificationStateEntry.
type verification struct {
	guard     VerificationGuard
	epoch     int16
	lowestSeq int32
	created   int64 // ms; expires with producer.id.expiration.ms
}

// producerStates is the producer and transaction state of a partition:
// per producer id its epoch, the last few batches' sequence numbers and its
// ongoing transaction; the ongoing transactions by first offset; the
// transactions decided but whose marker the high watermark has not passed
// yet (they still hold the last stable offset back, as in Kafka, so that a
// marker lost in a failover cannot expose data); and the producers being
// verified with their coordinator.
type producerStates struct {
	m            map[int64]*producerEntry
	ongoing      []ongoingTxn   // by firstOffset
	unreplicated []completedTxn // by marker offset
	verifying    map[int64]*verification
}

func newProducerStates() producerStates {
	return producerStates{m: make(map[int64]*producerEntry)}
}

// firstUnstable is the first offset that read_committed readers may not
// pass given high watermark hw: the first offset of the earliest ongoing
// transaction or of a decided one whose marker is at or past hw; hw when
// there is none.
func (ps *producerStates) firstUnstable(hw int64) int64 {
	lso := hw
	if len(ps.ongoing) > 0 {
		lso = min(lso, ps.ongoing[0].firstOffset)
	}
	for i := range ps.unreplicated {
		if t := &ps.unreplicated[i]; t.lastOffset >= hw {
			lso = min(lso, t.firstOffset)
		}
	}
	return lso
}

// pruneReplicated forgets decided transactions whose marker is below hw.
func (ps *producerStates) pruneReplicated(hw int64) {
	keep := ps.unreplicated[:0]
	for _, t := range ps.unreplicated {
		if t.lastOffset >= hw {
			keep = append(keep, t)
		}
	}
	clear(ps.unreplicated[len(keep):])
	ps.unreplicated = keep
}

func (ps *producerStates) addOngoing(t ongoingTxn) {
	i := sort.Search(len(ps.ongoing), func(i int) bool { return ps.ongoing[i].firstOffset > t.firstOffset })
	ps.ongoing = append(ps.ongoing, ongoingTxn{})
	copy(ps.ongoing[i+1:], ps.ongoing[i:])
	ps.ongoing[i] = t
}

// complete removes a decided transaction from the ongoing ones and returns
// the last stable offset to record with it in the aborted-transaction
// index: Kafka's ProducerStateManager.lastStableOffset, the first offset of
// the earliest transaction of another producer still ongoing, else the
// offset after the marker. A marker at or past hw keeps the transaction
// among the unreplicated ones.
func (ps *producerStates) complete(c completedTxn, hw int64) (lso int64) {
	for i, t := range ps.ongoing {
		if t.producerID == c.producerID && t.firstOffset == c.firstOffset {
			ps.ongoing = append(ps.ongoing[:i], ps.ongoing[i+1:]...)
			break
		}
	}
	lso = c.lastOffset + 1
	for _, t := range ps.ongoing {
		if t.producerID != c.producerID {
			lso = t.firstOffset
			break
		}
	}
	if c.lastOffset >= hw {
		ps.unreplicated = append(ps.unreplicated, c)
	}
	return lso
}

// startVerification returns the guard for a producer about to start a
// transaction here (Kafka's maybeCreateVerificationStateEntry): an entry is
// created, or the existing one kept when its epoch is not newer, and its
// lowest sequence lowered to seq.
func (ps *producerStates) startVerification(pid int64, epoch int16, seq int32, now int64) VerificationGuard {
	if ps.verifying == nil {
		ps.verifying = make(map[int64]*verification)
	}
	v := ps.verifying[pid]
	switch {
	case v == nil || epoch > v.epoch:
		v = &verification{guard: nextGuard(), epoch: epoch, lowestSeq: seq, created: now}
		ps.verifying[pid] = v
	case epoch == v.epoch:
		v.lowestSeq = min(v.lowestSeq, seq)
	}
	return v.guard
}

// producerCheck validates a request's batches against the state, staging
// changes so that several batches of one request see each other.
type producerCheck struct {
	states  *producerStates
	staged  map[int64]*producerEntry
	started []ongoingTxn
	ended   []completedTxn
	// marked are the producers the request wrote a marker for.
	marked []int64
}

func (ps *producerStates) begin() *producerCheck { return &producerCheck{states: ps} }

func (pc *producerCheck) entry(pid int64) *producerEntry {
	if e, ok := pc.staged[pid]; ok {
		return e
	}
	if e, ok := pc.states.m[pid]; ok {
		return e
	}
	return nil
}

// check applies Kafka's rules to a data batch from an idempotent or
// transactional producer (ProducerAppendInfo and UnifiedLog's
// analyzeAndValidateProducerState). A non-nil duplicate means the batch was
// already written there.
func (pc *producerCheck) check(h *recordbatch.Header, guard VerificationGuard, fromCoordinator bool) (duplicate *producerBatch, err error) {
	e := pc.entry(h.ProducerID)
	first, last := h.BaseSequence, h.LastSequence()
	switch {
	case fromCoordinator:
		// No sequences: only the epoch may not go back.
		if e != nil && h.ProducerEpoch < e.epoch {
			return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
		}
	case e == nil:
		// Kafka 2.x: a producer with no state here must start at sequence
		// 0; otherwise its earlier batches are gone and the client must
		// reset (it does so on UNKNOWN_PRODUCER_ID).
		if first != 0 {
			return nil, fmt.Errorf("%w: producer %d unknown to this partition, first sequence %d", ErrUnknownProducerID, h.ProducerID, first)
		}
	case h.ProducerEpoch < e.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	case h.ProducerEpoch > e.epoch:
		if first != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, first)
		}
	default:
		for i := range e.batches {
			if b := &e.batches[i]; b.firstSeq == first && b.lastSeq == last {
				dup := *b
				return &dup, nil
			}
		}
		if n := len(e.batches); n > 0 {
			prev := e.batches[n-1].lastSeq
			if !(first == prev+1 || (prev == math.MaxInt32 && first == 0)) {
				return nil, fmt.Errorf("%w: producer %d epoch %d sent sequence %d after %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, first, prev)
			}
		}
	}
	ongoing := e != nil && e.txnFirstOffset >= 0
	if !h.IsTransactional() {
		if ongoing {
			return nil, fmt.Errorf("%w: producer %d sent a non-transactional batch during its transaction", ErrInvalidTxnState, h.ProducerID)
		}
		return nil, nil
	}
	if ongoing && e.epoch == h.ProducerEpoch {
		return nil, nil
	}
	// The first batch of a transaction here: the coordinator must have
	// confirmed that the partition is in the transaction, and no marker
	// may have been written since (it clears the guard), so a late or
	// stray batch cannot leave a transaction hanging (KIP-890).
	v := pc.states.verifying[h.ProducerID]
	if guard == 0 || v == nil || v.guard != guard {
		return nil, fmt.Errorf("%w: producer %d epoch %d: batch is not part of a transaction verified with the coordinator", ErrInvalidTxnState, h.ProducerID, h.ProducerEpoch)
	}
	if !fromCoordinator && first > v.lowestSeq {
		return nil, fmt.Errorf("%w: producer %d sent sequence %d before the verified sequence %d", ErrOutOfOrderSequence, h.ProducerID, first, v.lowestSeq)
	}
	return nil, nil
}

// checkMarker applies Kafka's rules to a COMMIT or ABORT marker: the
// producer epoch may not go back (INVALID_PRODUCER_EPOCH) and neither may
// the coordinator epoch (TRANSACTION_COORDINATOR_FENCED: a coordinator that
// lost its partition of the transaction log is a zombie).
func (pc *producerCheck) checkMarker(h *recordbatch.Header, m recordbatch.EndTxnMarker) error {
	e := pc.entry(h.ProducerID)
	if e == nil {
		return nil
	}
	if h.ProducerEpoch < e.epoch {
		return fmt.Errorf("%w: marker for producer %d epoch %d, the producer is at epoch %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	}
	if m.CoordinatorEpoch < e.coordinatorEpoch {
		return fmt.Errorf("%w: marker for producer %d from coordinator epoch %d, the last marker came from epoch %d", ErrTransactionCoordinatorFenced, h.ProducerID, m.CoordinatorEpoch, e.coordinatorEpoch)
	}
	return nil
}

// staging returns the staged copy of pid's entry, creating it.
func (pc *producerCheck) staging(pid int64, epoch int16) *producerEntry {
	if pc.staged == nil {
		pc.staged = make(map[int64]*producerEntry)
	}
	e := pc.entry(pid)
	switch {
	case e == nil:
		e = newProducerEntry(epoch)
	case pc.staged[pid] != e:
		e = e.clone()
	}
	pc.staged[pid] = e
	return e
}

// stage records an accepted data batch (with its assigned offsets).
func (pc *producerCheck) stage(h *recordbatch.Header, now int64) {
	e := pc.staging(h.ProducerID, h.ProducerEpoch)
	if t, ok := e.applyData(h, now); ok {
		pc.started = append(pc.started, t)
	}
}

// stageMarker records an accepted marker at its assigned offset.
func (pc *producerCheck) stageMarker(h *recordbatch.Header, m recordbatch.EndTxnMarker, now int64) {
	e := pc.staging(h.ProducerID, h.ProducerEpoch)
	if c, ok := e.applyMarker(h, m, now); ok {
		pc.ended = append(pc.ended, c)
	}
	pc.marked = append(pc.marked, h.ProducerID)
}

// commit makes the staged changes the state and returns the transactions
// the request ended. hw is the high watermark, for the decided
// transactions' last stable offsets.
func (pc *producerCheck) commit(hw int64) (ended []completedTxn, lsos []int64) {
	for pid, e := range pc.staged {
		pc.states.m[pid] = e
	}
	for _, t := range pc.started {
		pc.states.addOngoing(t)
		delete(pc.states.verifying, t.producerID)
	}
	for _, c := range pc.ended {
		lsos = append(lsos, pc.states.complete(c, hw))
	}
	// A marker ends whatever the coordinator had verified: a produce
	// verified before it must verify again.
	for _, pid := range pc.marked {
		delete(pc.states.verifying, pid)
	}
	return pc.ended, lsos
}

// applyData updates the entry for a data batch at its offsets and reports a
// transaction it starts.
func (e *producerEntry) applyData(h *recordbatch.Header, now int64) (ongoingTxn, bool) {
	e.setEpoch(h.ProducerEpoch)
	e.lastAppend = max(e.lastAppend, now)
	e.lastTimestamp = h.MaxTimestamp
	e.add(producerBatch{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), firstOffset: h.BaseOffset, lastOffset: h.LastOffset()})
	if h.IsTransactional() && e.txnFirstOffset < 0 {
		e.txnFirstOffset = h.BaseOffset
		return ongoingTxn{producerID: h.ProducerID, firstOffset: h.BaseOffset, start: now}, true
	}
	return ongoingTxn{}, false
}

// applyMarker updates the entry for a marker at its offset and reports the
// transaction it ends (none when the producer wrote nothing here since its
// last marker: such a marker moves no offset and indexes nothing).
func (e *producerEntry) applyMarker(h *recordbatch.Header, m recordbatch.EndTxnMarker, now int64) (completedTxn, bool) {
	e.setEpoch(h.ProducerEpoch)
	e.lastAppend = max(e.lastAppend, now)
	e.lastTimestamp = h.MaxTimestamp
	e.coordinatorEpoch = m.CoordinatorEpoch
	first := e.txnFirstOffset
	e.txnFirstOffset = -1
	if first < 0 {
		return completedTxn{}, false
	}
	return completedTxn{producerID: h.ProducerID, firstOffset: first, lastOffset: h.BaseOffset, aborted: !m.Commit}, true
}

// replay updates the state from a batch found in the log (recovery,
// follower appends, truncation), with no checks: the log is the truth.
// data is the batch's bytes, needed only for control batches. ts is when
// the batch counts as appended: the broker's clock on a follower, and at
// recovery the earlier of the broker's clock and the batch's own timestamp
// (so expiry and a transaction's age are not reset by a restart). It
// returns the transaction a marker ended, if any.
func (ps *producerStates) replay(h *recordbatch.Header, data []byte, ts int64) (completedTxn, bool, error) {
	if h.ProducerID < 0 {
		return completedTxn{}, false, nil
	}
	// An older epoch than the state's is applied too, as Kafka's
	// replication does: the leader accepted the batch because its own
	// state allowed it (it had expired the producer, say), and a replica
	// must end up with the leader's state.
	e := ps.m[h.ProducerID]
	if h.IsControl() {
		typ, m, ok, err := recordbatch.ParseControl(h, data)
		if err != nil {
			return completedTxn{}, false, err
		}
		if !ok || (typ != recordbatch.ControlAbort && typ != recordbatch.ControlCommit) {
			return completedTxn{}, false, nil
		}
		if e == nil {
			e = newProducerEntry(h.ProducerEpoch)
			ps.m[h.ProducerID] = e
		}
		c, ended := e.applyMarker(h, m, ts)
		// As on the leader (producerCheck.commit), a marker ends any
		// verification of this producer: one left from a time this
		// replica led, whose append never came, must not outlive it
		// and greet the producer's next transaction here with a stale
		// guard and lowest sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
		delete(ps.verifying, h.ProducerID)
		return c, ended, nil
	}
	if e == nil {
		e = newProducerEntry(h.ProducerEpoch)
		ps.m[h.ProducerID] = e
	}
	if t, started := e.applyData(h, ts); started {
		ps.addOngoing(t)
		delete(ps.verifying, h.ProducerID)
	}
	return completedTxn{}, false, nil
}

// expire drops producers idle since before cutoff (ms), except those with
// an ongoing transaction (Kafka's isProducerExpired), and verifications
// older than cutoff.
func (ps *producerStates) expire(cutoff int64) {
	for pid, e := range ps.m {
		if e.lastAppend < cutoff && e.txnFirstOffset < 0 {
			delete(ps.m, pid)
		}
	}
	for pid, v := range ps.verifying {
		if v.created < cutoff {
			delete(ps.verifying, pid)
		}
	}
}

// Snapshot file: "TRPS", version uint16, offset int64 (state covers the log
// below it), count uint32, entries, then (version 1) the decided
// transactions not yet below the high watermark, then CRC-32C of
// everything before it. Version 0, written before transactions existed,
// has no transaction fields and is still read.
var snapshotMagic = []byte("TRPS")

const snapshotVersion = 1

func (ps *producerStates) encode(offset int64) []byte {
	pids := make([]int64, 0, len(ps.m))
	for pid := range ps.m {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	starts := make(map[int64]int64, len(ps.ongoing))
	for _, t := range ps.ongoing {
		starts[t.producerID] = t.start
	}
	b := append([]byte(nil), snapshotMagic...)
	b = binary.BigEndian.AppendUint16(b, snapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(pids)))
	for _, pid := range pids {
		e := ps.m[pid]
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastAppend))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTimestamp))
		b = binary.BigEndian.AppendUint32(b, uint32(e.coordinatorEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.txnFirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(starts[pid]))
		b = append(b, byte(len(e.batches)))
		for _, x := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(x.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(x.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(x.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(x.lastOffset))
		}
	}
	var decided []completedTxn
	for _, t := range ps.unreplicated {
		if t.lastOffset < offset {
			decided = append(decided, t)
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(decided)))
	for _, t := range decided {
		b = binary.BigEndian.AppendUint64(b, uint64(t.producerID))
		b = binary.BigEndian.AppendUint64(b, uint64(t.firstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(t.lastOffset))
		aborted := byte(0)
		if t.aborted {
			aborted = 1
		}
		b = append(b, aborted)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadSnapshot = errors.New("bad producer-state snapshot")

// decodeProducerStates reads a snapshot of either version. Every field is
// checked against what the log could hold, so a snapshot that passes its
// CRC but was not written by this code is refused rather than trusted.
func decodeProducerStates(b []byte) (producerStates, int64, error) {
	ps := newProducerStates()
	if len(b) < 22 || string(b[:4]) != string(snapshotMagic) {
		return ps, 0, errBadSnapshot
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	version := binary.BigEndian.Uint16(b[4:])
	if crc32.Checksum(body, castagnoli) != sum || version > snapshotVersion {
		return ps, 0, errBadSnapshot
	}
	offset := int64(binary.BigEndian.Uint64(b[6:]))
	if offset < 0 {
		return ps, 0, errBadSnapshot
	}
	n := binary.BigEndian.Uint32(b[14:])
	r := body[18:]
	fixed := 19
	if version >= 1 {
		fixed = 47
	}
	for range n {
		if len(r) < fixed {
			return ps, 0, errBadSnapshot
		}
		pid := int64(binary.BigEndian.Uint64(r))
		e := newProducerEntry(int16(binary.BigEndian.Uint16(r[8:])))
		e.lastAppend = int64(binary.BigEndian.Uint64(r[10:]))
		start := int64(0)
		if version >= 1 {
			e.lastTimestamp = int64(binary.BigEndian.Uint64(r[18:]))
			e.coordinatorEpoch = int32(binary.BigEndian.Uint32(r[26:]))
			e.txnFirstOffset = int64(binary.BigEndian.Uint64(r[30:]))
			start = int64(binary.BigEndian.Uint64(r[38:]))
		}
		nb := int(r[fixed-1])
		r = r[fixed:]
		if pid < 0 || e.txnFirstOffset < -1 || e.txnFirstOffset >= offset || nb > maxCachedBatches || len(r) < nb*24 {
			return ps, 0, errBadSnapshot
		}
		if _, dup := ps.m[pid]; dup {
			return ps, 0, errBadSnapshot
		}
		for range nb {
			x := producerBatch{
				firstSeq: int32(binary.BigEndian.Uint32(r)), lastSeq: int32(binary.BigEndian.Uint32(r[4:])),
				firstOffset: int64(binary.BigEndian.Uint64(r[8:])), lastOffset: int64(binary.BigEndian.Uint64(r[16:])),
			}
			if x.firstOffset < 0 || x.lastOffset < x.firstOffset || x.lastOffset >= offset {
				return ps, 0, errBadSnapshot
			}
			e.batches = append(e.batches, x)
			r = r[24:]
		}
		ps.m[pid] = e
		if e.txnFirstOffset >= 0 {
			ps.addOngoing(ongoingTxn{producerID: pid, firstOffset: e.txnFirstOffset, start: start})
		}
	}
	if version >= 1 {
		if len(r) < 4 {
			return ps, 0, errBadSnapshot
		}
		nd := binary.BigEndian.Uint32(r)
		r = r[4:]
		if uint64(len(r)) < uint64(nd)*25 {
			return ps, 0, errBadSnapshot
		}
		for range nd {
			t := completedTxn{
				producerID: int64(binary.BigEndian.Uint64(r)), firstOffset: int64(binary.BigEndian.Uint64(r[8:])),
				lastOffset: int64(binary.BigEndian.Uint64(r[16:])), aborted: r[24] == 1,
			}
			if t.firstOffset < 0 || t.lastOffset < t.firstOffset || t.lastOffset >= offset || r[24] > 1 {
				return ps, 0, errBadSnapshot
			}
			ps.unreplicated = append(ps.unreplicated, t)
			r = r[25:]
		}
	}
	if len(r) != 0 {
		return ps, 0, errBadSnapshot
	}
	return ps, offset, nil
}

func readProducerStates(dir string) (producerStates, int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, producerStateFile))
	if err != nil {
		return newProducerStates(), 0, err
	}
	return decodeProducerStates(b)
}
