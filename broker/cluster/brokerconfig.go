package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// ControllerDirName is the directory, inside the broker's data directory,
// that holds the Raft log and snapshots.
const ControllerDirName = "controller"

// ConfigFromBroker derives a controller configuration from the broker's
// settings:
//   - controller.quorum.voters gives the voters; a voter binds its own
//     entry's address;
//   - a broker that is not a voter binds its advertised host with the
//     voters' controller port (every node runs its controller port on the
//     same port number, 9095 by default, as the provider lays them out);
//   - with no voters the broker is a cluster of one: the only voter, bound
//     on the client listener's host (loopback when that is a wildcard,
//     since no other machine ever dials it) on a port the kernel picks;
//   - the advertised listener is registered for clients; replication
//     fetches go to the same listener until the server serves
//     inter.broker.listener.port (set Config.ReplicationAddr then);
//   - Raft state lives in <log.dirs>/controller;
//   - broker.session.timeout.ms and broker.heartbeat.interval.ms give the
//     lease and its renewal interval, controller.quorum.fetch.timeout.ms
//     and controller.quorum.election.timeout.ms Raft's heartbeat and
//     election timeouts.
func ConfigFromBroker(c *config.Config, logger *slog.Logger) (Config, error) {
	var voters []Voter
	if c.ControllerQuorumVoters != "" {
		var err error
		if voters, err = ParseVoters(c.ControllerQuorumVoters); err != nil {
			return Config{}, err
		}
	}
	advertised := c.AdvertisedAddr
	if advertised == "" {
		advertised = c.ListenAddr
	}
	host, portStr, err := net.SplitHostPort(advertised)
	if err != nil {
		return Config{}, fmt.Errorf("advertised address %q: %w", advertised, err)
	}
	port, err := strconv.ParseInt(portStr, 10, 32)
	if err != nil {
		return Config{}, fmt.Errorf("advertised port %q: %w", portStr, err)
	}
	out := Config{
		NodeID:    c.NodeID,
		Rack:      c.Rack,
		Voters:    voters,
		Dir:       filepath.Join(c.DataDir, ControllerDirName),
		ClusterID: c.ClusterID,
		Listeners: []metadata.Listener{{Name: "PLAINTEXT", Host: host, Port: int32(port), Protocol: "PLAINTEXT"}},
		Logger:    logger,

		HeartbeatInterval:    c.BrokerHeartbeatInterval,
		Lease:                c.BrokerSessionTimeout,
		RaftHeartbeatTimeout: c.ControllerFetchTimeout,
		RaftElectionTimeout:  c.ControllerElectionTimeout,
	}
	if len(voters) == 0 {
		host, err := LocalHost(c)
		if err != nil {
			return Config{}, err
		}
		out.Bind = net.JoinHostPort(host, "0")
		// The only voter has no peer to hear from or to wait for votes
		// from: Raft's timeouts would only delay its first election at
		// each start, so they are short unless set.
		if !c.Explicit["controller.quorum.fetch.timeout.ms"] {
			out.RaftHeartbeatTimeout = SingleVoterRaftTimeout
		}
		if !c.Explicit["controller.quorum.election.timeout.ms"] {
			out.RaftElectionTimeout = SingleVoterRaftTimeout
		}
	} else if i := slices.IndexFunc(voters, func(v Voter) bool { return v.ID == c.NodeID }); i >= 0 {
		out.Bind, out.Advertise = voters[i].Addr, voters[i].Addr
	} else {
		_, vport, err := net.SplitHostPort(voters[0].Addr)
		if err != nil {
			return Config{}, err
		}
		out.Bind = net.JoinHostPort(host, vport)
		out.Advertise = out.Bind
	}
	return out, nil
}

// SingleVoterRaftTimeout is the Raft heartbeat and election timeout of a
// cluster of one voter (unless configured): the delay before it elects
// itself at start.
const SingleVoterRaftTimeout = 50 * time.Millisecond

// LocalHost is where a cluster of one binds its controller and replication
// listeners: the client listener's host, or loopback when the client
// listener is a wildcard (only this process dials them).
func LocalHost(c *config.Config) (string, error) {
	host, _, err := net.SplitHostPort(c.ListenAddr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", c.ListenAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1", nil
	}
	return host, nil
}
