package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/broker/cluster/raftstore"
	"github.com/tributary/tributary/broker/security/authstats"
)

// Controller is one node's part of the cluster control plane: a member of
// the Raft metadata group (voter or non-voter), the broker's registration
// and lease, and, on the Raft leader, the active controller's duties
// (fencing brokers whose lease lapsed, preferred-leader rebalancing).
type Controller struct {
	cfg   Config
	log   *slog.Logger
	fsm   *metadata.FSM
	raft  *raft.Raft
	store *raftstore.Store
	snaps *snapshotStore
	trans *raft.NetworkTransport
	mux   *mux
	// userOpTurn orders the check and the application of the commands
	// userOpType names (applyLocal): a one-slot channel, taken before the
	// check and given back when the command's Raft future resolves, so
	// that a caller waiting for its turn gives up at its own deadline.
	userOpTurn chan struct{}
	// catchUp records this node's catch-up as a newly elected active
	// controller (catchup.go).
	catchUp leaderCatchUp

	// ready is closed once raft is set: the port accepts connections
	// before that, and RPCs wait for it.
	ready chan struct{}

	// probing holds the brokers being probed after a report that they
	// are unreachable, so that reports from several followers cost one
	// probe.
	probingMu sync.Mutex
	probing   map[int32]bool
	// hastening is set while hastenElection waits for an election.
	hastening atomic.Bool
	// leases holds the lease renewals this node received as the active
	// controller (leases.go).
	leases leaseTable

	brokerEpoch atomic.Int64 // 0 until registered
	firstEpoch  atomic.Int64 // the first registration's epoch (its Raft index)
	// versionReported is the broker epoch whose metadata version the
	// cluster took (reportMetadataVersion).
	versionReported atomic.Int64
	registered      chan struct{}
	regOnce         sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	// bgMu orders the start of a background goroutine outside goLoop
	// (hastenElection) with Close: it starts before Close waits, or not.
	bgMu sync.Mutex
	// rpcConns and rpcRequests count the RPC connections this node's
	// port accepted and the requests it read on them.
	rpcConns, rpcRequests atomic.Int64
	// unboundPeers counts the RPC and Raft connections whose certificate
	// names no node; refusedNodeIDs the requests refused for speaking for
	// a node other than their certificate's (ErrNodeIDMismatch),
	// refusedDuty those refused as the active controller's own commands
	// (ErrControllerDuty) (rpcPeer.check).
	unboundPeers, refusedNodeIDs, refusedDuty atomic.Int64
	// refusedRaftRPCs counts the Raft RPCs refused for a sender other
	// than their certificate's node (guardRaftConn).
	refusedRaftRPCs atomic.Int64
}

// PeerRefusals are the controller listener's refusals of peers that speak
// for another node, counted since the start: the broker exports them as
// tributary_peer_refusals_total and tributary_peer_unbound_connections_total
// (docs/broker-metrics.md), for an operator to alarm on.
type PeerRefusals struct {
	// NodeMismatch: controller requests refused with ErrNodeIDMismatch;
	// ControllerDuty: those refused with ErrControllerDuty; RaftRPC: Raft
	// RPCs refused (their connection closed) for a sender other than the
	// certificate's node.
	NodeMismatch, ControllerDuty, RaftRPC int64
	// Unbound: RPC and Raft connections served unbound because their
	// certificate names no node.
	Unbound int64
}

// Authentications are the controller port's counts of TLS handshakes
// (nil when the port runs without TLS).
func (ctl *Controller) Authentications() *authstats.Listener {
	if ctl.mux == nil {
		return nil
	}
	return ctl.mux.auth
}

// PeerRefusals reads the refusal counters.
func (ctl *Controller) PeerRefusals() PeerRefusals {
	return PeerRefusals{
		NodeMismatch:   ctl.refusedNodeIDs.Load(),
		ControllerDuty: ctl.refusedDuty.Load(),
		RaftRPC:        ctl.refusedRaftRPCs.Load(),
		Unbound:        ctl.unboundPeers.Load(),
	}
}

// Start opens the Raft state in cfg.Dir, listens on cfg.Bind, bootstraps
// the Raft cluster from cfg.Voters when this node is a voter starting for
// the first time (with no voters, as the only voter of a cluster of one),
// and starts registering the broker. It returns without
// waiting for a leader; use WaitRegistered to wait for the broker to be
// part of the cluster.
func Start(c Config) (*Controller, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating controller directory: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Bind); err != nil {
			return nil, fmt.Errorf("controller listener: %w", err)
		}
	}
	advertise := ln.Addr()
	if cfg.Advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("controller advertise address %q: %w", cfg.Advertise, err)
		}
		// Kept as written (a name is not resolved here): it must match
		// the voter list and is what the other nodes dial.
		advertise = advertisedAddr(cfg.Advertise)
	}
	cfg.Advertise = advertise.String()
	if len(cfg.Voters) == 0 {
		// A cluster of one: this node is the only voter, wherever it
		// listens. Nobody else dials it, so the port may change from one
		// start to the next (see refreshOwnAddress).
		cfg.Voters = []Voter{{ID: cfg.NodeID, Addr: cfg.Advertise}}
	}
	if i := slices.IndexFunc(cfg.Voters, func(v Voter) bool { return v.ID == cfg.NodeID }); i >= 0 && cfg.Voters[i].Addr != cfg.Advertise {
		ln.Close()
		return nil, fmt.Errorf("node %d advertises %s but controller.quorum.voters lists it at %s", cfg.NodeID, cfg.Advertise, cfg.Voters[i].Addr)
	}

	ctl := &Controller{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "controller", "node", cfg.NodeID),
		fsm:        metadata.New(cfg.Logger.With("component", "metadata")),
		registered: make(chan struct{}),
		ready:      make(chan struct{}),
		userOpTurn: make(chan struct{}, 1),
		probing:    map[int32]bool{},
	}
	ctl.ctx, ctl.cancel = context.WithCancel(context.Background())
	ctl.mux = newMux(ln, advertise, cfg.TLS, ctl.log, ctl.serveRPC, ctl.guardRaftConn)
	if err := ctl.startRaft(); err != nil {
		ctl.cancel()
		ctl.mux.close()
		if ctl.store != nil {
			ctl.store.Close()
		}
		return nil, err
	}
	close(ctl.ready)
	ctl.goLoop(ctl.brokerLoop)
	ctl.goLoop(ctl.activeControllerLoop)
	ctl.goLoop(ctl.storeSpaceLoop)
	if !cfg.isVoter() {
		ctl.goLoop(ctl.joinLoop)
	}
	return ctl, nil
}

// advertisedAddr is a host:port as configured.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

func (ctl *Controller) goLoop(fn func()) {
	ctl.wg.Add(1)
	go func() {
		defer ctl.wg.Done()
		fn()
	}()
}

// slogWriter hands hashicorp/raft's log lines to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "[ERROR]"):
		w.log.Error(line)
	case strings.Contains(line, "[WARN]"):
		w.log.Warn(line)
	default:
		w.log.Info(line)
	}
	return len(p), nil
}

