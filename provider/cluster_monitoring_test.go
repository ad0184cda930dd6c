package provider

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
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
