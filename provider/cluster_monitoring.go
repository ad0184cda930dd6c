package provider

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/cwquery"
)

// snsTopicARNPattern is an SNS topic's ARN.
var snsTopicARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)

// Defaults of the monitoring block.
const (
	defaultDiskAlarmPercent = 85
	// alarmPeriod is the period of every alarm: the brokers ship their
	// metrics every minute.
	alarmPeriod = 60
)

// monitoringBlock is the cluster's monitoring block: CloudWatch alarms on
// the brokers' MSK-named metrics, and a dashboard.
func monitoringBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "CloudWatch alarms and a dashboard on the brokers' metrics (in `metrics_namespace`, with MSK's names and " +
			"dimensions). Omitted: none. Every change is in place (`PutMetricAlarm`, `PutDashboard`; alarms no longer asked for are " +
			"deleted) and rolls nothing; the alarms and the dashboard are deleted with the cluster. Alarms or the dashboard deleted " +
			"outside Terraform show in the next plan as an in-place update, which puts them again.",
		Attributes: map[string]schema.Attribute{
			"dashboard": schema.BoolAttribute{
				MarkdownDescription: "Create the CloudWatch dashboard `tributary-<name>-<cluster_id>` (throughput, partitions, disk, " +
					"controller, consumer lag of the groups in `alarms.consumer_lag`). Default `true`.",
				Optional: true,
			},
		},
		Blocks: map[string]schema.Block{
			"alarms": schema.SingleNestedBlock{
				MarkdownDescription: "CloudWatch alarms named `tributary-<name>-<cluster_id>-<kind>`, each evaluated every minute and " +
					"notifying `sns_topic_arns` when it goes to ALARM and back to OK. Missing data is missing (`INSUFFICIENT_DATA` when a " +
					"whole evaluation has none); the active-controller alarm notifies that state too, so a cluster whose brokers all stopped " +
					"shipping metrics is reported.",
				Attributes: map[string]schema.Attribute{
					"sns_topic_arns": schema.ListAttribute{
						MarkdownDescription: "SNS topic ARNs every alarm notifies (`AlarmActions` and `OKActions`).",
						Optional:            true,
						ElementType:         types.StringType,
						Validators: []validator.List{listvalidator.SizeAtMost(5), listvalidator.ValueStringsAre(
							stringvalidator.RegexMatches(snsTopicARNPattern, "must be an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)"))},
					},
					"offline_partitions": schema.BoolAttribute{
						MarkdownDescription: "`<kind>` `offline-partitions`: `OfflinePartitionsCount` > 0 (partitions without a leader). Default `true`.",
						Optional:            true,
					},
					"under_min_isr": schema.BoolAttribute{
						MarkdownDescription: "`under-min-isr`: the brokers' `UnderMinIsrPartitionCount` summed > 0 (acks=all writes to those " +
							"partitions fail). Default `true`.",
						Optional: true,
					},
					"active_controller": schema.BoolAttribute{
						MarkdownDescription: "`active-controller`: `ActiveControllerCount` summed over the brokers is not 1 for three minutes " +
							"in a row (no controller, or two). Default `true`.",
						Optional: true,
					},
					"data_disk_used_percent": schema.Int64Attribute{
						MarkdownDescription: "`data-disk`: the fullest broker's `KafkaDataLogsDiskUsed` over this percentage for five minutes. " +
							"Default 85; 0 turns the alarm off.",
						Optional:   true,
						Validators: []validator.Int64{int64validator.Between(0, 100)},
					},
				},
				Blocks: map[string]schema.Block{
					"consumer_lag": schema.SetNestedBlock{
						MarkdownDescription: "`lag-<group>-<topic>`: a consumer group's `SumOffsetLag` on a topic over `threshold` records " +
							"for five minutes. A set: the alarms are named by group and topic, so their order means nothing (the dashboard " +
							"lists them by group, then topic), and each group and topic may be named once.",
						Validators: []validator.Set{uniqueLagAlarms{}},
						NestedObject: schema.NestedBlockObject{
							Attributes: map[string]schema.Attribute{
								"group":     schema.StringAttribute{MarkdownDescription: "Consumer group id.", Required: true},
								"topic":     schema.StringAttribute{MarkdownDescription: "Topic the group consumes.", Required: true},
								"threshold": schema.Int64Attribute{MarkdownDescription: "Records of lag.", Required: true, Validators: []validator.Int64{int64validator.AtLeast(0)}},
							},
						},
					},
				},
			},
		},
	}
}

