package server

// SaslAuthenticate: v0-2
//
// Behaviour:
//   - Carries one SASL token of the exchange a SaslHandshake v1 started;
//     the response carries the mechanism's challenge. SCRAM-SHA-256/512
//     take two steps (client-first, client-final), OAUTHBEARER one, or two
//     when the token is refused (RFC 7628's error challenge, then the
//     failure).
//   - A failed authentication answers SASL_AUTHENTICATION_FAILED with the
//     mechanism's client message (for SCRAM the same for an unknown user
//     and a wrong password; for IAM tokens the reason: expired, another
//     cluster, refused by STS, STS unavailable) and closes the connection
//     after the response. Without a handshake first: ILLEGAL_SASL_STATE.
//   - On success the response carries the session lifetime (v1+): the
//     remaining validity of an IAM token, capped by
//     connections.max.reauth.ms (SCRAM sessions have none unless that is
//     set). A connection whose session ended and that has not
//     re-authenticated is closed at its next request (KIP-368);
//     re-authentication must keep the principal.
//
// Version notes:
//   - v1: session_lifetime_ms (KIP-368); v2: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var saslAuthenticateAPI = api{key: saslAuthenticateKey, min: 0, max: 2,
	handle: func(_ context.Context, _ *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return c.handleSaslAuthenticate(r.(*kmsg.SASLAuthenticateRequest)), nil
	}}
