package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tributary/tributary/broker/chaos"
	"github.com/tributary/tributary/broker/loadtest"
)

// transport is one row of a TLS table.
type transport struct{ name, label string }

// secureListeners are the transports of the one-broker TLS table,
// plaintext first: the others are compared with it.
var secureListeners = []transport{
	{loadtest.ListenerPlaintext, "PLAINTEXT (9092)"},
	{loadtest.ListenerTLS, "SSL (9094)"},
	{loadtest.ListenerIAM, "SASL_SSL IAM (9098)"},
}

// The two clusters of the three-broker TLS table.
const (
	clusterPlaintext = "plaintext"
	clusterTLS       = "tls"
)

// secureClusters are the transports of the three-broker TLS table.
var secureClusters = []transport{
	{clusterPlaintext, "PLAINTEXT clients, plaintext in-cluster"},
	{clusterTLS, "SSL clients (9094), TLS in-cluster (9093, 9095)"},
}

// secureResults are, per listener, the throughput of each round.
type secureResults map[string][]loadtest.Result

// runSecure measures one broker through each of its PLAINTEXT, SSL and
// SASL_SSL IAM listeners with the single-broker throughput workload, in
// rounds that take the listeners in turn, so that a change in the
// machine's load falls on all of them alike.
func runSecure(ctx context.Context, o singleOptions, rounds int) (secureResults, error) {
	fmt.Fprintf(os.Stderr, "tributary TLS: one broker, PLAINTEXT, SSL and SASL_SSL IAM listeners, %d rounds ...\n", rounds)
	b, err := loadtest.StartSecureBroker(ctx, o.bin, filepath.Join(o.dir, "secure"))
	if err != nil {
		return nil, err
	}
	defer b.Close()
	res := secureResults{}
	for r := range rounds {
		for _, l := range secureListeners {
			opts := loadtest.Options{Topic: fmt.Sprintf("bench-%s-%d", l.name, r), Partitions: o.partitions, RecordBytes: o.recordBytes,
				Duration: o.duration, Linger: loadtest.ThroughputLinger, Client: b.ClientOpts(l.name), BrokerPIDs: []int{b.PID()}}
			out, err := loadtest.Throughput(ctx, b.Listeners[l.name], opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.label, err)
			}
			res[l.name] = append(res[l.name], out)
		}
	}
	return res, nil
}

// runSecureCluster measures two three-broker RF 3 clusters with the same
// workload: one all plaintext, one with TLS everywhere (SSL clients,
// replication and the metadata quorum over TLS with broker certificates
// both ways, as MSK's in-cluster encryption). Both run for the whole
// measurement and the rounds take them in turn, so that a change in the
// machine's load falls on both alike.
func runSecureCluster(ctx context.Context, o singleOptions, rounds int) (secureResults, error) {
	fmt.Fprintf(os.Stderr, "tributary TLS: two clusters of %d brokers, RF 3, plaintext and TLS everywhere, %d rounds ...\n", loadtest.ClusterSize, rounds)
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	clusters := map[string]*chaos.Cluster{}
	defer func() {
		for _, c := range clusters {
			c.Close()
		}
	}()
	for _, t := range secureClusters {
		start := loadtest.StartCluster
		if t.name == clusterTLS {
			start = loadtest.StartSecureCluster
		}
		c, err := start(sctx, o.bin, filepath.Join(o.dir, "cluster-"+t.name), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.label, err)
		}
		clusters[t.name] = c
	}
	res := secureResults{}
	for r := range rounds {
		for _, t := range secureClusters {
			c := clusters[t.name]
			opts := loadtest.Options{Topic: fmt.Sprintf("bench-%d", r), Partitions: o.partitions, RecordBytes: o.recordBytes,
				Duration: o.duration, Linger: loadtest.ThroughputLinger, Client: c.ClientOpts(), BrokerPIDs: loadtest.PIDs(c)}
			out, err := loadtest.ClusterThroughput(ctx, c.Bootstrap(), loadtest.ClusterSize, opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.label, err)
			}
			res[t.name] = append(res[t.name], out)
		}
	}
	return res, nil
}

// printSecure prints a TLS table: each transport's mean produce and
// consume throughput over the rounds, the CPU time consuming cost on the
// brokers and in the client, and the throughput against the first
// transport (plaintext) with the 15 % budget.
func printSecure(out io.Writer, title string, transports []transport, res secureResults) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s\tproduce (linger %v)\tconsume\tconsume CPU s/GiB brokers\tclient\tproduce vs plaintext\tconsume vs plaintext\ttarget\tresult\t\n", title, loadtest.ThroughputLinger)
	// CPU seconds per GiB consumed, over every round: what TLS costs on
	// each side, whatever else the machine ran meanwhile.
	cpuPerGiB := func(rs []loadtest.Result) (broker, client float64) {
		var b, c time.Duration
		var bytes int64
		for _, r := range rs {
			b, c, bytes = b+r.ConsumeCPU.Broker, c+r.ConsumeCPU.Client, bytes+r.ConsumeBytes
		}
		if bytes == 0 {
			return 0, 0
		}
		gib := float64(bytes) / (1 << 30)
		return b.Seconds() / gib, c.Seconds() / gib
	}
	mean := func(rs []loadtest.Result) (produce, consume float64) {
		for _, r := range rs {
			produce += r.Produce.MiBps
			consume += r.ConsumeMiBps
		}
		return produce / float64(len(rs)), consume / float64(len(rs))
	}
	plainP, plainC := mean(res[transports[0].name])
	for i, l := range transports {
		p, c := mean(res[l.name])
		rounds := ""
		for i, r := range res[l.name] {
			if i > 0 {
				rounds += ", "
			}
			rounds += fmt.Sprintf("%.0f/%.0f", r.Produce.MiBps, r.ConsumeMiBps)
		}
		bc, cc := cpuPerGiB(res[l.name])
		if i == 0 {
			fmt.Fprintf(w, "%s (rounds %s)\t%.1f MiB/s\t%.1f MiB/s\t%.2f\t%.2f\t\t\t\t\t\n", l.label, rounds, p, c, bc, cc)
			continue
		}
		pr, cr := p/plainP, c/plainC
		fmt.Fprintf(w, "%s (rounds %s)\t%.1f MiB/s\t%.1f MiB/s\t%.2f\t%.2f\t%.2fx\t%.2fx\t>= 0.85x\t%s\t\n", l.label, rounds, p, c, bc, cc, pr, cr, verdict(pr >= 0.85 && cr >= 0.85))
	}
	return w.Flush()
}
