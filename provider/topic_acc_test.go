package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

const topicResourceName = "tributary_topic.test"

// topicBlock renders a tributary_topic of the test cluster.
func topicBlock(name string, partitions, rf int, cfg map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
resource "tributary_topic" "test" {
  cluster_id         = tributary_cluster.test.cluster_id
  name               = %q
  partitions         = %d
  replication_factor = %d
`, name, partitions, rf)
	if cfg != nil {
		b.WriteString("  config = {\n")
		for _, k := range slices.Sorted(maps.Keys(cfg)) {
			fmt.Fprintf(&b, "    %q = %q\n", k, cfg[k])
		}
		b.WriteString("  }\n")
	}
	b.WriteString(`
  timeouts {
    create = "2m"
    update = "4m"
    delete = "2m"
  }
}
`)
	return b.String()
}

// topicDataSourcesConfig reads the test topic back through both data sources.
const topicDataSourcesConfig = `
data "tributary_topic" "test" {
  cluster_id = tributary_topic.test.cluster_id
  name       = tributary_topic.test.name
}

data "tributary_topics" "test" {
  cluster_id = tributary_topic.test.cluster_id
  depends_on = [tributary_topic.test]
}
`

// TestAccTopic_basic creates a cluster and a topic in one apply (no
// connection settings: the topic finds the brokers from the cluster id
// that only exists once the cluster is created), produces to the topic and
// reads it back, imports it, and reads it through both data sources.
func TestAccTopic_basic(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	cfg := map[string]string{"retention.ms": "86400000", "cleanup.policy": "compact,delete", "min.insync.replicas": "2", "compression.type": "zstd"}
	config := clusterConfig(name, accEnv.version, 1, 10) + topicBlock("orders", 3, 3, cfg)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction(topicResourceName, plancheck.ResourceActionCreate),
					plancheck.ExpectUnknownValue(topicResourceName, tfjsonpath.New("cluster_id")),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPair(topicResourceName, "cluster_id", clusterResourceName, "cluster_id"),
					resource.TestCheckResourceAttr(topicResourceName, "name", "orders"),
					resource.TestCheckResourceAttr(topicResourceName, "partitions", "3"),
					resource.TestCheckResourceAttr(topicResourceName, "replication_factor", "3"),
					resource.TestCheckResourceAttr(topicResourceName, "config.%", "4"),
					resource.TestCheckResourceAttr(topicResourceName, "config.compression.type", "zstd"),
					resource.TestCheckResourceAttr(topicResourceName, "config.retention.ms", "86400000"),
					testAccCheckTopicID(),
					testAccCheckTopicOnEveryBroker("orders", 3, 3, cfg, nil),
					testAccCheckTopicServes("orders", 300),
				),
			},
			{
				ResourceName:            topicResourceName,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources[topicResourceName].Primary.ID, nil
				},
			},
			{
				Config: config + topicDataSourcesConfig,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("data.tributary_topic.test", "partitions", "3"),
					resource.TestCheckResourceAttr("data.tributary_topic.test", "replication_factor", "3"),
					resource.TestCheckResourceAttr("data.tributary_topic.test", "config.%", "4"),
					resource.TestCheckResourceAttr("data.tributary_topic.test", "config.cleanup.policy", "compact,delete"),
					resource.TestCheckResourceAttr("data.tributary_topic.test", "effective_config.retention.ms", "86400000"),
					// Inherited from the cluster's broker_config / MSK's defaults.
					resource.TestCheckResourceAttr("data.tributary_topic.test", "effective_config.segment.bytes", "1073741824"),
					resource.TestCheckResourceAttr("data.tributary_topics.test", "names.#", "1"),
					resource.TestCheckResourceAttr("data.tributary_topics.test", "names.0", "orders"),
					resource.TestCheckResourceAttr("data.tributary_topics.test", "topics.0.partitions", "3"),
					resource.TestCheckResourceAttr("data.tributary_topics.test", "topics.0.replication_factor", "3"),
					resource.TestCheckResourceAttr("data.tributary_topics.test", "topics.0.config.min.insync.replicas", "2"),
					resource.TestCheckResourceAttr("data.tributary_topics.test", "topics.0.internal", "false"),
				),
			},
		},
	})
}

// TestAccTopic_update changes one topic in place on one cluster, step by
// step: partitions 2 -> 4 with replication factor 1 -> 3 and a config
// changed and added (in a spelling the brokers write differently), then
// replication factor 3 -> 2 with a config removed (back to the brokers'
// value), records surviving both reassignments; a shrink refused at plan
// time; changes made outside Terraform (configs,
// replication factor, partitions) found by the next plan and undone by the
// apply; the topic deleted outside Terraform re-created; and finally the
// topic removed from the configuration and gone from every broker.
func TestAccTopic_update(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	cluster := clusterConfig(name, accEnv.version, 1, 10)
	step1 := map[string]string{"retention.ms": "3600000", "min.insync.replicas": "1"}
	step2 := map[string]string{"retention.ms": "7200000", "min.insync.replicas": "1", "cleanup.policy": "delete,compact"}
	step2Broker := map[string]string{"retention.ms": "7200000", "min.insync.replicas": "1", "cleanup.policy": "compact,delete"}
	step3 := map[string]string{"retention.ms": "7200000", "min.insync.replicas": "1"}
	var clusterID string // for the PreConfig steps, which get no state
	inPlace := resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
		plancheck.ExpectResourceAction(topicResourceName, plancheck.ResourceActionUpdate),
		plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionNoop),
	}}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: cluster + topicBlock("events", 2, 1, step1),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccRecordClusterID(&clusterID),
					testAccCheckTopicOnEveryBroker("events", 2, 1, step1, nil),
					testAccProduceTo("events", 0, 200),
				),
			},
			{
				Config:           cluster + topicBlock("events", 4, 3, step2),
				ConfigPlanChecks: inPlace,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(topicResourceName, "partitions", "4"),
					resource.TestCheckResourceAttr(topicResourceName, "replication_factor", "3"),
					resource.TestCheckResourceAttr(topicResourceName, "config.cleanup.policy", "delete,compact"),
					testAccCheckTopicOnEveryBroker("events", 4, 3, step2Broker, nil),
					testAccConsumeAll("events", 200),
				),
			},
			{
				Config:           cluster + topicBlock("events", 4, 2, step3),
				ConfigPlanChecks: inPlace,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(topicResourceName, "replication_factor", "2"),
					resource.TestCheckNoResourceAttr(topicResourceName, "config.cleanup.policy"),
					testAccCheckTopicOnEveryBroker("events", 4, 2, step3, map[string]string{"cleanup.policy": "delete"}),
					testAccConsumeAll("events", 200),
				),
			},
			{
				// Kafka cannot remove partitions: refused at plan time.
				Config:      cluster + topicBlock("events", 3, 2, step3),
				PlanOnly:    true,
				ExpectError: wrappedText("Topic events has 4 partitions and the configuration asks for 3. Kafka cannot remove partitions"),
			},
			{
				// Drift: configs and the replication factor changed with kadm.
				PreConfig: func() {
					a := testTopicAdmin(t, clusterID)
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					if err := a.AlterConfig(ctx, "events", map[string]string{"retention.ms": "60000", "segment.ms": "600000"}, nil); err != nil {
						t.Fatalf("changing configs outside Terraform: %v", err)
					}
					if err := a.SetReplicationFactor(ctx, "events", 3); err != nil {
						t.Fatalf("changing the replication factor outside Terraform: %v", err)
					}
				},
				Config:             cluster + topicBlock("events", 4, 2, step3),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(topicResourceName, plancheck.ResourceActionUpdate),
					expectBefore{topicResourceName, []string{"replication_factor"}, 3},
					expectBefore{topicResourceName, []string{"config", "retention.ms"}, "60000"},
					expectBefore{topicResourceName, []string{"config", "segment.ms"}, "600000"},
				}},
			},
			{
				// Drift: partitions added with kadm make the configured
				// count a shrink, which the plan refuses naming the count.
				PreConfig: func() {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					if err := testTopicAdmin(t, clusterID).AddPartitions(ctx, "events", 6); err != nil {
						t.Fatalf("adding partitions outside Terraform: %v", err)
					}
				},
				Config:      cluster + topicBlock("events", 4, 2, step3),
				PlanOnly:    true,
				ExpectError: wrappedText("Topic events has 6 partitions and the configuration asks for 4"),
			},
			{
				// The apply undoes the config and replication factor drift.
				Config:           cluster + topicBlock("events", 6, 2, step3),
				ConfigPlanChecks: inPlace,
				Check:            testAccCheckTopicOnEveryBroker("events", 6, 2, step3, map[string]string{"segment.ms": "604800000"}),
			},
			{
				// Disappears: deleted outside Terraform, the next plan
				// creates it again.
				Config:             cluster + topicBlock("events", 6, 2, step3),
				Check:              testAccDeleteTopicOutside(t, "events"),
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cluster + topicBlock("events", 6, 2, step3),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(topicResourceName, plancheck.ResourceActionCreate),
				}},
				Check: testAccCheckTopicOnEveryBroker("events", 6, 2, step3, nil),
			},
			{
				// Removed from the configuration: deleted from the cluster.
				Config: cluster,
				Check:  testAccCheckTopicGone("events"),
			},
		},
	})
}

// TestAccTopic_invalid refuses bad topics at plan time, before anything
// is created (so it needs no brokers and runs against every endpoint).
// Steps that must fail are kept out of the tests that create a cluster:
// terraform-plugin-testing destroys with the last step's configuration,
// which could not be planned.
func TestAccTopic_invalid(t *testing.T) {
	accParallel(t)
	topic := func(name string, rf int, cfg map[string]string) string {
		return testAccProviderConfig() + strings.Replace(topicBlock(name, 3, rf, cfg),
			"tributary_cluster.test.cluster_id", `"tc-0123456789abcdef"`, 1)
	}
	steps := []struct {
		config string
		want   string
	}{
		{topic("orders", 3, map[string]string{"retention.ms": "0"}), `retention.ms must be -1 (forever) or at least 1, got "0"`},
		{topic("orders", 3, map[string]string{"retention.ms": "a week"}), `retention.ms must be an integer, got "a week"`},
		{topic("orders", 3, map[string]string{"retention.mss": "1000"}), `retention.mss is not a topic config (did you mean "retention.ms"?)`},
		{topic("orders", 3, map[string]string{"log.retention.ms": "1000"}), `log.retention.ms is the broker setting; the topic config is "retention.ms"`},
		{topic("orders", 3, map[string]string{"cleanup.policy": "shred"}), `cleanup.policy`},
		{topic("orders", 3, map[string]string{"compression.type": "brotli"}), `compression.type must be one of producer, uncompressed, gzip, snappy, lz4, zstd, got "brotli"`},
		{topic("orders", 2, map[string]string{"min.insync.replicas": "3"}), `min.insync.replicas (3) is above replication_factor (2)`},
		{topic("orders", 3, map[string]string{"follower.replication.throttled.replicas": "*"}), `set the copy's rate with replication_throttle_bytes_per_second`},
		{strings.Replace(topic("orders", 3, nil), "replication_factor =", "replication_throttle_bytes_per_second = -1\n  replication_factor =", 1), `must be at least 0`},
		{topic("orders/eu", 3, nil), `may hold only letters, digits`},
		{strings.Replace(topic("orders", 3, nil), "tc-0123456789abcdef", "my-cluster", 1), `must be a Tributary cluster id`},
		{strings.Replace(topic("orders", 3, nil), "partitions         = 3", "partitions         = 10000", 1),
			`one request creates at most 9999 partitions of a topic`},
	}
	var tsteps []resource.TestStep
	for _, s := range steps {
		tsteps = append(tsteps, resource.TestStep{Config: s.config, PlanOnly: true, ExpectError: wrappedText(s.want)})
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps:                    tsteps,
	})
}

