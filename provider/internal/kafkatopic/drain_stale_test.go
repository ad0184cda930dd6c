package kafkatopic

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/provider/internal/kafkaconn/kafkaconntest"
)

// TestCheckDrainConfirmsDeletedTopics: a topic with three replicas on three
// brokers refuses the drain of one. Once it is deleted, a broker that has
// not applied the deletion yet (kfake answers its Metadata with the answer
// from before) still lists it; that refusal is not the cluster's, since
// the other brokers, asked for the topic by name, do not know it, and the
// drain is allowed. While every broker still lists it, the refusal stands.
func TestCheckDrainConfirmsDeletedTopics(t *testing.T) {
	c, a, adm, ctx := kfakeAdmin(t)
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckDrain(ctx, []int32{2}, 0); !errors.Is(err, placement.ErrNotEnoughBrokers) {
		t.Fatalf("CheckDrain with the topic on every broker: %v, want ErrNotEnoughBrokers", err)
	}
	before := deleteBehindBroker0(ctx, t, c, a, adm, "gone")
	if err := a.CheckDrain(ctx, []int32{2}, 0); err != nil {
		t.Fatalf("CheckDrain refused on a deleted topic only broker 0 still lists: %v", err)
	}
	staleMetadata(c, before, "gone", 0, 1, 2)
	if err := a.CheckDrain(ctx, []int32{2}, 0); !errors.Is(err, placement.ErrNotEnoughBrokers) {
		t.Fatalf("CheckDrain with every broker listing the topic: %v, want ErrNotEnoughBrokers", err)
	}
}

// kfakeAdmin is an Admin on a three-broker kfake cluster, with an admin
// client of it and a minute's context, all closed when the test ends.
func kfakeAdmin(t *testing.T) (*kfake.Cluster, *Admin, *kadm.Client, context.Context) {
	t.Helper()
	c, conn := kafkaconntest.Kfake(t, 3)
	a := &Admin{Conn: conn}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	adm, err := a.Conn.Admin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return c, a, adm, ctx
}

// deleteBehindBroker0 deletes topic and has broker 0 answer Metadata as
// before the deletion (staleMetadata), as a broker that has not applied it
// yet; it returns that answer, for a test that makes more brokers stale.
func deleteBehindBroker0(ctx context.Context, t *testing.T, c *kfake.Cluster, a *Admin, adm *kadm.Client, topic string) *kmsg.MetadataResponse {
	t.Helper()
	cl, err := a.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	before, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	staleMetadata(c, before, topic, 0)
	return before
}

// staleMetadata makes nodes answer what they answered before the deletion
// of topic (before) when asked for it by name, and every broker when asked
// for all topics (so the first read, whichever broker it reaches, lists
// it), as brokers that have not applied the deletion yet do.
func staleMetadata(c *kfake.Cluster, before *kmsg.MetadataResponse, topic string, nodes ...int32) {
	c.ControlKey(int16(kmsg.Metadata), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.MetadataRequest)
		if req.Topics != nil && (!slices.Contains(nodes, c.CurrentNode()) ||
			!slices.ContainsFunc(req.Topics, func(t kmsg.MetadataRequestTopic) bool { return t.Topic != nil && *t.Topic == topic })) {
			return nil, nil, false
		}
		resp := *before
		resp.SetVersion(req.GetVersion())
		return &resp, nil, true
	})
}

// TestDrainLeavesOutTheMovesOfDeletedTopics: two topics of one replica per
// partition over three brokers, each with a partition on broker 2, so a
// drain of broker 2 is allowed and moves a partition of each. Once "gone" is deleted, a broker
// that has not applied the deletion yet still lists it; the moves planned
// from its answer are confirmed with every live broker, and the others do
// not know "gone": the round moves only "kept"'s partitions (before, it
// also asked to reassign "gone"'s, which the brokers refuse as an unknown
// topic and which failed the drain). While every broker still lists it,
// its moves stand.
func TestDrainLeavesOutTheMovesOfDeletedTopics(t *testing.T) {
	c, a, adm, ctx := kfakeAdmin(t)
	// kfake places each partition's one replica on a broker of its
	// choosing: partition 0 of each topic is put on the broker drained.
	const drained = 2
	for _, name := range []string{"gone", "kept"} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, name); err != nil {
			t.Fatal(err)
		}
		if err := c.MoveTopicPartition(name, 0, drained); err != nil {
			t.Fatal(err)
		}
	}
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := a.planDrainConfirmed(ctx, md, []int32{drained})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets["gone"]) == 0 || len(targets["kept"]) == 0 {
		t.Fatalf("draining broker %d before the deletion moves %v, want partitions of both topics", drained, targets)
	}
	before := deleteBehindBroker0(ctx, t, c, a, adm, "gone")
	md, err = adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Topics["gone"]; !ok {
		t.Fatal("the stale broker's metadata does not list the deleted topic: the test replays nothing")
	}
	targets, err = a.planDrainConfirmed(ctx, md, []int32{drained})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := targets["gone"]; ok || len(targets["kept"]) == 0 {
		t.Fatalf("draining broker %d with the deleted topic listed by broker 0 only moves %v, want only kept's partitions", drained, targets)
	}
	for p, replicas := range targets["kept"] {
		if slices.Contains(replicas, drained) {
			t.Errorf("kept-%d moves to %v, still on the drained broker %d", p, replicas, drained)
		}
	}
	staleMetadata(c, before, "gone", 0, 1, 2)
	if targets, err = a.planDrainConfirmed(ctx, md, []int32{drained}); err != nil || len(targets["gone"]) == 0 {
		t.Fatalf("draining broker %d with every broker listing the topic: %v, %v; want its moves", drained, targets, err)
	}
}

