package server

// ListOffsets: v1-6
//
// Behaviour:
//   - Timestamp -2 (earliest): the log start offset.
//   - Timestamp -1 (latest): the high watermark for read_uncommitted, the
//     last stable offset for read_committed (v2+ isolation level, KIP-98).
//   - Timestamp >= 0: the first offset whose batch max timestamp is >= it
//     (storage's time index), or offset -1 / timestamp -1 when none or
//     when it lies past the isolation level's limit.
//   - CurrentLeaderEpoch (v4+) is checked as in Fetch (KIP-320).
//   - Needs DESCRIBE on each topic (else TOPIC_AUTHORIZATION_FAILED on its
//     partitions, whether it exists or not).
//   - A partition named more than once in the request answers
//     INVALID_REQUEST at each naming, the first included, as Kafka (its
//     ListOffsetsRequest.duplicatePartitions); authorization comes first.
//   - The returned LeaderEpoch is the current epoch for latest and -1
//     (unknown, so clients skip epoch validation) otherwise.
//   - A topic this broker does not know, or a partition it leads by its
//     metadata but has not taken up yet (the log still opening), is
//     looked for again after catching up (with the active controller's
//     metadata, resp. the replica manager with this broker's), at most
//     500 ms, before UNKNOWN_TOPIC_OR_PARTITION or NOT_LEADER_OR_FOLLOWER:
//     ListOffsets has no wait of its own to bound it, and franz-go answers
//     either refusal by waiting for a metadata refresh (up to its 5 s
//     metadata.min.age), as it does for Produce and Fetch.
//   - Max timestamp (-3, v7, KIP-734) and earliest-local (-4, v8, tiered
//     storage) are not served, so v7+ are not advertised.
//
// Version notes:
//   - v1: single offset + timestamp (v0's multi-offset form removed by KIP-896)
//   - v2: isolation level; v4: leader epochs (KIP-320); v6: flexible.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
)

var listOffsetsAPI = api{key: 2, min: 1, max: 6,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleListOffsets(ctx, s.authFor(c, 2), r.(*kmsg.ListOffsetsRequest)), nil
	}}

const (
	timestampLatest   = -1
	timestampEarliest = -2
)

func (s *Server) handleListOffsets(ctx context.Context, az reqAuth, req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	names := make([]string, len(req.Topics))
	for i, rt := range req.Topics {
		names[i] = rt.Topic
	}
	denied := az.denied(ctx, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, names)
	s.awaitUnknownTopics(ctx, names, denied)
	resp, takingUp := s.listOffsetsOnce(req, denied)
	if takingUp {
		s.awaitLeadershipsUntil(ctx, time.Now().Add(s.unknownTopicBound()))
		resp, _ = s.listOffsetsOnce(req, denied)
	}
	return resp
}

// listOffsetsOnce answers req from what this broker has now; takingUp is
// true when some partition answered NOT_LEADER_OR_FOLLOWER although this
// broker's metadata makes it the leader (awaitLeadershipsUntil).
func (s *Server) listOffsetsOnce(req *kmsg.ListOffsetsRequest, denied map[string]bool) (resp *kmsg.ListOffsetsResponse, takingUp bool) {
	resp = req.ResponseKind().(*kmsg.ListOffsetsResponse)
	dups := duplicateListOffsetsPartitions(req)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t, topicOK := s.lookupTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			if denied[rt.Topic] {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if dups[topicPartition{rt.Topic, rp.Partition}] {
				// Which of the namings would be the answer is not
				// defined, and each costs a log lookup: none is.
				sp.ErrorCode = kerr.InvalidRequest.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			var p *partition
			ok := topicOK
			if ok {
				p, ok = t.partition(rp.Partition)
			}
			if !ok {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			log, epoch, code := s.servingLog(p, rp.CurrentLeaderEpoch, req.Version >= 4)
			if code != 0 {
				takingUp = takingUp || code == kerr.NotLeaderForPartition.Code && p.leader == s.nodeID
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			isolation := storage.ReadUncommitted
			if req.Version >= 2 && req.IsolationLevel == 1 {
				isolation = storage.ReadCommitted
			}
			switch ts := rp.Timestamp; {
			case ts == timestampEarliest:
				sp.Offset = log.LogStartOffset()
			case ts == timestampLatest:
				sp.Offset, _, _ = log.ListOffset(timestampLatest, isolation)
				sp.LeaderEpoch = epoch
			case ts >= 0:
				// A match past the isolation level's limit is not
				// visible yet: (-1, -1).
				off, found, err := log.ListOffset(ts, isolation)
				if err != nil {
					sp.ErrorCode = storageErrorCode(err)
					s.log.Error("offset lookup by time failed", "topic", p.topic, "partition", p.index, "err", err)
					break
				}
				if off >= 0 {
					sp.Offset, sp.Timestamp = off, found
				}
			default:
				sp.ErrorCode = kerr.UnsupportedVersion.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, takingUp
}

type topicPartition struct {
	topic string
	index int32
}

// duplicateListOffsetsPartitions returns the partitions req names more
// than once, across all its topic entries (a topic may be listed twice).
func duplicateListOffsetsPartitions(req *kmsg.ListOffsetsRequest) map[topicPartition]bool {
	var seen, dups map[topicPartition]bool
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := topicPartition{rt.Topic, rp.Partition}
			if seen[k] {
				if dups == nil {
					dups = map[topicPartition]bool{}
				}
				dups[k] = true
				continue
			}
			if seen == nil {
				seen = map[topicPartition]bool{}
			}
			seen[k] = true
		}
	}
	return dups
}
