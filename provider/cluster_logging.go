package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

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
		MarkdownDescription: "Where the brokers ship their logs, as MSK's `logging_info.broker_logs`: CloudWatch Logs, S3, Firehose, or several. " +
			"Omitted: the logs stay on the instances (the journal). Changing it rolls the brokers, one at a time.",
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
			"s3": schema.SingleNestedBlock{
				MarkdownDescription: "Deliver to S3: each broker writes its structured log (JSON lines) as gzip objects to `bucket`, in " +
					"Amazon MSK's key layout: `<prefix>/AWSLogs/<account>/KafkaBrokerLogs/<region>/<name>-<cluster_id>/<yyyy-mm-dd-hh>/" +
					"Broker-<node id>_<yyyy-mm-dd-hh-mm-ss>_<random>.log.gz`, its audit trail in objects named `Broker-<node id>-audit_...`. " +
					"An object is written every minute, or once 4 MiB of lines are waiting, from a bounded buffer (8 MiB per broker): while " +
					"S3 is unreachable or refuses, the broker keeps serving, retries with backoff and drops its oldest lines (counted in " +
					"`LogLinesDropped`). The bucket must exist (the provider does not create or delete it). The created instance role may " +
					"`s3:PutObject` under `<prefix>/` of this bucket only; with `instance_profile`, that profile's role needs the same.",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{
						MarkdownDescription: "Deliver the brokers' logs to `bucket`.",
						Optional:            true,
					},
					"bucket": schema.StringAttribute{
						MarkdownDescription: "S3 bucket name (3-63 of `a-z 0-9 . -`), required when `enabled`.",
						Optional:            true,
						Validators:          []validator.String{bucketNameValidator{}},
					},
					"prefix": schema.StringAttribute{
						MarkdownDescription: "Key prefix of the log objects (at most 256 of `a-z A-Z 0-9 ! - _ . * ' ( ) /`, not beginning with `/`); " +
							"omitted, the keys begin with `AWSLogs/`.",
						Optional: true,
						Validators: []validator.String{stringvalidator.LengthAtMost(256), stringvalidator.RegexMatches(s3LogPrefixPattern,
							"must be at most 256 of the characters a-z A-Z 0-9 ! - _ . * ' ( ) / and not begin with /")},
					},
				},
			},
			"firehose": schema.SingleNestedBlock{
				MarkdownDescription: "Send to Amazon Data Firehose: each broker sends its structured log and its audit trail to the Direct PUT " +
					"delivery stream `delivery_stream`, one record per line (JSON, newline-terminated; audit lines carry `\"log\":\"audit\"`), " +
					"with `PutRecordBatch` calls of at most 500 records and 4 MiB every few seconds from a bounded buffer (8 MiB per broker): " +
					"while Firehose is unreachable, throttles or refuses, the broker keeps serving, retries with backoff (the records a " +
					"partly failed batch refused are sent again) and drops its oldest lines (counted in `LogLinesDropped`). The stream must " +
					"exist, in the cluster's region (the provider does not create or delete it; a plan checks it with " +
					"`DescribeDeliveryStream`); where it delivers is the stream's configuration. The created instance role may " +
					"`firehose:PutRecord` and `firehose:PutRecordBatch` on this stream only; with `instance_profile`, that profile's role " +
					"needs the same.",
				Attributes: map[string]schema.Attribute{
					"enabled": schema.BoolAttribute{
						MarkdownDescription: "Send the brokers' logs to `delivery_stream`.",
						Optional:            true,
					},
					"delivery_stream": schema.StringAttribute{
						MarkdownDescription: "Name of the Firehose delivery stream (1-64 of `a-z A-Z 0-9 _ . -`), required when `enabled`.",
						Optional:            true,
						Validators: []validator.String{stringvalidator.RegexMatches(deliveryStreamNamePattern,
							"must be a Firehose delivery stream name: 1-64 of the characters a-z A-Z 0-9 _ . -")},
					},
				},
			},
		},
	}
}

