package scram

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/tributary/tributary/broker/security/sasl"
)

// The kinds of failure. Test with errors.Is; all of them answer the client
// with the same message (see sasl.ClientMessage), except ErrMalformed and
// ErrUnsupported, which say what was wrong with the message.
var (
	ErrMalformed   = errors.New("malformed SCRAM message")
	ErrUnsupported = errors.New("unsupported SCRAM feature")
	ErrUnknownUser = errors.New("unknown SCRAM user")
	ErrBadProof    = errors.New("SCRAM proof does not match the credential (wrong password)")
	// ErrAuthzid: the client asked to act as another user.
	ErrAuthzid = errors.New("SCRAM authorization id differs from the username")
)

// failure is a session's error: a kind for errors.Is, a detail for the
// log, and the right wire message.
type failure struct {
	kind   error
	detail string
	mech   Mechanism
}

func (f *failure) Error() string { return f.kind.Error() + ": " + f.detail }
func (f *failure) Unwrap() error { return f.kind }

// ClientMessage is Kafka's message for a failed SCRAM login, identical for
// unknown users, wrong passwords and refused authzids.
func (f *failure) ClientMessage() string {
	switch f.kind {
	case ErrMalformed, ErrUnsupported:
		return "Invalid SCRAM message: " + f.detail
	}
	return "Authentication failed during authentication due to invalid credentials with SASL mechanism " + f.mech.String()
}

// Store finds credentials. The metadata image implements it; it must be
// safe for concurrent use.
type Store interface {
	// ScramCredential returns user's credential for m.
	ScramCredential(user string, m Mechanism) (Credential, bool)
}

// StoreFunc adapts a function to Store.
type StoreFunc func(user string, m Mechanism) (Credential, bool)

// ScramCredential calls f.
func (f StoreFunc) ScramCredential(user string, m Mechanism) (Credential, bool) { return f(user, m) }

// Server is the server side of one SCRAM mechanism.
type Server struct {
	mech  Mechanism
	store Store
	// decoySecret keys the salts made up for unknown users: stable for a
	// user while the server runs (a client probing twice sees the same
	// salt, as for a real user), unpredictable from outside.
	decoySecret [32]byte
	// serverNonce makes the server's part of the nonce; tests replace it
	// to replay RFC 7677's example.
	serverNonce func() (string, error)
}

var _ sasl.Mechanism = (*Server)(nil)

// NewServer returns the server side of m checking against store.
func NewServer(m Mechanism, store Store) (*Server, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("SCRAM server: unknown mechanism %d", int8(m))
	}
	if store == nil {
		return nil, fmt.Errorf("SCRAM server: no credential store")
	}
	s := &Server{mech: m, store: store, serverNonce: randomNonce}
	if _, err := rand.Read(s.decoySecret[:]); err != nil {
		return nil, fmt.Errorf("SCRAM server: reading random: %w", err)
	}
	return s, nil
}

// Name is the mechanism's SASL name.
func (s *Server) Name() string { return s.mech.String() }

// NewSession starts one exchange.
func (s *Server) NewSession() sasl.Session { return &Session{srv: s} }

// Session is one SCRAM exchange.
type Session struct {
	srv   *Server
	state int // 0: want client-first, 1: want client-final, 2: done, 3: failed
	first *clientFirst
	cred  Credential
	known bool
	// serverFirst and nonce are what this server sent.
	serverFirst string
	nonce       string
	result      sasl.Result
}

// Username is the user the client claimed, "" before client-first. For
// logs: it says nothing about whether the user exists.
func (s *Session) Username() string {
	if s.first == nil {
		return ""
	}
	return s.first.username
}

// Result is the authenticated principal, "User:<name>", with no lifetime
// limit (SCRAM credentials do not expire).
func (s *Session) Result() sasl.Result { return s.result }

// Step advances the exchange.
func (s *Session) Step(_ context.Context, msg []byte) ([]byte, bool, error) {
	switch s.state {
	case 0:
		out, err := s.onClientFirst(string(msg))
		if err != nil {
			return nil, false, s.fail(err)
		}
		s.state = 1
		return out, false, nil
	case 1:
		out, err := s.onClientFinal(string(msg))
		if err != nil {
			return nil, false, s.fail(err)
		}
		s.state = 2
		return out, true, nil
	default:
		return nil, false, s.fail(malformed("message after the exchange ended"))
	}
}

