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

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// maxCachedBatches is how many recent batches per producer are remembered
// for duplicate detection: a producer has at most five in flight.
const maxCachedBatches = 5

type producerBatch struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

type producerEntry struct {
	epoch      int16
	lastAppend int64 // ms; for producer.id.expiration.ms
	batches    []producerBatch
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

// producerStates is the idempotent-producer state of a partition: per
// producer id, its epoch and the last few batches' sequence numbers.
type producerStates struct {
	m map[int64]*producerEntry
}

func newProducerStates() producerStates { return producerStates{m: make(map[int64]*producerEntry)} }

// producerCheck validates a request's batches against the state, staging
// changes so that several batches of one request see each other.
type producerCheck struct {
	states *producerStates
	staged map[int64]*producerEntry
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

// check applies Kafka's rules to a batch from an idempotent producer.
// A non-nil duplicate means the batch was already written there.
func (pc *producerCheck) check(h *recordbatch.Header) (duplicate *producerBatch, err error) {
	e := pc.entry(h.ProducerID)
	first, last := h.BaseSequence, h.LastSequence()
	switch {
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
	return nil, nil
}

// stage records an accepted batch (with its assigned offsets).
func (pc *producerCheck) stage(h *recordbatch.Header, now int64) {
	if pc.staged == nil {
		pc.staged = make(map[int64]*producerEntry)
	}
	e := pc.entry(h.ProducerID)
	switch {
	case e == nil || h.ProducerEpoch > e.epoch:
		e = &producerEntry{epoch: h.ProducerEpoch}
	case pc.staged[h.ProducerID] != e:
		e = e.clone()
	}
	e.lastAppend = now
	e.add(producerBatch{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), firstOffset: h.BaseOffset, lastOffset: h.LastOffset()})
	pc.staged[h.ProducerID] = e
}

// commit makes the staged changes the state.
func (pc *producerCheck) commit() {
	for pid, e := range pc.staged {
		pc.states.m[pid] = e
	}
}

// replay updates the state from a batch found in the log (recovery), with
// no checks: the log is the truth. Expiry counts from now, not from the
// batch timestamp, which is the producer's clock under CreateTime.
func (ps *producerStates) replay(h *recordbatch.Header, now int64) {
	if h.ProducerID < 0 || h.IsControl() {
		return
	}
	e := ps.m[h.ProducerID]
	if e == nil || h.ProducerEpoch != e.epoch {
		if e != nil && h.ProducerEpoch < e.epoch {
			return
		}
		e = &producerEntry{epoch: h.ProducerEpoch}
		ps.m[h.ProducerID] = e
	}
	e.lastAppend = max(e.lastAppend, now)
	e.add(producerBatch{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), firstOffset: h.BaseOffset, lastOffset: h.LastOffset()})
}

// expire drops producers idle since before cutoff (ms).
func (ps *producerStates) expire(cutoff int64) {
	for pid, e := range ps.m {
		if e.lastAppend < cutoff {
			delete(ps.m, pid)
		}
	}
}

// Snapshot file: "TRPS", version uint16, offset int64 (state covers the log
// below it), count uint32, entries, then CRC-32C of everything before it.
var snapshotMagic = []byte("TRPS")

func (ps *producerStates) encode(offset int64) []byte {
	pids := make([]int64, 0, len(ps.m))
	for pid := range ps.m {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	b := append([]byte(nil), snapshotMagic...)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(pids)))
	for _, pid := range pids {
		e := ps.m[pid]
		b = binary.BigEndian.AppendUint64(b, uint64(pid))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastAppend))
		b = append(b, byte(len(e.batches)))
		for _, x := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(x.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(x.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(x.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(x.lastOffset))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadSnapshot = errors.New("bad producer-state snapshot")

func decodeProducerStates(b []byte) (producerStates, int64, error) {
	ps := newProducerStates()
	if len(b) < 22 || string(b[:4]) != string(snapshotMagic) {
		return ps, 0, errBadSnapshot
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum || binary.BigEndian.Uint16(b[4:]) != 0 {
		return ps, 0, errBadSnapshot
	}
	offset := int64(binary.BigEndian.Uint64(b[6:]))
	n := binary.BigEndian.Uint32(b[14:])
	r := body[18:]
	for range n {
		if len(r) < 19 {
			return ps, 0, errBadSnapshot
		}
		pid := int64(binary.BigEndian.Uint64(r))
		e := &producerEntry{epoch: int16(binary.BigEndian.Uint16(r[8:])), lastAppend: int64(binary.BigEndian.Uint64(r[10:]))}
		nb := int(r[18])
		r = r[19:]
		if nb > maxCachedBatches || len(r) < nb*24 {
			return ps, 0, errBadSnapshot
		}
		for range nb {
			e.batches = append(e.batches, producerBatch{
				firstSeq: int32(binary.BigEndian.Uint32(r)), lastSeq: int32(binary.BigEndian.Uint32(r[4:])),
				firstOffset: int64(binary.BigEndian.Uint64(r[8:])), lastOffset: int64(binary.BigEndian.Uint64(r[16:])),
			})
			r = r[24:]
		}
		ps.m[pid] = e
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
