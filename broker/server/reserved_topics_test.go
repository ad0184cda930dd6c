package server

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// createTopicsRequest is a CreateTopics v7 of one topic.
func createTopicsRequest(name string, partitions int32, validateOnly bool, configs map[string]string) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.TimeoutMillis, req.ValidateOnly = 7, 5000, validateOnly
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, &v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// TestCreateTopicsRefusesReservedNames: a client cannot create
// __consumer_offsets or __transaction_state (here with the settings that
// would lose committed offsets: cleanup.policy=delete) nor
// __cluster_metadata, validated only or not: INVALID_REQUEST, saying it is
// prohibited, and nothing created. Once the broker created the offsets
// topic, creating it answers TOPIC_ALREADY_EXISTS. Before, each was created
// as the client asked.
func TestCreateTopicsRefusesReservedNames(t *testing.T) {
	s := startServer(t)
	for _, name := range []string{offsetsTopic, txnTopic, clusterMetadataTopic} {
		for _, validateOnly := range []bool{true, false} {
			req := createTopicsRequest(name, 3, validateOnly, map[string]string{"cleanup.policy": "delete"})
			st := roundTrip[*kmsg.CreateTopicsResponse](t, s, req).Topics[0]
			if st.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("creating %s (validate only: %v): %v, want INVALID_REQUEST", name, validateOnly, kerr.ErrorForCode(st.ErrorCode))
			}
			if st.ErrorMessage == nil || !strings.Contains(*st.ErrorMessage, "creation of internal topic "+name+" is prohibited") {
				t.Errorf("creating %s: message %v, want it to say its creation is prohibited", name, st.ErrorMessage)
			}
			if _, ok := s.lookupTopic(name); ok {
				t.Errorf("creating %s (validate only: %v): created", name, validateOnly)
			}
		}
	}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"g"}
	exchange(t, s, find) // the broker creates the offsets topic
	if _, ok := s.lookupTopic(offsetsTopic); !ok {
		t.Fatalf("FindCoordinator did not create %s", offsetsTopic)
	}
	st := roundTrip[*kmsg.CreateTopicsResponse](t, s, createTopicsRequest(offsetsTopic, 1, false, nil)).Topics[0]
	if st.ErrorCode != kerr.TopicAlreadyExists.Code {
		t.Errorf("creating %s once it exists: %v, want TOPIC_ALREADY_EXISTS", offsetsTopic, kerr.ErrorForCode(st.ErrorCode))
	}
}

// TestMetadataAutoCreatesInternalTopicsWithTheirSettings: a Metadata
// request allowed to auto-create __consumer_offsets or __transaction_state
// gets them as the broker creates them for a coordinator (compacted; one
// partition, or transaction.state.log.num.partitions), as Kafka's
// auto-creation does, and __cluster_metadata is not created
// (UNKNOWN_TOPIC_OR_PARTITION). Before, each was created as a plain topic:
// num.partitions partitions, cleanup.policy=delete, so retention would
// have deleted the groups' committed offsets.
func TestMetadataAutoCreatesInternalTopicsWithTheirSettings(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.NumPartitions = 4
		c.TransactionStatePartitions = 3
	})
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = 12, true
	for _, name := range []string{offsetsTopic, txnTopic, clusterMetadataTopic} {
		n := name
		req.Topics = append(req.Topics, kmsg.MetadataRequestTopic{Topic: &n})
	}
	resp := roundTrip[*kmsg.MetadataResponse](t, s, req)
	codes := map[string]int16{}
	for _, mt := range resp.Topics {
		codes[*mt.Topic] = mt.ErrorCode
	}
	for name, want := range map[string]int16{offsetsTopic: 0, txnTopic: 0, clusterMetadataTopic: kerr.UnknownTopicOrPartition.Code} {
		if codes[name] != want {
			t.Errorf("Metadata for %s: %v, want %v", name, kerr.ErrorForCode(codes[name]), kerr.ErrorForCode(want))
		}
	}
	for name, partitions := range map[string]int{offsetsTopic: 1, txnTopic: 3} {
		tp, ok := s.lookupTopic(name)
		if !ok {
			t.Errorf("%s was not created", name)
			continue
		}
		if len(tp.partitions) != partitions || tp.configs["cleanup.policy"] != "compact" {
			t.Errorf("%s created with %d partitions and configs %v, want %d partitions, compacted", name, len(tp.partitions), tp.configs, partitions)
		}
	}
	if _, ok := s.lookupTopic(clusterMetadataTopic); ok {
		t.Errorf("%s was created", clusterMetadataTopic)
	}
}
