// Command tributary-loadtest is the broker benchmark (`make bench`): 1 KiB
// records on one 16-partition topic, one franz-go producer and consumer,
// against the Tributary broker (a separate process) and, in the same run,
// franz-go's in-memory kfake; then the broker's memory with 1,000 idle
// partitions and its time back to serving after kill -9 with a large log.
// Then a three-broker cluster (separate processes, replication factor 3,
// acks=all): produce throughput, latency at a fixed offered rate, and the
// failover time after kill -9 of a partition leader, beside a three-broker
// kfake. It prints a table per part. Every phase is bounded in time;
// Ctrl-C stops the run and its broker processes.
//
//	go run ./broker/loadtest/cmd/tributary-loadtest [-duration 10s] [-recovery-size 1GiB] [-cluster=false] ...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tributary/tributary/broker/loadtest"
)

func main() {
	var (
		bin          = flag.String("broker", "", "tributary-broker binary (default: go build it into a temporary directory)")
		duration     = flag.Duration("duration", 10*time.Second, "length of each produce phase")
		recordBytes  = flag.Int("record-bytes", 1024, "record value size")
		partitions   = flag.Int("partitions", 16, "partitions of the benchmark topic")
		idle         = flag.Int("idle-partitions", 1000, "partitions for the idle-memory measurement (0 skips it)")
		recoverySize = flag.String("recovery-size", "1GiB", "log size for the kill -9 recovery measurement (the target run uses 5GiB; 0 skips it)")
		skipKfake    = flag.Bool("skip-kfake", false, "do not run the kfake comparison")
		dataDir      = flag.String("data-dir", "", "parent of the broker data directories (default: a temporary directory, removed at the end)")
		single       = flag.Bool("single", true, "run the single-broker benchmark (false: only the cluster one)")
		cluster      = flag.Bool("cluster", true, "run the three-broker cluster benchmark (false skips it)")
		latencyRate  = flag.String("latency-rate", "20MiB", "offered produce rate per second of the cluster latency measurement")
		failovers    = flag.Int("failovers", 3, "leader kills of the cluster failover measurement (0 skips it)")
	)
	settings := settingsFlag{}
	flag.Var(settings, "cluster-setting", "a broker setting for every cluster broker, key=value (repeatable), e.g. log.flush.policy=interval")
	flag.Parse()
	rate, err := parseRate(*latencyRate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest: -latency-rate:", err)
		os.Exit(2)
	}
	// Ctrl-C or SIGTERM cancels every phase; the deferred clean-ups then
	// stop the broker processes and remove the temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, *bin, *dataDir, *duration, *recordBytes, int32(*partitions), *idle, *recoverySize, *skipKfake, *single,
		clusterOptions{latencyRate: rate, failovers: *failovers, skip: !*cluster, settings: settings})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, dataDir string, duration time.Duration, recordBytes int, partitions int32, idle int, recoverySize string, skipKfake, single bool, co clusterOptions) error {
	recSize, err := parseSize(recoverySize)
	if err != nil {
		return fmt.Errorf("-recovery-size: %w", err)
	}
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "tributary-loadtest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	if bin == "" {
		bin = filepath.Join(dataDir, "tributary-broker")
		fmt.Fprintln(os.Stderr, "building tributary-broker ...")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/tributary/tributary/broker/cmd/tributary-broker").CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	if single {
		if err := runSingle(ctx, bin, dataDir, duration, recordBytes, partitions, idle, recoverySize, recSize, skipKfake); err != nil {
			return err
		}
	}
	if co.skip {
		return nil
	}
	co.bin, co.dir = bin, filepath.Join(dataDir, "cluster")
	co.partitions, co.recordBytes, co.duration, co.skipKfake = partitions, recordBytes, duration, skipKfake
	res, err := runCluster(ctx, co)
	if err != nil {
		return err
	}
	fmt.Println()
	return printCluster(os.Stdout, co, res)
}

