package fetchwire

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// TestWriterSent: Sent counts exactly the bytes the peer receives, on plain
// TCP (writev) and on a stream that takes the buffered path, and a write
// to a connection the peer closed counts only what the connection took.
func TestWriterSent(t *testing.T) {
	pieces := func() net.Buffers {
		return net.Buffers{bytes.Repeat([]byte{1}, 9), bytes.Repeat([]byte{2}, 40<<10), bytes.Repeat([]byte{3}, 7)}
	}
	const each = 9 + 40<<10 + 7
	for _, tc := range []struct {
		name string
		dial func(t *testing.T) (client, server net.Conn)
	}{
		{"tcp", tcpPair},
		{"buffered", func(*testing.T) (net.Conn, net.Conn) { return net.Pipe() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, peer := tc.dial(t)
			defer srv.Close()
			received := make(chan int64, 1)
			go func() {
				n, _ := io.Copy(io.Discard, peer)
				received <- n
			}()
			w := NewWriter(srv)
			if tc.name == "tcp" && w.bw != nil {
				t.Fatal("a TCP connection took the buffered path")
			}
			for range 3 {
				if err := w.Write(pieces()); err != nil {
					t.Fatal(err)
				}
			}
			if w.Sent() != 3*each {
				t.Errorf("Sent() = %d after three responses of %d bytes", w.Sent(), each)
			}
			srv.Close()
			if n := <-received; n != w.Sent() {
				t.Errorf("the peer received %d bytes, Sent() = %d", n, w.Sent())
			}
			// The connection is closed: nothing more goes out, nothing
			// more is counted.
			before := w.Sent()
			if err := w.Write(pieces()); err == nil {
				t.Fatal("a write to a closed connection succeeded")
			}
			if w.Sent() != before {
				t.Errorf("a failed write counted %d bytes", w.Sent()-before)
			}
		})
	}
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	return srv, peer
}