// deliveryStreamNamePattern is Firehose's rule for delivery stream names;
// bootconfig.ValidDeliveryStreamName is the same rule, checked again in the
// boot document.
var deliveryStreamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// s3LogPrefixPattern is the characters a log prefix may hold (S3's safe
// key characters), not beginning with a slash; bootconfig.ValidS3LogPrefix
// is the same rule, checked again in the boot document.
var s3LogPrefixPattern = regexp.MustCompile(`^([A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*)?$`)

// bucketNameValidator checks an S3 bucket name with the boot document's rule.
type bucketNameValidator struct{}

func (bucketNameValidator) Description(context.Context) string {
	return "must be an S3 bucket name: 3-63 of a-z 0-9 . -, beginning and ending with a letter or digit"
}

func (v bucketNameValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v bucketNameValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() || bootconfig.ValidS3BucketName(req.ConfigValue.ValueString()) {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid S3 bucket name",
		fmt.Sprintf("%q %s (no \"..\", not an IP address).", req.ConfigValue.ValueString(), v.Description(ctx)))
}

type loggingModel struct {
	CloudWatchLogs types.Object `tfsdk:"cloudwatch_logs"`
	S3             types.Object `tfsdk:"s3"`
	Firehose       types.Object `tfsdk:"firehose"`
}

type s3LogsModel struct {
	Enabled types.Bool   `tfsdk:"enabled"`
	Bucket  types.String `tfsdk:"bucket"`
	Prefix  types.String `tfsdk:"prefix"`
}

type firehoseModel struct {
	Enabled        types.Bool   `tfsdk:"enabled"`
	DeliveryStream types.String `tfsdk:"delivery_stream"`
}

var s3LogsAttrTypes = map[string]attr.Type{
	"enabled": types.BoolType,
	"bucket":  types.StringType,
	"prefix":  types.StringType,
}

var firehoseAttrTypes = map[string]attr.Type{
	"enabled":         types.BoolType,
	"delivery_stream": types.StringType,
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
	"s3":              types.ObjectType{AttrTypes: s3LogsAttrTypes},
	"firehose":        types.ObjectType{AttrTypes: firehoseAttrTypes},
}

// logging reads the logging block: nil when nothing is shipped.
func (m *clusterModel) logging(ctx context.Context) (*bootconfig.Logging, diag.Diagnostics) {
	var diags diag.Diagnostics
	if m.Logging.IsNull() || m.Logging.IsUnknown() {
		return nil, nil
	}
	var lm loggingModel
	diags.Append(m.Logging.As(ctx, &lm, objectAsOptions)...)
	var out bootconfig.Logging
	if !lm.CloudWatchLogs.IsNull() && !lm.CloudWatchLogs.IsUnknown() {
		var cw cloudWatchLogsModel
		diags.Append(lm.CloudWatchLogs.As(ctx, &cw, objectAsOptions)...)
		switch {
		case !cw.Enabled.ValueBool():
		case cw.LogGroup.IsUnknown(): // known at apply; ModifyPlan checks again then
		case cw.LogGroup.ValueString() == "":
			diags.AddAttributeError(path.Root("logging").AtName("cloudwatch_logs").AtName("log_group"), "Missing log group",
				"logging.cloudwatch_logs.log_group is required when enabled = true.")
		default:
			out.CloudWatchLogs = &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: cw.LogGroup.ValueString()}
		}
	}
	if !lm.S3.IsNull() && !lm.S3.IsUnknown() {
		var s3 s3LogsModel
		diags.Append(lm.S3.As(ctx, &s3, objectAsOptions)...)
		switch {
		case !s3.Enabled.ValueBool():
		case s3.Bucket.IsUnknown() || s3.Prefix.IsUnknown(): // known at apply; ModifyPlan checks again then
		case s3.Bucket.ValueString() == "":
			diags.AddAttributeError(path.Root("logging").AtName("s3").AtName("bucket"), "Missing S3 bucket",
				"logging.s3.bucket is required when enabled = true.")
		default:
			out.S3 = &bootconfig.S3Logs{Enabled: true, Bucket: s3.Bucket.ValueString(), Prefix: s3.Prefix.ValueString()}
		}
	}
	if !lm.Firehose.IsNull() && !lm.Firehose.IsUnknown() {
		var fh firehoseModel
		diags.Append(lm.Firehose.As(ctx, &fh, objectAsOptions)...)
		switch {
		case !fh.Enabled.ValueBool():
		case fh.DeliveryStream.IsUnknown(): // known at apply; ModifyPlan checks again then
		case fh.DeliveryStream.ValueString() == "":
			diags.AddAttributeError(path.Root("logging").AtName("firehose").AtName("delivery_stream"), "Missing delivery stream",
				"logging.firehose.delivery_stream is required when enabled = true.")
		default:
			out.Firehose = &bootconfig.FirehoseLogs{Enabled: true, DeliveryStream: fh.DeliveryStream.ValueString()}
		}
	}
	if out.CloudWatchLogs == nil && out.S3 == nil && out.Firehose == nil {
		return nil, diags
	}
	return &out, diags
}

