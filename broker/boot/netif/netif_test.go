package netif

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// netns creates a network namespace for the test (removed at its end) with a
// veth interface of the given MAC, standing in for an attached ENI.
func netns(t *testing.T, mac string) string {
	t.Helper()
	testenv.Root(t, "creating a network namespace")
	testenv.Tool(t, "ip", "iproute2")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := "tributary-netif-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("removing network namespace %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "ens6", "address", mac, "type", "veth", "peer", "name", "peer0").CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot create a veth pair: %v: %s", err, out)
	}
	return ns
}

func ipIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

func TestConfigureRoutesFromTheAddressThroughItsInterface(t *testing.T) {
	const mac = "0e:aa:bb:cc:dd:01"
	ns := netns(t, mac)
	c := &Configurator{Command: []string{"ip", "-n", ns}, Wait: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ifc := Interface{MAC: "0E:AA:BB:CC:DD:01", PrivateIP: "10.0.2.37", SubnetCIDR: "10.0.2.0/24", DeviceIndex: 1}
	// Twice: a second boot (or a hotplug script that got there first)
	// finds it done and changes nothing.
	for i := range 2 {
		name, err := c.Configure(context.Background(), ifc)
		if err != nil {
			t.Fatalf("Configure (run %d): %v", i+1, err)
		}
		if name != "ens6" {
			t.Fatalf("configured %q, want ens6 (found by its MAC)", name)
		}
	}
	addrs := ipIn(t, ns, "-4", "addr", "show", "dev", "ens6")
	if strings.Count(addrs, "inet 10.0.2.37/24") != 1 {
		t.Errorf("addresses of ens6:\n%s", addrs)
	}
	if main := ipIn(t, ns, "route", "show", "table", "main"); strings.Contains(main, "ens6") {
		t.Errorf("the main table routes through the secondary interface:\n%s", main)
	}
	table := ipIn(t, ns, "route", "show", "table", "10001")
	for _, want := range []string{"default via 10.0.2.1 dev ens6", "10.0.2.0/24 dev ens6", "src 10.0.2.37"} {
		if !strings.Contains(table, want) {
			t.Errorf("table 10001 lacks %q:\n%s", want, table)
		}
	}
	rules := ipIn(t, ns, "rule", "show")
	if strings.Count(rules, "from 10.0.2.37 lookup 10001") != 1 {
		t.Errorf("rules:\n%s", rules)
	}
	if !strings.Contains(ipIn(t, ns, "link", "show", "dev", "ens6"), "UP") {
		t.Error("ens6 is not up")
	}
}

func TestConfigureRefusesBadInput(t *testing.T) {
	c := &Configurator{Command: []string{"false"}}
	tests := []struct {
		ifc  Interface
		want string
	}{
		{Interface{MAC: "0e:00:00:00:00:01", PrivateIP: "fe80::1", SubnetCIDR: "10.0.0.0/24", DeviceIndex: 1}, "not an IPv4 address"},
		{Interface{MAC: "0e:00:00:00:00:01", PrivateIP: "10.0.1.5", SubnetCIDR: "10.0.0.0/24", DeviceIndex: 1}, "not an IPv4 CIDR holding"},
		{Interface{MAC: "0e:00:00:00:00:01", PrivateIP: "10.0.0.5", SubnetCIDR: "10.0.0.0/24", DeviceIndex: 0}, "primary interface"},
	}
	for _, tt := range tests {
		if _, err := c.Configure(context.Background(), tt.ifc); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Configure(%+v) = %v, want an error saying %q", tt.ifc, err, tt.want)
		}
	}
}

func TestConfigureGivesUpOnAMissingInterface(t *testing.T) {
	ns := netns(t, "0e:aa:bb:cc:dd:02")
	c := &Configurator{Command: []string{"ip", "-n", ns}, Wait: 700 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, err := c.Configure(context.Background(), Interface{MAC: "0e:99:99:99:99:99", PrivateIP: "10.0.2.37", SubnetCIDR: "10.0.2.0/24", DeviceIndex: 1})
	if err == nil || !strings.Contains(err.Error(), "no network interface with MAC 0e:99:99:99:99:99") {
		t.Fatalf("err = %v, want it to name the MAC it waited for", err)
	}
}
