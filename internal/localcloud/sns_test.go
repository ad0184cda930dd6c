package localcloud_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// notifications is an HTTP SNS subscriber on loopback.
type notifications struct {
	mu   sync.Mutex
	got  []map[string]string
	srv  *httptest.Server
	kind []string
}

func newSubscriber(t *testing.T) *notifications {
	t.Helper()
	n := &notifications{}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("SNS posted %q: %v", b, err)
			return
		}
		n.mu.Lock()
		n.got = append(n.got, m)
		n.kind = append(n.kind, r.Header.Get("x-amz-sns-message-type"))
		n.mu.Unlock()
	}))
	t.Cleanup(n.srv.Close)
	return n
}

// wait returns the first notification for which match holds.
func (n *notifications) wait(t *testing.T, what string, match func(map[string]string) bool) map[string]string {
	t.Helper()
	var found map[string]string
	eventually(t, what, 30*time.Second, func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, m := range n.got {
			if match(m) {
				found = m
				return nil
			}
		}
		return errString("not yet delivered")
	})
	return found
}

type errString string

func (e errString) Error() string { return string(e) }

// TestSNSAndAlarmActions: topics and HTTP subscriptions through the SDK and
// Debian's aws CLI; Publish delivers to the subscriber; a CloudWatch alarm
// whose metric crosses its threshold goes to ALARM and notifies its topic,
// and back to OK with its OK action.
func TestSNSAndAlarmActions(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := sns.NewFromConfig(sdkConfig(c))
	sub := newSubscriber(t)

	topic, err := client.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("kafka-oncall")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(topic.TopicArn)
	if arn != "arn:aws:sns:us-east-1:000000000000:kafka-oncall" {
		t.Fatalf("topic ARN %s", arn)
	}
	again, err := client.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("kafka-oncall")})
	if err != nil || aws.ToString(again.TopicArn) != arn {
		t.Fatalf("CreateTopic twice: %v %v, want the same topic", again, err)
	}
	if _, err := client.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("http"), Endpoint: aws.String(sub.srv.URL)}); err != nil {
		t.Fatal(err)
	}
	_, err = client.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(arn + "-missing"), Protocol: aws.String("http"), Endpoint: aws.String(sub.srv.URL)})
	wantCode(t, err, "NotFound")
	_, err = client.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String("arn:aws:sqs:us-east-1:000000000000:q")})
	wantCode(t, err, "InvalidParameter")

	// The CLI (awsQuery through botocore) sees the same topic and publishes.
	out, err := awsCLI(t, c.Endpoint(), "sns", "list-topics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), arn) {
		t.Fatalf("aws sns list-topics: %s", out)
	}
	if _, err := awsCLI(t, c.Endpoint(), "sns", "publish", "--topic-arn", arn, "--subject", "hello", "--message", "from the CLI"); err != nil {
		t.Fatal(err)
	}
	m := sub.wait(t, "the CLI's message", func(m map[string]string) bool { return m["Message"] == "from the CLI" })
	if m["Type"] != "Notification" || m["Subject"] != "hello" || m["TopicArn"] != arn || m["MessageId"] == "" {
		t.Errorf("notification %v", m)
	}

	// An alarm on a metric, notifying the topic on ALARM and OK.
	cw := cloudwatch.NewFromConfig(sdkConfig(c))
	dims := []cwtypes.Dimension{{Name: aws.String("Cluster Name"), Value: aws.String("orders")}}
	if _, err := cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{
		AlarmName: aws.String("orders-offline-partitions"), Namespace: aws.String("Tributary/Kafka"), MetricName: aws.String("OfflinePartitionsCount"),
		Dimensions: dims, Statistic: cwtypes.StatisticMaximum, Period: aws.Int32(60), EvaluationPeriods: aws.Int32(1),
		Threshold: aws.Float64(0), ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold,
		AlarmActions: []string{arn}, OKActions: []string{arn}, ActionsEnabled: aws.Bool(true),
		// The one data point falls out of the evaluated minute when the
		// clock passes a minute boundary; "ignore" keeps the alarm in
		// ALARM then, so the describe below does not race the clock.
		TreatMissingData: aws.String("ignore"),
	}); err != nil {
		t.Fatal(err)
	}
	put := func(v float64) {
		t.Helper()
		// In the last complete minute, the one the alarm evaluates, and
		// in this one, which it evaluates once the clock passes the next
		// minute boundary (the first evaluation can come that late on a
		// loaded machine: with one point it then found none, and stayed
		// in INSUFFICIENT_DATA).
		now := time.Now()
		if _, err := cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("Tributary/Kafka"), MetricData: []cwtypes.MetricDatum{
			{MetricName: aws.String("OfflinePartitionsCount"), Dimensions: dims, Value: aws.Float64(v), Timestamp: aws.Time(now.Add(-time.Minute))},
			{MetricName: aws.String("OfflinePartitionsCount"), Dimensions: dims, Value: aws.Float64(v), Timestamp: aws.Time(now)}}}); err != nil {
			t.Fatal(err)
		}
	}
	put(3)
	// No DescribeAlarms: the local cloud evaluates alarms by itself.
	alarm := sub.wait(t, "the ALARM notification", func(m map[string]string) bool {
		return strings.HasPrefix(m["Subject"], `ALARM: "orders-offline-partitions"`)
	})
	var body struct {
		AlarmName, NewStateValue, OldStateValue, NewStateReason string
		Trigger                                                 struct{ MetricName string }
	}
	if err := json.Unmarshal([]byte(alarm["Message"]), &body); err != nil {
		t.Fatal(err)
	}
	if body.NewStateValue != "ALARM" || body.OldStateValue != "INSUFFICIENT_DATA" || body.Trigger.MetricName != "OfflinePartitionsCount" || !strings.Contains(body.NewStateReason, "[3]") {
		t.Errorf("alarm notification %+v", body)
	}
	cliOut, err := awsCLI(t, c.Endpoint(), "cloudwatch", "describe-alarms", "--alarm-names", "orders-offline-partitions", "--state-value", "ALARM")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cliOut), `"StateValue": "ALARM"`) {
		t.Errorf("aws cloudwatch describe-alarms: %s", cliOut)
	}

	// SetAlarmState runs the actions of the state it sets, as in CloudWatch.
	if _, err := cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("orders-offline-partitions"),
		StateValue: cwtypes.StateValueOk, StateReason: aws.String("testing the OK action")}); err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "the OK notification", func(m map[string]string) bool {
		return strings.HasPrefix(m["Subject"], `OK: "orders-offline-partitions"`)
	})
}

// TestSNSRefusesWithoutPermission: a user allowed to publish to one topic
// only is refused another topic and topic creation.
func TestSNSRefusesWithoutPermission(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	root := iam.NewFromConfig(sdkConfig(c))
	admin := sns.NewFromConfig(sdkConfig(c))
	for _, name := range []string{"allowed", "other"} {
		if _, err := admin.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("app"), PolicyName: aws.String("p"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sns:Publish","Resource":"arn:aws:sns:us-east-1:000000000000:allowed"}]}`)}); err != nil {
		t.Fatal(err)
	}
	key, err := root.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sdkConfig(c)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), "")
	app := sns.NewFromConfig(cfg)
	if _, err := app.Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:aws:sns:us-east-1:000000000000:allowed"), Message: aws.String("ok")}); err != nil {
		t.Fatalf("publishing where allowed: %v", err)
	}
	_, err = app.Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:aws:sns:us-east-1:000000000000:other"), Message: aws.String("no")})
	wantCode(t, err, "AccessDenied")
	_, err = app.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("mine")})
	wantCode(t, err, "AccessDenied")
}
