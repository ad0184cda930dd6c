package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/loadtest"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "20MiB", want: 20 << 20},
		{in: "20MiB/s", want: 20 << 20},
		{in: "512KiB", want: 512 << 10},
		{in: "0", wantErr: true},
		{in: "fast", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseRate(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSettingsFlag(t *testing.T) {
	f := settingsFlag{}
	if err := f.Set("log.flush.policy = interval"); err != nil {
		t.Fatal(err)
	}
	if f["log.flush.policy"] != "interval" {
		t.Errorf("got %v", f)
	}
	if err := f.Set("novalue"); err == nil {
		t.Error("accepted a setting without =")
	}
}

// The verdicts must follow the figures: a p99 measured below the offered
// rate is not a met target, and a failover that never ended is not met.
func TestPrintClusterVerdicts(t *testing.T) {
	rate := float64(20 << 20)
	fast := loadtest.ProduceResult{MBps: 20, P50: time.Millisecond, P99: 5 * time.Millisecond}
	slowRate := loadtest.ProduceResult{MBps: 12, P50: time.Millisecond, P99: 5 * time.Millisecond}
	slowP99 := loadtest.ProduceResult{MBps: 20, P50: time.Millisecond, P99: 15 * time.Millisecond}
	tests := []struct {
		name string
		res  clusterResults
		// rows: a row's label and how the row must end (its verdict),
		// cells separated by one space.
		rows map[string]string
	}{
		{
			name: "all met",
			res: clusterResults{full: loadtest.ProduceResult{MBps: 200}, paced: fast, kfakeFull: loadtest.ProduceResult{MBps: 100},
				kills: []loadtest.Kill{{Broker: 1, NewLeader: 2, Time: 2 * time.Second}}},
			rows: map[string]string{"produce throughput": " met", "latency p99 at 20 MB/s": " met", "failover 1:": " met", "failover max": "2.00 s - < 3s met"},
		},
		{
			name: "throughput below kfake, rate not reached",
			res:  clusterResults{full: loadtest.ProduceResult{MBps: 50}, paced: slowRate, kfakeFull: loadtest.ProduceResult{MBps: 100}},
			rows: map[string]string{"produce throughput": "not met", "latency p99 at 20 MB/s": "not met (rate not reached)"},
		},
		{
			name: "p99 too high",
			res:  clusterResults{paced: slowP99},
			rows: map[string]string{"latency p99 at 20 MB/s": "15.00 ms 0.00 ms < 10ms not met"},
		},
		{
			name: "failover timed out",
			res:  clusterResults{paced: fast, kills: []loadtest.Kill{{Broker: 3, NewLeader: -1}, {Broker: 1, NewLeader: 2, Time: time.Second}}},
			rows: map[string]string{"failover 1:": "none in 30s - < 3s not met", "failover 2:": " met", "failover max": "> 30s - < 3s not met"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printCluster(&out, clusterOptions{latencyRate: rate}, tt.res); err != nil {
				t.Fatal(err)
			}
			for label, end := range tt.rows {
				line := rowWith(out.String(), label)
				if !strings.HasSuffix(line, end) || (end == " met" && strings.HasSuffix(line, "not met")) {
					t.Errorf("row %q = %q, want it to end with %q", label, line, end)
				}
			}
		})
	}
}

// rowWith returns the table row holding label, its cells separated by
// one space.
func rowWith(table, label string) string {
	for line := range strings.Lines(table) {
		if strings.Contains(line, label) {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}
