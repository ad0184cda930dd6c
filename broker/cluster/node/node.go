// Package node assembles what one broker runs to be part of a cluster (a
// single broker is a cluster of one): the controller (Raft metadata,
// registration, lease), the replica manager (leading and following
// partitions), the replication listener on the inter-broker port, and the
// server's read-your-writes metadata store on the Raft log. The server
// keeps serving clients; it produces through the partition leaders, asks
// LeaderEpoch before serving a consumer, and calls Shutdown on SIGTERM.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/replica"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/internal/fetchwire"
	"github.com/tributary/tributary/broker/internal/reqmem"
	"github.com/tributary/tributary/broker/quota"
	"github.com/tributary/tributary/broker/security/authstats"
	"github.com/tributary/tributary/broker/security/tlsconf"
	"github.com/tributary/tributary/broker/storage"
)

// Options configure a Node.
type Options struct {
	Config *config.Config
	// Store is the broker's open log store; the node creates the
	// partitions this broker replicates in it.
	Store *storage.Store
	// TopicConfig turns topic configs into storage settings (the server's
	// translation); nil means storage defaults.
	TopicConfig func(map[string]string) storage.TopicConfig
	// LagTimeMax is replica.lag.time.max.ms (default 30 s).
	LagTimeMax time.Duration
	Logger     *slog.Logger

	// ReplicationListener, when set, is used instead of listening on the
	// advertised host and inter.broker.listener.port.
	ReplicationListener net.Listener
	// Tune, when set, adjusts the controller configuration derived from
	// Config before it starts (tests shorten timings, pass listeners).
	Tune func(*cluster.Config)
	// Fetch shapes the follower fetchers.
	Fetch replica.FetcherConfig
	// ISRInterval is how often ISR changes are proposed (default 500 ms).
	ISRInterval time.Duration
	// OnLeadership is called when this broker starts or stops leading a
	// partition (see replica.ManagerConfig.OnLeadership); the group
	// coordinator follows the offsets topic's leaderships with it.
	OnLeadership func(tp replica.TopicPartition, leader bool, epoch int32)
	// OnHighWatermark is called when the high watermark of a partition
	// this broker leads moves up (see replica.ManagerConfig).
	OnHighWatermark func(tp replica.TopicPartition)
	// OnFetchServed, when set, is told of every follower Fetch the
	// replication listener answers (replica.ReplicationServer.OnFetch).
	OnFetchServed func(took time.Duration, requestBytes, recordBytes int)
	// InterBrokerAPIs are served on the replication listener besides
	// replication (the transaction coordinator's requests between brokers).
	InterBrokerAPIs map[int16]replica.InterBrokerAPI
	// Logs, when set, wraps the replica manager's access to the logs
	// (tests hold a log's opening to see what a broker does meanwhile).
	Logs func(replica.Logs) replica.Logs
	// ReadBudget is charged for the batches the replication listener
	// reads into memory for followers over TLS (nil: unbounded), the
	// budget of the client listeners' TLS fetches.
	ReadBudget *storage.ReadBudget
	// RequestMemory bounds the request bytes the replication listener
	// holds (nil: a bound of replica.RequestMemory of its own).
	RequestMemory *reqmem.Budget
}

// Node is a running cluster member.
type Node struct {
	Controller *cluster.Controller
	Replicas   *replica.Manager
	Metadata   *cluster.MetadataStore
	repl       *replica.ReplicationServer
	log        *slog.Logger
}

