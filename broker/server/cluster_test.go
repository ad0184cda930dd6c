package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/config"
)

// inProcessCluster is three brokers (node + server on one store each) in
// this test process, on 127.0.0.1 with ports picked by the kernel.
type inProcessCluster struct {
	t       *testing.T
	servers map[int32]*Server
	nodes   map[int32]*node.Node
}

func testLogger(id int32) *slog.Logger {
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startInProcessCluster(t *testing.T, edit ...func(*config.Config)) *inProcessCluster {
	t.Helper()
	return startInProcessClusterTuned(t, nil, edit...)
}

// startInProcessClusterTuned is startInProcessCluster with tune, when not
// nil, changing each node's options after the short timings are set.
func startInProcessClusterTuned(t *testing.T, tune func(*node.Options), edit ...func(*config.Config)) *inProcessCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("three in-process brokers")
	}
	const n = 3
	c := &inProcessCluster{t: t, servers: map[int32]*Server{}, nodes: map[int32]*node.Node{}}
	ctlLns, clientLns := map[int32]net.Listener{}, map[int32]net.Listener{}
	var voters []string
	for id := int32(1); id <= n; id++ {
		ctlLns[id], clientLns[id] = listenLoopback(t), listenLoopback(t)
		voters = append(voters, fmt.Sprintf("%d@%s", id, ctlLns[id].Addr()))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for id := int32(1); id <= n; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv, nd, err := startClusterMember(t, id, strings.Join(voters, ","), ctlLns[id], clientLns[id], tune, edit...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("broker %d: %w", id, err))
				return
			}
			c.servers[id], c.nodes[id] = srv, nd
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Each broker returns from node.Start once it is registered itself;
	// wait until every one sees all three.
	waitCluster(t, 20*time.Second, func() error {
		for id, s := range c.servers {
			if live := s.liveBrokerCount(); live != n {
				return fmt.Errorf("broker %d sees %d live brokers", id, live)
			}
		}
		return nil
	})
	return c
}

// startClusterMember starts one broker whose node has short timings; edit
// changes its configuration first, tune (when not nil) its node options.
func startClusterMember(t *testing.T, id int32, voters string, ctlLn, clientLn net.Listener, tune func(*node.Options), edit ...func(*config.Config)) (*Server, *node.Node, error) {
	cfg := config.Default()
	cfg.NodeID, cfg.Rack, cfg.DataDir = id, string(rune('a'+id-1)), t.TempDir()
	cfg.ListenersSpec = "PLAINTEXT://" + clientLn.Addr().String()
	cfg.ClusterID, cfg.ControllerQuorumVoters = "server-cluster-test", voters
	cfg.DefaultReplicationFactor, cfg.MinInsyncReplicas = 3, 2
	cfg.GroupInitialRebalanceDelay = 0
	for _, e := range edit {
		e(cfg)
	}
	replLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := New(ctx, Options{Config: cfg, Logger: testLogger(id), Listener: clientLn, Node: func(o *node.Options) {
		o.ReplicationListener, o.LagTimeMax, o.ISRInterval = replLn, 2*time.Second, 50*time.Millisecond
		o.Fetch.MaxWait, o.Fetch.Backoff = 200*time.Millisecond, 50*time.Millisecond
		o.Tune = func(c *cluster.Config) {
			c.Listener = ctlLn
			c.HeartbeatInterval, c.Lease, c.RebalanceInterval = 200*time.Millisecond, 3*time.Second, 500*time.Millisecond
			c.RaftHeartbeatTimeout, c.RaftElectionTimeout, c.RaftLeaderLease = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
		}
		if tune != nil {
			tune(o)
		}
	}})
	if err != nil {
		replLn.Close()
		return nil, nil, err
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Stop as a crash would first: a controlled shutdown of brokers
		// stopping together would wait for a quorum that is leaving.
		srv.node.Close()
		_ = srv.Shutdown(ctx)
	})
	return srv, srv.node, nil
}

