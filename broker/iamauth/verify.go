package iamauth

import (
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tributary/tributary/broker/internal/ttlcache"
)

// The ways a token is refused. Test with errors.Is; every error Verify
// returns wraps exactly one of them.
var (
	// ErrMalformed: the token is not a base64url presigned
	// GetCallerIdentity URL signed over host and the cluster header.
	ErrMalformed = errors.New("malformed IAM token")
	// ErrExpired: the token (or the credentials that signed it) expired,
	// or it is dated in the future beyond the allowed clock skew.
	ErrExpired = errors.New("expired IAM token")
	// ErrWrongCluster: the token was made for another cluster.
	ErrWrongCluster = errors.New("IAM token made for another cluster")
	// ErrWrongEndpoint: the token was presigned for another STS host than
	// the one this verifier asks (another region or endpoint override).
	ErrWrongEndpoint = errors.New("IAM token presigned for another STS endpoint")
	// ErrSignatureRefused: STS refused the signature or the access key
	// (SignatureDoesNotMatch, InvalidClientTokenId and the like).
	ErrSignatureRefused = errors.New("IAM token refused by STS")
	// ErrSTSUnavailable: STS could not be asked or did not answer
	// usefully (network error, timeout, throttling, 5xx). Nothing is known
	// about the token; the client may retry.
	ErrSTSUnavailable = errors.New("STS unavailable to verify the IAM token")
)

// tokenError is a refusal: its kind for errors.Is and a message that
// never quotes the token, so a broker may log it and send it to the
// client.
type tokenError struct {
	kind error
	msg  string
}

func refuse(kind error, format string, args ...any) error {
	return &tokenError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func (e *tokenError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *tokenError) Unwrap() error { return e.kind }

// ClientMessage is the message a broker sends a refused client (the
// broker/security/sasl convention): the whole error, which holds nothing
// secret and tells the client what to fix.
func (e *tokenError) ClientMessage() string { return e.Error() }

// Identity is who a verified token belongs to.
type Identity struct {
	// Principal is ARN normalised by NormalizeARN, e.g.
	// arn:aws:iam::123456789012:role/app.
	Principal string
	// ARN is the caller's ARN as STS returned it (for a role session,
	// arn:aws:sts::123456789012:assumed-role/app/session).
	ARN string
	// Account and UserID are STS's Account and UserId.
	Account, UserID string
	// Expiry is when the token stops being valid.
	Expiry time.Time
	// SessionLifetime is the token's remaining validity at verification:
	// the KIP-368 session lifetime a broker reports in SaslAuthenticate.
	// Always positive.
	SessionLifetime time.Duration
}

// KafkaPrincipal is the principal the broker authorizes, "User:<Principal>".
func (id Identity) KafkaPrincipal() string { return "User:" + id.Principal }

// VerifierOptions configures a Verifier. Only ClusterID is required.
type VerifierOptions struct {
	// ClusterID is this cluster's id; tokens must be bound to it.
	ClusterID string
	// Endpoint overrides the STS endpoint URL, which is otherwise
	// STSEndpoint of the aws.Config given to NewVerifier.
	Endpoint string
	// HTTPClient sends the requests to STS. The default has a 5-second
	// timeout. Redirects are never followed whatever the client says: the
	// request goes to the configured endpoint or nowhere.
	HTTPClient *http.Client
	// ClockSkew is how far a token's validity window is stretched on both
	// sides for clocks that disagree. Default 1 minute.
	ClockSkew time.Duration
	// CacheTTL is how long a verified identity or a refusal by STS is
	// reused for the same token (never beyond the token's expiry).
	// Default 30 seconds.
	CacheTTL time.Duration
	// CacheSize bounds the cache. Default 10000 tokens.
	CacheSize int
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Logger receives one line per STS failure, never the token. Default:
	// discard.
	Logger *slog.Logger
}

// Verifier checks IAM tokens for one cluster. It is safe for concurrent
// use; one per broker.
type Verifier struct {
	clusterID string
	endpoint  *url.URL
	client    *http.Client
	skew      time.Duration
	ttl       time.Duration
	now       func() time.Time
	log       *slog.Logger
	cache     *ttlcache.Cache[[sha256.Size]byte, verdict]
}

// verdict is what the cache keeps: an identity or a definite refusal.
type verdict struct {
	id  Identity
	err error
}

// maxResponse bounds what is read from STS.
const maxResponse = 64 << 10

// NewVerifier returns a Verifier for opts.ClusterID that asks the STS
// endpoint cfg resolves to (or opts.Endpoint). cfg's credentials are not
// used: a presigned request carries the caller's own signature.
func NewVerifier(ctx context.Context, cfg aws.Config, opts VerifierOptions) (*Verifier, error) {
	if err := ValidateClusterID(opts.ClusterID); err != nil {
		return nil, fmt.Errorf("IAM token verifier: %w", err)
	}
	var endpoint *url.URL
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("IAM token verifier: STS endpoint %q is not an http(s) URL with a host", opts.Endpoint)
		}
		endpoint = u
	} else {
		u, err := STSEndpoint(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("IAM token verifier: %w", err)
		}
		endpoint = u
	}
	if endpoint.Path == "" {
		endpoint.Path = "/"
	}
	v := &Verifier{
		clusterID: opts.ClusterID,
		endpoint:  endpoint,
		skew:      opts.ClockSkew,
		ttl:       opts.CacheTTL,
		now:       opts.Now,
		log:       opts.Logger,
	}
	if v.skew == 0 {
		v.skew = time.Minute
	}
	if v.ttl == 0 {
		v.ttl = 30 * time.Second
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	size := opts.CacheSize
	if size == 0 {
		size = 10000
	}
	v.cache = ttlcache.New[[sha256.Size]byte, verdict](size)
	base := opts.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 5 * time.Second}
	}
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	v.client = &c
	return v, nil
}

