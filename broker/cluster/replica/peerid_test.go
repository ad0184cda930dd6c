package replica

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/broker/storage"
)

// TestReplicationListenerBindsReplicaIDToCertificate: over TLS, a
// follower whose certificate names node 2 fetches as replica 2 and not as
// replica 3 (CLUSTER_AUTHORIZATION_FAILED, and the leader learns nothing
// of replica 3's position), nor asks OffsetForLeaderEpoch as replica 3 (the
// connection is closed). A certificate that names no node (issued before
// broker certificates named theirs) still fetches as any replica, so a
// cluster replicates through the upgrade.
func TestReplicationListenerBindsReplicaIDToCertificate(t *testing.T) {
	ctx := context.Background()
	part, err := openStore(t).CreatePartition(tp0.Topic, 0, storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Append(ctx, produced(t, 3, -1, 0, "v"), storage.AppendOptions{LeaderEpoch: 5}); err != nil {
		t.Fatal(err)
	}
	tr, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2, 3}}, part.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		return tr, part, topic == tp0.Topic && partition == 0
	}
	ca, err := tlstest.NewCA("replica test CA")
	if err != nil {
		t.Fatal(err)
	}
	pair := func(l tlstest.Leaf, err error) tls.Certificate {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leader := pair(ca.IssueNode("broker-1", 1, "127.0.0.1"))
	node2 := pair(ca.IssueNode("broker-2", 2, "127.0.0.1"))
	unnamed := pair(ca.Issue("broker-old", "127.0.0.1"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leader}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	srv := ServeReplication(ln, lookup, nil, nil, nil, slog.New(slog.DiscardHandler))
	defer srv.Close()
	dial := func(cert tls.Certificate) *conn {
		t.Helper()
		c, err := dialLeader(ctx, srv.Addr(), "test", func(string) *tls.Config {
			return &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.close() })
		return c
	}
	fetchAs := func(c *conn, replica int32) *kmsg.FetchResponse {
		t.Helper()
		req := fetchReq(5, 0, -1, 0)
		req.ReplicaID = replica
		r, err := c.request(req, 10*time.Second)
		if err != nil {
			t.Fatalf("Fetch as replica %d: %v", replica, err)
		}
		return r.(*kmsg.FetchResponse)
	}

	c2 := dial(node2)
	if r := fetchAs(c2, 3); r.ErrorCode != kerr.ClusterAuthorizationFailed.Code || len(r.Topics) != 0 {
		t.Fatalf("node 2's certificate fetching as replica 3: code %d, %d topics; want CLUSTER_AUTHORIZATION_FAILED and no data", r.ErrorCode, len(r.Topics))
	}
	// The connection stays usable for node 2's own fetches.
	if r := fetchAs(c2, 2); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 || len(r.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("node 2 fetching as itself: code %d, %+v", r.ErrorCode, r.Topics)
	}
	if got := srv.PeerRefusals(); got != (PeerRefusals{ReplicaID: 1}) {
		t.Fatalf("counted %+v after the refused Fetch, want one replica id refused", got)
	}

	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oe.SetVersion(offsetForLeaderEpochVersion)
	oe.ReplicaID = 3
	ot := kmsg.NewOffsetForLeaderEpochRequestTopic()
	ot.Topic = tp0.Topic
	op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	op.CurrentLeaderEpoch, op.LeaderEpoch = 5, 5
	ot.Partitions = append(ot.Partitions, op)
	oe.Topics = append(oe.Topics, ot)
	if _, err := dial(node2).request(oe, 10*time.Second); err == nil {
		t.Fatal("node 2's certificate asking OffsetForLeaderEpoch as replica 3 was answered")
	}
	oe.ReplicaID = 2
	if r, err := dial(node2).request(oe, 10*time.Second); err != nil || r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("node 2 asking OffsetForLeaderEpoch as itself: %v", err)
	}

	cu := dial(unnamed)
	if r := fetchAs(cu, 3); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("a certificate naming no node, fetching as replica 3: code %d, %+v; want served (upgrade)", r.ErrorCode, r.Topics)
	}
	// The refused OffsetForLeaderEpoch is counted beside the Fetch.
	if got, want := srv.PeerRefusals(), (PeerRefusals{ReplicaID: 2, Unbound: 1}); got != want {
		t.Fatalf("counted %+v, want %+v", got, want)
	}
}
