package recordbatch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// benchBatches is what one produce request's partition carries in the
// load test: batches of 1 KiB records (values half random, half
// repeated, so that codecs shrink them about as they do real payloads),
// n batches of per records each, in codec.
func benchBatches(b *testing.B, codec, n, per int) ([]byte, int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var out []byte
	raw := 0
	for range n {
		var recs []byte
		for i := range per {
			v := make([]byte, 1024)
			for j := range 512 {
				v[j] = byte(rng.IntN(256))
			}
			recs = AppendNewRecord(recs, NewRecord{OffsetDelta: int32(i), Key: fmt.Appendf(nil, "key-%d", i), Value: v})
		}
		raw += len(recs)
		bb, err := Encode(Header{PartitionLeaderEpoch: -1, Attributes: int16(codec), LastOffsetDelta: int32(per - 1),
			BaseTimestamp: 1000, MaxTimestamp: 1000, ProducerID: 1, ProducerEpoch: 0, BaseSequence: 0, RecordCount: int32(per)}, recs)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, bb...)
	}
	return out, raw
}

// BenchmarkRecompress is the cost of re-compressing 1 MiB of records
// (16 batches of 64 1 KiB records) from the producer's codec into the
// topic's; MB/s counts the uncompressed records. "same" is the path of a
// topic whose producers already use its codec: the headers are read,
// nothing is copied.
func BenchmarkRecompress(b *testing.B) {
	names := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, c := range []struct{ from, to int }{
		{CodecSnappy, CodecSnappy}, {CodecSnappy, CodecZstd}, {CodecSnappy, CodecLz4}, {CodecSnappy, CodecGzip},
		{CodecSnappy, CodecNone}, {CodecNone, CodecZstd}, {CodecZstd, CodecSnappy},
	} {
		name := names[c.from] + "-to-" + names[c.to]
		if c.from == c.to {
			name = "same-" + names[c.from]
		}
		b.Run(name, func(b *testing.B) {
			in, raw := benchBatches(b, c.from, 16, 64)
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := Recompress(in, c.to, math.MaxInt32); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecompress is the cost of inflating 1 MiB of records (16
// batches of 64 1 KiB records) in each codec, batch by batch, as the
// leader's re-compression, compaction, a compacted topic's key check and
// the readers of control, group and transaction batches do; MB/s counts
// the uncompressed records.
func BenchmarkDecompress(b *testing.B) {
	names := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, codec := range []int{CodecGzip, CodecSnappy, CodecLz4, CodecZstd} {
		b.Run(names[codec], func(b *testing.B) {
			in, raw := benchBatches(b, codec, 16, 64)
			var batches [][]byte
			for pos := 0; pos < len(in); {
				h, err := ParseHeader(in[pos:])
				if err != nil {
					b.Fatal(err)
				}
				batches = append(batches, in[pos+HeaderSize:pos+h.Size()])
				pos += h.Size()
			}
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for _, c := range batches {
					if _, err := Decompress(codec, c); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
