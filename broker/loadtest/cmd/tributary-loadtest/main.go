// Command tributary-loadtest is the broker benchmark (`make bench`): 1 KiB
// records on one 16-partition topic, one franz-go producer and consumer,
// against the Tributary broker (a separate process) and, in the same run,
// franz-go's in-memory kfake (a separate process too: this command started
// as `tributary-loadtest kfake`); then the broker's memory with 1,000 idle
// partitions and its time back to serving after kill -9 with a large log.
// Then a three-broker cluster (separate processes, replication factor 3,
// acks=all): produce throughput, latency at a fixed offered rate,
// transactional produce (transactions of 100 records) with its commit
// latency, the failover time after kill -9 of a partition leader, and
// memory and metadata latency with 5,000 partitions, beside a three-broker
// kfake. It
// prints a table per part. Every phase is bounded in time; Ctrl-C stops
// the run and its processes.
//
//	go run ./broker/loadtest/cmd/tributary-loadtest [-duration 10s] [-recovery-size 1GiB] [-cluster=false] ...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tributary/tributary/broker/loadtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == loadtest.KfakeCommand {
		if err := loadtest.ServeKfake(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "tributary-loadtest kfake:", err)
			os.Exit(1)
		}
		return
	}
	var (
		bin              = flag.String("broker", "", "tributary-broker binary (default: go build it into a temporary directory)")
		duration         = flag.Duration("duration", 10*time.Second, "length of each throughput phase and of the single-broker latency phase")
		latencyDuration  = flag.Duration("latency-duration", time.Minute, "length of the cluster latency phase (the stall target is for a 60 s run)")
		recordBytes      = flag.Int("record-bytes", 1024, "record value size")
		partitions       = flag.Int("partitions", 16, "partitions of the benchmark topic")
		idle             = flag.Int("idle-partitions", 1000, "partitions for the idle-memory measurement (0 skips it)")
		recoverySize     = flag.String("recovery-size", "1GiB", "log size for the kill -9 recovery measurement (the target run uses 5GiB; 0 skips it)")
		skipKfake        = flag.Bool("skip-kfake", false, "do not run the kfake comparison")
		dataDir          = flag.String("data-dir", "", "parent of the broker data directories, kept after the run (default: a temporary directory; each phase's part is removed when the phase ends)")
		single           = flag.Bool("single", true, "run the single-broker benchmark (false: only the cluster one)")
		cluster          = flag.Bool("cluster", true, "run the three-broker cluster benchmark (false skips it)")
		singleFlatOut    = flag.Bool("single-throughput", true, "run the single-broker flat-out phases (produce and consume, the wide window), tributary's and kfake's (false: the single broker's latency phase and the phases after it only)")
		clusterFlatOut   = flag.Bool("cluster-throughput", true, "run the three-broker flat-out produce phase, tributary's and kfake's (false: the cluster's latency phase and the phases after it only)")
		latencyRate      = flag.String("latency-rate", "20MiB", "offered produce rate per second of the latency phases")
		failovers        = flag.Int("failovers", 3, "leader kills of the cluster failover measurement (0 skips it)")
		many             = flag.Int("many-partitions", 5000, "cluster: partitions of the RF 3 topic for the memory and metadata measurement (0 skips it)")
		txnRecords       = flag.Int("txn-records", 100, "cluster: records per transaction of the transactional phase (0 skips it)")
		txnProducers     = flag.Int("txn-producers", 4, "cluster: transactional producers of the transactional phase, each running transactions one after another")
		tlsRounds        = flag.Int("tls-rounds", 2, "single broker: rounds of the throughput workload through the PLAINTEXT, SSL and SASL_SSL IAM listeners, in turn (0 skips the TLS table)")
		warmup           = flag.Duration("warmup", time.Second, "untimed run of the same load before each throughput and latency phase, by the same producer (0: time the new producer from its first record)")
		compressionType  = flag.String("compression-type", "", "single broker: compression.type of the throughput and latency topics (producer, uncompressed, gzip, snappy, lz4, zstd; default: not set, the broker's producer), to measure a leader re-compressing what the producer sends")
		producerCodec    = flag.String("producer-compression", "none", "single broker: the producer's codec in the throughput and latency phases (none, gzip, snappy, lz4, zstd); the record values are random, so codecs barely shrink them")
		tlsClusterRounds = flag.Int("tls-cluster-rounds", 2, "rounds of the throughput workload on a plaintext and a TLS-everywhere three-broker RF 3 cluster, in turn (0 skips the three-broker TLS table)")
		skipDiskCheck    = flag.Bool("skip-disk-check", false, "run even when the scratch directory's file system has less free space than the run's estimated need")
	)
	settings := settingsFlag{}
	flag.Var(settings, "cluster-setting", "a broker setting for every cluster broker, key=value (repeatable), e.g. log.flush.policy=interval")
	flag.Parse()
	rate, err := parseRate(*latencyRate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest: -latency-rate:", err)
		os.Exit(2)
	}
	if _, err := loadtest.ProducerCodec(*producerCodec); err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest: -producer-compression:", err)
		os.Exit(2)
	}
	cores, err := loadtest.MachineCores()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest: the machine's cores:", err)
		os.Exit(1)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest: finding this executable to run kfake:", err)
		os.Exit(1)
	}
	// Ctrl-C or SIGTERM cancels every phase; the deferred clean-ups then
	// stop the broker processes and remove the temporary directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	so := singleOptions{
		duration: *duration, recordBytes: *recordBytes, partitions: int32(*partitions), idle: *idle,
		recoverySize: *recoverySize, skipKfake: *skipKfake, latencyRate: rate, self: self, tlsRounds: *tlsRounds, tlsClusterRounds: *tlsClusterRounds,
		warmup: *warmup, compressionType: *compressionType, producerCodec: *producerCodec, cores: cores,
		noThroughput: !*singleFlatOut,
	}
	co := clusterOptions{
		latencyRate: rate, latencyDuration: *latencyDuration, failovers: *failovers, many: int32(*many),
		txnRecords: *txnRecords, txnProducers: *txnProducers,
		skip: !*cluster, noThroughput: !*clusterFlatOut, settings: settings, self: self, cores: cores,
	}
	err = run(ctx, *bin, *dataDir, *single, *skipDiskCheck, so, co)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tributary-loadtest:", err)
		os.Exit(1)
	}
}

