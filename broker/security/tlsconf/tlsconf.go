// Package tlsconf builds the broker's TLS configurations from Kafka's
// ssl.* settings, reloads certificates and keys from disk when the files
// change, and names the principal of a client certificate.
//
// # How a server uses it
//
// For each TLS listener (SSL 9094, SASL_SSL 9096/9098, and the
// replication 9093 and Raft 9095 listeners when in-cluster encryption is
// on), the server calls Load(cfg.Get, listenerName) once at start and New
// on the result; a failure is a start-up error naming the setting. It then
// wraps the listener with tls.NewListener(ln, t.ServerConfig()). After the
// handshake of an SSL listener, t.Principal(conn.ConnectionState()) is the
// connection's principal (User:ANONYMOUS without a client certificate);
// SASL_SSL listeners take the principal from SASL instead. The
// replication and Raft listeners use t.Peers() instead: its ServerConfig,
// and ClientConfig(host), a fresh config per connection that presents the
// broker's own certificate, so brokers use their certificates both ways
// (those listeners set ssl.client.auth=required) and accept only peers of
// the CA of their own certificate.
//
// Certificates and keys given as files are checked on every handshake (a
// stat of each file): when one changed, the pair is read again and used
// from that handshake on. A half-written file or a key that does not match
// its certificate keeps the previous pair in service and is logged; the
// next handshake tries again. Established connections keep their session.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TLS is one listener's TLS material and settings.
type TLS struct {
	s       *Settings
	log     *slog.Logger
	cert    *reloading[*tls.Certificate]
	roots   *reloading[*x509.CertPool] // nil: no truststore
	rootsOK bool
}

// New reads the keystore and truststore of s. log receives reload
// failures (never key material).
func New(s *Settings, log *slog.Logger) (*TLS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TLS{s: s, log: log}
	var err error
	if s.KeystoreLocation != "" {
		t.cert, err = newReloading("keystore", []string{s.KeystoreLocation}, log, func(b [][]byte) (*tls.Certificate, error) {
			return keyPairFromPEM(b[0], b[0])
		})
	} else {
		var c *tls.Certificate
		c, err = keyPairFromPEM([]byte(s.CertChainPEM), []byte(s.KeyPEM))
		t.cert = fixed(c)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	switch {
	case s.TruststoreLocation != "":
		t.roots, err = newReloading("truststore", []string{s.TruststoreLocation}, log, func(b [][]byte) (*x509.CertPool, error) {
			return poolFromPEM(b[0])
		})
		t.rootsOK = true
	case s.TruststorePEM != "":
		var p *x509.CertPool
		p, err = poolFromPEM([]byte(s.TruststorePEM))
		t.roots, t.rootsOK = fixed(p), true
	}
	if err != nil {
		return nil, fmt.Errorf("truststore: %w", err)
	}
	return t, nil
}

// ServerConfig is the listener's tls.Config. Each handshake gets the
// current certificate and truststore.
func (t *TLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: t.s.MinVersion,
		MaxVersion: t.s.MaxVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{
				MinVersion:   t.s.MinVersion,
				MaxVersion:   t.s.MaxVersion,
				CipherSuites: t.s.CipherSuites,
				ClientAuth:   t.s.ClientAuth,
				Certificates: []tls.Certificate{*t.cert.current()},
				// crypto/tls otherwise sends the first 128 KiB after
				// the handshake in records
				// of about a TCP segment, for a browser's first paint: a
				// Kafka client waits for a whole response, so that is only
				// more records, each with its header, tag and system call.
				DynamicRecordSizingDisabled: true,
			}
			if t.rootsOK {
				c.ClientCAs = t.roots.current()
			}
			return c, nil
		},
	}
}

