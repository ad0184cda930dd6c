package chaos

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/internal/testenv"
)

// joinListedWithin bounds how long a broker that joined a running cluster
// may be missing from any broker's Metadata once every new broker serves:
// registration is one metadata command, replicated to every broker within
// a few heartbeats, so seconds are generous even on a loaded machine.
const joinListedWithin = 20 * time.Second

// TestJoinedBrokersListedByEveryBroker starts three brokers, creates a
// replicated topic, then starts brokers 4-6 (non-voters that join the
// running quorum) and requires every broker's own Metadata answer to list
// all six, with their racks, within joinListedWithin.
func TestJoinedBrokersListedByEveryBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six broker processes; skipped with -short")
	}
	c, err := NewCluster(ClusterConfig{Binary: testenv.BrokerBinary(t), Dir: t.TempDir(), Nodes: 6,
		Settings: map[string]string{"default.replication.factor": "3", "min.insync.replicas": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	serve := func(ids ...int32) {
		t.Helper()
		for _, id := range ids {
			if err := c.Start(id); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			if err := c.WaitServing(ctx, id); err != nil {
				t.Fatalf("broker %d: %v\n%s", id, err, c.Log(id, 2000))
			}
		}
	}
	serve(1, 2, 3)
	waitListed(ctx, t, c, []int32{1, 2, 3}, []int32{1, 2, 3}, joinListedWithin)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()[:3]...), kgo.DefaultProduceTopic("joined"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, 6, 3, nil, "joined"); err != nil || resp.Err != nil {
		t.Fatalf("creating topic joined: %v %v", err, resp.Err)
	}
	const records = 300
	for i := range records {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "%d", i), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("producing record %d: %v", i, err)
		}
	}

	serve(4, 5, 6)
	start := time.Now()
	all := []int32{1, 2, 3, 4, 5, 6}
	waitListed(ctx, t, c, all, all, joinListedWithin)
	t.Logf("brokers 4-6 listed by every broker %s after they all served", time.Since(start).Round(time.Millisecond))

	// Move the topic onto the new brokers: the even partitions entirely
	// (six replicas while the copy runs), the odd ones by one replica.
	targets := map[int32][]int32{}
	var req kadm.AlterPartitionAssignmentsReq
	for p := range int32(6) {
		target := []int32{4 + p%3, 4 + (p+1)%3, 4 + (p+2)%3}
		if p%2 == 1 {
			target = []int32{4 + p%3, 1 + (p+1)%3, 1 + (p+2)%3}
		}
		targets[p] = target
		req.Assign("joined", p, target)
	}
	adm := kadm.NewClient(cl)
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("reassigning joined onto brokers 4-6: %v", err)
	}
	start = time.Now()
	waitReassigned(ctx, t, c, "joined", targets, reassignedWithin)
	t.Logf("reassignment complete and in sync on every broker after %s", time.Since(start).Round(time.Millisecond))

	consumer, err := kgo.NewClient(kgo.SeedBrokers(c.Bootstrap()...), kgo.ConsumeTopics("joined"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]bool{}
	for len(seen) < records && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)] = true })
	}
	if len(seen) != records {
		t.Fatalf("read back %d of %d records after the reassignment", len(seen), records)
	}
}

// reassignedWithin bounds a reassignment of a few hundred records: the
// new replicas copy them in one fetch and join the ISR at once.
const reassignedWithin = 30 * time.Second

