package localcloud_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awslogs "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
)

// TestCloudWatchLogsCLI drives the local cloud's CloudWatch Logs through Debian's aws CLI (and
// one SDK read, so both clients see the same data): groups, retention, streams, events, reads
// and filters, the way an operator looks at a cluster's broker logs.
func TestCloudWatchLogsCLI(t *testing.T) {
	c := startCloud(t, "")
	cli := func(args ...string) []byte {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), append([]string{"logs"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	decode := func(data []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("decoding %s: %v", data, err)
		}
	}
	cli("create-log-group", "--log-group-name", "tributary/c1", "--tags", "cluster=c1")
	cli("put-retention-policy", "--log-group-name", "tributary/c1", "--retention-in-days", "7")
	cli("create-log-stream", "--log-group-name", "tributary/c1", "--log-stream-name", "broker-1")
	cli("create-log-stream", "--log-group-name", "tributary/c1", "--log-stream-name", "broker-2")
	now := time.Now().Add(-time.Minute).UnixMilli()
	events := func(messages ...string) string {
		var list []map[string]any
		for i, m := range messages {
			list = append(list, map[string]any{"timestamp": now + int64(i), "message": m})
		}
		b, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var put struct{ NextSequenceToken string }
	decode(cli("put-log-events", "--log-group-name", "tributary/c1", "--log-stream-name", "broker-1", "--log-events",
		events(`{"level":"INFO","msg":"broker started","node":1}`, `{"level":"ERROR","msg":"disk full","node":1}`)), &put)
	if put.NextSequenceToken == "" {
		t.Fatal("put-log-events without a sequence token")
	}
	cli("put-log-events", "--log-group-name", "tributary/c1", "--log-stream-name", "broker-2", "--log-events", events(`{"level":"INFO","msg":"broker started","node":2}`))

	var groups struct {
		LogGroups []struct {
			LogGroupName    string
			RetentionInDays int
			StoredBytes     int
		}
	}
	decode(cli("describe-log-groups", "--log-group-name-prefix", "tributary/"), &groups)
	if len(groups.LogGroups) != 1 || groups.LogGroups[0].RetentionInDays != 7 || groups.LogGroups[0].StoredBytes == 0 {
		t.Fatalf("describe-log-groups: %+v", groups)
	}
	var got struct {
		Events []struct {
			Message   string
			Timestamp int64
		}
		NextForwardToken string
	}
	decode(cli("get-log-events", "--log-group-name", "tributary/c1", "--log-stream-name", "broker-1", "--start-from-head"), &got)
	if len(got.Events) != 2 || !strings.Contains(got.Events[1].Message, "disk full") || got.Events[0].Timestamp != now || !strings.HasPrefix(got.NextForwardToken, "f/") {
		t.Fatalf("get-log-events: %+v", got)
	}
	var filtered struct {
		Events []struct{ LogStreamName, Message string }
	}
	decode(cli("filter-log-events", "--log-group-name", "tributary/c1", "--filter-pattern", "started"), &filtered)
	if len(filtered.Events) != 2 || filtered.Events[0].LogStreamName != "broker-1" || filtered.Events[1].LogStreamName != "broker-2" {
		t.Fatalf("filter-log-events by term: %+v", filtered)
	}
	decode(cli("filter-log-events", "--log-group-name", "tributary/c1", "--filter-pattern", `{ $.level = "ERROR" }`), &filtered)
	if len(filtered.Events) != 1 || !strings.Contains(filtered.Events[0].Message, "disk full") {
		t.Fatalf("filter-log-events by a JSON pattern: %+v", filtered)
	}
	var streams struct {
		LogStreams []struct {
			LogStreamName      string
			LastEventTimestamp int64
		}
	}
	decode(cli("describe-log-streams", "--log-group-name", "tributary/c1", "--order-by", "LastEventTime", "--descending"), &streams)
	if len(streams.LogStreams) != 2 || streams.LogStreams[0].LastEventTimestamp != now+1 {
		t.Fatalf("describe-log-streams: %+v", streams)
	}
	// aws logs tail, the operator's view: every stream's events with their stream names.
	tail, err := awsCLI(t, c.Endpoint(), "logs", "tail", "tributary/c1", "--since", "1h", "--format", "short")
	if err != nil || strings.Count(string(tail), "broker started") != 2 || !strings.Contains(string(tail), "disk full") {
		t.Fatalf("logs tail: %s %v", tail, err)
	}
	var tags struct{ Tags map[string]string }
	decode(cli("list-tags-log-group", "--log-group-name", "tributary/c1"), &tags)
	if tags.Tags["cluster"] != "c1" {
		t.Fatalf("list-tags-log-group: %+v", tags)
	}
	if _, err := awsCLI(t, c.Endpoint(), "logs", "get-log-events", "--log-group-name", "nope", "--log-stream-name", "x"); err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Fatalf("get-log-events of a missing group: %v", err)
	}

	// The SDK reads what the CLI wrote.
	cfg := sdkConfig(c)
	out, err := awslogs.NewFromConfig(cfg).FilterLogEvents(context.Background(), &awslogs.FilterLogEventsInput{LogGroupName: aws.String("tributary/c1"), LogStreamNamePrefix: aws.String("broker-2")})
	if err != nil || len(out.Events) != 1 || !strings.Contains(aws.ToString(out.Events[0].Message), `"node":2`) {
		t.Fatalf("SDK FilterLogEvents: %+v %v", out, err)
	}
	cli("delete-log-group", "--log-group-name", "tributary/c1")
	decode(cli("describe-log-groups"), &groups)
	if len(groups.LogGroups) != 0 {
		t.Fatalf("after delete-log-group: %+v", groups)
	}
}
