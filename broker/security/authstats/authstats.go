// Package authstats counts the outcomes of authentications per listener:
// each TLS handshake that authenticates a connection (or fails to), and
// each SASL exchange, with a small fixed set of failure reasons. It feeds
// tributary_authentications_total{listener,mechanism,result} and
// tributary_authentication_failures_total{listener,mechanism,reason}, the
// counterparts of Kafka's per-listener successful-authentication-total and
// failed-authentication-total (socket-server-metrics).
//
// Label values are bounded: listener names come from the configuration,
// mechanisms from the listener's own set (a mechanism a client names that
// the listener does not offer counts as Unsupported), reasons from the
// constants below. Nothing a client sends, no principal or user name,
// becomes a label value. Every series a listener can have exists from its
// start, zeros included, so an alarm on increase() sees the first failure.
//
// Counting is an atomic add on a counter found in a list of at most a few
// mechanisms: nothing is allocated per connection.
package authstats

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"strings"
	"sync/atomic"

	"github.com/tributary/tributary/broker/security/tlsconf"
)

// Mechanism label values besides the SASL mechanisms' own names.
const (
	// TLS is the TLS handshake: the authentication of an SSL listener and
	// of the in-cluster listeners (a certificate of the cluster's CA),
	// and a step before SASL on a SASL_SSL listener, where only its
	// failures are counted (the SASL exchange is the authentication).
	TLS = "TLS"
	// Unsupported is a SaslHandshake naming a mechanism the listener does
	// not offer (the name itself is the client's and is not a label).
	Unsupported = "unsupported"
)

// Reason is why an authentication failed; its value is the label value.
type Reason string

// TLS handshake failures.
const (
	// NoCertificate: no client certificate where the listener requires one.
	NoCertificate Reason = "no_certificate"
	// UnknownCA: a certificate not signed by a CA the listener trusts.
	UnknownCA Reason = "unknown_ca"
	// ExpiredCertificate: a certificate expired or not yet valid.
	ExpiredCertificate Reason = "expired_certificate"
	// ProtocolVersion: no TLS version both sides accept.
	ProtocolVersion Reason = "protocol_version"
	// NotTLS: the client's first bytes were not a TLS handshake (a
	// plaintext client).
	NotTLS Reason = "not_tls"
	// NoPrincipal: a valid certificate no principal mapping rule applies
	// to (ssl.principal.mapping.rules).
	NoPrincipal Reason = "no_principal"
)

// SASL failures.
const (
	// UnknownUser: SCRAM, no credential for the user (the client is told
	// no more than for a wrong password).
	UnknownUser Reason = "unknown_user"
	// BadPassword: SCRAM, the proof does not match the credential.
	BadPassword Reason = "bad_password"
	// TokenExpired: an IAM token (or the credentials that signed it)
	// expired, or is dated in the future.
	TokenExpired Reason = "token_expired"
	// TokenWrongCluster: an IAM token made for another cluster.
	TokenWrongCluster Reason = "token_wrong_cluster"
	// TokenWrongEndpoint: an IAM token presigned for another STS endpoint.
	TokenWrongEndpoint Reason = "token_wrong_endpoint"
	// TokenRefused: STS refused the token's signature or access key.
	TokenRefused Reason = "token_refused"
	// STSUnavailable: STS could not be asked; the client was refused
	// though its token may be good.
	STSUnavailable Reason = "sts_unavailable"
	// Malformed: a SASL message or token that does not parse.
	Malformed Reason = "malformed"
	// NotAuthorized: an IAM principal without kafka-cluster:Connect.
	NotAuthorized Reason = "not_authorized"
	// PrincipalChanged: a re-authentication (KIP-368) as another principal.
	PrincipalChanged Reason = "principal_changed"
	// UnsupportedMechanism: a SaslHandshake naming a mechanism the
	// listener does not offer (mechanism Unsupported).
	UnsupportedMechanism Reason = "unsupported_mechanism"
)

// Other is any failure the reasons above do not name; the broker's log
// line of the refusal says what it was.
const Other Reason = "other"

// The reasons each kind of mechanism can count, in the order of the
// series. A reason outside its mechanism's list counts as Other.
var (
	tlsReasons   = []Reason{NoCertificate, UnknownCA, ExpiredCertificate, ProtocolVersion, NotTLS, NoPrincipal, Other}
	scramReasons = []Reason{UnknownUser, BadPassword, Malformed, PrincipalChanged, Other}
	iamReasons   = []Reason{TokenExpired, TokenWrongCluster, TokenWrongEndpoint, TokenRefused, STSUnavailable, Malformed, NotAuthorized, PrincipalChanged, Other}
	unsupported  = []Reason{UnsupportedMechanism}
)