// TestDescribeConfirmsADeletedTopic: a topic is deleted; the first broker
// asked, and broker 0 whenever asked, answer as before the deletion (kfake
// replays the topic's Metadata, and its configs). Describe asks every live broker for it by
// name, and the others do not know it: ErrNotFound, so a refresh drops the
// topic from the state now rather than one refresh later.
func TestDescribeConfirmsADeletedTopic(t *testing.T) {
	c, a, adm, ctx := kfakeAdmin(t)
	if _, err := adm.CreateTopic(ctx, 2, 3, nil, "gone"); err != nil {
		t.Fatal(err)
	}
	if tp, err := a.Describe(ctx, "gone"); err != nil || len(tp.Partitions) != 2 {
		t.Fatalf("Describe of the topic: %+v, %v", tp, err)
	}
	cl, err := a.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("gone")
	req.Topics = append(req.Topics, rt)
	before, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	dreq := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, "gone"
	dreq.Resources = append(dreq.Resources, res)
	configs, err := dreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopics(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// The topic's configs are read from a broker as stale.
	c.ControlKey(int16(kmsg.DescribeConfigs), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.DescribeConfigsRequest)
		if !slices.ContainsFunc(req.Resources, func(r kmsg.DescribeConfigsRequestResource) bool { return r.ResourceName == "gone" }) {
			return nil, nil, false
		}
		resp := *configs
		resp.SetVersion(req.GetVersion())
		return &resp, nil, true
	})
	asked := 0
	c.ControlKey(int16(kmsg.Metadata), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.MetadataRequest)
		if !slices.ContainsFunc(req.Topics, func(t kmsg.MetadataRequestTopic) bool { return t.Topic != nil && *t.Topic == "gone" }) {
			return nil, nil, false
		}
		asked++
		if asked > 1 && c.CurrentNode() != 0 {
			return nil, nil, false
		}
		resp := *before
		resp.SetVersion(req.GetVersion())
		return &resp, nil, true
	})
	if tp, err := a.Describe(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe of a deleted topic the first broker still lists: %+v, %v; want ErrNotFound", tp, err)
	}
}

// TestRebalanceLeavesOutTheMovesOfDeletedTopics: broker 2 holds nothing,
// "gone" has six partitions on broker 0 and "kept" three on broker 1, one
// replica each. Once "gone" is deleted, broker 0 still lists it (kfake
// replays the metadata from before); planned from that answer, broker 2's
// fair share comes from broker 0, all of it gone's partitions, which the
// brokers would refuse to move. Confirmed with every live broker, "gone" is
// left out and the share is planned from "kept" alone.
func TestRebalanceLeavesOutTheMovesOfDeletedTopics(t *testing.T) {
	c, a, adm, ctx := kfakeAdmin(t)
	for name, at := range map[string]struct{ partitions, broker int32 }{"gone": {6, 0}, "kept": {3, 1}} {
		if _, err := adm.CreateTopic(ctx, at.partitions, 1, nil, name); err != nil {
			t.Fatal(err)
		}
		for p := range at.partitions {
			if err := c.MoveTopicPartition(name, p, at.broker); err != nil {
				t.Fatal(err)
			}
		}
	}
	deleteBehindBroker0(ctx, t, c, a, adm, "gone")
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Topics["gone"]; !ok {
		t.Fatal("the stale broker's metadata does not list the deleted topic: the test replays nothing")
	}
	targets, err := a.planOntoConfirmed(ctx, md, []int32{2})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := targets["gone"]; ok || len(targets["kept"]) != 1 {
		t.Fatalf("rebalancing onto broker 2 with the deleted topic listed by broker 0 moves %v, want one partition of kept", targets)
	}
	for p, replicas := range targets["kept"] {
		if !slices.Equal(replicas, []int32{2}) {
			t.Errorf("kept-%d moves to %v, want [2]", p, replicas)
		}
	}
}
