package cloudwatch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awscw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/cloudwatch"
)

// harness is the CloudWatch service behind an awsapi server, with a client signed as the
// account root.
type harness struct {
	*awsapitest.Cloud
	svc    *cloudwatch.Service
	client *awscw.Client
}

func newHarness(t *testing.T, dir string) *harness {
	t.Helper()
	c := awsapitest.Start(t)
	svc, err := cloudwatch.New(c.Env(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	c.Server.Register("monitoring", svc)
	return &harness{Cloud: c, svc: svc, client: awscw.NewFromConfig(c.Root())}
}

func dims(kv ...string) []types.Dimension {
	var out []types.Dimension
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, types.Dimension{Name: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return out
}

func TestPutMetricDataValidation(t *testing.T) {
	h := newHarness(t, "")
	now := time.Now()
	tooManyDims := make([]types.Dimension, 31)
	for i := range tooManyDims {
		tooManyDims[i] = types.Dimension{Name: aws.String("d" + string(rune('a'+i%26)) + string(rune('a'+i/26))), Value: aws.String("v")}
	}
	tests := []struct {
		name      string
		namespace string
		datum     types.MetricDatum
		code      string
	}{
		{"AWS namespace", "AWS/Kafka", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1)}, "InvalidParameterValue"},
		{"no value", "Tributary", types.MetricDatum{MetricName: aws.String("m")}, "MissingParameter"},
		{"value and values", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1), Values: []float64{1}}, "InvalidParameterCombination"},
		{"NaN", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(math.NaN())}, "InvalidParameterValue"},
		{"infinite", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(math.Inf(1))}, "InvalidParameterValue"},
		{"too large", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(math.Pow(2, 361))}, "InvalidParameterValue"},
		{"three weeks old", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1), Timestamp: aws.Time(now.Add(-21 * 24 * time.Hour))}, "InvalidParameterValue"},
		{"three hours ahead", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1), Timestamp: aws.Time(now.Add(3 * time.Hour))}, "InvalidParameterValue"},
		{"31 dimensions", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1), Dimensions: tooManyDims}, "InvalidParameterValue"},
		{"bad unit", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1), Unit: types.StandardUnit("Parsecs")}, "InvalidParameterValue"},
		{"min above max", "Tributary", types.MetricDatum{MetricName: aws.String("m"), StatisticValues: &types.StatisticSet{
			SampleCount: aws.Float64(2), Sum: aws.Float64(3), Minimum: aws.Float64(2), Maximum: aws.Float64(1)}}, "InvalidParameterValue"},
		{"sum outside range", "Tributary", types.MetricDatum{MetricName: aws.String("m"), StatisticValues: &types.StatisticSet{
			SampleCount: aws.Float64(2), Sum: aws.Float64(100), Minimum: aws.Float64(1), Maximum: aws.Float64(2)}}, "InvalidParameterValue"},
		{"counts mismatch", "Tributary", types.MetricDatum{MetricName: aws.String("m"), Values: []float64{1, 2}, Counts: []float64{1}}, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.PutMetricData(context.Background(), &awscw.PutMetricDataInput{Namespace: aws.String(tt.namespace), MetricData: []types.MetricDatum{tt.datum}})
			if got := awsapitest.ErrorCode(t, err); got != tt.code {
				t.Fatalf("code %s, want %s (%v)", got, tt.code, err)
			}
		})
	}
	many := make([]types.MetricDatum, 1001)
	for i := range many {
		many[i] = types.MetricDatum{MetricName: aws.String("m"), Value: aws.Float64(1)}
	}
	_, err := h.client.PutMetricData(context.Background(), &awscw.PutMetricDataInput{Namespace: aws.String("Tributary"), MetricData: many})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterValue" {
		t.Fatalf("1001 metrics: %s", got)
	}
}