func reasonsOf(mechanism string) []Reason {
	switch {
	case mechanism == TLS:
		return tlsReasons
	case mechanism == Unsupported:
		return unsupported
	case strings.HasPrefix(mechanism, "SCRAM-"):
		return scramReasons
	default: // OAUTHBEARER (IAM identity tokens)
		return iamReasons
	}
}

// Listener holds one listener's counters. Its methods are safe for
// concurrent use; a nil *Listener counts nothing.
type Listener struct {
	name  string
	mechs []*mechanism
}

type mechanism struct {
	name        string
	reasons     []Reason
	hasSuccess  bool
	successes   atomic.Int64
	failures    []atomic.Int64 // by index in reasons
	otherReason int
}

// NewListener makes the counters of a listener. tlsAuthenticates: a TLS
// handshake authenticates its connections (an SSL listener, an in-cluster
// listener over TLS); saslMechanisms: the SASL mechanisms of a SASL_SSL
// listener, whose TLS handshakes then count their failures only.
func NewListener(name string, tlsAuthenticates bool, saslMechanisms ...string) *Listener {
	l := &Listener{name: name}
	add := func(name string, success bool) {
		rs := reasonsOf(name)
		m := &mechanism{name: name, reasons: rs, hasSuccess: success, failures: make([]atomic.Int64, len(rs)), otherReason: -1}
		for i, r := range rs {
			if r == Other {
				m.otherReason = i
			}
		}
		l.mechs = append(l.mechs, m)
	}
	add(TLS, tlsAuthenticates)
	for _, s := range saslMechanisms {
		add(s, true)
	}
	if len(saslMechanisms) > 0 {
		add(Unsupported, false)
	}
	return l
}

// Name is the listener's name.
func (l *Listener) Name() string { return l.name }

func (l *Listener) mechanism(name string) *mechanism {
	for _, m := range l.mechs {
		if m.name == name {
			return m
		}
	}
	return nil
}

// Success counts an authentication by mechanism.
func (l *Listener) Success(mechanism string) {
	if l == nil {
		return
	}
	if m := l.mechanism(mechanism); m != nil && m.hasSuccess {
		m.successes.Add(1)
	}
}

// Failure counts a failed authentication by mechanism (Unsupported when
// the mechanism is not one of the listener's), for reason (Other when the
// mechanism has no such reason).
func (l *Listener) Failure(mechanism string, reason Reason) {
	if l == nil {
		return
	}
	m := l.mechanism(mechanism)
	if m == nil {
		m, reason = l.mechanism(Unsupported), UnsupportedMechanism
		if m == nil {
			return
		}
	}
	i := m.otherReason
	for j, r := range m.reasons {
		if r == reason {
			i = j
			break
		}
	}
	if i >= 0 {
		m.failures[i].Add(1)
	}
}

// Count is one series of tributary_authentications_total.
type Count struct {
	Listener, Mechanism, Result string // Result: "success" or "failure"
	Count                       int64
}

// FailureCount is one series of tributary_authentication_failures_total.
type FailureCount struct {
	Listener, Mechanism string
	Reason              Reason
	Count               int64
}

// Series reads every series of the listener, zeros included. A mechanism
// that counts only failures (TLS on a SASL_SSL listener, Unsupported) has
// no success series.
func (l *Listener) Series() ([]Count, []FailureCount) {
	if l == nil {
		return nil, nil
	}
	var counts []Count
	var failures []FailureCount
	for _, m := range l.mechs {
		var failed int64
		for i := range m.failures {
			n := m.failures[i].Load()
			failed += n
			failures = append(failures, FailureCount{Listener: l.name, Mechanism: m.name, Reason: m.reasons[i], Count: n})
		}
		if m.hasSuccess {
			counts = append(counts, Count{Listener: l.name, Mechanism: m.name, Result: "success", Count: m.successes.Load()})
		}
		counts = append(counts, Count{Listener: l.name, Mechanism: m.name, Result: "failure", Count: failed})
	}
	return counts, failures
}

// HandshakeFailure reports why a server-side TLS handshake failed, and
// false when it is no authentication attempt to count: a connection
// closed before its first byte (a load balancer's or the controller's
// liveness probe, a port scan).
func HandshakeFailure(err error) (Reason, bool) {
	if err == nil || errors.Is(err, io.EOF) {
		return "", false
	}
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		header  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, tlsconf.ErrNoPeerCertificate):
		return NoCertificate, true
	case errors.As(err, &unknown):
		return UnknownCA, true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ExpiredCertificate, true
	case errors.As(err, &header):
		return NotTLS, true
	}
	// crypto/tls returns these as plain errors; their texts are the only
	// handle (crypto/tls handshake_server.go, handshake_server_tls13.go).
	msg := err.Error()
	switch {
	case strings.Contains(msg, "client didn't provide a certificate"):
		return NoCertificate, true
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version not supported"):
		return ProtocolVersion, true
	}
	return Other, true
}
