package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// TestMetadataAnswersEachTopicOnce: a principal with DESCRIBE on one
// topic named it over and over in one Metadata request and was sent its
// whole partition list each time (a topic of 500 partitions: 13 KB of
// answer for each 22 bytes of request at v12, 6.6 MB for this 22 KB
// request). Each topic is answered once, as Kafka does.
func TestMetadataAnswersEachTopicOnce(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		for k, v := range map[string]string{"allow.everyone.if.no.acl.found": "false", "auto.create.topics.enable": "false"} {
			if err := c.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	wide, err := s.createTopic("wide", 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "wide", kmsg.ACLOperationDescribe))
	const n = 1000
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	name, other := "wide", "other"
	for i := range n {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = &name
		if i%2 == 1 {
			rt.Topic = &other // denied, answered TOPIC_AUTHORIZATION_FAILED once
		}
		req.Topics = append(req.Topics, rt)
	}
	byID := kmsg.NewMetadataRequestTopic()
	byID.TopicID = wide.id
	req.Topics = append(req.Topics, byID, byID)
	resp := exchange(t, s, req).(*kmsg.MetadataResponse)
	size := len(resp.AppendTo(nil))
	t.Logf("request of %d bytes, response of %d bytes", len(req.AppendTo(nil)), size)
	if len(resp.Topics) != 3 {
		t.Fatalf("%d topics answered for %d namings of wide and other and 2 of wide's id, want 3", len(resp.Topics), n)
	}
	if got := resp.Topics[0]; got.Topic == nil || *got.Topic != "wide" || len(got.Partitions) != 500 {
		t.Errorf("first answer: %v with %d partitions, want wide with 500", got.Topic, len(got.Partitions))
	}
	if got := resp.Topics[2]; got.TopicID != wide.id || len(got.Partitions) != 500 {
		t.Errorf("third answer: id %x with %d partitions, want wide's with 500", got.TopicID, len(got.Partitions))
	}
	if size > 50000 {
		t.Errorf("response of %d bytes, want two answers of wide's 500 partitions", size)
	}
}
