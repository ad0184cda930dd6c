package server

import (
	"net"
	"net/netip"
	"testing"

	"github.com/tributary/tributary/broker/security/authz"
)

// anonymousAuth authorizes a request of API key as a PLAINTEXT client
// (User:ANONYMOUS from 127.0.0.1), for tests that call handlers directly.
func anonymousAuth(s *Server, key int16) reqAuth {
	host := netip.MustParseAddr("127.0.0.1")
	return reqAuth{s: s, rc: authz.RequestContext{Principal: anonymous, Host: host, Listener: "PLAINTEXT"}, client: netip.AddrPortFrom(host, 50000), key: key}
}

// dialConn returns the broker side of a new TCP connection, as a conn of
// s's first listener (not served), for tests of what a connection decides.
func dialConn(t *testing.T, s *Server) *conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return newConn(s, s.listeners[0], nc)
}