func (ctl *Controller) startRaft() error {
	cfg := ctl.cfg
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: slogWriter{ctl.log}, DisableTime: true})
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.NodeID)
	rc.Logger = hlog
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.SnapshotThreshold
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	rc.HeartbeatTimeout = cfg.RaftHeartbeatTimeout
	rc.ElectionTimeout = cfg.RaftElectionTimeout
	rc.LeaderLeaseTimeout = cfg.RaftLeaderLease
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft timings (controller.quorum.fetch.timeout.ms, controller.quorum.election.timeout.ms): %w", err)
	}
	var err error
	if ctl.store, err = raftstore.Open(filepath.Join(cfg.Dir, "raft.db"), raftstore.Options{Reserve: max(cfg.MetadataLogReserve, 0), Logger: ctl.log}); err != nil {
		return err
	}
	if ctl.snaps, err = newSnapshotStore(cfg.Dir, ctl.log, hlog); err != nil {
		return fmt.Errorf("raft snapshot store: %w", err)
	}
	snaps := ctl.snaps
	ctl.trans = newRaftTransport(streamLayer{ctl.mux}, hlog)
	var logs raft.LogStore = ctl.store
	if cfg.wrapLogStore != nil {
		logs = cfg.wrapLogStore(logs)
	}
	hasState, err := raft.HasExistingState(logs, ctl.store, snaps)
	if err != nil {
		return fmt.Errorf("reading raft state: %w", err)
	}
	var fsm raft.FSM = ctl.fsm
	if cfg.wrapFSM != nil {
		fsm = cfg.wrapFSM(fsm)
	}
	if ctl.raft, err = raft.NewRaft(rc, fsm, logs, ctl.store, snaps, ctl.trans); err != nil {
		return fmt.Errorf("starting raft: %w", err)
	}
	if !hasState && cfg.isVoter() {
		// Every voter bootstraps with the same configuration; Raft allows
		// that, and whichever wins the first election leads.
		var servers []raft.Server
		for _, v := range cfg.Voters {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: serverID(v.ID), Address: raft.ServerAddress(v.Addr)})
		}
		if err := ctl.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrapping the metadata quorum: %w", err)
		}
		ctl.log.Info("bootstrapped the metadata quorum", "voters", len(servers))
	}
	return nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// newRaftTransport is the metadata quorum's Raft transport. It does not
// pipeline AppendEntries (MaxRPCsInFlight 1): hashicorp/raft's pipeline
// can deadlock when a follower's answer ends it (a newer term once a
// partition heals, a log mismatch). pipelineDecode returns and leaves the
// pipeline's done channel without a reader, the send loop may still issue
// one more AppendEntries, which waits for room forever while the decoder
// waits on the done channel, and pipeline.Close runs only after that send
// returns. The replication goroutine never ends: that follower gets no
// more entries from this leader, and Raft.Shutdown waits for it. Seen in
// the chaos run's partitions: a broker that had been the active
// controller, cut off and healed, then sent SIGTERM, stayed in Shutdown
// until killed, its goroutines in netPipeline.AppendEntries and
// decodeResponses. Unpipelined, each AppendEntries waits for its answer
// (still up to MaxAppendEntries entries each), which the metadata log's
// rate does not notice.
func newRaftTransport(stream raft.StreamLayer, hlog hclog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog, MaxRPCsInFlight: 1,
	})
}

// Close stops the loops and Raft and releases the port and files. It does
// not move leadership first: call ControlledShutdown before for that.
func (ctl *Controller) Close() error {
	ctl.bgMu.Lock()
	closing := ctl.closed.CompareAndSwap(false, true)
	ctl.bgMu.Unlock()
	if !closing {
		return nil
	}
	ctl.cancel()
	ctl.wg.Wait()
	err, ended := waitShutdown(ctl.raft.Shutdown(), raftShutdownWait, func() {
		ctl.log.Error("the metadata quorum's Raft did not stop in time: closing its transport under it", "waited", raftShutdownWait)
		ctl.mux.close()
		_ = ctl.trans.Close()
	})
	if !ended {
		// Raft's goroutines may still use the store: leave it to the
		// process's exit rather than close it under them.
		ctl.log.Error("the metadata quorum's Raft did not stop: its log store is left open", "waited", 2*raftShutdownWait)
		return fmt.Errorf("metadata quorum: raft did not stop within %s", 2*raftShutdownWait)
	}
	ctl.mux.close()
	if cerr := ctl.trans.Close(); err == nil {
		err = cerr
	}
	if cerr := ctl.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// raftShutdownWait bounds each of Close's two waits for Raft.Shutdown.
// Shutdown waits for every replication goroutine, and one stuck in the
// transport (see newRaftTransport: a pipeline that deadlocked) would hold
// the broker's shutdown past its grace, until systemd kills it without
// the clean-shutdown marker the log's recovery saves time with.
const raftShutdownWait = 10 * time.Second

// waitShutdown waits up to wait for f; if it has not ended, calls unstick
// (closing the connections a stuck goroutine waits on) and waits once
// more. ended is false when f did not end either time.
func waitShutdown(f raft.Future, wait time.Duration, unstick func()) (err error, ended bool) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case err := <-done:
		return err, true
	case <-timer.C:
	}
	unstick()
	timer.Reset(wait)
	select {
	case err := <-done:
		return err, true
	case <-timer.C:
		return nil, false
	}
}

// Addr is the controller port's advertised address.
func (ctl *Controller) Addr() string { return ctl.cfg.Advertise }

// NodeID is this node's id.
func (ctl *Controller) NodeID() int32 { return ctl.cfg.NodeID }

// RaftStoreReserve is the space the Raft store has set aside on the data
// volume past its data (raftstore.Store.Reserve); ok is false when it
// keeps none.
func (ctl *Controller) RaftStoreReserve() (bytes int64, ok bool) {
	if ctl.store == nil {
		return 0, false
	}
	return ctl.store.Reserve()
}

// RaftStoreOnReserve reports whether the Raft store lives on its reserve:
// the data volume is full (raftstore.Store.OnReserve).
func (ctl *Controller) RaftStoreOnReserve() bool {
	return ctl.store != nil && ctl.store.OnReserve()
}

// RaftStoreLogStopped reports whether the Raft store refuses log entries
// to keep the rest of its reserve for the term and vote: the broker
// stores and applies no metadata until space frees
// (raftstore.Store.LogStopped).
func (ctl *Controller) RaftStoreLogStopped() bool {
	return ctl.store != nil && ctl.store.LogStopped()
}

// State is this node's latest applied metadata (it may lag the leader by
// the Raft replication delay). Do not modify it.
func (ctl *Controller) State() *metadata.State { return ctl.fsm.Current() }

// Changed is closed at the next metadata change.
func (ctl *Controller) Changed() <-chan struct{} { return ctl.fsm.Changed() }

// Err reports a halted state machine (see metadata.ErrHalted).
func (ctl *Controller) Err() error { return ctl.fsm.Err() }

// IsActive reports whether this node is the active controller (Raft leader).
func (ctl *Controller) IsActive() bool { return ctl.raft.State() == raft.Leader }

