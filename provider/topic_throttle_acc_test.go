package provider

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAccTopic_throttledReplicationFactor raises a 4 MiB topic's
// replication factor from 1 to 3 with replication_throttle_bytes_per_second
// = 256 KiB/s while an acks=all producer writes to it. A watcher polls the
// cluster from the moment the apply starts: it times the copy from the
// reassignment's start (three replicas listed) to its end (three in sync)
// and sees the throttle configs on the topic meanwhile. No produce may
// fail, the copy must keep to the rate, and no throttle config may be left
// on the topic or any broker afterwards.
//
// The bound: both new replicas copy from the one leader, whose throttle
// counts what it sends to either; the rate spans at least 10 of its 11
// one-second windows (a first burst of 10 s worth) and one fetch per
// follower (1 MiB) may pass just under it, so copying 2 x N bytes at R
// takes at least (2N - 10R - 2 MiB) / R.
func TestAccTopic_throttledReplicationFactor(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	const (
		topic = "throttled"
		rate  = 256 << 10
		size  = 4 << 20
	)
	name := accName(t)
	cluster := clusterConfig(name, accEnv.version, 1, 10)
	block := func(rf int) string {
		return strings.Replace(topicBlock(topic, 1, rf, map[string]string{"min.insync.replicas": "1"}),
			"  replication_factor =", fmt.Sprintf("  replication_throttle_bytes_per_second = %d\n  replication_factor =", rate), 1)
	}
	w := &throttleWatch{topic: topic}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: cluster + block(1),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(topicResourceName, "replication_throttle_bytes_per_second", fmt.Sprint(rate)),
					w.fill(size),
				),
			},
			{
				PreConfig: w.start,
				Config:    cluster + block(3),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(topicResourceName, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(clusterResourceName, plancheck.ResourceActionNoop),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(topicResourceName, "replication_factor", "3"),
					resource.TestCheckNoResourceAttr(topicResourceName, "config.follower.replication.throttled.replicas"),
					w.verify(t, rate, size),
				),
			},
		},
	})
}

// throttleWatch fills a topic, then produces to it and watches its
// reassignment.
type throttleWatch struct {
	topic     string
	bootstrap string

	cancel context.CancelFunc

	mu                  sync.Mutex
	acked               int
	failures            []error
	started, copied     time.Time // three replicas listed; three in sync
	sawThrottle         bool      // the topic's follower.replication.throttled.replicas while copying
	watchErr            error
	producerDone, wDone chan struct{}
}

// fill writes size bytes of incompressible records to the topic.
func (w *throttleWatch) fill(size int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		w.bootstrap = bootstrap
		cl, err := kafkaClient(bootstrap, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.DefaultProduceTopic(w.topic))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		value := make([]byte, 64<<10)
		for range size / len(value) {
			_, _ = rand.Read(value)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: append([]byte(nil), value...)}).FirstErr(); err != nil {
				return fmt.Errorf("filling topic %s: %w", w.topic, err)
			}
		}
		return nil
	}
}

// start runs, before the apply that changes the replication factor, an
// acks=all producer and the watcher, both until verify.
func (w *throttleWatch) start() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	w.cancel = cancel
	w.producerDone, w.wDone = make(chan struct{}), make(chan struct{})
	go w.produce(ctx)
	go w.watch(ctx)
}

