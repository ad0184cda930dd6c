package server

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestListedControllerID: Metadata and DescribeCluster name as controller
// only a broker their own broker list has (a client cannot reach one it
// has no endpoint for): the active controller, else the answering broker
// while a controller is active, else -1.
func TestListedControllerID(t *testing.T) {
	listed := []brokerInfo{{id: 1, host: "127.0.0.1", port: 9092}, {id: 2, host: "127.0.0.2", port: 9092}}
	tests := []struct {
		name         string
		active, self int32
		brokers      []brokerInfo
		want         int32
	}{
		{"listed", 2, 1, listed, 2},
		{"fenced, or restarted and not registered yet", 3, 1, listed, 1},
		{"no endpoint for the client's listener", 1, 2, listed[1:], 2},
		{"neither listed", 3, 4, listed, -1},
		{"election in progress", -1, 1, listed, -1},
		{"no broker listed", 1, 1, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listedControllerID(tt.active, tt.self, tt.brokers); got != tt.want {
				t.Fatalf("listedControllerID(%d, %d, %v) = %d, want %d", tt.active, tt.self, tt.brokers, got, tt.want)
			}
		})
	}
}

// TestMetadataNamesNoUnlistedLeader: a partition whose leader the answer's
// broker list leaves out (no endpoint for the client's listener, or fenced
// since the topic view was built) is answered with leader -1 and the
// error, as Kafka does, never with the unlisted node.
func TestMetadataNamesNoUnlistedLeader(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("unlisted", 1, nil); err != nil {
		t.Fatal(err)
	}
	tp, ok := s.lookupTopic("unlisted")
	if !ok {
		t.Fatal("topic missing after creation")
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	self := s.brokers(s.listeners[0].name())
	for _, tt := range []struct {
		name       string
		brokers    []brokerInfo
		wantLeader int32
		wantCode   int16
	}{
		{"leader listed", self, s.nodeID, 0},
		{"leader left out", nil, -1, kerr.ListenerNotFound.Code},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mt := s.metadataTopic(context.Background(), reqAuth{s: s}, req, tp, tt.brokers)
			p := mt.Partitions[0]
			if p.Leader != tt.wantLeader || p.ErrorCode != tt.wantCode {
				t.Fatalf("partition leader %d, error %d; want leader %d, error %d", p.Leader, p.ErrorCode, tt.wantLeader, tt.wantCode)
			}
		})
	}
}

// TestDescribeTopicPartitionsNamesNoUnlistedLeader: DescribeTopicPartitions
// names a partition's leader by Metadata's rule (a client looks the id up
// in its Metadata's broker list): a leader without an endpoint on the
// client's listener is -1 with LISTENER_NOT_FOUND, as Kafka answers.
func TestDescribeTopicPartitionsNamesNoUnlistedLeader(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("unlisted", 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, listener string
		wantLeader     int32
		wantCode       int16
	}{
		{"the client's listener", s.listeners[0].name(), s.nodeID, 0},
		{"a listener the leader has no endpoint on", "NOWHERE", -1, kerr.ListenerNotFound.Code},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := kmsg.NewPtrDescribeTopicPartitionsRequest()
			rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
			rt.Topic = "unlisted"
			req.Topics = append(req.Topics, rt)
			az := reqAuth{s: s, key: 75}
			az.rc.Listener = tt.listener
			resp := s.handleDescribeTopicPartitions(context.Background(), az, req)
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("answer %+v", resp.Topics)
			}
			p := resp.Topics[0].Partitions[0]
			if p.LeaderID != tt.wantLeader || p.ErrorCode != tt.wantCode {
				t.Fatalf("partition leader %d, error %d; want leader %d, error %d", p.LeaderID, p.ErrorCode, tt.wantLeader, tt.wantCode)
			}
		})
	}
}

// TestListedLeaderBeforeV6: an answer version without LISTENER_NOT_FOUND
// (Metadata before v6) says LEADER_NOT_AVAILABLE for an unlisted leader;
// no elected leader is LEADER_NOT_AVAILABLE at every version.
func TestListedLeaderBeforeV6(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("unlisted", 1, nil); err != nil {
		t.Fatal(err)
	}
	tp, _ := s.lookupTopic("unlisted")
	p := *tp.partitions[0]
	if l, code := s.listedLeader(&p, nil, false); l != -1 || code != kerr.LeaderNotAvailable.Code {
		t.Errorf("unlisted leader before v6: %d, %d", l, code)
	}
	p.leader = -1
	if l, code := s.listedLeader(&p, s.brokers(s.listeners[0].name()), true); l != -1 || code != kerr.LeaderNotAvailable.Code {
		t.Errorf("no leader: %d, %d", l, code)
	}
}