func (s *Session) fail(err error) error {
	s.state = 3
	var f *failure
	if errors.As(err, &f) {
		f.mech = s.srv.mech
	}
	return err
}

func (s *Session) onClientFirst(msg string) ([]byte, error) {
	first, err := parseClientFirst(msg)
	if err != nil {
		return nil, err
	}
	s.first = first
	if first.tokenAuth() {
		return nil, unsupported("delegation tokens (tokenauth=true) are not supported")
	}
	s.cred, s.known = s.srv.store.ScramCredential(first.username, s.srv.mech)
	if s.known && s.cred.Validate() != nil {
		// A record that does not validate must not let anyone in; treat
		// it as absent, the log says why.
		s.known = false
	}
	if !s.known {
		s.cred = s.srv.decoy(first.username)
	}
	snonce, err := s.srv.serverNonce()
	if err != nil {
		return nil, err
	}
	s.nonce = first.nonce + snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil
}

func (s *Session) onClientFinal(msg string) ([]byte, error) {
	final, err := parseClientFinal(msg)
	if err != nil {
		return nil, err
	}
	if final.channelBinding != s.first.gs2Header {
		return nil, malformed("channel binding c= does not repeat the GS2 header")
	}
	// librdkafka (through at least 2.x) sends its own nonce again before
	// the combined one (c-nonce c-nonce s-nonce); Kafka accepts any
	// client-final nonce that ends with the combined one. This accepts the
	// RFC's form and librdkafka's, nothing else. Either way the proof
	// covers the fresh server nonce, through server-first in AuthMessage.
	if final.nonce != s.nonce && final.nonce != s.first.nonce+s.nonce {
		return nil, malformed("client-final nonce differs from the server's")
	}
	m := s.srv.mech
	authMessage := []byte(s.first.bare + "," + s.serverFirst + "," + final.withoutProof)
	clientSignature := hmacOf(m, s.cred.StoredKey, authMessage)
	// ClientKey = ClientProof XOR ClientSignature; the proof is right when
	// H(ClientKey) = StoredKey. A proof of the wrong length is compared
	// against a zero key, so the work and the timing stay the same.
	clientKey := make([]byte, len(clientSignature))
	if len(final.proof) == len(clientSignature) {
		subtle.XORBytes(clientKey, final.proof, clientSignature)
	}
	h := m.newHash()()
	h.Write(clientKey)
	ok := subtle.ConstantTimeCompare(h.Sum(nil), s.cred.StoredKey) == 1 && len(final.proof) == len(clientSignature)
	switch {
	case !s.known:
		return nil, &failure{kind: ErrUnknownUser, detail: fmt.Sprintf("user %q has no %s credential", s.first.username, m)}
	case !ok:
		return nil, &failure{kind: ErrBadProof, detail: fmt.Sprintf("user %q", s.first.username)}
	case s.first.authzid != "" && s.first.authzid != s.first.username:
		// Checked after the proof, so the wire answer for an authzid
		// refusal cannot tell a prober whether the user exists either.
		return nil, &failure{kind: ErrAuthzid, detail: fmt.Sprintf("user %q asked to act as %q", s.first.username, s.first.authzid)}
	}
	s.result = sasl.Result{Principal: "User:" + s.first.username}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(m, s.cred.ServerKey, authMessage))), nil
}

// randomNonce is 24 random bytes in base64 without padding: printable and
// free of ','.
func randomNonce() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("SCRAM: reading random nonce: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// decoy is the credential shown to a client naming an unknown user: a salt
// derived from the name and the server's secret (32 bytes, like the salts
// NewCredential makes), DefaultIterations, and keys no proof matches.
func (s *Server) decoy(user string) Credential {
	mac := hmac.New(sha256.New, s.decoySecret[:])
	mac.Write([]byte{byte(s.mech)})
	mac.Write([]byte(user))
	salt := mac.Sum(nil)
	// StoredKey = H(anything) is matched only by a preimage of a value
	// nobody knows: HMAC output under the secret with another label.
	mac.Reset()
	mac.Write([]byte("decoy-stored-key"))
	mac.Write([]byte(user))
	k := mac.Sum(nil)
	stored := make([]byte, s.mech.Size())
	copy(stored, k)
	return Credential{Mechanism: s.mech, Salt: salt, Iterations: DefaultIterations, StoredKey: stored, ServerKey: make([]byte, s.mech.Size())}
}