// singleOptions shape the single-broker benchmark.
type singleOptions struct {
	bin, dir string
	self     string // this executable, which serves kfake
	duration time.Duration
	warmup   time.Duration // before each produce phase (ProduceOptions.Warmup)
	// cores are the machine's cores (loadtest.MachineCores), which the
	// CPU rows judge the phases' use against.
	cores        float64
	recordBytes  int
	partitions   int32
	idle         int
	recoverySize string
	latencyRate  float64
	tlsRounds    int
	// tlsClusterRounds are the rounds of the three-broker TLS table.
	tlsClusterRounds int
	skipKfake        bool
	keep             bool // keep each phase's data directory (-data-dir)
	// noThroughput skips the flat-out phases (tributary's and kfake's),
	// for a run of the latency phase alone on a fresh broker.
	noThroughput bool
	// compressionType is the throughput and latency topics'
	// compression.type ("": not set); producerCodec the producer's codec.
	compressionType, producerCodec string
}

// topicConfigs are the configs the single-broker phases create their
// topics with.
func (o singleOptions) topicConfigs() map[string]*string {
	if o.compressionType == "" {
		return nil
	}
	return map[string]*string{"compression.type": &o.compressionType}
}

// discard removes a finished phase's data directory unless the run keeps
// them.
func discard(keep bool, dir string) {
	if !keep {
		_ = os.RemoveAll(dir)
	}
}

