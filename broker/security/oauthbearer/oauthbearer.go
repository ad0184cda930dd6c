// Package oauthbearer is the server side of SASL OAUTHBEARER (RFC 7628) as
// Kafka speaks it (KIP-255): the client's initial response carries a GS2
// header and \x01-separated key=value pairs, one of which is
// "auth=Bearer <token>".
//
// The mechanism does not know what a token is: a Validator does (for IAM
// identity tokens, an iamauth.Verifier). A server builds it as
//
//	verifier, _ := iamauth.NewVerifier(ctx, awsCfg, iamauth.VerifierOptions{ClusterID: id})
//	mech := oauthbearer.NewServer(func(ctx context.Context, tok string, _ map[string]string) (sasl.Result, error) {
//		identity, err := verifier.Verify(ctx, tok)
//		if err != nil {
//			return sasl.Result{}, err
//		}
//		return sasl.Result{Principal: identity.KafkaPrincipal(), SessionLifetime: identity.SessionLifetime}, nil
//	})
//
// and registers mech under "OAUTHBEARER" for the SASL_SSL listener on 9098.
//
// A refused token follows RFC 7628 section 3.2.2: the server answers with
// the error JSON {"status":"invalid_token"} as a challenge, the client
// replies with a single \x01, and the server then fails the authentication
// (Kafka: SASL_AUTHENTICATION_FAILED with the reason). Any reply ends it
// the same way: sarama sends the four characters `\x01` instead of the
// byte, and a retry with another token is not accepted in the same
// exchange.
package oauthbearer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tributary/tributary/broker/security/sasl"
)

// Validator checks a bearer token and the client's extensions and says who
// it belongs to. Its error is logged by the server and its ClientMessage,
// when it has one, sent to the client.
type Validator func(ctx context.Context, token string, extensions map[string]string) (sasl.Result, error)

// The kinds of failure.
var (
	// ErrMalformed: the client's message is not an OAUTHBEARER initial
	// response.
	ErrMalformed = errors.New("malformed OAUTHBEARER message")
	// ErrInvalidToken: the validator refused the token.
	ErrInvalidToken = errors.New("invalid OAUTHBEARER token")
	// ErrAuthzid: the GS2 authzid is not the token's principal.
	ErrAuthzid = errors.New("OAUTHBEARER authorization id differs from the token's principal")
)

// errorChallenge is RFC 7628's error status for a refused token. It says
// nothing about why: the reason goes into the final failure message.
const errorChallenge = `{"status":"invalid_token"}`

// Server is the OAUTHBEARER mechanism.
type Server struct{ validate Validator }

var _ sasl.Mechanism = (*Server)(nil)

// NewServer returns the mechanism checking tokens with validate.
func NewServer(validate Validator) *Server { return &Server{validate: validate} }

// Name is "OAUTHBEARER".
func (s *Server) Name() string { return sasl.OAuthBearer }

// NewSession starts one exchange.
func (s *Server) NewSession() sasl.Session { return &session{srv: s} }

type session struct {
	srv     *Server
	state   int // 0: want initial response, 1: sent the error, want \x01, 2: ended
	pending error
	result  sasl.Result
}

func (s *session) Result() sasl.Result { return s.result }

var _ sasl.Pending = (*session)(nil)

// PendingFailure is the refusal sent as an error challenge and not yet
// reported, nil otherwise.
func (s *session) PendingFailure() error {
	if s.state != 1 {
		return nil
	}
	return s.wrapPending()
}

func (s *session) wrapPending() error {
	var f *failure
	if errors.As(s.pending, &f) {
		return s.pending
	}
	return &failure{kind: ErrInvalidToken, detail: s.pending.Error(), cause: s.pending}
}

func (s *session) Step(ctx context.Context, msg []byte) ([]byte, bool, error) {
	switch s.state {
	case 0:
		s.state = 2
		ir, err := ParseInitialResponse(msg)
		if err != nil {
			return nil, false, err
		}
		res, err := s.srv.validate(ctx, ir.Token, ir.Extensions)
		if err == nil && ir.Authzid != "" && ir.Authzid != principalName(res.Principal) {
			err = &failure{kind: ErrAuthzid, detail: fmt.Sprintf("authzid %q, principal %q", ir.Authzid, res.Principal)}
		}
		if err != nil {
			s.state, s.pending = 1, err
			return []byte(errorChallenge), false, nil
		}
		s.result = res
		return nil, true, nil
	case 1:
		s.state = 2
		return nil, false, s.wrapPending()
	default:
		return nil, false, &failure{kind: ErrMalformed, detail: "message after the exchange ended"}
	}
}

// principalName is the name part of "Type:name".
func principalName(p string) string {
	if _, name, ok := strings.Cut(p, ":"); ok {
		return name
	}
	return p
}

type failure struct {
	kind   error
	detail string
	cause  error
}

func (f *failure) Error() string { return f.kind.Error() + ": " + f.detail }

// Unwrap exposes both the kind and the validator's own error, so a server
// can test for, say, iamauth.ErrExpired.
func (f *failure) Unwrap() []error {
	if f.cause != nil {
		return []error{f.kind, f.cause}
	}
	return []error{f.kind}
}

// ClientMessage says why, as Kafka's OAUTHBEARER failures do: the
// validator's own client message when it has one, else the error status.
func (f *failure) ClientMessage() string {
	if f.cause != nil {
		var ce sasl.ClientError
		if errors.As(f.cause, &ce) {
			return ce.ClientMessage()
		}
		return errorChallenge
	}
	return f.Error()
}