// TestAccTopic_partitionLimits refuses at plan time what one request to
// the brokers cannot carry, with nothing changed on the cluster: a topic
// grown by more than 10,000 partitions in one apply, and a topic created
// with more than 9,999 (the creation case without brokers is in
// TestAccTopic_invalid; here the plan of a cluster that exists). The
// topic keeps its partitions and the refused one is on no broker.
func TestAccTopic_partitionLimits(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	cluster := clusterConfig(name, accEnv.version, 1, 10)
	config := cluster + topicBlock("events", 6, 3, nil)
	big := strings.Replace(topicBlock("bulk", 10000, 3, nil), `"tributary_topic" "test"`, `"tributary_topic" "bulk"`, 1)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check:  testAccCheckTopicOnEveryBroker("events", 6, 3, nil, nil),
			},
			{
				Config:      cluster + topicBlock("events", 10007, 3, nil),
				PlanOnly:    true,
				ExpectError: wrappedText("Topic events has 6 partitions and the configuration asks for 10007: 10001 more, and one request adds at most 10000"),
			},
			{
				Config:      config + big,
				PlanOnly:    true,
				ExpectError: wrappedText("Topic bulk would be created with 10000 partitions, and one request creates at most 9999 partitions"),
			},
			{
				// Nothing changed: the plan is empty and the brokers
				// have the topic as it was and no other.
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckTopicOnEveryBroker("events", 6, 3, nil, nil),
					testAccCheckTopicGone("bulk"),
				),
			},
		},
	})
}

