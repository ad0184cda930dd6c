package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tributary/tributary/broker/boot/bootstatus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthEndpoints(t *testing.T) {
	statusFile := filepath.Join(t.TempDir(), bootstatus.FileName)
	r, _ := newTestRegistry(t)
	srv := httptest.NewServer(r.Handler(statusFile))
	t.Cleanup(srv.Close)
	noAgent := httptest.NewServer(r.Handler(""))
	t.Cleanup(noAgent.Close)

	var readyErr error
	steps := []struct {
		name     string
		setup    func(t *testing.T)
		url      string
		wantCode int
		wantBody string
	}{
		{"healthz", nil, srv.URL + "/healthz", 200, "ok"},
		{"readyz before a check is registered", nil, srv.URL + "/readyz", 503, "starting"},
		{"readyz ready", func(*testing.T) {
			r.SetReady(func() error { return readyErr })
		}, srv.URL + "/readyz", 200, "ready"},
		{"readyz not ready", func(*testing.T) { readyErr = errors.New("recovering the log") }, srv.URL + "/readyz", 503, "recovering the log"},
		{"bootz without the agent", nil, noAgent.URL + "/bootz", 404, "not started by the boot agent"},
		{"bootz before the file exists", nil, srv.URL + "/bootz", 404, "no boot status"},
		{"bootz while booting", func(t *testing.T) {
			rec := &bootstatus.Recorder{Path: statusFile}
			if err := rec.Start(bootstatus.StepVolume); err != nil {
				t.Fatal(err)
			}
		}, srv.URL + "/bootz", 503, `"step": "volume"`},
		{"bootz after the boot", func(t *testing.T) {
			rec := &bootstatus.Recorder{Path: statusFile}
			if err := rec.Start(bootstatus.StepExec); err != nil {
				t.Fatal(err)
			}
			if err := rec.Done("exec tributary-broker run"); err != nil {
				t.Fatal(err)
			}
		}, srv.URL + "/bootz", 200, `"state": "done"`},
		{"metrics", nil, srv.URL + "/metrics", 200, "tributary_broker_info"},
		{"unknown path", nil, srv.URL + "/nope", 404, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setup != nil {
				s.setup(t)
			}
			code, body := get(t, s.url)
			if code != s.wantCode || !strings.Contains(body, s.wantBody) {
				t.Errorf("GET %s = %d %q, want %d containing %q", s.url, code, body, s.wantCode, s.wantBody)
			}
		})
	}
}

// scrape fetches /metrics in the text format and parses it.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return fams
}

// value finds a series' value by its labels; ok is false when absent.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestPrometheusExposition scrapes after recorded activity: the output
// parses and holds the expected series with the expected values.
func TestPrometheusExposition(t *testing.T) {
	r, _, _ := busyRegistry(t)
	fake := &fakeCloudWatch{}
	sh := newTestShipper(t, r, fake, quietLogger())
	if err := sh.Ship(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler(""))
	t.Cleanup(srv.Close)
	fams := scrape(t, srv.URL)

	want := []struct {
		name   string
		labels map[string]string
		v      float64
	}{
		{"tributary_broker_info", map[string]string{"cluster_name": "orders", "broker_id": "2"}, 1},
		{"tributary_bytes_in_total", map[string]string{"topic": "orders"}, 7000},
		{"tributary_bytes_in_total", map[string]string{"topic": "audit"}, 600},
		{"tributary_bytes_out_total", map[string]string{"topic": "orders"}, 12000},
		{"tributary_messages_in_total", map[string]string{"topic": "orders"}, 130},
		{"tributary_request_duration_seconds", map[string]string{"kind": "produce"}, 2},
		{"tributary_request_duration_seconds", map[string]string{"kind": "fetch_consumer"}, 1},
		{"tributary_request_duration_seconds", map[string]string{"kind": "fetch_follower"}, 0},
		{"tributary_request_size_bytes", nil, 3},
		{"tributary_log_flush_duration_seconds", nil, 2},
		{"tributary_log_flush_files_total", nil, 3},
		{"tributary_follower_fetch_duration_seconds", map[string]string{"phase": "request"}, 1},
		{"tributary_follower_fetch_duration_seconds", map[string]string{"phase": "durable"}, 1},
		{"tributary_replication_bytes_in_total", nil, 2048},
		{"tributary_connections", nil, 2},
		{"tributary_connections_created_total", nil, 3},
		{"tributary_partitions", nil, 4},
		{"tributary_leader_partitions", nil, 3},
		{"tributary_under_replicated_partitions", nil, 2},
		{"tributary_under_min_isr_partitions", nil, 1},
		{"tributary_active_controller", nil, 1},
		{"tributary_global_partitions", nil, 4},
		{"tributary_host_cpu_seconds_total", map[string]string{"mode": "user"}, 1.5},
		{"tributary_host_memory_bytes", map[string]string{"kind": "used"}, 3000000 * 1024},
		{"tributary_host_network_receive_total", map[string]string{"kind": "packets"}, 1010},
		{"tributary_consumer_group_offset_lag", map[string]string{"group": "billing", "topic": "orders", "partition": "0"}, 600},
		{"tributary_consumer_group_sum_offset_lag", map[string]string{"group": "billing", "topic": "orders"}, 610},
		{"tributary_consumer_group_max_offset_lag", map[string]string{"group": "billing", "topic": "orders"}, 600},
		{"tributary_cloudwatch_puts_total", nil, 1},
		{"tributary_produce_message_conversions_total", nil, 0},
		{"tributary_replication_throttled_bytes_per_second", map[string]string{"side": "leader"}, 1000},
		{"tributary_replication_throttled_bytes_per_second", map[string]string{"side": "follower"}, 0},
		{"tributary_replication_throttle_limit_bytes_per_second", map[string]string{"side": "leader"}, 2048},
		{"tributary_log_pending_deletion_bytes", nil, 3 << 20},
		{"tributary_log_pending_deletion_segments", nil, 2},
		{"tributary_raft_store_reserve_bytes", nil, 12 << 20},
		{"tributary_raft_store_on_reserve", nil, 1},
		{"tributary_raft_store_log_stopped", nil, 1},
		{"tributary_fetch_memory_bytes", nil, 3 << 20},
		{"tributary_fetch_memory_limit_bytes", nil, 64 << 20},
		{"tributary_fetch_memory_cut_total", nil, 5},
		{"tributary_fetch_memory_leaked_releases_total", nil, 1},
		{"tributary_peer_refusals_total", map[string]string{"listener": "controller", "reason": "node_mismatch"}, 7},
		{"tributary_peer_refusals_total", map[string]string{"listener": "controller", "reason": "controller_duty"}, 0},
		{"tributary_peer_refusals_total", map[string]string{"listener": "controller", "reason": "raft_rpc"}, 3},
		{"tributary_peer_refusals_total", map[string]string{"listener": "replication", "reason": "node_mismatch"}, 2},
		{"tributary_peer_unbound_connections_total", map[string]string{"listener": "controller"}, 4},
		{"tributary_peer_unbound_connections_total", map[string]string{"listener": "replication"}, 1},
	}
	for _, w := range want {
		v, ok := value(fams, w.name, w.labels)
		if !ok || v != w.v {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, v, ok, w.v)
		}
	}
	if v, ok := value(fams, "tributary_replication_throttle_limit_bytes_per_second", map[string]string{"side": "follower"}); ok {
		t.Errorf("a follower throttle limit of %v is reported, and none is set", v)
	}
	for _, name := range []string{"tributary_data_disk_used_ratio", "tributary_root_disk_used_ratio", "tributary_data_disk_size_bytes", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	for _, name := range []string{"tributary_peer_refusals_total", "tributary_peer_unbound_connections_total"} {
		if typ := fams[name].GetType(); typ != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v, want a counter", name, typ)
		}
	}
	h := fams["tributary_request_duration_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("request duration is a %v", h.GetType())
	}
	for _, m := range h.Metric {
		var kind string
		for _, l := range m.Label {
			kind = l.GetValue()
		}
		if kind == "fetch_consumer" && (m.Histogram.GetSampleSum() != 0.5 || len(m.Histogram.Bucket) != len(latencyBuckets)+1) { // +Inf too
			t.Errorf("fetch histogram sum %v buckets %d", m.Histogram.GetSampleSum(), len(m.Histogram.Bucket))
		}
	}
}

