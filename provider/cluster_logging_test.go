package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
)

func TestLoggingBlock(t *testing.T) {
	obj := func(ts map[string]attr.Type, values map[string]attr.Value) types.Object {
		t.Helper()
		o, d := types.ObjectValue(ts, values)
		if d.HasError() {
			t.Fatal(d)
		}
		return o
	}
	cw := func(enabled bool, group string) types.Object {
		return obj(cloudWatchLogsAttrTypes, map[string]attr.Value{"enabled": types.BoolValue(enabled), "log_group": types.StringValue(group)})
	}
	s3 := func(enabled bool, bucket string, prefix attr.Value) types.Object {
		return obj(s3LogsAttrTypes, map[string]attr.Value{"enabled": types.BoolValue(enabled), "bucket": types.StringValue(bucket), "prefix": prefix})
	}
	fh := func(enabled bool, stream string) types.Object {
		return obj(firehoseAttrTypes, map[string]attr.Value{"enabled": types.BoolValue(enabled), "delivery_stream": types.StringValue(stream)})
	}
	block := func(c, s, f types.Object) types.Object {
		return obj(loggingAttrTypes, map[string]attr.Value{"cloudwatch_logs": c, "s3": s, "firehose": f})
	}
	nullCW, nullS3, nullFH := types.ObjectNull(cloudWatchLogsAttrTypes), types.ObjectNull(s3LogsAttrTypes), types.ObjectNull(firehoseAttrTypes)
	tests := []struct {
		name    string
		logging types.Object
		want    *bootconfig.Logging
		err     string
	}{
		{"none", types.ObjectNull(loggingAttrTypes), nil, ""},
		{"cloudwatch", block(cw(true, "g"), nullS3, nullFH), &bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "g"}}, ""},
		{"s3", block(nullCW, s3(true, "kafka-logs", types.StringValue("prod")), nullFH),
			&bootconfig.Logging{S3: &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs", Prefix: "prod"}}, ""},
		{"both", block(cw(true, "g"), s3(true, "kafka-logs", types.StringNull()), nullFH),
			&bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "g"}, S3: &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs"}}, ""},
		{"s3 off", block(nullCW, s3(false, "kafka-logs", types.StringNull()), nullFH), nil, ""},
		{"s3 without bucket", block(nullCW, s3(true, "", types.StringNull()), nullFH), nil, "logging.s3.bucket is required"},
		{"firehose off", block(cw(true, "g"), nullS3, fh(false, "s")), &bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "g"}}, ""},
		{"firehose", block(nullCW, nullS3, fh(true, "orders-logs")), &bootconfig.Logging{Firehose: &bootconfig.FirehoseLogs{Enabled: true, DeliveryStream: "orders-logs"}}, ""},
		{"all three", block(cw(true, "g"), s3(true, "kafka-logs", types.StringNull()), fh(true, "orders-logs")),
			&bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "g"}, S3: &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs"},
				Firehose: &bootconfig.FirehoseLogs{Enabled: true, DeliveryStream: "orders-logs"}}, ""},
		{"firehose without stream", block(nullCW, nullS3, fh(true, "")), nil, "logging.firehose.delivery_stream is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := clusterModel{Logging: tt.logging}
			got, diags := m.logging(context.Background())
			if tt.err != "" {
				if !diags.HasError() || !strings.Contains(fmt.Sprint(diags), tt.err) {
					t.Fatalf("diagnostics %v, want %q", diags, tt.err)
				}
				return
			}
			if diags.HasError() {
				t.Fatal(diags)
			}
			if (got == nil) != (tt.want == nil) || got != nil && (got.CloudWatchLogs == nil) != (tt.want.CloudWatchLogs == nil) ||
				got != nil && (got.S3 == nil) != (tt.want.S3 == nil) || got != nil && got.S3 != nil && *got.S3 != *tt.want.S3 ||
				got != nil && (got.Firehose == nil) != (tt.want.Firehose == nil) || got != nil && got.Firehose != nil && *got.Firehose != *tt.want.Firehose {
				t.Fatalf("logging = %+v, want %+v", got, tt.want)
			}
			// What the brokers get reads back as the same block on import.
			if got != nil {
				back, d := loggingFromDocument(&bootconfig.Document{Logging: got})
				if d.HasError() {
					t.Fatal(d)
				}
				again, d := (&clusterModel{Logging: back}).logging(context.Background())
				if d.HasError() || (again.S3 == nil) != (got.S3 == nil) || again.S3 != nil && *again.S3 != *got.S3 ||
					(again.Firehose == nil) != (got.Firehose == nil) || again.Firehose != nil && *again.Firehose != *got.Firehose {
					t.Fatalf("imported logging %+v, want %+v", again, got)
				}
			}
		})
	}
	if got := logObjectsOf(&bootconfig.Logging{S3: &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs", Prefix: "prod/"}}); got != "arn:aws:s3:::kafka-logs/prod/*" {
		t.Errorf("logObjectsOf = %q", got)
	}
	fhOn := &bootconfig.Logging{Firehose: &bootconfig.FirehoseLogs{Enabled: true, DeliveryStream: "orders-logs"}}
	if got := deliveryStreamARN(fhOn, "aws", "us-east-2", "111122223333"); got != "arn:aws:firehose:us-east-2:111122223333:deliverystream/orders-logs" {
		t.Errorf("deliveryStreamARN = %q", got)
	}
	if got := deliveryStreamARN(&bootconfig.Logging{Firehose: &bootconfig.FirehoseLogs{DeliveryStream: "off"}}, "aws", "us-east-2", "111122223333"); got != "" {
		t.Errorf("deliveryStreamARN of a disabled block = %q", got)
	}
}
