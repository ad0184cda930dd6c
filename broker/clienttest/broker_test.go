package clienttest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/server"
)

// testBroker is a broker running in the test process.
type testBroker struct {
	t    *testing.T
	log  *slog.Logger // testLogger() unless set before start
	dir  string
	cfg  *config.Config
	srv  *server.Server
	addr string
	done chan error
	// reg is the registry the broker reports to (nil: its own).
	reg *metrics.Registry
}

// startBroker starts a broker on 127.0.0.1:0 with a fresh data directory.
// edit, if given, changes the configuration first.
func startBroker(t *testing.T, edit ...func(*config.Config)) *testBroker {
	t.Helper()
	return startBrokerLogging(t, testLogger(), edit...)
}

// startBrokerLogging is startBroker with the broker logging to log.
func startBrokerLogging(t *testing.T, log *slog.Logger, edit ...func(*config.Config)) *testBroker {
	t.Helper()
	return startBrokerReporting(t, log, nil, edit...)
}

// startBrokerReporting is startBrokerLogging with the broker reporting to
// reg (nil: its own registry).
func startBrokerReporting(t *testing.T, log *slog.Logger, reg *metrics.Registry, edit ...func(*config.Config)) *testBroker {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	// Groups form at once: the 3 s production delay only slows tests.
	cfg.GroupInitialRebalanceDelay = 0
	for _, e := range edit {
		e(cfg)
	}
	b := &testBroker{t: t, dir: cfg.DataDir, cfg: cfg, log: log, reg: reg}
	b.start()
	t.Cleanup(func() { b.stop() })
	return b
}

func testLogger() *slog.Logger {
	if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (b *testBroker) start() {
	b.t.Helper()
	srv, err := server.New(context.Background(), server.Options{Config: b.cfg, Logger: b.log, Metrics: b.reg})
	if err != nil {
		b.t.Fatalf("starting broker: %v", err)
	}
	b.srv = srv
	b.addr = srv.Addr().String()
	b.done = make(chan error, 1)
	go func() { b.done <- srv.Serve() }()
}

// stop shuts the broker down cleanly (idempotent).
func (b *testBroker) stop() {
	b.t.Helper()
	if b.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		b.t.Errorf("shutdown: %v", err)
	}
	if err := <-b.done; err != nil {
		b.t.Errorf("serve: %v", err)
	}
	b.srv = nil
}

// restart stops the broker and starts it again on the same data directory
// (on a new port).
func (b *testBroker) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

// client returns a franz-go client for the broker, closed at cleanup.
func (b *testBroker) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin returns a kadm client.
func (b *testBroker) admin(t *testing.T) *kadm.Client {
	t.Helper()
	return kadm.NewClient(b.client(t))
}

// createTopic creates a topic and fails the test on error.
func (b *testBroker) createTopic(t *testing.T, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := b.admin(t).CreateTopic(ctx, partitions, 1, configs, name)
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	if resp.Err != nil {
		t.Fatalf("creating topic %s: %v (%s)", name, resp.Err, resp.ErrMessage)
	}
}

// testContext is a context bounded by the test deadline and a cap.
func testContext(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}

// kadmOffset is a committed offset as kadm reports it.
type kadmOffset = kadm.OffsetResponse

// kadmListedOffset is a listed offset as kadm reports it.
type kadmListedOffset = kadm.ListedOffset

func newAdmin(cl *kgo.Client) *kadm.Client { return kadm.NewClient(cl) }
