// Package iamauth authenticates Kafka clients to a Tributary cluster with
// their AWS IAM identity. It holds both halves: clients make tokens,
// brokers verify them.
//
// # The token
//
// A token is an AWS SigV4 query-presigned `sts:GetCallerIdentity` request
// (GET, at most 900 seconds of validity) that also signs the header
// `x-tributary-cluster-id: <cluster id>`. The token string is the presigned
// URL encoded with base64url without padding, the encoding Amazon MSK's
// OAUTHBEARER signer uses, so it travels in a SASL/OAUTHBEARER
// `auth=Bearer <token>` message unchanged.
//
// Whoever holds a token can ask STS "who signed this?" and nothing else: it
// carries no secret key, only a signature over one read-only call. Because
// the cluster id is a signed header, STS refuses the request unless the
// verifier sends the same id, so a token made for one cluster cannot be
// replayed against another. The URL's fragment repeats the cluster id
// (`#cluster=<id>`) so that a broker of another cluster can say so without
// asking STS; the fragment is not signed and is never trusted for more than
// choosing which refusal to report.
//
// The STS endpoint comes from the AWS SDK's endpoint resolution for the
// configuration given (region, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS,
// shared config), so the same code works against AWS, LocalStack and the
// local cloud. Client and broker must resolve the same STS host: a token
// presigned for another host is refused before anything is sent.
//
// # Clients
//
// NewToken makes a token from an aws.Config. FranzGoMechanism is a franz-go
// SASL mechanism that makes a fresh token for every connection and every
// re-authentication; package saramaauth adapts sarama. librdkafka-based
// clients (kcat, confluent-kafka) and kafka-python run
// `tributary-broker iam-token --cluster-id ID [--region R] [--json]`.
//
// # Brokers
//
// A broker builds one Verifier at start (NewVerifier, with the cluster id
// and the broker's own AWS configuration) and, on the SASL_SSL listener
// with OAUTHBEARER, hands each client token to Verify. Verify checks the
// token's shape, expiry and cluster binding locally, then rebuilds the
// request against the verifier's own STS endpoint (never a host taken from
// the token), adds the header with the broker's own cluster id, sends it and
// reads the caller's ARN from STS's answer. The principal is that ARN
// normalised (NormalizeARN): an assumed-role session becomes its role. The
// session lifetime a broker reports in SaslAuthenticate (KIP-368) is
// Identity.SessionLifetime, the token's remaining validity, so clients
// re-authenticate with a fresh token before it runs out.
//
// Successful answers and definite refusals are cached by the token's
// SHA-256 for a short time (VerifierOptions.CacheTTL, bounded by
// CacheSize), and concurrent checks of one token share one STS call, so a
// reconnect storm with the same token costs one request. When STS cannot be
// reached, Verify fails with ErrSTSUnavailable; established sessions are
// not the Verifier's business and keep running until their lifetime ends.
//
// Errors are classified with errors.Is against ErrMalformed, ErrExpired,
// ErrWrongCluster, ErrWrongEndpoint, ErrSignatureRefused and
// ErrSTSUnavailable. No error message, and nothing this package logs, holds
// the token, its signature or its session token.
package iamauth
