package kafkacheck

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// newCluster starts a three-broker kfake cluster on loopback.
// brokersOf lists a kfake cluster's brokers (node ids from 0).
func brokersOf(c *kfake.Cluster) []kafkaconn.Broker {
	var out []kafkaconn.Broker
	for i, a := range c.ListenAddrs() {
		out = append(out, kafkaconn.Broker{NodeID: int32(i), Addr: a})
	}
	return out
}

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func createTopic(t *testing.T, addrs []string, topic string, rf int16, minISR string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 3, rf, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("creating topic %s: %v %v", topic, err, resp.Err)
	}
}

func TestWaitReady(t *testing.T) {
	c := newCluster(t)
	chk := &Checker{Conn: kafkaconn.New("test", brokersOf(c)), PollInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := chk.WaitReady(ctx, time.Second); err != nil {
		t.Fatalf("WaitReady on a healthy cluster: %v", err)
	}

	// A broker the cluster does not list keeps it "not ready" until the deadline.
	chk.Conn.Brokers = append(chk.Conn.Brokers, kafkaconn.Broker{NodeID: 7, Addr: c.ListenAddrs()[0]})
	// The budget covers a few probe rounds on a loaded machine: the check
	// is that the error names the missing broker, not how fast it comes.
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	err := chk.WaitReady(short, time.Second)
	if err == nil || !strings.Contains(err.Error(), "not yet 7") {
		t.Fatalf("WaitReady with a missing broker: err = %v, want one naming broker 7", err)
	}
}

func TestWaitReadyUnreachable(t *testing.T) {
	// Tests send traffic only to loopback, where every dial is answered, so
	// the probe's dial is replaced by one that times out as a dial to a
	// private address without a route does.
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	chk := &Checker{Conn: kafkaconn.New("test", []kafkaconn.Broker{{NodeID: 1, Addr: "10.0.1.5:9092"}}),
		PollInterval: 20 * time.Millisecond,
		dial:         func(context.Context, string) error { return timeout },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := chk.WaitReady(ctx, 200*time.Millisecond)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestAnswered(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connected", nil, true},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"timeout", &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, false},
		{"no route", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, false},
	}
	for _, tt := range tests {
		if got := answered(tt.err); got != tt.want {
			t.Errorf("%s: answered = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWaitReadyRefusedIsReachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // now refuses
	chk := &Checker{Conn: kafkaconn.New("test", []kafkaconn.Broker{{NodeID: 1, Addr: addr}}), PollInterval: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	err = chk.WaitReady(ctx, 100*time.Millisecond)
	if err == nil || errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline while waiting (a refusing host is reachable)", err)
	}
}

func TestCanStop(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	tests := []struct {
		name    string
		rf      int16
		minISR  string
		wantErr string
	}{
		{name: "rf 3, min isr 2: one broker may stop", rf: 3, minISR: "2"},
		{name: "rf 3, min isr 3: stopping would go below", rf: 3, minISR: "3", wantErr: "would drop to 2 in-sync replicas"},
		{name: "rf 1: nothing to protect", rf: 1, minISR: "1"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := "t" + string(rune('a'+i))
			createTopic(t, addrs, topic, tt.rf, tt.minISR)
			chk := &Checker{Conn: kafkaconn.New("test", brokersOf(c))}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			for _, node := range []int32{0, 1, 2} {
				if err = chk.CanStop(ctx, node); err != nil {
					break
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CanStop: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("CanStop err = %v, want it to contain %q", err, tt.wantErr)
			}
			// Remove the topic so the next case is judged on its own.
			cl, _ := kgo.NewClient(kgo.SeedBrokers(addrs...))
			defer cl.Close()
			if _, err := kadm.NewClient(cl).DeleteTopics(ctx, topic); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWaitCanStopGivesUpWithTheReason(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	createTopic(t, addrs, "strict", 3, "3")
	chk := &Checker{Conn: kafkaconn.New("test", brokersOf(c)), PollInterval: 50 * time.Millisecond}
	start := time.Now()
	err := chk.WaitCanStop(context.Background(), 0, 400*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "would drop to 2 in-sync replicas") {
		t.Fatalf("WaitCanStop err = %v, want the CanStop refusal", err)
	}
	if time.Since(start) < 400*time.Millisecond {
		t.Errorf("WaitCanStop gave up after %s, before its patience", time.Since(start))
	}
}

func TestWaitRejoined(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	createTopic(t, addrs, "orders", 3, "2")
	chk := &Checker{Conn: kafkaconn.New("test", brokersOf(c)), PollInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := chk.WaitRejoined(ctx, 1); err != nil {
		t.Fatalf("WaitRejoined for an in-sync broker: %v", err)
	}
	// Long enough for a first full answer on a busy machine: the check
	// cut short by the deadline reports only the deadline.
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := chk.WaitRejoined(short, 9); err == nil || !strings.Contains(err.Error(), "does not list broker 9") {
		t.Fatalf("WaitRejoined for an unknown broker: err = %v", err)
	}
}

func TestSetClusterConfig(t *testing.T) {
	c := newCluster(t)
	chk := &Checker{Conn: kafkaconn.New("test", brokersOf(c))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := chk.SetClusterConfig(ctx, map[string]string{"log.retention.ms": "3600000"}, nil); err != nil {
		t.Fatalf("SetClusterConfig: %v", err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	defer cl.Close()
	rcs, err := kadm.NewClient(cl).DescribeBrokerConfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rc := range rcs {
		for _, cfg := range rc.Configs {
			if cfg.Key == "log.retention.ms" && cfg.Value != nil && *cfg.Value == "3600000" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("log.retention.ms not set on the cluster: %+v", rcs)
	}
}

// TestSetClusterConfigRemoves sets a dynamic config, then removes it: each
// call returns only once every broker reports the result for itself, and
// after the removal no broker has it from a dynamic value.
func TestSetClusterConfigRemoves(t *testing.T) {
	c := newCluster(t)
	chk := &Checker{Conn: kafkaconn.New("test", brokersOf(c)), PollInterval: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := chk.SetClusterConfig(ctx, map[string]string{"log.retention.ms": "3600000"}, nil); err != nil {
		t.Fatalf("SetClusterConfig: %v", err)
	}
	if err := chk.SetClusterConfig(ctx, nil, []string{"log.retention.ms"}); err != nil {
		t.Fatalf("removing: %v", err)
	}
	for _, b := range chk.Conn.Brokers {
		cfgs, err := chk.brokerConfigs(ctx, b, []string{"log.retention.ms"})
		if err != nil {
			t.Fatal(err)
		}
		if got := cfgs["log.retention.ms"]; got.Value != nil && *got.Value == "3600000" {
			t.Errorf("broker %d still has log.retention.ms=%s from %s", b.NodeID, *got.Value, got.Source)
		}
	}
}

// TestWaitReadyRefusesBrokersThatDoNotCluster: brokers that each answer
// Kafka but know only themselves have not formed a cluster, and that is a
// failure, never a weaker kind of ready.
func TestWaitReadyRefusesBrokersThatDoNotCluster(t *testing.T) {
	var brokers []kafkaconn.Broker
	for i := range 2 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID("alone"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		// kfake numbers its only broker 0; the second is expected as 1,
		// which its own metadata does not list.
		brokers = append(brokers, kafkaconn.Broker{NodeID: int32(i), Addr: c.ListenAddrs()[0]})
	}
	chk := &Checker{Conn: kafkaconn.New("test", brokers), PollInterval: 50 * time.Millisecond}
	// Long enough for several answered probes on a loaded machine: the
	// check is what the error says once they have answered.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := chk.WaitReady(ctx, time.Second)
	if err == nil {
		t.Fatal("WaitReady accepted two brokers that do not know each other")
	}
	if !strings.Contains(err.Error(), "form one cluster") || !strings.Contains(err.Error(), "not yet 1") {
		t.Fatalf("err = %v, want it to say the brokers have not formed one cluster and name the missing broker", err)
	}
}

// lateContext is a context whose deadline has passed while its Err is
// still nil, as a context looks between its deadline and its timer
// firing: a dial bounded by the same deadline can fail ("i/o timeout") in
// that gap, on a loaded machine for a while.
type lateContext struct {
	context.Context
	deadline time.Time
}

func (c lateContext) Deadline() (time.Time, bool) { return c.deadline, true }

// TestPollUntilKeepsStatusBeforeCut: a check that returns after the
// deadline, before the context's timer fired, is cut short like one that
// returns after it: the error reports the status before it, not the cut
// check's (TestWaitRejoined failed under load with the cut probe's "dial
// tcp ...: i/o timeout" instead of "does not list broker 9").
func TestPollUntilKeepsStatusBeforeCut(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := lateContext{Context: parent, deadline: time.Now().Add(100 * time.Millisecond)}
	c := &Checker{PollInterval: 10 * time.Millisecond}
	calls := 0
	err := c.pollUntil(ctx, "broker 9", func() (string, bool) {
		calls++
		if calls == 1 {
			return "does not list broker 9", false
		}
		if calls == 2 {
			// Returns past the deadline; the context ends a little later.
			time.Sleep(time.Until(ctx.deadline) + 5*time.Millisecond)
			time.AfterFunc(100*time.Millisecond, cancel)
		}
		return "unable to dial: dial tcp 127.0.0.1:9092: i/o timeout", false
	})
	if err == nil || !strings.Contains(err.Error(), "does not list broker 9") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pollUntil = %v, want the deadline and the status before the cut check", err)
	}
}
