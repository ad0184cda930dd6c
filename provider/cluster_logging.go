package provider

import (
	"context"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
)

// logGroupNamePattern is CloudWatch Logs' rule for log group names.
var logGroupNamePattern = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)

// loggingBlock is the cluster's logging block, Amazon MSK's logging_info
// broker_logs in a flatter shape.
func loggingBlock() schema.SingleNestedBlock {
	return schema.SingleNestedBlock{
		MarkdownDescription: "Where the brokers ship their logs, as MSK's `logging_info.broker_logs`. Omitted: the logs stay on the " +
			"instances (the journal). Changing it rolls the brokers, one at a time.",
		Blocks: map[string]schema.Block{
			"cloudwatch_logs": schema.SingleNestedBlock{
				MarkdownDescription: "Ship to CloudWatch Logs: each broker writes its structured log (JSON lines) to the stream " +
					"`broker-<node id>` and its audit trail (every admin operation and every refused request, with principal, client " +
					"address, request and result) to `broker-<node id>/audit` of `log_group`. Lines are sent in batches every few seconds " +
					"from a bounded buffer (8 MiB per broker): while CloudWatch Logs is unreachable or refuses, the broker keeps serving, " +
					"retries with backoff and drops its oldest lines, and writes how many it dropped once shipping works again. The " +
					"created instance role may create and write to this group only; the group is created when missing and is not deleted " +
					"with the cluster (logs outlive it). With `instance_profile`, that profile's role needs `logs:CreateLogGroup`, " +
					"`logs:CreateLogStream` and `logs:PutLogEvents` on the group.",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{
						MarkdownDescription: "Ship the brokers' logs to `log_group`.",
						Optional:            true,
					},
					"log_group": schema.StringAttribute{
						MarkdownDescription: "CloudWatch Logs group name (1-512 of `a-z A-Z 0-9 . - _ / #`), required when `enabled`.",
						Optional:            true,
						Validators: []validator.String{stringvalidator.RegexMatches(logGroupNamePattern,
							"must be a CloudWatch Logs group name: 1-512 of the characters a-z A-Z 0-9 . - _ / #")},
					},
				},
			},
		},
	}
}

type loggingModel struct {
	CloudWatchLogs types.Object `tfsdk:"cloudwatch_logs"`
}

type cloudWatchLogsModel struct {
	Enabled  types.Bool   `tfsdk:"enabled"`
	LogGroup types.String `tfsdk:"log_group"`
}

var cloudWatchLogsAttrTypes = map[string]attr.Type{
	"enabled":   types.BoolType,
	"log_group": types.StringType,
}

var loggingAttrTypes = map[string]attr.Type{
	"cloudwatch_logs": types.ObjectType{AttrTypes: cloudWatchLogsAttrTypes},
}

// logging reads the logging block: nil when nothing is shipped.
func (m *clusterModel) logging(ctx context.Context) (*bootconfig.Logging, diag.Diagnostics) {
	var diags diag.Diagnostics
	if m.Logging.IsNull() || m.Logging.IsUnknown() {
		return nil, nil
	}
	var lm loggingModel
	diags.Append(m.Logging.As(ctx, &lm, objectAsOptions)...)
	if lm.CloudWatchLogs.IsNull() || lm.CloudWatchLogs.IsUnknown() {
		return nil, diags
	}
	var cw cloudWatchLogsModel
	diags.Append(lm.CloudWatchLogs.As(ctx, &cw, objectAsOptions)...)
	if !cw.Enabled.ValueBool() {
		return nil, diags
	}
	if cw.LogGroup.IsUnknown() {
		return nil, diags // known at apply; ModifyPlan checks again then
	}
	if cw.LogGroup.ValueString() == "" {
		diags.AddAttributeError(path.Root("logging").AtName("cloudwatch_logs").AtName("log_group"), "Missing log group",
			"logging.cloudwatch_logs.log_group is required when enabled = true.")
		return nil, diags
	}
	return &bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: cw.LogGroup.ValueString()}}, diags
}

// loggingFromDocument is the logging block of an imported cluster: null
// unless its brokers ship logs.
func loggingFromDocument(doc *bootconfig.Document) (types.Object, diag.Diagnostics) {
	l := doc.Logging
	if l == nil || l.CloudWatchLogs == nil || !l.CloudWatchLogs.Enabled {
		return types.ObjectNull(loggingAttrTypes), nil
	}
	cw, diags := types.ObjectValue(cloudWatchLogsAttrTypes, map[string]attr.Value{
		"enabled":   types.BoolValue(true),
		"log_group": types.StringValue(l.CloudWatchLogs.LogGroup),
	})
	obj, d := types.ObjectValue(loggingAttrTypes, map[string]attr.Value{"cloudwatch_logs": cw})
	diags.Append(d...)
	return obj, diags
}

// logGroupOf is the group the brokers ship to, "" when none.
func logGroupOf(l *bootconfig.Logging) string {
	if l == nil || l.CloudWatchLogs == nil || !l.CloudWatchLogs.Enabled {
		return ""
	}
	return l.CloudWatchLogs.LogGroup
}

// loggingChanges reports whether the logging block changes. A change of
// the destination rolls the brokers (it is in the boot document); one that
// ships nothing either way (no block, enabled = false) rolls nothing, and
// only leaves broker_nodes unknown in the plan.
func loggingChanges(plan, state *clusterModel) bool {
	return !plan.Logging.Equal(state.Logging)
}