func TestMetricsRoundTrip(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	broker1 := dims("Cluster Name", "c1", "Broker ID", "1")
	// Minute 0: values 1..10 (one datum with Values); minute 1: a statistic set; minute 2: 5.
	data := []types.MetricDatum{
		{MetricName: aws.String("BytesInPerSec"), Dimensions: broker1, Timestamp: aws.Time(base.Add(10 * time.Second)),
			Values: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, Unit: types.StandardUnitBytesSecond},
		{MetricName: aws.String("BytesInPerSec"), Dimensions: broker1, Timestamp: aws.Time(base.Add(70 * time.Second)),
			StatisticValues: &types.StatisticSet{SampleCount: aws.Float64(4), Sum: aws.Float64(40), Minimum: aws.Float64(5), Maximum: aws.Float64(15)}, Unit: types.StandardUnitBytesSecond},
		{MetricName: aws.String("BytesInPerSec"), Dimensions: broker1, Timestamp: aws.Time(base.Add(130 * time.Second)), Value: aws.Float64(5), Unit: types.StandardUnitBytesSecond},
		{MetricName: aws.String("BytesInPerSec"), Dimensions: dims("Cluster Name", "c1", "Broker ID", "2"), Timestamp: aws.Time(base), Value: aws.Float64(100)},
		{MetricName: aws.String("ActiveControllerCount"), Dimensions: dims("Cluster Name", "c1"), Timestamp: aws.Time(base), Value: aws.Float64(1)},
	}
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary/Kafka"), MetricData: data}); err != nil {
		t.Fatal(err)
	}

	stats, err := h.client.GetMetricStatistics(ctx, &awscw.GetMetricStatisticsInput{
		Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("BytesInPerSec"), Dimensions: broker1,
		StartTime: aws.Time(base), EndTime: aws.Time(base.Add(3 * time.Minute)), Period: aws.Int32(60),
		Statistics:         []types.Statistic{types.StatisticAverage, types.StatisticSum, types.StatisticSampleCount, types.StatisticMinimum, types.StatisticMaximum},
		ExtendedStatistics: []string{"p90"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.Datapoints) != 3 {
		t.Fatalf("%d datapoints, want 3: %+v", len(stats.Datapoints), stats.Datapoints)
	}
	first := stats.Datapoints[0]
	if !first.Timestamp.Equal(base) || aws.ToFloat64(first.Sum) != 55 || aws.ToFloat64(first.Average) != 5.5 ||
		aws.ToFloat64(first.SampleCount) != 10 || aws.ToFloat64(first.Minimum) != 1 || aws.ToFloat64(first.Maximum) != 10 ||
		first.ExtendedStatistics["p90"] != 9 || first.Unit != types.StandardUnitBytesSecond {
		t.Fatalf("first datapoint %+v p90=%v", first, first.ExtendedStatistics)
	}
	second := stats.Datapoints[1]
	if aws.ToFloat64(second.Average) != 10 || aws.ToFloat64(second.Maximum) != 15 {
		t.Fatalf("statistic-set datapoint %+v", second)
	}
	if _, ok := second.ExtendedStatistics["p90"]; ok {
		t.Fatalf("a percentile of a statistic set: %+v", second.ExtendedStatistics)
	}

	md, err := h.client.GetMetricData(ctx, &awscw.GetMetricDataInput{
		StartTime: aws.Time(base), EndTime: aws.Time(base.Add(3 * time.Minute)), ScanBy: types.ScanByTimestampAscending,
		MetricDataQueries: []types.MetricDataQuery{
			{Id: aws.String("max"), MetricStat: &types.MetricStat{Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("BytesInPerSec"), Dimensions: broker1}, Period: aws.Int32(120), Stat: aws.String("Maximum")}},
			{Id: aws.String("hidden"), ReturnData: aws.Bool(false), MetricStat: &types.MetricStat{Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("BytesInPerSec"), Dimensions: broker1}, Period: aws.Int32(60), Stat: aws.String("Sum")}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.MetricDataResults) != 1 {
		t.Fatalf("results %+v", md.MetricDataResults)
	}
	r := md.MetricDataResults[0]
	// Periods of 120 s aligned to the epoch: base may fall in the middle of one.
	var total float64
	for _, v := range r.Values {
		total = math.Max(total, v)
	}
	if aws.ToString(r.Id) != "max" || r.StatusCode != types.StatusCodeComplete || len(r.Values) != len(r.Timestamps) || total != 15 {
		t.Fatalf("GetMetricData result %+v", r)
	}
	for i := 1; i < len(r.Timestamps); i++ {
		if !r.Timestamps[i].After(r.Timestamps[i-1]) {
			t.Fatalf("timestamps not ascending: %v", r.Timestamps)
		}
	}
	_, err = h.client.GetMetricData(ctx, &awscw.GetMetricDataInput{StartTime: aws.Time(base), EndTime: aws.Time(base.Add(time.Minute)),
		MetricDataQueries: []types.MetricDataQuery{{Id: aws.String("e"), Expression: aws.String("ANOMALY_DETECTION_BAND(m1)")}, {Id: aws.String("m1"), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("BytesInPerSec")}, Period: aws.Int32(60), Stat: aws.String("Sum")}}}})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterValue" || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("unsupported function: %v", err)
	}

	list, err := h.client.ListMetrics(ctx, &awscw.ListMetricsInput{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("BytesInPerSec")})
	if err != nil || len(list.Metrics) != 2 {
		t.Fatalf("ListMetrics by name: %+v %v", list, err)
	}
	list, err = h.client.ListMetrics(ctx, &awscw.ListMetricsInput{Dimensions: []types.DimensionFilter{{Name: aws.String("Broker ID"), Value: aws.String("2")}}})
	if err != nil || len(list.Metrics) != 1 || len(list.Metrics[0].Dimensions) != 2 {
		t.Fatalf("ListMetrics by dimension: %+v %v", list, err)
	}
	list, err = h.client.ListMetrics(ctx, &awscw.ListMetricsInput{Dimensions: []types.DimensionFilter{{Name: aws.String("Cluster Name")}}, RecentlyActive: types.RecentlyActivePt3h})
	if err != nil || len(list.Metrics) != 3 {
		t.Fatalf("ListMetrics by dimension name: %+v %v", list, err)
	}
	h.Clock.Advance(4 * time.Hour)
	list, err = h.client.ListMetrics(ctx, &awscw.ListMetricsInput{RecentlyActive: types.RecentlyActivePt3h})
	if err != nil || len(list.Metrics) != 0 {
		t.Fatalf("ListMetrics recently active after 4 h: %+v %v", list, err)
	}
}

