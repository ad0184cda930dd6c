package metrics

import (
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// AllowSources wraps ln so that Accept hands over only connections from an
// address inside one of allowed, or from the listening address itself (the
// host checking its own endpoint); any other connection is closed before a
// byte is read. It is the broker's half of open monitoring's
// monitoring_cidr_blocks: the security group refuses other sources on AWS,
// and this refuses them where no security group is enforced (the local
// cloud, a host with a permissive group). An empty allowed lets every
// source in.
func AllowSources(ln net.Listener, allowed []netip.Prefix, log *slog.Logger) net.Listener {
	if len(allowed) == 0 {
		return ln
	}
	if log == nil {
		log = slog.Default()
	}
	return &sourceFilter{Listener: ln, allowed: allowed, log: log}
}

type sourceFilter struct {
	net.Listener
	allowed []netip.Prefix
	log     *slog.Logger
	refused atomic.Int64
	// lastLog rate-limits the refusal log to one line a minute, so a scan
	// from outside cannot flood the broker's log.
	lastLog atomic.Int64
}

func (f *sourceFilter) Accept() (net.Conn, error) {
	for {
		c, err := f.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if f.permits(c) {
			return c, nil
		}
		n := f.refused.Add(1)
		now := time.Now().UnixNano()
		if last := f.lastLog.Load(); now-last > int64(time.Minute) && f.lastLog.CompareAndSwap(last, now) {
			f.log.Warn("metrics endpoint refused a source outside its allowed CIDR blocks",
				"source", c.RemoteAddr().String(), "listen", f.Addr().String(), "refused_total", n)
		}
		_ = c.Close()
	}
}

func (f *sourceFilter) permits(c net.Conn) bool {
	remote, ok := addrOf(c.RemoteAddr())
	if !ok {
		return false
	}
	if local, ok := addrOf(c.LocalAddr()); ok && local == remote {
		return true
	}
	for _, p := range f.allowed {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// addrOf is a TCP address's IP, an IPv4-mapped IPv6 address as IPv4 so
// that 10.0.0.0/8 matches a dual-stack listener's ::ffff:10.1.2.3.
func addrOf(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}
