package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
)

// tlsRecordPayload is the most plaintext one TLS record carries (RFC 8446
// §5.1, RFC 5246 §6.2.1): crypto/tls cuts every Write into records of at
// most this many bytes.
const tlsRecordPayload = 16 << 10

// tlsWriter writes responses to a TLS connection. A fetch response comes
// as pieces: small encoded fields around record batches as storage read
// them, megabytes each. Written one by one, each small piece would cost a
// TLS record of its own (header, tag and a write system call for a few
// bytes); joined first, the whole response would be copied once more
// before crypto/tls copies it again into its records, and a 50 MiB
// allocation per fetch keeps the garbage collector busy. So the small
// pieces gather in a buffer of one record's payload, which a large piece
// fills before the buffer goes out as one full record, and the rest of the
// large piece goes to crypto/tls directly: every byte is copied once, by
// crypto/tls as it encrypts, and records stay full.
type tlsWriter struct{ bw *bufio.Writer }

func newTLSWriter(w io.Writer) *tlsWriter {
	return &tlsWriter{bw: bufio.NewWriterSize(w, tlsRecordPayload)}
}

// writeResponse writes one response's pieces and flushes them.
func (t *tlsWriter) writeResponse(pieces net.Buffers) error {
	for _, p := range pieces {
		// bufio copies p into the buffer while it fits, fills the buffer
		// and flushes it when p is larger, and hands whatever remains of
		// a large p to the connection without copying it.
		if _, err := t.bw.Write(p); err != nil {
			return fmt.Errorf("writing a response over TLS: %w", err)
		}
	}
	if err := t.bw.Flush(); err != nil {
		return fmt.Errorf("writing a response over TLS: %w", err)
	}
	return nil
}