func run(ctx context.Context, bin, dataDir string, single, skipDiskCheck bool, so singleOptions, co clusterOptions) error {
	recSize, err := parseSize(so.recoverySize)
	if err != nil {
		return fmt.Errorf("-recovery-size: %w", err)
	}
	keep := dataDir != ""
	need, phases := diskNeed(single, so, co, recSize, keep, bin == "")
	// Each phase's logs are removed when it ends (the whole run writes tens
	// of GiB), unless -data-dir asked to keep them for a look.
	so.keep, co.keep = dataDir != "", dataDir != ""
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "tributary-loadtest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	} else if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return err
	}
	held := "the largest phase"
	if keep {
		held = "every phase, kept"
	}
	fmt.Fprintf(os.Stderr, "disk: the run needs about %s in %s (%s, at the fastest rates measured here)\n", gibText(need), dataDir, held)
	if !skipDiskCheck {
		if err := checkDisk(dataDir, need, phases); err != nil {
			return err
		}
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
		so.bin, so.dir = bin, dataDir
		res, err := runSingle(ctx, so, recSize)
		if err != nil {
			return err
		}
		if err := printSingle(os.Stdout, so, res); err != nil {
			return err
		}
		if so.tlsRounds > 0 {
			sres, err := runSecure(ctx, so, so.tlsRounds)
			discardMeasured(so.keep, "one broker: TLS listeners", filepath.Join(so.dir, "secure"))
			if err != nil {
				return fmt.Errorf("TLS: %w", err)
			}
			fmt.Println()
			title := fmt.Sprintf("1 broker, %d partitions, acks=all, by listener", so.partitions)
			if err := printSecure(os.Stdout, title, secureListeners, sres); err != nil {
				return err
			}
			if err := printSecureCPU(os.Stdout, "1 broker", so.cores, secureListeners, sres); err != nil {
				return err
			}
		}
		if so.tlsClusterRounds > 0 {
			cres, err := runSecureCluster(ctx, so, so.tlsClusterRounds)
			for _, t := range secureClusters {
				discardMeasured(so.keep, "three brokers: TLS table's "+t.name+" cluster", filepath.Join(so.dir, "cluster-"+t.name))
			}
			if err != nil {
				return fmt.Errorf("TLS cluster: %w", err)
			}
			fmt.Println()
			title := fmt.Sprintf("%d brokers, RF 3, %d partitions, acks=all, min.insync.replicas=2", loadtest.ClusterSize, so.partitions)
			if err := printSecure(os.Stdout, title, secureClusters, cres); err != nil {
				return err
			}
			if err := printSecureCPU(os.Stdout, fmt.Sprintf("%d brokers", loadtest.ClusterSize), so.cores, secureClusters, cres); err != nil {
				return err
			}
		}
	}
	if co.skip {
		return nil
	}
	co.bin, co.dir = bin, filepath.Join(dataDir, "cluster")
	co.partitions, co.recordBytes, co.duration, co.warmup, co.skipKfake = so.partitions, so.recordBytes, so.duration, so.warmup, so.skipKfake
	res, err := runCluster(ctx, co)
	discardMeasured(co.keep, "three brokers", co.dir)
	if err != nil {
		return err
	}
	fmt.Println()
	return printCluster(os.Stdout, co, res)
}

// singleResults are the single-broker figures and kfake's beside them.
type singleResults struct {
	trib, kfake           loadtest.Result
	tribPaced, kfakePaced loadtest.ProduceResult
	// tribWide and kfakeWide: flat out with loadtest.WideBufferedRecords.
	tribWide, kfakeWide loadtest.ProduceResult
	rss, idleRSS        int64
	recovery            time.Duration
}