// Endpoint is the STS endpoint the verifier asks.
func (v *Verifier) Endpoint() string { return v.endpoint.String() }

// Verify checks token and returns its identity. See the package doc for
// what is checked; errors wrap one of the Err* values.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	p, err := parseToken(token)
	if err != nil {
		return Identity{}, err
	}
	if p.clusterHint != "" && p.clusterHint != v.clusterID {
		return Identity{}, refuse(ErrWrongCluster, "it names cluster %q, this is cluster %q", p.clusterHint, v.clusterID)
	}
	if !sameHost(p.scheme, p.host, v.endpoint.Scheme, v.endpoint.Host) || p.path != v.endpoint.Path {
		return Identity{}, refuse(ErrWrongEndpoint, "presigned for %s, this broker verifies with %s (make the token with the cluster's region and STS endpoint)", clip(p.host+p.path), v.endpoint.Host+v.endpoint.Path)
	}
	now := v.now()
	if err := v.checkTime(p, now); err != nil {
		return Identity{}, err
	}
	key := sha256.Sum256([]byte(token))
	res, err := v.cache.Do(ctx, key, v.now, func() (verdict, time.Time, error) {
		id, err := v.askSTS(ctx, p)
		switch {
		case err == nil:
			return verdict{id: id}, minTime(v.now().Add(v.ttl), p.expiry()), nil
		case errors.Is(err, ErrSTSUnavailable):
			return verdict{}, time.Time{}, err
		default: // a definite refusal: asking again gets the same answer
			return verdict{err: err}, minTime(v.now().Add(v.ttl), p.expiry()), nil
		}
	})
	if err != nil {
		return Identity{}, err
	}
	if res.err != nil {
		return Identity{}, res.err
	}
	id := res.id
	// The lifetime shrinks as the token ages, cached or not.
	id.SessionLifetime = max(id.Expiry.Sub(v.now()), time.Second)
	return id, nil
}

func (v *Verifier) checkTime(p *parsedToken, now time.Time) error {
	if p.date.After(now.Add(v.skew)) {
		return refuse(ErrExpired, "it is dated %s, in the future (check the client's clock)", p.date.Format(time.RFC3339))
	}
	if !now.Before(p.expiry().Add(v.skew)) {
		return refuse(ErrExpired, "it expired at %s", p.expiry().Format(time.RFC3339))
	}
	return nil
}