// --- helpers ---

func testAccCheckTopicID() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		return resource.TestCheckResourceAttr(topicResourceName, "id", id+"/"+s.RootModule().Resources[topicResourceName].Primary.Attributes["name"])(s)
	}
}

// testTopicAdmin returns the provider's topic operations on a cluster, to
// change things behind Terraform's back.
func testTopicAdmin(t *testing.T, clusterID string) *kafkatopic.Admin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := (&providerData{aws: accEnv.clients}).kafkaConn(ctx, clusterID)
	if err != nil {
		t.Fatalf("reaching cluster %q: %v", clusterID, err)
	}
	return &kafkatopic.Admin{Conn: conn, Log: func(_ context.Context, msg string, attrs ...any) { t.Log(append([]any{msg}, attrs...)...) }}
}

// testAccRecordClusterID keeps the cluster id of the state.
func testAccRecordClusterID(into *string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		*into = id
		return err
	}
}

// testAccDeleteTopicOutside deletes a topic with kadm, as someone outside
// Terraform would, and waits until no broker lists it.
func testAccDeleteTopicOutside(t *testing.T, topic string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return testTopicAdmin(t, id).Delete(ctx, topic)
	}
}

// testAccCheckTopicOnEveryBroker asks each broker on its own (not through
// the provider) for the topic: partitions, each with rf replicas in rf
// different Availability Zones, all in sync and led; the topic's own
// configs exactly own; and inherited the configs of inherited (not the
// topic's own, with that value).
func testAccCheckTopicOnEveryBroker(topic string, partitions, rf int, own, inherited map[string]string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ep := range strings.Split(bootstrap, ",") {
			if err := checkTopicOn(ctx, ep, topic, partitions, rf, own, inherited); err != nil {
				return fmt.Errorf("broker %s: %w", ep, err)
			}
		}
		return nil
	}
}