// ActiveController returns the id of the Raft leader, if known.
func (ctl *Controller) ActiveController() (int32, bool) {
	_, id := ctl.raft.LeaderWithID()
	if id == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(id), 10, 32)
	return int32(n), err == nil
}

func (ctl *Controller) leaderAddr() (string, bool) {
	addr, _ := ctl.raft.LeaderWithID()
	return string(addr), addr != ""
}

// BrokerEpoch is this broker's registration epoch (0 until registered).
func (ctl *Controller) BrokerEpoch() int64 { return ctl.brokerEpoch.Load() }

// CaughtUp reports whether st, a state of this node's metadata, holds
// this process's first registration. The quorum committed that
// registration after every change this broker could have missed while it
// was down, so such a state is at least as new as the assignments this
// broker's logs were written under: a partition st does not give this
// broker is really not its own any more. A state replayed before that
// point (a restart reads the metadata from its snapshot and log first)
// can be older than the logs, and says nothing about them.
func (ctl *Controller) CaughtUp(st *metadata.State) bool {
	first := ctl.firstEpoch.Load()
	return first > 0 && st != nil && st.Index >= first
}

// WaitRegistered waits until the broker has registered with the cluster
// and this node's metadata has caught up to its registration: after it
// returns, State holds every change committed before this broker joined
// (so a topic missing from it was really deleted).
func (ctl *Controller) WaitRegistered(ctx context.Context) error {
	select {
	case <-ctl.registered:
	case <-ctx.Done():
		return fmt.Errorf("waiting for broker %d to register: %w", ctl.cfg.NodeID, ctx.Err())
	}
	if _, err := ctl.fsm.WaitFor(ctx, func(st *metadata.State) bool { return st.Index >= ctl.firstEpoch.Load() }); err != nil {
		return fmt.Errorf("waiting for broker %d's metadata to catch up: %w", ctl.cfg.NodeID, err)
	}
	return nil
}

// ErrCommitTimeout means the active controller did not commit a command
// before the caller's deadline (its request's timeout, or rpcTimeout for
// a request from a broker of an older version). The outcome is unknown:
// the command may still commit, so a caller that retries must be able to
// tell a first try that took effect (rpcRequest.Retry). It matches
// context.DeadlineExceeded, which the server answers REQUEST_TIMED_OUT,
// a retriable code.
var ErrCommitTimeout error = deadlineError("the metadata quorum did not commit the change in time")

// ErrUserOpTurn means a user operation's deadline passed while it waited
// for the one before it to commit (applyLocal): it was never proposed.
var ErrUserOpTurn error = deadlineError("the metadata change before this one did not commit in time")

// deadlineError is an error that matches context.DeadlineExceeded, so
// that callers that answer a timeout for it do so for these too, here and
// once they crossed the controller RPC (a remoteError unwraps to them).
type deadlineError string

func (e deadlineError) Error() string { return string(e) }
func (e deadlineError) Unwrap() error { return context.DeadlineExceeded }

// unlessDeadline says why ctx ended when that is not its deadline (the
// controller closing): the errors above say the deadline themselves.
func unlessDeadline(ctx context.Context) string {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
		return ": " + cause.Error()
	}
	return ""
}

