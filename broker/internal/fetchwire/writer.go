package fetchwire

import (
	"bufio"
	"fmt"
	"net"
)

// tlsRecordPayload is the most plaintext one TLS record carries (RFC 8446
// §5.1, RFC 5246 §6.2.1): crypto/tls cuts every Write into records of at
// most this many bytes.
const tlsRecordPayload = 16 << 10

// Writer writes encoded responses to one connection. On plain TCP the
// pieces go out with one vectored write (writev). Over TLS, written one by
// one, each small piece (the fields between record batches) would cost a
// TLS record of its own: header, tag and a write system call for a few
// bytes; joined first, the whole response would be copied once more
// before crypto/tls copies it again into its records, and a response of
// 50 MiB would cost an allocation of 50 MiB. So over TLS the small pieces
// gather in a buffer of one record's payload, which a large piece fills
// before the buffer goes out as one full record, and the rest of the
// large piece goes to crypto/tls directly: every byte is copied once, by
// crypto/tls as it encrypts, and records stay full.
type Writer struct {
	conn net.Conn
	bw   *bufio.Writer // nil on plain TCP
}

// NewWriter returns the writer of responses to c (a *net.TCPConn, or a
// *tls.Conn or any other stream, which get the buffered path). Use one per
// connection, from one goroutine.
func NewWriter(c net.Conn) *Writer {
	if _, plain := c.(*net.TCPConn); plain {
		return &Writer{conn: c}
	}
	return &Writer{conn: c, bw: bufio.NewWriterSize(c, tlsRecordPayload)}
}

// Write writes one response's pieces (Encode's, or one encoded response)
// and flushes them.
func (w *Writer) Write(pieces net.Buffers) error {
	if w.bw == nil {
		if _, err := pieces.WriteTo(w.conn); err != nil {
			return fmt.Errorf("writing a response: %w", err)
		}
		return nil
	}
	for _, p := range pieces {
		// bufio copies p into the buffer while it fits, fills the buffer
		// and flushes it when p is larger, and hands whatever remains of
		// a large p to the connection without copying it.
		if _, err := w.bw.Write(p); err != nil {
			return fmt.Errorf("writing a response: %w", err)
		}
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing a response: %w", err)
	}
	return nil
}
