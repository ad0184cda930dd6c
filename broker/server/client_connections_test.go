package server

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/metrics"
)

// TestClientConnectionCount: franz-go clients on a PLAINTEXT and a SASL
// SCRAM listener are counted under their kind of authentication
// (ClientConnectionCount), every authenticated connection under exactly
// one kind, and the count of a kind goes back down as its clients close
// while the other kind's stays.
func TestClientConnectionCount(t *testing.T) {
	s, e, _ := startSCRAMServer(t, nil)
	plainAddr := s.ListenerAddr("CLIENT").String()
	scramAddr := s.ListenerAddr("CLIENT_SASL_SCRAM").String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	open := func(opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if _, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest()); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	// counts polls until the snapshot satisfies ok, every open connection
	// being authenticated and counted under one kind.
	counts := func(what string, ok func(c [4]int64) bool) [4]int64 {
		t.Helper()
		var last *metrics.Snapshot
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			last = s.metrics.Snapshot()
			var c [4]int64
			var sum int64
			for a, n := range last.ClientConnections {
				c[a] = n
				sum += n
			}
			if sum == last.Connections && ok(c) {
				return c
			}
		}
		t.Fatalf("%s: ClientConnectionCount %v (Unauthenticated, TLS, SASL/SCRAM, IAM) of %d open connections", what, last.ClientConnections, last.Connections)
		return [4]int64{}
	}
	none, scram := int(metrics.AuthNone), int(metrics.AuthSCRAM)
	others := func(c [4]int64) bool { return c[metrics.AuthTLS] == 0 && c[metrics.AuthIAM] == 0 }

	counts("before any client", func(c [4]int64) bool { return c == [4]int64{} })

	var plain, sasl []*kgo.Client
	for range 3 {
		plain = append(plain, open(kgo.SeedBrokers(plainAddr)))
	}
	for range 2 {
		sasl = append(sasl, open(kgo.SeedBrokers(scramAddr), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)), kgo.SASL(scramMech("SCRAM-SHA-512", "alice", "alice-secret"))))
	}
	up := counts("with 3 PLAINTEXT and 2 SCRAM clients", func(c [4]int64) bool { return c[none] >= 3 && c[scram] >= 2 && others(c) })
	if got := metrics.ClientAuth(scram).String(); got != "SASL/SCRAM" {
		t.Errorf("SCRAM's dimension value %q", got)
	}

	for _, cl := range sasl {
		cl.Close()
	}
	counts("SCRAM clients closed", func(c [4]int64) bool { return c[scram] == 0 && c[none] == up[none] && others(c) })
	for _, cl := range plain {
		cl.Close()
	}
	counts("every client closed", func(c [4]int64) bool { return c == [4]int64{} })
}