// waitCluster polls fn until it returns nil or the deadline passes.
func waitCluster(t *testing.T, limit time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createReplicated creates a topic with replication factor 3 through broker
// 1 and waits until every partition has a full ISR on every broker's view.
func (c *inProcessCluster) createReplicated(name string, partitions int32) {
	c.t.Helper()
	req := kmsg.NewCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, 3
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	req.Version = 7
	resp := roundTrip[*kmsg.CreateTopicsResponse](c.t, c.servers[1], &req)
	if code := resp.Topics[0].ErrorCode; code != 0 {
		c.t.Fatalf("creating %s: %v", name, kerr.ErrorForCode(code))
	}
	if resp.Topics[0].ReplicationFactor != 3 {
		c.t.Fatalf("replication factor %d in the response", resp.Topics[0].ReplicationFactor)
	}
	waitCluster(c.t, 20*time.Second, func() error {
		for id, s := range c.servers {
			t, ok := s.lookupTopic(name)
			if !ok {
				return fmt.Errorf("broker %d does not know %s", id, name)
			}
			for _, p := range t.partitions {
				if len(p.isr) != 3 || p.leader < 0 {
					return fmt.Errorf("broker %d: %s-%d isr %v leader %d", id, name, p.index, p.isr, p.leader)
				}
			}
		}
		return nil
	})
}

// leader returns the broker leading a partition (as broker 1 sees it).
func (c *inProcessCluster) leader(topic string, index int32) (int32, int32) {
	c.t.Helper()
	var p *partition
	waitCluster(c.t, 5*time.Second, func() error {
		var ok bool
		if p, ok = c.servers[1].lookupPartition(topic, index); !ok {
			return fmt.Errorf("%s-%d not in broker 1's view yet", topic, index)
		}
		return nil
	})
	return p.leader, p.leaderEpoch
}

func TestClusterMetadataAndLeaderChecks(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("orders", 3)

	// Every broker answers the same cluster: three brokers with racks, a
	// controller, each partition with three replicas in sync.
	for id, s := range c.servers {
		req := kmsg.NewMetadataRequest()
		req.Version = 12
		rt := kmsg.NewMetadataRequestTopic()
		name := "orders"
		rt.Topic = &name
		req.Topics = []kmsg.MetadataRequestTopic{rt}
		// A loaded machine can move the quorum's leadership (or let a
		// lease lapse) after startup; the answer names no controller
		// (-1) until it settles, so the broker is asked again for a while.
		md := roundTrip[*kmsg.MetadataResponse](t, s, &req)
		for deadline := time.Now().Add(10 * time.Second); md.ControllerID < 1 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			md = roundTrip[*kmsg.MetadataResponse](t, s, &req)
		}
		if len(md.Brokers) != 3 || md.ControllerID < 1 {
			t.Fatalf("broker %d: brokers %+v controller %d", id, md.Brokers, md.ControllerID)
		}
		for _, b := range md.Brokers {
			if b.Rack == nil || *b.Rack != string(rune('a'+b.NodeID-1)) || b.Port != int32(c.servers[b.NodeID].Addr().(*net.TCPAddr).Port) {
				t.Fatalf("broker %d lists %+v", id, b)
			}
		}
		for _, p := range md.Topics[0].Partitions {
			if len(p.Replicas) != 3 || len(p.ISR) != 3 || p.Leader < 1 || len(p.OfflineReplicas) != 0 {
				t.Fatalf("broker %d: partition %+v", id, p)
			}
		}
		dreq := kmsg.NewDescribeClusterRequest()
		dc := roundTrip[*kmsg.DescribeClusterResponse](t, s, &dreq)
		if len(dc.Brokers) != 3 || dc.ControllerID != md.ControllerID {
			t.Fatalf("broker %d DescribeCluster: %+v controller %d", id, dc.Brokers, dc.ControllerID)
		}
		dreq.Version, dreq.EndpointType = 1, 2 // the controllers
		dc = roundTrip[*kmsg.DescribeClusterResponse](t, s, &dreq)
		if len(dc.Brokers) != 3 || dc.Brokers[0].Port == int32(c.servers[dc.Brokers[0].NodeID].Addr().(*net.TCPAddr).Port) {
			t.Fatalf("broker %d DescribeCluster of the controllers: %+v", id, dc.Brokers)
		}
	}

	// Only the leader serves consumers, and it checks the leader epoch.
	leader, epoch := c.leader("orders", 0)
	for id, s := range c.servers {
		// One request per epoch: a partition named twice in one request
		// answers INVALID_REQUEST.
		var got []int16
		for _, cur := range []int32{-1, epoch + 1} {
			req := kmsg.NewListOffsetsRequest()
			req.Version = 6
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "orders"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = 0, -1, cur
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
			resp := roundTrip[*kmsg.ListOffsetsResponse](t, s, &req)
			got = append(got, resp.Topics[0].Partitions[0].ErrorCode)
		}
		want := []int16{0, kerr.UnknownLeaderEpoch.Code}
		if id != leader {
			want = []int16{kerr.NotLeaderForPartition.Code, kerr.NotLeaderForPartition.Code}
		}
		if !slices.Equal(got, want) {
			t.Errorf("broker %d (leader %d): ListOffsets codes %v, want %v", id, leader, got, want)
		}
	}

	// Produce: NOT_LEADER_OR_FOLLOWER off the leader; acks=all on the
	// leader answers once the ISR has the batch.
	for id, s := range c.servers {
		req := kmsg.NewProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = 9, -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "orders"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch(-1, -1, -1, 3, 10)
		rt.Partitions = []kmsg.ProduceRequestTopicPartition{rp}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		resp := roundTrip[*kmsg.ProduceResponse](t, s, &req)
		code := resp.Topics[0].Partitions[0].ErrorCode
		switch {
		case id == leader && code != 0:
			t.Fatalf("leader %d refused acks=all produce: %v", id, kerr.ErrorForCode(code))
		case id != leader && code != kerr.NotLeaderForPartition.Code:
			t.Fatalf("broker %d (not leader) answered %v", id, kerr.ErrorForCode(code))
		}
	}
	// Every replica has the acknowledged batch; the leader exposes it.
	waitCluster(t, 5*time.Second, func() error {
		for id, s := range c.servers {
			p, ok := s.store.Partition("orders", 0)
			if !ok {
				return fmt.Errorf("broker %d has no replica of orders-0", id)
			}
			if end := p.LogEndOffset(); end != 3 {
				return fmt.Errorf("broker %d: log end %d, want 3", id, end)
			}
			if hw := p.HighWatermark(); id == leader && hw != 3 {
				return fmt.Errorf("leader %d: high watermark %d, want 3", id, hw)
			}
		}
		return nil
	})
}

