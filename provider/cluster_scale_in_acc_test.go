package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// accTopic is a topic a test creates and deletes itself, through the
// bootstrap brokers of the cluster in state when it was created.
type accTopic struct {
	name              string
	replicationFactor int16
	bootstrap         string
}

func (a *accTopic) create() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		a.bootstrap = bootstrap
		cl, err := kafkaClient(bootstrap)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, a.replicationFactor, nil, a.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("creating topic %s with replication factor %d: %w", a.name, a.replicationFactor, err)
		}
		return nil
	}
}

func (a *accTopic) delete(t *testing.T) {
	t.Helper()
	cl, err := kafkaClient(a.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, a.name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("deleting topic %s: %v", a.name, err)
	}
	// The deletion is answered once the controller committed it; each
	// broker applies it in its own time, and the plan that follows asks
	// one of them (CI of c96033c: a plan right after the deletion was
	// still refused for the deleted topic's replicas). Wait until no
	// broker lists it.
	meta, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		listed := []int32{}
		for _, b := range meta.Brokers {
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(a.name)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl.Broker(int(b.NodeID)))
			if err != nil || len(resp.Topics) == 0 || resp.Topics[0].ErrorCode == 0 {
				listed = append(listed, b.NodeID)
			}
		}
		if len(listed) == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s deleted, yet brokers %v still list it after a minute", a.name, listed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testAccCheckNothingLeftOfRemoved checks that AWS holds the groups and
// launch templates of n brokers only, and no instance of the cluster
// outside them: a removed broker left nothing behind (its volume and
// interface would make Observe list it, which testAccCheckClusterInfrastructure
// counts).
func testAccCheckNothingLeftOfRemoved(n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		if len(o.Groups) != n || len(o.Templates) != n || len(o.OrphanInstanceIDs) != 0 {
			return fmt.Errorf("cluster %s has groups %v, templates %v and orphan instances %v; want the %d brokers' groups and templates only",
				o.ClusterID, o.Groups, o.Templates, o.OrphanInstanceIDs, n)
		}
		for _, b := range o.Brokers {
			if int(b.NodeID) > n {
				return fmt.Errorf("broker %d of cluster %s is still in AWS (volume %q, interface %q)", b.NodeID, o.ClusterID, b.VolumeID, b.ENIID)
			}
		}
		return nil
	}
}

// TestAccCluster_scaleInRefused: lowering brokers_per_az with
// wait_for_brokers = false is refused at plan time (the brokers would be
// drained through Kafka, which the provider then does not speak), naming
// the setting. It needs no running broker, so it runs against emulators
// that run no instances (moto) too; the scale-in itself, with data, is in
// TestAccCluster_update.
func TestAccCluster_scaleInRefused(t *testing.T) {
	accParallel(t)
	name := accName(t)
	config := func(perAZ int) string {
		return strings.Replace(infraCluster{name: name, volumeSize: 10, clientCIDRs: []string{"127.0.0.0/8"}, tags: map[string]string{"test": name}}.config(),
			"  wait_for_brokers   = false\n", fmt.Sprintf("  wait_for_brokers   = false\n  brokers_per_az     = %d\n", perAZ), 1)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config(2),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "6"),
				),
			},
			{
				Config:      config(1),
				ExpectError: regexp.MustCompile(`Removing brokers needs the brokers reachable`),
			},
		},
	})
}

