package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/provider/internal/kafkaquota"
)

const quotaResourceName = "tributary_quota.test"

// quotaRate is the produce quota of the acceptance tests: 64 KiB/s.
const quotaRate = 64 << 10

// quotaBlock limits the client id "throttled" on each broker.
func quotaBlock(producerByteRate int, extra string) string {
	return fmt.Sprintf(`
resource "tributary_quota" "test" {
  cluster_id         = tributary_cluster.test.cluster_id
  client_id          = "throttled"
  producer_byte_rate = %d
%s}
`, producerByteRate, extra)
}

// quotaCluster is a cluster whose brokers measure rates over two
// one-second samples (quota.window.num; Kafka's default is 11), so that a
// new client's first burst is one second's worth. A producer that sends
// as fast as it is let goes in cycles of quota.window.num samples, as
// with Kafka (when the oldest sample is dropped, the rest lets a burst
// through), so the test measures over whole cycles: a simulation of this
// producer against package quota gives 100-105 % of the quota over seconds
// 4 to 14 with two samples, but 147 % over seconds 6 to 14 with six.
func quotaCluster(name string) string {
	return clusterConfigSettings(name, 1, 10, map[string]string{"quota.window.num": "2", "auto.create.topics.enable": "false"})
}

// TestAccQuota_basic creates a cluster, a topic and a client quota in one
// apply and measures a real producer held to the quota. The quota is
// imported, updated in place, found changed and deleted outside Terraform
// and put back, then removed.
func TestAccQuota_basic(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	base := quotaCluster(name) + topicBlock("metered", 1, 3, nil)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: base + quotaBlock(quotaRate, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(quotaResourceName, plancheck.ResourceActionCreate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckQuotaID(),
					resource.TestCheckNoResourceAttr(quotaResourceName, "consumer_byte_rate"),
					testAccCheckProducerThrottled(t, "metered", quotaRate),
				),
			},
			{
				ResourceName:      quotaResourceName,
				ImportState:       true,
				ImportStateVerify: true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					return s.RootModule().Resources[quotaResourceName].Primary.ID, nil
				},
			},
			{
				// In place: one value changed, one added.
				Config: base + quotaBlock(2*quotaRate, "  request_percentage = 150.5\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(quotaResourceName, plancheck.ResourceActionUpdate),
				}},
				Check: testAccCheckQuotaHeld(t, map[string]float64{"producer_byte_rate": 2 * quotaRate, "request_percentage": 150.5}),
			},
			{
				// Changed outside Terraform (kafka-configs would do the
				// same): the next plan updates it back.
				Config:             base + quotaBlock(2*quotaRate, "  request_percentage = 150.5\n"),
				Check:              testAccSetQuotaOutside(t, map[string]float64{"producer_byte_rate": 1000, "consumer_byte_rate": 5000}),
				ExpectNonEmptyPlan: true,
			},
			{
				Config: base + quotaBlock(2*quotaRate, "  request_percentage = 150.5\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(quotaResourceName, plancheck.ResourceActionUpdate),
				}},
				Check: testAccCheckQuotaHeld(t, map[string]float64{"producer_byte_rate": 2 * quotaRate, "request_percentage": 150.5}),
			},
			{
				// Deleted outside Terraform: created again.
				Config:             base + quotaBlock(2*quotaRate, "  request_percentage = 150.5\n"),
				Check:              testAccSetQuotaOutside(t, nil),
				ExpectNonEmptyPlan: true,
			},
			{
				Config: base + quotaBlock(2*quotaRate, "  request_percentage = 150.5\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(quotaResourceName, plancheck.ResourceActionCreate),
				}},
				Check: testAccCheckQuotaHeld(t, map[string]float64{"producer_byte_rate": 2 * quotaRate, "request_percentage": 150.5}),
			},
			{
				Config: base,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(quotaResourceName, plancheck.ResourceActionDestroy),
				}},
				Check: testAccCheckQuotaHeld(t, nil),
			},
		},
	})
}

