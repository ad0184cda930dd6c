package server

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/internal/testenv"
)

// filledBatch is a batch of n records of size bytes, every value byte
// fill, without a producer id (the same bytes may be sent again).
func filledBatch(n, size int, fill byte) []byte {
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.FirstTimestamp = time.Now().UnixMilli()
	b.MaxTimestamp = b.FirstTimestamp
	b.LastOffsetDelta = int32(n - 1)
	b.NumRecords = int32(n)
	for i := range n {
		r := kmsg.NewRecord()
		r.OffsetDelta = int32(i)
		r.Value = bytes.Repeat([]byte{fill}, size)
		b.Records = appendRecord(b.Records, r)
	}
	b.Length = int32(len(b.AppendTo(nil)) - 12)
	raw := b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// Produce requests pipelined on one connection are read into pooled
// frames, each given back once its records are appended: the records
// stored are still each request's own, byte for byte, when the next
// requests are read into the same memory.
func TestPooledProduceFramesKeepTheirRecords(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("frames", 1, nil); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	const n = 24
	var corrs []int32
	for i := range n {
		corrs = append(corrs, c.send(produceReq("frames", -1, filledBatch(16, 1000, byte(i+1)))))
	}
	for i, corr := range corrs {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		c.recv(resp, corr)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(16*i) {
			t.Fatalf("request %d: error %v, offset %d", i, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}
	fr := roundTrip[*kmsg.FetchResponse](t, s, fetchReq("frames", 0, 64<<20, 64<<20))
	data := fr.Topics[0].Partitions[0].RecordBatches
	for i := range n {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(data); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		size := int(rb.Length) + 12
		data = data[size:]
		if rb.FirstOffset != int64(16*i) || rb.NumRecords != 16 {
			t.Fatalf("batch %d: first offset %d, %d records", i, rb.FirstOffset, rb.NumRecords)
		}
		want := bytes.Repeat([]byte{byte(i + 1)}, 1000)
		recs := rb.Records
		for k := range 16 {
			var r kmsg.Record
			if err := r.ReadFrom(recs); err != nil {
				t.Fatalf("batch %d record %d: %v", i, k, err)
			}
			if !bytes.Equal(r.Value, want) {
				t.Fatalf("batch %d record %d holds other bytes than request %d sent (first byte %d)", i, k, i, r.Value[0])
			}
			recs = recs[r.Length+int32(varintLen(r.Length)):]
		}
	}
	if len(data) != 0 {
		t.Fatalf("%d bytes after the last batch", len(data))
	}
}

// The frames of Produce requests are memory used again, not an
// allocation per request: 48 requests of 256 KiB, one after another,
// allocate far less than the 12 MiB their frames add up to.
func TestProduceFramesAreReused(t *testing.T) {
	if testenv.RaceEnabled {
		t.Skip("under the race detector sync.Pool drops reused frames at random: the allocation count says nothing")
	}
	s := startServer(t)
	if _, err := s.createTopic("reuse", 1, nil); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	// One encoded request, sent again with a new correlation id each
	// time, so that the client side allocates nothing per request.
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, produceReq("reuse", -1, filledBatch(256, 1000, 7)), 0)
	const n = 48
	send := func(corr int32) {
		binary.BigEndian.PutUint32(frame[8:], uint32(corr))
		c.write(frame)
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		c.recv(resp, corr)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("request %d: %v", corr, kerr.ErrorForCode(code))
		}
	}
	send(1) // the first takes its block from an empty pool
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		send(int32(i + 2))
	}
	runtime.ReadMemStats(&after)
	frames := uint64(n * len(frame))
	if got := after.TotalAlloc - before.TotalAlloc; got > frames/3 {
		t.Fatalf("%d requests of %d bytes allocated %d bytes, want well under the %d of their frames", n, len(frame), got, frames)
	}
}

func varintLen(v int32) int {
	return len(binary.AppendVarint(nil, int64(v)))
}
