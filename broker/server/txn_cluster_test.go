package server

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCoordinatorOf asks broker via for the coordinator of a transactional
// id, creating __transaction_state on first use.
func (c *inProcessCluster) txnCoordinatorOf(via int32, id string) int32 {
	c.t.Helper()
	var node int32
	waitCluster(c.t, 30*time.Second, func() error {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKey = 3, 1, id
		resp := roundTrip[*kmsg.FindCoordinatorResponse](c.t, c.servers[via], req)
		if resp.ErrorCode != 0 {
			return fmt.Errorf("FindCoordinator: error %d", resp.ErrorCode)
		}
		node = resp.NodeID
		return nil
	})
	return node
}

func (c *inProcessCluster) seeds(except ...int32) []string {
	var out []string
	for id, s := range c.servers {
		if !slices.Contains(except, id) {
			out = append(out, s.Addr().String())
		}
	}
	slices.Sort(out)
	return out
}

// TestClusterTransactionSurvivesCoordinatorCrash: markers reach partition
// leaders on other brokers, and a transaction open when its coordinator's
// broker crashes is found Ongoing, with its partitions, by the coordinator
// that takes over its partition of __transaction_state (loaded from the
// replicated log), and committed through it: read_committed consumers see
// each committed record once, nothing else. (A crash while the EndTxn is
// in flight leaves its outcome unknown to the client, which must abort:
// the ETL test in broker/clienttest covers that.)
func TestClusterTransactionSurvivesCoordinatorCrash(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("tx", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const id = "cluster-producer"
	coord := c.txnCoordinatorOf(1, id)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(60*time.Second),
		kgo.RetryTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var want []string
	txn := func(prefix string, commit bool, beforeEnd func()) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for p := range int32(3) {
			r := &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d", prefix, p)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("producing %s: %v", r.Value, err)
			}
			if commit {
				want = append(want, string(r.Value))
			}
		}
		if beforeEnd != nil {
			beforeEnd()
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("ending %s: %v", prefix, err)
		}
	}
	txn("first", true, nil)
	txn("aborted", false, nil)
	survivor := int32(1)
	if coord == 1 {
		survivor = 2
	}
	txn("second", true, func() {
		t.Logf("crashing broker %d, the transaction coordinator", coord)
		c.servers[coord].node.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = c.servers[coord].Shutdown(sctx)
		// The partition of __transaction_state moves to a broker that
		// loads the open transaction from its replica of the log.
		waitCluster(t, 30*time.Second, func() error {
			next := c.txnCoordinatorOf(survivor, id)
			if next == coord {
				return fmt.Errorf("broker %d still coordinates %s", coord, id)
			}
			p, _ := c.servers[next].txnPartitionFor(id)
			d, code := c.servers[next].txn.Describe(p, id)
			if code != 0 || d.State.String() != "Ongoing" || len(d.Partitions) != 3 {
				return fmt.Errorf("new coordinator %d: %+v (code %d)", next, d, code)
			}
			return nil
		})
	})

	rc, err := kgo.NewClient(kgo.SeedBrokers(c.seeds(coord)...), kgo.ConsumeTopics("tx"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []string
	for len(got) < len(want) {
		fs := rc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed got %v, want %v", got, want)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// Nothing more arrives (the aborted records stay hidden).
	extra, cancelExtra := context.WithTimeout(ctx, time.Second)
	fs := rc.PollFetches(extra)
	cancelExtra()
	fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
}