// applyLocal applies an encoded command through this node's Raft, which
// must be the leader, and waits for it until ctx ends. Time-carrying
// commands get the leader's clock.
//
// Raft's Apply only bounds the enqueue: its future resolves when the
// entry commits or the leadership is lost, and a leader that keeps its
// lease without committing (followers that answer its heartbeats but
// cannot store entries: a stalled or full disk) keeps it unresolved for
// minutes (3 min 20 s seen, docs/benchmarks.md raftres18). So the wait
// ends at ctx too, with ErrCommitTimeout; the future is still waited for
// in the background, since the entry may yet commit.
func (ctl *Controller) applyLocal(ctx context.Context, cmd []byte) (json.RawMessage, error) {
	if ctl.raft.State() != raft.Leader {
		return nil, ErrNotController
	}
	// Every check below reads this node's state: it must hold what the
	// previous controller committed (catchup.go).
	if err := ctl.caughtUpAsLeader(ctx); err != nil {
		return nil, err
	}
	cmd, err := stampTime(cmd, time.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	// What a replica would halt on never reaches the log. (stampTime
	// re-encodes the few types it stamps, as it always has: a field of
	// theirs this binary does not know is dropped there, not refused.)
	if err := metadata.CheckDecodes(cmd); err != nil {
		return nil, err
	}
	// A broker proposing through this node checked its own metadata,
	// which may be older than ours: a broker of an older version may
	// have registered since.
	if err := ctl.awaitProposable(ctx, metadata.CommandType(cmd[0])); err != nil {
		return nil, err
	}
	// The bounds on a client's request (limits.go) are checked on the
	// state this command will apply to: commands that add partition
	// replicas are checked and applied one at a time, so that two
	// requests cannot both pass max.broker.partitions on the same count.
	// The turn is given back only once the command's future resolves,
	// not when this caller stops waiting: until then the command may
	// still commit, and the next check must count it.
	userOp := userOpType(metadata.CommandType(cmd[0]))
	if userOp {
		select {
		case ctl.userOpTurn <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (command type %d, not proposed)%s", ErrUserOpTurn, cmd[0], unlessDeadline(ctx))
		}
		if err := ctl.checkUserOp(ctl.fsm.Current(), cmd); err != nil {
			<-ctl.userOpTurn
			return nil, err
		}
	}
	// Apply's timeout bounds only the enqueue; past it nothing was
	// proposed.
	enqueue := rpcTimeout
	if dl, ok := ctx.Deadline(); ok {
		enqueue = min(enqueue, time.Until(dl))
	}
	if enqueue <= 0 || ctx.Err() != nil {
		if userOp {
			<-ctl.userOpTurn
		}
		return nil, fmt.Errorf("%w (command type %d, not proposed)%s", ErrCommitTimeout, cmd[0], unlessDeadline(ctx))
	}
	start := time.Now()
	f := ctl.raft.Apply(cmd, enqueue)
	resolved := make(chan struct{})
	go func() {
		defer close(resolved)
		_ = f.Error()
		if userOp {
			<-ctl.userOpTurn
		}
	}()
	select {
	case <-resolved:
	case <-ctx.Done():
		ctl.log.Warn("the metadata quorum did not commit a change by its deadline; it may still commit", "command_type", cmd[0], "waited", time.Since(start).Round(time.Millisecond))
		return nil, fmt.Errorf("%w (command type %d, waited %s; it may still commit)%s", ErrCommitTimeout, cmd[0], time.Since(start).Round(time.Millisecond), unlessDeadline(ctx))
	}
	if err := f.Error(); err != nil {
		switch {
		case lostLeadership(err):
			return nil, fmt.Errorf("%w: %v", ErrNotController, err)
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, fmt.Errorf("%w (command type %d, not proposed): %v", ErrCommitTimeout, cmd[0], err)
		}
		return nil, fmt.Errorf("applying metadata command: %w", err)
	}
	res, ok := f.Response().(*metadata.Result)
	if !ok {
		return nil, fmt.Errorf("metadata state machine answered %T", f.Response())
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return encodeValue(res.Value)
}

// lostLeadership reports a Raft future's error that means this node is
// not, or no longer, the leader: the request belongs to the next active
// controller (ErrNotController).
func lostLeadership(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// stampTime sets NowMs of the commands that carry the leader's clock.
func stampTime(b []byte, nowMs int64) ([]byte, error) {
	if len(b) == 0 {
		return nil, metadata.ErrBadCommand
	}
	var cmd metadata.Command
	switch metadata.CommandType(b[0]) {
	case metadata.TypeRegisterBroker:
		var c metadata.RegisterBroker
		if err := json.Unmarshal(b[1:], &c); err != nil {
			return nil, fmt.Errorf("%w: %v", metadata.ErrBadCommand, err)
		}
		c.NowMs = nowMs
		cmd = c
	case metadata.TypeBrokerHeartbeat:
		var c metadata.BrokerHeartbeat
		if err := json.Unmarshal(b[1:], &c); err != nil {
			return nil, fmt.Errorf("%w: %v", metadata.ErrBadCommand, err)
		}
		c.NowMs = nowMs
		cmd = c
	case metadata.TypeExpireLeases:
		cmd = metadata.ExpireLeases{NowMs: nowMs}
	default:
		return b, nil
	}
	return metadata.Encode(cmd)
}

// propose sends a command to the active controller, wherever it is, and
// retries (with the leader hint, then every voter) while there is no
// leader or the leader moves, until ctx ends.
//
// A command type some registered broker does not know is refused here
// with metadata.ErrMetadataVersion (and again by the active controller,
// whose metadata may be newer): applying it would halt that broker.
func (ctl *Controller) propose(ctx context.Context, cmd metadata.Command) (json.RawMessage, error) {
	if err := ctl.fsm.Current().CheckProposable(cmd.Type()); err != nil {
		// This node's metadata may be behind the log: the brokers'
		// version reports can be committed and not yet applied here (a
		// cluster just started refused its first quota so, 3 runs in 6
		// of TestQuotaReachesEveryBroker). Refuse only if the check still
		// fails once this node has what the active controller applied.
		if werr := ctl.WaitCaughtUpWithController(ctx); werr != nil {
			return nil, err
		}
		if err := ctl.awaitProposable(ctx, cmd.Type()); err != nil {
			return nil, err
		}
	}
	b, err := metadata.Encode(cmd)
	if err != nil {
		return nil, err
	}
	return ctl.onLeader(ctx, rpcRequest{Op: opApply, Command: b})
}

// awaitProposable is CheckProposable on this node's metadata, except that
// a refusal only for brokers that registered and have not reported their
// metadata version yet (metadata.State.AwaitsVersionReport) waits for
// those reports, until ctx ends or versionReportGrace passes. A broker
// registers and then reports, in two commits: without the wait, every
// restart of a broker refused the newer commands of every other broker's
// clients for a moment (client quotas on a cluster just started, in CI).
// A broker of an older version never reports; its refusal comes after
// the grace.
func (ctl *Controller) awaitProposable(ctx context.Context, t metadata.CommandType) error {
	st := ctl.fsm.Current()
	if err := st.CheckProposable(t); err == nil || !st.AwaitsVersionReport(t) {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ctl.versionReportGrace())
	defer cancel()
	st, _ = ctl.fsm.WaitFor(ctx, func(st *metadata.State) bool {
		return st.CheckProposable(t) == nil || !st.AwaitsVersionReport(t)
	})
	return st.CheckProposable(t)
}

// versionReportGrace is how long a command waits for a registered
// broker's metadata version report: two of its report's attempts (the
// first right after the registration, the next at the heartbeat after a
// failure), each bounded as reportMetadataVersion bounds it.
func (ctl *Controller) versionReportGrace() time.Duration {
	return 2*min(2*ctl.cfg.HeartbeatInterval, ctl.cfg.Lease) + ctl.cfg.HeartbeatInterval
}

// onLeader runs a request on the active controller: here if this node is
// it, else over the controller port, retrying (with the leader hint, then
// every voter) while there is no leader or it moves, until ctx ends.
func (ctl *Controller) onLeader(ctx context.Context, req rpcRequest) (json.RawMessage, error) {
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if ctl.closed.Load() {
			return nil, ErrShuttingDown
		}
		req.Retry = req.Retry || attempt > 0
		var v json.RawMessage
		var err error
		target, known := ctl.leaderAddr()
		switch {
		case ctl.raft.State() == raft.Leader:
			v, err = ctl.handleLocal(ctx, req)
		default:
			if !known {
				target = ctl.cfg.Voters[attempt%len(ctl.cfg.Voters)].Addr
			}
			var resp *rpcResponse
			timeout := rpcTimeout
			if dl, ok := ctx.Deadline(); ok {
				timeout = min(timeout, time.Until(dl))
			}
			// The controller stops waiting for the commit a little
			// before this node stops waiting for its answer, so that the
			// answer (a timeout: the outcome unknown) arrives.
			req.TimeoutMs = max((timeout - timeout/10).Milliseconds(), 1)
			resp, err = ctl.mux.call(target, req, timeout)
			if err == nil {
				v, err = resp.Value, resp.Err.err()
			} else {
				if known && errors.Is(err, syscall.ECONNREFUSED) {
					ctl.hastenElection(target)
				}
				err = fmt.Errorf("%w: %v", ErrNotController, err)
			}
		}
		if err == nil || !errors.Is(err, ErrNotController) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s on the active controller: %w (last error: %v)", req.Op, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, ctl.retryCap())
	}
}

// handleLocal runs a request on this node, the active controller, waiting
// for what it proposes until ctx ends.
func (ctl *Controller) handleLocal(ctx context.Context, req rpcRequest) (json.RawMessage, error) {
	switch req.Op {
	case opApply, opCreateTopic, opCreatePartitions, opUnregister, opAppliedIndex:
		// These answer or decide on this node's state (a retry's
		// outcome, the partitions a topic has, whether a broker is
		// registered, the applied index), which must hold what the
		// previous controller committed (catchup.go). A heartbeat's
		// renewal does not wait: a lease must not depend on a commit, and
		// a state that lags only delays an unfencing (which waits, in
		// applyLocal) to the next heartbeat.
		if err := ctl.caughtUpAsLeader(ctx); err != nil {
			return nil, err
		}
	}
	switch req.Op {
	case opApply:
		if req.Retry && ctl.appliedBefore(req.Command) {
			return nil, nil
		}
		return ctl.applyLocal(ctx, req.Command)
	case opJoin:
		return nil, ctl.addNonvoter(req.NodeID, req.RaftAddr)
	case opCreateTopic:
		return ctl.createTopicLocal(ctx, req.Topic)
	case opCreatePartitions:
		return ctl.createPartitionsLocal(ctx, req.Topic, req.Retry)
	case opUnreachable:
		return encodeValue(ctl.probeAndFence(req.NodeID))
	case opUnregister:
		return nil, ctl.unregisterLocal(ctx, req.NodeID)
	case opHeartbeat:
		return ctl.heartbeatLocal(ctx, req.NodeID, req.BrokerEpoch, req.LeaseMs)
	case opAppliedIndex:
		return ctl.appliedIndexLocal()
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownRequest, req.Op)
}

// appliedBefore reports whether a retried command's effect is in the state
// already, so that its retry answers as the lost first answer would have.
// Only a deletion is told apart this way: its command names the id of the
// topic it deletes, so a topic of that name created since is not it.
func (ctl *Controller) appliedBefore(b []byte) bool {
	if len(b) == 0 || metadata.CommandType(b[0]) != metadata.TypeDeleteTopic {
		return false
	}
	var c metadata.DeleteTopic
	if err := json.Unmarshal(b[1:], &c); err != nil || c.ID == (metadata.TopicID{}) {
		return false
	}
	_, exists := ctl.fsm.Current().TopicByID(c.ID)
	return !exists
}

func proposeAs[T any](ctx context.Context, ctl *Controller, cmd metadata.Command) (T, error) {
	return decodeAs[T](ctl.propose(ctx, cmd))
}

func (ctl *Controller) addNonvoter(id int32, addr string) error {
	if ctl.raft.State() != raft.Leader {
		return ErrNotController
	}
	f := ctl.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == serverID(id) && string(s.Address) == addr {
			return nil
		}
		if s.ID == serverID(id) && s.Suffrage == raft.Voter {
			return fmt.Errorf("node %d is a voter at %s; it cannot join from %s", id, s.Address, addr)
		}
	}
	if err := ctl.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, rpcTimeout).Error(); err != nil {
		return fmt.Errorf("adding node %d as a non-voter: %w", id, err)
	}
	ctl.log.Info("added a non-voter to the metadata quorum", "joiner", id, "addr", addr)
	return nil
}

