package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// batchSpec describes a test batch.
type batchSpec struct {
	records       int
	valueSize     int
	keys          []string // per record; nil: "k<i>"; use keyNull for a null key
	tombstones    map[int]bool
	values        [][]byte // per record; overrides valueSize
	timestamp     int64    // first record timestamp (ms)
	codec         int
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	transactional bool
}

const keyNull = "\x00null"

// makeBatch encodes a RecordBatch v2 the way a producer would (offsets 0).
func makeBatch(t testing.TB, spec batchSpec) []byte {
	t.Helper()
	if spec.records == 0 {
		spec.records = 1
	}
	if spec.timestamp == 0 {
		spec.timestamp = 1_700_000_000_000
	}
	if spec.producerID == 0 {
		spec.producerID = -1
		spec.producerEpoch = -1
		spec.baseSequence = -1
	}
	var recs []byte
	for i := 0; i < spec.records; i++ {
		key := []byte(fmt.Sprintf("k%d", i))
		if spec.keys != nil {
			key = []byte(spec.keys[i])
			if spec.keys[i] == keyNull {
				key = nil
			}
		}
		value := make([]byte, spec.valueSize)
		for j := range value {
			value[j] = byte('a' + (i+j)%26)
		}
		if spec.values != nil {
			value = spec.values[i]
		}
		if spec.tombstones[i] {
			value = nil
		}
		recs = recordbatch.AppendNewRecord(recs, recordbatch.NewRecord{
			OffsetDelta: int32(i), TimestampDelta: int64(i), Key: key, Value: value,
		})
	}
	attrs := int16(spec.codec)
	if spec.transactional {
		attrs |= recordbatch.TransactionalBit
	}
	b, err := recordbatch.Encode(recordbatch.Header{
		PartitionLeaderEpoch: -1,
		Attributes:           attrs,
		LastOffsetDelta:      int32(spec.records - 1),
		BaseTimestamp:        spec.timestamp,
		MaxTimestamp:         spec.timestamp + int64(spec.records-1),
		ProducerID:           spec.producerID,
		ProducerEpoch:        spec.producerEpoch,
		BaseSequence:         spec.baseSequence,
		RecordCount:          int32(spec.records),
	}, recs)
	if err != nil {
		t.Fatalf("encoding test batch: %v", err)
	}
	return b
}

// fakeClock is a settable clock for retention and roll tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore opens a store in dir with test-friendly options and closes it
// at cleanup unless the test closed it.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.SyncMethod == "" {
		// Tests replace syncData, the per-file fsync, to count or fail
		// fsyncs; auto would syncfs instead where dir is not on the root
		// file system (/dev/shm, a tmpfs /tmp). syncfs_test.go tests that.
		opts.SyncMethod = SyncFdatasync
	}
	st, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func mustCreate(t testing.TB, st *Store, topic string, partition int32, cfg TopicConfig) *Partition {
	t.Helper()
	p, err := st.CreatePartition(topic, partition, cfg)
	if err != nil {
		t.Fatalf("CreatePartition(%s, %d): %v", topic, partition, err)
	}
	return p
}

func mustAppend(t testing.TB, p *Partition, batch []byte) AppendResult {
	t.Helper()
	res, err := p.Append(context.Background(), batch, AppendOptions{})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return res
}

// readAll reads every batch header in [from, upTo) and returns them.
func readAll(t testing.TB, p *Partition, from, upTo int64) []recordbatch.Header {
	t.Helper()
	var out []recordbatch.Header
	for from < upTo {
		b, err := p.Read(from, 1<<20, upTo)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			h, err := recordbatch.ParseHeader(b)
			if err != nil {
				t.Fatalf("Read returned a bad batch: %v", err)
			}
			if err := recordbatch.Check(&h, b[:h.Size()]); err != nil {
				t.Fatalf("Read returned a batch failing its check: %v", err)
			}
			out = append(out, h)
			from = h.LastOffset() + 1
			b = b[h.Size():]
		}
	}
	return out
}

// memTempDir returns a fresh directory on a RAM file system (/dev/shm) when
// there is one, else t.TempDir(). fsync costs nothing there, which keeps
// the tests that open stores hundreds of times (every-byte cuts, fuzzing)
// fast; their subject is the recovery logic, not the disk.
func memTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "tributary-storage-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