// TestClusterOperationsSingleNode: the cluster operations answer what is
// true of one broker that holds every partition alone.
func TestClusterOperationsSingleNode(t *testing.T) {
	s := startServer(t)
	if _, err := s.createTopic("solo", 1, nil); err != nil {
		t.Fatal(err)
	}
	ereq := kmsg.NewElectLeadersRequest()
	ereq.Version = 2
	et := kmsg.NewElectLeadersRequestTopic()
	et.Topic, et.Partitions = "solo", []int32{0, 5}
	ereq.Topics = []kmsg.ElectLeadersRequestTopic{et}
	eresp := roundTrip[*kmsg.ElectLeadersResponse](t, s, &ereq)
	if got := []int16{eresp.Topics[0].Partitions[0].ErrorCode, eresp.Topics[0].Partitions[1].ErrorCode}; !slices.Equal(got, []int16{kerr.ElectionNotNeeded.Code, kerr.UnknownTopicOrPartition.Code}) {
		t.Fatalf("ElectLeaders codes %v", got)
	}
	areq := kmsg.NewAlterPartitionAssignmentsRequest()
	at := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	at.Topic = "solo"
	for _, replicas := range [][]int32{{s.nodeID}, {s.nodeID, 7}, nil} {
		ap := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		ap.Replicas = replicas
		at.Partitions = append(at.Partitions, ap)
	}
	areq.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{at}
	aresp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](t, s, &areq)
	var got []int16
	for _, p := range aresp.Topics[0].Partitions {
		got = append(got, p.ErrorCode)
	}
	if want := []int16{0, kerr.InvalidReplicaAssignment.Code, kerr.NoReassignmentInProgress.Code}; !slices.Equal(got, want) {
		t.Fatalf("AlterPartitionReassignments codes %v, want %v", got, want)
	}
	lreq := kmsg.NewListPartitionReassignmentsRequest()
	if list := roundTrip[*kmsg.ListPartitionReassignmentsResponse](t, s, &lreq); len(list.Topics) != 0 {
		t.Fatalf("reassignments listed on a single node: %+v", list.Topics)
	}
}

