package server

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tributary/tributary/broker/config"
)

// ipConnections counts the open client connections of each source
// address, on every client listener together, for max.connections.per.ip
// (Kafka's ConnectionQuotas count per broker the same way; the replication
// and controller listeners are not client listeners and are not counted).
// A connection is counted from its accept until it closes, TLS handshake
// and SASL exchange included: those are what one address could otherwise
// hold all of max.connections with.
type ipConnections struct {
	mu   sync.Mutex
	open map[netip.Addr]int
	// logged is when a refusal of each address was last logged. An
	// address refused is over its limit, so it usually has connections
	// open; entries older than a second are dropped when the map grows,
	// so addresses refused with a limit of 0 do not accumulate.
	logged map[netip.Addr]time.Time
}

// perIPLimit is the connections addr may hold: its override, else
// max.connections.per.ip.
func perIPLimit(cfg *config.Config, addr netip.Addr) int {
	if n, ok := cfg.MaxConnectionsPerIPOverrides[addr]; ok {
		return n
	}
	return cfg.MaxConnectionsPerIP
}

// acquire counts a new connection of addr when its address is under its
// limit; otherwise it returns false with the open count and the limit.
func (p *ipConnections) acquire(addr netip.Addr, cfg *config.Config) (open, limit int, ok bool) {
	limit = perIPLimit(cfg, addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	open = p.open[addr]
	if open >= limit {
		return open, limit, false
	}
	if p.open == nil {
		p.open = map[netip.Addr]int{}
	}
	p.open[addr] = open + 1
	return open + 1, limit, true
}

// release uncounts a connection counted by acquire.
func (p *ipConnections) release(addr netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.open[addr] - 1; n > 0 {
		p.open[addr] = n
	} else {
		delete(p.open, addr)
	}
}

// shouldLog says whether a refusal of addr at now is logged: at most once
// a second per address, so that a client reconnecting in a loop does not
// flood the log.
func (p *ipConnections) shouldLog(addr netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if last, ok := p.logged[addr]; ok && now.Sub(last) < time.Second {
		return false
	}
	if p.logged == nil {
		p.logged = map[netip.Addr]time.Time{}
	}
	if len(p.logged) >= 1024 {
		for a, t := range p.logged {
			if now.Sub(t) >= time.Second {
				delete(p.logged, a)
			}
		}
	}
	p.logged[addr] = now
	return true
}
