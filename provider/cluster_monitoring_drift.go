package provider

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/cwquery"
)

// readMonitoring finds the alarms and the dashboard the monitoring block
// asks for that are gone from CloudWatch (deleted outside Terraform) and
// takes them out of the state's block: an alarm's switch reads false
// (data_disk_used_percent 0), a consumer-lag alarm's entry leaves the
// set, the dashboard reads false. The configuration still asks for them,
// so the plan shows exactly those as an in-place update, and the apply puts
// them again. CloudWatch unreachable leaves the state as it was, with a
// warning: a refresh should not fail over the alarms.
func (r *clusterResource) readMonitoring(ctx context.Context, m *clusterModel, clusterID string, brokers int) diag.Diagnostics {
	var diags diag.Diagnostics
	s, d := m.monitoring(ctx)
	if d.HasError() || s == nil {
		return nil
	}
	c := clusterMetrics{Namespace: m.MetricsNamespace.ValueString(), Name: m.Name.ValueString(), ClusterID: clusterID}
	for i := range brokers {
		c.BrokerIDs = append(c.BrokerIDs, int32(i+1))
	}
	cw := cwquery.New(r.data.aws.CloudWatch)
	prefix := monitoringPrefix(c.Name, clusterID)
	existing, err := cw.AlarmNames(ctx, prefix+"-")
	if err != nil {
		diags.AddWarning("Could not check the cluster's CloudWatch alarms", err.Error())
		return diags
	}
	var missing []string
	for _, in := range desiredAlarms(c, s) {
		if name := aws.ToString(in.AlarmName); !slices.Contains(existing, name) {
			missing = append(missing, strings.TrimPrefix(name, prefix+"-"))
		}
	}
	dashboardGone := false
	if s.Dashboard {
		names, err := cw.DashboardNames(ctx, prefix)
		if err != nil {
			diags.AddWarning("Could not check the cluster's CloudWatch dashboard", err.Error())
			return diags
		}
		dashboardGone = !slices.Contains(names, prefix)
	}
	if len(missing) == 0 && !dashboardGone {
		return diags
	}
	tflog.Warn(ctx, "CloudWatch alarms or dashboard deleted outside Terraform; the next apply puts them again",
		map[string]any{"missing_alarms": missing, "dashboard_missing": dashboardGone})
	obj, d := monitoringWithout(ctx, m.Monitoring, missing, dashboardGone)
	diags.Append(d...)
	if !d.HasError() {
		m.Monitoring = obj
	}
	return diags
}

// monitoringWithout is the monitoring block value with the missing alarms
// (by kind: offline-partitions, lag-<group>-<topic> ...) and the dashboard
// switched off.
func monitoringWithout(ctx context.Context, mon types.Object, missing []string, dashboardGone bool) (types.Object, diag.Diagnostics) {
	var diags diag.Diagnostics
	attrs := mon.Attributes()
	out := make(map[string]attr.Value, len(attrs))
	for k, v := range attrs {
		out[k] = v
	}
	if dashboardGone {
		out["dashboard"] = types.BoolValue(false)
	}
	if alarms, ok := out["alarms"].(types.Object); ok && !alarms.IsNull() && !alarms.IsUnknown() && len(missing) > 0 {
		aa := map[string]attr.Value{}
		for k, v := range alarms.Attributes() {
			aa[k] = v
		}
		for _, kind := range missing {
			switch kind {
			case "offline-partitions":
				aa["offline_partitions"] = types.BoolValue(false)
			case "under-min-isr":
				aa["under_min_isr"] = types.BoolValue(false)
			case "active-controller":
				aa["active_controller"] = types.BoolValue(false)
			case "data-disk":
				aa["data_disk_used_percent"] = types.Int64Value(0)
			}
		}
		if lags, ok := aa["consumer_lag"].(types.Set); ok && !lags.IsNull() && !lags.IsUnknown() {
			var kept []attr.Value
			for _, e := range lags.Elements() {
				o, ok := e.(types.Object)
				if !ok {
					continue
				}
				ea := o.Attributes()
				g, _ := ea["group"].(types.String)
				tp, _ := ea["topic"].(types.String)
				if !slices.Contains(missing, "lag-"+g.ValueString()+"-"+tp.ValueString()) {
					kept = append(kept, e)
				}
			}
			l, d := types.SetValue(lags.ElementType(ctx), kept)
			diags.Append(d...)
			aa["consumer_lag"] = l
		}
		a, d := types.ObjectValue(alarms.AttributeTypes(ctx), aa)
		diags.Append(d...)
		out["alarms"] = a
	}
	obj, d := types.ObjectValue(mon.AttributeTypes(ctx), out)
	diags.Append(d...)
	return obj, diags
}

