package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tributary/tributary/broker/loadtest"
)

// clusterOptions shape the three-broker benchmark.
type clusterOptions struct {
	bin             string
	self            string // this executable, which serves kfake
	dir             string
	partitions      int32
	recordBytes     int
	duration        time.Duration
	warmup          time.Duration // before each produce phase (ProduceOptions.Warmup)
	latencyRate     float64       // bytes per second offered in the latency phase
	latencyDuration time.Duration
	failovers       int
	many            int32 // partitions of the memory and metadata phase
	// txnRecords and txnProducers shape the transactional phase
	// (txnRecords 0 skips it).
	txnRecords   int
	txnProducers int
	skipKfake    bool
	skip         bool
	// noThroughput skips the flat-out phase (tributary's and kfake's),
	// for a run of the latency phase alone.
	noThroughput bool
	cores        float64           // the machine's (loadtest.MachineCores)
	keep         bool              // keep the data directory (-data-dir)
	settings     map[string]string // broker settings for every cluster broker
}

// clusterResults are the three-broker figures and kfake's beside them.
type clusterResults struct {
	full, paced           loadtest.ProduceResult
	kfakeFull, kfakePaced loadtest.ProduceResult
	txn, kfakeTxn         loadtest.TxnResult
	kills                 []loadtest.Kill
	many                  *loadtest.ManyPartitionsResult
}

// Targets of the cluster benchmark, which the printed tables mark met or
// not (docs/benchmarks.md).
const (
	p99Target = 10 * time.Millisecond
	// maxTarget: no produce of the latency phase may take longer.
	maxTarget = 500 * time.Millisecond
	// stallRun is the length of run the maxTarget is defined for.
	stallRun       = time.Minute
	failoverTarget = 2 * time.Second
	// failoverDeadline bounds one failover measurement.
	failoverDeadline = 30 * time.Second
	// failoverRate is the producer's load while leaders are killed: a
	// steady stream, one 1 KiB record a millisecond.
	failoverRate     = 1 << 20
	manyRSSTarget    = 300 << 20
	metadataTarget   = 50 * time.Millisecond
	manySettle       = 5 * time.Second
	manyReadyTimeout = 10 * time.Minute
)

