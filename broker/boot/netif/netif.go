// Package netif makes a secondary network interface of an EC2 instance carry
// its own address: a broker of an Auto Scaling group attaches its persistent
// network interface (the broker's address) next to the primary interface the
// launch created, in the same subnet, and must answer from that address
// through that interface.
//
// Linux does not do that by itself: the kernel would route the replies out of
// the primary interface, which EC2 drops (source/destination check), and
// Debian's image does not configure interfaces attached after boot for
// this. Configure does what amazon-ec2-net-utils does on Amazon Linux: bring
// the link up, add the address (without a route in the main table, which
// keeps the primary interface the default), and route traffic from the
// address through its interface with a routing table of its own (10000 + the
// device index) and a rule selecting it. Every step is idempotent, so a boot
// that runs it again, or an image whose hotplug scripts got there first,
// converges on the same state.
//
// It drives iproute2's ip command (present in every Debian image) rather
// than netlink directly; Command lets tests point it at a network namespace
// (ip -n <ns>).
package netif

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Interface is the secondary interface to configure, as EC2 describes it.
type Interface struct {
	MAC         string // 0e:12:...; how the interface is found in the instance
	PrivateIP   string // the interface's primary private IPv4 address
	SubnetCIDR  string // the subnet's IPv4 CIDR (the VPC router is its first host)
	DeviceIndex int    // the attachment's device index (1-15)
}

// Configurator runs the ip commands.
type Configurator struct {
	// Command is the ip command and leading arguments; default ["ip"].
	Command []string
	// Wait bounds the wait for the interface to appear once attached;
	// default DefaultWait.
	Wait   time.Duration
	Logger *slog.Logger
}

// DefaultWait is how long Configure waits for the kernel to see an interface
// that EC2 just attached (usually a second or two).
const DefaultWait = 2 * time.Minute

// TableBase is added to the device index to number the interface's routing
// table (as amazon-ec2-net-utils numbers them) and its rule's priority.
const TableBase = 10000

// Configure makes ifc carry its address; it returns the interface name.
func (c *Configurator) Configure(ctx context.Context, ifc Interface) (string, error) {
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ip, err := netip.ParseAddr(ifc.PrivateIP)
	if err != nil || !ip.Is4() {
		return "", fmt.Errorf("interface address %q is not an IPv4 address", ifc.PrivateIP)
	}
	subnet, err := netip.ParsePrefix(ifc.SubnetCIDR)
	if err != nil || !subnet.Addr().Is4() || !subnet.Contains(ip) {
		return "", fmt.Errorf("subnet %q is not an IPv4 CIDR holding %s", ifc.SubnetCIDR, ip)
	}
	subnet = subnet.Masked()
	if ifc.DeviceIndex < 1 {
		return "", fmt.Errorf("device index %d is the primary interface's", ifc.DeviceIndex)
	}
	// The VPC router answers at the subnet's first host address.
	gateway := subnet.Addr().Next()
	table := strconv.Itoa(TableBase + ifc.DeviceIndex)

	name, err := c.waitForLink(ctx, ifc.MAC)
	if err != nil {
		return "", err
	}
	if _, err := c.run(ctx, "link", "set", "dev", name, "up"); err != nil {
		return "", err
	}
	has, err := c.hasAddress(ctx, name, ip)
	if err != nil {
		return "", err
	}
	if !has {
		// noprefixroute: the subnet's route in the main table stays the
		// primary interface's; this one gets its own table below.
		if _, err := c.run(ctx, "addr", "add", fmt.Sprintf("%s/%d", ip, subnet.Bits()), "dev", name, "noprefixroute"); err != nil {
			return "", err
		}
		logger.Info("added the broker's address to its network interface", "interface", name, "address", ip)
	}
	if _, err := c.run(ctx, "route", "replace", subnet.String(), "dev", name, "src", ip.String(), "table", table); err != nil {
		return "", err
	}
	if _, err := c.run(ctx, "route", "replace", "default", "via", gateway.String(), "dev", name, "table", table); err != nil {
		return "", err
	}
	hasRule, err := c.hasRule(ctx, ip, table)
	if err != nil {
		return "", err
	}
	if !hasRule {
		if _, err := c.run(ctx, "rule", "add", "from", ip.String()+"/32", "lookup", table, "priority", table); err != nil {
			return "", err
		}
	}
	logger.Info("traffic from the broker's address leaves through its own interface", "interface", name, "address", ip, "table", table, "gateway", gateway)
	return name, nil
}

func (c *Configurator) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := c.Command
	if len(cmd) == 0 {
		cmd = []string{"ip"}
	}
	full := append(append([]string(nil), cmd[1:]...), args...)
	out, err := exec.CommandContext(ctx, cmd[0], full...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", cmd[0], strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// waitForLink returns the name of the link with the MAC address, waiting
// for the kernel to see an interface EC2 just attached.
func (c *Configurator) waitForLink(ctx context.Context, mac string) (string, error) {
	wait := c.Wait
	if wait <= 0 {
		wait = DefaultWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	mac = strings.ToLower(mac)
	gaveUp := func() error {
		return fmt.Errorf("no network interface with MAC %s appeared within %s after it was attached", mac, wait)
	}
	for {
		out, err := c.run(ctx, "-j", "link", "show")
		if err != nil {
			// The wait can run out while ip itself runs (it is killed
			// then): the interface still did not appear.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", gaveUp()
			}
			return "", err
		}
		var links []struct {
			Name    string `json:"ifname"`
			Address string `json:"address"`
		}
		if err := json.Unmarshal(out, &links); err != nil {
			return "", fmt.Errorf("reading ip -j link show: %w", err)
		}
		for _, l := range links {
			if strings.ToLower(l.Address) == mac {
				return l.Name, nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", gaveUp()
			}
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *Configurator) hasAddress(ctx context.Context, name string, ip netip.Addr) (bool, error) {
	out, err := c.run(ctx, "-j", "-4", "addr", "show", "dev", name)
	if err != nil {
		return false, err
	}
	var ifaces []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &ifaces); err != nil {
		return false, fmt.Errorf("reading ip -j addr show: %w", err)
	}
	for _, i := range ifaces {
		for _, a := range i.AddrInfo {
			if a.Local == ip.String() {
				return true, nil
			}
		}
	}
	return false, nil
}

func (c *Configurator) hasRule(ctx context.Context, ip netip.Addr, table string) (bool, error) {
	out, err := c.run(ctx, "-j", "rule", "show")
	if err != nil {
		return false, err
	}
	var rules []struct {
		Src    string `json:"src"`
		SrcLen int    `json:"srclen"`
		Table  string `json:"table"`
	}
	if err := json.Unmarshal(out, &rules); err != nil {
		return false, fmt.Errorf("reading ip -j rule show: %w", err)
	}
	for _, r := range rules {
		if r.Src == ip.String() && (r.SrcLen == 32 || r.SrcLen == 0) && r.Table == table {
			return true, nil
		}
	}
	return false, nil
}
