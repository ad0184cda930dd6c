package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/cwquery"
)

// monitoringConfig is a cluster the provider does not wait for, with the
// given monitoring block (none when "").
func monitoringConfig(name, monitoring string) string {
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  wait_for_brokers   = false
  client_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`
%[4]s

  storage {
    volume_size = 10
  }

  timeouts {
    create = "4m"
    update = "4m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), monitoring)
}

// TestAccCluster_monitoring: the alarms and the dashboard are created with
// the cluster, changed in place, and deleted with it. It needs no running
// broker, so it runs against moto too.
func TestAccCluster_monitoring(t *testing.T) {
	accParallel(t)
	if _, err := os.Stat(awsCLI); err != nil {
		testenv.Missing(t, "Debian's aws CLI is not installed (%s): run make tools or apt-get install awscli", awsCLI)
	}
	testAccPreCheck(t)
	name := accName(t)
	topic := testAccSNSTopic(t, name+"-alarms")
	full := func() string {
		return fmt.Sprintf(`
  monitoring {
    alarms {
      sns_topic_arns = [%q]
      consumer_lag {
        group     = "ledger"
        topic     = "payments"
        threshold = 1000
      }
    }
  }`, topic)
	}
	changed := func() string {
		return fmt.Sprintf(`
  monitoring {
    dashboard = false
    alarms {
      sns_topic_arns         = [%q]
      under_min_isr          = false
      data_disk_used_percent = 70
    }
  }`, topic)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy: resource.ComposeAggregateTestCheckFunc(
			testAccCheckClusterDestroyed,
			testAccCheckAlarms(name, nil, ""),
		),
		Steps: []resource.TestStep{
			{
				Config: monitoringConfig(name, full()),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckAlarms(name, map[string]float64{"offline-partitions": 0, "under-min-isr": 0, "active-controller": 0,
						"data-disk": 85, "lag-ledger-payments": 1000}, topic),
					testAccCheckDashboard(name, true),
				),
			},
			{
				Config:           monitoringConfig(name, changed()),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckAlarms(name, map[string]float64{"offline-partitions": 0, "active-controller": 0, "data-disk": 70}, topic),
					testAccCheckDashboard(name, false),
				),
			},
		},
	})
}

// testAccSNSTopic creates an SNS topic for the test and returns its ARN.
func testAccSNSTopic(t *testing.T, name string) string {
	t.Helper()
	cfg := accEnv.clients.Config.Copy()
	client := sns.NewFromConfig(cfg, func(o *sns.Options) {
		if accEnv.endpoint != "" {
			o.BaseEndpoint = aws.String(accEnv.endpoint)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := client.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("creating SNS topic %s: %v", name, err)
	}
	arn := aws.ToString(out.TopicArn)
	t.Cleanup(func() {
		_, _ = client.DeleteTopic(context.Background(), &sns.DeleteTopicInput{TopicArn: aws.String(arn)})
	})
	return arn
}

func clusterIDOf(s *terraform.State) (string, error) {
	rs, ok := s.RootModule().Resources[clusterResourceName]
	if !ok {
		return "", fmt.Errorf("%s not in state", clusterResourceName)
	}
	return rs.Primary.Attributes["cluster_id"], nil
}

// testAccCheckAlarms checks with `aws cloudwatch describe-alarms` that the
// cluster's alarms are exactly want (kind -> threshold), each notifying
// topic on ALARM and OK. With want nil (after destroy), no alarm of a
// cluster of that name is left.
func testAccCheckAlarms(name string, want map[string]float64, topic string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		prefix := "tributary-" + name + "-"
		if want != nil {
			id, err := clusterIDOf(s)
			if err != nil {
				return err
			}
			prefix = monitoringPrefix(name, id) + "-"
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var out struct {
			MetricAlarms []struct {
				AlarmName    string
				Threshold    float64
				AlarmActions []string
				OKActions    []string
				Metrics      []json.RawMessage
				MetricName   string
			}
		}
		if err := awsJSON(ctx, &out, "cloudwatch", "describe-alarms", "--alarm-name-prefix", prefix); err != nil {
			return err
		}
		got := map[string]float64{}
		for _, a := range out.MetricAlarms {
			kind := strings.TrimPrefix(a.AlarmName, prefix)
			got[kind] = a.Threshold
			if !slices.Equal(a.AlarmActions, []string{topic}) || !slices.Equal(a.OKActions, []string{topic}) {
				return fmt.Errorf("alarm %s notifies %v / %v, want %s", a.AlarmName, a.AlarmActions, a.OKActions, topic)
			}
			if a.MetricName == "" && len(a.Metrics) == 0 {
				return fmt.Errorf("alarm %s watches no metric", a.AlarmName)
			}
		}
		if len(got) != len(want) {
			return fmt.Errorf("alarms %v, want %v", got, want)
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				return fmt.Errorf("alarms %v, want %v", got, want)
			}
		}
		return nil
	}
}

// testAccCheckDashboard checks the cluster's dashboard exists (with its
// widgets) or not.
func testAccCheckDashboard(name string, exists bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, err := clusterIDOf(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var out struct {
			DashboardEntries []struct{ DashboardName string }
		}
		if err := awsJSON(ctx, &out, "cloudwatch", "list-dashboards", "--dashboard-name-prefix", monitoringPrefix(name, id)); err != nil {
			return err
		}
		if got := len(out.DashboardEntries) == 1; got != exists {
			return fmt.Errorf("dashboard %s exists = %v, want %v", monitoringPrefix(name, id), got, exists)
		}
		if !exists {
			return nil
		}
		var dash struct{ DashboardBody string }
		if err := awsJSON(ctx, &dash, "cloudwatch", "get-dashboard", "--dashboard-name", monitoringPrefix(name, id)); err != nil {
			return err
		}
		var body struct {
			Widgets []struct{ Properties struct{ Title string } }
		}
		if err := json.Unmarshal([]byte(dash.DashboardBody), &body); err != nil {
			return fmt.Errorf("dashboard body %q: %w", dash.DashboardBody, err)
		}
		titles := map[string]bool{}
		for _, w := range body.Widgets {
			titles[w.Properties.Title] = true
		}
		for _, want := range []string{"Active controllers", "Data disk used (%)", "Consumer lag (records)"} {
			if !titles[want] {
				return fmt.Errorf("dashboard lacks the widget %q: %v", want, titles)
			}
		}
		return nil
	}
}

// TestAccCluster_alarmFires: the offline-partitions alarm of a running
// cluster goes to ALARM when the broker holding a partition is killed, with
// a notification to its SNS topic, and back to OK when the broker heals.
// Healing is held off (the broker's Auto Scaling group's Launch and
// ReplaceUnhealthy processes suspended) until the alarm fired, so the test
// does not race EC2 Auto Scaling.
func TestAccCluster_alarmFires(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	testAccPreCheck(t)
	name := accName(t)
	topic := testAccSNSTopic(t, name+"-alarms")
	sub := newAlarmSubscriber(t, topic)
	config := monitoringConfig(name, fmt.Sprintf(`
  monitoring {
    dashboard = false
    alarms {
      sns_topic_arns = [%q]
    }
  }`, topic))
	// wait_for_brokers = false in monitoringConfig: wait here instead.
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				waitClusterFormed,
				testAccProduceOn(3, "on-broker-3", 10),
				testAccHoldHealing(3, true),
				testAccTerminateBroker(3),
				testAccWaitAlarm(name, "offline-partitions", "ALARM", 5*time.Minute),
				sub.waitFor(`ALARM: "tributary-`+name),
				testAccHoldHealing(3, false),
				testAccWaitAlarm(name, "offline-partitions", "OK", 6*time.Minute),
				sub.waitFor(`OK: "tributary-`+name),
			),
		}},
	})
}