// runSingle measures one broker process beside a one-broker kfake process.
func runSingle(ctx context.Context, o singleOptions, recSize int64) (singleResults, error) {
	var res singleResults
	opts := loadtest.Options{Topic: "bench", Partitions: o.partitions, RecordBytes: o.recordBytes, Duration: o.duration, Warmup: o.warmup, Linger: loadtest.ThroughputLinger,
		Compression: o.producerCodec, TopicConfigs: o.topicConfigs()}
	paced := loadtest.ProduceOptions{Topic: "paced", RecordBytes: o.recordBytes, Duration: o.duration, Warmup: o.warmup, RateBytes: o.latencyRate, Linger: 0,
		Compression: o.producerCodec}
	wide := loadtest.ProduceOptions{Topic: "wide", RecordBytes: o.recordBytes, Duration: o.duration, Warmup: o.warmup, Linger: loadtest.ThroughputLinger,
		Compression: o.producerCodec, Client: []kgo.Opt{kgo.MaxBufferedRecords(loadtest.WideBufferedRecords)}}

	if o.noThroughput {
		fmt.Fprintf(os.Stderr, "tributary: %d-partition topic, %d-byte records, %v at %.0f MiB/s (no flat-out phase) ...\n",
			o.partitions, o.recordBytes, o.duration, mibps(o.latencyRate))
	} else {
		fmt.Fprintf(os.Stderr, "tributary: %d-partition topic, %d-byte records, %v produce phase, then %v at %.0f MiB/s, then %v flat out with %d records buffered ...\n",
			o.partitions, o.recordBytes, o.duration, o.duration, mibps(o.latencyRate), o.duration, loadtest.WideBufferedRecords)
	}
	var err error
	res.trib, res.tribPaced, res.tribWide, res.rss, err = tributarySingle(ctx, o.bin, filepath.Join(o.dir, "throughput"), opts, paced, wide, o.partitions, !o.noThroughput)
	discardMeasured(o.keep, "one broker: throughput and latency", filepath.Join(o.dir, "throughput"))
	if err != nil {
		return res, fmt.Errorf("tributary: %w", err)
	}

	if !o.skipKfake {
		fmt.Fprintln(os.Stderr, "kfake (own process): same workload ...")
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		k, err := loadtest.StartKfake(sctx, o.self, 1, "", 0)
		cancel()
		if err != nil {
			return res, err
		}
		kopts := opts
		kopts.BrokerPIDs = []int{k.PID()}
		if !o.noThroughput {
			res.kfake, err = loadtest.Throughput(ctx, k.Addrs[0], kopts)
		}
		if err == nil {
			res.kfakePaced, err = pacedOn(ctx, k.Addrs, paced, o.partitions, opts.TopicConfigs)
		}
		k.Close()
		if err != nil {
			return res, fmt.Errorf("kfake: %w", err)
		}
	}
	if !o.skipKfake && !o.noThroughput {
		// The wide window on a kfake of its own: kfake keeps every record
		// in memory, about 1.6x their size, and the phases before held
		// 24 GiB with this one on a 24 GiB machine (killed for memory).
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		k, err := loadtest.StartKfake(sctx, o.self, 1, "", 0)
		cancel()
		if err != nil {
			return res, err
		}
		wide.ServerPIDs = []int{k.PID()}
		res.kfakeWide, err = pacedOn(ctx, k.Addrs, wide, o.partitions, opts.TopicConfigs)
		k.Close()
		if err != nil {
			return res, fmt.Errorf("kfake, wide window: %w", err)
		}
	}

	if o.idle > 0 {
		fmt.Fprintf(os.Stderr, "tributary: RSS with %d idle partitions ...\n", o.idle)
		res.idleRSS, err = idleMemory(ctx, o.bin, filepath.Join(o.dir, "idle"), int32(o.idle))
		discardMeasured(o.keep, "one broker: idle partitions", filepath.Join(o.dir, "idle"))
		if err != nil {
			return res, fmt.Errorf("idle memory: %w", err)
		}
	}
	if recSize > 0 {
		fmt.Fprintf(os.Stderr, "tributary: fill %s, kill -9, restart ...\n", o.recoverySize)
		res.recovery, err = recoveryTime(ctx, o.bin, filepath.Join(o.dir, "recovery"), recSize, o.recordBytes)
		discardMeasured(o.keep, "one broker: recovery", filepath.Join(o.dir, "recovery"))
		if err != nil {
			return res, fmt.Errorf("recovery: %w", err)
		}
	}
	return res, nil
}

// pacedOn creates a produce-only phase's topic (the paced one, the wide
// window one) and runs the phase.
func pacedOn(ctx context.Context, seeds []string, o loadtest.ProduceOptions, partitions int32, configs map[string]*string) (loadtest.ProduceResult, error) {
	if err := loadtest.CreateTopicWithConfigs(ctx, seeds[0], o.Topic, partitions, configs); err != nil {
		return loadtest.ProduceResult{}, err
	}
	return loadtest.Produce(ctx, seeds, o)
}

