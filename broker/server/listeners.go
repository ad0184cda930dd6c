package server

// Client listeners: every listener of `listeners` that is neither the
// inter-broker nor the controller listener is served here, each with its
// security protocol (PLAINTEXT; SSL, optionally with client certificates;
// SASL_SSL with the listener's mechanisms). A listener the broker cannot
// serve stops it at start with the reason.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/security/authstats"
	"github.com/tributary/tributary/broker/security/sasl"
	"github.com/tributary/tributary/broker/security/tlsconf"
)

// tlsHandshakeTimeout bounds a client's TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

// clientListener is one served client listener.
type clientListener struct {
	cfg config.Listener
	ln  net.Listener // TCP; TLS is run per connection, off the accept loop
	// tls is the listener's key material (nil for PLAINTEXT); tlsConfig
	// its server configuration, which reads the reloading key files at
	// every handshake.
	tls       *tlsconf.TLS
	tlsConfig *tls.Config
	// mechs are the SASL mechanisms of a SASL_SSL listener, in the order
	// of its sasl.enabled.mechanisms (SaslHandshake lists them so).
	mechs []sasl.Mechanism
	// auth counts the listener's authentications (nil for PLAINTEXT,
	// which authenticates nobody).
	auth *authstats.Listener
}

func (l *clientListener) name() string { return l.cfg.Name }

// mechanism returns the listener's mechanism named name.
func (l *clientListener) mechanism(name string) (sasl.Mechanism, bool) {
	for _, m := range l.mechs {
		if m.Name() == name {
			return m, true
		}
	}
	return nil, false
}

// mechanismNames lists the listener's mechanisms.
func (l *clientListener) mechanismNames() []string {
	names := make([]string, 0, len(l.mechs))
	for _, m := range l.mechs {
		names = append(names, m.Name())
	}
	return names
}

// openListeners binds every client listener (or takes the one the caller
// opened: given, by name, or the first listener for first) and loads the
// TLS material of TLS listeners. It returns the listeners and a copy of
// cfg whose port-0 listeners carry the ports they got.
func openListeners(cfg *config.Config, given map[string]net.Listener, first net.Listener, log *slog.Logger) (_ []*clientListener, _ *config.Config, err error) {
	all, err := cfg.Listeners()
	if err != nil {
		return nil, nil, err
	}
	var out []*clientListener
	defer func() {
		if err != nil {
			for _, l := range out {
				l.ln.Close()
			}
		}
	}()
	ports := map[string]int{}
	for _, lc := range all {
		if lc.Role != config.RoleClient {
			continue
		}
		l := &clientListener{cfg: lc}
		if lc.TLS() {
			s, err := tlsconf.Load(cfg.Configured, lc.Name)
			if err != nil {
				return nil, nil, fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			if l.tls, err = tlsconf.New(s, log.With("listener", lc.Name)); err != nil {
				return nil, nil, fmt.Errorf("listener %s: %w", lc.Name, err)
			}
			l.tlsConfig = l.tls.ServerConfig()
			var mechs []string
			if lc.SASL() {
				mechs = cfg.SASLMechanisms(lc.Name)
			}
			l.auth = authstats.NewListener(lc.Name, !lc.SASL(), mechs...)
		}
		switch {
		case given[lc.Name] != nil:
			l.ln = given[lc.Name]
		case first != nil && len(out) == 0:
			l.ln = first
		default:
			if l.ln, err = net.Listen("tcp", lc.Addr); err != nil {
				return nil, nil, fmt.Errorf("listener %s: listening on %s: %w", lc.Name, lc.Addr, err)
			}
		}
		out = append(out, l)
		ports[lc.Name] = l.ln.Addr().(*net.TCPAddr).Port
	}
	bound, err := cfg.WithBoundPorts(ports)
	if err != nil {
		return nil, nil, err
	}
	// The resolved listeners again, now with their real ports.
	resolved, err := bound.Listeners()
	if err != nil {
		return nil, nil, err
	}
	for _, l := range out {
		i := slices.IndexFunc(resolved, func(r config.Listener) bool { return r.Name == l.cfg.Name })
		l.cfg = resolved[i]
	}
	return out, bound, nil
}

// acceptLoop accepts connections on one listener until Shutdown.
func (s *Server) acceptLoop(l *clientListener) error {
	var backoff time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyOpenFiles) {
				// Temporary (out of file descriptors, ...): back off
				// rather than spin, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "listener", l.name(), "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
					return nil
				}
				continue
			}
			return fmt.Errorf("accepting connections on %s: %w", l.name(), err)
		}
		backoff = 0
		cfg := s.Config()
		addr := remoteAddrPort(nc).Addr()
		if n, limit, ok := s.ipConns.acquire(addr, cfg); !ok {
			s.metrics.ConnRefused(metrics.RefusedPerIP)
			if s.ipConns.shouldLog(addr, time.Now()) {
				s.log.Warn("closing connection: max.connections.per.ip reached for its address (logged at most once a second per address)", "listener", l.name(), "remote", nc.RemoteAddr().String(), "open", n, "max_connections_per_ip", limit)
			}
			nc.Close()
			continue
		}
		if n := s.openConns.Add(1); n > int64(cfg.MaxConnections) {
			s.openConns.Add(-1)
			s.ipConns.release(addr)
			s.metrics.ConnRefused(metrics.RefusedMaxConnections)
			s.log.Warn("closing connection: max.connections reached", "listener", l.name(), "remote", nc.RemoteAddr().String(), "max_connections", cfg.MaxConnections)
			nc.Close()
			continue
		}
		if d := s.quotas.RecordConnection(addr); d > 0 {
			// Over its IP's connection_creation_rate: held unserved
			// for the throttle time, then closed, as Kafka does, so
			// that a client reconnecting in a loop is slowed down.
			s.metrics.ConnRefused(metrics.RefusedCreationRate)
			s.log.Info("closing connection: connection_creation_rate exceeded", "listener", l.name(), "remote", nc.RemoteAddr().String(), "throttle", d)
			s.connWG.Add(1)
			go func() {
				defer s.connWG.Done()
				defer s.openConns.Add(-1)
				defer s.ipConns.release(addr)
				defer nc.Close()
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
				case <-s.ctx.Done():
				}
			}()
			continue
		}
		s.metrics.ConnOpened()
		c := newConn(s, l, nc)
		s.connsMu.Lock()
		s.conns[c] = struct{}{}
		s.connsMu.Unlock()
		s.connWG.Add(1)
		go func() {
			defer s.connWG.Done()
			defer s.openConns.Add(-1)
			defer s.ipConns.release(addr)
			defer s.metrics.ConnClosed()
			c.serve()
			s.connsMu.Lock()
			delete(s.conns, c)
			s.connsMu.Unlock()
		}()
	}
}