// loggingFromDocument is the logging block of an imported cluster: null
// unless its brokers ship logs.
func loggingFromDocument(doc *bootconfig.Document) (types.Object, diag.Diagnostics) {
	l := doc.Logging
	cwOn := l != nil && l.CloudWatchLogs != nil && l.CloudWatchLogs.Enabled
	s3On := l != nil && l.S3 != nil && l.S3.Enabled
	fhOn := l != nil && l.Firehose != nil && l.Firehose.Enabled
	if !cwOn && !s3On && !fhOn {
		return types.ObjectNull(loggingAttrTypes), nil
	}
	var diags diag.Diagnostics
	cw, s3, fh := types.ObjectNull(cloudWatchLogsAttrTypes), types.ObjectNull(s3LogsAttrTypes), types.ObjectNull(firehoseAttrTypes)
	var d diag.Diagnostics
	if cwOn {
		cw, d = types.ObjectValue(cloudWatchLogsAttrTypes, map[string]attr.Value{
			"enabled":   types.BoolValue(true),
			"log_group": types.StringValue(l.CloudWatchLogs.LogGroup),
		})
		diags.Append(d...)
	}
	if s3On {
		prefix := types.StringNull()
		if l.S3.Prefix != "" {
			prefix = types.StringValue(l.S3.Prefix)
		}
		s3, d = types.ObjectValue(s3LogsAttrTypes, map[string]attr.Value{
			"enabled": types.BoolValue(true),
			"bucket":  types.StringValue(l.S3.Bucket),
			"prefix":  prefix,
		})
		diags.Append(d...)
	}
	if fhOn {
		fh, d = types.ObjectValue(firehoseAttrTypes, map[string]attr.Value{
			"enabled":         types.BoolValue(true),
			"delivery_stream": types.StringValue(l.Firehose.DeliveryStream),
		})
		diags.Append(d...)
	}
	obj, d := types.ObjectValue(loggingAttrTypes, map[string]attr.Value{"cloudwatch_logs": cw, "s3": s3, "firehose": fh})
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

// s3LogsOf is the S3 delivery the brokers make, nil when none.
func s3LogsOf(l *bootconfig.Logging) *bootconfig.S3Logs {
	if l == nil || l.S3 == nil || !l.S3.Enabled {
		return nil
	}
	return l.S3
}

// logObjectsOf is the S3 object ARN pattern the brokers deliver under, ""
// when none.
func logObjectsOf(l *bootconfig.Logging) string {
	if l == nil || l.S3 == nil || !l.S3.Enabled {
		return ""
	}
	return bootconfig.S3LogObjectsARN(l.S3.Bucket, l.S3.Prefix)
}

// firehoseLogsOf is the Firehose delivery the brokers make, nil when none.
func firehoseLogsOf(l *bootconfig.Logging) *bootconfig.FirehoseLogs {
	if l == nil || l.Firehose == nil || !l.Firehose.Enabled {
		return nil
	}
	return l.Firehose
}

// deliveryStreamARN is the ARN of the delivery stream of logging.firehose
// in the cluster's region and account, "" when none: what a broker role may
// put records to.
func deliveryStreamARN(l *bootconfig.Logging, partition, region, account string) string {
	fh := firehoseLogsOf(l)
	if fh == nil {
		return ""
	}
	if partition == "" {
		partition = "aws"
	}
	if account == "" { // skip_requesting_account_id: the role's own account is the only one it can reach
		account = "*"
	}
	return "arn:" + partition + ":firehose:" + region + ":" + account + ":deliverystream/" + fh.DeliveryStream
}

// loggingChanges reports whether the logging block changes. A change of
// the destination rolls the brokers (it is in the boot document); one that
// ships nothing either way (no block, enabled = false) rolls nothing, and
// only leaves broker_nodes unknown in the plan.
func loggingChanges(plan, state *clusterModel) bool {
	return !plan.Logging.Equal(state.Logging)
}

// checkDeliveryStream asks Firehose whether the delivery stream exists
// (DescribeDeliveryStream): an error when Firehose says it does not, a
// warning when the provider's credentials may not ask or Firehose cannot
// answer.
func checkDeliveryStream(ctx context.Context, client *firehose.Client, stream, region string) diag.Diagnostics {
	var diags diag.Diagnostics
	at := path.Root("logging").AtName("firehose").AtName("delivery_stream")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := client.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String(stream)})
	var notFound *fhtypes.ResourceNotFoundException
	var re *awshttp.ResponseError
	switch {
	case err == nil:
	case errors.As(err, &notFound):
		diags.AddAttributeError(at, "Firehose delivery stream not found",
			fmt.Sprintf("logging.firehose.delivery_stream %q does not exist. Create it first (in %s, the cluster's region, a Direct PUT stream); the brokers send their logs to it and do not create it.", stream, region))
	case errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusForbidden || strings.Contains(err.Error(), "AccessDenied")):
		diags.AddAttributeWarning(at, "Firehose delivery stream not checked",
			fmt.Sprintf("The provider's credentials may not check that delivery stream %q exists (firehose:DescribeDeliveryStream): if it does not, the brokers' log deliveries fail until it does. %v", stream, err))
	default:
		diags.AddAttributeWarning(at, "Firehose delivery stream not checked",
			fmt.Sprintf("Checking that delivery stream %q exists failed (is it in %s, the cluster's region?): %v", stream, region, err))
	}
	return diags
}

