package server

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/tributary/tributary/broker/internal/fetchwire"
)

// recordPayload is the most plaintext one TLS record carries.
const recordPayload = 16 << 10

// countingConn counts the writes crypto/tls makes below it: one per
// record once the handshake is done.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestTLSWriterFullRecords writes fetch-shaped responses (small encoded
// fields around large record batches) through fetchwire.Writer on a connection
// of an SSL listener: the client reads
// exactly the concatenated pieces, and the pieces cost no more records
// than the bytes need plus one partial record per large piece, where
// writing them one by one would cost a record per small piece.
func TestTLSWriterFullRecords(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	var serverConfig *tls.Config
	for _, l := range s.listeners {
		if l.name() == "CLIENT_SECURE" {
			serverConfig = l.tlsConfig
		}
	}
	if serverConfig == nil {
		t.Fatal("no CLIENT_SECURE listener")
	}
	tests := []struct {
		name   string
		pieces []int // piece sizes
		large  int   // pieces larger than one record
	}{
		{"one small response", []int{40}, 0},
		{"one large piece", []int{9, 200 << 10, 3}, 1},
		{"partitions", []int{31, 100 << 10, 24, 40 << 10, 24, 5, 24, 1 << 20, 2}, 3},
		{"only small pieces", []int{31, 500, 24, 700, 2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			counted := &countingConn{Conn: server}
			srv := tls.Server(counted, serverConfig)
			cl := tls.Client(client, clientTLS(t, e.ca, nil))
			var pieces net.Buffers
			var want []byte
			for i, n := range tt.pieces {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				pieces = append(pieces, p)
				want = append(want, p...)
			}
			got := make(chan []byte, 1)
			go func() {
				b := make([]byte, len(want))
				if _, err := io.ReadFull(cl, b); err != nil {
					t.Error(err)
				}
				got <- b
			}()
			if err := srv.Handshake(); err != nil {
				t.Fatal(err)
			}
			before := counted.writes.Load()
			if err := fetchwire.NewWriter(srv).Write(pieces); err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("the client read %d bytes that differ from the %d written", len(b), len(want))
			}
			records := counted.writes.Load() - before
			limit := int64((len(want)+recordPayload-1)/recordPayload + tt.large)
			if records > limit {
				t.Fatalf("%d bytes in %d pieces took %d TLS records, want at most %d", len(want), len(pieces), records, limit)
			}
			// Not the TLS Close: its close_notify would wait for a reader
			// on the synchronous pipe.
			client.Close()
			server.Close()
		})
	}
}
