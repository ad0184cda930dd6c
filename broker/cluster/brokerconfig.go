package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// ControllerDirName is the directory, inside the broker's data directory,
// that holds the Raft log and snapshots.
const ControllerDirName = "controller"

// ConfigFromBroker derives a controller configuration from the broker's
// settings:
//   - controller.quorum.voters gives the voters; a voter advertises its own
//     entry's address;
//   - the controller binds the listener controller.listener.names names,
//     when set; otherwise a voter binds its own entry, and a broker that is
//     not a voter binds its advertised host with the voters' controller port
//     (every node runs its controller port on the same port number, 9095 by
//     default, as the provider lays them out);
//   - with no voters the broker is a cluster of one: the only voter, bound
//     (without a controller listener) on the client listener's host
//     (loopback when that is a wildcard, since no other machine ever dials
//     it) on a port the kernel picks;
//   - every client listener is registered with its advertised address, by
//     listener name, so that clients are answered with the endpoints of the
//     listener they connected on; the node sets ReplicationAddr;
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
	ls, err := c.Listeners()
	if err != nil {
		return Config{}, err
	}
	var endpoints []metadata.Listener
	for _, l := range ls {
		if l.Role != config.RoleClient {
			continue
		}
		host, port, err := config.AdvertisedHostPort(l)
		if err != nil {
			return Config{}, err
		}
		endpoints = append(endpoints, metadata.Listener{Name: l.Name, Host: host, Port: port, Protocol: l.Protocol})
	}
	host, err := c.ClientHost()
	if err != nil {
		return Config{}, err
	}
	out := Config{
		NodeID:    c.NodeID,
		Rack:      c.Rack,
		Voters:    voters,
		Dir:       filepath.Join(c.DataDir, ControllerDirName),
		ClusterID: c.ClusterID,
		Listeners: endpoints,
		Logger:    logger,

		HeartbeatInterval:    c.BrokerHeartbeatInterval,
		Lease:                c.BrokerSessionTimeout,
		RaftHeartbeatTimeout: c.ControllerFetchTimeout,
		RaftElectionTimeout:  c.ControllerElectionTimeout,
		MaxBrokerPartitions:  c.MaxBrokerPartitions,
	}
	ctl, named := c.RoleListener(config.RoleController)
	self := slices.IndexFunc(voters, func(v Voter) bool { return v.ID == c.NodeID })
	switch {
	case len(voters) == 0:
		local, err := LocalHost(c)
		if err != nil {
			return Config{}, err
		}
		out.Bind = net.JoinHostPort(local, "0")
		if named {
			// Its own address, as bound: nobody else dials it.
			out.Bind = ctl.Addr
			if h, p, _ := net.SplitHostPort(ctl.Addr); isWildcard(h) {
				out.Bind = net.JoinHostPort(local, p)
			}
		}
		// The only voter has no peer to hear from or to wait for votes
		// from: Raft's timeouts would only delay its first election at
		// each start, so they are short unless set.
		if !c.Explicit["controller.quorum.fetch.timeout.ms"] {
			out.RaftHeartbeatTimeout = SingleVoterRaftTimeout
		}
		if !c.Explicit["controller.quorum.election.timeout.ms"] {
			out.RaftElectionTimeout = SingleVoterRaftTimeout
		}
	case self >= 0:
		out.Bind, out.Advertise = voters[self].Addr, voters[self].Addr
		if named {
			_, vport, _ := net.SplitHostPort(voters[self].Addr)
			if _, port, _ := net.SplitHostPort(ctl.Addr); port != vport {
				return Config{}, fmt.Errorf("controller.listener.names: listener %s binds %s but controller.quorum.voters lists node %d at %s: the ports must agree", ctl.Name, ctl.Addr, c.NodeID, voters[self].Addr)
			}
			out.Bind = ctl.Addr
		}
	default:
		_, vport, err := net.SplitHostPort(voters[0].Addr)
		if err != nil {
			return Config{}, err
		}
		out.Bind = net.JoinHostPort(host, vport)
		out.Advertise = out.Bind
		if named {
			out.Bind = ctl.Addr
			h, p, _ := net.SplitHostPort(ctl.Advertised)
			if isWildcard(h) {
				h = host
			}
			out.Advertise = net.JoinHostPort(h, p)
		}
	}
	return out, nil
}

func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// SingleVoterRaftTimeout is the Raft heartbeat and election timeout of a
// cluster of one voter (unless configured): the delay before it elects
// itself at start.
const SingleVoterRaftTimeout = 50 * time.Millisecond

// LocalHost is where a cluster of one binds its controller and replication
// listeners: a loopback address, since only this process dials them. The
// client listener's host when that is a loopback address (tests give each
// broker its own), else 127.0.0.1, or ::1 beside an IPv6 client listener.
// Not the client listener's own host: those listeners are plaintext when
// none is named, and on a routable address anyone reaching the machine
// could fetch or propose metadata through them (finding 8 of
// docs/broker-security.md), whatever the client listener demands.
func LocalHost(c *config.Config) (string, error) {
	ls := c.ClientListeners()
	if len(ls) == 0 {
		return "", fmt.Errorf("no client listener")
	}
	host, _, err := net.SplitHostPort(ls[0].Addr)
	if err != nil {
		return "", fmt.Errorf("listener %s: %w", ls[0].Name, err)
	}
	ip := net.ParseIP(host)
	switch {
	case ip != nil && ip.IsLoopback():
		return host, nil
	case ip != nil && ip.To4() == nil && !ip.IsUnspecified():
		return "::1", nil
	}
	return "127.0.0.1", nil
}
