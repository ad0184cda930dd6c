package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/server"
)

// TestBrokerMetricsEndToEnd runs the real protocol server with a registry
// (as the run command wires it), produces and consumes with franz-go, and
// checks what /metrics and the CloudWatch data report.
func TestBrokerMetricsEndToEnd(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cfg.GroupInitialRebalanceDelay = 0
	reg := metrics.New(metrics.Options{ClusterName: "e2e", BrokerID: cfg.NodeID, DataDir: cfg.DataDir, Logger: log})
	web := httptest.NewServer(reg.Handler(""))
	t.Cleanup(web.Close)
	if code := status(t, web.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the server exists: %d", code)
	}

	srv, err := server.New(context.Background(), server.Options{Config: cfg, Logger: log, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if code := status(t, web.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Serve: %d", code)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	waitStatus(t, web.URL+"/readyz", http.StatusOK)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := srv.Addr().String()
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if _, err := kadm.NewClient(producer).CreateTopic(ctx, 2, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	produce := func(n int) {
		for i := range n {
			r := &kgo.Record{Topic: "events", Value: []byte("value-" + strconv.Itoa(i))}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(100)

	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("events"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 100; {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	consumer.Close() // leaves the group: Empty, whose lag MSK reports
	produce(20)

	fams := scrapeFamilies(t, web.URL)
	checks := []struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
		want   string
	}{
		{"tributary_messages_in_total", map[string]string{"topic": "events"}, eq(120), "120"},
		{"tributary_bytes_in_total", map[string]string{"topic": "events"}, gt(120 * 7), "> record values"},
		{"tributary_bytes_out_total", map[string]string{"topic": "events"}, gt(100 * 7), "> consumed values"},
		{"tributary_consumer_group_sum_offset_lag", map[string]string{"group": "billing", "topic": "events"}, eq(20), "20"},
		{"tributary_partitions", nil, eq(3), "3 (events and __consumer_offsets)"},
		{"tributary_leader_partitions", nil, eq(3), "3"},
		{"tributary_global_topics", nil, eq(2), "2"},
		{"tributary_active_controller", nil, eq(1), "1"},
		{"tributary_connections", nil, gt(0), "> 0 (the producer is connected)"},
		{"tributary_connections_created_total", nil, gt(1), "> 1"},
		{"tributary_request_duration_seconds", map[string]string{"kind": "produce"}, gt(0), "> 0 produce requests"},
		{"tributary_request_duration_seconds", map[string]string{"kind": "fetch_consumer"}, gt(0), "> 0 fetches"},
		{"tributary_request_size_bytes", nil, gt(0), "> 0 requests"},
	}
	for _, c := range checks {
		v, ok := familyValue(fams, c.name, c.labels)
		if !ok || !c.ok(v) {
			t.Errorf("%s%v = %v (present %v), want %s", c.name, c.labels, v, ok, c.want)
		}
	}

	// The same figures as CloudWatch data, MSK-named.
	prev := reg.Snapshot()
	produce(5)
	data := metrics.CloudWatchData(prev, reg.Snapshot(), metrics.LevelPerTopicPerPartition, reg.ClusterName(), reg.BrokerID())
	found := map[string]float64{}
	for _, d := range data {
		key := *d.MetricName
		for _, dim := range d.Dimensions {
			key += "|" + *dim.Name + "=" + *dim.Value
		}
		found[key] = *d.Value
	}
	for key, want := range map[string]float64{
		"SumOffsetLag|Cluster Name=e2e|Consumer Group=billing|Topic=events": 25,
		"PartitionCount|Cluster Name=e2e|Broker ID=1":                       3,
		"GlobalTopicCount|Cluster Name=e2e":                                 2,
	} {
		if got, ok := found[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if v := found["MessagesInPerSec|Cluster Name=e2e|Broker ID=1|Topic=events"]; v <= 0 {
		t.Errorf("MessagesInPerSec for events = %v after 5 records", v)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func gt(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for status(t, url) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", url, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func scrapeFamilies(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

func familyValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.GetSummary().GetSampleCount()), true
		}
	}
	return 0, false
}