// runSingle measures one broker process beside a one-broker kfake and
// prints the single-broker table.
func runSingle(ctx context.Context, bin, dataDir string, duration time.Duration, recordBytes int, partitions int32, idle int, recoverySize string, recSize int64, skipKfake bool) error {
	opts := loadtest.Options{Topic: "bench", Partitions: partitions, RecordBytes: recordBytes, Duration: duration}

	fmt.Fprintf(os.Stderr, "tributary: %d-partition topic, %d-byte records, %v produce phase ...\n", partitions, recordBytes, duration)
	trib, tribRSS, err := tributaryThroughput(ctx, bin, filepath.Join(dataDir, "throughput"), opts)
	if err != nil {
		return fmt.Errorf("tributary throughput: %w", err)
	}

	var kf loadtest.Result
	if !skipKfake {
		fmt.Fprintln(os.Stderr, "kfake: same workload ...")
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("starting kfake: %w", err)
		}
		kf, err = loadtest.Throughput(ctx, c.ListenAddrs()[0], opts)
		c.Close()
		if err != nil {
			return fmt.Errorf("kfake throughput: %w", err)
		}
	}

	var idleRSS int64
	if idle > 0 {
		fmt.Fprintf(os.Stderr, "tributary: RSS with %d idle partitions ...\n", idle)
		if idleRSS, err = idleMemory(ctx, bin, filepath.Join(dataDir, "idle"), int32(idle)); err != nil {
			return fmt.Errorf("idle memory: %w", err)
		}
	}

	var recovery time.Duration
	if recSize > 0 {
		fmt.Fprintf(os.Stderr, "tributary: fill %s, kill -9, restart ...\n", recoverySize)
		if recovery, err = recoveryTime(ctx, bin, filepath.Join(dataDir, "recovery"), recSize, recordBytes); err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "metric\ttributary\tkfake\ttributary/kfake\ttarget\t\n")
	row := func(name string, a, b float64, unit, target string) {
		ratio, kfs := "-", "-"
		if !skipKfake {
			kfs = fmt.Sprintf("%.1f %s", b, unit)
			if b > 0 {
				ratio = fmt.Sprintf("%.2fx", a/b)
			}
		}
		fmt.Fprintf(w, "%s\t%.1f %s\t%s\t%s\t%s\t\n", name, a, unit, kfs, ratio, target)
	}
	row("produce throughput", trib.ProduceMBps, kf.ProduceMBps, "MB/s", ">= 2x kfake")
	row("consume throughput", trib.ConsumeMBps, kf.ConsumeMBps, "MB/s", ">= 2x kfake")
	row("produce latency p50", ms(trib.P50), ms(kf.P50), "ms", "")
	row("produce latency p99", ms(trib.P99), ms(kf.P99), "ms", "")
	fmt.Fprintf(w, "records produced\t%d\t%s\t\t\t\n", trib.Records, orDash(skipKfake, strconv.FormatInt(kf.Records, 10)))
	fmt.Fprintf(w, "broker RSS after throughput run\t%.1f MiB\t-\t\t\t\n", float64(tribRSS)/(1<<20))
	if idle > 0 {
		fmt.Fprintf(w, "broker RSS, %d idle partitions\t%.1f MiB\t-\t\t<= 100 MiB\t\n", idle, float64(idleRSS)/(1<<20))
	}
	if recSize > 0 {
		fmt.Fprintf(w, "serving again after kill -9, %s log\t%.2f s\t-\t\t<= 3 s (5 GiB)\t\n", recoverySize, recovery.Seconds())
	}
	return w.Flush()
}

func tributaryThroughput(ctx context.Context, bin, dir string, opts loadtest.Options) (loadtest.Result, int64, error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, err := loadtest.StartBroker(sctx, bin, dir, "")
	if err != nil {
		return loadtest.Result{}, 0, err
	}
	defer p.Stop(30 * time.Second)
	res, err := loadtest.Throughput(ctx, p.Addr, opts)
	if err != nil {
		return res, 0, err
	}
	rss, err := loadtest.RSS(p.PID())
	return res, rss, err
}

func idleMemory(ctx context.Context, bin, dir string, partitions int32) (int64, error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, err := loadtest.StartBroker(sctx, bin, dir, "")
	if err != nil {
		return 0, err
	}
	defer p.Stop(30 * time.Second)
	if err := loadtest.CreateTopic(sctx, p.Addr, "idle", partitions); err != nil {
		return 0, err
	}
	// Let start-up garbage be collected and background loops settle.
	time.Sleep(3 * time.Second)
	return loadtest.RSS(p.PID())
}

func recoveryTime(ctx context.Context, bin, dir string, size int64, recordBytes int) (time.Duration, error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, err := loadtest.StartBroker(sctx, bin, dir, "")
	if err != nil {
		return 0, err
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Minute)
	defer fcancel()
	if err := loadtest.Fill(fctx, p.Addr, "big", 16, size, recordBytes); err != nil {
		p.Kill()
		return 0, fmt.Errorf("filling the log: %w", err)
	}
	// Reuse the port so that the clock measures the broker, not discovery.
	addr := p.Addr
	p.Kill()
	start := time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer rcancel()
	p2, err := loadtest.StartBroker(rctx, bin, dir, addr)
	if err != nil {
		return 0, err
	}
	defer p2.Stop(30 * time.Second)
	if err := loadtest.WaitServing(rctx, p2.Addr, "big"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func orDash(dash bool, s string) string {
	if dash {
		return "-"
	}
	return s
}

// parseSize reads "512MiB", "5GiB", "1048576" (bytes).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40} {
		if strings.HasSuffix(s, suffix) {
			mult, s = m, strings.TrimSuffix(s, suffix)
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 512MiB or 5GiB", s)
	}
	return int64(n * float64(mult)), nil
}
