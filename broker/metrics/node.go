package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/broker/internal/mountpath"
)

// NodeOptions configure NodeHandler.
type NodeOptions struct {
	// ProcRoot is where /proc is mounted; default "/proc".
	ProcRoot string
	// FileSystems are paths whose file systems are reported (the data
	// volume's mount and "/"); default "/".
	FileSystems []string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// NodeHandler serves the host metrics port (metrics.node.listen, 11002 as
// MSK's node exporter): /metrics with the host's CPU, memory, load, file
// systems, disks and network interfaces, read from /proc on each scrape,
// under the Prometheus node_exporter's metric names and labels, so that
// dashboards and alerts written for node_exporter (and for MSK's open
// monitoring, which runs it) read them unchanged. Each source also reports
// node_scrape_collector_success{collector}, as node_exporter does, so a
// source that cannot be read is visible rather than silently absent.
func NodeHandler(opts NodeOptions) http.Handler {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if len(opts.FileSystems) == 0 {
		opts.FileSystems = []string{"/"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(nodeCollector{opts})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	return mux
}

type nodeCollector struct{ opts NodeOptions }

var (
	descCollectorSuccess = prometheus.NewDesc("node_scrape_collector_success", "Whether a collector succeeded.", []string{"collector"}, nil)
	descCPUSeconds       = prometheus.NewDesc("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", []string{"cpu", "mode"}, nil)
	descBootTime         = prometheus.NewDesc("node_boot_time_seconds", "Node boot time, in unixtime.", nil, nil)
	descTime             = prometheus.NewDesc("node_time_seconds", "System time in seconds since epoch (1970).", nil, nil)
	descLoad             = [3]*prometheus.Desc{
		prometheus.NewDesc("node_load1", "1m load average.", nil, nil),
		prometheus.NewDesc("node_load5", "5m load average.", nil, nil),
		prometheus.NewDesc("node_load15", "15m load average.", nil, nil),
	}
	fsLabels = []string{"device", "fstype", "mountpoint"}
	descFS   = map[string]*prometheus.Desc{
		"size":       prometheus.NewDesc("node_filesystem_size_bytes", "Filesystem size in bytes.", fsLabels, nil),
		"free":       prometheus.NewDesc("node_filesystem_free_bytes", "Filesystem free space in bytes.", fsLabels, nil),
		"avail":      prometheus.NewDesc("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", fsLabels, nil),
		"files":      prometheus.NewDesc("node_filesystem_files", "Filesystem total file nodes.", fsLabels, nil),
		"files_free": prometheus.NewDesc("node_filesystem_files_free", "Filesystem total free file nodes.", fsLabels, nil),
	}
	descDisk = map[string]*prometheus.Desc{
		"reads":   prometheus.NewDesc("node_disk_reads_completed_total", "The total number of reads completed successfully.", []string{"device"}, nil),
		"read":    prometheus.NewDesc("node_disk_read_bytes_total", "The total number of bytes read successfully.", []string{"device"}, nil),
		"writes":  prometheus.NewDesc("node_disk_writes_completed_total", "The total number of writes completed successfully.", []string{"device"}, nil),
		"written": prometheus.NewDesc("node_disk_written_bytes_total", "The total number of bytes written successfully.", []string{"device"}, nil),
		"io_time": prometheus.NewDesc("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", []string{"device"}, nil),
	}
)

// netFields are /proc/net/dev's columns that node_exporter names, by
// position: receive bytes packets errs drop (0-3), transmit the same (8-11).
var netFields = []struct {
	col  int
	name string
}{
	{0, "receive_bytes"}, {1, "receive_packets"}, {2, "receive_errs"}, {3, "receive_drop"},
	{8, "transmit_bytes"}, {9, "transmit_packets"}, {10, "transmit_errs"}, {11, "transmit_drop"},
}

var descNet = func() map[string]*prometheus.Desc {
	m := map[string]*prometheus.Desc{}
	for _, f := range netFields {
		m[f.name] = prometheus.NewDesc("node_network_"+f.name+"_total", "Network device statistic "+f.name+".", []string{"device"}, nil)
	}
	return m
}()

func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	// Unchecked: /proc/meminfo's fields differ between kernels, so the
	// node_memory_* series are only known when read.
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, col := range []struct {
		name string
		f    func(chan<- prometheus.Metric) error
	}{
		{"cpu", c.cpu}, {"meminfo", c.meminfo}, {"loadavg", c.loadavg}, {"filesystem", c.filesystems},
		{"diskstats", c.diskstats}, {"netdev", c.netdev},
	} {
		ok := 1.0
		if err := col.f(ch); err != nil {
			ok = 0
			c.opts.Logger.Debug("host metrics collector failed", "collector", col.name, "err", err)
		}
		ch <- prometheus.MustNewConstMetric(descCollectorSuccess, prometheus.GaugeValue, ok, col.name)
	}
	ch <- prometheus.MustNewConstMetric(descTime, prometheus.GaugeValue, float64(time.Now().UnixNano())/1e9)
}

// cpu reads every cpuN line of /proc/stat (the first, summed, line is
// node_exporter's too: it reports per CPU only) and btime.
func (c nodeCollector) cpu(ch chan<- prometheus.Metric) error {
	data, err := os.ReadFile(filepath.Join(c.opts.ProcRoot, "stat"))
	if err != nil {
		return err
	}
	modes := []string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "btime" {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				ch <- prometheus.MustNewConstMetric(descBootTime, prometheus.GaugeValue, v)
			}
			continue
		}
		if len(f) < 1+len(modes) || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		cpu := strings.TrimPrefix(f[0], "cpu")
		for i, mode := range modes {
			v, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				return fmt.Errorf("/proc/stat %s %s: %w", f[0], mode, err)
			}
			ch <- prometheus.MustNewConstMetric(descCPUSeconds, prometheus.CounterValue, float64(v)/userHZ, cpu, mode)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("no cpuN lines in %s", filepath.Join(c.opts.ProcRoot, "stat"))
	}
	return nil
}

