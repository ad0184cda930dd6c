package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// ControllerDirName is the directory, inside the broker's data directory,
// that holds the Raft log and snapshots.
const ControllerDirName = "controller"

// ErrNotClustered means controller.quorum.voters is not set: the broker
// runs alone with its file metadata store.
var ErrNotClustered = errors.New("controller.quorum.voters is not set")

// ConfigFromBroker derives a controller configuration from the broker's
// settings (seam S2):
//   - controller.quorum.voters gives the voters; a voter binds its own
//     entry's address;
//   - a broker that is not a voter binds its advertised host with the
//     voters' controller port (every node runs its controller port on the
//     same port number, 9095 by default, as the provider lays them out);
//   - the advertised listener is registered for clients; replication
//     fetches go to the same listener until the server serves
//     inter.broker.listener.port (set Config.ReplicationAddr then);
//   - Raft state lives in <log.dirs>/controller;
//   - broker.session.timeout.ms and broker.heartbeat.interval.ms give the
//     lease and its renewal interval, controller.quorum.fetch.timeout.ms
//     and controller.quorum.election.timeout.ms Raft's heartbeat and
//     election timeouts.
func ConfigFromBroker(c *config.Config, logger *slog.Logger) (Config, error) {
	if c.ControllerQuorumVoters == "" {
		return Config{}, ErrNotClustered
	}
	voters, err := ParseVoters(c.ControllerQuorumVoters)
	if err != nil {
		return Config{}, err
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
	if i := slices.IndexFunc(voters, func(v Voter) bool { return v.ID == c.NodeID }); i >= 0 {
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