// importMonitoring reads an imported cluster's monitoring block back from
// CloudWatch, as a configuration that asks for what is there would hold
// it: an import has no configuration, and the block left null made the
// first plan after it an update that only puts the same alarms and
// dashboard again. The alarms named monitoringPrefix-<kind> give the
// alarms block (none: no block), each default left null: an alarm that is
// there reads null (on by default) and one that is not reads false;
// data_disk_used_percent is the data-disk alarm's threshold (null when the
// default, 0 without the alarm); sns_topic_arns are the alarms' actions;
// consumer_lag comes from the lag alarms' dimensions and thresholds (a
// set: a configuration in any order plans nothing). The dashboard reads null when it is there, false
// when alarms are and it is not. CloudWatch unreachable leaves the block
// null, with a warning.
func (r *clusterResource) importMonitoring(ctx context.Context, m *clusterModel, clusterID string) diag.Diagnostics {
	var diags diag.Diagnostics
	cw := cwquery.New(r.data.aws.CloudWatch)
	prefix := monitoringPrefix(m.Name.ValueString(), clusterID)
	alarms, err := cw.Alarms(ctx, prefix+"-")
	var dashboards []string
	if err == nil {
		dashboards, err = cw.DashboardNames(ctx, prefix)
	}
	if err != nil {
		diags.AddWarning("Could not read the cluster's CloudWatch alarms and dashboard", "The imported state has no monitoring block: "+err.Error())
		return diags
	}
	hasDashboard := slices.Contains(dashboards, prefix)
	if len(alarms) == 0 && !hasDashboard {
		return diags
	}
	monType, ok := monitoringBlock().Type().(types.ObjectType)
	if !ok {
		diags.AddError("Reading the monitoring block", "the block's type is not an object")
		return diags
	}
	alarmsType := monType.AttrTypes["alarms"].(types.ObjectType)
	lagType := alarmsType.AttrTypes["consumer_lag"].(types.SetType).ElemType.(types.ObjectType)
	byKind := map[string]cwquery.Alarm{}
	var kinds []string
	for _, a := range alarms {
		kind := strings.TrimPrefix(a.Name, prefix+"-")
		byKind[kind] = a
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	dashboard := types.BoolNull()
	if !hasDashboard {
		dashboard = types.BoolValue(false)
	}
	alarmsObj := types.ObjectNull(alarmsType.AttrTypes)
	if len(alarms) > 0 {
		on := func(kind string) types.Bool {
			if _, ok := byKind[kind]; ok {
				return types.BoolNull()
			}
			return types.BoolValue(false)
		}
		disk := types.Int64Value(0)
		if a, ok := byKind["data-disk"]; ok {
			disk = types.Int64Null()
			if int64(a.Threshold) != defaultDiskAlarmPercent {
				disk = types.Int64Value(int64(a.Threshold))
			}
		}
		topics := types.ListNull(types.StringType)
		if actions := byKind[kinds[0]].AlarmActions; len(actions) > 0 {
			l, d := types.ListValueFrom(ctx, types.StringType, actions)
			diags.Append(d...)
			topics = l
		}
		var lags []attr.Value
		for _, kind := range kinds {
			a := byKind[kind]
			if !strings.HasPrefix(kind, "lag-") {
				continue
			}
			o, d := types.ObjectValue(lagType.AttrTypes, map[string]attr.Value{
				"group": types.StringValue(a.Dimensions["Consumer Group"]), "topic": types.StringValue(a.Dimensions["Topic"]),
				"threshold": types.Int64Value(int64(a.Threshold)),
			})
			diags.Append(d...)
			lags = append(lags, o)
		}
		lagList := types.SetNull(lagType)
		if len(lags) > 0 {
			l, d := types.SetValue(lagType, lags)
			diags.Append(d...)
			lagList = l
		}
		o, d := types.ObjectValue(alarmsType.AttrTypes, map[string]attr.Value{
			"active_controller": on("active-controller"), "offline_partitions": on("offline-partitions"), "under_min_isr": on("under-min-isr"),
			"data_disk_used_percent": disk, "sns_topic_arns": topics, "consumer_lag": lagList,
		})
		diags.Append(d...)
		alarmsObj = o
	}
	if diags.HasError() {
		return diags
	}
	obj, d := types.ObjectValue(monType.AttrTypes, map[string]attr.Value{"alarms": alarmsObj, "dashboard": dashboard})
	diags.Append(d...)
	if !d.HasError() {
		m.Monitoring = obj
	}
	return diags
}