// meminfo reports every /proc/meminfo field as node_memory_<Field>_bytes
// (kB fields times 1024; "Active(anon)" as Active_anon), or without
// _bytes for the counts that carry no unit (HugePages_Total ...), as
// node_exporter does.
func (c nodeCollector) meminfo(ch chan<- prometheus.Metric) error {
	f, err := os.Open(filepath.Join(c.opts.ProcRoot, "meminfo"))
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		parts := strings.Fields(rest)
		if !ok || len(parts) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(parts[0], 64)
		if err != nil {
			continue
		}
		name = strings.NewReplacer("(", "_", ")", "").Replace(name)
		metric := "node_memory_" + name
		if len(parts) > 1 && parts[1] == "kB" {
			v *= 1024
			metric += "_bytes"
		}
		if !validMetricName(metric) {
			continue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(metric, "Memory information field "+name+".", nil, nil), prometheus.GaugeValue, v)
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no fields in %s", f.Name())
	}
	return nil
}

func validMetricName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func (c nodeCollector) loadavg(ch chan<- prometheus.Metric) error {
	data, err := os.ReadFile(filepath.Join(c.opts.ProcRoot, "loadavg"))
	if err != nil {
		return err
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return fmt.Errorf("short /proc/loadavg: %q", data)
	}
	for i := range descLoad {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return fmt.Errorf("/proc/loadavg: %w", err)
		}
		ch <- prometheus.MustNewConstMetric(descLoad[i], prometheus.GaugeValue, v)
	}
	return nil
}

// mount is a line of /proc/self/mounts.
type mount struct{ device, point, fstype string }