func TestAlarms(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	put := func(name string) {
		t.Helper()
		_, err := h.client.PutMetricAlarm(ctx, &awscw.PutMetricAlarmInput{
			AlarmName: aws.String(name), Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("UnderReplicatedPartitions"),
			Dimensions: dims("Cluster Name", "c1"), Statistic: types.StatisticMaximum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(2),
			DatapointsToAlarm: aws.Int32(1), Threshold: aws.Float64(0), ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold,
			Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	put("urp")
	put("urp-2")
	describe := func(names ...string) []types.MetricAlarm {
		t.Helper()
		out, err := h.client.DescribeAlarms(ctx, &awscw.DescribeAlarmsInput{AlarmNames: names})
		if err != nil {
			t.Fatal(err)
		}
		return out.MetricAlarms
	}
	if a := describe("urp"); len(a) != 1 || a[0].StateValue != types.StateValueInsufficientData || aws.ToString(a[0].AlarmArn) != "arn:aws:cloudwatch:us-east-1:000000000000:alarm:urp" {
		t.Fatalf("new alarm %+v", a)
	}
	// A datapoint above the threshold in the last complete minute raises the alarm.
	last := time.Now().Truncate(time.Minute).Add(-30 * time.Second)
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary/Kafka"), MetricData: []types.MetricDatum{
		{MetricName: aws.String("UnderReplicatedPartitions"), Dimensions: dims("Cluster Name", "c1"), Timestamp: aws.Time(last), Value: aws.Float64(3)},
	}}); err != nil {
		t.Fatal(err)
	}
	if a := describe("urp"); a[0].StateValue != types.StateValueAlarm {
		t.Fatalf("after a breaching datapoint: %s (%s)", a[0].StateValue, aws.ToString(a[0].StateReason))
	}
	out, err := h.client.DescribeAlarms(ctx, &awscw.DescribeAlarmsInput{StateValue: types.StateValueAlarm, AlarmNamePrefix: aws.String("urp")})
	if err != nil || len(out.MetricAlarms) != 2 {
		t.Fatalf("DescribeAlarms by state: %+v %v", out, err)
	}
	forMetric, err := h.client.DescribeAlarmsForMetric(ctx, &awscw.DescribeAlarmsForMetricInput{Namespace: aws.String("Tributary/Kafka"),
		MetricName: aws.String("UnderReplicatedPartitions"), Dimensions: dims("Cluster Name", "c1")})
	if err != nil || len(forMetric.MetricAlarms) != 2 {
		t.Fatalf("DescribeAlarmsForMetric: %+v %v", forMetric, err)
	}
	if _, err := h.client.DisableAlarmActions(ctx, &awscw.DisableAlarmActionsInput{AlarmNames: []string{"urp"}}); err != nil {
		t.Fatal(err)
	}
	if a := describe("urp"); aws.ToBool(a[0].ActionsEnabled) {
		t.Fatal("DisableAlarmActions left actions enabled")
	}
	// A state set by hand holds until the next period boundary, when the
	// alarm is evaluated again (and goes back to ALARM): set it just after
	// a boundary, so the describe below cannot fall past the next one
	// (failed once under load, set at the end of a minute).
	now := h.Clock.Now()
	h.Clock.Advance(now.Truncate(time.Minute).Add(time.Minute + time.Second).Sub(now))
	if _, err := h.client.SetAlarmState(ctx, &awscw.SetAlarmStateInput{AlarmName: aws.String("urp-2"), StateValue: types.StateValueOk, StateReason: aws.String("testing")}); err != nil {
		t.Fatal(err)
	}
	if a := describe("urp-2"); a[0].StateValue != types.StateValueOk || aws.ToString(a[0].StateReason) != "testing" {
		t.Fatalf("after SetAlarmState: %s %s", a[0].StateValue, aws.ToString(a[0].StateReason))
	}
	tags, err := h.client.ListTagsForResource(ctx, &awscw.ListTagsForResourceInput{ResourceARN: aws.String("arn:aws:cloudwatch:us-east-1:000000000000:alarm:urp")})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Fatalf("alarm tags %+v %v", tags, err)
	}
	// Two quiet periods later it is OK... no data at all means INSUFFICIENT_DATA.
	h.Clock.Advance(3 * time.Minute)
	if a := describe("urp"); a[0].StateValue != types.StateValueInsufficientData {
		t.Fatalf("after the data aged out: %s", a[0].StateValue)
	}
	_, err = h.client.DeleteAlarms(ctx, &awscw.DeleteAlarmsInput{AlarmNames: []string{"urp", "nope"}})
	if got := awsapitest.ErrorCode(t, err); got != "ResourceNotFound" {
		t.Fatalf("deleting a missing alarm: %s", got)
	}
	if len(describe("urp")) != 1 {
		t.Fatal("a failed DeleteAlarms deleted an alarm")
	}
	if _, err := h.client.DeleteAlarms(ctx, &awscw.DeleteAlarmsInput{AlarmNames: []string{"urp", "urp-2"}}); err != nil {
		t.Fatal(err)
	}
	if len(describe()) != 0 {
		t.Fatal("alarms left after DeleteAlarms")
	}
}

