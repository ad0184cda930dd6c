package server

import (
	"bytes"
	"hash/crc32"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

// zstdWindowBatch is a batch of one keyed record of 1 MiB of zeros whose
// zstd frame declares a window of window bytes (what levels 20-22 and
// --long write).
func zstdWindowBatch(t *testing.T, window int) []byte {
	t.Helper()
	r := kmsg.NewRecord()
	r.Key, r.Value = []byte("k"), make([]byte, 1<<20)
	recs := appendRecord(nil, r)
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.Attributes = 4 // zstd
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.FirstTimestamp = time.Now().UnixMilli()
	b.MaxTimestamp = b.FirstTimestamp
	b.NumRecords = 1
	b.Records = buf.Bytes()
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// TestZstdMaxWindowOnProduce: a Produce of a zstd batch whose frame asks
// for a 16 MiB window, which Kafka accepts, to a compacted topic (whose
// keys the broker reads through the streaming decoder) is refused with
// CORRUPT_MESSAGE at the default tributary.zstd.max.window.bytes (8 MiB),
// and appended by a broker started with the setting at 16 MiB.
func TestZstdMaxWindowOnProduce(t *testing.T) {
	const window = 16 << 20
	produce := func(s *Server) int16 {
		t.Helper()
		if _, err := s.createTopic("z", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
			t.Fatal(err)
		}
		req := produceReq("z", 1, zstdWindowBatch(t, window))
		resp := exchange(t, s, req)
		return errorCodes(resp)[0]
	}
	if code := produce(startServer(t)); code != kerr.CorruptMessage.Code {
		t.Fatalf("default bound: %v, want CORRUPT_MESSAGE", kerr.ErrorForCode(code))
	}
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("tributary.zstd.max.window.bytes", strconv.Itoa(window)); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { _ = recordbatch.SetZstdMaxWindow(recordbatch.DefaultZstdMaxWindow) })
	if code := produce(s); code != 0 {
		t.Fatalf("bound %d: %v, want no error", window, kerr.ErrorForCode(code))
	}
	lo := exchange(t, s, listOffsetsReq("z", 0, timestampLatest)).(*kmsg.ListOffsetsResponse)
	if p := lo.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != 1 {
		t.Fatalf("latest offset %d (%v) after the append, want 1", p.Offset, kerr.ErrorForCode(p.ErrorCode))
	}
}

// TestZstdMaxWindowSettingBounds: the setting refuses what zstd's
// reference decoder would (over 128 MiB) and windows under zstd's 1 KiB.
func TestZstdMaxWindowSettingBounds(t *testing.T) {
	c := config.Default()
	for _, v := range []string{"1023", "134217729", "x"} {
		if err := c.Set("tributary.zstd.max.window.bytes", v); err == nil {
			t.Errorf("%s accepted", v)
		}
	}
	for _, v := range []string{"1024", "134217728"} {
		if err := c.Set("tributary.zstd.max.window.bytes", v); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// TestZstdMaxWindowIsDynamic: IncrementalAlterConfigs of
// tributary.zstd.max.window.bytes on the broker resource applies to the
// next Produce, up and back down (the pooled decoders made under the
// larger bound are not reused).
func TestZstdMaxWindowIsDynamic(t *testing.T) {
	const window = 16 << 20
	t.Cleanup(func() { _ = recordbatch.SetZstdMaxWindow(recordbatch.DefaultZstdMaxWindow) })
	s := startServer(t)
	if _, err := s.createTopic("z", 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	produce := func() int16 {
		t.Helper()
		req := produceReq("z", 1, zstdWindowBatch(t, window))
		resp := req.ResponseKind()
		c.recv(resp, c.send(req))
		return errorCodes(resp)[0]
	}
	for _, step := range []struct {
		value string
		want  int16
	}{{"", kerr.CorruptMessage.Code}, {strconv.Itoa(window), 0}, {strconv.Itoa(recordbatch.DefaultZstdMaxWindow), kerr.CorruptMessage.Code}} {
		if step.value != "" {
			alterBrokerConfig(t, c, "tributary.zstd.max.window.bytes", step.value)
		}
		if code := produce(); code != step.want {
			t.Fatalf("bound %q: %v, want %v", step.value, kerr.ErrorForCode(code), kerr.ErrorForCode(step.want))
		}
	}
}
