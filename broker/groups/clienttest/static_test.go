package clienttest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzGoStaticMemberRestartsWithoutRebalance: a static member
// (group.instance.id, KIP-345) restarts within its session timeout and comes
// back in the same generation, with its old partitions, and the other member
// never leaves that generation: no rebalance.
func TestFranzGoStaticMemberRestartsWithoutRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, _ := startBroker(t, t.TempDir())
	adm := newAdmin(t, addr)
	const topic, group = "static", "static-group"
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}

	start := func(instance string) *kgo.Client {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(addr),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.InstanceID(instance),
			kgo.SessionTimeout(10*time.Second),
			kgo.HeartbeatInterval(100*time.Millisecond),
			kgo.Balancers(kgo.RangeBalancer()),
		)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if f := cl.PollFetches(ctx); f.IsClientClosed() || ctx.Err() != nil {
					return
				}
			}
		}()
		return cl
	}
	generation := func(cl *kgo.Client) int32 { _, gen := cl.GroupMetadata(); return gen }

	stay := start("stay")
	defer stay.Close()
	restarting := start("restarting")
	var gen int32
	waitUntil(t, "two stable members in one generation", 20*time.Second, func() bool {
		d := describeGroup(t, ctx, adm, group)
		gen = generation(stay)
		return d.State == "Stable" && len(d.Members) == 2 && gen > 0 && generation(restarting) == gen
	})
	oldID, assignedBefore := staticMember(t, ctx, adm, group, "restarting")
	if assignedBefore == "" {
		t.Fatal("the static member has no partitions")
	}

	// A static member's Close does not send LeaveGroup; it comes back with
	// the same instance id before its session times out.
	restarting.Close()
	restarted := start("restarting")
	defer restarted.Close()
	waitUntil(t, "the restarted member to be back", 20*time.Second, func() bool {
		id, _ := staticMember(t, ctx, adm, group, "restarting")
		return id != "" && id != oldID && generation(restarted) > 0
	})
	if got := generation(restarted); got != gen {
		t.Fatalf("restarted static member is in generation %d, want %d (no rebalance)", got, gen)
	}
	if got := generation(stay); got != gen {
		t.Fatalf("the other member moved to generation %d, want %d (no rebalance)", got, gen)
	}
	if _, after := staticMember(t, ctx, adm, group, "restarting"); after != assignedBefore {
		t.Fatalf("restarted member's assignment = %s, want its old %s", after, assignedBefore)
	}
}

// staticMember returns the member id and assignment of the member with the
// given group.instance.id.
func staticMember(t *testing.T, ctx context.Context, adm *kadm.Client, group, instance string) (memberID, assignment string) {
	t.Helper()
	d := describeGroup(t, ctx, adm, group)
	for _, m := range d.Members {
		if m.InstanceID == nil || *m.InstanceID != instance {
			continue
		}
		c, ok := m.Assigned.AsConsumer()
		if !ok {
			return m.MemberID, ""
		}
		var parts []string
		for _, tp := range c.Topics {
			parts = append(parts, fmt.Sprint(tp.Topic, tp.Partitions))
		}
		return m.MemberID, strings.Join(parts, " ")
	}
	return "", ""
}