func printSingle(out io.Writer, o singleOptions, r singleResults) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "1 broker, %d partitions, acks=all%s\ttributary\tkfake\ttributary/kfake\ttarget\tresult\t\n", o.partitions, o.codecs())
	t := table{w: w, skipKfake: o.skipKfake, cores: o.cores, brokers: 1}
	if !o.noThroughput {
		t.throughput(fmt.Sprintf("produce throughput (linger %v)", loadtest.ThroughputLinger), r.trib.Produce.MiBps, r.kfake.Produce.MiBps, 2)
		t.throughput("consume throughput", r.trib.ConsumeMiBps, r.kfake.ConsumeMiBps, 2)
		t.cpu("produce:", r.trib.Produce.Cost, r.kfake.Produce.Cost, ratio(r.trib.Produce.MiBps, r.kfake.Produce.MiBps), 2)
		t.cpu("consume:", r.trib.ConsumeCost, r.kfake.ConsumeCost, ratio(r.trib.ConsumeMiBps, r.kfake.ConsumeMiBps), 2)
	}
	if r.tribWide.Records > 0 {
		wide := fmt.Sprintf("%d buffered", loadtest.WideBufferedRecords)
		t.throughput(fmt.Sprintf("produce throughput, %s (linger %v)", wide, loadtest.ThroughputLinger), r.tribWide.MiBps, r.kfakeWide.MiBps, 2)
		t.cpu("produce, "+wide+":", r.tribWide.Cost, r.kfakeWide.Cost, ratio(r.tribWide.MiBps, r.kfakeWide.MiBps), 2)
	}
	if !o.noThroughput {
		t.latency("flat out", r.trib.Produce, r.kfake.Produce, "", "")
		t.firstAck("flat out", r.trib.Produce, r.kfake.Produce)
	}
	rate := mibps(o.latencyRate)
	t.achieved(rate, r.tribPaced, r.kfakePaced)
	t.latency(fmt.Sprintf("at %.0f MiB/s, linger 0", rate), r.tribPaced, r.kfakePaced, "", "")
	if !o.noThroughput {
		fmt.Fprintf(w, "broker RSS after the throughput runs\t%.1f MiB\t-\t\t\t\t\n", mib(r.rss))
	}
	if o.idle > 0 {
		fmt.Fprintf(w, "broker RSS, %d idle partitions\t%.1f MiB\t-\t\t<= 100 MiB\t%s\t\n", o.idle, mib(r.idleRSS), verdict(r.idleRSS <= 100<<20))
	}
	if size, _ := parseSize(o.recoverySize); size > 0 {
		fmt.Fprintf(w, "serving again after kill -9, %s log\t%.2f s\t-\t\t<= 3 s (5 GiB)\t%s\t\n", o.recoverySize, r.recovery.Seconds(), verdict(r.recovery <= 3*time.Second))
	}
	return w.Flush()
}

// codecs states the producer's codec and the topics' compression.type
// when either is not the benchmark's default (uncompressed, not set).
func (o singleOptions) codecs() string {
	if o.compressionType == "" && (o.producerCodec == "" || o.producerCodec == "none") {
		return ""
	}
	ct := o.compressionType
	if ct == "" {
		ct = "not set"
	}
	pc := o.producerCodec
	if pc == "" {
		pc = "none"
	}
	return fmt.Sprintf(", producer codec %s, topic compression.type %s", pc, ct)
}

// table writes the rows both tables share.
type table struct {
	w         io.Writer
	skipKfake bool
	// cores are the machine's; brokers the tributary processes the CPU
	// rows count.
	cores   float64
	brokers int
}

func (t table) kf(s string) string {
	if t.skipKfake {
		return "-"
	}
	return s
}

// throughput writes a MiB/s row with its ratio to kfake and the verdict
// of a ratio target (at least minRatio times kfake).
func (t table) throughput(name string, trib, kfake, minRatio float64) {
	ratio, result := "-", "not measured"
	if !t.skipKfake && kfake > 0 {
		ratio = fmt.Sprintf("%.2fx", trib/kfake)
		result = verdict(trib >= minRatio*kfake)
	}
	target := fmt.Sprintf(">= %gx kfake", minRatio)
	fmt.Fprintf(t.w, "%s\t%.1f MiB/s\t%s\t%s\t%s\t%s\t\n", name, trib, t.kf(fmt.Sprintf("%.1f MiB/s", kfake)), ratio, target, result)
}

func (t table) achieved(rate float64, trib, kfake loadtest.ProduceResult) {
	fmt.Fprintf(t.w, "achieved at %.0f MiB/s offered\t%.1f MiB/s\t%s\t\t\t\t\n", rate, trib.MiBps, t.kf(fmt.Sprintf("%.1f MiB/s", kfake.MiBps)))
}

