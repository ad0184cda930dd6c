package fetchwire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// selfSigned is a server certificate for 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
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
	ln := NewTLSListener(writeCounter{Listener: raw, writes: writes}, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	defer ln.Close()

	want := make([]byte, 1<<20)
	_, _ = rand.Read(want)
	got := make(chan []byte, 1)
	go func() {
		c, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a test's own self-signed server
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
