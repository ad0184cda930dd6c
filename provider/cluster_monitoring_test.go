package provider

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

func TestDesiredAlarms(t *testing.T) {
	c := clusterMetrics{Namespace: "Tributary/Kafka", Name: "orders", ClusterID: "tc-1", BrokerIDs: []int32{1, 2, 3}}
	s := &monitoringSettings{Alarms: true, Topics: []string{"arn:aws:sns:us-east-1:000000000000:oncall"},
		OfflinePartitions: true, UnderMinISR: true, ActiveController: true, DiskPercent: 85,
		Lag: []lagAlarm{{Group: "ledger", Topic: "payments", Threshold: 1000}}}
	got := map[string]string{}
	for _, in := range desiredAlarms(c, s) {
		name := strings.TrimPrefix(aws.ToString(in.AlarmName), "tributary-orders-tc-1-")
		var what string
		if len(in.Metrics) > 0 {
			for _, q := range in.Metrics {
				if q.Expression != nil {
					what = aws.ToString(q.Expression)
				}
			}
		} else {
			what = aws.ToString(in.MetricName) + "/" + string(in.Statistic)
			for _, d := range in.Dimensions {
				what += " " + aws.ToString(d.Name) + "=" + aws.ToString(d.Value)
			}
		}
		what += " " + string(in.ComparisonOperator) + " " + strconv.FormatFloat(aws.ToFloat64(in.Threshold), 'g', -1, 64)
		got[name] = what
		if len(in.AlarmActions) != 1 || len(in.OKActions) != 1 {
			t.Errorf("%s: actions %v %v", name, in.AlarmActions, in.OKActions)
		}
	}
	want := map[string]string{
		"offline-partitions":  "OfflinePartitionsCount/Maximum Cluster Name=orders GreaterThanThreshold 0",
		"under-min-isr":       "SUM([b1,b2,b3]) GreaterThanThreshold 0",
		"active-controller":   "ABS(controllers - 1) GreaterThanThreshold 0",
		"data-disk":           "KafkaDataLogsDiskUsed/Maximum Cluster Name=orders GreaterThanThreshold 85",
		"lag-ledger-payments": "SumOffsetLag/Maximum Cluster Name=orders Consumer Group=ledger Topic=payments GreaterThanThreshold 1000",
	}
	if len(got) != len(want) {
		t.Fatalf("alarms %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}

	// Off switches: only what is asked for.
	off := &monitoringSettings{Alarms: true, OfflinePartitions: true}
	if n := len(desiredAlarms(c, off)); n != 1 {
		t.Errorf("%d alarms with only offline_partitions on", n)
	}
	if n := len(desiredAlarms(c, nil)); n != 0 {
		t.Errorf("%d alarms without a monitoring block", n)
	}
	// The under-min-ISR query names each broker's series.
	for _, in := range desiredAlarms(c, s) {
		if !strings.HasSuffix(aws.ToString(in.AlarmName), "under-min-isr") {
			continue
		}
		if len(in.Metrics) != 4 || aws.ToString(in.Metrics[2].MetricStat.Metric.Dimensions[1].Value) != "3" ||
			in.Metrics[0].MetricStat.Stat == nil || *in.Metrics[0].MetricStat.Stat != string(cwtypes.StatisticMaximum) {
			t.Errorf("under-min-isr queries %+v", in.Metrics)
		}
	}
}

func TestDashboardBody(t *testing.T) {
	c := clusterMetrics{Namespace: "Tributary/Kafka", Name: "orders", ClusterID: "tc-1", BrokerIDs: []int32{1, 2}}
	body, err := dashboardBody(c, &monitoringSettings{Lag: []lagAlarm{{Group: "ledger", Topic: "payments"}}}, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Widgets []struct {
			Properties struct {
				Title   string
				Metrics [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	byTitle := map[string][][]any{}
	for _, w := range d.Widgets {
		byTitle[w.Properties.Title] = w.Properties.Metrics
	}
	if m := byTitle["Data disk used (%)"]; len(m) != 2 || m[1][5] != "2" {
		t.Errorf("disk widget metrics %v", m)
	}
	if m := byTitle["Consumer lag (records)"]; len(m) != 1 || m[0][5] != "ledger" || m[0][7] != "payments" {
		t.Errorf("lag widget metrics %v", m)
	}
}

// TestConsumerLagStateFromAList: consumer_lag was a list, and a state
// written then holds it as a JSON array. The set that replaced it decodes
// that state as Terraform hands it over (UpgradeResourceState at the same
// schema version), with the same entries, in place of failing the refresh.
func TestConsumerLagStateFromAList(t *testing.T) {
	ctx := context.Background()
	srv, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	const prior = `{"name":"orders","monitoring":{"dashboard":null,"alarms":{"active_controller":null,"data_disk_used_percent":70,` +
		`"offline_partitions":null,"sns_topic_arns":null,"under_min_isr":null,"consumer_lag":[` +
		`{"group":"ledger","topic":"payments","threshold":1000},{"group":"audit","topic":"payments","threshold":10}]}}}`
	resp, err := srv.UpgradeResourceState(ctx, &tfprotov6.UpgradeResourceStateRequest{
		TypeName: "tributary_cluster", Version: 0, RawState: &tfprotov6.RawState{JSON: []byte(prior)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("%s: %s: %s", d.Severity, d.Summary, d.Detail)
	}
	if resp.UpgradedState == nil {
		t.Fatal("no upgraded state")
	}
	var sr resource.SchemaResponse
	(&clusterResource{}).Schema(ctx, resource.SchemaRequest{}, &sr)
	raw, err := resp.UpgradedState.Unmarshal(sr.Schema.Type().TerraformType(ctx))
	if err != nil {
		t.Fatal(err)
	}
	state := tfsdk.State{Schema: sr.Schema, Raw: raw}
	var m clusterModel
	if d := state.Get(ctx, &m); d.HasError() {
		t.Fatal(d)
	}
	s, d := m.monitoring(ctx)
	if d.HasError() || s == nil {
		t.Fatalf("monitoring of the upgraded state: %+v, %v", s, d)
	}
	want := []lagAlarm{{Group: "audit", Topic: "payments", Threshold: 10}, {Group: "ledger", Topic: "payments", Threshold: 1000}}
	if !slices.Equal(s.Lag, want) || s.DiskPercent != 70 {
		t.Errorf("lag alarms %+v, disk %d; want %+v (by group, then topic), 70", s.Lag, s.DiskPercent, want)
	}
}

// TestConsumerLagNamesAGroupAndTopicOnce: two entries of one group and
// topic would be one alarm whose threshold depended on the set's order;
// the configuration is refused, naming them. Distinct pairs pass.
func TestConsumerLagNamesAGroupAndTopicOnce(t *testing.T) {
	ctx := context.Background()
	lagType := types.ObjectType{AttrTypes: map[string]attr.Type{"group": types.StringType, "topic": types.StringType, "threshold": types.Int64Type}}
	entry := func(group, topic string, threshold int64) attr.Value {
		return types.ObjectValueMust(lagType.AttrTypes, map[string]attr.Value{
			"group": types.StringValue(group), "topic": types.StringValue(topic), "threshold": types.Int64Value(threshold)})
	}
	for _, tc := range []struct {
		name    string
		entries []attr.Value
		refused bool
	}{
		{"distinct", []attr.Value{entry("ledger", "payments", 1000), entry("audit", "payments", 10), entry("ledger", "refunds", 10)}, false},
		{"twice", []attr.Value{entry("ledger", "payments", 1000), entry("ledger", "payments", 10)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := validator.SetRequest{Path: path.Root("monitoring").AtName("alarms").AtName("consumer_lag"), ConfigValue: types.SetValueMust(lagType, tc.entries)}
			var resp validator.SetResponse
			uniqueLagAlarms{}.ValidateSet(ctx, req, &resp)
			if got := resp.Diagnostics.HasError(); got != tc.refused {
				t.Fatalf("refused %v, want %v: %v", got, tc.refused, resp.Diagnostics)
			}
			if tc.refused && !strings.Contains(resp.Diagnostics.Errors()[0].Detail(), `group "ledger" and topic "payments"`) {
				t.Errorf("the error does not name the pair: %v", resp.Diagnostics)
			}
		})
	}
}