// joinLoop makes a non-voter part of the Raft configuration, so that the
// leader replicates the metadata log to it.
func (ctl *Controller) joinLoop() {
	for attempt := 0; ; attempt++ {
		if ctl.inConfiguration() {
			return
		}
		target, known := ctl.leaderAddr()
		if !known {
			target = ctl.cfg.Voters[attempt%len(ctl.cfg.Voters)].Addr
		}
		resp, err := ctl.mux.call(target, rpcRequest{Op: opJoin, NodeID: ctl.cfg.NodeID, RaftAddr: ctl.cfg.Advertise}, rpcTimeout)
		if err == nil && resp.Err != nil {
			err = resp.Err.err()
			if resp.Leader != "" {
				target = resp.Leader
			}
		}
		if err == nil {
			ctl.log.Info("joined the metadata quorum as a non-voter", "via", target)
		} else if attempt%20 == 19 {
			ctl.log.Warn("still joining the metadata quorum", "err", err)
		}
		if !ctl.sleep(ctl.cfg.HeartbeatInterval) {
			return
		}
	}
}

func (ctl *Controller) inConfiguration() bool {
	f := ctl.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return slices.ContainsFunc(f.Configuration().Servers, func(s raft.Server) bool { return s.ID == serverID(ctl.cfg.NodeID) })
}

// sleep waits d or until Close; false when closing.
func (ctl *Controller) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctl.ctx.Done():
		return false
	}
}

// brokerLoop registers the broker, then renews its lease every heartbeat
// interval; a refused heartbeat (stale epoch: the cluster fenced this
// incarnation and forgot it, or a restart raced) re-registers.
func (ctl *Controller) brokerLoop() {
	for {
		if ctl.brokerEpoch.Load() == 0 {
			ctx, cancel := context.WithTimeout(ctl.ctx, ctl.cfg.Lease)
			epoch, err := proposeAs[int64](ctx, ctl, metadata.RegisterBroker{
				NodeID: ctl.cfg.NodeID, Rack: ctl.cfg.Rack, Listeners: ctl.cfg.Listeners,
				ReplicationAddr: ctl.cfg.ReplicationAddr, LeaseMs: ctl.cfg.Lease.Milliseconds(),
			})
			cancel()
			if err == nil {
				ctl.brokerEpoch.Store(epoch)
				// Before WaitRegistered returns: a broker just started
				// reports a full disk with the cluster's newer commands.
				ctl.reportMetadataVersion(epoch)
				ctl.regOnce.Do(func() {
					ctl.firstEpoch.Store(epoch)
					close(ctl.registered)
				})
				ctl.log.Info("broker registered", "epoch", epoch)
			} else if ctl.ctx.Err() == nil {
				ctl.log.Debug("registering broker", "err", err)
			}
		} else {
			if epoch := ctl.brokerEpoch.Load(); ctl.versionReported.Load() != epoch {
				ctl.reportMetadataVersion(epoch) // the last try failed
			}
			// Two intervals, not a lease: a heartbeat stuck on a controller
			// that stopped answering (paused, partitioned) is abandoned and
			// retried soon enough to renew with its successor well within
			// the lease the successor gives every broker at its election.
			ctx, cancel := context.WithTimeout(ctl.ctx, min(2*ctl.cfg.HeartbeatInterval, ctl.cfg.Lease))
			err := ctl.heartbeat(ctx)
			cancel()
			switch {
			case errors.Is(err, metadata.ErrStaleBrokerEpoch) || errors.Is(err, metadata.ErrUnknownBroker):
				ctl.log.Warn("broker registration lost; registering again", "err", err)
				ctl.brokerEpoch.Store(0)
				continue
			case err != nil && ctl.ctx.Err() == nil:
				ctl.log.Warn("broker heartbeat failed", "err", err)
				// Retry after a backoff rather than a whole interval: the
				// lease is still running out.
				if !ctl.sleep(ctl.retryCap() / 4) {
					return
				}
				continue
			}
		}
		if !ctl.sleep(ctl.cfg.HeartbeatInterval) {
			return
		}
	}
}

// reportMetadataVersion tells the cluster which metadata version this
// incarnation applies (metadata.BrokerMetadataVersion): until it does, it
// counts as a broker of an older version and holds newer commands back.
// A failed report is tried again at the next heartbeat; it is bounded as
// a heartbeat is, so that the heartbeat after it comes within the lease.
func (ctl *Controller) reportMetadataVersion(epoch int64) {
	ctx, cancel := context.WithTimeout(ctl.ctx, min(2*ctl.cfg.HeartbeatInterval, ctl.cfg.Lease))
	defer cancel()
	_, err := ctl.propose(ctx, metadata.BrokerMetadataVersion{NodeID: ctl.cfg.NodeID, BrokerEpoch: epoch, MetadataVersion: metadata.CurrentMetadataVersion})
	if err != nil {
		if ctl.ctx.Err() == nil {
			ctl.log.Warn("reporting this broker's metadata version", "epoch", epoch, "err", err)
		}
		return
	}
	ctl.versionReported.Store(epoch)
}