func TestClusterOperations(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("ops", 1)

	// FindCoordinator creates __consumer_offsets and names its leader;
	// every other broker answers group requests with NOT_COORDINATOR.
	var coordinator int32
	waitCluster(t, 20*time.Second, func() error {
		req := kmsg.NewFindCoordinatorRequest()
		req.Version, req.CoordinatorKeys = 4, []string{"g"}
		resp := roundTrip[*kmsg.FindCoordinatorResponse](t, c.servers[2], &req)
		if code := resp.Coordinators[0].ErrorCode; code != 0 {
			return kerr.ErrorForCode(code)
		}
		coordinator = resp.Coordinators[0].NodeID
		cs := c.servers[coordinator]
		cs.coordMu.Lock() // syncCoordinator sets it under the lock
		loaded := cs.coordLoaded
		cs.coordMu.Unlock()
		if !loaded {
			return fmt.Errorf("broker %d has not loaded the coordinator yet", coordinator)
		}
		return nil
	})
	if l, _ := c.leader("__consumer_offsets", 0); l != coordinator {
		t.Fatalf("coordinator %d, offsets leader %d", coordinator, l)
	}
	for id, s := range c.servers {
		req := kmsg.NewOffsetFetchRequest()
		req.Version, req.Group = 5, "g"
		resp := roundTrip[*kmsg.OffsetFetchResponse](t, s, &req)
		want := int16(0)
		if id != coordinator {
			want = kerr.NotCoordinator.Code
		}
		if resp.ErrorCode != want {
			t.Errorf("broker %d (coordinator %d): OffsetFetch %v", id, coordinator, kerr.ErrorForCode(resp.ErrorCode))
		}
	}

	// Reassign ops-0 to two replicas; the list shows it until done.
	req := kmsg.NewAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = "ops"
	rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
	rp.Partition, rp.Replicas = 0, []int32{2, 3}
	rt.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{rp}
	req.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{rt}
	resp := roundTrip[*kmsg.AlterPartitionAssignmentsResponse](t, c.servers[1], &req)
	if resp.ErrorCode != 0 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("reassignment refused: %v / %v", kerr.ErrorForCode(resp.ErrorCode), kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode))
	}
	waitCluster(t, 20*time.Second, func() error {
		lreq := kmsg.NewListPartitionReassignmentsRequest()
		list := roundTrip[*kmsg.ListPartitionReassignmentsResponse](t, c.servers[3], &lreq)
		p, _ := c.servers[3].lookupPartition("ops", 0)
		if len(list.Topics) != 0 || !slices.Equal(p.replicas, []int32{2, 3}) {
			return fmt.Errorf("still listed %+v, replicas %v", list.Topics, p.replicas)
		}
		return nil
	})

	// A preferred election where the preferred replica leads: not needed.
	waitCluster(t, 20*time.Second, func() error {
		ereq := kmsg.NewElectLeadersRequest()
		ereq.Version = 2
		et := kmsg.NewElectLeadersRequestTopic()
		et.Topic, et.Partitions = "ops", []int32{0}
		ereq.Topics = []kmsg.ElectLeadersRequestTopic{et}
		eresp := roundTrip[*kmsg.ElectLeadersResponse](t, c.servers[1], &ereq)
		if eresp.ErrorCode != 0 || len(eresp.Topics) != 1 {
			return fmt.Errorf("ElectLeaders: %v %+v", kerr.ErrorForCode(eresp.ErrorCode), eresp.Topics)
		}
		code := eresp.Topics[0].Partitions[0].ErrorCode
		if code != kerr.ElectionNotNeeded.Code {
			return fmt.Errorf("ElectLeaders on ops-0: %v", kerr.ErrorForCode(code))
		}
		return nil
	})
	waitCluster(t, 5*time.Second, func() error {
		if l, _ := c.leader("ops", 0); l != 2 {
			return fmt.Errorf("ops-0 led by %d after the preferred election, want 2", l)
		}
		return nil
	})
}