func TestDashboards(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	body := `{"widgets":[{"type":"metric","properties":{"metrics":[["Tributary/Kafka","BytesInPerSec"]]}}]}`
	if _, err := h.client.PutDashboard(ctx, &awscw.PutDashboardInput{DashboardName: aws.String("kafka"), DashboardBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.PutDashboard(ctx, &awscw.PutDashboardInput{DashboardName: aws.String("bad"), DashboardBody: aws.String(`{"widgets":3}`)})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterInput" {
		t.Fatalf("invalid body: %s", got)
	}
	got, err := h.client.GetDashboard(ctx, &awscw.GetDashboardInput{DashboardName: aws.String("kafka")})
	if err != nil || aws.ToString(got.DashboardBody) != body || aws.ToString(got.DashboardArn) != "arn:aws:cloudwatch::000000000000:dashboard/kafka" {
		t.Fatalf("GetDashboard %+v %v", got, err)
	}
	list, err := h.client.ListDashboards(ctx, &awscw.ListDashboardsInput{DashboardNamePrefix: aws.String("ka")})
	if err != nil || len(list.DashboardEntries) != 1 || aws.ToInt64(list.DashboardEntries[0].Size) != int64(len(body)) {
		t.Fatalf("ListDashboards %+v %v", list, err)
	}
	if _, err := h.client.DeleteDashboards(ctx, &awscw.DeleteDashboardsInput{DashboardNames: []string{"kafka"}}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.GetDashboard(ctx, &awscw.GetDashboardInput{DashboardName: aws.String("kafka")})
	if got := awsapitest.ErrorCode(t, err); got != "ResourceNotFound" {
		t.Fatalf("deleted dashboard: %s", got)
	}
}

func TestStatePersists(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	ctx := context.Background()
	ts := time.Now().Add(-time.Minute)
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary"), MetricData: []types.MetricDatum{
		{MetricName: aws.String("m"), Timestamp: aws.Time(ts), Value: aws.Float64(42)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.PutDashboard(ctx, &awscw.PutDashboardInput{DashboardName: aws.String("d"), DashboardBody: aws.String(`{"widgets":[]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Close(); err != nil {
		t.Fatal(err)
	}
	again := newHarness(t, dir)
	stats, err := again.client.GetMetricStatistics(ctx, &awscw.GetMetricStatisticsInput{Namespace: aws.String("Tributary"), MetricName: aws.String("m"),
		StartTime: aws.Time(ts.Add(-time.Hour)), EndTime: aws.Time(ts.Add(time.Hour)), Period: aws.Int32(3600), Statistics: []types.Statistic{types.StatisticSum}})
	if err != nil || len(stats.Datapoints) == 0 || aws.ToFloat64(stats.Datapoints[0].Sum) != 42 {
		t.Fatalf("metrics after restart: %+v %v", stats, err)
	}
	if _, err := again.client.GetDashboard(ctx, &awscw.GetDashboardInput{DashboardName: aws.String("d")}); err != nil {
		t.Fatalf("dashboard after restart: %v", err)
	}
}

func TestGetMetricDataPages(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	var data []types.MetricDatum
	for i := range 5 {
		data = append(data, types.MetricDatum{MetricName: aws.String("m"), Timestamp: aws.Time(base.Add(time.Duration(i) * time.Minute)), Value: aws.Float64(float64(i))})
	}
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary"), MetricData: data}); err != nil {
		t.Fatal(err)
	}
	query := types.MetricDataQuery{Id: aws.String("m"), MetricStat: &types.MetricStat{
		Metric: &types.Metric{Namespace: aws.String("Tributary"), MetricName: aws.String("m")}, Period: aws.Int32(60), Stat: aws.String("Sum")}}
	p := awscw.NewGetMetricDataPaginator(h.client, &awscw.GetMetricDataInput{
		StartTime: aws.Time(base), EndTime: aws.Time(base.Add(10 * time.Minute)), ScanBy: types.ScanByTimestampAscending,
		MaxDatapoints: aws.Int32(2), MetricDataQueries: []types.MetricDataQuery{query, {Id: aws.String("again"), MetricStat: query.MetricStat}},
	})
	var got []float64
	pages := 0
	for ; p.HasMorePages() && pages < 20; pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.MetricDataResults {
			got = append(got, r.Values...)
		}
	}
	want := []float64{0, 1, 2, 3, 4, 0, 1, 2, 3, 4}
	if pages != 5 || len(got) != len(want) {
		t.Fatalf("%d pages with %v, want 5 pages with %v", pages, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("values %v, want %v", got, want)
		}
	}
}

// jsonCall sends a SigV4-signed awsJson1_0 request, as newer SDKs and CLIs may.
func (h *harness) jsonCall(t *testing.T, op, body string) (int, map[string]any) {
	t.Helper()
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "GraniteServiceVersion20100801."+op)
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "monitoring", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: decoding the JSON answer: %v", op, err)
	}
	return resp.StatusCode, out
}

func TestAWSJSONProtocol(t *testing.T) {
	h := newHarness(t, "")
	ts := time.Now().Add(-time.Minute).Truncate(time.Minute)
	epoch := strconv.FormatInt(ts.Unix(), 10)
	status, out := h.jsonCall(t, "PutMetricData", `{"Namespace":"Tributary","MetricData":[{"MetricName":"m","Timestamp":`+epoch+`,"Value":4,"Dimensions":[{"Name":"a","Value":"b"}]}]}`)
	if status != http.StatusOK {
		t.Fatalf("PutMetricData: %d %v", status, out)
	}
	status, out = h.jsonCall(t, "GetMetricStatistics", `{"Namespace":"Tributary","MetricName":"m","Dimensions":[{"Name":"a","Value":"b"}],"StartTime":`+
		strconv.FormatInt(ts.Add(-time.Hour).Unix(), 10)+`,"EndTime":`+strconv.FormatInt(ts.Add(time.Hour).Unix(), 10)+`,"Period":60,"Statistics":["Sum"]}`)
	points, _ := out["Datapoints"].([]any)
	if status != http.StatusOK || len(points) != 1 {
		t.Fatalf("GetMetricStatistics: %d %v", status, out)
	}
	dp := points[0].(map[string]any)
	if dp["Sum"] != 4.0 || dp["Timestamp"] != float64(ts.Unix()) {
		t.Fatalf("datapoint %v", dp)
	}
	status, out = h.jsonCall(t, "PutMetricData", `{"Namespace":"AWS/EC2","MetricData":[{"MetricName":"m","Value":1}]}`)
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["__type"]), "InvalidParameterValue") {
		t.Fatalf("AWS namespace over JSON: %d %v", status, out)
	}
}

func TestMetricMath(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	var data []types.MetricDatum
	for i := range 3 {
		at := aws.Time(base.Add(time.Duration(i)*time.Minute + time.Second))
		data = append(data,
			types.MetricDatum{MetricName: aws.String("BytesInPerSec"), Dimensions: dims("Broker ID", "1"), Timestamp: at, Value: aws.Float64(float64(10 * (i + 1)))},
			types.MetricDatum{MetricName: aws.String("BytesInPerSec"), Dimensions: dims("Broker ID", "2"), Timestamp: at, Value: aws.Float64(float64(i + 1))})
	}
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary/Kafka"), MetricData: data}); err != nil {
		t.Fatal(err)
	}
	stat := func(id, broker string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), ReturnData: aws.Bool(false), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("BytesInPerSec"), Dimensions: dims("Broker ID", broker)},
			Period: aws.Int32(60), Stat: aws.String("Sum")}}
	}
	expr := func(id, e string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), Expression: aws.String(e)}
	}
	run := func(queries ...types.MetricDataQuery) (map[string][]float64, error) {
		out, err := h.client.GetMetricData(ctx, &awscw.GetMetricDataInput{StartTime: aws.Time(base), EndTime: aws.Time(base.Add(10 * time.Minute)),
			ScanBy: types.ScanByTimestampAscending, MetricDataQueries: append([]types.MetricDataQuery{stat("m1", "1"), stat("m2", "2")}, queries...)})
		if err != nil {
			return nil, err
		}
		got := map[string][]float64{}
		for _, r := range out.MetricDataResults {
			got[aws.ToString(r.Id)] = r.Values
		}
		return got, nil
	}
	got, err := run(expr("total", "SUM(METRICS())"), expr("ratio", "(m1 - m2) / m2 * 100"), expr("top", "MAX([m1, m2]) + -1"), expr("onlym1", `SUM(METRICS("m1"))`), expr("chained", "total / 11"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{
		"total":   {11, 22, 33},
		"ratio":   {900, 900, 900},
		"top":     {9, 19, 29},
		"onlym1":  {10, 20, 30},
		"chained": {1, 2, 3},
	}
	for id, w := range want {
		if fmt.Sprint(got[id]) != fmt.Sprint(w) {
			t.Errorf("%s = %v, want %v", id, got[id], w)
		}
	}
	if _, ok := got["m1"]; ok {
		t.Error("a query with ReturnData false was returned")
	}
	for name, q := range map[string]types.MetricDataQuery{
		"scalar result": expr("s", "SUM(m1)"),
		"unknown id":    expr("u", "m1 + nope"),
		"syntax":        expr("x", "m1 +"),
		"cycle":         expr("c", "c * 2"),
	} {
		if _, err := run(q); awsapitest.ErrorCode(t, err) != "InvalidParameterValue" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMetricMathAlarm(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	query := func(id, broker string) types.MetricDataQuery {
		return types.MetricDataQuery{Id: aws.String(id), ReturnData: aws.Bool(false), MetricStat: &types.MetricStat{
			Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("UnderReplicatedPartitions"), Dimensions: dims("Broker ID", broker)},
			Period: aws.Int32(60), Stat: aws.String("Maximum")}}
	}
	in := &awscw.PutMetricAlarmInput{
		AlarmName: aws.String("cluster-urp"), EvaluationPeriods: aws.Int32(1), Threshold: aws.Float64(0),
		ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold,
		Metrics:            []types.MetricDataQuery{query("b1", "1"), query("b2", "2"), {Id: aws.String("total"), Expression: aws.String("SUM(METRICS())"), Label: aws.String("URP")}},
	}
	if _, err := h.client.PutMetricAlarm(ctx, in); err != nil {
		t.Fatal(err)
	}
	bad := *in
	bad.Namespace = aws.String("Tributary/Kafka")
	_, err := h.client.PutMetricAlarm(ctx, &bad)
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterCombination" {
		t.Fatalf("Metrics with Namespace: %s", got)
	}
	twoReturns := *in
	twoReturns.Metrics = []types.MetricDataQuery{query("b1", "1"), {Id: aws.String("x"), Expression: aws.String("b1 * 2")}, {Id: aws.String("y"), Expression: aws.String("b1 * 3")}}
	_, err = h.client.PutMetricAlarm(ctx, &twoReturns)
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterValue" {
		t.Fatalf("two queries returning data: %s", got)
	}
	describe := func() types.MetricAlarm {
		t.Helper()
		out, err := h.client.DescribeAlarms(ctx, &awscw.DescribeAlarmsInput{AlarmNames: []string{"cluster-urp"}})
		if err != nil || len(out.MetricAlarms) != 1 {
			t.Fatalf("DescribeAlarms %+v %v", out, err)
		}
		return out.MetricAlarms[0]
	}
	a := describe()
	if len(a.Metrics) != 3 || aws.ToString(a.Metrics[2].Expression) != "SUM(METRICS())" || aws.ToInt32(a.Period) != 60 || a.MetricName != nil {
		t.Fatalf("described alarm %+v", a)
	}
	last := time.Now().Truncate(time.Minute).Add(-30 * time.Second)
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary/Kafka"), MetricData: []types.MetricDatum{
		{MetricName: aws.String("UnderReplicatedPartitions"), Dimensions: dims("Broker ID", "1"), Timestamp: aws.Time(last), Value: aws.Float64(0)},
		{MetricName: aws.String("UnderReplicatedPartitions"), Dimensions: dims("Broker ID", "2"), Timestamp: aws.Time(last), Value: aws.Float64(0)},
	}}); err != nil {
		t.Fatal(err)
	}
	if a := describe(); a.StateValue != types.StateValueOk {
		t.Fatalf("with no under-replicated partitions: %s (%s)", a.StateValue, aws.ToString(a.StateReason))
	}
	if _, err := h.client.PutMetricData(ctx, &awscw.PutMetricDataInput{Namespace: aws.String("Tributary/Kafka"), MetricData: []types.MetricDatum{
		{MetricName: aws.String("UnderReplicatedPartitions"), Dimensions: dims("Broker ID", "2"), Timestamp: aws.Time(last), Value: aws.Float64(4)},
	}}); err != nil {
		t.Fatal(err)
	}
	if a := describe(); a.StateValue != types.StateValueAlarm {
		t.Fatalf("with 4 under-replicated partitions on broker 2: %s (%s)", a.StateValue, aws.ToString(a.StateReason))
	}
}
