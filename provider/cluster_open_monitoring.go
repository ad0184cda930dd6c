package provider

import (
	"context"
	"slices"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// openMonitoringBlock is Amazon MSK's open_monitoring, in its shape.
func openMonitoringBlock() schema.SingleNestedBlock {
	exporter := func(what string) schema.SingleNestedBlock {
		return schema.SingleNestedBlock{
			MarkdownDescription: what,
			Attributes: map[string]schema.Attribute{
				"enabled_in_broker": schema.BoolAttribute{
					MarkdownDescription: "Serve it (and open its port to `monitoring_cidr_blocks`).",
					Optional:            true,
				},
			},
		}
	}
	return schema.SingleNestedBlock{
		MarkdownDescription: "Open monitoring with Prometheus, as MSK's `open_monitoring`: each broker serves Prometheus endpoints that " +
			"the cluster's security group opens to `monitoring_cidr_blocks`, and that the broker itself refuses to any other source " +
			"(except the host itself). Changing it rolls the brokers, one at a time.",
		Blocks: map[string]schema.Block{
			"prometheus": schema.SingleNestedBlock{
				MarkdownDescription: "The Prometheus exporters.",
				Blocks: map[string]schema.Block{
					"jmx_exporter": exporter("The broker's metrics on port 11001 (`/metrics`, MSK's JMX exporter port): every series of " +
						"`docs/broker-metrics.md`. Off, the port answers only the host itself (it also serves `/healthz` and `/readyz`)."),
					"node_exporter": exporter("The host's metrics on port 11002 (`/metrics`, MSK's node exporter port) under the " +
						"Prometheus node_exporter's names: `node_cpu_seconds_total`, `node_memory_*_bytes`, `node_load1`, " +
						"`node_filesystem_*` (root and data volume), `node_disk_*`, `node_network_*`, read from `/proc`. Off, not served."),
				},
			},
		},
	}
}

func monitoringCIDRBlocksAttribute() schema.SetAttribute {
	return schema.SetAttribute{
		MarkdownDescription: "CIDR blocks allowed to scrape the open monitoring ports (11001, 11002) of the exporters enabled in " +
			"`open_monitoring`; required when one is. Changed in place in the security group; the brokers, which refuse other " +
			"sources too, roll.",
		Optional:    true,
		ElementType: types.StringType,
		Validators: []validator.Set{
			setvalidator.ValueStringsAre(stringvalidator.RegexMatches(cidrPattern, "must be a CIDR block such as 10.0.0.0/16")),
		},
	}
}

type openMonitoringModel struct {
	Prometheus types.Object `tfsdk:"prometheus"`
}

type prometheusModel struct {
	JMXExporter  types.Object `tfsdk:"jmx_exporter"`
	NodeExporter types.Object `tfsdk:"node_exporter"`
}

type exporterModel struct {
	EnabledInBroker types.Bool `tfsdk:"enabled_in_broker"`
}

var (
	exporterAttrTypes       = map[string]attr.Type{"enabled_in_broker": types.BoolType}
	prometheusAttrTypes     = map[string]attr.Type{"jmx_exporter": types.ObjectType{AttrTypes: exporterAttrTypes}, "node_exporter": types.ObjectType{AttrTypes: exporterAttrTypes}}
	openMonitoringAttrTypes = map[string]attr.Type{"prometheus": types.ObjectType{AttrTypes: prometheusAttrTypes}}
)

// exporters reads which exporters open_monitoring enables.
func (m *clusterModel) exporters(ctx context.Context) (jmx, node bool, diags diag.Diagnostics) {
	if m.OpenMonitoring.IsNull() || m.OpenMonitoring.IsUnknown() {
		return false, false, nil
	}
	var om openMonitoringModel
	diags.Append(m.OpenMonitoring.As(ctx, &om, objectAsOptions)...)
	if om.Prometheus.IsNull() || om.Prometheus.IsUnknown() {
		return false, false, diags
	}
	var pm prometheusModel
	diags.Append(om.Prometheus.As(ctx, &pm, objectAsOptions)...)
	enabled := func(o types.Object) bool {
		if o.IsNull() || o.IsUnknown() {
			return false
		}
		var e exporterModel
		diags.Append(o.As(ctx, &e, objectAsOptions)...)
		return e.EnabledInBroker.ValueBool()
	}
	return enabled(pm.JMXExporter), enabled(pm.NodeExporter), diags
}

// openMonitoring reads open_monitoring and monitoring_cidr_blocks: the
// boot document's part (nil when no exporter is enabled, which leaves the
// metrics port as it always was) and the security group's ports.
func (m *clusterModel) openMonitoring(ctx context.Context) (*bootconfig.OpenMonitoring, []int32, []string, diag.Diagnostics) {
	jmx, node, diags := m.exporters(ctx)
	cidrs, d := stringSet(ctx, m.MonitoringCIDRBlocks)
	diags.Append(d...)
	if diags.HasError() || (!jmx && !node) {
		return nil, nil, nil, diags
	}
	slices.Sort(cidrs)
	var ports []int32
	if jmx {
		ports = append(ports, fleet.MetricsPort)
	}
	if node {
		ports = append(ports, fleet.NodeMetricsPort)
	}
	return &bootconfig.OpenMonitoring{JMXExporter: jmx, NodeExporter: node, AllowedCIDRs: cidrs}, ports, cidrs, diags
}

// validateOpenMonitoring refuses CIDR blocks with nothing to open (they
// would never read back from the security group: a perpetual diff) and an
// exporter with nobody allowed to scrape it.
func validateOpenMonitoring(ctx context.Context, m clusterModel) diag.Diagnostics {
	jmx, node, diags := m.exporters(ctx)
	if diags.HasError() || m.MonitoringCIDRBlocks.IsUnknown() {
		return diags
	}
	hasCIDRs := !m.MonitoringCIDRBlocks.IsNull() && len(m.MonitoringCIDRBlocks.Elements()) > 0
	switch {
	case (jmx || node) && !hasCIDRs:
		diags.AddAttributeError(path.Root("monitoring_cidr_blocks"), "Missing monitoring CIDR blocks",
			"open_monitoring enables an exporter, so monitoring_cidr_blocks must name who may scrape it (for example the VPC's CIDR "+
				"block, or your Prometheus server's address as a /32).")
	case !jmx && !node && hasCIDRs:
		diags.AddAttributeError(path.Root("monitoring_cidr_blocks"), "Nothing to open",
			"monitoring_cidr_blocks opens the ports of the exporters open_monitoring enables, and it enables none. Set "+
				"open_monitoring.prometheus.jmx_exporter.enabled_in_broker or node_exporter.enabled_in_broker, or remove monitoring_cidr_blocks.")
	}
	return diags
}

// openMonitoringFromDocument is the open_monitoring block of an imported
// cluster: null unless its brokers serve an exporter.
func openMonitoringFromDocument(doc *bootconfig.Document) (types.Object, diag.Diagnostics) {
	om := doc.OpenMonitoring
	if om == nil || (!om.JMXExporter && !om.NodeExporter) {
		return types.ObjectNull(openMonitoringAttrTypes), nil
	}
	var diags diag.Diagnostics
	exporter := func(on bool) types.Object {
		o, d := types.ObjectValue(exporterAttrTypes, map[string]attr.Value{"enabled_in_broker": types.BoolValue(on)})
		diags.Append(d...)
		return o
	}
	p, d := types.ObjectValue(prometheusAttrTypes, map[string]attr.Value{"jmx_exporter": exporter(om.JMXExporter), "node_exporter": exporter(om.NodeExporter)})
	diags.Append(d...)
	o, d := types.ObjectValue(openMonitoringAttrTypes, map[string]attr.Value{"prometheus": p})
	diags.Append(d...)
	return o, diags
}

// openMonitoringChanges reports whether the brokers must roll for a change
// of open monitoring: its exporters or the sources they answer.
func openMonitoringChanges(plan, state *clusterModel) bool {
	return !plan.OpenMonitoring.Equal(state.OpenMonitoring) || !plan.MonitoringCIDRBlocks.Equal(state.MonitoringCIDRBlocks)
}