// TestClusterTopicLifecycle: partitions added, a cluster-wide dynamic
// config set and a topic deleted through one broker reach every broker.
func TestClusterTopicLifecycle(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("life", 1)

	preq := kmsg.NewCreatePartitionsRequest()
	pt := kmsg.NewCreatePartitionsRequestTopic()
	pt.Topic, pt.Count = "life", 2
	preq.Topics = []kmsg.CreatePartitionsRequestTopic{pt}
	presp := roundTrip[*kmsg.CreatePartitionsResponse](t, c.servers[3], &preq)
	if code := presp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("CreatePartitions: %v", kerr.ErrorForCode(code))
	}
	areq := kmsg.NewIncrementalAlterConfigsRequest()
	ar := kmsg.NewIncrementalAlterConfigsRequestResource()
	ar.ResourceType = kmsg.ConfigResourceTypeBroker // "": the cluster-wide default
	ac := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	ac.Name, ac.Value = "max.connections", kmsg.StringPtr("777")
	ar.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{ac}
	areq.Resources = []kmsg.IncrementalAlterConfigsRequestResource{ar}
	aresp := roundTrip[*kmsg.IncrementalAlterConfigsResponse](t, c.servers[1], &areq)
	if code := aresp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs: %v", kerr.ErrorForCode(code))
	}
	waitCluster(t, 10*time.Second, func() error {
		for id, s := range c.servers {
			if _, ok := s.store.Partition("life", 1); !ok {
				return fmt.Errorf("broker %d has no replica of the new partition life-1", id)
			}
			if got := s.Config().MaxConnections; got != 777 {
				return fmt.Errorf("broker %d: max.connections %d, want the cluster default 777", id, got)
			}
		}
		return nil
	})

	// An explicit assignment: one replica, on broker 3.
	creq := kmsg.NewCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "pinned", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{3}
	ct.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{ra}
	creq.Topics, creq.Version = []kmsg.CreateTopicsRequestTopic{ct}, 7
	cresp := roundTrip[*kmsg.CreateTopicsResponse](t, c.servers[1], &creq)
	if code := cresp.Topics[0].ErrorCode; code != 0 || cresp.Topics[0].ReplicationFactor != 1 {
		t.Fatalf("CreateTopics with an assignment: %v, replication factor %d", kerr.ErrorForCode(code), cresp.Topics[0].ReplicationFactor)
	}
	waitCluster(t, 10*time.Second, func() error {
		for id, s := range c.servers {
			p, ok := s.lookupPartition("pinned", 0)
			if !ok || !slices.Equal(p.replicas, []int32{3}) || p.leader != 3 {
				return fmt.Errorf("broker %d sees pinned-0 as %+v", id, p)
			}
		}
		return nil
	})

	dreq := kmsg.NewDeleteTopicsRequest()
	dreq.Version = 4
	dreq.TopicNames = []string{"life"}
	dresp := roundTrip[*kmsg.DeleteTopicsResponse](t, c.servers[2], &dreq)
	if code := dresp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("DeleteTopics: %v", kerr.ErrorForCode(code))
	}
	waitCluster(t, 10*time.Second, func() error {
		for id, s := range c.servers {
			if _, ok := s.lookupTopic("life"); ok {
				return fmt.Errorf("broker %d still knows life", id)
			}
			for p := range int32(2) {
				if _, ok := s.store.Partition("life", p); ok {
					return fmt.Errorf("broker %d still has the log of life-%d", id, p)
				}
			}
		}
		return nil
	})
}