// alarmSubscriber is an HTTP endpoint on loopback subscribed to an SNS
// topic (the local cloud posts notifications to it).
type alarmSubscriber struct {
	mu       sync.Mutex
	subjects []string
}

func newAlarmSubscriber(t *testing.T, topic string) *alarmSubscriber {
	t.Helper()
	a := &alarmSubscriber{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Subject string }
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			a.mu.Lock()
			a.subjects = append(a.subjects, m.Subject)
			a.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	client := sns.NewFromConfig(accEnv.clients.Config.Copy(), func(o *sns.Options) {
		if accEnv.endpoint != "" {
			o.BaseEndpoint = aws.String(accEnv.endpoint)
		}
	})
	if _, err := client.Subscribe(context.Background(), &sns.SubscribeInput{TopicArn: aws.String(topic), Protocol: aws.String("http"), Endpoint: aws.String(srv.URL)}); err != nil {
		t.Fatalf("subscribing to %s: %v", topic, err)
	}
	return a
}

// waitFor waits for a notification whose subject starts with prefix.
func (a *alarmSubscriber) waitFor(prefix string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		deadline := time.Now().Add(time.Minute)
		for {
			a.mu.Lock()
			subjects := slices.Clone(a.subjects)
			a.mu.Unlock()
			for _, s := range subjects {
				if strings.HasPrefix(s, prefix) {
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no SNS notification %q within a minute; got %q", prefix, subjects)
			}
			time.Sleep(time.Second)
		}
	}
}