// checkLogBucket asks S3 whether bucket exists (HeadBucket, s3:ListBucket):
// an error when S3 says it does not, a warning when the provider's
// credentials may not ask or S3 cannot answer.
func checkLogBucket(ctx context.Context, client *s3.Client, bucket, region string) diag.Diagnostics {
	var diags diag.Diagnostics
	at := path.Root("logging").AtName("s3").AtName("bucket")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	var notFound *s3types.NotFound
	var re *awshttp.ResponseError
	switch {
	case err == nil:
	case errors.As(err, &notFound) || errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound:
		diags.AddAttributeError(at, "S3 bucket not found",
			fmt.Sprintf("logging.s3.bucket %q does not exist. Create it first (in %s, the cluster's region); the brokers deliver their logs into it and do not create it.", bucket, region))
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden:
		diags.AddAttributeWarning(at, "S3 bucket not checked",
			fmt.Sprintf("The provider's credentials may not check that bucket %q exists (s3:ListBucket): if it does not, the brokers' log deliveries fail until it does. %v", bucket, err))
	default:
		diags.AddAttributeWarning(at, "S3 bucket not checked",
			fmt.Sprintf("Checking that bucket %q exists failed (is it in %s, the cluster's region?): %v", bucket, region, err))
	}
	return diags
}
