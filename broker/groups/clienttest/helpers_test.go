package clienttest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/server"
)

// startBroker runs a broker on a loopback port with data in dir and returns
// its address and a function that shuts it down (also run at cleanup).
func startBroker(t *testing.T, dir string) (addr string, stop func()) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cfg.GroupInitialRebalanceDelay = 0
	cfg.GroupMinSessionTimeout = 100 * time.Millisecond
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := server.New(context.Background(), server.Options{Config: cfg, Logger: log})
	if err != nil {
		t.Fatalf("starting broker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("broker shutdown: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("broker serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s.Addr().String(), stop
}

func newAdmin(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func produce(t *testing.T, ctx context.Context, addr, topic string, from, to int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describeGroup(t *testing.T, ctx context.Context, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	return described[group]
}
