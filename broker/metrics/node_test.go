package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// writeProcTree lays out a /proc with the files the host collectors read.
func writeProcTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestNodeHandlerNames(t *testing.T) {
	dir := t.TempDir()
	proc := writeProcTree(t, map[string]string{
		"stat": "cpu  300 0 100 600 0 0 0 0 0 0\ncpu0 200 0 50 300 0 0 0 0 0 0\ncpu1 100 0 50 300 7 0 0 0 0 0\nintr 1\nbtime 1700000000\n",
		"meminfo": "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    500 kB\nBuffers:          10 kB\nCached:          100 kB\n" +
			"SwapTotal:         0 kB\nSwapFree:          0 kB\nActive(anon):     30 kB\nHugePages_Total:   0\n",
		"loadavg":     "0.50 0.25 0.10 1/100 4242\n",
		"self/mounts": "/dev/root / ext4 rw 0 0\n/dev/nvme1n1 " + dir + " xfs rw 0 0\n",
		"diskstats":   "   7       0 loop0 1 0 8 0 0 0 0 0 0 0 0\n 259       0 nvme1n1 10 0 16 5 20 0 32 7 0 1500 12\n",
		"net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			"    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n  eth0: 5000 40 1 2 0 0 0 0 7000 50 3 4 0 0 0 0\n",
	})
	srv := httptest.NewServer(NodeHandler(NodeOptions{ProcRoot: proc, FileSystems: []string{"/", dir}, Logger: quietLogger()}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := families[name]
		if f == nil {
			return 0, false
		}
	metrics:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Untyped != nil:
				return m.Untyped.GetValue(), true
			}
		}
		return 0, false
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"node_cpu_seconds_total", map[string]string{"cpu": "0", "mode": "user"}, 2},
		{"node_cpu_seconds_total", map[string]string{"cpu": "1", "mode": "iowait"}, 0.07},
		{"node_boot_time_seconds", nil, 1700000000},
		{"node_memory_MemTotal_bytes", nil, 1000 * 1024},
		{"node_memory_MemAvailable_bytes", nil, 500 * 1024},
		{"node_memory_Active_anon_bytes", nil, 30 * 1024},
		{"node_memory_HugePages_Total", nil, 0},
		{"node_load1", nil, 0.5},
		{"node_load15", nil, 0.1},
		{"node_disk_read_bytes_total", map[string]string{"device": "nvme1n1"}, 16 * 512},
		{"node_disk_writes_completed_total", map[string]string{"device": "nvme1n1"}, 20},
		{"node_disk_io_time_seconds_total", map[string]string{"device": "nvme1n1"}, 1.5},
		{"node_network_receive_bytes_total", map[string]string{"device": "eth0"}, 5000},
		{"node_network_transmit_drop_total", map[string]string{"device": "eth0"}, 4},
		{"node_network_receive_packets_total", map[string]string{"device": "lo"}, 2},
		{"node_scrape_collector_success", map[string]string{"collector": "filesystem"}, 1},
		{"node_scrape_collector_success", map[string]string{"collector": "cpu"}, 1},
	}
	for _, tt := range tests {
		got, ok := value(tt.name, tt.labels)
		if !ok {
			t.Errorf("%s%v missing", tt.name, tt.labels)
			continue
		}
		if diff := got - tt.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// The summed cpu line is not a CPU, loop devices are not disks.
	if _, ok := value("node_cpu_seconds_total", map[string]string{"cpu": ""}); ok {
		t.Error("the summed cpu line was reported as a CPU")
	}
	if _, ok := value("node_disk_reads_completed_total", map[string]string{"device": "loop0"}); ok {
		t.Error("a loop device was reported")
	}
	// The data directory's file system carries its mount's labels.
	if size, ok := value("node_filesystem_size_bytes", map[string]string{"mountpoint": dir, "device": "/dev/nvme1n1", "fstype": "xfs"}); !ok || size <= 0 {
		t.Errorf("node_filesystem_size_bytes of %s = %v, %v", dir, size, ok)
	}
	if _, ok := value("node_filesystem_avail_bytes", map[string]string{"mountpoint": "/", "fstype": "ext4"}); !ok {
		t.Error("node_filesystem_avail_bytes of / missing")
	}
}

func TestNodeHandlerReportsFailedCollector(t *testing.T) {
	proc := writeProcTree(t, map[string]string{"loadavg": "0.1 0.2 0.3 1/1 1\n"})
	srv := httptest.NewServer(NodeHandler(NodeOptions{ProcRoot: proc, Logger: quietLogger()}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`node_scrape_collector_success{collector="cpu"} 0`, `node_scrape_collector_success{collector="loadavg"} 1`, "node_load5 0.2"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
}
