package cwquery

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/tributary/tributary/internal/localcloud"
)

// TestAgainstLocalCloud puts a metric-math alarm and a plain one in
// awsQuery, reads them back with the SDK (CBOR), lists and deletes them,
// and puts and deletes a dashboard; errors carry CloudWatch's codes.
func TestAgainstLocalCloud(t *testing.T) {
	c, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	sdk := cloudwatch.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	q := New(sdk)
	ctx := context.Background()
	dims := []types.Dimension{{Name: aws.String("Cluster Name"), Value: aws.String("orders")}}
	if err := q.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String("t-plain"), Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("OfflinePartitionsCount"),
		Dimensions: dims, Statistic: types.StatisticMaximum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(2), DatapointsToAlarm: aws.Int32(1),
		Threshold: aws.Float64(0.5), ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold, TreatMissingData: aws.String("missing"),
		AlarmActions: []string{"arn:aws:sns:us-east-1:000000000000:a"}, OKActions: []string{"arn:aws:sns:us-east-1:000000000000:b"},
		ActionsEnabled: aws.Bool(true), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := q.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String("t-math"), EvaluationPeriods: aws.Int32(3), Threshold: aws.Float64(0),
		ComparisonOperator: types.ComparisonOperatorGreaterThanThreshold,
		Metrics: []types.MetricDataQuery{
			{Id: aws.String("m1"), ReturnData: aws.Bool(false), MetricStat: &types.MetricStat{
				Metric: &types.Metric{Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("ActiveControllerCount"), Dimensions: dims},
				Period: aws.Int32(60), Stat: aws.String("Sum")}},
			{Id: aws.String("e1"), Expression: aws.String("ABS(m1 - 1)"), Label: aws.String("off by"), ReturnData: aws.Bool(true)},
		},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := sdk.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNamePrefix: aws.String("t-")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.MetricAlarms) != 2 {
		t.Fatalf("described %d alarms", len(out.MetricAlarms))
	}
	for _, a := range out.MetricAlarms {
		switch aws.ToString(a.AlarmName) {
		case "t-plain":
			if aws.ToFloat64(a.Threshold) != 0.5 || aws.ToInt32(a.DatapointsToAlarm) != 1 || aws.ToString(a.Dimensions[0].Value) != "orders" ||
				!slices.Equal(a.OKActions, []string{"arn:aws:sns:us-east-1:000000000000:b"}) || aws.ToString(a.TreatMissingData) != "missing" {
				t.Errorf("t-plain read back as %+v", a)
			}
		case "t-math":
			if len(a.Metrics) != 2 || aws.ToString(a.Metrics[1].Expression) != "ABS(m1 - 1)" || aws.ToString(a.Metrics[0].MetricStat.Stat) != "Sum" ||
				aws.ToBool(a.Metrics[0].ReturnData) {
				t.Errorf("t-math read back with queries %+v", a.Metrics)
			}
		}
	}
	names, err := q.AlarmNames(ctx, "t-")
	if err != nil || !slices.Equal(names, []string{"t-math", "t-plain"}) {
		t.Fatalf("AlarmNames: %v %v", names, err)
	}
	if err := q.DeleteAlarms(ctx, []string{"t-plain", "missing"}); Code(err) != "ResourceNotFound" {
		t.Fatalf("deleting an unknown alarm: %v, want ResourceNotFound", err)
	}
	if err := q.DeleteAlarms(ctx, names); err != nil {
		t.Fatal(err)
	}
	if names, err := q.AlarmNames(ctx, "t-"); err != nil || len(names) != 0 {
		t.Fatalf("after delete: %v %v", names, err)
	}

	if err := q.PutDashboard(ctx, "tributary-orders", `{"widgets":[]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.GetDashboard(ctx, &cloudwatch.GetDashboardInput{DashboardName: aws.String("tributary-orders")}); err != nil {
		t.Fatal(err)
	}
	if err := q.PutDashboard(ctx, "bad", `not json`); Code(err) == "" {
		t.Fatalf("a bad dashboard body: %v, want a CloudWatch error code", err)
	}
	if err := q.PutDashboard(ctx, "other", `{"widgets":[]}`); err != nil {
		t.Fatal(err)
	}
	if names, err := q.DashboardNames(ctx, "tributary-"); err != nil || !slices.Equal(names, []string{"tributary-orders"}) {
		t.Fatalf("DashboardNames(tributary-) = %v, %v", names, err)
	}
	if err := q.DeleteDashboards(ctx, []string{"tributary-orders"}); err != nil {
		t.Fatal(err)
	}
	if names, err := q.DashboardNames(ctx, "tributary-"); err != nil || len(names) != 0 {
		t.Fatalf("after delete: DashboardNames = %v, %v", names, err)
	}
}
