package quota

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// clock is a manual clock for the manager.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                                  { return c.t }
func (c *clock) add(d time.Duration)                             { c.t = c.t.Add(d) }
func name(s string) *string                                      { return &s }
func ent(parts ...metadata.QuotaEntityPart) metadata.QuotaEntity { return parts }
func user(n *string) metadata.QuotaEntityPart {
	return metadata.QuotaEntityPart{Type: metadata.QuotaEntityUser, Name: n}
}
func client(n *string) metadata.QuotaEntityPart {
	return metadata.QuotaEntityPart{Type: metadata.QuotaEntityClientID, Name: n}
}

// TestPrecedence: the most specific entity that sets the key wins, in
// Kafka's order, and the matched entity decides who shares the rate.
func TestPrecedence(t *testing.T) {
	all := metadata.ClientQuotas{
		{Entity: ent(user(name("alice")), client(name("app"))), Values: map[string]float64{"producer_byte_rate": 1}},
		{Entity: ent(user(name("alice")), client(nil)), Values: map[string]float64{"producer_byte_rate": 2}},
		{Entity: ent(user(name("alice"))), Values: map[string]float64{"producer_byte_rate": 3}},
		{Entity: ent(user(nil), client(name("app"))), Values: map[string]float64{"producer_byte_rate": 4}},
		{Entity: ent(user(nil), client(nil)), Values: map[string]float64{"producer_byte_rate": 5}},
		{Entity: ent(user(nil)), Values: map[string]float64{"producer_byte_rate": 6}},
		{Entity: ent(client(name("app"))), Values: map[string]float64{"producer_byte_rate": 7}},
		{Entity: ent(client(nil)), Values: map[string]float64{"producer_byte_rate": 8, "consumer_byte_rate": 9}},
	}
	// Removing the entities one by one from the most specific walks down
	// the order.
	for i := range all {
		m := NewManager(Config{Samples: 11, Window: time.Second}, nil)
		m.Update(all[i:])
		bound, hasUser, hasClient, ok := m.table.Load().resolve("producer_byte_rate", "alice", "app")
		if !ok || bound != float64(i+1) {
			t.Fatalf("with entities %d.. the quota is %v (%v), want %d", i, bound, ok, i+1)
		}
		_, wantUser := all[i].Entity.Part(metadata.QuotaEntityUser)
		_, wantClient := all[i].Entity.Part(metadata.QuotaEntityClientID)
		if hasUser != wantUser || hasClient != wantClient {
			t.Errorf("entity %s: shared by user %v client %v", all[i].Entity, hasUser, hasClient)
		}
	}
	m := NewManager(Config{Samples: 11, Window: time.Second}, nil)
	m.Update(all)
	// Another user and client fall to the defaults; a key set only on
	// client-id=<default> is found there even for alice.
	if b, _, _, _ := m.table.Load().resolve("producer_byte_rate", "bob", "other"); b != 5 {
		t.Errorf("bob/other: %v, want user=<default>,client-id=<default>", b)
	}
	if b, _, _, ok := m.table.Load().resolve("consumer_byte_rate", "alice", "app"); !ok || b != 9 {
		t.Errorf("alice's consumer_byte_rate: %v %v, want client-id=<default>'s 9", b, ok)
	}
	if _, _, _, ok := m.table.Load().resolve("request_percentage", "alice", "app"); ok {
		t.Error("a key no entity sets resolved")
	}
}

// TestThrottleHoldsTheRate: a client sending twice its quota is throttled
// for as long as it takes the measured rate to come back to the quota,
// and a client that waits its throttle out keeps the quota's rate.
func TestThrottleHoldsTheRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	cfg := Config{Samples: 11, Window: time.Second}
	m := NewManager(cfg, c.now)
	m.Update(metadata.ClientQuotas{{Entity: ent(user(name("alice"))), Values: map[string]float64{"producer_byte_rate": 1000}}})
	if m.Record(Produce, "bob", "x", 1e9) != 0 {
		t.Fatal("a client without a quota was throttled")
	}
	// The first 10 s worth (the minimum span) pass unthrottled.
	if d := m.Record(Produce, "alice", "a", 10000); d != 0 {
		t.Fatalf("a burst within samples-1 windows was throttled %v", d)
	}
	// 1000 more: rate 11000/10 s = 1100/s, 10 % over: 1 s.
	if d := m.Record(Produce, "alice", "b", 1000); d != time.Second {
		t.Fatalf("throttle %v, want 1s", d)
	}
	// A client that honours each throttle sends at the quota's rate.
	sent := 0.0
	start := c.t
	for c.t.Sub(start) < 60*time.Second {
		sent += 500
		d := m.Record(Produce, "alice", "a", 500)
		c.add(max(d, 100*time.Millisecond))
	}
	got := sent / c.t.Sub(start).Seconds()
	if got < 900 || got > 1100 {
		t.Errorf("rate while honouring throttles: %.0f B/s, want 1000 ± 10 %%", got)
	}
	// Throttles are bounded by the whole quota window.
	if d := m.Record(Produce, "alice", "a", 1e12); d != cfg.span() {
		t.Errorf("huge overshoot throttled %v, want the cap %v", d, cfg.span())
	}
	// The quota removed: no throttle.
	m.Update(nil)
	if d := m.Record(Produce, "alice", "a", 1e12); d != 0 || m.Limited(Produce) {
		t.Errorf("throttled %v without a quota", d)
	}
}

