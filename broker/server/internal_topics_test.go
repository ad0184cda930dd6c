package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeleteRecordsRefusesInternalTopics: DeleteRecords on
// __consumer_offsets answers INVALID_TOPIC_EXCEPTION on every partition
// and leaves the log start where it was, even for a principal allowed
// everything (allow.everyone.if.no.acl.found on a plaintext broker), as
// Kafka refuses it: the committed offsets of every group are in there.
func TestDeleteRecordsRefusesInternalTopics(t *testing.T) {
	s := startServer(t)
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"g"}
	exchange(t, s, find) // creates the offsets topic
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 8, "g", -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}}}
	if _, err := s.createTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c := errorCodes(exchange(t, s, commit))
		if c[0] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committing an offset: %v", kerr.ErrorForCode(c[0]))
		}
		time.Sleep(50 * time.Millisecond)
	}
	offsets, ok := s.lookupTopic(offsetsTopic)
	if !ok {
		t.Fatalf("%s was not created", offsetsTopic)
	}
	n := int32(len(offsets.partitions))
	del := kmsg.NewPtrDeleteRecordsRequest()
	del.Version = 2
	dt := kmsg.DeleteRecordsRequestTopic{Topic: offsetsTopic}
	for p := range n {
		dt.Partitions = append(dt.Partitions, kmsg.DeleteRecordsRequestTopicPartition{Partition: p, Offset: -1})
	}
	del.Topics = []kmsg.DeleteRecordsRequestTopic{dt}
	resp := exchange(t, s, del).(*kmsg.DeleteRecordsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != int(n) {
		t.Fatalf("response %+v, want %d partitions of %s", resp.Topics, n, offsetsTopic)
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != kerr.InvalidTopicException.Code {
			t.Errorf("DeleteRecords on %s[%d]: %v (low watermark %d), want INVALID_TOPIC_EXCEPTION", offsetsTopic, p.Partition, kerr.ErrorForCode(p.ErrorCode), p.LowWatermark)
		}
	}
	list := kmsg.NewPtrListOffsetsRequest()
	list.Version = 4
	lt := kmsg.ListOffsetsRequestTopic{Topic: offsetsTopic}
	for p := range n {
		lt.Partitions = append(lt.Partitions, kmsg.ListOffsetsRequestTopicPartition{Partition: p, Timestamp: -2, CurrentLeaderEpoch: -1})
	}
	list.Topics = []kmsg.ListOffsetsRequestTopic{lt}
	for _, p := range exchange(t, s, list).(*kmsg.ListOffsetsResponse).Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Offset != 0 {
			t.Errorf("%s[%d] log start %d (%v), want 0", offsetsTopic, p.Partition, p.Offset, kerr.ErrorForCode(p.ErrorCode))
		}
	}
}

// TestCreatePartitionsRefusesInternalTopics: __transaction_state keeps its
// partition count (INVALID_REQUEST), whatever the ACLs: a transactional
// id's coordinator is picked among its partitions as they are, so more of
// them would hand every open transaction to a coordinator that never heard
// of it.
func TestCreatePartitionsRefusesInternalTopics(t *testing.T) {
	s := startServer(t)
	initTransactionalID(t, s, "etl") // creates the transaction log
	before, ok := s.lookupTopic(txnTopic)
	if !ok {
		t.Fatalf("%s was not created", txnTopic)
	}
	n := len(before.partitions)
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.TimeoutMillis = 3, 5000
	req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: txnTopic, Count: int32(n + 1)}}
	resp := exchange(t, s, req).(*kmsg.CreatePartitionsResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("CreatePartitions on %s: %+v, want INVALID_REQUEST", txnTopic, resp.Topics)
	}
	if after, _ := s.lookupTopic(txnTopic); len(after.partitions) != n {
		t.Errorf("%s grew from %d to %d partitions", txnTopic, n, len(after.partitions))
	}
}