type monitoringModel struct {
	Alarms    types.Object `tfsdk:"alarms"`
	Dashboard types.Bool   `tfsdk:"dashboard"`
}

type alarmsModel struct {
	ActiveController    types.Bool  `tfsdk:"active_controller"`
	ConsumerLag         types.Set   `tfsdk:"consumer_lag"`
	DataDiskUsedPercent types.Int64 `tfsdk:"data_disk_used_percent"`
	OfflinePartitions   types.Bool  `tfsdk:"offline_partitions"`
	SNSTopicARNs        types.List  `tfsdk:"sns_topic_arns"`
	UnderMinISR         types.Bool  `tfsdk:"under_min_isr"`
}

type consumerLagModel struct {
	Group     types.String `tfsdk:"group"`
	Threshold types.Int64  `tfsdk:"threshold"`
	Topic     types.String `tfsdk:"topic"`
}

// monitoringSettings is what the monitoring block asks for.
type monitoringSettings struct {
	Alarms                                           bool
	Dashboard                                        bool
	Topics                                           []string
	OfflinePartitions, UnderMinISR, ActiveController bool
	DiskPercent                                      int64
	Lag                                              []lagAlarm
}

type lagAlarm struct {
	Group, Topic string
	Threshold    int64
}

// monitoring reads the monitoring block; nil when there is none.
func (m *clusterModel) monitoring(ctx context.Context) (*monitoringSettings, diag.Diagnostics) {
	var diags diag.Diagnostics
	if m.Monitoring.IsNull() || m.Monitoring.IsUnknown() {
		return nil, nil
	}
	var mm monitoringModel
	diags.Append(m.Monitoring.As(ctx, &mm, objectAsOptions)...)
	s := &monitoringSettings{Dashboard: mm.Dashboard.IsNull() || mm.Dashboard.ValueBool()}
	if mm.Alarms.IsNull() || mm.Alarms.IsUnknown() {
		return s, diags
	}
	var am alarmsModel
	diags.Append(mm.Alarms.As(ctx, &am, objectAsOptions)...)
	orTrue := func(b types.Bool) bool { return b.IsNull() || b.IsUnknown() || b.ValueBool() }
	s.Alarms = true
	s.OfflinePartitions, s.UnderMinISR, s.ActiveController = orTrue(am.OfflinePartitions), orTrue(am.UnderMinISR), orTrue(am.ActiveController)
	s.DiskPercent = defaultDiskAlarmPercent
	if !am.DataDiskUsedPercent.IsNull() && !am.DataDiskUsedPercent.IsUnknown() {
		s.DiskPercent = am.DataDiskUsedPercent.ValueInt64()
	}
	topics, d := stringList(ctx, am.SNSTopicARNs)
	diags.Append(d...)
	s.Topics = topics
	if !am.ConsumerLag.IsNull() && !am.ConsumerLag.IsUnknown() {
		var lags []consumerLagModel
		diags.Append(am.ConsumerLag.ElementsAs(ctx, &lags, false)...)
		for _, l := range lags {
			s.Lag = append(s.Lag, lagAlarm{Group: l.Group.ValueString(), Topic: l.Topic.ValueString(), Threshold: l.Threshold.ValueInt64()})
		}
		// A set's elements come in no order the user chose: the
		// dashboard's lines go by group, then topic.
		slices.SortFunc(s.Lag, func(a, b lagAlarm) int {
			return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic))
		})
	}
	return s, diags
}

// uniqueLagAlarms refuses two consumer_lag entries of one group and topic:
// they would be one alarm (lag-<group>-<topic>), and which threshold it
// got would depend on the set's order.
type uniqueLagAlarms struct{}

func (uniqueLagAlarms) Description(context.Context) string {
	return "each group and topic at most once"
}

func (v uniqueLagAlarms) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (uniqueLagAlarms) ValidateSet(ctx context.Context, req validator.SetRequest, resp *validator.SetResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	seen := map[[2]string]bool{}
	for _, e := range req.ConfigValue.Elements() {
		o, ok := e.(types.Object)
		if !ok || o.IsUnknown() {
			continue
		}
		g, _ := o.Attributes()["group"].(types.String)
		t, _ := o.Attributes()["topic"].(types.String)
		if g.IsUnknown() || t.IsUnknown() {
			continue
		}
		key := [2]string{g.ValueString(), t.ValueString()}
		if seen[key] {
			resp.Diagnostics.AddAttributeError(req.Path, "Consumer group and topic named twice",
				fmt.Sprintf("consumer_lag names group %q and topic %q more than once; they are one alarm (lag-%s-%s): keep one entry with the threshold you want.",
					key[0], key[1], key[0], key[1]))
		}
		seen[key] = true
	}
}

