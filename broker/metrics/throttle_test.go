package metrics

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/tributary/tributary/internal/localcloud"
)

// TestThrottleValues pins the arithmetic: a mean over the interval's
// throttled responses, bytes per second, the throttles still running.
func TestThrottleValues(t *testing.T) {
	r, clock := newTestRegistry(t)
	var dropped int64 = 5
	r.SetLogDroppedSource(func() int64 { return dropped })
	prev := r.Snapshot()
	r.RecordQuotaBytes(ThrottleProduce, 3000)
	r.RecordQuotaBytes(ThrottleProduce, 3000)
	r.RecordThrottle(ThrottleProduce, 100*time.Millisecond)
	r.RecordThrottle(ThrottleProduce, 300*time.Millisecond)
	r.RecordThrottle(ThrottleProduce, 0) // within the quota: not a throttle
	r.RecordThrottle(ThrottleRequest, 2*time.Minute)
	r.RecordExemptRequest(2 * time.Millisecond)
	r.RecordExemptRequest(4 * time.Millisecond)
	dropped = 12
	clock.advance(time.Minute)
	cur := r.Snapshot()

	got := byKey(t, CloudWatchData(prev, cur, LevelPerBroker, "orders", 2))
	b := "{Cluster Name=orders,Broker ID=2}"
	for name, want := range map[string]float64{
		"ProduceThrottleTime":           200,
		"ProduceThrottleByteRate":       100,
		"ProduceThrottleQueueSize":      0, // both ended within the minute
		"FetchThrottleTime":             0,
		"FetchThrottleByteRate":         0,
		"FetchThrottleQueueSize":        0,
		"RequestThrottleTime":           120000,
		"RequestThrottleQueueSize":      1, // two minutes: still running
		"RequestExemptFromThrottleTime": 3,
		"LogLinesDropped":               7,
	} {
		d, ok := got[name+b]
		if !ok {
			t.Errorf("%s%s not shipped", name, b)
			continue
		}
		if v := aws.ToFloat64(d.Value); math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if _, ok := got["RequestThrottleByteRate"+b]; ok {
		t.Error("RequestThrottleByteRate shipped: request_percentage is not a byte rate")
	}

	// DEFAULT ships the log drops but none of the PER_BROKER quota metrics.
	def := byKey(t, CloudWatchData(prev, cur, LevelDefault, "orders", 2))
	if _, ok := def["LogLinesDropped"+b]; !ok {
		t.Error("LogLinesDropped missing at DEFAULT")
	}
	for k := range def {
		for _, name := range []string{"ProduceThrottleTime", "FetchThrottleTime", "RequestThrottleTime", "RequestExemptFromThrottleTime"} {
			if k == name+b {
				t.Errorf("%s shipped at DEFAULT", k)
			}
		}
	}
	// Without log shipping there is no LogLinesDropped at all.
	r.SetLogDroppedSource(nil)
	s := r.Snapshot()
	if _, ok := byKey(t, CloudWatchData(s, s, LevelPerBroker, "orders", 2))["LogLinesDropped"+b]; ok {
		t.Error("LogLinesDropped shipped by a broker that ships no logs")
	}
}

// TestPerBrokerQuotaMetricsInLocalCloud ships a broker's metrics at
// DEFAULT and at PER_BROKER to the local cloud's CloudWatch and reads them
// back with GetMetricData: the quota metrics under MSK's names and
// dimensions only at PER_BROKER, LogLinesDropped at both.
func TestPerBrokerQuotaMetricsInLocalCloud(t *testing.T) {
	c := startLocalCloud(t)
	ctx := context.Background()
	client, err := NewCloudWatchClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cw := cloudwatch.NewFromConfig(aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, "")})
	names := []string{"ProduceThrottleTime", "ProduceThrottleByteRate", "ProduceThrottleQueueSize", "FetchThrottleTime",
		"FetchThrottleByteRate", "FetchThrottleQueueSize", "RequestThrottleTime", "RequestThrottleQueueSize",
		"RequestExemptFromThrottleTime", "LogLinesDropped"}
	for _, tt := range []struct {
		level     Level
		namespace string
		perBroker bool
	}{
		{LevelDefault, "Tributary/Default", false},
		{LevelPerBroker, "Tributary/PerBroker", true},
	} {
		r := New(Options{ClusterName: "orders-prod", BrokerID: 3, DataDir: t.TempDir(), Logger: quietLogger()})
		r.SetLogDroppedSource(func() int64 { return 9 })
		sh, err := NewShipper(ShipperOptions{Registry: r, Client: client, Namespace: tt.namespace, Level: tt.level, Interval: time.Minute, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		r.RecordQuotaBytes(ThrottleFetch, 1<<20)
		r.RecordThrottle(ThrottleFetch, 250*time.Millisecond)
		r.RecordExemptRequest(time.Millisecond)
		time.Sleep(20 * time.Millisecond) // a measurable interval for the rates
		if err := sh.Ship(ctx); err != nil {
			t.Fatalf("Ship: %v", err)
		}
		var queries []types.MetricDataQuery
		for i, name := range names {
			queries = append(queries, types.MetricDataQuery{Id: aws.String("m" + string(rune('a'+i))), Label: aws.String(name), MetricStat: &types.MetricStat{
				Metric: &types.Metric{Namespace: aws.String(tt.namespace), MetricName: aws.String(name),
					Dimensions: dims(nil, DimClusterName, "orders-prod", DimBrokerID, "3")},
				Period: aws.Int32(60), Stat: aws.String("Maximum"),
			}})
		}
		now := time.Now()
		out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(now.Add(-10 * time.Minute)), EndTime: aws.Time(now.Add(time.Minute)), MetricDataQueries: queries,
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]float64{}
		for _, res := range out.MetricDataResults {
			got[aws.ToString(res.Label)] = res.Values
		}
		for _, name := range names {
			v := got[name]
			switch {
			case name == "LogLinesDropped" || tt.perBroker:
				if len(v) != 1 {
					t.Errorf("%s: %s{Cluster Name, Broker ID} read back %v, want one value", tt.level, name, v)
				}
			case len(v) != 0:
				t.Errorf("%s: %s read back %v, want nothing below PER_BROKER", tt.level, name, v)
			}
		}
		if tt.perBroker {
			if v := got["FetchThrottleTime"]; len(v) == 1 && v[0] != 250 {
				t.Errorf("FetchThrottleTime read back %v, want [250]", v)
			}
			if v := got["FetchThrottleByteRate"]; len(v) == 1 && v[0] <= 0 {
				t.Errorf("FetchThrottleByteRate read back %v, want a positive rate", v)
			}
		}
	}
}
