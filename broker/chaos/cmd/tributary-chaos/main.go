// Command tributary-chaos runs the Jepsen-style safety test against
// tributary-broker processes on loopback: it starts the brokers, runs
// idempotent acks=all producers and consumers, transactional producers
// with read_committed consumers, injects faults (kill -9,
// SIGSTOP/SIGCONT, SIGTERM restarts, the loss of a rack, with the brokers
// in network namespaces network partitions, with each broker on a disk of
// its own a full disk), heals, reads everything back and checks the
// history; with -retention, retention deletes the topics' segments all
// along. It exits 1 when the history
// shows an anomaly, printing the events that show it, and 2 when the run
// itself failed.
//
//	tributary-chaos -binary bin/tributary-broker -nodes 3 -duration 2m -faults kill,pause,restart,kill-leader,kill-controller,lose-az
//
// A history can be re-checked later: tributary-chaos -check history.jsonl
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tributary/tributary/broker/chaos"
)

func main() { os.Exit(run()) }

func run() int {
	var (
		binary     = flag.String("binary", "bin/tributary-broker", "tributary-broker executable")
		dir        = flag.String("dir", "", "working directory for data, configs and logs (default: a new temporary directory)")
		nodes      = flag.Int("nodes", 3, "brokers; racks cycle a, b, c; the first three are the controller voters")
		partitions = flag.Int("partitions", 6, "partitions of the test topic")
		rf         = flag.Int("rf", 0, "replication factor (default: min(3, nodes))")
		minISR     = flag.Int("min-isr", 0, "min.insync.replicas (default: 2 with rf 3, else 1)")
		producers  = flag.Int("producers", 3, "idempotent acks=all producers")
		rate       = flag.Float64("rate", 200, "sends per second per producer (0: unlimited)")
		consumers  = flag.Int("consumers", 2, "consumers")
		txnProds   = flag.Int("txn-producers", 2, "transactional producers (0: no transactional workload)")
		txnCons    = flag.Int("txn-consumers", 1, "read_committed consumers of the transactional topic")
		txnRate    = flag.Float64("txn-rate", 20, "transactions per second per transactional producer")
		duration   = flag.Duration("duration", 2*time.Minute, "time under faults")
		interval   = flag.Duration("interval", 5*time.Second, "time between fault starts")
		faultLen   = flag.Duration("fault-duration", 2*time.Second, "how long each fault lasts before healing")
		faults     = flag.String("faults", "kill,kill-leader,kill-controller,pause,restart,lose-az", "fault kinds, comma separated (also: reassign, best with more -nodes than replicas; the network partitions partition-isolate, partition-halves, partition-leader, partition-bridge, partition-oneway, partition-clients; disk-full)")
		seed       = flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed of the fault schedule")
		minFaults  = flag.Int("min-faults", 0, "fail the run if fewer faults were injected")
		history    = flag.String("history", "", "write the history here (JSON lines)")
		check      = flag.String("check", "", "only check an existing history file")
		useTLS     = flag.Bool("tls", false, "run every connection over TLS: clients on SSL listeners, replication and the metadata quorum with broker certificates both ways")
		netns      = flag.Bool("netns", false, "run each broker in its own network namespace on a bridge the run creates and removes (root, ip(8)); on whenever -faults has a partition-* kind")
		diskMiB    = flag.Int("disk-mib", 0, "give each broker a disk of its own of this many MiB (a tmpfs the run mounts and unmounts; root); 256 whenever -faults has disk-full")
		retention  = flag.Duration("retention", 0, "retention.ms of the test topics, the transactional one's too (0: the default 7 days); with it, small segments (-segment-bytes), a 1 s retention check and a 2 s file.delete.delay.ms, so that segments are deleted, and delayed-deleted, under the faults")
		segBytes   = flag.Int("segment-bytes", 16384, "segment.bytes of the test topics with -retention")
		reread     = flag.Duration("reread", 0, "consumers start over from the log start this often (default: half of -retention with it, else only when what they read is gone)")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	if *check != "" {
		f, err := os.Open(*check)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		events, err := chaos.ReadHistory(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		res := chaos.Check(events, chaos.Options{RequireAllSeen: true, Retention: *retention})
		fmt.Print(res.Report(events, 50))
		if !res.Valid {
			return 1
		}
		return 0
	}

	if *dir == "" {
		d, err := os.MkdirTemp("", "tributary-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		*dir = d
	}
	if *rf == 0 {
		*rf = min(3, *nodes)
	}
	if *minISR == 0 {
		*minISR = 1
		if *rf >= 3 {
			*minISR = 2
		}
	}
	var kinds []chaos.FaultKind
	for _, k := range strings.Split(*faults, ",") {
		kind := chaos.FaultKind(strings.TrimSpace(k))
		kinds = append(kinds, kind)
		*netns = *netns || kind.IsPartition()
		if kind.NeedsDisks() && *diskMiB <= 0 {
			*diskMiB = 256
		}
	}
	if err := chaos.CheckFaults(kinds, *netns, *diskMiB > 0); err != nil {
		fmt.Fprintf(os.Stderr, "-faults: %v\n", err)
		return 2
	}
	if *netns {
		if err := chaos.NetnsSupport(); err != nil {
			fmt.Fprintf(os.Stderr, "-netns: %v (leave the partition-* kinds out of -faults to run without)\n", err)
			return 2
		}
	}
	if *diskMiB > 0 {
		if err := chaos.DiskSupport(); err != nil {
			fmt.Fprintf(os.Stderr, "-disk-mib: %v (leave disk-full out of -faults to run without)\n", err)
			return 2
		}
	}
	settings := map[string]string{
		"min.insync.replicas":        fmt.Sprint(*minISR),
		"default.replication.factor": fmt.Sprint(*rf),
	}
	var topicConfigs map[string]*string
	if *retention < 0 || *segBytes < 14 {
		fmt.Fprintf(os.Stderr, "-retention must not be negative and -segment-bytes must be at least 14\n")
		return 2
	}
	if *retention > 0 {
		if *reread == 0 {
			*reread = *retention / 2
		}
		settings["log.retention.check.interval.ms"] = "1000"
		topicConfigs = chaos.RetentionConfigs(*retention, *segBytes, 2*time.Second)
	}
	c, err := chaos.NewCluster(chaos.ClusterConfig{Binary: *binary, Dir: *dir, Nodes: *nodes, TLS: *useTLS, Netns: *netns, DiskSize: int64(*diskMiB) << 20, Settings: settings})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("chaos run", "dir", *dir, "nodes", *nodes, "seed", *seed, "duration", *duration, "tls", *useTLS, "netns", *netns, "disk_mib", *diskMiB, "retention", *retention)
	out, err := chaos.Run(ctx, chaos.RunConfig{
		Cluster: c,
		Workload: chaos.WorkloadConfig{Partitions: int32(*partitions), ReplicationFactor: int16(*rf), Producers: *producers, Consumers: *consumers, Rate: *rate,
			TxnProducers: *txnProds, TxnConsumers: *txnCons, TxnRate: *txnRate, TopicConfigs: topicConfigs, RereadEvery: *reread},
		Retention: *retention,
		Nemesis:   chaos.NemesisConfig{Faults: kinds, Interval: *interval, Duration: *faultLen, Seed: *seed},
		Duration:  *duration,
		Logger:    log,
	})
	if *history != "" && len(out.Events) > 0 {
		if f, ferr := os.Create(*history); ferr == nil {
			if werr := chaos.WriteHistory(f, out.Events); werr != nil {
				log.Error("writing history", "err", werr)
			}
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos run failed: %v\n", err)
		return 2
	}
	fmt.Printf("seed %d, %d faults\n%s", *seed, out.Faults, out.Result.Report(out.Events, 50))
	if out.Result.Stats.Acknowledged == 0 {
		fmt.Println("no send was acknowledged: the workload made no progress")
		return 1
	}
	if *txnProds > 0 && out.Result.Stats.TxnCommitted == 0 {
		fmt.Println("no transaction committed: the transactional workload made no progress")
		return 1
	}
	if out.Faults < *minFaults {
		fmt.Printf("only %d faults injected, want at least %d\n", out.Faults, *minFaults)
		return 1
	}
	if !out.Result.Valid {
		return 1
	}
	return 0
}
