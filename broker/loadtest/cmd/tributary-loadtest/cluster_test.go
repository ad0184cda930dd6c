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

// The verdicts must follow the figures: a latency measured below the
// offered rate is not a met target, a slowest produce is judged only on a
// run of the target's length, a failover that never ended is not met.
func TestPrintClusterVerdicts(t *testing.T) {
	rate := float64(20 << 20)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	lat := func(p99, maxLat time.Duration) loadtest.Latency {
		return loadtest.Latency{P50: ms(1), P99: p99, P999: p99, Max: maxLat}
	}
	fast := loadtest.ProduceResult{MiBps: 20, Latency: lat(ms(5), ms(40))}
	slowRate := loadtest.ProduceResult{MiBps: 12, Latency: lat(ms(5), ms(40))}
	slowP99 := loadtest.ProduceResult{MiBps: 20, Latency: lat(ms(15), ms(40))}
	stalled := loadtest.ProduceResult{MiBps: 20, Latency: lat(ms(5), 3*time.Second)}
	many := &loadtest.ManyPartitionsResult{Partitions: 5000, ReplicasPerBroker: 5000, RSS: map[int32]int64{1: 200 << 20, 2: 310 << 20},
		Metadata: loadtest.Latency{P50: ms(20), Max: ms(45)}}
	tests := []struct {
		name     string
		duration time.Duration // of the latency phase
		res      clusterResults
		// rows: a row's label and how the row must end (its verdict),
		// cells separated by one space.
		rows map[string]string
	}{
		{
			name: "all met", duration: time.Minute,
			res: clusterResults{full: loadtest.ProduceResult{MiBps: 200}, paced: fast, kfakeFull: loadtest.ProduceResult{MiBps: 100},
				kills: []loadtest.Kill{{Broker: 1, NewLeader: 2, Time: 1900 * time.Millisecond}}},
			rows: map[string]string{"produce throughput": "2.00x >= 1x kfake met", "p50 / p99 / p99.9 / max, at": " met", "slowest produce": " met",
				"failover 1:": " met", "failover max": "1.90 s - < 2s met"},
		},
		{
			name: "throughput below kfake, rate not reached", duration: time.Minute,
			res: clusterResults{full: loadtest.ProduceResult{MiBps: 50}, paced: slowRate, kfakeFull: loadtest.ProduceResult{MiBps: 100}},
			rows: map[string]string{"produce throughput": "0.50x >= 1x kfake not met", "p50 / p99 / p99.9 / max, at": "not met (rate not reached)",
				"slowest produce": "not met (rate not reached)"},
		},
		{
			name: "p99 too high", duration: time.Minute,
			res:  clusterResults{paced: slowP99},
			rows: map[string]string{"p50 / p99 / p99.9 / max, at": "p99 < 10ms not met", "slowest produce": " met"},
		},
		{
			name: "a stall", duration: time.Minute,
			res:  clusterResults{paced: stalled},
			rows: map[string]string{"p50 / p99 / p99.9 / max, at": " met", "slowest produce": "3000 ms 0.00 ms none over 500ms in 1m0s not met"},
		},
		{
			name: "short run: no stall verdict", duration: 10 * time.Second,
			res:  clusterResults{paced: fast},
			rows: map[string]string{"slowest produce": "not judged (10s run)"},
		},
		{
			name: "failover timed out, slower than the target", duration: time.Minute,
			res:  clusterResults{paced: fast, kills: []loadtest.Kill{{Broker: 3, NewLeader: -1}, {Broker: 1, NewLeader: 2, Time: 2100 * time.Millisecond}}},
			rows: map[string]string{"failover 1:": "none in 30s - < 2s not met", "failover 2:": "2.10 s - < 2s not met", "failover max": "> 30s - < 2s not met"},
		},
		{
			name: "many partitions", duration: time.Minute,
			res:  clusterResults{paced: fast, many: many},
			rows: map[string]string{"max broker RSS": "310.0 MiB - < 300 MiB not met", "Metadata": "20.0 / 45.0 ms - < 50ms met"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printCluster(&out, clusterOptions{latencyRate: rate, latencyDuration: tt.duration}, tt.res); err != nil {
				t.Fatal(err)
			}
			for label, end := range tt.rows {
				line := rowWith(out.String(), label)
				if !strings.HasSuffix(line, end) || (strings.HasPrefix(end, " met") && strings.HasSuffix(line, "not met")) {
					t.Errorf("row %q = %q, want it to end with %q", label, line, end)
				}
			}
		})
	}
}

