package kafkaconn

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestListenersDuringARoll pins how a Conn whose brokers are reached
// through different listeners (a roll changing them is under way) seeds
// its clients and which brokers each broker must list: one listener per
// client, the Conn's own first.
func TestListenersDuringARoll(t *testing.T) {
	tlsOpt := []kgo.Opt{kgo.ClientID("tls")}
	iamOpt := []kgo.Opt{kgo.ClientID("iam")}
	for _, tt := range []struct {
		name      string
		brokers   []Broker
		listener  string
		wantSeeds []string
		// wantPeers are SameListener's answers for each broker's address.
		wantPeers map[string][]int32
	}{{
		name: "every broker through the Conn's listener",
		brokers: []Broker{
			{NodeID: 2, Addr: "b:9098"}, {NodeID: 1, Addr: "a:9098"}, {NodeID: 3, Addr: "c:9098", Listener: "CLIENT_IAM", Opts: iamOpt},
		},
		listener:  "CLIENT_IAM",
		wantSeeds: []string{"a:9098", "b:9098", "c:9098"},
		wantPeers: map[string][]int32{"a:9098": {1, 2, 3}, "c:9098": {1, 2, 3}},
	}, {
		name: "broker 1 replaced: it alone serves the planned listener",
		brokers: []Broker{
			{NodeID: 1, Addr: "a:9098", Listener: "CLIENT_IAM", Opts: iamOpt},
			{NodeID: 2, Addr: "b:9094", Listener: "CLIENT_SECURE", Opts: tlsOpt},
			{NodeID: 3, Addr: "c:9094", Listener: "CLIENT_SECURE", Opts: tlsOpt},
		},
		listener:  "CLIENT_IAM",
		wantSeeds: []string{"a:9098"},
		wantPeers: map[string][]int32{"a:9098": {1}, "b:9094": {2, 3}, "unknown:1": {1, 2, 3}},
	}, {
		name: "no broker through the Conn's listener yet: the first broker's",
		brokers: []Broker{
			{NodeID: 1, Addr: "a:9094", Listener: "CLIENT_SECURE", Opts: tlsOpt},
			{NodeID: 2, Addr: "b:9092", Listener: "CLIENT"},
			{NodeID: 3, Addr: "c:9094", Listener: "CLIENT_SECURE", Opts: tlsOpt},
		},
		listener:  "CLIENT_IAM",
		wantSeeds: []string{"a:9094", "c:9094"},
		wantPeers: map[string][]int32{"b:9092": {2}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			c := New("tc-test", tt.brokers).WithListener(tt.listener)
			if got := c.defaultSeeds(); !slices.Equal(got, tt.wantSeeds) {
				t.Errorf("seeds %v, want %v", got, tt.wantSeeds)
			}
			for addr, want := range tt.wantPeers {
				if got := c.SameListener(addr); !slices.Equal(got, want) {
					t.Errorf("SameListener(%s) = %v, want %v", addr, got, want)
				}
			}
		})
	}
}

// TestSetBrokerSwitchesOneBroker replaces how one broker is reached, as a
// roll does once it replaced the broker, and checks its options follow.
func TestSetBrokerSwitchesOneBroker(t *testing.T) {
	own := []kgo.Opt{kgo.ClientID("own")}
	planned := []kgo.Opt{kgo.ClientID("planned")}
	c := New("tc-test", []Broker{
		{NodeID: 1, Addr: "a:9092", Listener: "CLIENT", Opts: own},
		{NodeID: 2, Addr: "b:9092", Listener: "CLIENT", Opts: own},
	}, planned...).WithListener("CLIENT_SECURE")
	c.SetBroker(Broker{NodeID: 2, Addr: "b:9094", Listener: "CLIENT_SECURE", Opts: planned})
	c.SetBroker(Broker{NodeID: 3, Addr: "c:9094", Listener: "CLIENT_SECURE", Opts: planned})
	if got := c.Bootstrap(); !slices.Equal(got, []string{"a:9092", "b:9094", "c:9094"}) {
		t.Fatalf("brokers %v after SetBroker", got)
	}
	if got := c.defaultSeeds(); !slices.Equal(got, []string{"b:9094", "c:9094"}) {
		t.Errorf("seeds %v, want the brokers of the Conn's listener", got)
	}
	if got := c.optsFor("a:9092"); len(got) != 1 || &got[0] != &own[0] {
		t.Errorf("broker 1's options are not its own")
	}
	if got := c.optsFor("b:9094"); len(got) != 1 || &got[0] != &planned[0] {
		t.Errorf("broker 2's options are not the planned ones")
	}
}
