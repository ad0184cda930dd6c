package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
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

// TestProduceRefusesInternalTopics: Produce to __consumer_offsets or
// __transaction_state answers INVALID_TOPIC_EXCEPTION and appends nothing,
// for a principal allowed ALL on every topic (the internal ones named
// too), group, transactional id and the cluster, for a compressed batch
// (a zstd frame inflating to 1 MiB), with acks 1 and all, and for a
// transactional batch under the principal's own transactional id; a
// principal without WRITE gets TOPIC_AUTHORIZATION_FAILED. The group
// coordinator's and transaction coordinator's loaders inflate whole
// batches (recordbatch.Decompress), which is safe only because every batch
// of those topics is one the broker encoded, uncompressed: this refusal is
// what keeps a client's batch out (docs/broker-security.md, finding 26).
func TestProduceRefusesInternalTopics(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	everything := []metadata.ACL{allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationAll),
		topicACL(offsetsTopic, kmsg.ACLOperationAll), topicACL(txnTopic, kmsg.ACLOperationAll),
		allow(kmsg.ACLResourceTypeGroup, "*", kmsg.ACLOperationAll), allow(kmsg.ACLResourceTypeTransactionalId, "*", kmsg.ACLOperationAll),
		clusterACL(kmsg.ACLOperationAll)}
	setACLs(t, s, everything...)
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"g"}
	exchange(t, s, find) // creates the offsets topic
	id := "etl"
	v := initTransactionalID(t, s, id) // creates the transaction log
	for _, topic := range []string{offsetsTopic, txnTopic} {
		if _, ok := s.lookupTopic(topic); !ok {
			t.Fatalf("%s was not created", topic)
		}
	}
	latest := func(topic string) int64 {
		t.Helper()
		p := exchange(t, s, listOffsetsReq(topic, 0, timestampLatest)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("latest offset of %s[0]: %v", topic, kerr.ErrorForCode(p.ErrorCode))
		}
		return p.Offset
	}
	produce := func(topic string, acks int16, txnID *string, batch []byte) int16 {
		t.Helper()
		req := produceReq(topic, acks, batch)
		req.TransactionID = txnID
		return exchange(t, s, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	}
	compressed := zstdWindowBatch(t, 1<<20)
	for _, topic := range []string{offsetsTopic, txnTopic} {
		before := latest(topic)
		for _, acks := range []int16{-1, 1} {
			if code := produce(topic, acks, nil, compressed); code != kerr.InvalidTopicException.Code {
				t.Errorf("zstd batch to %s, acks %d, ALL allowed: %v, want INVALID_TOPIC_EXCEPTION", topic, acks, kerr.ErrorForCode(code))
			}
		}
		if code := produce(topic, -1, &id, txnBatch(t, v.id, v.epoch, 0, true)); code != kerr.InvalidTopicException.Code {
			t.Errorf("transactional batch to %s, ALL allowed: %v, want INVALID_TOPIC_EXCEPTION", topic, kerr.ErrorForCode(code))
		}
		if after := latest(topic); after != before {
			t.Errorf("%s[0]: the refused produces moved the latest offset from %d to %d", topic, before, after)
		}
	}
	setACLs(t, s, everything[3:]...) // no topic ACL left
	for _, topic := range []string{offsetsTopic, txnTopic} {
		if code := produce(topic, -1, nil, compressed); code != kerr.TopicAuthorizationFailed.Code {
			t.Errorf("zstd batch to %s without WRITE: %v, want TOPIC_AUTHORIZATION_FAILED", topic, kerr.ErrorForCode(code))
		}
	}
}