// TestAccCluster_scaleInOverBrokerPartitions: a scale-in whose drain would
// put more partition replicas on a broker left than max.broker.partitions
// (from broker_config) is refused at plan time with the counts, since the
// brokers would refuse the moves at apply. A topic of 12 partitions of 3
// replicas holds about 6 on each of 6 brokers, under a limit of 10; on
// the 3 left each would hold 12. Growing the topic to 24 partitions (12
// on each broker) is refused by the brokers at apply, with the numbers.
// Nothing changes: the next plan is empty.
func TestAccCluster_scaleInOverBrokerPartitions(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	configWith := func(perAZ, partitions int) string {
		return clusterConfigSettings(name, perAZ, 10, map[string]string{"auto.create.topics.enable": "false", "max.broker.partitions": "10"}) +
			topicBlock("wide", partitions, 3, nil)
	}
	config := func(perAZ int) string { return configWith(perAZ, 12) }
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config(2),
				Check:  resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "6"),
			},
			{
				Config:   config(1),
				PlanOnly: true,
				ExpectError: regexp.MustCompile(`(?s)The brokers left cannot hold the topics.*` +
					wrappedText("36 partition replicas on the 3 brokers left: broker 1 would hold 12").String() + `.*` +
					wrappedText("over max.broker.partitions (10)").String() + `.*` +
					wrappedText("(max.broker.partitions from the cluster's broker_config)").String()),
			},
			{
				// A topic's growth is not checked at plan (the topic
				// resource does not read the cluster's broker_config):
				// the brokers refuse it at apply, naming a broker.
				Config: configWith(2, 24),
				ExpectError: regexp.MustCompile(`(?s)growing topic wide to 24 partitions:.*POLICY_VIOLATION.*` +
					`holds\s+\d+\s+partition\s+replicas\s+and\s+this\s+would\s+add\s+\d+,\s+over\s+max\.broker\.partitions\s+\(10\)`),
			},
			{
				Config: config(2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "6"),
					testAccCheckTopicOnEveryBroker("wide", 12, 3, nil, nil),
				),
			},
		},
	})
}

// accDenyAlter denies ALTER on the cluster to User:ANONYMOUS (every client
// of a plaintext cluster) connecting from 127.0.0.1, where the provider's
// connections to the brokers' loopback addresses come from, and allows it
// everything else: partition reassignments, leader elections and ACL
// changes are refused to the provider while produce, topic creation and
// configuration go on. The test lifts it from another loopback address.
type accDenyAlter struct {
	bootstrap string
}

// accDeniedHost is the source address of a connection to a loopback
// address that does not bind one; accLiftHost is one it binds.
const accDeniedHost, accLiftHost = "127.0.0.1", "127.0.0.2"

func (a *accDenyAlter) acls() []*kadm.ACLBuilder {
	return []*kadm.ACLBuilder{
		kadm.NewACLs().Clusters().Allow("User:ANONYMOUS").AllowHosts("*").Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternLiteral),
		kadm.NewACLs().Clusters().Deny("User:ANONYMOUS").DenyHosts(accDeniedHost).Operations(kadm.OpAlter).ResourcePatternType(kadm.ACLPatternLiteral),
	}
}

func (a *accDenyAlter) deny() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		a.bootstrap = bootstrap
		cl, err := kafkaClient(bootstrap)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, b := range a.acls() {
			res, err := kadm.NewClient(cl).CreateACLs(ctx, b)
			if err != nil {
				return fmt.Errorf("creating ACLs: %w", err)
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("creating an ACL for %s: %w", r.Principal, r.Err)
				}
			}
		}
		return nil
	}
}

func (a *accDenyAlter) lift(t *testing.T) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(accLiftHost)}, Timeout: 10 * time.Second}
	cl, err := kafkaClient(a.bootstrap, kgo.Dialer(dialer.DialContext))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The denial first: with the allowance gone first, the denial alone
	// would be an ACL on the cluster that allows nobody anything.
	acls := a.acls()
	slices.Reverse(acls)
	for _, b := range acls {
		res, err := kadm.NewClient(cl).DeleteACLs(ctx, b)
		if err != nil {
			t.Fatalf("deleting ACLs: %v", err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("deleting an ACL: %v", r.Err)
			}
		}
	}
}

