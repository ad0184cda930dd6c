package fetchwire

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
)

// serverCert is a certificate for 127.0.0.1 from a test CA, and that CA.
func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca, err := tlstest.NewCA("fetchwire test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("127.0.0.1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return cert, ca.Pool()
}

// writeCounter counts the writes to the connections a listener accepts.
type writeCounter struct {
	net.Listener
	writes *atomic.Int64
}

type countedConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countedConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (l writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countedConn{Conn: c, writes: l.writes}, nil
}

// A connection of NewTLSListener is written by NewWriter through its
// Coalescer: a 1 MiB response (64 TLS records) reaches the socket in a
// few 256 KiB writes, and the client reads exactly what was written.
func TestTLSListenerGathersRecords(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	writes := &atomic.Int64{}
	cert, roots := serverCert(t)
	ln := NewTLSListener(writeCounter{Listener: raw, writes: writes}, &tls.Config{Certificates: []tls.Certificate{cert}})
	defer ln.Close()

	want := make([]byte, 1<<20)
	_, _ = rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		c, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			t.Error(err)
			got <- nil
			return
		}
		defer c.Close()
		b := make([]byte, len(want)+8)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Error(err)
		}
		got <- b
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc, ok := c.(*TLSConn)
	if !ok {
		t.Fatalf("accepted a %T, want *TLSConn", c)
	}
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	w := NewWriter(c)
	if err := w.Write(net.Buffers{[]byte("head"), want, []byte("tail")}); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if !bytes.Equal(b, append(append([]byte("head"), want...), "tail"...)) {
		t.Fatal("the client read other bytes than those written")
	}
	// 64 records and their overhead, in writes of up to 256 KiB; one
	// write per record without the Coalescer.
	if n := writes.Load() - before; n > 5 {
		t.Errorf("1 MiB took %d socket writes, want at most 5", n)
	}
}
