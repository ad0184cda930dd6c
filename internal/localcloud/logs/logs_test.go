package logs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awslogs "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/logs"
)

// cloud is CloudWatch Logs and IAM behind one awsapi server, wired as the local cloud wires
// them.
type cloud struct {
	*awsapitest.Cloud
	svc    *logs.Service
	client *awslogs.Client
}

func newCloud(t *testing.T, dir string) *cloud {
	t.Helper()
	c := awsapitest.Start(t)
	iamSvc, err := iam.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := logs.New(c.Env(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	c.Server.Register("iam", iamSvc)
	c.Server.Register("logs", svc)
	c.Server.SetAuthorizer(iamSvc)
	return &cloud{Cloud: c, svc: svc, client: awslogs.NewFromConfig(c.Root())}
}

func (c *cloud) group(t *testing.T, name string, streams ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.client.CreateLogGroup(ctx, &awslogs.CreateLogGroupInput{LogGroupName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		if _, err := c.client.CreateLogStream(ctx, &awslogs.CreateLogStreamInput{LogGroupName: aws.String(name), LogStreamName: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
	}
}

// put sends events with the given messages, one millisecond apart from at.
func (c *cloud) put(t *testing.T, group, stream string, at time.Time, messages ...string) *awslogs.PutLogEventsOutput {
	t.Helper()
	var events []types.InputLogEvent
	for i, m := range messages {
		events = append(events, types.InputLogEvent{Timestamp: aws.Int64(at.UnixMilli() + int64(i)), Message: aws.String(m)})
	}
	out, err := c.client.PutLogEvents(context.Background(), &awslogs.PutLogEventsInput{LogGroupName: aws.String(group), LogStreamName: aws.String(stream), LogEvents: events})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func messages(events []types.OutputLogEvent) string {
	var out []string
	for _, e := range events {
		out = append(out, aws.ToString(e.Message))
	}
	return strings.Join(out, ",")
}

func TestLogGroupsAndStreams(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	if _, err := c.client.CreateLogGroup(ctx, &awslogs.CreateLogGroupInput{LogGroupName: aws.String("tributary/c1"), Tags: map[string]string{"cluster": "c1"}}); err != nil {
		t.Fatal(err)
	}
	c.group(t, "tributary/c2")
	c.group(t, "other")
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"duplicate group", func() error {
			_, err := c.client.CreateLogGroup(ctx, &awslogs.CreateLogGroupInput{LogGroupName: aws.String("other")})
			return err
		}, "ResourceAlreadyExistsException"},
		{"bad group name", func() error {
			_, err := c.client.CreateLogGroup(ctx, &awslogs.CreateLogGroupInput{LogGroupName: aws.String("a:b")})
			return err
		}, "InvalidParameterException"},
		{"missing group", func() error {
			_, err := c.client.CreateLogStream(ctx, &awslogs.CreateLogStreamInput{LogGroupName: aws.String("nope"), LogStreamName: aws.String("s")})
			return err
		}, "ResourceNotFoundException"},
		{"bad stream name", func() error {
			_, err := c.client.CreateLogStream(ctx, &awslogs.CreateLogStreamInput{LogGroupName: aws.String("other"), LogStreamName: aws.String("a:b")})
			return err
		}, "InvalidParameterException"},
		{"retention not in the list", func() error {
			_, err := c.client.PutRetentionPolicy(ctx, &awslogs.PutRetentionPolicyInput{LogGroupName: aws.String("other"), RetentionInDays: aws.Int32(8)})
			return err
		}, "InvalidParameterException"},
		{"prefix and pattern", func() error {
			_, err := c.client.DescribeLogGroups(ctx, &awslogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("a"), LogGroupNamePattern: aws.String("b")})
			return err
		}, "InvalidParameterException"},
		{"reserved tag", func() error {
			_, err := c.client.TagResource(ctx, &awslogs.TagResourceInput{ResourceArn: aws.String("arn:aws:logs:us-east-1:000000000000:log-group:other"), Tags: map[string]string{"aws:x": "y"}})
			return err
		}, "InvalidParameterException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := awsapitest.ErrorCode(t, tt.call()); got != tt.code {
				t.Fatalf("code %s, want %s", got, tt.code)
			}
		})
	}

	if _, err := c.client.PutRetentionPolicy(ctx, &awslogs.PutRetentionPolicyInput{LogGroupName: aws.String("tributary/c1"), RetentionInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	var names []string
	var token *string
	for page := 0; ; page++ {
		out, err := c.client.DescribeLogGroups(ctx, &awslogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("tributary/"), Limit: aws.Int32(1), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range out.LogGroups {
			names = append(names, aws.ToString(g.LogGroupName))
			if aws.ToString(g.LogGroupName) == "tributary/c1" && (aws.ToInt32(g.RetentionInDays) != 7 ||
				aws.ToString(g.Arn) != "arn:aws:logs:us-east-1:000000000000:log-group:tributary/c1:*" ||
				aws.ToString(g.LogGroupArn) != "arn:aws:logs:us-east-1:000000000000:log-group:tributary/c1") {
				t.Fatalf("described %+v", g)
			}
		}
		if token = out.NextToken; token == nil || page > 3 {
			break
		}
	}
	if strings.Join(names, ",") != "tributary/c1,tributary/c2" {
		t.Fatalf("groups by prefix, a page at a time: %v", names)
	}
	out, err := c.client.DescribeLogGroups(ctx, &awslogs.DescribeLogGroupsInput{LogGroupNamePattern: aws.String("C2")})
	if err != nil || len(out.LogGroups) != 1 || aws.ToString(out.LogGroups[0].LogGroupName) != "tributary/c2" {
		t.Fatalf("groups by pattern: %+v %v", out, err)
	}

	tags, err := c.client.ListTagsForResource(ctx, &awslogs.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:logs:us-east-1:000000000000:log-group:tributary/c1")})
	if err != nil || tags.Tags["cluster"] != "c1" {
		t.Fatalf("tags %+v %v", tags, err)
	}
	if _, err := c.client.UntagResource(ctx, &awslogs.UntagResourceInput{ResourceArn: aws.String("arn:aws:logs:us-east-1:000000000000:log-group:tributary/c1"), TagKeys: []string{"cluster"}}); err != nil {
		t.Fatal(err)
	}
	if tags, err = c.client.ListTagsForResource(ctx, &awslogs.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:logs:us-east-1:000000000000:log-group:tributary/c1")}); err != nil || len(tags.Tags) != 0 {
		t.Fatalf("tags after untagging %+v %v", tags, err)
	}

	// Streams: ordered by name, or by their last event.
	for _, s := range []string{"broker-1", "broker-2", "broker-3"} {
		if _, err := c.client.CreateLogStream(ctx, &awslogs.CreateLogStreamInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String(s)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.client.CreateLogStream(ctx, &awslogs.CreateLogStreamInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String("broker-1")})
	if got := awsapitest.ErrorCode(t, err); got != "ResourceAlreadyExistsException" {
		t.Fatalf("duplicate stream: %s", got)
	}
	now := c.Clock.Now()
	c.put(t, "tributary/c1", "broker-3", now.Add(-time.Minute), "old")
	c.put(t, "tributary/c1", "broker-1", now, "new")
	streams, err := c.client.DescribeLogStreams(ctx, &awslogs.DescribeLogStreamsInput{LogGroupName: aws.String("tributary/c1"), OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range streams.LogStreams {
		order = append(order, aws.ToString(s.LogStreamName))
	}
	if strings.Join(order, ",") != "broker-1,broker-3,broker-2" || aws.ToInt64(streams.LogStreams[0].LastEventTimestamp) != now.UnixMilli() {
		t.Fatalf("streams by last event, descending: %v %+v", order, streams.LogStreams[0])
	}
	_, err = c.client.DescribeLogStreams(ctx, &awslogs.DescribeLogStreamsInput{LogGroupName: aws.String("tributary/c1"), OrderBy: types.OrderByLastEventTime, LogStreamNamePrefix: aws.String("b")})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterException" {
		t.Fatalf("LastEventTime with a prefix: %s", got)
	}
	if _, err := c.client.DeleteLogStream(ctx, &awslogs.DeleteLogStreamInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String("broker-2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client.DeleteLogGroup(ctx, &awslogs.DeleteLogGroupInput{LogGroupName: aws.String("tributary/c1")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.client.DescribeLogStreams(ctx, &awslogs.DescribeLogStreamsInput{LogGroupName: aws.String("tributary/c1")})
	if got := awsapitest.ErrorCode(t, err); got != "ResourceNotFoundException" {
		t.Fatalf("streams of a deleted group: %s", got)
	}
}

func TestPutAndGetLogEvents(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	c.group(t, "g", "s")
	now := c.Clock.Now()
	c.put(t, "g", "s", now.Add(-10*time.Second), "e1", "e2", "e3")
	// A later batch may carry earlier timestamps; reads stay in timestamp order.
	c.put(t, "g", "s", now.Add(-20*time.Second), "e0")
	c.put(t, "g", "s", now, "e4", "e5")

	get := func(in awslogs.GetLogEventsInput) *awslogs.GetLogEventsOutput {
		t.Helper()
		in.LogGroupName, in.LogStreamName = aws.String("g"), aws.String("s")
		out, err := c.client.GetLogEvents(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := messages(get(awslogs.GetLogEventsInput{}).Events); got != "e0,e1,e2,e3,e4,e5" {
		t.Fatalf("all events: %s", got)
	}
	if got := messages(get(awslogs.GetLogEventsInput{Limit: aws.Int32(2)}).Events); got != "e4,e5" {
		t.Fatalf("without startFromHead, the newest: %s", got)
	}
	// Forward from the head, two at a time, until the token comes back unchanged.
	var seen []string
	in := awslogs.GetLogEventsInput{StartFromHead: aws.Bool(true), Limit: aws.Int32(2)}
	for i := 0; i < 10; i++ {
		out := get(in)
		seen = append(seen, messages(out.Events))
		if in.NextToken != nil && aws.ToString(out.NextForwardToken) == aws.ToString(in.NextToken) {
			break
		}
		in.NextToken = out.NextForwardToken
	}
	if strings.Join(seen, "|") != "e0,e1|e2,e3|e4,e5|" {
		t.Fatalf("forward pages: %q", seen)
	}
	// New events appear behind the last forward token, as a tail -f reads them.
	c.put(t, "g", "s", now.Add(time.Second), "e6")
	if got := messages(get(in).Events); got != "e6" {
		t.Fatalf("after new events: %s", got)
	}
	// Backward from the newest.
	out := get(awslogs.GetLogEventsInput{Limit: aws.Int32(3)})
	back := get(awslogs.GetLogEventsInput{Limit: aws.Int32(3), NextToken: out.NextBackwardToken})
	if messages(out.Events) != "e4,e5,e6" || messages(back.Events) != "e1,e2,e3" {
		t.Fatalf("backward pages: %s then %s", messages(out.Events), messages(back.Events))
	}
	// A time range: start inclusive, end exclusive.
	r := get(awslogs.GetLogEventsInput{StartTime: aws.Int64(now.Add(-10 * time.Second).UnixMilli()), EndTime: aws.Int64(now.UnixMilli()), StartFromHead: aws.Bool(true)})
	if got := messages(r.Events); got != "e1,e2,e3" {
		t.Fatalf("time range: %s", got)
	}
	if r.Events[0].IngestionTime == nil || aws.ToInt64(r.Events[0].Timestamp) != now.Add(-10*time.Second).UnixMilli() {
		t.Fatalf("event fields: %+v", r.Events[0])
	}

	// Events too old or too new are rejected, the others kept.
	batch := []types.InputLogEvent{
		{Timestamp: aws.Int64(now.Add(-15 * 24 * time.Hour).UnixMilli()), Message: aws.String("ancient")},
		{Timestamp: aws.Int64(now.Add(-time.Hour).UnixMilli()), Message: aws.String("fine")},
		{Timestamp: aws.Int64(now.Add(3 * time.Hour).UnixMilli()), Message: aws.String("future")},
	}
	put, err := c.client.PutLogEvents(ctx, &awslogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), LogEvents: batch})
	if err != nil {
		t.Fatal(err)
	}
	if info := put.RejectedLogEventsInfo; info == nil || aws.ToInt32(info.TooOldLogEventEndIndex) != 1 || aws.ToInt32(info.TooNewLogEventStartIndex) != 2 || info.ExpiredLogEventEndIndex != nil {
		t.Fatalf("rejected %+v", put.RejectedLogEventsInfo)
	}
	if got := messages(get(awslogs.GetLogEventsInput{StartFromHead: aws.Bool(true), Limit: aws.Int32(1)}).Events); got != "fine" {
		t.Fatalf("the kept event: %s", got)
	}

	bad := []struct {
		name   string
		events []types.InputLogEvent
		stream string
		code   string
	}{
		{"out of order", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("b")}, {Timestamp: aws.Int64(now.UnixMilli() - 1), Message: aws.String("a")}}, "s", "InvalidParameterException"},
		{"over a day", []types.InputLogEvent{{Timestamp: aws.Int64(now.Add(-25 * time.Hour).UnixMilli()), Message: aws.String("a")}, {Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("b")}}, "s", "InvalidParameterException"},
		{"empty message", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("")}}, "s", "InvalidParameterException"},
		{"too large", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String(strings.Repeat("x", 600000))}, {Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String(strings.Repeat("x", 600000))}}, "s", "InvalidParameterException"},
		{"missing stream", []types.InputLogEvent{{Timestamp: aws.Int64(now.UnixMilli()), Message: aws.String("a")}}, "nope", "ResourceNotFoundException"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.client.PutLogEvents(ctx, &awslogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String(tt.stream), LogEvents: tt.events})
			if got := awsapitest.ErrorCode(t, err); got != tt.code {
				t.Fatalf("code %s, want %s (%v)", got, tt.code, err)
			}
		})
	}
	_, err = c.client.GetLogEvents(ctx, &awslogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"), NextToken: aws.String("f/garbage")})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterException" {
		t.Fatalf("bad token: %s", got)
	}
}

func TestFilterLogEvents(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	c.group(t, "tributary/c1", "broker-1", "broker-2", "audit")
	now := c.Clock.Now().Add(-time.Minute)
	c.put(t, "tributary/c1", "broker-1", now, `{"level":"INFO","msg":"broker started","node":1}`, `{"level":"ERROR","msg":"replica fetch failed","node":1,"lag":1500}`)
	c.put(t, "tributary/c1", "broker-2", now.Add(500*time.Millisecond), `{"level":"INFO","msg":"broker started","node":2}`)
	c.put(t, "tributary/c1", "audit", now.Add(time.Second), `{"principal":"User:alice","op":"CreateTopics","resource":"orders","allowed":true}`)

	filter := func(in awslogs.FilterLogEventsInput) []types.FilteredLogEvent {
		t.Helper()
		in.LogGroupName = aws.String("tributary/c1")
		out, err := c.client.FilterLogEvents(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		return out.Events
	}
	streamsOf := func(events []types.FilteredLogEvent) string {
		var out []string
		for _, e := range events {
			out = append(out, aws.ToString(e.LogStreamName))
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name string
		in   awslogs.FilterLogEventsInput
		want string
	}{
		{"everything, in time order across streams", awslogs.FilterLogEventsInput{}, "broker-1,broker-1,broker-2,audit"},
		{"a term", awslogs.FilterLogEventsInput{FilterPattern: aws.String("started")}, "broker-1,broker-2"},
		{"a JSON pattern", awslogs.FilterLogEventsInput{FilterPattern: aws.String(`{ $.level = "ERROR" && $.lag > 1000 }`)}, "broker-1"},
		{"an audit entry", awslogs.FilterLogEventsInput{FilterPattern: aws.String(`{ $.op = "CreateTopics" && $.resource = "orders" }`)}, "audit"},
		{"by stream prefix", awslogs.FilterLogEventsInput{LogStreamNamePrefix: aws.String("broker-")}, "broker-1,broker-1,broker-2"},
		{"by stream names", awslogs.FilterLogEventsInput{LogStreamNames: []string{"audit", "broker-2"}}, "broker-2,audit"},
		{"a time range", awslogs.FilterLogEventsInput{StartTime: aws.Int64(now.Add(500 * time.Millisecond).UnixMilli()), EndTime: aws.Int64(now.Add(time.Second).UnixMilli())}, "broker-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streamsOf(filter(tt.in)); got != tt.want {
				t.Fatalf("streams %s, want %s", got, tt.want)
			}
		})
	}
	// Pages.
	var all []string
	in := &awslogs.FilterLogEventsInput{LogGroupName: aws.String("tributary/c1"), Limit: aws.Int32(3)}
	for i := 0; i < 5; i++ {
		out, err := c.client.FilterLogEvents(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			all = append(all, aws.ToString(e.EventId))
		}
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(all) != 4 || all[0] == all[1] {
		t.Fatalf("paged event ids: %v", all)
	}
	_, err := c.client.FilterLogEvents(ctx, &awslogs.FilterLogEventsInput{LogGroupName: aws.String("tributary/c1"), FilterPattern: aws.String(`{ $.x = `)})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterException" {
		t.Fatalf("a bad pattern: %s", got)
	}
	_, err = c.client.FilterLogEvents(ctx, &awslogs.FilterLogEventsInput{LogGroupName: aws.String("tributary/c1"), LogStreamNames: []string{"a"}, LogStreamNamePrefix: aws.String("b")})
	if got := awsapitest.ErrorCode(t, err); got != "InvalidParameterException" {
		t.Fatalf("names and prefix: %s", got)
	}
}

func TestRetentionAndRestart(t *testing.T) {
	dir := t.TempDir()
	c := newCloud(t, dir)
	ctx := context.Background()
	c.group(t, "g", "s")
	now := c.Clock.Now()
	c.put(t, "g", "s", now.Add(-36*time.Hour), "day-and-a-half")
	c.put(t, "g", "s", now.Add(-time.Hour), "hour")
	if err := c.svc.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := logs.New(c.Env(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Close() })
	c.Server.Register("logs", again)
	out, err := c.client.GetLogEvents(ctx, &awslogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")})
	if err != nil || messages(out.Events) != "day-and-a-half,hour" {
		t.Fatalf("after a restart: %+v %v", out, err)
	}
	// A retention of one day deletes the older event, and later ones as they age.
	if _, err := c.client.PutRetentionPolicy(ctx, &awslogs.PutRetentionPolicyInput{LogGroupName: aws.String("g"), RetentionInDays: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if out, err = c.client.GetLogEvents(ctx, &awslogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")}); err != nil || messages(out.Events) != "hour" {
		t.Fatalf("with a one-day retention: %+v %v", out, err)
	}
	put, err := c.client.PutLogEvents(ctx, &awslogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s"),
		LogEvents: []types.InputLogEvent{{Timestamp: aws.Int64(now.Add(-30 * time.Hour).UnixMilli()), Message: aws.String("expired")}}})
	if err != nil || put.RejectedLogEventsInfo == nil || aws.ToInt32(put.RejectedLogEventsInfo.ExpiredLogEventEndIndex) != 1 {
		t.Fatalf("an event older than the retention: %+v %v", put, err)
	}
	c.Clock.Advance(23*time.Hour + 30*time.Minute) // the server accepts requests signed up to a day earlier
	if out, err = c.client.GetLogEvents(ctx, &awslogs.GetLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("s")}); err != nil || len(out.Events) != 0 {
		t.Fatalf("once the last event is over a day old: %+v %v", out, err)
	}
}

// TestLogsAuthorization is a broker's instance role allowed to write only to its cluster's
// group, as the provider scopes it.
func TestLogsAuthorization(t *testing.T) {
	c := newCloud(t, "")
	ctx := context.Background()
	c.group(t, "tributary/c1")
	c.group(t, "tributary/c2", "broker-1")
	root := awsiam.NewFromConfig(c.Root())
	role := awsapitest.CreateRole(t, root, "broker", awsapitest.TrustAccount)
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents","logs:DescribeLogStreams"],
	  "Resource":"arn:aws:logs:us-east-1:000000000000:log-group:tributary/c1:*"}]}`
	if _, err := root.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: role.RoleName, PolicyName: aws.String("logs"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	cred, err := c.Server.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Arn), aws.ToString(role.RoleId), "i-1"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	broker := awslogs.NewFromConfig(c.Config(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken))
	event := []types.InputLogEvent{{Timestamp: aws.Int64(c.Clock.Now().UnixMilli()), Message: aws.String("hello")}}
	if _, err := broker.CreateLogStream(ctx, &awslogs.CreateLogStreamInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String("broker-1")}); err != nil {
		t.Fatalf("creating its own stream: %v", err)
	}
	if _, err := broker.PutLogEvents(ctx, &awslogs.PutLogEventsInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String("broker-1"), LogEvents: event}); err != nil {
		t.Fatalf("writing its own stream: %v", err)
	}
	if _, err := broker.DescribeLogStreams(ctx, &awslogs.DescribeLogStreamsInput{LogGroupName: aws.String("tributary/c1")}); err != nil {
		t.Fatalf("describing its group's streams (the log-group:<name>:* form grants it): %v", err)
	}
	refused := []struct {
		name string
		call func() error
	}{
		{"another cluster's group", func() error {
			_, err := broker.PutLogEvents(ctx, &awslogs.PutLogEventsInput{LogGroupName: aws.String("tributary/c2"), LogStreamName: aws.String("broker-1"), LogEvents: event})
			return err
		}},
		{"reading back", func() error {
			_, err := broker.GetLogEvents(ctx, &awslogs.GetLogEventsInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String("broker-1")})
			return err
		}},
		{"deleting the group", func() error {
			_, err := broker.DeleteLogGroup(ctx, &awslogs.DeleteLogGroupInput{LogGroupName: aws.String("tributary/c1")})
			return err
		}},
		{"creating a group", func() error {
			_, err := broker.CreateLogGroup(ctx, &awslogs.CreateLogGroupInput{LogGroupName: aws.String("mine")})
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" || !strings.Contains(err.Error(), "logs:") {
				t.Fatalf("%v, want AccessDeniedException", err)
			}
		})
	}
	got, err := c.client.GetLogEvents(ctx, &awslogs.GetLogEventsInput{LogGroupName: aws.String("tributary/c1"), LogStreamName: aws.String("broker-1")})
	if err != nil || messages(got.Events) != "hello" {
		t.Fatalf("what the broker wrote: %+v %v", got, err)
	}
}
