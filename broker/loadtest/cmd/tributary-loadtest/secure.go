package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/tributary/tributary/broker/loadtest"
)

// secureListeners are the transports of the TLS table, plaintext first:
// the others are compared with it.
var secureListeners = []struct{ name, label string }{
	{loadtest.ListenerPlaintext, "PLAINTEXT (9092)"},
	{loadtest.ListenerTLS, "SSL (9094)"},
	{loadtest.ListenerIAM, "SASL_SSL IAM (9098)"},
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
				Duration: o.duration, Linger: loadtest.ThroughputLinger, Client: b.ClientOpts(l.name)}
			out, err := loadtest.Throughput(ctx, b.Listeners[l.name], opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", l.label, err)
			}
			res[l.name] = append(res[l.name], out)
		}
	}
	return res, nil
}

func printSecure(out io.Writer, o singleOptions, res secureResults) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "1 broker, %d partitions, acks=all, by listener\tproduce (linger %v)\tconsume\tproduce vs PLAINTEXT\tconsume vs PLAINTEXT\ttarget\tresult\t\n", o.partitions, loadtest.ThroughputLinger)
	mean := func(rs []loadtest.Result) (produce, consume float64) {
		for _, r := range rs {
			produce += r.Produce.MiBps
			consume += r.ConsumeMiBps
		}
		return produce / float64(len(rs)), consume / float64(len(rs))
	}
	plainP, plainC := mean(res[loadtest.ListenerPlaintext])
	for _, l := range secureListeners {
		p, c := mean(res[l.name])
		rounds := ""
		for i, r := range res[l.name] {
			if i > 0 {
				rounds += ", "
			}
			rounds += fmt.Sprintf("%.0f/%.0f", r.Produce.MiBps, r.ConsumeMiBps)
		}
		if l.name == loadtest.ListenerPlaintext {
			fmt.Fprintf(w, "%s (rounds %s)\t%.1f MiB/s\t%.1f MiB/s\t\t\t\t\t\n", l.label, rounds, p, c)
			continue
		}
		pr, cr := p/plainP, c/plainC
		fmt.Fprintf(w, "%s (rounds %s)\t%.1f MiB/s\t%.1f MiB/s\t%.2fx\t%.2fx\t>= 0.85x\t%s\t\n", l.label, rounds, p, c, pr, cr, verdict(pr >= 0.85 && cr >= 0.85))
	}
	return w.Flush()
}
