package fetchwire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The pieces of Encode, put together, are the bytes kmsg
// encodes, for every served version and every kind of partition: records
// or none (nil and empty), errors, aborted transactions, diverging epochs,
// current leaders, snapshot ids, node endpoints.
func TestPiecesMatchKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for version := int16(4); version <= 16; version++ {
		for round := range 50 {
			resp := randomFetchResponse(rng, version)
			want := kmsgFrame(int32(round), resp)
			pieces, ok := Encode(int32(round), resp)
			if !ok {
				t.Fatalf("v%d: refused a response without unknown tags", version)
			}
			got := bytes.Join(pieces, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d round %d: pieces differ from kmsg's encoding\ngot  %x\nwant %x", version, round, got, want)
			}
			for _, p := range pieces[1:] {
				if len(p) == 0 {
					t.Fatalf("v%d: an empty piece", version)
				}
			}
			if n := binary.BigEndian.Uint32(got); int(n) != len(got)-4 {
				t.Fatalf("v%d: frame size %d, frame is %d", version, n, len(got)-4)
			}
		}
	}
	// What it leaves to kmsg.
	resp := randomFetchResponse(rng, 12)
	resp.Topics[0].Partitions[0].UnknownTags.Set(9, []byte{1})
	if _, ok := Encode(1, resp); ok {
		t.Fatal("encoded a response with unknown tags")
	}
}

func randomFetchResponse(rng *rand.Rand, version int16) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = version
	resp.ThrottleMillis = rng.Int32N(100)
	resp.ErrorCode = int16(rng.IntN(3))
	resp.SessionID = rng.Int32()
	for ti := range rng.IntN(4) {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = string(rune('a'+ti)) + "-topic"
		rt.TopicID[0], rt.TopicID[15] = byte(ti), 7
		for pi := range rng.IntN(5) {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = int32(pi)
			rp.ErrorCode = int16(rng.IntN(2) * 6)
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = rng.Int64N(1<<40), rng.Int64N(1<<40), rng.Int64N(1<<20)
			switch rng.IntN(3) {
			case 0:
				rp.RecordBatches = nil
			case 1:
				rp.RecordBatches = []byte{}
			default:
				rp.RecordBatches = make([]byte, 1+rng.IntN(300))
				for i := range rp.RecordBatches {
					rp.RecordBatches[i] = byte(rng.IntN(256))
				}
			}
			if rng.IntN(3) == 0 {
				for range rng.IntN(3) {
					a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
					a.ProducerID, a.FirstOffset = rng.Int64(), rng.Int64()
					rp.AbortedTransactions = append(rp.AbortedTransactions, a)
				}
				if rp.AbortedTransactions == nil {
					rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				}
			}
			if rng.IntN(2) == 0 {
				rp.PreferredReadReplica = rng.Int32N(5)
			}
			if rng.IntN(3) == 0 {
				rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = rng.Int32N(9), rng.Int64N(1000)
			}
			if rng.IntN(3) == 0 {
				rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = rng.Int32N(4), rng.Int32N(9)
			}
			if rng.IntN(4) == 0 {
				rp.SnapshotID.EndOffset, rp.SnapshotID.Epoch = rng.Int64N(1000), rng.Int32N(9)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if rng.IntN(2) == 0 {
		for i := range rng.IntN(3) {
			b := kmsg.NewFetchResponseBroker()
			b.NodeID, b.Host, b.Port = int32(i), "127.0.0.1", 9092
			if i%2 == 0 {
				rack := "az-" + string(rune('a'+i))
				b.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, b)
		}
	}
	return resp
}

// kmsgFrame is a response framed with kmsg's encoding: size, correlation
// id, the empty header tag section of a flexible response, the body.
func kmsgFrame(corr int32, resp *kmsg.FetchResponse) []byte {
	buf := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(corr))
	if resp.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}