func checkTopicOn(ctx context.Context, ep, topic string, partitions, rf int, own, inherited map[string]string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(ep))
	if err != nil {
		return err
	}
	defer cl.Close()
	broker := cl.SeedBrokers()[0]
	mreq := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, rt)
	md, err := mreq.RequestWith(ctx, broker)
	if err != nil {
		return err
	}
	rack := map[int32]string{}
	for _, b := range md.Brokers {
		if b.Rack != nil {
			rack[b.NodeID] = *b.Rack
		}
	}
	if len(md.Topics) != 1 || md.Topics[0].ErrorCode != 0 {
		return fmt.Errorf("topic %s not served: %+v", topic, md.Topics)
	}
	ps := md.Topics[0].Partitions
	if len(ps) != partitions {
		return fmt.Errorf("%d partitions, want %d", len(ps), partitions)
	}
	for _, p := range ps {
		azs := map[string]bool{}
		for _, r := range p.Replicas {
			azs[rack[r]] = true
		}
		slices.Sort(p.ISR)
		replicas := slices.Sorted(slices.Values(p.Replicas))
		switch {
		case len(p.Replicas) != rf:
			return fmt.Errorf("%s-%d has replicas %v, want %d", topic, p.Partition, p.Replicas, rf)
		case len(azs) != rf || azs[""]:
			return fmt.Errorf("%s-%d has replicas %v in AZs %v, want %d different AZs", topic, p.Partition, p.Replicas, slices.Sorted(maps.Keys(azs)), rf)
		case !slices.Equal(p.ISR, replicas) || p.Leader < 0:
			return fmt.Errorf("%s-%d: replicas %v, ISR %v, leader %d: not all in sync and led", topic, p.Partition, p.Replicas, p.ISR, p.Leader)
		}
	}

	creq := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	creq.Resources = append(creq.Resources, rr)
	cresp, err := creq.RequestWith(ctx, broker)
	if err != nil {
		return err
	}
	gotOwn := map[string]string{}
	for _, r := range cresp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("describing the configs of %s: %w", topic, err)
		}
		for _, c := range r.Configs {
			if c.Value == nil {
				continue
			}
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				gotOwn[c.Name] = *c.Value
			}
			if want, ok := inherited[c.Name]; ok && (c.Source == kmsg.ConfigSourceDynamicTopicConfig || *c.Value != want) {
				return fmt.Errorf("%s = %q from %s, want the inherited %q", c.Name, *c.Value, c.Source, want)
			}
		}
	}
	if !maps.Equal(gotOwn, own) {
		return fmt.Errorf("the topic's own configs are %v, want %v", gotOwn, own)
	}
	return nil
}

