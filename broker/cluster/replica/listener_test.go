package replica

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestReplicationListener(t *testing.T) {
	fl := newFakeLeader(t)
	c, err := dialLeader(context.Background(), fl.addr(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "test", "1"
	r, err := c.request(av, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[int16]int16{}
	for _, k := range r.(*kmsg.ApiVersionsResponse).ApiKeys {
		keys[k.ApiKey] = k.MaxVersion
	}
	if keys[1] != fetchVersion || keys[23] != offsetForLeaderEpochVersion || len(keys) != 3 {
		t.Fatalf("advertised %v", keys)
	}

	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oe.SetVersion(offsetForLeaderEpochVersion)
	oe.ReplicaID = 2
	tt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	tt.Topic = "nope"
	tt.Partitions = append(tt.Partitions, kmsg.NewOffsetForLeaderEpochRequestTopicPartition())
	oe.Topics = append(oe.Topics, tt)
	r, err = c.request(oe, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("not-led partition: code %d", code)
	}

	// A consumer fetch, or any other API, closes the connection.
	for _, req := range []kmsg.Request{fetchReqAsConsumer(), kmsg.NewPtrMetadataRequest()} {
		c, err := dialLeader(context.Background(), fl.addr(), "test", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.request(req, 5*time.Second); err == nil {
			t.Fatalf("%s answered on the replication listener", kmsg.NameForKey(req.Key()))
		}
		c.close()
	}
}

func fetchReqAsConsumer() *kmsg.FetchRequest {
	r := fetchReq(0, 0, -1, 0)
	r.ReplicaID = -1
	return r
}
