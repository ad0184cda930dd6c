package server

import (
	"net"
	"testing"
	"time"
)

// TestSocketUnreadCountsQueuedBytes: what a client sent and the broker
// has not read is what socketUnread reports (the frame reader's Arrived),
// and a connection without a socket reports nothing.
func TestSocketUnreadCountsQueuedBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if got := socketUnread(server); got != 0 {
		t.Fatalf("nothing sent: %d bytes unread", got)
	}
	const sent = 100 << 10
	if _, err := client.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for socketUnread(server) < sent {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes sent, %d unread after 10 s", sent, socketUnread(server))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := socketUnread(server); got != sent {
		t.Fatalf("%d bytes sent, %d unread", sent, got)
	}
	buf := make([]byte, 40<<10)
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	if got := socketUnread(server); got <= 0 || got >= sent {
		t.Errorf("after a read of up to %d bytes: %d unread, want fewer than %d", len(buf), got, sent)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := socketUnread(a); got != 0 {
		t.Errorf("a pipe: %d unread", got)
	}
}
