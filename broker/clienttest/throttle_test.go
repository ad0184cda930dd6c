package clienttest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterReplicationThrottle reassigns two partitions of one topic,
// each holding the same data, both led by broker 1: partition 0 from
// [1] to [1 2] under the replication throttle (KIP-73, set as
// kafka-reassign-partitions sets it: the rates on the brokers, the
// replicas in the topic's configs), partition 1 from [1] to [1 3] with
// nothing throttled. The throttled copy must keep to the rate; the other
// one must not be slowed by it.
//
// The bound: the rate is measured over replication.quota.window.num (11)
// windows of one second and spans at least 10 of them, so a throttled copy
// may start with a burst of 10 s worth, plus the one fetch (1 MiB per
// partition) taken just before the rate went over. So copying N bytes at
// R bytes/s takes at least (N - 10 R - 1 MiB) / R.
func TestClusterReplicationThrottle(t *testing.T) {
	c := startCluster(t, 3)
	const (
		topic    = "throttled-copy"
		rate     = 256 << 10 // bytes per second
		size     = 8 << 20   // bytes per partition
		valueLen = 64 << 10
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := c.client(kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(1<<20))
	adm := kadm.NewClient(cl)

	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, -1, -1
	for p := int32(0); p < 2; p++ {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = p, []int32{1}
		ct.ReplicaAssignment = append(ct.ReplicaAssignment, a)
	}
	isr := kmsg.NewCreateTopicsRequestTopicConfig()
	isr.Name, isr.Value = "min.insync.replicas", kmsg.StringPtr("1")
	ct.Configs = append(ct.Configs, isr)
	create.Topics = append(create.Topics, ct)
	create.TimeoutMillis = 20000
	resp, err := create.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
	c.waitInSync(topic, 1)

	value := make([]byte, valueLen)
	for p := int32(0); p < 2; p++ {
		for n := 0; n < size/valueLen; n++ {
			_, _ = rand.Read(value)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: slices.Clone(value)}).FirstErr(); err != nil {
				t.Fatalf("filling partition %d: %v", p, err)
			}
		}
	}

	// The throttle as kafka-reassign-partitions --throttle sets it: the
	// leader side on the current replica, the follower side on the one
	// added, the rates on both brokers.
	for _, id := range []int32{1, 2} {
		alter := []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: "leader.replication.throttled.rate", Value: kmsg.StringPtr(strconv.Itoa(rate))},
			{Op: kadm.SetConfig, Name: "follower.replication.throttled.rate", Value: kmsg.StringPtr(strconv.Itoa(rate))},
		}
		rs, err := adm.AlterBrokerConfigs(ctx, alter, id)
		if err == nil {
			err = rs[0].Err
		}
		if err != nil {
			t.Fatalf("setting the throttle rates on broker %d: %v", id, err)
		}
	}
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "leader.replication.throttled.replicas", Value: kmsg.StringPtr("0:1")},
		{Op: kadm.SetConfig, Name: "follower.replication.throttled.replicas", Value: kmsg.StringPtr("0:2")},
	}, topic)
	if err == nil {
		err = rs[0].Err
	}
	if err != nil {
		t.Fatalf("setting the throttled replicas: %v", err)
	}
	// Every broker holds the configs in force once they are in the
	// metadata it follows; DescribeConfigs on broker 2 shows them there.
	waitFor(t, "the throttle configs on broker 2", 20*time.Second, func() bool {
		rc, err := adm.DescribeBrokerConfigs(ctx, 2)
		if err != nil || len(rc) == 0 {
			return false
		}
		for _, cfg := range rc[0].Configs {
			if cfg.Key == "follower.replication.throttled.rate" {
				return cfg.Value != nil && *cfg.Value == strconv.Itoa(rate) && cfg.Source == kmsg.ConfigSourceDynamicBrokerConfig
			}
		}
		return false
	})

	start := time.Now()
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign(topic, 0, []int32{1, 2})
	req.Assign(topic, 1, []int32{1, 3})
	ar, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatalf("reassigning: %v", err)
	}
	if err := ar.Error(); err != nil {
		t.Fatalf("reassigning: %v", err)
	}

	// Poll both partitions until each has its new replica in sync.
	done := map[int32]time.Duration{}
	newReplica := map[int32]int32{0: 2, 1: 3}
	for len(done) < 2 {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("reassignments not finished after 2 min: finished %v", done)
		}
		td, err := adm.ListTopics(ctx, topic)
		if err == nil && td[topic].Err == nil {
			for _, p := range td[topic].Partitions {
				if _, ok := done[p.Partition]; !ok && slices.Contains(p.ISR, newReplica[p.Partition]) {
					done[p.Partition] = time.Since(start)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	floor := time.Duration(float64(size-10*rate-(1<<20)) / rate * float64(time.Second))
	t.Logf("throttled copy of %d MiB at %d KiB/s: %v (%.0f KiB/s; at least %v by the bound); unthrottled copy: %v",
		size>>20, rate>>10, done[0].Round(time.Millisecond), float64(size)/done[0].Seconds()/1024, floor, done[1].Round(time.Millisecond))
	if done[0] < floor {
		t.Errorf("the throttled copy took %v, less than the %v the rate allows", done[0], floor)
	}
	// Not stalled either: within the time the rate alone needs plus 30 s.
	if ceiling := time.Duration(size/rate)*time.Second + 30*time.Second; done[0] > ceiling {
		t.Errorf("the throttled copy took %v, more than %v", done[0], ceiling)
	}
	if done[1] > floor/2 {
		t.Errorf("the unthrottled partition took %v to copy, more than half the throttled one's floor (%v): the throttle slowed it", done[1], floor/2)
	}

	// A throttled replica in the ISR is no longer held back: records
	// produced now reach it at once.
	for n := 0; n < 4; n++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprint("after-", n))}).FirstErr(); err != nil {
			t.Fatalf("producing after the copy: %v", err)
		}
	}
}
