package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// RunConfig is one chaos run.
type RunConfig struct {
	Cluster  *Cluster
	Workload WorkloadConfig
	Nemesis  NemesisConfig
	// Duration of the faulty phase; then the cluster is healed, the
	// clients stop, and a drain reads everything back.
	Duration time.Duration
	// Settle is how long to wait after healing before the drain, for
	// leaders to be elected and followers to catch up.
	Settle time.Duration
	// Retention is the workload topic's retention.ms when it sets one
	// (Workload.TopicConfigs, RetentionConfigs): the checker excuses what
	// retention removed (Options.Retention).
	Retention time.Duration
	Logger    *slog.Logger
}

// RetentionConfigs are the workload topic's configs that make retention
// run under the faults: retention.ms, segments of segmentBytes (rolled
// often, so whole segments age out), and file.delete.delay.ms, so that
// deleted segments wait renamed on disk before their files go. The
// brokers' log.retention.check.interval.ms must be short too (seconds).
func RetentionConfigs(retention time.Duration, segmentBytes int, deleteDelay time.Duration) map[string]*string {
	s := func(v int64) *string { x := strconv.FormatInt(v, 10); return &x }
	return map[string]*string{
		"retention.ms":         s(retention.Milliseconds()),
		"segment.bytes":        s(int64(segmentBytes)),
		"file.delete.delay.ms": s(deleteDelay.Milliseconds()),
	}
}

// Outcome is what a run produced.
type Outcome struct {
	Events []Event
	Faults int
	Result Result
}

// Run starts the cluster, creates the topic, runs the clients under
// faults, heals, drains and checks the history.
func Run(ctx context.Context, cfg RunConfig) (Outcome, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Workload.Logger, cfg.Nemesis.Logger = cfg.Logger, cfg.Logger
	cfg.Workload.Brokers = cfg.Cluster.Bootstrap()
	cfg.Workload.ClientOpts = append(cfg.Workload.ClientOpts, cfg.Cluster.ClientOpts()...)
	cfg.Workload.defaults()
	cfg.Nemesis.Topic = cfg.Workload.Topic
	if len(cfg.Nemesis.Faults) == 0 {
		cfg.Nemesis.Faults = []FaultKind{KillRandom}
	}
	if err := CheckFaults(cfg.Nemesis.Faults, cfg.Cluster.Network() != nil, cfg.Cluster.cfg.DiskSize > 0); err != nil {
		return Outcome{}, err
	}
	if cfg.Nemesis.Interval <= 0 {
		cfg.Nemesis.Interval = 2 * time.Second
	}
	if cfg.Nemesis.Duration <= 0 {
		cfg.Nemesis.Duration = time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.Nemesis.ReturnWithin <= 0 {
		cfg.Nemesis.ReturnWithin = 30 * time.Second
	}
	rec := NewRecorder()
	var out Outcome

	if err := cfg.Cluster.StartAll(); err != nil {
		return out, err
	}
	for _, n := range cfg.Cluster.Nodes() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := cfg.Cluster.WaitServing(wctx, n.ID)
		cancel()
		if err != nil {
			return out, fmt.Errorf("%w\n%s", err, cfg.Cluster.Log(n.ID, 4096))
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := WaitCluster(tctx, cfg.Workload, len(cfg.Cluster.Nodes()))
	if err == nil {
		err = CreateTopic(tctx, cfg.Workload)
	}
	if err == nil && cfg.Workload.TxnProducers > 0 {
		err = createTxnTopic(tctx, cfg.Workload)
	}
	cancel()
	if err != nil {
		return out, err
	}

	faultCtx, stopFaults := context.WithTimeout(ctx, cfg.Duration)
	defer stopFaults()
	clientCtx, stopClients := context.WithCancel(ctx)
	wait := runClients(clientCtx, cfg.Workload, rec)
	nem := &nemesis{cfg: cfg.Nemesis, c: cfg.Cluster, rec: rec, rnd: newRand(cfg.Nemesis.Seed)}
	faults, nemErr := nem.run(faultCtx)
	out.Faults = faults
	if nemErr != nil {
		// A broker that cannot come back fails the run now, with its
		// reason: the clients would only wait for it.
		stopClients()
		wait()
		out.Events = rec.Events()
		return out, fmt.Errorf("fault injection: %w", nemErr)
	}
	healErr := cfg.Cluster.Heal()
	if healErr == nil {
		healErr = cfg.Cluster.WaitAnswering(ctx, cfg.Nemesis.ReturnWithin)
	}
	if healErr != nil {
		stopClients()
		wait()
		out.Events = rec.Events()
		return out, fmt.Errorf("healing after the faults: %w", healErr)
	}
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
	}
	stopClients()
	wait()
	if crashes := cfg.Cluster.Crashes(); len(crashes) > 0 {
		// The heals started them again, so the history may well be
		// valid: the exit is the finding.
		out.Events = rec.Events()
		cr := crashes[0]
		return out, fmt.Errorf("%d broker exits the run did not cause; the first: node %d at %s (%s)\n--- node %d's log:\n%s",
			len(crashes), cr.Node, cr.At.Format("15:04:05.000"), cr.State, cr.Node, cfg.Cluster.Log(cr.Node, 4096))
	}
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = Drain(dctx, cfg.Workload, 999, rec)
	cancel()
	if err == nil && cfg.Workload.TxnProducers > 0 {
		// Transactions left open by a killed incarnation end by their
		// timeout at the latest.
		dctx, cancel := context.WithTimeout(ctx, 60*time.Second+3*cfg.Workload.TxnTimeout)
		err = DrainTxn(dctx, cfg.Workload, txnProducers(cfg.Workload), rec)
		cancel()
	}
	out.Events = rec.Events()
	if err != nil {
		return out, err
	}
	out.Result = Check(out.Events, Options{RequireAllSeen: true, Retention: cfg.Retention})
	return out, nil
}
