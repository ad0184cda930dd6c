package cluster

import (
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/config"
)

// brokerConfig is node 2 in rack b with props over the defaults.
func brokerConfig(t *testing.T, props map[string]string) config.Config {
	t.Helper()
	c := config.Default()
	c.NodeID, c.Rack, c.DataDir, c.ClusterID = 2, "b", "/data", "c1"
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if err := c.Set(k, props[k]); err != nil {
			t.Fatal(err)
		}
	}
	return *c
}

func TestConfigFromBroker(t *testing.T) {
	base := brokerConfig(t, map[string]string{"listeners": "PLAINTEXT://127.0.0.12:9092"})
	// Without voters: a cluster of one, bound on loopback (the client
	// listener's host when that is loopback) on a port the kernel picks,
	// never on a routable address where its plaintext in-cluster
	// listeners would be reachable.
	for listen, bind := range map[string]string{"127.0.0.12:9092": "127.0.0.12:0", "0.0.0.0:9092": "127.0.0.1:0", ":9092": "127.0.0.1:0", "[::]:9092": "127.0.0.1:0",
		"10.1.2.3:9092": "127.0.0.1:0", "[fd00::5]:9092": "[::1]:0", "[::1]:9092": "[::1]:0", "broker.example:9092": "127.0.0.1:0"} {
		c := brokerConfig(t, map[string]string{"listeners": "PLAINTEXT://" + listen, "advertised.listeners": "PLAINTEXT://127.0.0.12:9092"})
		got, err := ConfigFromBroker(&c, nil)
		if err != nil {
			t.Fatalf("without voters, listening on %s: %v", listen, err)
		}
		if len(got.Voters) != 0 || got.Bind != bind || got.Advertise != "" || got.NodeID != 2 || got.Listeners[0].Host != "127.0.0.12" {
			t.Fatalf("without voters, listening on %s: %+v", listen, got)
		}
		if got.RaftHeartbeatTimeout != SingleVoterRaftTimeout || got.RaftElectionTimeout != SingleVoterRaftTimeout {
			t.Fatalf("without voters: raft timeouts %v / %v, want %v", got.RaftHeartbeatTimeout, got.RaftElectionTimeout, SingleVoterRaftTimeout)
		}
	}
	// Raft timeouts set in the config win, voters or not.
	c := base
	c.ControllerFetchTimeout, c.ControllerElectionTimeout = 700*time.Millisecond, 800*time.Millisecond
	c.Explicit = map[string]bool{"controller.quorum.fetch.timeout.ms": true, "controller.quorum.election.timeout.ms": true}
	if got, err := ConfigFromBroker(&c, nil); err != nil || got.RaftHeartbeatTimeout != 700*time.Millisecond || got.RaftElectionTimeout != 800*time.Millisecond {
		t.Fatalf("configured raft timeouts without voters: %+v %v", got, err)
	}
	tests := []struct {
		name, voters, bind string
	}{
		{"voter binds its entry", "1@127.0.0.11:9095,2@127.0.0.12:9095,3@127.0.0.13:9095", "127.0.0.12:9095"},
		{"non-voter uses the voters' port", "1@127.0.0.11:19095,3@127.0.0.13:19095", "127.0.0.12:19095"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.ControllerQuorumVoters = tt.voters
			got, err := ConfigFromBroker(&c, slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			if got.Bind != tt.bind || got.Advertise != tt.bind || got.NodeID != 2 || got.Rack != "b" || got.ClusterID != "c1" ||
				got.Dir != filepath.Join("/data", ControllerDirName) || len(got.Listeners) != 1 || got.Listeners[0].Port != 9092 || got.Listeners[0].Host != "127.0.0.12" {
				t.Fatalf("got %+v", got)
			}
		})
	}
	c = base
	c.ControllerQuorumVoters = "bogus"
	if _, err := ConfigFromBroker(&c, nil); err == nil {
		t.Fatal("bad voters accepted")
	}
}

// TestBrokerDefaultsMatch keeps the broker settings table's defaults equal
// to this package's, so a broker with no timing settings runs the timings
// documented here.
func TestBrokerDefaultsMatch(t *testing.T) {
	c := config.Default()
	c.ControllerQuorumVoters = "1@127.0.0.1:9095"
	got, err := ConfigFromBroker(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.HeartbeatInterval != DefaultHeartbeatInterval || got.Lease != DefaultLease ||
		got.RaftHeartbeatTimeout != DefaultRaftHeartbeatTimeout || got.RaftElectionTimeout != DefaultRaftElectionTimeout {
		t.Fatalf("broker defaults: heartbeat %v lease %v raft heartbeat %v election %v; cluster defaults %v %v %v %v",
			got.HeartbeatInterval, got.Lease, got.RaftHeartbeatTimeout, got.RaftElectionTimeout,
			DefaultHeartbeatInterval, DefaultLease, DefaultRaftHeartbeatTimeout, DefaultRaftElectionTimeout)
	}
}

func TestTimingsFromBroker(t *testing.T) {
	c := config.Default()
	c.ControllerQuorumVoters = "1@127.0.0.1:9095"
	for k, v := range map[string]string{
		"broker.session.timeout.ms":             "1200",
		"broker.heartbeat.interval.ms":          "250",
		"controller.quorum.election.timeout.ms": "400",
		"controller.quorum.fetch.timeout.ms":    "300",
	} {
		if err := c.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ConfigFromBroker(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Lease != 1200*time.Millisecond || got.HeartbeatInterval != 250*time.Millisecond ||
		got.RaftElectionTimeout != 400*time.Millisecond || got.RaftHeartbeatTimeout != 300*time.Millisecond {
		t.Fatalf("got lease %v heartbeat %v election %v raft heartbeat %v", got.Lease, got.HeartbeatInterval, got.RaftElectionTimeout, got.RaftHeartbeatTimeout)
	}
	d, err := got.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d.RaftLeaderLease != 240*time.Millisecond {
		t.Fatalf("leader lease %v, want four fifths of the raft heartbeat timeout 300ms", d.RaftLeaderLease)
	}
}

func TestTimingsValidate(t *testing.T) {
	base := Config{Voters: []Voter{{ID: 1, Addr: "127.0.0.1:9095"}}, Dir: "/tmp/x", Bind: "127.0.0.1:0"}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"heartbeat half the lease", func(c *Config) { c.HeartbeatInterval, c.Lease = time.Second, 2*time.Second }, "less than half the lease"},
		{"leader lease over raft heartbeat", func(c *Config) {
			c.RaftHeartbeatTimeout, c.RaftLeaderLease = 200*time.Millisecond, 300*time.Millisecond
		}, "must not exceed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.change(&c)
			_, err := c.withDefaults()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
