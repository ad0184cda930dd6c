package server

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/tributary/tributary/broker/internal/fetchwire"
)

// recordPayload is the most plaintext one TLS record carries.
const recordPayload = 16 << 10

// countingConn counts the writes crypto/tls makes below it, and the TLS
// records in them.
type countingConn struct {
	net.Conn
	writes  atomic.Int64
	records atomic.Int64
	// header holds the bytes of a record header split across writes;
	// skip is what is left of the current record's body.
	header []byte
	skip   int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	for rest := p; len(rest) > 0; {
		if c.skip > 0 {
			n := min(c.skip, len(rest))
			c.skip -= n
			rest = rest[n:]
			continue
		}
		n := min(5-len(c.header), len(rest))
		c.header = append(c.header, rest[:n]...)
		rest = rest[n:]
		if len(c.header) == 5 {
			c.records.Add(1)
			c.skip = int(binary.BigEndian.Uint16(c.header[3:]))
			c.header = c.header[:0]
		}
	}
	return c.Conn.Write(p)
}

// TestTLSWriterFullRecords writes fetch-shaped responses (small encoded
// fields around large record batches) through fetchwire.Writer on a connection
// of an SSL listener: the client reads
// exactly the concatenated pieces, and the pieces cost no more records
// than the bytes need plus one partial record per large piece, where
// writing them one by one would cost a record per small piece. With a
// Coalescer under the TLS connection, as the listeners have, the records
// of a response reach the connection in writes of 256 KiB, not one each.
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
		for _, coalesced := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, coalesced %t", tt.name, coalesced), func(t *testing.T) {
				client, server := net.Pipe()
				counted := &countingConn{Conn: server}
				// What the listeners use (a TLSConn), or crypto/tls alone.
				srv := tls.Server(counted, serverConfig)
				var conn net.Conn = srv
				if coalesced {
					tc := fetchwire.NewTLSServer(counted, serverConfig)
					srv, conn = tc.Conn, tc
				}
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
				before, recordsBefore := counted.writes.Load(), counted.records.Load()
				w := fetchwire.NewWriter(conn)
				if err := w.Write(pieces); err != nil {
					t.Fatal(err)
				}
				if b := <-got; !bytes.Equal(b, want) {
					t.Fatalf("the client read %d bytes that differ from the %d written", len(b), len(want))
				}
				records, writes := counted.records.Load()-recordsBefore, counted.writes.Load()-before
				limit := int64((len(want)+recordPayload-1)/recordPayload + tt.large)
				if records > limit {
					t.Fatalf("%d bytes in %d pieces took %d TLS records, want at most %d", len(want), len(pieces), records, limit)
				}
				// Each record is a write of its own, or they gather in
				// writes of up to 256 KiB (records and their overhead).
				wantWrites := records
				if coalesced {
					wantWrites = int64(len(want)+int(records)*64)/(256<<10) + 1
				}
				if writes > wantWrites {
					t.Fatalf("%d records took %d writes, want at most %d", records, writes, wantWrites)
				}
				// Not the TLS Close: its close_notify would wait for a reader
				// on the synchronous pipe.
				client.Close()
				server.Close()
			})
		}
	}
}