// testAccCheckBrokerLoad checks broker_load in state: n brokers, node ids
// 1..n, each with the endpoint and Availability Zone broker_nodes gives
// it; with holding, each holds partitions and bytes on its disk, and some
// broker leads something.
func testAccCheckBrokerLoad(n int, holding bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[clusterResourceName]
		if !ok {
			return errors.New("no cluster in state")
		}
		at := rs.Primary.Attributes
		if got := at["broker_load.#"]; got != strconv.Itoa(n) {
			return fmt.Errorf("broker_load lists %s brokers, want %d", got, n)
		}
		leaders := 0
		for i := range n {
			get := func(k string) string { return at[fmt.Sprintf("broker_load.%d.%s", i, k)] }
			node := func(k string) string { return at[fmt.Sprintf("broker_nodes.%d.%s", i, k)] }
			partitions, _ := strconv.Atoi(get("partitions"))
			disk, _ := strconv.ParseInt(get("disk_used_bytes"), 10, 64)
			l, _ := strconv.Atoi(get("leaders"))
			leaders += l
			switch {
			case get("node_id") != strconv.Itoa(i+1):
				return fmt.Errorf("broker_load.%d is node %s, want %d", i, get("node_id"), i+1)
			case hostOf(get("endpoint")) != node("private_ip") || get("availability_zone") != node("availability_zone"):
				return fmt.Errorf("broker_load.%d: %s in %s; broker_nodes says %s in %s", i, get("endpoint"), get("availability_zone"), node("private_ip"), node("availability_zone"))
			case disk < 0:
				return fmt.Errorf("broker_load.%d (node %d): disk use unknown (%d)", i, i+1, disk)
			case holding && (partitions < 1 || disk <= 0):
				return fmt.Errorf("broker_load.%d (node %d): %d partitions, %d bytes on disk; want some of each", i, i+1, partitions, disk)
			}
		}
		if holding && leaders < 1 {
			return errors.New("broker_load shows no broker leading anything")
		}
		return nil
	}
}

// TestAccCluster_rebalanceAsync: with rebalance = "async", the apply that
// adds three brokers returns once the brokers accepted the moves; the
// cluster then finishes them on its own while a producer writes with
// acks=all (every broker ends with its share, all in sync, nothing
// acknowledged lost), and the plan after that is empty.
func TestAccCluster_rebalanceAsync(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	prod := &backgroundProducer{topic: "async-scaling-out"}
	config := func(perAZ int) string {
		return strings.Replace(clusterConfig(name, accEnv.version, perAZ, 10), "  brokers_per_az     =", "  rebalance          = \"async\"\n  brokers_per_az     =", 1)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config(1),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "rebalance", "async"),
					testAccCheckServesKafka("before-async", 500),
					prod.start(),
				),
			},
			{
				Config:           config(2),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "6"),
					testAccLogMoving(t),
					testAccEventually(2*time.Minute, testAccCheckReplicasSpread(t, 6, "before-async", "async-scaling-out")),
					prod.stopAndVerify(t),
				),
			},
			{
				// The moves are over: nothing to do, nothing to say, and
				// the refresh that saw them over removed their replication
				// throttle.
				Config: config(2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: func(s *terraform.State) error {
					_, bootstrap, err := clusterState(s)
					if err != nil {
						return err
					}
					for _, topic := range []string{"before-async", "async-scaling-out"} {
						if err := checkThrottleRemoved(bootstrap, topic); err != nil {
							return err
						}
					}
					return nil
				},
			},
		},
	})
}

// testAccLogMoving logs how many partitions the cluster is still moving
// when the apply has returned.
func testAccLogMoving(t *testing.T) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		cl, err := kafkaClient(bootstrap)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		running, err := kadm.NewClient(cl).ListPartitionReassignments(ctx, nil)
		if err != nil {
			return err
		}
		n := 0
		for _, parts := range running {
			n += len(parts)
		}
		t.Logf("rebalance = \"async\": %d partitions still moving when the apply returned", n)
		return nil
	}
}

// testAccEventually polls check until it passes or limit passes, and
// returns its last error then.
func testAccEventually(limit time.Duration, check resource.TestCheckFunc) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		deadline := time.Now().Add(limit)
		for {
			err := check(s)
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// hostOf is the host of a host:port, or the whole string when it has no port.
func hostOf(hostPort string) string {
	if h, _, err := net.SplitHostPort(hostPort); err == nil {
		return h
	}
	return hostPort
}
