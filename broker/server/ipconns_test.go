package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
)

// dialFrom opens a connection to s from the loopback address local
// (Linux answers all of 127.0.0.0/8 on lo).
func dialFrom(t *testing.T, s *Server, local string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	nc, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// served says whether c gets an ApiVersions answer.
func served(c *rawConn) bool {
	c.send(kmsg.NewPtrApiVersionsRequest())
	_, err := c.readFrame(5 * time.Second)
	return err == nil
}

// TestMaxConnectionsPerIP: a source address holds at most
// max.connections.per.ip connections, or its override; other addresses
// are not affected; a closed connection frees its slot; each refusal is
// counted under per_ip.
func TestMaxConnectionsPerIP(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.MaxConnectionsPerIP = 2
		c.MaxConnectionsPerIPOverrides = map[netip.Addr]int{netip.MustParseAddr("127.0.0.3"): 0}
	})
	a, b := dialFrom(t, s, "127.0.0.1"), dialFrom(t, s, "127.0.0.1")
	for _, c := range []*rawConn{a, b} {
		if !served(c) {
			t.Fatal("a connection under the per-address limit was not served")
		}
	}
	refusedBefore := s.metrics.Snapshot().ConnectionsRefused[metrics.RefusedPerIP]
	dialFrom(t, s, "127.0.0.1").expectClosed()
	if !served(dialFrom(t, s, "127.0.0.2")) {
		t.Fatal("another address was refused")
	}
	dialFrom(t, s, "127.0.0.3").expectClosed()
	if got := s.metrics.Snapshot().ConnectionsRefused[metrics.RefusedPerIP] - refusedBefore; got != 2 {
		t.Errorf("tributary_connections_refused_total{reason=per_ip} rose by %d, want 2", got)
	}
	a.nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !served(dialFrom(t, s, "127.0.0.1")) {
		if time.Now().After(deadline) {
			t.Fatal("no connection from 127.0.0.1 accepted after one of its two was closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMaxConnectionsPerIPIsDynamic: IncrementalAlterConfigs on the
// broker's default sets both settings on a running broker.
func TestMaxConnectionsPerIPIsDynamic(t *testing.T) {
	s := startServer(t)
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeBroker
	for name, v := range map[string]string{"max.connections.per.ip": "1", "max.connections.per.ip.overrides": "127.0.0.2:2"} {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = name, kmsg.StringPtr(v)
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	// From an address of its own, which the limits set here leave alone.
	admin := dialFrom(t, s, "127.0.0.5")
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	resp.Version = req.Version
	admin.recv(resp, admin.send(req))
	if code := resp.Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs: %v", kerr.ErrorForCode(code))
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Config().MaxConnectionsPerIP != 1 || s.Config().MaxConnectionsPerIPOverrides[netip.MustParseAddr("127.0.0.2")] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("settings not applied: %d, %v", s.Config().MaxConnectionsPerIP, s.Config().MaxConnectionsPerIPOverrides)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !served(dialFrom(t, s, "127.0.0.1")) {
		t.Fatal("the first connection of 127.0.0.1 was refused")
	}
	dialFrom(t, s, "127.0.0.1").expectClosed()
	for i := range 2 {
		if !served(dialFrom(t, s, "127.0.0.2")) {
			t.Fatalf("connection %d of 127.0.0.2 (override 2) was refused", i+1)
		}
	}
	dialFrom(t, s, "127.0.0.2").expectClosed()
}

// TestPerIPRefusalsAreLoggedOncePerSecond: a refused address is logged
// at most once a second; another address has its own second.
func TestPerIPRefusalsAreLoggedOncePerSecond(t *testing.T) {
	var p ipConnections
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		addr netip.Addr
		at   time.Duration
		want bool
	}{
		{a, 0, true}, {a, 10 * time.Millisecond, false}, {b, 20 * time.Millisecond, true},
		{a, 999 * time.Millisecond, false}, {a, time.Second, true}, {b, time.Second, false},
	} {
		if got := p.shouldLog(c.addr, t0.Add(c.at)); got != c.want {
			t.Errorf("%s at %v: log %v, want %v", c.addr, c.at, got, c.want)
		}
	}
}