// monitoringPrefix starts the name of every alarm of the cluster, and is
// the dashboard's name: the cluster's name for people, its id so that two
// clusters of one name never share alarms.
func monitoringPrefix(name, clusterID string) string { return "tributary-" + name + "-" + clusterID }

// clusterMetrics names the cluster's metrics for alarms and the dashboard.
type clusterMetrics struct {
	Namespace, Name, ClusterID string
	BrokerIDs                  []int32
}

func (c clusterMetrics) metric(name string, dims ...string) *cwtypes.Metric {
	m := &cwtypes.Metric{Namespace: aws.String(c.Namespace), MetricName: aws.String(name),
		Dimensions: []cwtypes.Dimension{{Name: aws.String("Cluster Name"), Value: aws.String(c.Name)}}}
	for i := 0; i+1 < len(dims); i += 2 {
		m.Dimensions = append(m.Dimensions, cwtypes.Dimension{Name: aws.String(dims[i]), Value: aws.String(dims[i+1])})
	}
	return m
}

// perBrokerSum is metric math summing one statistic of a per-broker
// metric over every broker (each broker puts its own series).
func (c clusterMetrics) perBrokerSum(name, stat string) []cwtypes.MetricDataQuery {
	expr := "SUM(["
	var qs []cwtypes.MetricDataQuery
	for i, id := range c.BrokerIDs {
		qid := "b" + strconv.Itoa(int(id))
		if i > 0 {
			expr += ","
		}
		expr += qid
		qs = append(qs, cwtypes.MetricDataQuery{Id: aws.String(qid), ReturnData: aws.Bool(false),
			MetricStat: &cwtypes.MetricStat{Metric: c.metric(name, "Broker ID", strconv.Itoa(int(id))), Period: aws.Int32(alarmPeriod), Stat: aws.String(stat)}})
	}
	expr += "])"
	return append(qs, cwtypes.MetricDataQuery{Id: aws.String("total"), Expression: aws.String(expr), Label: aws.String(name + " (all brokers)"), ReturnData: aws.Bool(true)})
}

// desiredAlarms are the alarms the settings ask for, by name.
func desiredAlarms(c clusterMetrics, s *monitoringSettings) []*cloudwatch.PutMetricAlarmInput {
	if s == nil || !s.Alarms {
		return nil
	}
	prefix := monitoringPrefix(c.Name, c.ClusterID)
	base := func(kind, desc string) *cloudwatch.PutMetricAlarmInput {
		return &cloudwatch.PutMetricAlarmInput{
			AlarmName:          aws.String(prefix + "-" + kind),
			AlarmDescription:   aws.String(desc + " (Tributary cluster " + c.Name + ", " + c.ClusterID + ")"),
			ActionsEnabled:     aws.Bool(true),
			AlarmActions:       slices.Clone(s.Topics),
			OKActions:          slices.Clone(s.Topics),
			EvaluationPeriods:  aws.Int32(1),
			DatapointsToAlarm:  aws.Int32(1),
			Threshold:          aws.Float64(0),
			ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
			TreatMissingData:   aws.String("missing"),
			Tags:               []cwtypes.Tag{{Key: aws.String("tributary:cluster-id"), Value: aws.String(c.ClusterID)}},
		}
	}
	single := func(in *cloudwatch.PutMetricAlarmInput, m *cwtypes.Metric, stat cwtypes.Statistic) *cloudwatch.PutMetricAlarmInput {
		in.Namespace, in.MetricName, in.Dimensions = m.Namespace, m.MetricName, m.Dimensions
		in.Statistic, in.Period = stat, aws.Int32(alarmPeriod)
		return in
	}
	var out []*cloudwatch.PutMetricAlarmInput
	if s.OfflinePartitions {
		out = append(out, single(base("offline-partitions", "Partitions without a leader"), c.metric("OfflinePartitionsCount"), cwtypes.StatisticMaximum))
	}
	if s.UnderMinISR && len(c.BrokerIDs) > 0 {
		in := base("under-min-isr", "Partitions with fewer in-sync replicas than min.insync.replicas: acks=all writes to them fail")
		in.Metrics = c.perBrokerSum("UnderMinIsrPartitionCount", "Maximum")
		out = append(out, in)
	}
	if s.ActiveController {
		in := base("active-controller", "Not exactly one active controller")
		in.Metrics = []cwtypes.MetricDataQuery{
			{Id: aws.String("controllers"), ReturnData: aws.Bool(false),
				MetricStat: &cwtypes.MetricStat{Metric: c.metric("ActiveControllerCount"), Period: aws.Int32(alarmPeriod), Stat: aws.String("Sum")}},
			{Id: aws.String("offby"), Expression: aws.String("ABS(controllers - 1)"), Label: aws.String("active controllers off by"), ReturnData: aws.Bool(true)},
		}
		// Each broker ships once a minute, so a minute may hold two of
		// the controller's data or none: three minutes in a row say more.
		in.EvaluationPeriods, in.DatapointsToAlarm = aws.Int32(3), aws.Int32(3)
		// No data at all means no broker ships: the cluster is down or
		// cut off. Treating that as breaching would also alarm a new
		// cluster for its first minutes, so silence is its own state,
		// which notifies too.
		in.InsufficientDataActions = slices.Clone(s.Topics)
		out = append(out, in)
	}
	if s.DiskPercent > 0 {
		in := single(base("data-disk", fmt.Sprintf("A broker's data volume is over %d%% full", s.DiskPercent)), c.metric("KafkaDataLogsDiskUsed"), cwtypes.StatisticMaximum)
		in.Threshold = aws.Float64(float64(s.DiskPercent))
		in.EvaluationPeriods, in.DatapointsToAlarm = aws.Int32(5), aws.Int32(5)
		out = append(out, in)
	}
	for _, l := range s.Lag {
		in := single(base("lag-"+l.Group+"-"+l.Topic, fmt.Sprintf("Consumer group %s is over %d records behind on %s", l.Group, l.Threshold, l.Topic)),
			c.metric("SumOffsetLag", "Consumer Group", l.Group, "Topic", l.Topic), cwtypes.StatisticMaximum)
		in.Threshold = aws.Float64(float64(l.Threshold))
		in.EvaluationPeriods, in.DatapointsToAlarm = aws.Int32(5), aws.Int32(5)
		out = append(out, in)
	}
	return out
}

