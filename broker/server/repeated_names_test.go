package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// TestDescribeConfigsNamesEachResourceOnce: a principal with
// DESCRIBE_CONFIGS on one topic named it over and over in one request and
// was answered every config, synonyms and documentation included, each
// time: 5 bytes of request for 2,075 bytes of answer (a 1 MiB request
// held about 435 MB of response, a 100 MiB one 43 GB). A resource named more
// than once is now answered once, each repetition INVALID_REQUEST (as
// Kafka's AlterConfigs answers a resource named twice), so a response is
// bounded by the resources that exist.
func TestDescribeConfigsNamesEachResourceOnce(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := s.createTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationDescribeConfigs))
	describe := func(n int) (*kmsg.DescribeConfigsResponse, int) {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Version, req.IncludeSynonyms, req.IncludeDocumentation = 4, true, true
		for range n {
			r := kmsg.NewDescribeConfigsRequestResource()
			r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
			req.Resources = append(req.Resources, r)
		}
		if n > 1 {
			t.Logf("request naming t %d times: %d bytes", n, len(req.AppendTo(nil)))
		}
		resp := exchange(t, s, req).(*kmsg.DescribeConfigsResponse)
		return resp, len(resp.AppendTo(nil))
	}
	one, oneSize := describe(1)
	if one.Resources[0].ErrorCode != 0 || len(one.Resources[0].Configs) == 0 {
		t.Fatalf("describing t: %v, %d configs", kerr.ErrorForCode(one.Resources[0].ErrorCode), len(one.Resources[0].Configs))
	}
	const n = 1000
	many, manySize := describe(n)
	t.Logf("one resource: %d bytes; named %d times: %d bytes", oneSize, n, manySize)
	if len(many.Resources) != n {
		t.Fatalf("%d resources answered, want %d", len(many.Resources), n)
	}
	if r := many.Resources[0]; r.ErrorCode != 0 || len(r.Configs) != len(one.Resources[0].Configs) {
		t.Errorf("first naming: %v, %d configs, want the %d of one", kerr.ErrorForCode(r.ErrorCode), len(r.Configs), len(one.Resources[0].Configs))
	}
	for i, r := range many.Resources[1:] {
		if r.ErrorCode != kerr.InvalidRequest.Code || len(r.Configs) != 0 {
			t.Fatalf("naming %d: %v, %d configs, want INVALID_REQUEST and none", i+2, kerr.ErrorForCode(r.ErrorCode), len(r.Configs))
		}
	}
	if manySize > 2*oneSize+n*100 {
		t.Errorf("named %d times: %d bytes, want at most one answer (%d) and a short error each", n, manySize, oneSize)
	}
}

// TestGroupsAnsweredOnceARequest: OffsetFetch (v8+) and DescribeGroups
// naming a group again answered it again in full: every offset the group
// committed (200 partitions here: 4 KB for each 9 bytes of request, a
// 9 KB request answered with 4 MB) or
// every member's metadata and assignment. A repetition answers
// INVALID_REQUEST now; the first naming is answered as before.
func TestGroupsAnsweredOnceARequest(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	const partitions = 200
	if _, err := s.createTopic("wide", partitions, nil); err != nil {
		t.Fatal(err)
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "wide", kmsg.ACLOperationAll), allow(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLOperationAll))
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorKeys = 4, []string{"g"}
	exchange(t, s, find) // creates the offsets topic
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 8, "g", -1
	ct := kmsg.OffsetCommitRequestTopic{Topic: "wide"}
	for p := range int32(partitions) {
		ct.Partitions = append(ct.Partitions, kmsg.OffsetCommitRequestTopicPartition{Partition: p, Offset: 0, LeaderEpoch: -1})
	}
	commit.Topics = []kmsg.OffsetCommitRequestTopic{ct}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c := errorCodes(exchange(t, s, commit)); c[0] == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("committing: %v", kerr.ErrorForCode(c[0]))
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 1000
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version = 9
	for range n {
		g := kmsg.NewOffsetFetchRequestGroup()
		g.Group = "g"
		fetch.Groups = append(fetch.Groups, g) // null topics: all
	}
	fr := exchange(t, s, fetch).(*kmsg.OffsetFetchResponse)
	size := len(fr.AppendTo(nil))
	t.Logf("OffsetFetch naming g %d times: request %d bytes, response %d bytes", n, len(fetch.AppendTo(nil)), size)
	if len(fr.Groups) != n || fr.Groups[0].ErrorCode != 0 || len(fr.Groups[0].Topics) != 1 || len(fr.Groups[0].Topics[0].Partitions) != partitions {
		t.Fatalf("OffsetFetch: %d groups, first %+v", len(fr.Groups), fr.Groups[0].ErrorCode)
	}
	for i, g := range fr.Groups[1:] {
		if g.ErrorCode != kerr.InvalidRequest.Code || len(g.Topics) != 0 {
			t.Fatalf("OffsetFetch naming %d: %v with %d topics, want INVALID_REQUEST and none", i+2, kerr.ErrorForCode(g.ErrorCode), len(g.Topics))
		}
	}
	describe := kmsg.NewPtrDescribeGroupsRequest()
	describe.Version = 5
	for range n {
		describe.Groups = append(describe.Groups, "g")
	}
	dr := exchange(t, s, describe).(*kmsg.DescribeGroupsResponse)
	if len(dr.Groups) != n || dr.Groups[0].ErrorCode != 0 {
		t.Fatalf("DescribeGroups: %d groups, first %v", len(dr.Groups), kerr.ErrorForCode(dr.Groups[0].ErrorCode))
	}
	for i, g := range dr.Groups[1:] {
		if g.ErrorCode != kerr.InvalidRequest.Code {
			t.Fatalf("DescribeGroups naming %d: %v, want INVALID_REQUEST", i+2, kerr.ErrorForCode(g.ErrorCode))
		}
	}
}

