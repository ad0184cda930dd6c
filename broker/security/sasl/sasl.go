// Package sasl is what the broker's SASL mechanisms have in common: one
// server-side exchange (Session) per authentication, driven by the
// connection that receives SaslAuthenticate requests (or raw SASL frames
// after a SaslHandshake v0).
//
// A server keeps the enabled mechanisms by name (sasl.enabled.mechanisms:
// scram.NewServer for SCRAM-SHA-256 and SCRAM-SHA-512, oauthbearer.NewServer
// for OAUTHBEARER). On SaslHandshake it looks the client's mechanism up
// (UNSUPPORTED_SASL_MECHANISM with the enabled list when absent) and starts
// a Session; each SaslAuthenticate's auth_bytes go to Step, whose challenge
// goes back as the response's auth_bytes. When Step reports done, the
// connection is authenticated as Result().Principal for
// Result().SessionLifetime (KIP-368; 0 means no limit). When Step fails,
// the server answers SASL_AUTHENTICATION_FAILED (58) with ClientMessage(err)
// as the error message, logs err (which says why, never a secret), and
// closes the connection after the response. A client that disconnects in
// the middle of an exchange may leave a decided failure behind (Pending).
package sasl

import (
	"context"
	"errors"
	"time"
)

// Mechanism names as Kafka's sasl.enabled.mechanisms spells them.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Mechanism is the server side of one SASL mechanism.
type Mechanism interface {
	// Name is the mechanism's name in SaslHandshake.
	Name() string
	// NewSession starts one authentication.
	NewSession() Session
}

// Session is one server-side authentication exchange. It is used by one
// connection at a time.
type Session interface {
	// Step consumes the client's next message and returns the bytes to
	// answer with. done reports a successful authentication (challenge may
	// then still hold a last message for the client, such as SCRAM's
	// server-final). A non-nil error means the authentication failed;
	// Step must not be called again.
	Step(ctx context.Context, msg []byte) (challenge []byte, done bool, err error)
	// Result is the authenticated principal, valid once Step reported done.
	Result() Result
}

// Result is who authenticated and for how long.
type Result struct {
	// Principal is the Kafka principal, "User:<name>".
	Principal string
	// SessionLifetime bounds the session (KIP-368): the connection must
	// re-authenticate within it or be closed. 0 means no limit.
	SessionLifetime time.Duration
}

// Pending is implemented by sessions that can have decided a failure
// before the client finished the exchange: OAUTHBEARER answers a refused
// token with an error challenge and fails only at the client's next
// message, which some clients (kafka-python after SaslHandshake v0) never
// send. When a client goes away mid-exchange, a server logs PendingFailure
// so the refusal is not lost.
type Pending interface {
	// PendingFailure is the failure already decided, or nil.
	PendingFailure() error
}

// ClientError is an error whose message may be sent to the client.
// Mechanisms wrap their failures in one so that the wire says no more than
// it should (for SCRAM, never whether the user exists).
type ClientError interface {
	error
	ClientMessage() string
}

// GenericFailure is the wire message for a failure that says nothing more.
const GenericFailure = "Authentication failed"

// ClientMessage is the error message a server puts in its
// SASL_AUTHENTICATION_FAILED response for err.
func ClientMessage(err error) string {
	var ce ClientError
	if errors.As(err, &ce) {
		return ce.ClientMessage()
	}
	return GenericFailure
}