// testAccHoldHealing suspends (hold) or resumes the Launch and
// ReplaceUnhealthy processes of a broker's Auto Scaling group.
func testAccHoldHealing(nodeID int32, hold bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		o, err := testFleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		b, ok := o.Broker(nodeID)
		if !ok || b.GroupName == "" {
			return fmt.Errorf("broker %d has no Auto Scaling group", nodeID)
		}
		processes := []string{"Launch", "ReplaceUnhealthy", "HealthCheck"}
		if hold {
			_, err = accEnv.clients.AutoScaling.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(b.GroupName), ScalingProcesses: processes})
		} else {
			_, err = accEnv.clients.AutoScaling.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String(b.GroupName), ScalingProcesses: processes})
		}
		return err
	}
}

// testAccWaitAlarm waits until the cluster's alarm of kind is in state,
// reading it with `aws cloudwatch describe-alarms`.
func testAccWaitAlarm(name, kind, state string, patience time.Duration) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, err := clusterIDOf(s)
		if err != nil {
			return err
		}
		alarm := monitoringPrefix(name, id) + "-" + kind
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		last := ""
		for {
			var out struct {
				MetricAlarms []struct{ StateValue, StateReason string }
			}
			if err := awsJSON(ctx, &out, "cloudwatch", "describe-alarms", "--alarm-names", alarm); err == nil && len(out.MetricAlarms) == 1 {
				last = out.MetricAlarms[0].StateValue + " (" + out.MetricAlarms[0].StateReason + ")"
				if out.MetricAlarms[0].StateValue == state {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("alarm %s not %s within %v; last %s", alarm, state, patience, last)
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// TestAccCluster_monitoringDeletedOutside: alarms and the dashboard deleted
// outside Terraform show in the next plan as an in-place update, which
// puts them again. It needs no running broker, so it runs against moto too.
func TestAccCluster_monitoringDeletedOutside(t *testing.T) {
	accParallel(t)
	if _, err := os.Stat(awsCLI); err != nil {
		testenv.Missing(t, "Debian's aws CLI is not installed (%s): run make tools or apt-get install awscli", awsCLI)
	}
	testAccPreCheck(t)
	name := accName(t)
	topic := testAccSNSTopic(t, name+"-alarms")
	config := monitoringConfig(name, fmt.Sprintf(`
  monitoring {
    alarms {
      sns_topic_arns = [%q]
      consumer_lag {
        group     = "ledger"
        topic     = "payments"
        threshold = 1000
      }
      consumer_lag {
        group     = "audit"
        topic     = "payments"
        threshold = 10
      }
    }
  }`, topic))
	all := map[string]float64{"offline-partitions": 0, "under-min-isr": 0, "active-controller": 0, "data-disk": 85,
		"lag-ledger-payments": 1000, "lag-audit-payments": 10}
	var clusterID string
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             resource.ComposeAggregateTestCheckFunc(testAccCheckClusterDestroyed, testAccCheckAlarms(name, nil, "")),
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckAlarms(name, all, topic),
					testAccCheckDashboard(name, true),
					func(s *terraform.State) error {
						var err error
						clusterID, _, err = clusterState(s)
						return err
					},
				),
			},
			{
				PreConfig: func() {
					cw := cwquery.New(accEnv.clients.CloudWatch)
					prefix := monitoringPrefix(name, clusterID)
					ctx := context.Background()
					if err := cw.DeleteAlarms(ctx, []string{prefix + "-offline-partitions", prefix + "-lag-ledger-payments"}); err != nil {
						t.Fatal(err)
					}
					if err := cw.DeleteDashboards(ctx, []string{prefix}); err != nil {
						t.Fatal(err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionUpdate),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					testAccCheckAlarms(name, all, topic),
					testAccCheckDashboard(name, true),
				),
			},
		},
	})
}
