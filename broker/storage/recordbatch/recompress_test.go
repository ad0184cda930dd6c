package recordbatch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
)

// producerBatch is a batch as an idempotent, transactional producer sends
// it: every header field a rewrite must keep is set to a value of its own.
func producerBatch(t *testing.T, codec, n int) []byte {
	t.Helper()
	b, err := Encode(Header{
		PartitionLeaderEpoch: -1, Attributes: int16(codec) | TransactionalBit, LastOffsetDelta: int32(n - 1),
		BaseTimestamp: 1000, MaxTimestamp: 1000 + int64(10*(n-1)),
		ProducerID: 4321, ProducerEpoch: 7, BaseSequence: 99, RecordCount: int32(n),
	}, records(n, true))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecompressEveryCodecPair(t *testing.T) {
	for from := CodecNone; from <= CodecZstd; from++ {
		for to := CodecNone; to <= CodecZstd; to++ {
			t.Run(fmt.Sprintf("%d-to-%d", from, to), func(t *testing.T) {
				in := append(producerBatch(t, from, 20), producerBatch(t, from, 3)...)
				orig := bytes.Clone(in)
				out, err := Recompress(in, to, math.MaxInt32)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(in, orig) {
					t.Fatal("Recompress modified its input")
				}
				if from == to && &out[0] != &in[0] {
					t.Fatal("a batch already in the codec was copied instead of kept")
				}
				inBatches, outBatches := splitBatches(t, orig), splitBatches(t, out)
				if len(outBatches) != len(inBatches) {
					t.Fatalf("%d batches in, %d out", len(inBatches), len(outBatches))
				}
				for i, ob := range outBatches {
					ih, _ := ParseHeader(inBatches[i])
					oh, err := ParseHeader(ob)
					if err != nil {
						t.Fatal(err)
					}
					if err := Check(&oh, ob); err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
					if err := ValidateProduced(&oh, ob); err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
					if oh.Codec() != to {
						t.Fatalf("batch %d has codec %d, want %d", i, oh.Codec(), to)
					}
					want := ih
					want.Attributes = ih.Attributes&^CompressionMask | int16(to)
					want.BatchLength, want.CRC = oh.BatchLength, oh.CRC
					if oh != want {
						t.Fatalf("batch %d header\n got %+v\nwant %+v", i, oh, want)
					}
					inRecs, _ := Decompress(from, inBatches[i][HeaderSize:])
					outRecs, err := Decompress(to, ob[HeaderSize:])
					if err != nil || !bytes.Equal(inRecs, outRecs) {
						t.Fatalf("batch %d records differ after rewrite (%v)", i, err)
					}
				}
			})
		}
	}
}

func splitBatches(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b[:h.Size()])
		b = b[h.Size():]
	}
	return out
}

func TestRecompressProducerKeepsEveryCodec(t *testing.T) {
	in := append(batch(t, CodecSnappy, 2), batch(t, CodecGzip, 2)...)
	out, err := Recompress(in, CodecProducer, math.MaxInt32)
	if err != nil || &out[0] != &in[0] || len(out) != len(in) {
		t.Fatalf("producer rewrote the batches (err %v)", err)
	}
}

func TestRecompressKeepsControlBatches(t *testing.T) {
	marker, err := EncodeEndTxnMarker(5, 1, EndTxnMarker{Commit: true}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Recompress(marker, CodecZstd, math.MaxInt32)
	if err != nil || !bytes.Equal(out, marker) {
		t.Fatalf("a control batch was rewritten (err %v)", err)
	}
}

func TestRecompressLeavesBadBatchesToStorage(t *testing.T) {
	crc := batch(t, CodecSnappy, 3)
	crc[len(crc)-1] ^= 0xff // the CRC no longer matches
	short := batch(t, CodecSnappy, 3)[:40]
	for name, in := range map[string][]byte{"crc": crc, "truncated": short} {
		out, err := Recompress(in, CodecZstd, math.MaxInt32)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%s: got %d bytes, err %v; want the input back for storage to refuse", name, len(out), err)
		}
	}
}

func TestRecompressRefusesRecordsThatDoNotInflate(t *testing.T) {
	b, err := Encode(Header{LastOffsetDelta: 0, RecordCount: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, records(1, false))
	if err != nil {
		t.Fatal(err)
	}
	// A gzip attribute over records that are not gzip, with a valid CRC.
	b[offAttributes+1] |= CodecGzip
	b[offCRC], b[offCRC+1], b[offCRC+2], b[offCRC+3] = 0, 0, 0, 0
	crc := ComputeCRC(b)
	b[offCRC], b[offCRC+1], b[offCRC+2], b[offCRC+3] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	if _, err := Recompress(b, CodecZstd, math.MaxInt32); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	// Records that inflate but are fewer than the header says.
	c, err := Encode(Header{Attributes: CodecLz4, LastOffsetDelta: 1, RecordCount: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, records(1, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Recompress(c, CodecZstd, math.MaxInt32); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

func TestCodecForCompressionType(t *testing.T) {
	for name, want := range map[string]int{"producer": CodecProducer, "uncompressed": CodecNone, "gzip": CodecGzip, "snappy": CodecSnappy, "lz4": CodecLz4, "zstd": CodecZstd} {
		if got, err := CodecForCompressionType(name); err != nil || got != want {
			t.Fatalf("%s: %d, %v", name, got, err)
		}
	}
	if _, err := CodecForCompressionType("brotli"); err == nil {
		t.Fatal("brotli accepted")
	}
}