// dashboardBody is the cluster's dashboard: one row of cluster health,
// one of the brokers, one of consumer lag.
func dashboardBody(c clusterMetrics, s *monitoringSettings, region string) (string, error) {
	type widget struct {
		Type       string         `json:"type"`
		X          int            `json:"x"`
		Y          int            `json:"y"`
		Width      int            `json:"width"`
		Height     int            `json:"height"`
		Properties map[string]any `json:"properties"`
	}
	metricLine := func(name string, extra ...string) []any {
		line := []any{c.Namespace, name, "Cluster Name", c.Name}
		for _, e := range extra {
			line = append(line, e)
		}
		return line
	}
	graph := func(title, stat string, metrics [][]any) map[string]any {
		return map[string]any{"title": title, "view": "timeSeries", "stacked": false, "region": region, "stat": stat, "period": alarmPeriod, "metrics": metrics}
	}
	perBroker := func(name string) [][]any {
		var ms [][]any
		for _, id := range c.BrokerIDs {
			ms = append(ms, metricLine(name, "Broker ID", strconv.Itoa(int(id))))
		}
		return ms
	}
	var ws []widget
	add := func(title, stat string, metrics [][]any) {
		if len(metrics) == 0 {
			return
		}
		n := len(ws)
		ws = append(ws, widget{Type: "metric", X: (n % 3) * 8, Y: (n / 3) * 6, Width: 8, Height: 6, Properties: graph(title, stat, metrics)})
	}
	add("Active controllers", "Sum", [][]any{metricLine("ActiveControllerCount")})
	add("Offline partitions", "Maximum", [][]any{metricLine("OfflinePartitionsCount")})
	add("Partitions", "Maximum", [][]any{metricLine("GlobalPartitionCount"), metricLine("GlobalTopicCount")})
	add("Data disk used (%)", "Maximum", perBroker("KafkaDataLogsDiskUsed"))
	add("Under-min-ISR partitions", "Maximum", perBroker("UnderMinIsrPartitionCount"))
	add("Under-replicated partitions", "Maximum", perBroker("UnderReplicatedPartitions"))
	add("Connections", "Maximum", perBroker("ConnectionCount"))
	add("CPU user (%)", "Average", perBroker("CpuUser"))
	add("Leaders", "Maximum", perBroker("LeaderCount"))
	if s != nil {
		var lags [][]any
		for _, l := range s.Lag {
			lags = append(lags, metricLine("SumOffsetLag", "Consumer Group", l.Group, "Topic", l.Topic))
		}
		add("Consumer lag (records)", "Maximum", lags)
	}
	b, err := json.Marshal(map[string]any{"widgets": ws})
	return string(b), err
}

