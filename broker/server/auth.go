package server

// A connection's identity: who the client is (its principal), from where,
// and how it proved it. PLAINTEXT clients are User:ANONYMOUS; on an SSL
// listener the client certificate, when there is one, names the principal
// (ssl.principal.mapping.rules); on a SASL_SSL listener the SASL exchange
// does (sasl.go).

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/tributary/tributary/broker/internal/fetchwire"
	"github.com/tributary/tributary/broker/security/audit"
	"github.com/tributary/tributary/broker/security/authstats"
	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/broker/security/tlsconf"
)

// anonymous is the principal of a client nothing authenticated.
const anonymous = tlsconf.Anonymous

// requestContext is who sends the connection's requests, for the
// authorizer: the principal, the client's address, whether an IAM identity
// token authenticated it, and the listener (for the audit trail).
func (c *conn) requestContext() authz.RequestContext {
	return authz.RequestContext{Principal: c.principal, Host: c.addr.Addr(), IAM: c.iam, Listener: c.listener.name()}
}

// auditRequest describes the connection for an audit line.
func (c *conn) auditRequest(key int16) audit.Request {
	rc := c.requestContext()
	return audit.Request{Principal: rc.Principal, Client: c.addr, Listener: c.listener.name(), APIKey: key}
}

// remoteAddrPort is a connection's peer address (the zero AddrPort when it
// is not TCP), with IPv4-mapped IPv6 addresses unmapped so that ACL hosts
// written as IPv4 match.
func remoteAddrPort(nc net.Conn) netip.AddrPort {
	ta, ok := nc.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// startTLS runs the TLS handshake of a connection on a TLS listener and,
// on an SSL listener, takes the principal from the client certificate. It
// reports false when the connection must be closed: a failed handshake (a
// plaintext client, a certificate from another CA, an expired one) or a
// certificate no principal mapping rule applies to.
func (c *conn) startTLS() bool {
	l := c.listener
	if l.tlsConfig == nil {
		return true
	}
	// A TLSConn, so that the writer has a response's records reach the
	// socket in large writes rather than one per record.
	tc := fetchwire.NewTLSServer(c.nc, l.tlsConfig)
	c.rw = tc
	_ = tc.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	// crypto/tls closes the connection when the handshake's context ends:
	// the broker's shutdown first makes that close a reset
	// (resetIfStopping), then ends the handshake.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), tlsHandshakeTimeout)
	stop := context.AfterFunc(c.ctx, func() {
		c.resetIfStopping()
		cancel()
	})
	err := tc.HandshakeContext(ctx)
	stop()
	cancel()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			// A failed handshake proves nothing about who knocked: an
			// INFO line, not an audit line.
			c.log.Info("closing connection: TLS handshake failed", "listener", l.name(), "err", err)
			if reason, ok := authstats.HandshakeFailure(err); ok {
				l.auth.Failure(authstats.TLS, reason)
			}
		}
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	if l.cfg.SASL() {
		return true // SASL names the principal
	}
	p, err := l.tls.Principal(tc.ConnectionState())
	if err != nil {
		c.s.audit.Refused(c.ctx, c.auditRequest(-1), "TLS client certificate", err.Error())
		l.auth.Failure(authstats.TLS, authstats.NoPrincipal)
		return false
	}
	l.auth.Success(authstats.TLS)
	c.principal = p
	c.log.Debug("client authenticated", "principal", p, "by", "TLS client certificate")
	return true
}
