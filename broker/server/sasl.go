package server

// SASL on SASL_SSL listeners: the mechanisms each listener offers, the
// authentication phase of a connection (ApiVersions, SaslHandshake and
// SaslAuthenticate only, one request at a time, raw SASL frames after a v0
// handshake), and KIP-368 re-authentication on an authenticated
// connection.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/internal/reqmem"
	"github.com/tributary/tributary/broker/security/authstats"
	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/broker/security/oauthbearer"
	"github.com/tributary/tributary/broker/security/sasl"
	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/internal/awsbody"
)

const (
	// saslAuthTimeout bounds a connection's authentication, from its
	// first byte to SaslAuthenticate's success.
	saslAuthTimeout = 30 * time.Second
	// saslMaxFrame bounds a frame before authentication (Kafka's
	// sasl.server.max.receive.size): an unauthenticated client cannot
	// make the broker read socket.request.max.bytes.
	saslMaxFrame = 512 << 10
	// saslStepTimeout bounds one step of an exchange (an STS round trip
	// for IAM tokens).
	saslStepTimeout = 15 * time.Second
)

// IAMTokenExtension is the OAUTHBEARER extension that carries an IAM
// identity token when the bearer token itself is an unsecured JWT: what
// librdkafka clients without a token callback (kcat) can send, with
// sasl.oauthbearer.config="principal=<any> extension_tributaryIamToken=<token>".
// The JWT then carries no authority at all; the extension's token is
// verified as any IAM token.
const IAMTokenExtension = "tributaryIamToken"

// startSASL builds the mechanisms of every SASL_SSL listener, once the
// broker is part of its cluster: SCRAM credentials are read from the
// metadata, and IAM tokens are bound to the cluster id.
func (s *Server) startSASL(ctx context.Context, awsCfg *aws.Config) error {
	var (
		scrams = map[string]*scram.Server{}
		iam    *oauthbearer.Server
	)
	for _, l := range s.listeners {
		if !l.cfg.SASL() {
			continue
		}
		for _, name := range s.static.SASLMechanisms(l.name()) {
			switch name {
			case sasl.ScramSHA256, sasl.ScramSHA512:
				m, _ := scram.ParseMechanism(name)
				if scrams[name] == nil {
					srv, err := scram.NewServer(m, scramStore{s})
					if err != nil {
						return err
					}
					scrams[name] = srv
				}
				l.mechs = append(l.mechs, scrams[name])
			case sasl.OAuthBearer:
				if iam == nil {
					v, err := s.iamVerifier(ctx, awsCfg)
					if err != nil {
						return fmt.Errorf("listener %s: OAUTHBEARER: %w", l.name(), err)
					}
					iam = oauthbearer.NewServer(iamValidator(v))
				}
				l.mechs = append(l.mechs, iam)
			default:
				// The settings table refuses other names; this is a bug.
				return fmt.Errorf("listener %s: mechanism %s is not served", l.name(), name)
			}
		}
	}
	return nil
}

// iamVerifier checks IAM identity tokens against the STS endpoint of the
// broker's own AWS configuration (awsCfg, else the SDK's default chain:
// AWS_REGION or the instance's region from IMDS, AWS_ENDPOINT_URL_STS or
// AWS_ENDPOINT_URL), for this cluster's id. The broker's credentials are
// not used: a token is a request its client signed.
func (s *Server) iamVerifier(ctx context.Context, awsCfg *aws.Config) (*iamauth.Verifier, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if awsCfg == nil {
		c, err := awsbody.LoadDefaultConfig(lctx, awsconfig.WithEC2IMDSRegion())
		if err != nil {
			return nil, fmt.Errorf("loading the AWS configuration: %w", err)
		}
		awsCfg = &c
	}
	v, err := iamauth.NewVerifier(lctx, *awsCfg, iamauth.VerifierOptions{ClusterID: s.ClusterID(), Logger: s.log.With("component", "iam")})
	if err != nil {
		return nil, err
	}
	s.log.Info("IAM identity tokens are checked with STS", "endpoint", v.Endpoint(), "cluster_id", s.ClusterID())
	return v, nil
}

// iamValidator is the OAUTHBEARER validator of IAM identity tokens: the
// bearer token, or the IAMTokenExtension when the bearer is an unsecured
// JWT.
func iamValidator(v *iamauth.Verifier) oauthbearer.Validator {
	return func(ctx context.Context, token string, ext map[string]string) (sasl.Result, error) {
		if t, ok := ext[IAMTokenExtension]; ok {
			if !unsecuredJWT(token) {
				return sasl.Result{}, refusal("the " + IAMTokenExtension + " extension is accepted with an unsecured JWT bearer token only (librdkafka's sasl.oauthbearer.config); send the IAM token as the bearer token")
			}
			token = t
		}
		id, err := v.Verify(ctx, token)
		if err != nil {
			return sasl.Result{}, err
		}
		return sasl.Result{Principal: id.KafkaPrincipal(), SessionLifetime: id.SessionLifetime}, nil
	}
}