// TestConnectionRate: new connections past an ip's rate are refused and
// not counted; the default ip entity covers the others.
func TestConnectionRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	m := NewManager(Config{Samples: 2, Window: time.Second}, c.now)
	m.Update(metadata.ClientQuotas{
		{Entity: ent(metadata.QuotaEntityPart{Type: metadata.QuotaEntityIP, Name: name("127.0.0.2")}), Values: map[string]float64{"connection_creation_rate": 5}},
		{Entity: ent(metadata.QuotaEntityPart{Type: metadata.QuotaEntityIP}), Values: map[string]float64{"connection_creation_rate": 100}},
	})
	ip := netip.MustParseAddr("127.0.0.2")
	accepted := 0
	for range 20 {
		if m.RecordConnection(ip) == 0 {
			accepted++
		}
	}
	// samples-1 = 1 window of 1 s at 5/s.
	if accepted != 5 {
		t.Fatalf("%d of 20 connections accepted at once, want 5", accepted)
	}
	c.add(2 * time.Second)
	if m.RecordConnection(ip) != 0 {
		t.Fatal("refused after the window passed")
	}
	other := 0
	for range 20 {
		if m.RecordConnection(netip.MustParseAddr("::ffff:127.0.0.3")) == 0 {
			other++
		}
	}
	if other != 20 {
		t.Fatalf("default ip quota 100/s accepted %d of 20", other)
	}
}

// TestConnectionRateStoredSpelling: ip entities stored as written before
// AlterClientQuotas canonicalized them ("::0001", "::ffff:127.0.0.2")
// throttle the address they name; where the canonical entity has quotas
// of its own, they win, whatever the order.
func TestConnectionRateStoredSpelling(t *testing.T) {
	ipQuota := func(n string, rate float64) metadata.ClientQuota {
		return metadata.ClientQuota{Entity: ent(metadata.QuotaEntityPart{Type: metadata.QuotaEntityIP, Name: name(n)}),
			Values: map[string]float64{"connection_creation_rate": rate}}
	}
	accepted := func(qs metadata.ClientQuotas, ip string) int {
		c := &clock{t: time.Unix(1000, 0)}
		m := NewManager(Config{Samples: 2, Window: time.Second}, c.now)
		m.Update(qs)
		n := 0
		for range 20 {
			if m.RecordConnection(netip.MustParseAddr(ip)) == 0 {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		name string
		qs   metadata.ClientQuotas
		ip   string
		want int
	}{
		{"IPv6 with leading zeros", metadata.ClientQuotas{ipQuota("::0001", 3)}, "::1", 3},
		{"IPv4-mapped", metadata.ClientQuotas{ipQuota("::ffff:127.0.0.2", 4)}, "127.0.0.2", 4},
		{"upper case", metadata.ClientQuotas{ipQuota("2001:DB8::1", 2)}, "2001:db8::1", 2},
		{"canonical after", metadata.ClientQuotas{ipQuota("::0001", 3), ipQuota("::1", 6)}, "::1", 6},
		{"canonical before", metadata.ClientQuotas{ipQuota("::1", 6), ipQuota("::0001", 3)}, "::1", 6},
		{"another address", metadata.ClientQuotas{ipQuota("::0001", 3)}, "::2", 20},
	} {
		if got := accepted(tc.qs, tc.ip); got != tc.want {
			t.Errorf("%s: %d of 20 connections from %s accepted at once, want %d", tc.name, got, tc.ip, tc.want)
		}
	}
}