// filesystems reports each configured path's file system once, labelled
// with the mount that holds it (the longest mount point that is a prefix
// of the path), as node_exporter labels its mounts.
func (c nodeCollector) filesystems(ch chan<- prometheus.Metric) error {
	data, err := os.ReadFile(filepath.Join(c.opts.ProcRoot, "self", "mounts"))
	if err != nil {
		return err
	}
	var mounts []mount
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 {
			mounts = append(mounts, mount{device: f[0], point: mountpath.Unescape(f[1]), fstype: f[2]})
		}
	}
	seen := map[string]bool{}
	for _, p := range c.opts.FileSystems {
		m := mountOf(mounts, p)
		if seen[m.point] {
			continue
		}
		seen[m.point] = true
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", p, err)
		}
		bs := float64(st.Bsize)
		for k, v := range map[string]float64{
			"size": float64(st.Blocks) * bs, "free": float64(st.Bfree) * bs, "avail": float64(st.Bavail) * bs,
			"files": float64(st.Files), "files_free": float64(st.Ffree),
		} {
			ch <- prometheus.MustNewConstMetric(descFS[k], prometheus.GaugeValue, v, m.device, m.fstype, m.point)
		}
	}
	return nil
}

func mountOf(mounts []mount, path string) mount {
	best := mount{device: "unknown", point: path, fstype: "unknown"}
	bestLen := -1
	clean := filepath.Clean(path)
	for _, m := range mounts {
		within := clean == m.point || m.point == "/" || strings.HasPrefix(clean, m.point+"/")
		if within && len(m.point) >= bestLen {
			best, bestLen = m, len(m.point)
		}
	}
	return best
}

// diskstats reports whole block devices (not loop or RAM disks); sectors
// are 512 bytes in /proc/diskstats whatever the device's own size.
func (c nodeCollector) diskstats(ch chan<- prometheus.Metric) error {
	data, err := os.ReadFile(filepath.Join(c.opts.ProcRoot, "diskstats"))
	if err != nil {
		return err
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		f := strings.Fields(string(line))
		if len(f) < 14 {
			continue
		}
		dev := f[2]
		if strings.HasPrefix(dev, "loop") || strings.HasPrefix(dev, "ram") {
			continue
		}
		var v [11]float64
		for i := range v {
			if v[i], err = strconv.ParseFloat(f[3+i], 64); err != nil {
				return fmt.Errorf("/proc/diskstats %s field %d: %w", dev, 3+i, err)
			}
		}
		// reads, merged, sectors read, ms reading, writes, merged, sectors
		// written, ms writing, in progress, ms doing I/O, weighted ms.
		ch <- prometheus.MustNewConstMetric(descDisk["reads"], prometheus.CounterValue, v[0], dev)
		ch <- prometheus.MustNewConstMetric(descDisk["read"], prometheus.CounterValue, v[2]*512, dev)
		ch <- prometheus.MustNewConstMetric(descDisk["writes"], prometheus.CounterValue, v[4], dev)
		ch <- prometheus.MustNewConstMetric(descDisk["written"], prometheus.CounterValue, v[6]*512, dev)
		ch <- prometheus.MustNewConstMetric(descDisk["io_time"], prometheus.CounterValue, v[9]/1000, dev)
	}
	return nil
}

// netdev reports every interface of /proc/net/dev, loopback included, as
// node_exporter does.
func (c nodeCollector) netdev(ch chan<- prometheus.Metric) error {
	path := filepath.Join(c.opts.ProcRoot, "net", "dev")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.Contains(name, "|") {
			continue
		}
		dev := strings.TrimSpace(name)
		f := strings.Fields(rest)
		if len(f) < 16 {
			return fmt.Errorf("%s: short line for %s", path, dev)
		}
		for _, nf := range netFields {
			v, err := strconv.ParseFloat(f[nf.col], 64)
			if err != nil {
				return fmt.Errorf("%s %s: %w", path, dev, err)
			}
			ch <- prometheus.MustNewConstMetric(descNet[nf.name], prometheus.CounterValue, v, dev)
		}
	}
	return nil
}