// TestSingleBrokerIsAClusterOfOne: a broker without controller.quorum.voters
// runs the Raft metadata with itself as the only voter and active
// controller, its metadata survives a restart, and the replica-placement
// APIs answer from the controller as in any cluster.
func TestSingleBrokerIsAClusterOfOne(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, func(c *config.Config) { c.DataDir, c.NodeID = dir, 4 })
	if v := s.node.Controller.Voters(); len(v) != 1 || v[0].ID != 4 {
		t.Fatalf("voters %+v", v)
	}
	waitCluster(t, 5*time.Second, func() error {
		if !s.node.Controller.IsActive() {
			return fmt.Errorf("broker 4 is not the active controller")
		}
		return nil
	})
	for _, tt := range []struct {
		endpointType int8
		port         int32
	}{{1, int32(s.Addr().(*net.TCPAddr).Port)}, {2, int32(mustPort(t, s.node.Controller.Addr()))}} {
		req := kmsg.NewDescribeClusterRequest()
		req.Version, req.EndpointType = 1, tt.endpointType
		dc := roundTrip[*kmsg.DescribeClusterResponse](t, s, &req)
		if dc.ErrorCode != 0 || dc.ControllerID != 4 || dc.ClusterID == "" || len(dc.Brokers) != 1 || dc.Brokers[0].NodeID != 4 || dc.Brokers[0].Port != tt.port {
			t.Fatalf("DescribeCluster endpoint type %d: %+v", tt.endpointType, dc)
		}
	}
	if dc := roundTrip[*kmsg.DescribeClusterResponse](t, s, kmsg.NewPtrDescribeClusterRequest()); dc.Brokers[0].Port == mustPort(t, s.node.Controller.Addr()) {
		t.Fatal("the controller port is not a separate listener")
	}

	// Replica placement goes through the controller: one broker takes one
	// replica, an explicit assignment names registered brokers.
	creq := kmsg.NewCreateTopicsRequest()
	creq.Version = 7
	for _, ct := range []struct {
		name        string
		rf          int16
		assignments [][]int32
	}{{"solo", 1, nil}, {"pair", 2, nil}, {"pinned", -1, [][]int32{{4}, {4}}}, {"elsewhere", -1, [][]int32{{4}, {9}}}} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = ct.name, 2, ct.rf
		if ct.assignments != nil {
			rt.NumPartitions = -1
			for i, r := range ct.assignments {
				ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
				ra.Partition, ra.Replicas = int32(i), r
				rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
			}
		}
		creq.Topics = append(creq.Topics, rt)
	}
	cresp := roundTrip[*kmsg.CreateTopicsResponse](t, s, &creq)
	var codes []int16
	for _, rt := range cresp.Topics {
		codes = append(codes, rt.ErrorCode)
	}
	if want := []int16{0, kerr.InvalidReplicationFactor.Code, 0, kerr.InvalidReplicaAssignment.Code}; !slices.Equal(codes, want) {
		t.Fatalf("CreateTopics codes %v, want %v", codes, want)
	}
	if _, ok := s.lookupTopic("elsewhere"); ok {
		t.Fatal("a topic with a refused assignment was created")
	}
	preq := kmsg.NewCreatePartitionsRequest()
	for _, assign := range [][]int32{{4}, {9}} {
		pt := kmsg.NewCreatePartitionsRequestTopic()
		pt.Topic, pt.Count = "solo", 3
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = assign
		pt.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{a}
		preq.Topics = []kmsg.CreatePartitionsRequestTopic{pt}
		presp := roundTrip[*kmsg.CreatePartitionsResponse](t, s, &preq)
		want := int16(0)
		if assign[0] == 9 {
			want = kerr.InvalidPartitions.Code // solo has 3 partitions by now
		}
		if got := presp.Topics[0].ErrorCode; got != want {
			t.Fatalf("CreatePartitions on %v: %v, want %v", assign, kerr.ErrorForCode(got), kerr.ErrorForCode(want))
		}
	}
	preq.Topics[0].Count = 4
	if got := roundTrip[*kmsg.CreatePartitionsResponse](t, s, &preq).Topics[0].ErrorCode; got != kerr.InvalidReplicaAssignment.Code {
		t.Fatalf("CreatePartitions on an unknown broker: %v", kerr.ErrorForCode(got))
	}
	if _, err := s.handleProduce(context.Background(), anonymousAuth(s, 0), produceReq("solo", -1, batch(-1, -1, -1, 3, 10))); err != nil {
		t.Fatal(err)
	}
	p, _ := s.lookupPartition("solo", 0)
	epoch := p.leaderEpoch
	clusterID := s.ClusterID()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A restart replays the Raft log: the same cluster, topics and data,
	// a new leader epoch.
	s = startServer(t, func(c *config.Config) { c.DataDir, c.NodeID = dir, 4 })
	if s.ClusterID() != clusterID {
		t.Fatalf("cluster id %q after restart, was %q", s.ClusterID(), clusterID)
	}
	for _, name := range []string{"solo", "pinned"} {
		top, ok := s.lookupTopic(name)
		if !ok {
			t.Fatalf("%s lost across a restart", name)
		}
		for _, p := range top.partitions {
			if p.leader != 4 || !slices.Equal(p.isr, []int32{4}) {
				t.Fatalf("%s-%d after restart: leader %d isr %v", name, p.index, p.leader, p.isr)
			}
		}
	}
	p, _ = s.lookupPartition("solo", 0)
	if p.leaderEpoch <= epoch || p.log == nil || p.log.HighWatermark() != 3 {
		t.Fatalf("solo-0 after restart: epoch %d (was %d), log %v", p.leaderEpoch, epoch, p.log)
	}
}

func mustPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}