func TestListenHTTP(t *testing.T) {
	r, _ := newTestRegistry(t)
	hs, err := ListenHTTP("127.0.0.1:0", r.Handler(""), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + hs.Addr().String()
	if code, _ := get(t, url+"/healthz"); code != 200 {
		t.Errorf("healthz %d", code)
	}
	if _, err := ListenHTTP(hs.Addr().String(), r.Handler(""), quietLogger()); err == nil {
		t.Error("a second listener on a port in use started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
}

// TestScrapeSurvivesBadLabelValues: a group id that is not valid UTF-8
// cannot be a Prometheus label value; the scrape still answers, without
// that series, instead of panicking.
func TestScrapeSurvivesBadLabelValues(t *testing.T) {
	r, _ := newTestRegistry(t)
	r.SetLagSource(func() []GroupLag {
		return []GroupLag{
			{Group: "bad\xff", Partitions: []PartitionLag{{Topic: "t", Lag: 1}}},
			{Group: "fine", Partitions: []PartitionLag{{Topic: "t", Lag: 7}}},
		}
	})
	srv := httptest.NewServer(r.Handler(""))
	t.Cleanup(srv.Close)
	fams := scrape(t, srv.URL)
	if v, ok := value(fams, "tributary_consumer_group_offset_lag", map[string]string{"group": "fine"}); !ok || v != 7 {
		t.Errorf("lag of fine = %v (present %v)", v, ok)
	}
	if n := len(fams["tributary_consumer_group_offset_lag"].GetMetric()); n != 1 {
		t.Errorf("%d lag series, want 1", n)
	}
}

// A broker whose Raft store keeps no reserve (a file system without
// fallocate, or none configured) reports no reserve, not a reserve of 0,
// which would read as one used up.
func TestRaftStoreReserveAbsentWhenNoneIsKept(t *testing.T) {
	r, _ := newTestRegistry(t)
	r.SetStateSource(func() BrokerState {
		return BrokerState{RaftStoreReserveBytes: 5, RaftStoreOnReserve: true, RaftStoreLogStopped: true}
	})
	srv := httptest.NewServer(r.Handler(""))
	t.Cleanup(srv.Close)
	fams := scrape(t, srv.URL)
	for _, name := range []string{"tributary_raft_store_reserve_bytes", "tributary_raft_store_on_reserve", "tributary_raft_store_log_stopped"} {
		if v, ok := value(fams, name, nil); ok {
			t.Errorf("%s = %v, and the store keeps no reserve", name, v)
		}
	}
}

// TestCollectorDescribesEveryMetric: every metric the collector emits from
// a busy registry has its descriptor in Describe (allDescs), as a pedantic
// client_golang registry demands; descConnRefused and descTraffic were
// each left out once.
func TestCollectorDescribesEveryMetric(t *testing.T) {
	r, _, _ := busyRegistry(t)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(collector{r}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("a pedantic registry refuses what the collector emits: %v", err)
	}
}