// latency writes the percentile row and the stall row of a phase;
// p99Target and maxTarget are the verdicts' texts when the phase has
// targets ("" for none).
func (t table) latency(phase string, trib, kfake loadtest.ProduceResult, p99Target, p99Result string) {
	lat := func(l loadtest.Latency) string {
		return fmt.Sprintf("%s / %s / %s / %s ms", msText(l.P50), msText(l.P99), msText(l.P999), msText(l.Max))
	}
	fmt.Fprintf(t.w, "p50 / p99 / p99.9 / max, %s\t%s\t%s\t\t%s\t%s\t\n", phase, lat(trib.Latency), t.kf(lat(kfake.Latency)), p99Target, p99Result)
	stalls := func(r loadtest.ProduceResult) string {
		return fmt.Sprintf("%d of %d", r.Latency.Stalls, r.Records)
	}
	fmt.Fprintf(t.w, "produces over %v, %s\t%s\t%s\t\t\t\t\n", loadtest.StallThreshold, phase, stalls(trib), t.kf(stalls(kfake)))
}

// firstAck writes how long a new producer took to its first
// acknowledgement (metadata, producer id, connections, the first full
// requests): the warm-up's, which the timed phase does not count.
func (t table) firstAck(phase string, trib, kfake loadtest.ProduceResult) {
	fmt.Fprintf(t.w, "new producer's first acknowledgement, %s\t%s ms\t%s\t\t\t\t\n", phase, msText(trib.FirstAck), t.kf(msText(kfake.FirstAck)+" ms"))
}

// transactions writes the rows of a transactional phase: committed
// throughput and transactions, commit and whole-transaction latency.
func (t table) transactions(phase string, trib, kfake loadtest.TxnResult) {
	fmt.Fprintf(t.w, "committed throughput, %s\t%.1f MiB/s\t%s\t%s\t\t\t\n", phase, trib.MiBps,
		t.kf(fmt.Sprintf("%.1f MiB/s", kfake.MiBps)), t.kf(ratioText(trib.MiBps, kfake.MiBps)))
	fmt.Fprintf(t.w, "transactions committed, %s\t%d\t%s\t\t\t\t\n", phase, trib.Txns, t.kf(fmt.Sprint(kfake.Txns)))
	fmt.Fprintf(t.w, "commit latency p50 / p99, %s\t%s / %s ms\t%s\t\t\t\t\n", phase, msText(trib.CommitP50), msText(trib.CommitP99),
		t.kf(fmt.Sprintf("%s / %s ms", msText(kfake.CommitP50), msText(kfake.CommitP99))))
	fmt.Fprintf(t.w, "transaction p50 / p99 (begin to commit), %s\t%s / %s ms\t%s\t\t\t\t\n", phase, msText(trib.TxnP50), msText(trib.TxnP99),
		t.kf(fmt.Sprintf("%s / %s ms", msText(kfake.TxnP50), msText(kfake.TxnP99))))
}

// ratio is a/b, 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func ratioText(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// tributarySingle runs one broker's phases: flat out, at the paced rate,
// and flat out with the wide window; flatOut false runs the paced phase
// alone, on a broker that has written nothing before it.
func tributarySingle(ctx context.Context, bin, dir string, opts loadtest.Options, paced, wide loadtest.ProduceOptions, partitions int32, flatOut bool) (res loadtest.Result, pr, wr loadtest.ProduceResult, rss int64, err error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	p, err := loadtest.StartBroker(sctx, bin, dir, "")
	if err != nil {
		return res, pr, wr, 0, err
	}
	defer p.Stop(30 * time.Second)
	opts.BrokerPIDs = []int{p.PID()}
	if flatOut {
		if res, err = loadtest.Throughput(ctx, p.Addr, opts); err != nil {
			return res, pr, wr, 0, err
		}
	}
	if pr, err = pacedOn(ctx, []string{p.Addr}, paced, partitions, opts.TopicConfigs); err != nil {
		return res, pr, wr, 0, err
	}
	if !flatOut {
		return res, pr, wr, 0, nil
	}
	// RSS before the wide window: the row says what the throughput and
	// latency phases left, as before that phase was added.
	if rss, err = loadtest.RSS(p.PID()); err != nil {
		return res, pr, wr, 0, err
	}
	wide.ServerPIDs = opts.BrokerPIDs
	wr, err = pacedOn(ctx, []string{p.Addr}, wide, partitions, opts.TopicConfigs)
	return res, pr, wr, rss, err
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

// msText prints a latency in ms with two decimals below 10 ms, one below
// 1 s, none above: the figures span five orders of magnitude.
func msText(d time.Duration) string {
	switch v := ms(d); {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

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