// askSTS sends the presigned request to the verifier's own endpoint with
// the verifier's own cluster id.
func (v *Verifier) askSTS(ctx context.Context, p *parsedToken) (Identity, error) {
	target := *v.endpoint
	target.RawQuery = p.rawQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return Identity{}, refuse(ErrMalformed, "the token's URL cannot be sent")
	}
	req.Header.Set(ClusterIDHeader, v.clusterID)
	resp, err := v.client.Do(req)
	if err != nil {
		// url.Error quotes the whole URL, signature and session token
		// included: report only the endpoint and the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		v.log.Warn("IAM token verification: STS unreachable", "endpoint", v.endpoint.Host, "err", err)
		return Identity{}, refuse(ErrSTSUnavailable, "asking %s: %v", v.endpoint.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Identity{}, refuse(ErrSTSUnavailable, "reading the answer of %s: %v", v.endpoint.Host, err)
	}
	if resp.StatusCode == http.StatusOK {
		return v.identity(p, body)
	}
	return Identity{}, v.refusal(resp.StatusCode, body)
}

type callerIdentityResponse struct {
	Result struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
}

func (v *Verifier) identity(p *parsedToken, body []byte) (Identity, error) {
	var r callerIdentityResponse
	if err := xml.Unmarshal(body, &r); err != nil || r.Result.Arn == "" || r.Result.Account == "" {
		v.log.Warn("IAM token verification: STS answered 200 without a caller identity", "endpoint", v.endpoint.Host)
		return Identity{}, refuse(ErrSTSUnavailable, "%s answered 200 without a GetCallerIdentity result", v.endpoint.Host)
	}
	principal, err := NormalizeARN(r.Result.Arn)
	if err != nil {
		return Identity{}, refuse(ErrSTSUnavailable, "STS returned an unusable ARN: %v", err)
	}
	return Identity{
		Principal: principal,
		ARN:       r.Result.Arn,
		Account:   r.Result.Account,
		UserID:    r.Result.UserID,
		Expiry:    p.expiry(),
	}, nil
}

type errorResponse struct {
	Error struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
}

// refusal classifies a non-200 answer. AWS query services answer
// <ErrorResponse><Error><Code>.
func (v *Verifier) refusal(status int, body []byte) error {
	var r errorResponse
	_ = xml.Unmarshal(body, &r)
	code, msg := r.Error.Code, clipMessage(r.Error.Message)
	switch {
	case status >= 500 || code == "Throttling" || code == "RequestLimitExceeded" || code == "ServiceUnavailable":
		v.log.Warn("IAM token verification: STS failed", "endpoint", v.endpoint.Host, "status", status, "code", code)
		return refuse(ErrSTSUnavailable, "%s answered %d %s", v.endpoint.Host, status, code)
	case code == "ExpiredToken" || code == "ExpiredTokenException":
		return refuse(ErrExpired, "STS says the credentials that signed it have expired")
	case code == "SignatureDoesNotMatch" && strings.Contains(strings.ToLower(msg), "expired"):
		return refuse(ErrExpired, "STS says: %s", msg)
	case code == "":
		return refuse(ErrSTSUnavailable, "%s answered %d without an AWS error", v.endpoint.Host, status)
	default:
		// SignatureDoesNotMatch (altered token, or bound to another
		// cluster), InvalidClientTokenId (unknown or revoked key),
		// IncompleteSignature, AccessDenied.
		return refuse(ErrSignatureRefused, "%s: %s", code, msg)
	}
}

// clipMessage keeps an STS error message short; STS messages do not quote
// the signature or the session token.
func clipMessage(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// sameHost compares hosts case-insensitively, with the scheme's default
// port made explicit.
func sameHost(scheme1, host1, scheme2, host2 string) bool {
	return canonicalHost(scheme1, host1) == canonicalHost(scheme2, host2)
}

func canonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "http" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "80")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "443")
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