// TestDescribeProducersNamesEachPartitionOnce: a principal with READ on a
// topic named one partition over and over in DescribeProducers and was
// sent every producer the partition keeps each time (4 bytes of request
// for 7.4 KB with 200 producers: this 4 KB request was answered with
// 7.4 MB; a principal with WRITE makes the producers any number, finding
// 21). A repetition answers INVALID_REQUEST now: 61 KB.
func TestDescribeProducersNamesEachPartitionOnce(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := s.createTopic("p", 1, nil); err != nil {
		t.Fatal(err)
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "p", kmsg.ACLOperationAll))
	const producers = 200
	c := dial(t, s)
	for pid := range int64(producers) {
		req := produceReq("p", 1, batch(1000+pid, 0, 0, 1, 10))
		corr := c.send(req)
		resp := req.ResponseKind()
		c.recv(resp, corr)
		if codes := errorCodes(resp); codes[0] != 0 {
			t.Fatalf("producing as %d: %v", 1000+pid, kerr.ErrorForCode(codes[0]))
		}
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "p", kmsg.ACLOperationRead))
	const n = 1000
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic = "p"
	for range n {
		rt.Partitions = append(rt.Partitions, 0)
	}
	req.Topics = []kmsg.DescribeProducersRequestTopic{rt}
	resp := exchange(t, s, req).(*kmsg.DescribeProducersResponse)
	size := len(resp.AppendTo(nil))
	t.Logf("partition 0 named %d times: request %d bytes, response %d bytes", n, len(req.AppendTo(nil)), size)
	ps := resp.Topics[0].Partitions
	if len(ps) != n || ps[0].ErrorCode != 0 || len(ps[0].ActiveProducers) != producers {
		t.Fatalf("%d partitions answered, first %v with %d producers, want %d and %d", len(ps), kerr.ErrorForCode(ps[0].ErrorCode), len(ps[0].ActiveProducers), n, producers)
	}
	for i, p := range ps[1:] {
		if p.ErrorCode != kerr.InvalidRequest.Code || len(p.ActiveProducers) != 0 {
			t.Fatalf("naming %d: %v with %d producers, want INVALID_REQUEST and none", i+2, kerr.ErrorForCode(p.ErrorCode), len(p.ActiveProducers))
		}
	}
}

// TestListOffsetsRefusesARepeatedPartition: a partition named more than
// once in ListOffsets was looked up and answered at each naming. Kafka
// answers INVALID_REQUEST at every naming of a repeated partition, the
// first included, also when the repetition is in a second entry of the
// same topic; a topic the principal may not describe answers
// TOPIC_AUTHORIZATION_FAILED however often it is named.
func TestListOffsetsRefusesARepeatedPartition(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("allow.everyone.if.no.acl.found", "false"); err != nil {
			t.Fatal(err)
		}
	})
	for _, name := range []string{"lo", "lo2", "secret"} {
		if _, err := s.createTopic(name, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "lo", kmsg.ACLOperationAll))
	c := dial(t, s)
	for range 3 {
		req := produceReq("lo", 1, batch(-1, -1, -1, 1, 10))
		req.Topics[0].Partitions[0].Partition = 1
		corr := c.send(req)
		resp := req.ResponseKind()
		c.recv(resp, corr)
		if codes := errorCodes(resp); codes[0] != 0 {
			t.Fatalf("producing: %v", kerr.ErrorForCode(codes[0]))
		}
	}
	setACLs(t, s, allow(kmsg.ACLResourceTypeTopic, "lo", kmsg.ACLOperationDescribe),
		allow(kmsg.ACLResourceTypeTopic, "lo2", kmsg.ACLOperationDescribe))
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version = 6
	entry := func(topic string, partitions ...int32) {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, timestampLatest, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	entry("lo", 0, 1, 0)
	entry("lo2", 0)
	entry("lo2", 0, 1)
	entry("secret", 0, 0)
	resp := exchange(t, s, req).(*kmsg.ListOffsetsResponse)
	type answer struct {
		topic     string
		partition int32
		code      int16
		offset    int64
	}
	var got []answer
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got = append(got, answer{rt.Topic, rp.Partition, rp.ErrorCode, rp.Offset})
		}
	}
	invalid, denied := kerr.InvalidRequest.Code, kerr.TopicAuthorizationFailed.Code
	want := []answer{
		{"lo", 0, invalid, -1}, {"lo", 1, 0, 3}, {"lo", 0, invalid, -1},
		{"lo2", 0, invalid, -1},
		{"lo2", 0, invalid, -1}, {"lo2", 1, 0, 0},
		{"secret", 0, denied, -1}, {"secret", 0, denied, -1},
	}
	if len(got) != len(want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("answer %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