func runCluster(ctx context.Context, o clusterOptions) (clusterResults, error) {
	var res clusterResults
	fmt.Fprintf(os.Stderr, "cluster: starting %d brokers (racks a, b, c) ...\n", loadtest.ClusterSize)
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	c, err := loadtest.StartCluster(sctx, o.bin, o.dir, o.settings)
	if err != nil {
		return res, fmt.Errorf("starting the cluster: %w", err)
	}
	defer c.Close()
	seeds := c.Bootstrap()
	if err := loadtest.CreateReplicatedTopic(sctx, seeds, "bench", o.partitions, loadtest.ClusterSize); err != nil {
		return res, fmt.Errorf("creating the benchmark topic: %w", err)
	}

	full := loadtest.ProduceOptions{Topic: "bench", RecordBytes: o.recordBytes, Duration: o.duration, Warmup: o.warmup, Linger: loadtest.ThroughputLinger}
	paced := loadtest.ProduceOptions{Topic: "bench", RecordBytes: o.recordBytes, Duration: o.latencyDuration, Warmup: o.warmup, RateBytes: o.latencyRate, Linger: 0}
	if !o.noThroughput {
		fmt.Fprintf(os.Stderr, "cluster: produce flat out (linger %v), %v ...\n", full.Linger, o.duration)
		tfull := full
		tfull.ServerPIDs = loadtest.PIDs(c)
		if res.full, err = loadtest.Produce(ctx, seeds, tfull); err != nil {
			return res, fmt.Errorf("cluster produce: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "cluster: produce at %.0f MiB/s offered (linger 0), %v ...\n", mibps(o.latencyRate), o.latencyDuration)
	if res.paced, err = loadtest.Produce(ctx, seeds, paced); err != nil {
		return res, fmt.Errorf("cluster produce at a fixed rate: %w", err)
	}
	txn := loadtest.TxnOptions{Topic: "bench", RecordBytes: o.recordBytes, TxnRecords: o.txnRecords, Producers: o.txnProducers, Duration: o.duration}
	if o.txnRecords > 0 {
		fmt.Fprintf(os.Stderr, "cluster: transactions of %d records, %d producers, %v ...\n", o.txnRecords, o.txnProducers, o.duration)
		if res.txn, err = loadtest.ProduceTxn(ctx, seeds, txn); err != nil {
			return res, fmt.Errorf("cluster transactional produce: %w", err)
		}
	}
	if o.failovers > 0 {
		fmt.Fprintf(os.Stderr, "cluster: %d failovers (kill -9 of a partition leader under a producer) ...\n", o.failovers)
		res.kills, err = loadtest.Failover(ctx, c, loadtest.FailoverOptions{
			Topic: "failover", RecordBytes: o.recordBytes, RateBytes: failoverRate,
			Kills: o.failovers, Deadline: failoverDeadline,
		})
		if err != nil {
			return res, fmt.Errorf("failover: %w", err)
		}
	}
	if o.many > 0 {
		fmt.Fprintf(os.Stderr, "cluster: %d partitions, replication factor 3: memory and metadata ...\n", o.many)
		mctx, cancel := context.WithTimeout(ctx, manyReadyTimeout)
		m, err := loadtest.ManyPartitions(mctx, c, "many", o.many, manySettle)
		cancel()
		if err != nil {
			return res, fmt.Errorf("%d partitions: %w", o.many, err)
		}
		res.many = &m
	}
	c.Close()

	if o.skipKfake {
		return res, nil
	}
	fmt.Fprintln(os.Stderr, "kfake (own process): 3 brokers, same produce phases ...")
	kctx, kcancel := context.WithTimeout(ctx, 30*time.Second)
	kf, err := loadtest.StartKfake(kctx, o.self, loadtest.ClusterSize, "bench", o.partitions)
	kcancel()
	if err != nil {
		return res, err
	}
	defer kf.Close()
	if !o.noThroughput {
		kfull := full
		kfull.ServerPIDs = []int{kf.PID()}
		if res.kfakeFull, err = loadtest.Produce(ctx, kf.Addrs, kfull); err != nil {
			return res, fmt.Errorf("kfake produce: %w", err)
		}
	}
	if res.kfakePaced, err = loadtest.Produce(ctx, kf.Addrs, paced); err != nil {
		return res, fmt.Errorf("kfake produce at a fixed rate: %w", err)
	}
	if o.txnRecords > 0 {
		if res.kfakeTxn, err = loadtest.ProduceTxn(ctx, kf.Addrs, txn); err != nil {
			return res, fmt.Errorf("kfake transactional produce: %w", err)
		}
	}
	return res, nil
}

func printCluster(out io.Writer, o clusterOptions, r clusterResults) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "3 brokers, RF 3, acks=all, min.insync.replicas=2\ttributary\tkfake (1 copy)\ttributary/kfake\ttarget\tresult\t\n")
	t := table{w: w, skipKfake: o.skipKfake, cores: o.cores, brokers: loadtest.ClusterSize}
	if !o.noThroughput {
		t.throughput(fmt.Sprintf("produce throughput (linger %v)", loadtest.ThroughputLinger), r.full.MiBps, r.kfakeFull.MiBps, 1)
		t.cpu("produce:", r.full.Cost, r.kfakeFull.Cost, ratio(r.full.MiBps, r.kfakeFull.MiBps), 1)
		t.latency("flat out", r.full, r.kfakeFull, "", "")
		t.firstAck("flat out", r.full, r.kfakeFull)
	}
	rate := mibps(o.latencyRate)
	t.achieved(rate, r.paced, r.kfakePaced)
	// The latency targets hold only at the offered rate: a cluster that
	// fell behind it was measured at a lighter load.
	reached := r.paced.MiBps >= 0.95*rate
	p99Result := verdict(r.paced.Latency.P99 < p99Target)
	maxResult := verdict(r.paced.Latency.Max <= maxTarget)
	switch {
	case !reached:
		p99Result, maxResult = "not met (rate not reached)", "not met (rate not reached)"
	case o.latencyDuration < stallRun && r.paced.Latency.Max <= maxTarget:
		maxResult = fmt.Sprintf("not judged (%v run)", o.latencyDuration)
	}
	phase := fmt.Sprintf("at %.0f MiB/s, linger 0, %v", rate, o.latencyDuration)
	t.latency(phase, r.paced, r.kfakePaced, fmt.Sprintf("p99 < %v", p99Target), p99Result)
	fmt.Fprintf(w, "slowest produce, %s\t%s ms\t%s\t\tnone over %v in %v\t%s\t\n", phase, msText(r.paced.Latency.Max),
		t.kf(msText(r.kfakePaced.Latency.Max)+" ms"), maxTarget, stallRun, maxResult)
	if o.txnRecords > 0 {
		t.transactions(fmt.Sprintf("transactions of %d, %d producers, %v", o.txnRecords, o.txnProducers, o.duration), r.txn, r.kfakeTxn)
	}
	var worst time.Duration
	for i, k := range r.kills {
		role := ""
		if k.Controller {
			role = ", also controller"
		}
		took := fmt.Sprintf("none in %v", failoverDeadline)
		if k.Time > 0 {
			took = fmt.Sprintf("%.2f s", k.Time.Seconds())
		}
		worst = max(worst, k.Time)
		fmt.Fprintf(w, "failover %d: kill -9 broker %d%s (new leader %d)\t%s\t-\t\t< %v\t%s\t\n",
			i+1, k.Broker, role, k.NewLeader, took, failoverTarget, verdict(k.Time > 0 && k.Time < failoverTarget))
	}
	if len(r.kills) > 0 {
		allOK := true
		maxText := fmt.Sprintf("%.2f s", worst.Seconds())
		for _, k := range r.kills {
			allOK = allOK && k.Time > 0 && k.Time < failoverTarget
			if k.Time == 0 {
				maxText = fmt.Sprintf("> %v", failoverDeadline)
			}
		}
		fmt.Fprintf(w, "failover max\t%s\t-\t\t< %v\t%s\t\n", maxText, failoverTarget, verdict(allOK))
	}
	if m := r.many; m != nil {
		fmt.Fprintf(w, "%d partitions RF 3: created, all ISRs full\t%.1f s\t-\t\t\t\t\n", m.Partitions, m.Ready.Seconds())
		fmt.Fprintf(w, "%d partitions RF 3: created, every replica's log open\t%.1f s\t-\t\t\t\t\n", m.Partitions, m.Open.Seconds())
		fmt.Fprintf(w, "%d partitions RF 3: max broker RSS (%d replicas each)\t%.1f MiB\t-\t\t< 300 MiB\t%s\t\n",
			m.Partitions, m.ReplicasPerBroker, mib(m.MaxRSS()), verdict(m.MaxRSS() < manyRSSTarget))
		fmt.Fprintf(w, "%d partitions RF 3: Metadata (all topics) p50 / max\t%s / %s ms\t-\t\t< %v\t%s\t\n",
			m.Partitions, msText(m.Metadata.P50), msText(m.Metadata.Max), metadataTarget, verdict(m.Metadata.Max < metadataTarget))
		fmt.Fprintf(w, "%d partitions RF 3: Metadata p50 / max, response read, before the client decodes it\t%s / %s ms\t-\t\t\t\t\n",
			m.Partitions, msText(m.MetadataWire.P50), msText(m.MetadataWire.Max))
	}
	return w.Flush()
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "not met"
}

func mibps(bytesPerSecond float64) float64 { return bytesPerSecond / (1 << 20) }

// settingsFlag collects repeated -cluster-setting key=value flags.
type settingsFlag map[string]string

func (f settingsFlag) String() string {
	parts := make([]string, 0, len(f))
	for k, v := range f {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (f settingsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	f[strings.TrimSpace(k)] = strings.TrimSpace(v)
	return nil
}

// parseRate reads "20MiB" (per second) as bytes per second.
func parseRate(s string) (float64, error) {
	n, err := parseSize(strings.TrimSuffix(s, "/s"))
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%q: the rate must be positive", s)
	}
	return float64(n), nil
}