// testAccCheckTopicGone checks that no broker lists the topic.
func testAccCheckTopicGone(topic string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ep := range strings.Split(bootstrap, ",") {
			cl, err := kgo.NewClient(kgo.SeedBrokers(ep))
			if err != nil {
				return err
			}
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl.SeedBrokers()[0])
			cl.Close()
			if err != nil {
				return fmt.Errorf("broker %s: %w", ep, err)
			}
			if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
				return fmt.Errorf("broker %s still lists topic %s", ep, topic)
			}
		}
		return nil
	}
}

// testAccProduceTo produces n records (numbered from from) with acks=all.
func testAccProduceTo(topic string, from, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := produce(ctx, bootstrap, topic, from, n); err != nil {
			return fmt.Errorf("producing to %s: %w", topic, err)
		}
		return nil
	}
}

// testAccConsumeAll reads the topic from the start and checks every one of
// the n records produced by testAccProduceTo from 0 is there.
func testAccConsumeAll(topic string, n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		seen, err := consume(ctx, bootstrap, topic, n)
		if err != nil {
			return err
		}
		for i := range n {
			if !seen[fmt.Sprintf("record-%d", i)] {
				return fmt.Errorf("record-%d of topic %s is lost", i, topic)
			}
		}
		return nil
	}
}

// testAccCheckTopicServes produces n records with acks=all to a topic the
// configuration created and reads them all back.
func testAccCheckTopicServes(topic string, n int) resource.TestCheckFunc {
	return resource.ComposeTestCheckFunc(testAccProduceTo(topic, 0, n), testAccConsumeAll(topic, n))
}

// expectBefore checks what the plan says a resource's attribute is now,
// before the change: the refreshed value, drift included.
type expectBefore struct {
	address string
	path    []string // attribute, then map key
	want    any
}

func (e expectBefore) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.address {
			continue
		}
		before, _ := rc.Change.Before.(map[string]any)
		var got any = before
		for _, part := range e.path {
			m, _ := got.(map[string]any)
			got = m[part]
		}
		if fmt.Sprint(got) != fmt.Sprint(e.want) {
			resp.Error = fmt.Errorf("%s: %v before the change is %v, want %v", e.address, e.path, got, e.want)
		}
		return
	}
	resp.Error = fmt.Errorf("%s not in the plan", e.address)
}
