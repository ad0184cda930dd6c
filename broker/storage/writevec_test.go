package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestWriteVec checks that batches in several buffers are appended as one
// append of their concatenation: consecutive offsets, the bytes read back
// as written, an index over the whole, and a buffer that fails its checks
// refuses the whole append with nothing written. More buffers than one
// pwritev takes (IOV_MAX) are written in several.
func TestWriteVec(t *testing.T) {
	tests := []struct {
		name    string
		buffers int
		batches int // per buffer
		records int // per batch
	}{
		{name: "one buffer", buffers: 1, batches: 3, records: 2},
		{name: "pipelined requests", buffers: 5, batches: 2, records: 3},
		{name: "more buffers than IOV_MAX", buffers: maxIovecs + 300, batches: 1, records: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, t.TempDir(), Options{})
			p := mustCreate(t, st, "t", 0, TopicConfig{IndexIntervalBytes: 256})
			mustAppend(t, p, makeBatch(t, batchSpec{records: 4, valueSize: 10}))
			var bufs [][]byte
			var want []byte
			for i := range tt.buffers {
				var b []byte
				for range tt.batches {
					b = append(b, makeBatch(t, batchSpec{records: tt.records, valueSize: 20 + i%7})...)
				}
				bufs = append(bufs, b)
			}
			res, wait, err := p.WriteVec(bufs, AppendOptions{LeaderEpoch: 3})
			if err != nil {
				t.Fatalf("WriteVec: %v", err)
			}
			if err := wait(context.Background()); err != nil {
				t.Fatalf("waiting for durability: %v", err)
			}
			for _, b := range bufs {
				want = append(want, b...) // as stamped in place
			}
			records := int64(tt.buffers * tt.batches * tt.records)
			if res.BaseOffset != 4 || res.LastOffset != 4+records-1 {
				t.Fatalf("offsets %d-%d, want 4-%d", res.BaseOffset, res.LastOffset, 4+records-1)
			}
			got, err := p.Read(4, int32(len(want)+1), p.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read back %d bytes unlike the %d written", len(got), len(want))
			}
			next := int64(4)
			for _, h := range readAll(t, p, 4, p.LogEndOffset()) {
				if h.BaseOffset != next || h.PartitionLeaderEpoch != 3 {
					t.Fatalf("batch at offset %d epoch %d, want offset %d epoch 3", h.BaseOffset, h.PartitionLeaderEpoch, next)
				}
				next = h.LastOffset() + 1
			}
			if next != p.LogEndOffset() {
				t.Fatalf("batches end at %d, log at %d", next, p.LogEndOffset())
			}
			// The index points into the buffers' joint positions: a read
			// from the middle finds its batch.
			mid := 4 + records/2
			b, err := p.Read(mid, 1, p.LogEndOffset())
			if err != nil || len(b) == 0 {
				t.Fatalf("Read(%d) = %d bytes, %v", mid, len(b), err)
			}

			// A corrupt buffer among good ones: nothing is written.
			leo := p.LogEndOffset()
			bad := makeBatch(t, batchSpec{records: 1})
			bad[len(bad)-1] ^= 0xff
			_, _, err = p.WriteVec([][]byte{makeBatch(t, batchSpec{records: 1}), bad}, AppendOptions{LeaderEpoch: 3})
			if !errors.Is(err, ErrCorruptMessage) {
				t.Fatalf("WriteVec with a corrupt buffer: %v, want ErrCorruptMessage", err)
			}
			if p.LogEndOffset() != leo {
				t.Fatalf("log end moved from %d to %d on a refused append", leo, p.LogEndOffset())
			}
		})
	}
}

// TestWriteVecChecksWithoutThePartitionLock: WriteVec reads the topic's
// settings and checks the batches before it takes the partition's lock, so
// a produce refused by max.message.bytes is answered while another append
// holds the lock through its write, and a SetConfig applies to the next
// WriteVec. Reading the settings under the lock queued every produce
// behind the append in progress.
func TestWriteVecChecksWithoutThePartitionLock(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{MaxMessageBytes: 200})
	big := makeBatch(t, batchSpec{records: 2, valueSize: 300})

	p.mu.Lock() // an append writing
	done := make(chan error, 1)
	go func() {
		_, _, err := p.WriteVec([][]byte{big}, AppendOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrRecordTooLarge) {
			t.Errorf("WriteVec of a %d-byte batch, max.message.bytes 200: err %v, want ErrRecordTooLarge", len(big), err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("WriteVec waited for the partition's lock to check max.message.bytes")
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	p.mu.Unlock()

	if got := p.Config().MaxMessageBytes; got != 200 {
		t.Fatalf("Config().MaxMessageBytes = %d, want 200", got)
	}
	cfg := p.Config()
	cfg.MaxMessageBytes = 1 << 20
	p.SetConfig(cfg)
	if got := p.Config().MaxMessageBytes; got != 1<<20 {
		t.Fatalf("after SetConfig, Config().MaxMessageBytes = %d, want %d", got, 1<<20)
	}
	_, wait, err := p.WriteVec([][]byte{big}, AppendOptions{})
	if err != nil {
		t.Fatalf("WriteVec after raising max.message.bytes: %v", err)
	}
	if err := wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
