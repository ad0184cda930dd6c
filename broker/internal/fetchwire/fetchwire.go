// Package fetchwire encodes a Fetch response as pieces for a vectored
// write (writev): the bytes it encodes between the record batches, and the
// record batches themselves where storage read them. A fetch of 50 MiB
// otherwise costs a 50 MiB allocation and a copy per response, a third of
// a broker's CPU time when consuming, and a large share of a leader's when
// its followers fetch. Writer sends the pieces: with one vectored write on
// TCP, in full records without joining them on TLS. Client listeners and
// the replication listener use it alike.
package fetchwire

import (
	"encoding/binary"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Encode frames a Fetch response (size, correlation id, header tags for a
// flexible version, then the body) without copying its record batches.
//
// The encoding is kmsg's (FetchResponse.AppendTo, versions 4 to 16), field
// for field; TestPiecesMatchKmsg holds the two equal. ok is false for a
// response with fields this encoder leaves to kmsg (unknown tags, which
// the brokers never set): the caller encodes it whole.
func Encode(corr int32, resp *kmsg.FetchResponse) (pieces net.Buffers, ok bool) {
	parts, ok := encode(corr, resp, nil)
	if !ok {
		return nil, false
	}
	pieces = make(net.Buffers, len(parts))
	for i := range parts {
		pieces[i] = parts[i].Mem
	}
	return pieces, true
}

// FileRecords are record batches that the kernel sends from a file to the
// socket (sendfile) without their bytes passing through user memory:
// storage.FileSlice.
type FileRecords interface {
	// Len is the size of the batches in bytes.
	Len() int
	// SendTo sends what is left of them to the socket behind c and
	// returns the bytes it sent; an error leaves the response cut short.
	SendTo(c syscall.RawConn) (int64, error)
}

// FileRecordsOf is slices as the FileRecords EncodeFiles takes (pointers
// into slices, which SendTo advances), nil when there are none.
func FileRecordsOf[T any, P interface {
	*T
	FileRecords
}](slices []T) []FileRecords {
	if len(slices) == 0 {
		return nil
	}
	out := make([]FileRecords, len(slices))
	for i := range slices {
		out[i] = P(&slices[i])
	}
	return out
}

// Piece is a part of an encoded response: bytes in memory, or record
// batches in a file (File set, Mem nil).
type Piece struct {
	Mem  []byte
	File FileRecords
}

// EncodeFiles is Encode for a response some of whose partitions' record
// batches are in files: files(t, p) returns those of
// resp.Topics[t].Partitions[p] (nil: its RecordBatches, as Encode), whose
// RecordBatches must then be nil. Writer.WritePieces sends the result on
// plain TCP (Writer.CanSendFiles).
func EncodeFiles(corr int32, resp *kmsg.FetchResponse, files func(t, p int) []FileRecords) (pieces []Piece, ok bool) {
	return encode(corr, resp, files)
}

func encode(corr int32, resp *kmsg.FetchResponse, files func(t, p int) []FileRecords) (pieces []Piece, ok bool) {
	version := resp.Version
	if version < 4 || version > 16 || resp.UnknownTags.Len() > 0 {
		return nil, false
	}
	flexible := version >= 12
	// The frame's size and correlation id, then the header's empty tag
	// section for a flexible response.
	cur := make([]byte, 8, 256)
	binary.BigEndian.PutUint32(cur[4:], uint32(corr))
	if flexible {
		cur = append(cur, 0)
	}
	size := 0
	flush := func(records []byte, inFiles []FileRecords) {
		if len(cur) > 0 {
			pieces = append(pieces, Piece{Mem: cur})
			size += len(cur)
		}
		if len(records) > 0 {
			pieces = append(pieces, Piece{Mem: records})
			size += len(records)
		}
		for _, f := range inFiles {
			if n := f.Len(); n > 0 {
				pieces = append(pieces, Piece{File: f})
				size += n
			}
		}
		cur = make([]byte, 0, 256)
	}
	cur = kbin.AppendInt32(cur, resp.ThrottleMillis)
	if version >= 7 {
		cur = kbin.AppendInt16(cur, resp.ErrorCode)
		cur = kbin.AppendInt32(cur, resp.SessionID)
	}
	cur = appendArrayLen(cur, len(resp.Topics), flexible)
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.UnknownTags.Len() > 0 {
			return nil, false
		}
		if version <= 12 {
			cur = appendString(cur, t.Topic, flexible)
		} else {
			cur = kbin.AppendUuid(cur, t.TopicID)
		}
		cur = appendArrayLen(cur, len(t.Partitions), flexible)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.UnknownTags.Len() > 0 || p.DivergingEpoch.UnknownTags.Len() > 0 ||
				p.CurrentLeader.UnknownTags.Len() > 0 || p.SnapshotID.UnknownTags.Len() > 0 {
				return nil, false
			}
			cur = kbin.AppendInt32(cur, p.Partition)
			cur = kbin.AppendInt16(cur, p.ErrorCode)
			cur = kbin.AppendInt64(cur, p.HighWatermark)
			cur = kbin.AppendInt64(cur, p.LastStableOffset)
			if version >= 5 {
				cur = kbin.AppendInt64(cur, p.LogStartOffset)
			}
			if flexible {
				cur = kbin.AppendCompactNullableArrayLen(cur, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			} else {
				cur = kbin.AppendNullableArrayLen(cur, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			}
			for k := range p.AbortedTransactions {
				a := &p.AbortedTransactions[k]
				if a.UnknownTags.Len() > 0 {
					return nil, false
				}
				cur = kbin.AppendInt64(cur, a.ProducerID)
				cur = kbin.AppendInt64(cur, a.FirstOffset)
				if flexible {
					cur = append(cur, 0)
				}
			}
			if version >= 11 {
				cur = kbin.AppendInt32(cur, p.PreferredReadReplica)
			}
			var inFiles []FileRecords
			if files != nil {
				inFiles = files(i, j)
			}
			n := len(p.RecordBatches)
			for _, f := range inFiles {
				n += f.Len()
			}
			switch {
			case p.RecordBatches == nil && inFiles == nil && flexible:
				cur = append(cur, 0)
			case p.RecordBatches == nil && inFiles == nil:
				cur = kbin.AppendInt32(cur, -1)
			case flexible:
				cur = kbin.AppendUvarint(cur, 1+uint32(n))
			default:
				cur = kbin.AppendInt32(cur, int32(n))
			}
			if n > 0 {
				flush(p.RecordBatches, inFiles)
			}
			if flexible {
				cur = appendPartitionTags(cur, p)
			}
		}
		if flexible {
			cur = append(cur, 0)
		}
	}
	if flexible {
		if len(resp.Brokers) == 0 {
			cur = append(cur, 0)
		} else {
			var body []byte
			body = appendArrayLen(body, len(resp.Brokers), true)
			for k := range resp.Brokers {
				b := &resp.Brokers[k]
				if b.UnknownTags.Len() > 0 {
					return nil, false
				}
				body = kbin.AppendInt32(body, b.NodeID)
				body = appendString(body, b.Host, true)
				body = kbin.AppendInt32(body, b.Port)
				if b.Rack == nil {
					body = append(body, 0)
				} else {
					body = appendString(body, *b.Rack, true)
				}
				body = append(body, 0)
			}
			cur = kbin.AppendUvarint(cur, 1)                 // one tag
			cur = kbin.AppendUvarint(cur, 0)                 // tag 0: NodeEndpoints
			cur = kbin.AppendUvarint(cur, uint32(len(body))) // its size
			cur = append(cur, body...)
		}
	}
	flush(nil, nil)
	binary.BigEndian.PutUint32(pieces[0].Mem[:4], uint32(size-4))
	return pieces, true
}

// appendPartitionTags appends a flexible partition's tagged fields as kmsg
// does: DivergingEpoch (tag 0), CurrentLeader (1) and SnapshotID (2), each
// only when it differs from its default.
func appendPartitionTags(dst []byte, p *kmsg.FetchResponseTopicPartition) []byte {
	diverging := p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1
	leader := p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1
	snapshot := p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1
	n := 0
	for _, set := range []bool{diverging, leader, snapshot} {
		if set {
			n++
		}
	}
	dst = kbin.AppendUvarint(dst, uint32(n))
	if diverging {
		dst = append(dst, 0, 4+8+1) // tag 0, size
		dst = kbin.AppendInt32(dst, p.DivergingEpoch.Epoch)
		dst = kbin.AppendInt64(dst, p.DivergingEpoch.EndOffset)
		dst = append(dst, 0)
	}
	if leader {
		dst = append(dst, 1, 4+4+1)
		dst = kbin.AppendInt32(dst, p.CurrentLeader.LeaderID)
		dst = kbin.AppendInt32(dst, p.CurrentLeader.LeaderEpoch)
		dst = append(dst, 0)
	}
	if snapshot {
		dst = append(dst, 2, 8+4+1)
		dst = kbin.AppendInt64(dst, p.SnapshotID.EndOffset)
		dst = kbin.AppendInt32(dst, p.SnapshotID.Epoch)
		dst = append(dst, 0)
	}
	return dst
}

func appendArrayLen(dst []byte, n int, flexible bool) []byte {
	if flexible {
		return kbin.AppendCompactArrayLen(dst, n)
	}
	return kbin.AppendArrayLen(dst, n)
}

func appendString(dst []byte, s string, flexible bool) []byte {
	if flexible {
		dst = kbin.AppendUvarint(dst, 1+uint32(len(s)))
	} else {
		dst = kbin.AppendInt16(dst, int16(len(s)))
	}
	return append(dst, s...)
}