// unsecuredJWT reports a JWT with alg "none" and no signature (RFC 7519
// section 6), what librdkafka's enable.sasl.oauthbearer.unsecure.jwt makes.
func unsecuredJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] != "" {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(raw, &h) == nil && h.Alg == "none"
}

// clientRefusal is a refusal whose text is meant for the client
// (sasl.ClientError).
type clientRefusal string

func refusal(msg string) error                { return clientRefusal(msg) }
func (r clientRefusal) Error() string         { return string(r) }
func (r clientRefusal) ClientMessage() string { return string(r) }

// scramStore reads SCRAM credentials from this broker's copy of the
// metadata: a change reaches every broker with the metadata log, within a
// Raft round trip.
type scramStore struct{ s *Server }

func (st scramStore) ScramCredential(user string, m scram.Mechanism) (scram.Credential, bool) {
	rec, ok := st.s.node.Controller.State().ScramCredential(user, m.String())
	if !ok {
		return scram.Credential{}, false
	}
	var c scram.Credential
	if err := c.UnmarshalBinary(rec); err != nil {
		st.s.log.Error("unreadable SCRAM credential in the metadata", "user", user, "mechanism", m.String(), "err", err)
		return scram.Credential{}, false
	}
	return c, true
}

// beforeAuthentication reports the API keys a SASL client may send before
// it has authenticated.
func beforeAuthentication(key int16) bool {
	a, ok := authz.ForAPI(key)
	return ok && a.BeforeAuthentication
}

