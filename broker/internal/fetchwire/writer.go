package fetchwire

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
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
	// raw is the TCP socket's descriptor access (nil over TLS), for
	// WritePieces.
	raw syscall.RawConn
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
		w := &Writer{conn: c}
		if raw, err := c.SyscallConn(); err == nil {
			w.raw = raw
		}
		return w
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

// CanSendFiles says whether WritePieces can send record batches from
// files: on a plain TCP connection, where the kernel moves them from the
// page cache to the socket itself. Over TLS the bytes must pass through
// crypto/tls, so they are read into memory (Encode and Write).
func (w *Writer) CanSendFiles() bool { return w.raw != nil }

// WritePieces writes one response encoded by EncodeFiles on a connection
// that CanSendFiles: the bytes in memory up to each file piece with one
// sendmsg flagged MSG_MORE, so that they wait in the socket for the
// batches that follow (the connection has TCP_NODELAY, and each would
// otherwise go out as a small packet of its own, a wake-up of the reader
// each), the file pieces with sendfile, and the bytes after the last file
// piece with a plain vectored write that pushes the whole response out.
// An error leaves the response cut short: close the connection.
func (w *Writer) WritePieces(pieces []Piece) error {
	if w.raw == nil {
		return errors.New("writing a response with record batches in files: not a plain TCP connection")
	}
	var mem net.Buffers
	for _, p := range pieces {
		if p.File == nil {
			mem = append(mem, p.Mem)
			continue
		}
		if len(mem) > 0 {
			n, err := sendMore(w.raw, mem)
			w.sent += n
			if err != nil {
				return fmt.Errorf("writing a response: %w", err)
			}
			mem = mem[:0]
		}
		n, err := p.File.SendTo(w.raw)
		w.sent += n
		if err != nil {
			return fmt.Errorf("writing a response: %w", err)
		}
	}
	if len(mem) > 0 {
		return w.Write(mem)
	}
	return nil
}

// sendMore writes every byte of bufs with sendmsg(MSG_MORE), waiting for
// the socket when it is full (bounded by the connection's write deadline).
func sendMore(raw syscall.RawConn, bufs net.Buffers) (int64, error) {
	var sent int64
	var serr error
	err := raw.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			n, err := unix.SendmsgBuffers(int(fd), bufs, nil, nil, unix.MSG_MORE)
			if n > 0 {
				sent += int64(n)
				for n > 0 && len(bufs) > 0 {
					k := min(n, len(bufs[0]))
					bufs[0], n = bufs[0][k:], n-k
					if len(bufs[0]) == 0 {
						bufs = bufs[1:]
					}
				}
			}
			switch {
			case errors.Is(err, unix.EAGAIN):
				return false
			case errors.Is(err, unix.EINTR):
			case err != nil:
				serr = err
				return true
			}
		}
		return true
	})
	if serr == nil {
		serr = err
	}
	return sent, serr
}
