package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// Peers is the TLS of a listener only brokers use (replication 9093, the
// metadata quorum 9095). It is the listener's TLS, verifying one thing
// more in both directions: the peer's certificate must chain to the CA
// that issued this broker's own certificate, not merely to any CA of the
// truststore. A broker-wide truststore may also hold the CAs of client
// certificates (mutual TLS on 9094); without this check, a client with
// its certificate could then replicate every partition or speak Raft. Brokers
// of one cluster get their certificates from the cluster's CA, so they
// pass; a client certificate from another CA of the truststore does not.
type Peers struct{ t *TLS }

// Peers is t for a listener between brokers.
func (t *TLS) Peers() Peers { return Peers{t} }

// ServerConfig is the listener's server configuration with the peer
// check (the listener's ssl.client.auth must be required).
func (p Peers) ServerConfig() *tls.Config {
	c := p.t.ServerConfig()
	get := c.GetConfigForClient
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		sc, err := get(hello)
		if err != nil {
			return nil, err
		}
		sc.VerifyConnection = p.verify
		return sc, nil
	}
	return c
}

// ClientConfig is the configuration to dial a broker at serverName with
// the peer check; the name is verified as ClientConfig says.
func (p Peers) ClientConfig(serverName string) *tls.Config {
	c := p.t.ClientConfig(serverName)
	if hostless := c.VerifyConnection; hostless != nil {
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := hostless(cs); err != nil {
				return err
			}
			return p.verify(cs)
		}
	} else {
		c.VerifyConnection = p.verify
	}
	return c
}

// Check says whether peers can be checked at all: this broker's own
// certificate must chain to the truststore (checked again at every
// handshake, since both files may be rotated).
func (p Peers) Check() error {
	_, err := p.anchors()
	return err
}

// CheckNode says whether this broker's own certificate may serve node id:
// one that names another node (tlsconf.NodeURI) would have every request
// it sends refused by its peers, which bind the ids of in-cluster requests
// to the certificate's node. One that names none is accepted (issued
// before certificates named their node).
func (p Peers) CheckNode(id int32) error {
	own := p.t.cert.current()
	leaf := own.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(own.Certificate[0]); err != nil {
			return fmt.Errorf("this broker's certificate: %w", err)
		}
	}
	named, ok, err := CertificateNodeID(leaf)
	switch {
	case err != nil:
		return fmt.Errorf("this broker's certificate: %w", err)
	case ok && named != id:
		return fmt.Errorf("this broker's certificate names node %d, and this is node %d (node.id): its peers would refuse every request it sends", named, id)
	}
	return nil
}

// ErrNoPeerCertificate is the refusal of a peer that sent no certificate
// on an in-cluster listener.
var ErrNoPeerCertificate = errors.New("the peer sent no certificate: brokers present theirs")

// verify checks, after crypto/tls verified the peer against the
// truststore, that the peer's certificate chains to one of the trust
// anchors of this broker's current certificate.
func (p Peers) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoPeerCertificate
	}
	anchors, err := p.anchors()
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: anchors, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("the peer's certificate (%s) is not from the CA of this broker's certificate: %w", cs.PeerCertificates[0].Subject, err)
	}
	return nil
}

// anchors are the truststore certificates this broker's own certificate
// chains to, as a pool: read at each handshake, so they follow a rotated
// keystore or truststore.
func (p Peers) anchors() (*x509.CertPool, error) {
	if !p.t.rootsOK {
		return nil, errors.New("no truststore: brokers check each other's certificates against it")
	}
	own := p.t.cert.current()
	leaf := own.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(own.Certificate[0]); err != nil {
			return nil, fmt.Errorf("this broker's certificate: %w", err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range own.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("this broker's certificate chain: %w", err)
		}
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: p.t.roots.current(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("this broker's own certificate does not chain to the truststore, so no peer can be checked against its CA: %w", err)
	}
	pool := x509.NewCertPool()
	for _, ch := range chains {
		pool.AddCert(ch[len(ch)-1])
	}
	return pool, nil
}