// Start joins the cluster (with no controller.quorum.voters, starts a
// cluster of one with this broker as its only voter) and waits, bounded by
// ctx, until the broker is registered and its metadata has caught up.
func Start(ctx context.Context, o Options) (*Node, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ccfg, err := cluster.ConfigFromBroker(o.Config, o.Logger)
	if err != nil {
		return nil, err
	}
	// In-cluster encryption: the controller port and the replication
	// listener over TLS, brokers presenting their certificates both ways.
	ctlTLS, err := PeerTLS(o.Config, config.RoleController, o.Logger)
	if err != nil {
		return nil, err
	}
	if ctlTLS != nil {
		ccfg.TLS = ctlTLS.Peers()
	}
	replTLS, err := PeerTLS(o.Config, config.RoleInterBroker, o.Logger)
	if err != nil {
		return nil, err
	}
	addr, advertise, err := replicationBind(o.Config, ccfg)
	if err != nil {
		return nil, err
	}
	ln := o.ReplicationListener
	if ln == nil {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("replication listener: %w", err)
		}
	}
	ccfg.ReplicationAddr = ln.Addr().String()
	if advertise != "" {
		ccfg.ReplicationAddr = net.JoinHostPort(advertise, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	fetch := o.Fetch
	if replTLS != nil {
		// A follower's fetch responses reach the socket in large writes,
		// not one per TLS record (fetchwire.Coalescer).
		ln = fetchwire.NewTLSListener(ln, replTLS.Peers().ServerConfig())
		fetch.TLS = replTLS.Peers().ClientConfig
	}
	if o.Tune != nil {
		o.Tune(&ccfg)
	}
	ctl, err := cluster.Start(ccfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	var logs replica.Logs = replica.StoreLogs{Store: o.Store, Config: o.TopicConfig}
	if o.Logs != nil {
		logs = o.Logs(logs)
	}
	mgr := replica.StartManager(replica.ManagerConfig{
		Control: ctl, Logs: logs,
		LagTimeMax: o.LagTimeMax, DefaultMinISR: int(o.Config.MinInsyncReplicas), ISRInterval: o.ISRInterval,
		Fetch: fetch, OnLeadership: o.OnLeadership, OnHighWatermark: o.OnHighWatermark, Logger: o.Logger,
		Throttle: replica.ThrottleConfig{
			LeaderRate: o.Config.LeaderReplicationThrottledRate, FollowerRate: o.Config.FollowerReplicationThrottledRate,
			Windows: quota.Config{Samples: o.Config.ReplicationQuotaWindowNum, Window: time.Duration(o.Config.ReplicationQuotaWindowSizeSeconds) * time.Second},
		},
	})
	n := &Node{
		Controller: ctl, Replicas: mgr,
		Metadata: &cluster.MetadataStore{Controller: ctl},
		repl:     serveReplication(ln, mgr, o, replTLS != nil),
		log:      o.Logger.With("component", "node"),
	}
	if err := n.waitReady(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// waitReady waits until the broker is registered, its metadata has caught
// up with its registration and holds the cluster id (which the active
// controller writes once, right after the first election), so that clients
// never see a cluster without an id, and the replica manager leads and
// follows what that metadata says.
func (n *Node) waitReady(ctx context.Context) error {
	if err := n.Controller.WaitRegistered(ctx); err != nil {
		return err
	}
	for {
		changed := n.Controller.Changed()
		if n.Controller.State().ClusterID != "" {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the cluster id in the metadata: %w", ctx.Err())
		}
	}
	return n.WaitCaughtUp(ctx)
}

// WaitCaughtUp waits until the replica manager acts on the metadata this
// node has applied so far: after a metadata change applied here, the
// partitions it gives this broker are led (or followed) with open logs.
func (n *Node) WaitCaughtUp(ctx context.Context) error {
	return n.Replicas.WaitReconciled(ctx, n.Controller.State().Index)
}

// PeerTLS is the TLS material of the inter-broker or controller listener
// when its protocol is SSL (nil for PLAINTEXT or no such listener). Its
// peers are the certificates of the CA of this broker's own (Peers): a
// broker whose certificate does not chain to the listener's truststore
// could accept no other, and does not start; nor does one whose
// certificate names another node (Peers.CheckNode).
func PeerTLS(c *config.Config, role config.ListenerRole, log *slog.Logger) (*tlsconf.TLS, error) {
	l, ok := c.RoleListener(role)
	if !ok || l.Protocol != config.ProtocolSSL {
		return nil, nil
	}
	s, err := tlsconf.Load(c.Configured, l.Name)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	t, err := tlsconf.New(s, log.With("listener", l.Name))
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if err := t.Peers().Check(); err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if err := t.Peers().CheckNode(c.NodeID); err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	return t, nil
}

// replicationBind is where the replication listener binds, and the host
// followers are given when that is not the bound address ("" when it is):
//   - the listener inter.broker.listener.name names, advertised at its
//     advertised host (the broker's client host for a wildcard);
//   - otherwise, in a cluster configured with voters, the advertised host
//     and inter.broker.listener.port;
//   - otherwise (a cluster of one, whose replication port nobody dials), the
//     host its controller binds and the configured port only when one was
//     given.
func replicationBind(c *config.Config, ccfg cluster.Config) (bind, advertise string, err error) {
	if l, ok := c.RoleListener(config.RoleInterBroker); ok {
		host, _, err := net.SplitHostPort(l.Advertised)
		if err != nil {
			return "", "", fmt.Errorf("inter.broker.listener.name %s: %w", l.Name, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if host, err = c.ClientHost(); err != nil {
				return "", "", err
			}
		}
		return l.Addr, host, nil
	}
	if c.ControllerQuorumVoters != "" {
		return net.JoinHostPort(ccfg.Listeners[0].Host, strconv.Itoa(c.InterBrokerPort)), "", nil
	}
	host, err := cluster.LocalHost(c)
	if err != nil {
		return "", "", err
	}
	port := 0
	if c.Explicit["inter.broker.listener.port"] {
		port = c.InterBrokerPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), "", nil
}

// Leader returns the leader state of a partition this broker leads; ok is
// false when it does not lead it (answer NOT_LEADER_OR_FOLLOWER).
func (n *Node) Leader(topic string, partition int32) (*replica.Leader, bool) {
	l, _, ok := n.Replicas.Leader(topic, partition)
	return l, ok
}

// ReplicationAddr is where followers fetch from this broker.
func (n *Node) ReplicationAddr() string { return n.repl.Addr() }

// LeaderEpoch is the leader epoch of a partition this broker leads; ok is
// false when it does not lead it (answer NOT_LEADER_OR_FOLLOWER).
func (n *Node) LeaderEpoch(topic string, partition int32) (epoch int32, ok bool) {
	l, _, ok := n.Replicas.Leader(topic, partition)
	if !ok {
		return 0, false
	}
	return l.Epoch(), true
}

// Produce runs one partition's produce as the leader: it refuses when this
// broker does not lead (replica.ErrNotLeader) or, for acks=all, when the
// ISR is below min.insync.replicas (replica.ErrNotEnoughReplicas); calls
// appendFn with the leader epoch to write with; tells the leader tracker
// where the durable log ends; and for acks=all waits until every ISR member
// has the batch. replica.ErrorCode maps the errors to Kafka codes.
func (n *Node) Produce(ctx context.Context, topic string, partition int32, acks int16, appendFn func(leaderEpoch int32) (storage.AppendResult, error)) (storage.AppendResult, error) {
	l, _, ok := n.Replicas.Leader(topic, partition)
	if !ok {
		return storage.AppendResult{}, fmt.Errorf("%w: %s-%d", replica.ErrNotLeader, topic, partition)
	}
	if acks == -1 {
		if err := l.CheckAcksAll(); err != nil {
			return storage.AppendResult{}, err
		}
	}
	res, err := appendFn(l.Epoch())
	if err != nil {
		return res, err
	}
	if !res.Duplicate {
		l.Appended(res.LastOffset + 1)
	}
	if acks == -1 {
		// A duplicate waits too: the original may not be replicated yet.
		if err := l.WaitReplicated(ctx, res.LastOffset); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Shutdown is the controlled shutdown for SIGTERM: move leaderships away
// (bounded by ctx), then stop. Call it before closing client listeners.
func (n *Node) Shutdown(ctx context.Context) error {
	left, err := n.Controller.ControlledShutdown(ctx)
	if err != nil {
		n.log.Warn("controlled shutdown incomplete", "leaderships_left", left, "err", err)
	}
	return errors.Join(err, n.Close())
}

// Close stops without moving leadership first (a crash, as far as the
// cluster can tell).
func (n *Node) Close() error {
	n.repl.Close()
	n.Replicas.Close()
	return n.Controller.Close()
}

// ReplicationAuthentications are the replication listener's counts of
// TLS handshakes (nil without TLS; the controller's are
// Controller.Authentications).
func (n *Node) ReplicationAuthentications() *authstats.Listener { return n.repl.Authentications() }

// ReplicationPeerRefusals reads the replication listener's refusals of
// peers (the controller's are Controller.PeerRefusals).
func (n *Node) ReplicationPeerRefusals() replica.PeerRefusals { return n.repl.PeerRefusals() }

// serveReplication starts the replication listener and sets its fetch
// observer (a fetch answered in the instant between the two, before the
// broker is even registered, goes uncounted).
func serveReplication(ln net.Listener, mgr *replica.Manager, o Options, overTLS bool) *replica.ReplicationServer {
	srv := replica.ServeReplication(ln, mgr.Lookup, mgr.Throttle(), o.InterBrokerAPIs, o.ReadBudget, o.Logger)
	if overTLS {
		srv.CountAuthentications(authstats.NewListener("replication", true))
	}
	if o.RequestMemory != nil {
		srv.UseRequestMemory(o.RequestMemory)
	}
	if o.OnFetchServed != nil {
		srv.OnFetch(o.OnFetchServed)
	}
	return srv
}