// waitReassigned polls every broker until none lists a running
// reassignment and each one's Metadata has every partition on its target
// replicas, in that order, with all of them in sync and a leader among
// them; it fails after limit with what each broker answered.
func waitReassigned(ctx context.Context, t *testing.T, c *Cluster, topic string, targets map[int32][]int32, limit time.Duration) {
	t.Helper()
	clients := map[int32]*kgo.Client{}
	for _, n := range c.Nodes() {
		cl, err := kgo.NewClient(append(c.ClientOpts(), kgo.SeedBrokers(n.KafkaAddr()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[n.ID] = cl
	}
	deadline := time.Now().Add(limit)
	for {
		problems := map[int32]string{}
		for id, cl := range clients {
			if p := reassignmentProblem(ctx, cl, topic, targets); p != "" {
				problems[id] = p
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("after %v: %v", limit, problems)
			for _, n := range c.Nodes() {
				msg += fmt.Sprintf("\n--- broker %d's log:\n%s", n.ID, c.Log(n.ID, 2000))
			}
			t.Fatal(msg)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the reassignment of %s: %v (last answers %v)", topic, ctx.Err(), problems)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reassignmentProblem asks the client's only seed whether topic is where
// targets says, complete and in sync; "" when it is.
func reassignmentProblem(ctx context.Context, cl *kgo.Client, topic string, targets map[int32][]int32) string {
	seed := cl.SeedBrokers()[0]
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lr, err := seed.Request(rctx, kmsg.NewPtrListPartitionReassignmentsRequest())
	if err != nil {
		return err.Error()
	}
	if running := lr.(*kmsg.ListPartitionReassignmentsResponse).Topics; len(running) > 0 {
		return fmt.Sprintf("reassignments running: %+v", running)
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := seed.Request(rctx, req)
	if err != nil {
		return err.Error()
	}
	md := resp.(*kmsg.MetadataResponse)
	if len(md.Topics) != 1 || len(md.Topics[0].Partitions) != len(targets) {
		return fmt.Sprintf("metadata of %s: %+v", topic, md.Topics)
	}
	for _, p := range md.Topics[0].Partitions {
		want := targets[p.Partition]
		isr := slices.Sorted(slices.Values(p.ISR))
		if !slices.Equal(p.Replicas, want) || !slices.Equal(isr, slices.Sorted(slices.Values(want))) || !slices.Contains(want, p.Leader) {
			return fmt.Sprintf("partition %d: replicas %v isr %v leader %d, want replicas %v all in sync", p.Partition, p.Replicas, p.ISR, p.Leader, want)
		}
	}
	return ""
}

// waitListed polls every broker in askIDs with its own Metadata request
// until each lists exactly the brokers in want, with the rack the cluster
// gave them, or fails after limit with what each broker answered.
func waitListed(ctx context.Context, t *testing.T, c *Cluster, askIDs, want []int32, limit time.Duration) {
	t.Helper()
	clients := map[int32]*kgo.Client{}
	for _, id := range askIDs {
		n, _ := c.Node(id)
		cl, err := kgo.NewClient(append(c.ClientOpts(), kgo.SeedBrokers(n.KafkaAddr()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[id] = cl
	}
	deadline := time.Now().Add(limit)
	for {
		answers := map[int32]string{}
		for _, id := range askIDs {
			if got, err := listedBy(ctx, c, clients[id]); err != nil {
				answers[id] = err.Error()
			} else if !slices.Equal(got, want) {
				answers[id] = fmt.Sprint(got)
			}
		}
		if len(answers) == 0 {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("after %v, brokers whose Metadata does not list %v: %v", limit, want, answers)
			for _, id := range want {
				msg += fmt.Sprintf("\n--- broker %d's log:\n%s", id, c.Log(id, 3000))
			}
			t.Fatal(msg)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for brokers %v in every Metadata: %v (last answers %v)", want, ctx.Err(), answers)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listedBy asks one broker (the client's only seed, never a broker it
// learnt of) for Metadata and returns the broker ids it lists, checking
// each one's rack.
func listedBy(ctx context.Context, c *Cluster, cl *kgo.Client) ([]int32, error) {
	seeds := cl.SeedBrokers()
	if len(seeds) != 1 {
		return nil, fmt.Errorf("%d seed brokers", len(seeds))
	}
	req := kmsg.NewPtrMetadataRequest()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := seeds[0].Request(rctx, req)
	if err != nil {
		return nil, err
	}
	var ids []int32
	for _, b := range resp.(*kmsg.MetadataResponse).Brokers {
		n, ok := c.Node(b.NodeID)
		if !ok {
			return nil, fmt.Errorf("unknown broker %d listed", b.NodeID)
		}
		if b.Rack == nil || *b.Rack != n.Rack {
			return nil, fmt.Errorf("broker %d listed with rack %v, want %s", b.NodeID, b.Rack, n.Rack)
		}
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids, nil
}