func (w *throttleWatch) produce(ctx context.Context) {
	defer close(w.producerDone)
	cl, err := kafkaClient(w.bootstrap, kgo.DefaultProduceTopic(w.topic))
	if err != nil {
		w.mu.Lock()
		w.failures = append(w.failures, err)
		w.mu.Unlock()
		return
	}
	defer cl.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ctx.Err() == nil; i++ {
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Value: []byte(fmt.Sprint("during-", i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			w.mu.Lock()
			defer w.mu.Unlock()
			if err != nil {
				w.failures = append(w.failures, err)
				return
			}
			w.acked++
		})
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// watch polls the partition's replicas and ISR every 100 ms until the
// copy is done.
func (w *throttleWatch) watch(ctx context.Context) {
	defer close(w.wDone)
	cl, err := kafkaClient(w.bootstrap)
	if err != nil {
		w.watchErr = err
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for ctx.Err() == nil {
		td, err := adm.ListTopics(ctx, w.topic)
		if err == nil && td[w.topic].Err == nil && len(td[w.topic].Partitions) == 1 {
			p := td[w.topic].Partitions[0]
			now := time.Now()
			w.mu.Lock()
			if w.started.IsZero() && len(p.Replicas) == 3 {
				w.started = now
			}
			copied := len(p.Replicas) == 3 && len(p.ISR) == 3
			if copied {
				w.copied = now
			}
			seen := w.sawThrottle
			w.mu.Unlock()
			if copied {
				return
			}
			if !w.started.IsZero() && !seen {
				if rcs, err := adm.DescribeTopicConfigs(ctx, w.topic); err == nil {
					for _, rc := range rcs {
						for _, c := range rc.Configs {
							if c.Key == "follower.replication.throttled.replicas" && c.Source == kmsg.ConfigSourceDynamicTopicConfig {
								w.mu.Lock()
								w.sawThrottle = true
								w.mu.Unlock()
							}
						}
					}
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	w.watchErr = errors.New("the copy did not finish while watched")
}

func (w *throttleWatch) verify(t *testing.T, rate, size int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		if w.cancel == nil {
			return errors.New("the watch never started")
		}
		<-w.wDone
		w.cancel()
		<-w.producerDone
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.watchErr != nil {
			return w.watchErr
		}
		took := w.copied.Sub(w.started)
		floor := time.Duration(float64(2*size-10*rate-(2<<20)) / float64(rate) * float64(time.Second))
		t.Logf("replication factor 1 -> 3 of %d MiB at %d KiB/s: copied in %v (%.0f KiB/s; at least %v by the bound); %d records acknowledged meanwhile, %d failed",
			size>>20, rate>>10, took.Round(time.Millisecond), float64(2*size)/took.Seconds()/1024, floor, w.acked, len(w.failures))
		var problems []string
		if len(w.failures) > 0 {
			problems = append(problems, fmt.Sprintf("%d acks=all produces failed, the first: %v", len(w.failures), w.failures[0]))
		}
		if w.acked == 0 {
			problems = append(problems, "no produce was acknowledged during the change")
		}
		if !w.sawThrottle {
			problems = append(problems, "the topic's follower.replication.throttled.replicas was never seen set during the copy")
		}
		if took < floor {
			problems = append(problems, fmt.Sprintf("the copy took %v, less than the %v the rate allows", took, floor))
		}
		if ceiling := time.Duration(2*size/rate)*time.Second + time.Minute; took > ceiling {
			problems = append(problems, fmt.Sprintf("the copy took %v, more than %v", took, ceiling))
		}
		if err := checkThrottleRemoved(w.bootstrap, w.topic); err != nil {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	}
}

// checkThrottleRemoved asks every broker whether the topic or the broker
// itself keeps a replication throttle config.
func checkThrottleRemoved(bootstrap, topic string) error {
	cl, err := kafkaClient(bootstrap)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	var left []string
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return err
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if strings.Contains(c.Key, "replication.throttled") && c.Source != kmsg.ConfigSourceDefaultConfig {
				left = append(left, fmt.Sprintf("topic %s: %s", topic, c.Key))
			}
		}
	}
	for _, b := range md.Brokers {
		rcs, err := adm.DescribeBrokerConfigs(ctx, b.NodeID)
		if err != nil {
			return err
		}
		for _, rc := range rcs {
			for _, c := range rc.Configs {
				if strings.Contains(c.Key, "replication.throttled") && c.Source != kmsg.ConfigSourceDefaultConfig {
					left = append(left, fmt.Sprintf("broker %d: %s (%v)", b.NodeID, c.Key, c.Source))
				}
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("replication throttle configs left after the change: %s", strings.Join(left, ", "))
	}
	return nil
}
