package server

// SaslHandshake: v0-1
//
// Behaviour:
//   - Names the mechanism of the exchange that follows; the response lists
//     the listener's mechanisms (its sasl.enabled.mechanisms). A mechanism
//     the listener does not offer is UNSUPPORTED_SASL_MECHANISM, a
//     handshake on a listener without SASL, in the middle of an exchange,
//     or a re-authentication with another mechanism ILLEGAL_SASL_STATE;
//     both close the connection after the response, as Kafka does.
//   - v0: the SASL tokens that follow are raw size-prefixed frames, not
//     SaslAuthenticate requests (kafka-python 2.0 uses it). v1: they are
//     SaslAuthenticate requests.
//   - Served before authentication, with ApiVersions and SaslAuthenticate
//     only. Re-authentication (KIP-368) starts with a v1 handshake on an
//     authenticated connection, naming the same mechanism.
//
// Version notes:
//   - Advertised from v0, which librdkafka needs to enable SASL.
//   - v1: SaslAuthenticate carries the tokens (KIP-152).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var saslHandshakeAPI = api{key: saslHandshakeKey, min: 0, max: 1,
	handle: func(_ context.Context, _ *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return c.handleSaslHandshake(r.(*kmsg.SASLHandshakeRequest)), nil
	}}