// activeControllerLoop does the leader's periodic work: set the cluster
// id, fence brokers whose lease ended, and restore preferred leaders.
// After winning an election it gives every broker a whole lease from
// then before fencing it (leaseLapsed), and again after this process
// stalled (SIGSTOP, a long GC or VM pause) while it stayed the leader:
// during the stall no broker could renew its lease, so leases that lapsed
// then say nothing about the brokers.
func (ctl *Controller) activeControllerLoop() {
	var leaderSince, lastRebalance time.Time
	tick := max(ctl.cfg.HeartbeatInterval/2, 10*time.Millisecond)
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for {
		before := time.Now()
		woken := false
		// An election won starts the duties at once (the cluster id of a
		// new cluster is set without waiting for a tick).
		select {
		case <-timer.C:
		case <-ctl.raft.LeaderCh():
			woken = true
		case <-ctl.ctx.Done():
			return
		}
		timer.Reset(tick) // since Go 1.23 no stale tick survives a Reset
		now := time.Now()
		stalled := !woken && now.Sub(before) > tick+ctl.cfg.HeartbeatInterval
		if ctl.raft.State() != raft.Leader {
			leaderSince = time.Time{}
			continue
		}
		switch {
		case leaderSince.IsZero():
			leaderSince, lastRebalance = now, now
			ctl.log.Info("became the active controller")
			ctl.refreshOwnAddress()
		case stalled:
			leaderSince = now
			ctl.log.Warn("the active controller stalled; letting brokers renew their leases before fencing", "stall", now.Sub(before)-tick)
		}
		ctx, cancel := context.WithTimeout(ctl.ctx, ctl.cfg.Lease)
		ctl.leaderDuties(ctx, now, leaderSince, &lastRebalance)
		cancel()
	}
}

// refreshOwnAddress corrects this voter's address in the Raft
// configuration when it changed since the configuration was written: the
// only voter of a cluster of one listens on a port picked at each start.
// Raft itself never dials its own entry, but the configuration is what
// describes the quorum, so it must stay true.
func (ctl *Controller) refreshOwnAddress() {
	f := ctl.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		ctl.log.Warn("reading the raft configuration", "err", err)
		return
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID != serverID(ctl.cfg.NodeID) || srv.Suffrage != raft.Voter || string(srv.Address) == ctl.cfg.Advertise {
			continue
		}
		if err := ctl.raft.AddVoter(srv.ID, raft.ServerAddress(ctl.cfg.Advertise), f.Index(), rpcTimeout).Error(); err != nil {
			ctl.log.Warn("updating this voter's address in the raft configuration", "from", srv.Address, "to", ctl.cfg.Advertise, "err", err)
			return
		}
		ctl.log.Info("updated this voter's address in the raft configuration", "from", srv.Address, "to", ctl.cfg.Advertise)
	}
}

// retryCap bounds the backoff of a request to the active controller while
// there is none: at most a heartbeat interval (and 500 ms), so that a live
// broker renews its lease with a new controller within one interval.
func (ctl *Controller) retryCap() time.Duration {
	return min(ctl.cfg.HeartbeatInterval, 500*time.Millisecond)
}

func (ctl *Controller) leaderDuties(ctx context.Context, now, leaderSince time.Time, lastRebalance *time.Time) {
	st := ctl.fsm.Current()
	if st.ClusterID == "" && ctl.cfg.ClusterID != "" {
		if _, err := ctl.propose(ctx, metadata.InitCluster{ClusterID: ctl.cfg.ClusterID}); err != nil {
			ctl.log.Error("setting the cluster id", "err", err)
		}
	}
	ctl.fenceLapsed(ctx, st, now, leaderSince)
	if ctl.cfg.RebalanceInterval > 0 && now.Sub(*lastRebalance) >= ctl.cfg.RebalanceInterval {
		*lastRebalance = now
		if tps := placement.PreferredElections(st); len(tps) > 0 {
			if _, err := ctl.ElectLeaders(ctx, metadata.ElectPreferred, tps); err != nil {
				ctl.log.Warn("preferred leader election", "err", err)
			}
		}
	}
}

// hastenElection is called when the active controller's address, as
// this node knows it, refused a connection: nothing listens there, so its
// process is gone and waiting out Raft's heartbeat timeout (a random 1 to
// 2 times controller.quorum.fetch.timeout.ms after the last contact) only
// keeps the cluster without a controller. A voter that follows it lowers
// its heartbeat timeout to the leader lease for a moment (hashicorp/raft's
// ReloadConfig), as soon as the lease has run out since the last contact:
// a leader that lost contact that long has stepped down anyway, so this
// cannot unseat a live one, and with pre-vote a candidate the others do
// not agree with changes nothing. The surviving voters start one after
// the other (by id, 150 ms apart): started together, both would vote for
// themselves and wait another election timeout; started apart, the first
// drops its leader and grants the second its vote. The timeout is set
// back once a leader is elected or after two heartbeat timeouts.
func (ctl *Controller) hastenElection(leaderAddr string) {
	cfg := ctl.cfg
	if !cfg.isVoter() || cfg.RaftLeaderLease >= cfg.RaftHeartbeatTimeout || ctl.raft.State() != raft.Follower {
		return
	}
	if addr, _ := ctl.raft.LeaderWithID(); string(addr) != leaderAddr {
		return
	}
	if !ctl.hastening.CompareAndSwap(false, true) {
		return
	}
	// This node's rank among the voters other than the one gone.
	rank := 0
	for _, v := range cfg.Voters {
		if v.Addr != leaderAddr && v.ID < cfg.NodeID {
			rank++
		}
	}
	ctl.bgMu.Lock()
	if ctl.closed.Load() {
		ctl.bgMu.Unlock()
		ctl.hastening.Store(false)
		return
	}
	ctl.wg.Add(1)
	ctl.bgMu.Unlock()
	go func() {
		defer ctl.wg.Done()
		defer ctl.hastening.Store(false)
		start := time.Now()
		wait := time.Until(ctl.raft.LastContact().Add(cfg.RaftLeaderLease)) + time.Duration(rank)*150*time.Millisecond
		if wait > 0 && !ctl.sleep(wait) {
			return
		}
		if addr, _ := ctl.raft.LeaderWithID(); string(addr) != leaderAddr || ctl.raft.State() != raft.Follower {
			return // a leader was elected meanwhile, or this node is a candidate
		}
		rc := ctl.raft.ReloadableConfig()
		rc.HeartbeatTimeout = cfg.RaftLeaderLease
		if err := ctl.raft.ReloadConfig(rc); err != nil {
			ctl.log.Warn("hastening the election of a new active controller", "err", err)
			return
		}
		ctl.log.Info("the active controller's address refuses connections; starting an election", "addr", leaderAddr, "since_report", time.Since(start).Round(time.Millisecond))
		deadline := time.Now().Add(2 * cfg.RaftHeartbeatTimeout)
		for time.Now().Before(deadline) {
			if addr, _ := ctl.raft.LeaderWithID(); addr != "" && string(addr) != leaderAddr {
				break
			}
			if !ctl.sleep(10 * time.Millisecond) {
				break
			}
		}
		rc.HeartbeatTimeout = cfg.RaftHeartbeatTimeout
		if err := ctl.raft.ReloadConfig(rc); err != nil {
			ctl.log.Error("restoring the raft heartbeat timeout", "err", err)
		}
	}()
}