// TestAccQuota_invalid refuses bad quotas at plan time with the brokers'
// own rules, before anything is created (no brokers needed).
func TestAccQuota_invalid(t *testing.T) {
	accParallel(t)
	quota := func(body string) string {
		return testAccProviderConfig() + `
resource "tributary_quota" "test" {
  cluster_id = "tc-0123456789abcdef"
` + body + "}\n"
	}
	steps := []struct {
		config string
		want   string
	}{
		{quota("producer_byte_rate = 1024\n"), "at least one of user, client-id or ip"},
		{quota("user = \"alice\"\n"), "a quota needs at least one of consumer_byte_rate, producer_byte_rate, request_percentage"},
		{quota("user = \"alice\"\nconnection_creation_rate = 5\n"), "quota key connection_creation_rate does not apply to entity user=alice"},
		{quota("ip = \"10.0.0.1\"\nproducer_byte_rate = 5\n"), "quota key producer_byte_rate does not apply to entity ip=10.0.0.1"},
		{quota("ip = \"10.0.0.1\"\nuser = \"alice\"\nconnection_creation_rate = 5\n"), "an ip quota entity cannot be combined with user or client-id"},
		{quota("ip = \"broker-1\"\nconnection_creation_rate = 5\n"), `quota entity ip "broker-1" is not an IP address`},
		{quota("client_id = \"app\"\nproducer_byte_rate = 0\n"), "quota producer_byte_rate must be greater than 0"},
		{quota("client_id = \"app\"\nrequest_percentage = -1\n"), "quota request_percentage must be greater than 0"},
		{quota("user = \"\"\nproducer_byte_rate = 1\n"), "string length must be at least 1"},
		// Names the brokers take and never match: each at its argument.
		{quota("user = \"User:alice\"\nproducer_byte_rate = 1\n"), `user = "User:alice" user "User:alice": the user is the principal's name without User:, "alice"`},
		{quota("ip = \"::FFFF:10.0.0.1\"\nconnection_creation_rate = 5\n"), `ip = "::FFFF:10.0.0.1" ip "::FFFF:10.0.0.1" is written 10.0.0.1`},
		// Every mistake at once, each under its own argument's line.
		{quota("client_id = \"app\"\nproducer_byte_rate = -1\nconnection_creation_rate = 5\n"), `producer_byte_rate = -1 quota producer_byte_rate must be greater than 0`},
		{quota("client_id = \"app\"\nproducer_byte_rate = -1\nconnection_creation_rate = 5\n"), `connection_creation_rate = 5 quota key connection_creation_rate does not apply to entity client-id=app`},
	}
	var tsteps []resource.TestStep
	for _, s := range steps {
		tsteps = append(tsteps, resource.TestStep{Config: s.config, PlanOnly: true, ExpectError: wrappedText(s.want)})
	}
	tsteps = append(tsteps, resource.TestStep{
		Config:        quota("user = \"alice\"\nproducer_byte_rate = 1\n"),
		ResourceName:  quotaResourceName,
		ImportState:   true,
		ImportStateId: "tc-0123456789abcdef|group=g",
		ExpectError:   wrappedText("a quota id is cluster_id|user=NAME|client-id=NAME"),
	})
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		Steps:                    tsteps,
	})
}

func testAccCheckQuotaID() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		return resource.TestCheckResourceAttr(quotaResourceName, "id", id+"|client-id=throttled")(s)
	}
}

// testQuotaAdmin returns the provider's quota operations on a cluster, to
// look and change things behind Terraform's back.
func testQuotaAdmin(t *testing.T, clusterID string) *kafkaquota.Admin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := (&providerData{aws: accEnv.clients}).kafkaConn(ctx, clusterID)
	if err != nil {
		t.Fatalf("reaching cluster %q: %v", clusterID, err)
	}
	return &kafkaquota.Admin{Conn: conn, Log: func(_ context.Context, msg string, attrs ...any) { t.Log(append([]any{msg}, attrs...)...) }}
}

var throttledEntity = kafkaquota.Entity{ClientID: "throttled"}

// testAccCheckQuotaHeld checks that the cluster holds exactly want for the
// test's entity (nil: nothing).
func testAccCheckQuotaHeld(t *testing.T, want map[string]float64) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		got, err := testQuotaAdmin(t, id).Describe(ctx, throttledEntity)
		switch {
		case want == nil && errors.Is(err, kafkaquota.ErrNotFound):
			return nil
		case err != nil:
			return err
		case !maps.Equal(got, want):
			return fmt.Errorf("the cluster holds %v for %s, want %v", got, throttledEntity, want)
		}
		return nil
	}
}

// testAccSetQuotaOutside sets the entity's quotas (nil: deletes them)
// through the Kafka protocol, as an operator with kafka-configs would.
func testAccSetQuotaOutside(t *testing.T, values map[string]float64) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return testQuotaAdmin(t, id).Set(ctx, throttledEntity, values)
	}
}

// testAccCheckProducerThrottled produces as client id "throttled" for 14 s
// (uncompressed random 1 KiB records, 16 KiB batches, one partition, so
// one broker meters it) and checks that the rate acknowledged from the
// fifth second on is the quota within 15 %, and that the client was
// told of throttles.
func testAccCheckProducerThrottled(t *testing.T, topic string, rate int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var throttles int
		var throttled time.Duration
		hook := throttleCounter(func(d time.Duration) {
			mu.Lock()
			throttles++
			throttled += d
			mu.Unlock()
		})
		cl, err := kafkaClient(bootstrap, kgo.ClientID("throttled"), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(16<<10),
			kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(32), kgo.WithHooks(hook))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		const warmup, measure = 4 * time.Second, 10 * time.Second
		start := time.Now()
		var acked int
		var firstErr error
		for time.Since(start) < warmup+measure {
			v := make([]byte, 1024)
			_, _ = rand.Read(v)
			cl.Produce(ctx, &kgo.Record{Value: v}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErr = errors.Join(firstErr, err)
					return
				}
				if at := time.Since(start); at >= warmup && at < warmup+measure {
					acked += len(r.Value)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil {
			return fmt.Errorf("producing as the throttled client: %w", firstErr)
		}
		got := float64(acked) / measure.Seconds()
		t.Logf("throttled producer: %.0f B/s against a quota of %d B/s (%.1f %%), %d throttles totalling %v",
			got, rate, 100*got/float64(rate), throttles, throttled.Round(time.Millisecond))
		if got < 0.85*float64(rate) || got > 1.15*float64(rate) {
			return fmt.Errorf("the throttled producer sent %.0f B/s, want %d ± 15 %%", got, rate)
		}
		if throttles == 0 {
			return errors.New("the throttled producer was never told of a throttle")
		}
		return nil
	}
}

// throttleCounter is a kgo hook that reports each throttle.
type throttleCounter func(time.Duration)

func (f throttleCounter) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		f(d)
	}
}