// Without the flat-out phase (-cluster-throughput=false) the table has
// none of its rows, where zeros would read as a cluster that produced
// nothing, and keeps the latency phase's.
func TestPrintClusterWithoutThroughput(t *testing.T) {
	paced := loadtest.ProduceResult{MiBps: 20, Latency: loadtest.Latency{P50: time.Millisecond, P99: 5 * time.Millisecond, Max: 40 * time.Millisecond}}
	var out bytes.Buffer
	o := clusterOptions{latencyRate: 20 << 20, latencyDuration: time.Minute, noThroughput: true}
	if err := printCluster(&out, o, clusterResults{paced: paced, kfakePaced: paced}); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"produce throughput", "CPU s/GiB", "flat out"} {
		if line := rowWith(out.String(), label); line != "" {
			t.Errorf("row %q printed without the flat-out phase: %q", label, line)
		}
	}
	if line := rowWith(out.String(), "p50 / p99 / p99.9 / max, at 20 MiB/s"); !strings.HasSuffix(line, "p99 < 10ms met") {
		t.Errorf("latency row = %q, want it judged", line)
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

// The transactional rows show tributary's figures beside kfake's, and
// only when the phase ran.
func TestPrintClusterTransactions(t *testing.T) {
	res := clusterResults{
		txn:      loadtest.TxnResult{Txns: 120, MiBps: 6, CommitP50: 4 * time.Millisecond, CommitP99: 20 * time.Millisecond, TxnP50: 30 * time.Millisecond, TxnP99: 90 * time.Millisecond},
		kfakeTxn: loadtest.TxnResult{Txns: 400, MiBps: 12, CommitP50: time.Millisecond, CommitP99: 3 * time.Millisecond},
	}
	var out bytes.Buffer
	o := clusterOptions{latencyRate: 20 << 20, latencyDuration: time.Minute, txnRecords: 100, txnProducers: 4, duration: 10 * time.Second}
	if err := printCluster(&out, o, res); err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]string{
		"committed throughput, transactions of 100, 4 producers": "6.0 MiB/s 12.0 MiB/s 0.50x",
		"transactions committed":                                 "120 400",
		"commit latency p50 / p99":                               "4.00 / 20.0 ms 1.00 / 3.00 ms",
		"transaction p50 / p99":                                  "30.0 / 90.0 ms",
	} {
		if line := rowWith(out.String(), label); !strings.Contains(line, want) {
			t.Errorf("row %q = %q, want it to hold %q", label, line, want)
		}
	}
	out.Reset()
	o.txnRecords = 0
	if err := printCluster(&out, o, res); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "transactions") {
		t.Errorf("transactional rows without the phase:\n%s", out.String())
	}
}

// TestSingleTableStatesCodecs: a run with a producer codec or a topic
// compression.type says so in the single-broker table's header, and the
// topics get the compression.type; the default run's header is as before.
func TestSingleTableStatesCodecs(t *testing.T) {
	tests := []struct {
		ct, pc, want string
		configs      bool
	}{
		{"", "none", "", false},
		{"", "", "", false},
		{"zstd", "snappy", ", producer codec snappy, topic compression.type zstd", true},
		{"", "lz4", ", producer codec lz4, topic compression.type not set", false},
		{"gzip", "none", ", producer codec none, topic compression.type gzip", true},
	}
	for _, tt := range tests {
		o := singleOptions{compressionType: tt.ct, producerCodec: tt.pc}
		if got := o.codecs(); got != tt.want {
			t.Errorf("codecs(%q, %q) = %q, want %q", tt.ct, tt.pc, got, tt.want)
		}
		cfg := o.topicConfigs()
		if (cfg != nil) != tt.configs || (cfg != nil && *cfg["compression.type"] != tt.ct) {
			t.Errorf("topicConfigs(%q) = %v", tt.ct, cfg)
		}
	}
}

// Without the single broker's flat-out phases (-single-throughput=false)
// its table has none of their rows, where zeros would read as a broker
// that produced nothing, and keeps the latency phase's.
func TestPrintSingleWithoutThroughput(t *testing.T) {
	paced := loadtest.ProduceResult{MiBps: 20, Records: 20480, Latency: loadtest.Latency{P50: time.Millisecond, P99: 5 * time.Millisecond, Max: 40 * time.Millisecond}}
	var out bytes.Buffer
	o := singleOptions{partitions: 16, cores: 2, latencyRate: 20 << 20, noThroughput: true}
	if err := printSingle(&out, o, singleResults{tribPaced: paced, kfakePaced: paced}); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"produce throughput", "consume throughput", "CPU s/GiB", "flat out", "RSS after the throughput runs"} {
		if line := rowWith(out.String(), label); line != "" {
			t.Errorf("row %q printed without the flat-out phases: %q", label, line)
		}
	}
	if line := rowWith(out.String(), "p50 / p99 / p99.9 / max, at 20 MiB/s"); !strings.Contains(line, "1.00 / 5.00") {
		t.Errorf("latency row = %q, want the paced phase's figures", line)
	}
}