// authenticate runs a SASL_SSL connection's authentication phase: one
// request (or raw SASL frame) at a time, each answered before the next is
// read, because after SaslHandshake v0 the next frames are not requests.
// It reports false when the connection must be closed.
func (c *conn) authenticate(br *bufio.Reader) bool {
	deadline := time.Now().Add(saslAuthTimeout)
	defer func() {
		// A client that left in the middle may leave a decided
		// refusal behind (OAUTHBEARER's error challenge).
		if c.authenticated || c.session == nil {
			return
		}
		if p, ok := c.session.(sasl.Pending); ok {
			if err := p.PendingFailure(); err != nil {
				c.refused(saslAuthenticateKey, err)
			}
		}
	}()
	for !c.authenticated {
		_ = c.nc.SetReadDeadline(deadline)
		if c.stopping.Load() { // see the comment in readLoop
			return false
		}
		mem, err := c.readFrame(br, saslMaxFrame)
		if err != nil {
			switch {
			case c.stopping.Load():
			case errors.Is(err, os.ErrDeadlineExceeded):
				c.log.Info("closing connection: no authentication within the time allowed", "timeout", saslAuthTimeout)
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
				c.log.Debug("connection closed by client before authenticating")
			default:
				c.log.Info("closing connection before authentication", "err", err)
			}
			return false
		}
		// The frame is held only while this loop handles it; its
		// charge to the request memory goes back before the next read.
		frame := mem.B
		if c.saslRaw {
			ok := c.rawSASLStep(frame)
			mem.Uncharge()
			if !ok {
				return false
			}
			continue
		}
		req, err := decodeRequest(frame)
		if err != nil {
			mem.Uncharge()
			c.log.Warn("closing connection", "reason", err)
			return false
		}
		req.size = len(frame)
		resp, err := c.s.dispatch(c.ctx, c, req)
		mem.Uncharge()
		if err != nil {
			c.log.Warn("closing connection", "api", kmsg.NameForKey(req.key), "version", req.version, "reason", err)
			return false
		}
		if resp != nil && !c.writeNow(encodeResponse(nil, req.corr, resp)) {
			return false
		}
		if c.closeAfterResponse {
			return false
		}
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return true
}

// readFrame reads one size-prefixed frame of at most limit bytes, charged
// to the request memory (reqmem.ReadFrame) until the caller uncharges it.
func (c *conn) readFrame(br *bufio.Reader, limit int32) (reqmem.Frame, error) {
	return readFrame(br, limit, c.reqMem, c.readsEnded)
}

func readFrame(br *bufio.Reader, limit int32, t *reqmem.Tracker, done <-chan struct{}) (reqmem.Frame, error) {
	var size [4]byte
	if _, err := io.ReadFull(br, size[:]); err != nil {
		return reqmem.Frame{}, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > limit {
		return reqmem.Frame{}, fmt.Errorf("frame of %d bytes before authentication (at most %d)%s", uint32(n), limit, hintSuffix(size))
	}
	// The frame grows with the bytes that arrive, not to the size its
	// header announces: otherwise four bytes from anyone who can connect
	// pin saslMaxFrame of memory until the authentication deadline, and
	// max.connections such connections pin max.connections times that.
	// Its charge to the request memory is the size announced (what it
	// may grow to), which bounds all such connections together.
	f, err := reqmem.ReadFrame(br, int(n), t, reqmem.Options{First: preAuthFirstRead, Done: done})
	if err == io.EOF && n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return f, err
}

// preAuthFirstRead is the memory a frame before authentication is first
// read into (SASL tokens are far smaller).
const preAuthFirstRead = 16 << 10

func hintSuffix(size [4]byte) string {
	if h := frameHint(size); h != "" {
		return ": " + h
	}
	return ""
}

// writeNow writes a response during the authentication phase, when no
// writer goroutine runs.
func (c *conn) writeNow(b []byte) bool {
	_ = c.nc.SetWriteDeadline(time.Now().Add(saslAuthTimeout))
	n, err := c.rw.Write(b)
	c.s.metrics.RecordTrafficOut(int64(n))
	if err != nil {
		c.log.Info("closing connection: writing response failed", "err", err)
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	return true
}

// rawSASLStep handles one raw SASL token after SaslHandshake v0: the
// challenge goes back size-prefixed (also when empty); a failure closes the
// connection, as Kafka does, the framing having no room for an error.
func (c *conn) rawSASLStep(token []byte) bool {
	ctx, cancel := context.WithTimeout(c.ctx, saslStepTimeout)
	challenge, done, err := c.session.Step(ctx, token)
	cancel()
	if err != nil {
		c.refused(saslHandshakeKey, err)
		c.session = nil
		return false
	}
	if !c.writeNow(binary.BigEndian.AppendUint32(nil, uint32(len(challenge)))) || !c.writeNow(challenge) {
		return false
	}
	if done {
		c.saslRaw = false
		if err := c.completeAuth(saslHandshakeKey, c.session.Result()); err != nil {
			c.session = nil
			return false
		}
	}
	return true
}

// completeAuth records a successful exchange: the connection's principal
// and session lifetime. A re-authentication must keep the principal, and
// an IAM principal needs kafka-cluster:Connect when IAM policies authorize
// (authorizeConnect). An error, audited already, is the refusal to send
// the client.
func (c *conn) completeAuth(key int16, res sasl.Result) error {
	if c.authenticated && res.Principal != c.principal {
		err := fmt.Errorf("re-authentication as %s on a connection of %s: %w", res.Principal, c.principal, errPrincipalChanged)
		c.refused(key, err)
		return refusal("re-authentication must keep the connection's principal")
	}
	rc := c.requestContext()
	rc.Principal, rc.IAM = res.Principal, c.mechanism == sasl.OAuthBearer
	if err := c.s.authorizeConnect(c.ctx, c, rc); err != nil {
		c.listener.auth.Failure(c.mechanism, authstats.NotAuthorized) // audited by authorizeConnect
		return refusal(err.Error())
	}
	c.listener.auth.Success(c.mechanism)
	lifetime := res.SessionLifetime
	if max := c.s.Config().ConnectionsMaxReauth; max > 0 && (lifetime == 0 || lifetime > max) {
		lifetime = max
	}
	c.sessionEnd = time.Time{}
	if lifetime > 0 {
		c.sessionEnd = time.Now().Add(lifetime)
	}
	c.sessionLifetime = lifetime
	c.principal, c.iam = res.Principal, c.mechanism == sasl.OAuthBearer
	c.session = nil
	reauth := c.authenticated
	c.authenticated = true
	c.log.Debug("client authenticated", "principal", c.principal, "by", c.mechanism, "session_lifetime", lifetime, "reauthentication", reauth)
	return nil
}

// refused logs and audits a failed authentication. The error says why
// (never a secret: the mechanisms' errors hold no password, proof or
// token); the client got sasl.ClientMessage(err).
func (c *conn) refused(key int16, err error) {
	c.s.audit.Refused(c.ctx, c.auditRequest(key), "SASL "+c.mechanism, err.Error())
	c.listener.auth.Failure(c.mechanism, saslFailure(err))
}

// errPrincipalChanged marks a re-authentication as another principal.
var errPrincipalChanged = errors.New("the principal changed")

// saslFailure is the reason a SASL exchange failed, for
// tributary_authentication_failures_total.
func saslFailure(err error) authstats.Reason {
	for _, r := range []struct {
		kind   error
		reason authstats.Reason
	}{
		{scram.ErrUnknownUser, authstats.UnknownUser},
		{scram.ErrBadProof, authstats.BadPassword},
		{iamauth.ErrExpired, authstats.TokenExpired},
		{iamauth.ErrWrongCluster, authstats.TokenWrongCluster},
		{iamauth.ErrWrongEndpoint, authstats.TokenWrongEndpoint},
		{iamauth.ErrSignatureRefused, authstats.TokenRefused},
		{iamauth.ErrSTSUnavailable, authstats.STSUnavailable},
		{iamauth.ErrMalformed, authstats.Malformed},
		{scram.ErrMalformed, authstats.Malformed},
		{oauthbearer.ErrMalformed, authstats.Malformed},
		{errPrincipalChanged, authstats.PrincipalChanged},
	} {
		if errors.Is(err, r.kind) {
			return r.reason
		}
	}
	return authstats.Other
}

// sessionExpired reports a KIP-368 session that ended without a
// re-authentication; req is the request that arrived after it. A
// re-authentication in progress may go on.
func (c *conn) sessionExpired(req *request) bool {
	if c.sessionEnd.IsZero() || time.Now().Before(c.sessionEnd) {
		return false
	}
	return req.key != saslHandshakeKey && req.key != saslAuthenticateKey
}

// saslHandshakeKey is SaslHandshake's API key (SaslAuthenticate's is
// saslAuthenticateKey).
const saslHandshakeKey = 17

// handleSaslHandshake starts an exchange with the named mechanism. A
// refusal closes the connection after the response, as Kafka does.
func (c *conn) handleSaslHandshake(req *kmsg.SASLHandshakeRequest) *kmsg.SASLHandshakeResponse {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.listener.mechanismNames()
	fail := func(code int16, why string) *kmsg.SASLHandshakeResponse {
		resp.ErrorCode = code
		c.closeAfterResponse = true
		c.log.Info("closing connection: SaslHandshake refused", "mechanism", req.Mechanism, "reason", why)
		return resp
	}
	switch {
	case !c.listener.cfg.SASL():
		return fail(kerr.IllegalSaslState.Code, "not a SASL listener")
	case c.session != nil:
		return fail(kerr.IllegalSaslState.Code, "an exchange is already in progress")
	case c.authenticated && req.Version == 0:
		// KIP-368: re-authentication goes through SaslAuthenticate.
		return fail(kerr.IllegalSaslState.Code, "re-authentication with SaslHandshake v0")
	case c.authenticated && req.Mechanism != c.mechanism:
		return fail(kerr.IllegalSaslState.Code, "re-authentication with another mechanism than "+c.mechanism)
	}
	m, ok := c.listener.mechanism(req.Mechanism)
	if !ok {
		// Counted under "unsupported", not the name the client sent:
		// label values stay the listener's own.
		c.listener.auth.Failure(authstats.Unsupported, authstats.UnsupportedMechanism)
		return fail(kerr.UnsupportedSaslMechanism.Code, "not enabled on this listener")
	}
	c.session, c.mechanism, c.saslRaw = m.NewSession(), req.Mechanism, req.Version == 0
	return resp
}

// handleSaslAuthenticate runs one step of the exchange. A failure answers
// SASL_AUTHENTICATION_FAILED with a message that says no more than the
// mechanism allows (never whether a SCRAM user exists) and closes the
// connection after the response.
func (c *conn) handleSaslAuthenticate(req *kmsg.SASLAuthenticateRequest) *kmsg.SASLAuthenticateResponse {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if c.session == nil || c.saslRaw {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake v1 before it"
		resp.ErrorMessage = &msg
		c.closeAfterResponse = true
		return resp
	}
	ctx, cancel := context.WithTimeout(c.ctx, saslStepTimeout)
	challenge, done, err := c.session.Step(ctx, req.SASLAuthBytes)
	cancel()
	switch {
	case err != nil:
		c.refused(saslAuthenticateKey, err)
	case done:
		err = c.completeAuth(saslAuthenticateKey, c.session.Result())
	}
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := sasl.ClientMessage(err)
		resp.ErrorMessage = &msg
		c.session = nil
		c.closeAfterResponse = true
		return resp
	}
	resp.SASLAuthBytes = challenge
	if done {
		resp.SessionLifetimeMillis = c.sessionLifetime.Milliseconds()
	}
	return resp
}
