package clienttest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterSaramaAndKcatKillLeader: sarama's idempotent acks=all sync
// producer and kcat (librdkafka) write to a replicated topic before and
// after kill -9 of its leader; every acknowledged message is read back by
// sarama and by kcat from the surviving brokers.
func TestClusterSaramaAndKcatKillLeader(t *testing.T) {
	c := startCluster(t, 3)
	const topic = "clients"
	c.createTopic(topic, 1)

	cfg := saramaConfig()
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 50
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	prod, err := sarama.NewSyncProducer(c.bootstrap(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var want []string
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			v := fmt.Sprintf("sarama-%d", i)
			if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("sarama send %s: %v", v, err)
			}
			want = append(want, v)
		}
	}
	kcatSend := func(tag string) {
		t.Helper()
		if !haveKcat() {
			return
		}
		var in strings.Builder
		for i := range 100 {
			v := fmt.Sprintf("kcat-%s-%d", tag, i)
			want = append(want, v)
			fmt.Fprintln(&in, v)
		}
		run(t, 60*time.Second, in.String(), kcatPath, "-P", "-b", strings.Join(c.bootstrap(), ","), "-t", topic,
			"-X", "request.required.acks=all", "-X", "enable.idempotence=true")
	}

	send(0, 100)
	kcatSend("before")
	victim := c.leaderOf(topic, 0)
	c.kill9(victim)
	send(100, 200) // sarama retries until the new leader answers
	kcatSend("after")

	// Read back from the two survivors with sarama.
	var survivors []string
	for id, a := range c.addrs {
		if id != victim {
			survivors = append(survivors, a)
		}
	}
	cons, err := sarama.NewConsumer(survivors, saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	seen := map[string]int{}
	deadline := time.After(30 * time.Second)
	for len(seen) < len(want) {
		select {
		case m := <-pc.Messages():
			seen[string(m.Value)]++
		case err := <-pc.Errors():
			t.Fatalf("sarama consumer: %v", err)
		case <-deadline:
			t.Fatalf("sarama read %d of %d messages", len(seen), len(want))
		}
	}
	for _, v := range want {
		if seen[v] != 1 {
			t.Fatalf("%s read %d times by sarama", v, seen[v])
		}
	}

	if haveKcat() {
		out := run(t, 30*time.Second, "", kcatPath, "-C", "-b", strings.Join(survivors, ","), "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")
		got := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			got[line]++
		}
		for _, v := range want {
			if got[v] != 1 {
				t.Fatalf("%s read %d times by kcat", v, got[v])
			}
		}
	} else {
		t.Log("kcat not installed (run make tools): only sarama was checked")
	}
}

// TestClusterGroupOffsetsSurviveCoordinatorKill: a franz-go consumer group
// commits offsets; kill -9 of the coordinator's broker (the leader of
// __consumer_offsets) moves the coordinator, which still has the commits.
func TestClusterGroupOffsetsSurviveCoordinatorKill(t *testing.T) {
	c := startCluster(t, 3)
	const topic, group = "grouped", "g1"
	c.createTopic(topic, 2)
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 50 {
		if err := prod.ProduceSync(testContext(t, 10*time.Second), &kgo.Record{Value: fmt.Appendf(nil, "v-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := c.client(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	got := 0
	ctx := testContext(t, 30*time.Second)
	for got < 50 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 50", got)
		}
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Close()

	var last string
	committed := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		// A new client each time: franz-go keeps a cached coordinator
		// it cannot dial until a request says NOT_COORDINATOR.
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.bootstrap()...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
		if err != nil {
			last = err.Error()
			return false
		}
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		last = fmt.Sprintf("offsets %v", offs)
		return sum == 50
	}
	if !committed() {
		t.Fatalf("before the kill: %s", last)
	}
	coordinator := c.leaderOf("__consumer_offsets", 0)
	c.kill9(coordinator)
	deadline := time.Now().Add(30 * time.Second)
	for !committed() {
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets not served by a new coordinator within 30s after kill -9 of broker %d: %s", coordinator, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const kcatPath = "/usr/bin/kcat"

func haveKcat() bool {
	_, err := os.Stat(kcatPath)
	return err == nil
}