// ReportUnreachable tells the active controller that this broker's
// connection to broker id failed (a follower's fetch connection to its
// leader broke or was refused). The controller probes that broker's
// replication listener and, if nothing listens there any more (the
// connection is refused: the process is gone), fences it at once instead
// of waiting for its lease to run out. It returns whether the broker was
// fenced. It retries while there is no active controller (the dead broker
// may have been it), until ctx ends.
func (ctl *Controller) ReportUnreachable(ctx context.Context, id int32) (bool, error) {
	return decodeAs[bool](ctl.onLeader(ctx, rpcRequest{Op: opUnreachable, NodeID: id}))
}

// probeTimeout bounds the active controller's connection attempt to a
// broker reported unreachable. Only a refusal counts: a timeout says
// nothing (a partition, a slow network) and leaves the lease to decide.
const probeTimeout = 500 * time.Millisecond

// probeAndFence runs on the active controller: it fences the current
// incarnation of broker id if its replication listener refuses
// connections. A refusal means no process listens on the port: a paused
// or overloaded broker still has its listening socket, whose backlog the
// kernel fills, so it is never fenced this way. This skips the lease a new
// controller gives every broker at its election: a broker proven gone
// needs none, and a broker that was also the active controller is then
// fenced as soon as a successor is elected.
func (ctl *Controller) probeAndFence(id int32) bool {
	if id == ctl.cfg.NodeID {
		return false // answering this, so alive
	}
	ctl.probingMu.Lock()
	if ctl.probing[id] {
		ctl.probingMu.Unlock()
		return false
	}
	ctl.probing[id] = true
	ctl.probingMu.Unlock()
	defer func() {
		ctl.probingMu.Lock()
		delete(ctl.probing, id)
		ctl.probingMu.Unlock()
	}()
	st := ctl.fsm.Current()
	if st.CheckProposable(metadata.TypeFenceBroker) != nil {
		return false // an older broker would halt on FenceBroker: its lease decides
	}
	b, ok := st.Brokers[id]
	if !ok || b.Fenced {
		return false
	}
	addr := b.ReplicationAddr
	if addr == "" && len(b.Listeners) > 0 {
		addr = net.JoinHostPort(b.Listeners[0].Host, strconv.Itoa(int(b.Listeners[0].Port)))
	}
	if addr == "" {
		return false
	}
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err == nil {
		c.Close()
		return false
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctl.ctx, ctl.cfg.Lease)
	defer cancel()
	fenced, err := proposeAs[bool](ctx, ctl, metadata.FenceBroker{NodeID: id, BrokerEpoch: b.Epoch})
	if err != nil {
		ctl.log.Warn("fencing a broker whose listener refuses connections", "broker", id, "err", err)
		return false
	}
	if fenced {
		ctl.log.Warn("fenced a broker whose replication listener refuses connections (its process is gone)", "broker", id, "broker_epoch", b.Epoch, "addr", addr)
	}
	return fenced
}

// ControlledShutdown moves this broker's leaderships to other ISR members
// and takes it out of the ISRs, repeating until it leads nothing or ctx
// ends (then it returns how many it still leads). An active controller then
// hands Raft leadership to another voter. Call it before stopping the
// broker's listeners, then Close.
func (ctl *Controller) ControlledShutdown(ctx context.Context) (int, error) {
	left := -1
	for {
		epoch := ctl.brokerEpoch.Load()
		if epoch == 0 {
			break
		}
		n, err := proposeAs[int](ctx, ctl, metadata.ControlledShutdown{NodeID: ctl.cfg.NodeID, BrokerEpoch: epoch})
		if err != nil {
			return left, fmt.Errorf("controlled shutdown: %w", err)
		}
		left = n
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return left, fmt.Errorf("controlled shutdown: %d leaderships could not move: %w", n, ctx.Err())
		case <-time.After(ctl.cfg.HeartbeatInterval):
		}
	}
	if ctl.IsActive() && len(ctl.cfg.Voters) > 1 {
		if err := ctl.raft.LeadershipTransfer().Error(); err != nil {
			ctl.log.Warn("handing over the active controller", "err", err)
		}
	}
	return max(left, 0), nil
}

// newTopicID draws a random, non-zero topic id (KIP-516).
func newTopicID() metadata.TopicID {
	var id metadata.TopicID
	for id == (metadata.TopicID{}) {
		_, _ = rand.Read(id[:])
	}
	return id
}

// CreateTopic places and creates a topic: rf replicas per partition spread
// across racks, leaders balanced (package placement). The placement is
// computed by the active controller, on the newest state.
func (ctl *Controller) CreateTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*metadata.Topic, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("%w: %d partitions", metadata.ErrInvalidPartitions, partitions)
	}
	v, err := ctl.onLeader(ctx, rpcRequest{Op: opCreateTopic, Topic: &topicRequest{Name: name, Partitions: partitions, ReplicationFactor: rf, Configs: configs, ID: newTopicID()}})
	return decodeAs[*metadata.Topic](v, err)
}

// CreateTopicAssigned creates a topic on the given replicas (one list per
// partition, the first replica preferred), as a client's explicit replica
// assignment asks.
func (ctl *Controller) CreateTopicAssigned(ctx context.Context, name string, assignments [][]int32, configs map[string]string) (*metadata.Topic, error) {
	if len(assignments) == 0 {
		return nil, fmt.Errorf("%w: no partitions", metadata.ErrInvalidPartitions)
	}
	v, err := ctl.onLeader(ctx, rpcRequest{Op: opCreateTopic, Topic: &topicRequest{Name: name, Partitions: int32(len(assignments)), Configs: configs, Assignments: assignments, ID: newTopicID()}})
	return decodeAs[*metadata.Topic](v, err)
}

func (ctl *Controller) createTopicLocal(ctx context.Context, r *topicRequest) (json.RawMessage, error) {
	if r == nil {
		return nil, metadata.ErrInvalidRequest
	}
	id := r.ID
	if id == (metadata.TopicID{}) {
		id = newTopicID() // asked by a node that draws none
	} else if t, ok := ctl.fsm.Current().Topic(r.Name); ok && t.ID == id {
		return encodeValue(t) // a retry of a request that created it
	}
	if err := checkPartitionCount(r.Name, int64(r.Partitions), len(r.Configs)); err != nil {
		return nil, err // before placing them
	}
	as := r.Assignments
	if as == nil {
		st := ctl.fsm.Current()
		var err error
		if as, err = placement.Assign(placement.EligibleBrokers(st), int(r.Partitions), int(r.ReplicationFactor), placement.LoadOf(st)); err != nil {
			return nil, err
		}
	}
	b, err := metadata.Encode(metadata.CreateTopic{Name: r.Name, ID: id, Configs: r.Configs, Assignments: as})
	if err != nil {
		return nil, err
	}
	return ctl.applyLocal(ctx, b)
}

// CreatePartitions grows a topic to total partitions, placed by the active
// controller, or on the given replicas (one list per new partition; nil
// lets the controller place them).
func (ctl *Controller) CreatePartitions(ctx context.Context, name string, total int32, assignments [][]int32) (*metadata.Topic, error) {
	v, err := ctl.onLeader(ctx, rpcRequest{Op: opCreatePartitions, Topic: &topicRequest{Name: name, Partitions: total, Assignments: assignments}})
	return decodeAs[*metadata.Topic](v, err)
}

