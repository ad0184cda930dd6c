package replica

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// memLog is an in-memory Log with the storage engine's batch semantics,
// used as both the leader's and the follower's log in tests.
type memLog struct {
	mu      sync.Mutex
	batches []memBatch
	start   int64
	hw      int64
}

type memBatch struct {
	base, last int64
	epoch      int32
	data       []byte
}

func (l *memLog) LogStartOffset() int64 { l.mu.Lock(); defer l.mu.Unlock(); return l.start }
func (l *memLog) LogEndOffset() int64   { l.mu.Lock(); defer l.mu.Unlock(); return l.leoLocked() }
func (l *memLog) HighWatermark() int64  { l.mu.Lock(); defer l.mu.Unlock(); return l.hw }
func (l *memLog) SetHighWatermark(hw int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hw = min(hw, l.leoLocked())
}

func (l *memLog) leoLocked() int64 {
	if len(l.batches) == 0 {
		return l.start
	}
	return l.batches[len(l.batches)-1].last + 1
}

func (l *memLog) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.batches) == 0 {
		return -1
	}
	return l.batches[len(l.batches)-1].epoch
}

func (l *memLog) FetchState() (int64, int32, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	epoch := int32(-1)
	if len(l.batches) > 0 {
		epoch = l.batches[len(l.batches)-1].epoch
	}
	return l.leoLocked(), epoch, l.start
}

func (l *memLog) EndOffsetForLeaderEpoch(epoch int32) (int32, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	found := int32(-1)
	for _, b := range l.batches {
		if b.epoch <= epoch {
			found = b.epoch
		}
	}
	if found < 0 {
		return -1, -1
	}
	for _, b := range l.batches {
		if b.epoch > found {
			return found, b.base
		}
	}
	return found, l.leoLocked()
}

func (l *memLog) TruncateTo(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.batches) > 0 && l.batches[len(l.batches)-1].last >= off {
		l.batches = l.batches[:len(l.batches)-1]
	}
	l.hw = min(l.hw, l.leoLocked())
	return nil
}

func (l *memLog) TruncateFullyAndStartAt(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.batches, l.start, l.hw = nil, off, off
	return nil
}

func (l *memLog) DeleteRecordsBefore(off int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if off > l.hw {
		return -1, fmt.Errorf("delete before %d past the high watermark %d", off, l.hw)
	}
	l.start = max(l.start, off)
	for len(l.batches) > 0 && l.batches[0].last < l.start {
		l.batches = l.batches[1:]
	}
	return l.start, nil
}

func (l *memLog) AppendAsFollower(_ context.Context, b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(b) > 0 {
		h, err := recordbatch.ParseHeader(b)
		if err != nil {
			return err
		}
		if h.Size() > len(b) {
			return fmt.Errorf("partial batch")
		}
		if err := recordbatch.Check(&h, b[:h.Size()]); err != nil {
			return err
		}
		if h.BaseOffset < l.leoLocked() {
			return fmt.Errorf("batch at %d below log end %d", h.BaseOffset, l.leoLocked())
		}
		l.batches = append(l.batches, memBatch{base: h.BaseOffset, last: h.LastOffset(), epoch: h.PartitionLeaderEpoch, data: append([]byte(nil), b[:h.Size()]...)})
		b = b[h.Size():]
	}
	return nil
}

// appendLeader writes a batch of n records as a leader at epoch would.
func (l *memLog) appendLeader(t *testing.T, epoch int32, n int, tag string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	base := l.leoLocked()
	var recs []byte
	for i := range n {
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{OffsetDelta: int32(i), Value: fmt.Appendf(nil, "%s-%d", tag, int(base)+i)})
	}
	h := recordbatch.Header{BaseOffset: base, PartitionLeaderEpoch: epoch, LastOffsetDelta: int32(n - 1), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(n)}
	data, err := recordbatch.Encode(h, recs)
	if err != nil {
		t.Fatal(err)
	}
	l.batches = append(l.batches, memBatch{base: base, last: base + int64(n) - 1, epoch: epoch, data: data})
}

// Read returns whole batches from the one holding offset, below upTo, at
// least one, as storage.Partition.Read.
func (l *memLog) Read(offset int64, maxBytes int32, upTo int64) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset < l.start || offset > l.leoLocked() {
		return nil, storage.ErrOffsetOutOfRange
	}
	var out []byte
	for _, b := range l.batches {
		if b.last < offset || b.base >= upTo {
			continue
		}
		if len(out) > 0 && len(out)+len(b.data) > int(maxBytes) {
			break
		}
		out = append(out, b.data...)
	}
	return out, nil
}

// contents is the log as comparable text.
func (l *memLog) contents() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("start=%d", l.start)
	for _, b := range l.batches {
		s += fmt.Sprintf(" [%d-%d e%d %x]", b.base, b.last, b.epoch, b.data[recordbatch.HeaderSize:])
	}
	return s
}
