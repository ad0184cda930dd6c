package config

import (
	"net/netip"
	"strings"
	"testing"
)

// TestConnectionsPerIPSettings: max.connections.per.ip defaults to no
// limit (Kafka's Integer.MAX_VALUE) and refuses 0; the overrides parse
// IPv4 and IPv6 addresses, print back in address order, and refuse host
// names, counts that are not whole numbers and addresses listed twice,
// each error naming the item.
func TestConnectionsPerIPSettings(t *testing.T) {
	c := Default()
	if c.MaxConnectionsPerIP != 1<<31-1 || len(c.MaxConnectionsPerIPOverrides) != 0 {
		t.Fatalf("defaults: %d, %v", c.MaxConnectionsPerIP, c.MaxConnectionsPerIPOverrides)
	}
	if err := c.Set("max.connections.per.ip", "0"); err == nil {
		t.Error("max.connections.per.ip 0 accepted")
	}
	if err := c.Set("max.connections.per.ip", "50"); err != nil || c.MaxConnectionsPerIP != 50 {
		t.Errorf("max.connections.per.ip 50: %v, %d", err, c.MaxConnectionsPerIP)
	}
	if err := c.Set("max.connections.per.ip.overrides", " 10.0.0.7:500, fd00::1:20 ,[fd00::2]:0,::ffff:10.0.0.8:3"); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]int{
		netip.MustParseAddr("10.0.0.7"): 500, netip.MustParseAddr("fd00::1"): 20,
		netip.MustParseAddr("fd00::2"): 0, netip.MustParseAddr("10.0.0.8"): 3,
	}
	if len(c.MaxConnectionsPerIPOverrides) != len(want) {
		t.Fatalf("overrides %v, want %v", c.MaxConnectionsPerIPOverrides, want)
	}
	for a, n := range want {
		if got, ok := c.MaxConnectionsPerIPOverrides[a]; !ok || got != n {
			t.Errorf("override of %s: %d (%v), want %d", a, got, ok, n)
		}
	}
	if got, _ := c.Get("max.connections.per.ip.overrides"); got != "10.0.0.7:500,10.0.0.8:3,fd00::1:20,fd00::2:0" {
		t.Errorf("printed back as %q", got)
	}
	if err := c.Set("max.connections.per.ip.overrides", ""); err != nil || len(c.MaxConnectionsPerIPOverrides) != 0 {
		t.Errorf("empty overrides: %v, %v", err, c.MaxConnectionsPerIPOverrides)
	}
	for v, wantErr := range map[string]string{
		"broker-1.example.com:5":  "is not an IP address",
		"10.0.0.7":                "is not ip:count",
		"10.0.0.7:-1":             "is not a whole number",
		"10.0.0.7:x":              "is not a whole number",
		"10.0.0.7:1,10.0.0.7:2":   "listed twice",
		"10.0.0.7:99999999999999": "is not a whole number",
	} {
		err := Validate("max.connections.per.ip.overrides", v)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: %v, want an error saying %q", v, err, wantErr)
		}
	}
}