func (ctl *Controller) createPartitionsLocal(ctx context.Context, r *topicRequest, retry bool) (json.RawMessage, error) {
	if r == nil {
		return nil, metadata.ErrInvalidRequest
	}
	st := ctl.fsm.Current()
	t, ok := st.Topic(r.Name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrUnknownTopicOrPartition, r.Name)
	}
	add := int(r.Partitions) - t.NumPartitions()
	if add == 0 && retry {
		// The lost first try grew it (or another request did: either
		// way the topic has the partitions asked for).
		return encodeValue(t)
	}
	if add <= 0 {
		return nil, fmt.Errorf("%w: topic %s has %d partitions, cannot go to %d", metadata.ErrInvalidPartitions, r.Name, t.NumPartitions(), r.Partitions)
	}
	if add > MaxRecordsPerUserOp {
		return nil, errTooLarge(fmt.Sprintf("adding %d partitions to topic %s", add, r.Name), add) // before placing them
	}
	as := r.Assignments
	if as == nil {
		var err error
		if as, err = placement.Assign(placement.EligibleBrokers(st), add, st.NewPartitionsReplicationFactor(t), placement.LoadOf(st)); err != nil {
			return nil, err
		}
	} else if len(as) != add {
		return nil, fmt.Errorf("%w: %d assignments for %d new partitions of %s", metadata.ErrInvalidReplicaAssignment, len(as), add, r.Name)
	}
	b, err := metadata.Encode(metadata.CreatePartitions{Name: r.Name, Assignments: as})
	if err != nil {
		return nil, err
	}
	return ctl.applyLocal(ctx, b)
}

func decodeAs[T any](v json.RawMessage, err error) (T, error) {
	var out T
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(v, &out); err != nil {
		return out, fmt.Errorf("decoding the controller's answer: %w", err)
	}
	return out, nil
}

// DeleteTopic deletes a topic: the one this node knows by that name, so
// that a retry never deletes a topic created under the name since. While
// a registered broker is older than metadata.DeleteTopicIDVersion, the
// deletion names the topic only (the id would halt that broker), and a
// retry after a lost answer is refused as before.
func (ctl *Controller) DeleteTopic(ctx context.Context, name string) error {
	cmd := metadata.DeleteTopic{Name: name}
	st := ctl.fsm.Current()
	if t, ok := st.Topic(name); ok && st.UsableMetadataVersion() >= metadata.DeleteTopicIDVersion {
		cmd.ID = t.ID
	}
	_, err := ctl.propose(ctx, cmd)
	return err
}

// SetTopicConfigs replaces a topic's config overrides.
func (ctl *Controller) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) (*metadata.Topic, error) {
	return proposeAs[*metadata.Topic](ctx, ctl, metadata.SetTopicConfigs{Name: name, Configs: configs})
}

// SetBrokerConfigs replaces a broker's (or, with metadata.ClusterDefault,
// the cluster's) dynamic configs.
func (ctl *Controller) SetBrokerConfigs(ctx context.Context, node int32, configs map[string]string) error {
	_, err := ctl.propose(ctx, metadata.SetBrokerConfigs{NodeID: node, Configs: configs})
	return err
}

// AllocateProducerIDs reserves count producer ids unique in the cluster
// and returns the first.
func (ctl *Controller) AllocateProducerIDs(ctx context.Context, count int64) (int64, error) {
	return proposeAs[int64](ctx, ctl, metadata.AllocateProducerIDs{NodeID: ctl.cfg.NodeID, Count: count})
}

// ImportFileMetadata imports a file-kept metadata (see
// metadata.ImportFileMetadata) and returns how many topics it added.
func (ctl *Controller) ImportFileMetadata(ctx context.Context, imp metadata.ImportFileMetadata) (int, error) {
	return proposeAs[int](ctx, ctl, imp)
}

// Voters is the metadata quorum as this node was configured (with its own
// address as bound when it is the only voter of a cluster of one).
func (ctl *Controller) Voters() []Voter { return slices.Clone(ctl.cfg.Voters) }

// AlterPartition asks to change the ISR of a partition this broker leads,
// naming the leader and partition epochs it acts on.
func (ctl *Controller) AlterPartition(ctx context.Context, topic string, partition, leaderEpoch, partitionEpoch int32, newISR []int32) (metadata.Partition, error) {
	return proposeAs[metadata.Partition](ctx, ctl, metadata.AlterPartition{
		Topic: topic, Partition: partition, LeaderID: ctl.cfg.NodeID, BrokerEpoch: ctl.brokerEpoch.Load(),
		LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, NewISR: newISR,
	})
}

// LeaderLogFailed reports that this broker's log of a partition it leads
// at leaderEpoch failed (see metadata.LeaderLogFailed); the answer is the
// partition as the controller left it, led at a new epoch.
func (ctl *Controller) LeaderLogFailed(ctx context.Context, topic string, partition, leaderEpoch int32) (metadata.Partition, error) {
	return proposeAs[metadata.Partition](ctx, ctl, metadata.LeaderLogFailed{
		Topic: topic, Partition: partition, LeaderID: ctl.cfg.NodeID, BrokerEpoch: ctl.brokerEpoch.Load(), LeaderEpoch: leaderEpoch,
	})
}

// ReplicaDiskFull reports that this broker cannot write its log of a
// partition, which it leads or follows at leaderEpoch, for lack of space
// (see metadata.ReplicaDiskFull); the answer is the partition as the
// controller left it, this broker out of its ISR.
func (ctl *Controller) ReplicaDiskFull(ctx context.Context, topic string, partition, leaderEpoch int32) (metadata.Partition, error) {
	return proposeAs[metadata.Partition](ctx, ctl, metadata.ReplicaDiskFull{
		Topic: topic, Partition: partition, BrokerID: ctl.cfg.NodeID, BrokerEpoch: ctl.brokerEpoch.Load(), LeaderEpoch: leaderEpoch,
	})
}

// BrokerDiskWritable reports that this broker's disk takes writes again
// after a ReplicaDiskFull (see metadata.BrokerDiskWritable); the answer
// is whether the broker was marked full.
func (ctl *Controller) BrokerDiskWritable(ctx context.Context) (bool, error) {
	return proposeAs[bool](ctx, ctl, metadata.BrokerDiskWritable{NodeID: ctl.cfg.NodeID, BrokerEpoch: ctl.brokerEpoch.Load()})
}

// ElectLeaders runs preferred or unclean elections (all partitions when
// tps is empty).
func (ctl *Controller) ElectLeaders(ctx context.Context, how metadata.ElectionType, tps []metadata.TopicPartition) ([]metadata.ElectionResult, error) {
	v, err := ctl.propose(ctx, metadata.ElectLeaders{Election: how, Partitions: tps})
	if err != nil {
		return nil, err
	}
	return decodeElections(v)
}

// Reassign starts or cancels partition reassignments; one error per item.
func (ctl *Controller) Reassign(ctx context.Context, rs []metadata.Reassignment) ([]error, error) {
	v, err := ctl.propose(ctx, metadata.ReassignPartitions{Reassignments: rs})
	if err != nil {
		return nil, err
	}
	return decodeErrors(v)
}