// ensureMonitoring makes the cluster's alarms and dashboard what the plan
// asks for: each wanted alarm put (PutMetricAlarm replaces one of the same
// name), every other alarm of the cluster deleted, the dashboard put or
// deleted. had says whether the state had a monitoring block: without one
// in the plan or the state there is nothing to do, and nothing is asked of
// CloudWatch.
func (r *clusterResource) ensureMonitoring(ctx context.Context, m *clusterModel, had bool, clusterID string, brokers int) diag.Diagnostics {
	var diags diag.Diagnostics
	s, d := m.monitoring(ctx)
	diags.Append(d...)
	if diags.HasError() || (s == nil && !had) {
		return diags
	}
	c := clusterMetrics{Namespace: m.MetricsNamespace.ValueString(), Name: m.Name.ValueString(), ClusterID: clusterID}
	for i := range brokers {
		c.BrokerIDs = append(c.BrokerIDs, int32(i+1))
	}
	cw := cwquery.New(r.data.aws.CloudWatch)
	wanted := map[string]bool{}
	for _, in := range desiredAlarms(c, s) {
		tflog.Info(ctx, "putting CloudWatch alarm", map[string]any{"alarm": aws.ToString(in.AlarmName)})
		if err := cw.PutMetricAlarm(ctx, in); err != nil {
			diags.AddError("Creating CloudWatch alarm "+aws.ToString(in.AlarmName), err.Error())
			return diags
		}
		wanted[aws.ToString(in.AlarmName)] = true
	}
	prefix := monitoringPrefix(c.Name, clusterID)
	existing, err := cw.AlarmNames(ctx, prefix+"-")
	if err != nil {
		diags.AddError("Listing the CloudWatch alarms of cluster "+clusterID, err.Error())
		return diags
	}
	var stale []string
	for _, name := range existing {
		if !wanted[name] {
			stale = append(stale, name)
		}
	}
	if err := deleteAlarms(ctx, cw, stale); err != nil {
		diags.AddError("Deleting CloudWatch alarms of cluster "+clusterID, err.Error())
		return diags
	}
	if s != nil && s.Dashboard {
		body, err := dashboardBody(c, s, r.data.aws.Region)
		if err == nil {
			err = cw.PutDashboard(ctx, prefix, body)
		}
		if err != nil {
			diags.AddError("Creating CloudWatch dashboard "+prefix, err.Error())
		}
		return diags
	}
	if err := deleteDashboard(ctx, cw, prefix); err != nil {
		diags.AddError("Deleting CloudWatch dashboard "+prefix, err.Error())
	}
	return diags
}

// deleteMonitoring removes the cluster's alarms and dashboard.
func (r *clusterResource) deleteMonitoring(ctx context.Context, name, clusterID string) error {
	cw := cwquery.New(r.data.aws.CloudWatch)
	prefix := monitoringPrefix(name, clusterID)
	names, err := cw.AlarmNames(ctx, prefix+"-")
	if err != nil {
		return fmt.Errorf("listing the CloudWatch alarms of cluster %s: %w", clusterID, err)
	}
	if err := deleteAlarms(ctx, cw, names); err != nil {
		return err
	}
	return deleteDashboard(ctx, cw, prefix)
}

// deleteAlarms deletes alarms, at most 100 per call (CloudWatch's limit).
func deleteAlarms(ctx context.Context, cw *cwquery.Client, names []string) error {
	for len(names) > 0 {
		n := min(len(names), 100)
		tflog.Info(ctx, "deleting CloudWatch alarms", map[string]any{"alarms": names[:n]})
		if err := cw.DeleteAlarms(ctx, names[:n]); err != nil && cwquery.Code(err) != "ResourceNotFound" {
			return fmt.Errorf("deleting CloudWatch alarms %v: %w", names[:n], err)
		}
		names = names[n:]
	}
	return nil
}

// deleteDashboard deletes a dashboard; one that does not exist is gone.
func deleteDashboard(ctx context.Context, cw *cwquery.Client, name string) error {
	err := cw.DeleteDashboards(ctx, []string{name})
	if err == nil {
		return nil
	}
	switch cwquery.Code(err) {
	case "ResourceNotFound", "DashboardNotFoundError", "ResourceNotFoundException":
		return nil
	}
	return fmt.Errorf("deleting CloudWatch dashboard %s: %w", name, err)
}