// ClientConfig is a config for one connection to serverName (a host name
// or IP address) presenting the keystore's certificate and trusting the
// truststore (the system roots without one). Call it per dial so that each
// connection gets the current material.
func (t *TLS) ClientConfig(serverName string) *tls.Config {
	cert := t.cert.current()
	c := &tls.Config{
		ServerName:   serverName,
		MinVersion:   t.s.MinVersion,
		MaxVersion:   t.s.MaxVersion,
		CipherSuites: t.s.CipherSuites,
		Certificates: []tls.Certificate{*cert},
	}
	if t.rootsOK {
		c.RootCAs = t.roots.current()
	}
	if !t.s.VerifyHostname {
		// ssl.endpoint.identification.algorithm empty: the chain is still
		// verified against the truststore, the name is not.
		roots := c.RootCAs
		c.InsecureSkipVerify = true
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return c
}

// Dialer dials TLS connections to other brokers with ClientConfig.
func (t *TLS) Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		td := &tls.Dialer{NetDialer: d, Config: t.ClientConfig(host)}
		return td.DialContext(ctx, network, addr)
	}
}

// Principal is the Kafka principal of a TLS client: User:ANONYMOUS
// without a verified certificate, else "User:" + the certificate's subject
// mapped by ssl.principal.mapping.rules.
func (t *TLS) Principal(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return Anonymous, nil
	}
	dn, err := DistinguishedName(cs.PeerCertificates[0])
	if err != nil {
		return "", err
	}
	name, err := t.s.Principals.Map(dn)
	if err != nil {
		return "", err
	}
	return "User:" + name, nil
}

func keyPairFromPEM(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
			return nil, errors.New("the private key is encrypted, which is not supported")
		}
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func poolFromPEM(b []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		p.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}

// reloading is a value read from files, read again when one of them
// changes (size, modification time or inode: an atomic rename counts).
type reloading[T any] struct {
	what  string
	files []string
	parse func([][]byte) (T, error)
	log   *slog.Logger

	val atomic.Pointer[T]

	mu        sync.Mutex
	seen      []fileID
	lastError time.Time
}

type fileID struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func fixed[T any](v T) *reloading[T] {
	r := &reloading[T]{}
	r.val.Store(&v)
	return r
}

func newReloading[T any](what string, files []string, log *slog.Logger, parse func([][]byte) (T, error)) (*reloading[T], error) {
	r := &reloading[T]{what: what, files: files, parse: parse, log: log}
	ids, v, err := r.read()
	if err != nil {
		return nil, err
	}
	r.seen = ids
	r.val.Store(&v)
	return r, nil
}

func (r *reloading[T]) read() ([]fileID, T, error) {
	var zero T
	ids := make([]fileID, len(r.files))
	data := make([][]byte, len(r.files))
	for i, f := range r.files {
		id, err := statID(f)
		if err != nil {
			return nil, zero, err
		}
		if data[i], err = os.ReadFile(f); err != nil {
			return nil, zero, err
		}
		ids[i] = id
	}
	v, err := r.parse(data)
	if err != nil {
		// The ids are those of the content that failed to parse.
		return ids, zero, fmt.Errorf("%s: %w", r.files[0], err)
	}
	return ids, v, nil
}

func statID(f string) (fileID, error) {
	info, err := os.Stat(f)
	if err != nil {
		return fileID{}, err
	}
	id := fileID{size: info.Size(), mtime: info.ModTime()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id, nil
}

// current returns the value, reading the files again first when they
// changed. A failed read keeps the previous value and is logged (at most
// once a minute while it keeps failing).
func (r *reloading[T]) current() T {
	if r.files == nil {
		return *r.val.Load()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for i, f := range r.files {
		id, err := statID(f)
		if err != nil || id != r.seen[i] {
			changed = true
			break
		}
	}
	if !changed {
		return *r.val.Load()
	}
	ids, v, err := r.read()
	if err == nil {
		r.seen = ids
		r.val.Store(&v)
		r.log.Info("TLS "+r.what+" reloaded", "file", r.files[0])
		return v
	}
	// Remember the version that failed (as statted before it was read),
	// so the files are read again when they change again (the writer
	// finishing), not on every handshake.
	if ids != nil {
		r.seen = ids
	}
	if time.Since(r.lastError) > time.Minute {
		r.lastError = time.Now()
		r.log.Warn("TLS "+r.what+" changed but cannot be read; the previous one stays in use", "file", r.files[0], "err", err)
	}
	return *r.val.Load()
}
