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
// crypto/tls as it encrypts, and records stay full. On a TLSConn (a
// Coalescer under the TLS connection), the records of one response reach
// the socket in large writes.
type Writer struct {
	conn net.Conn
	bw   *bufio.Writer // nil on plain TCP
	// sent counts the bytes the connection took, as its writes (writev on
	// plain TCP) report them: a connection's traffic is measured here,
	// without wrapping the connection and losing the vectored write.
	sent int64
	co   *Coalescer // nil: crypto/tls writes each record itself
}

// Sent is how many response bytes the connection has taken so far,
// including the part of a response whose write failed.
func (w *Writer) Sent() int64 { return w.sent }

// NewWriter returns the writer of responses to c (a *net.TCPConn; a
// TLSConn, whose records gather in its Coalescer; or a
// *tls.Conn or any other stream, which get the buffered path). Use one per
// connection, from one goroutine.
func NewWriter(c net.Conn) *Writer {
	switch c := c.(type) {
	case *net.TCPConn:
		return &Writer{conn: c}
	case *TLSConn:
		return &Writer{conn: c, bw: bufio.NewWriterSize(c, tlsRecordPayload), co: c.co}
	}
	return &Writer{conn: c, bw: bufio.NewWriterSize(c, tlsRecordPayload)}
}

// Write writes one response's pieces (Encode's, or one encoded response)
// and flushes them.
func (w *Writer) Write(pieces net.Buffers) (err error) {
	if w.bw == nil {
		n, err := pieces.WriteTo(w.conn)
		w.sent += n
		if err != nil {
			return fmt.Errorf("writing a response: %w", err)
		}
		return nil
	}
	if w.co != nil {
		// The records of this response gather under crypto/tls and go
		// out with the response's last byte. What Sent counted of a
		// response whose last write failed may then include records
		// the socket did not take.
		w.co.hold()
		defer func() {
			if rerr := w.co.release(); rerr != nil && err == nil {
				err = fmt.Errorf("writing a response: %w", rerr)
			}
		}()
	}
	for _, p := range pieces {
		// bufio copies p into the buffer while it fits, fills the buffer
		// and flushes it when p is larger, and hands whatever remains of
		// a large p to the connection without copying it.
		n, err := w.bw.Write(p)
		w.sent += int64(n)
		if err != nil {
			w.sent -= int64(w.bw.Buffered())
			return fmt.Errorf("writing a response: %w", err)
		}
	}
	// The buffered bytes counted as written are the connection's only
	// once the flush hands them over; a failed flush keeps what it could
	// not write.
	if err := w.bw.Flush(); err != nil {
		w.sent -= int64(w.bw.Buffered())
		return fmt.Errorf("writing a response: %w", err)
	}
	return nil
}
