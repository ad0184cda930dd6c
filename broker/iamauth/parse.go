package iamauth

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxTokenLen bounds a token before it is decoded. A presigned URL with a
// long role session token is about 2 KiB; 16 KiB leaves room and keeps a
// hostile client from making the broker decode megabytes.
const MaxTokenLen = 16 << 10

const amzDateFormat = "20060102T150405Z"

// parsedToken is a token that has the shape of a presigned GetCallerIdentity
// request. Nothing in it is trusted until STS has answered.
type parsedToken struct {
	scheme, host, path string
	rawQuery           string
	accessKeyID        string
	date               time.Time
	expires            time.Duration
	// clusterHint is the unsigned fragment's cluster id, "" when absent.
	clusterHint string
}

// expiry is when the presigned request stops being valid.
func (p *parsedToken) expiry() time.Time { return p.date.Add(p.expires) }

// allowedParams are the query parameters of a presigned GetCallerIdentity.
// Anything else could change what STS is asked to do.
var allowedParams = map[string]bool{
	"Action": true, "Version": true,
	"X-Amz-Algorithm": true, "X-Amz-Credential": true, "X-Amz-Date": true, "X-Amz-Expires": true,
	"X-Amz-SignedHeaders": true, "X-Amz-Signature": true, "X-Amz-Security-Token": true,
}

var requiredParams = []string{"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
	"X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"}

// parseToken checks that value is a base64url presigned GetCallerIdentity
// URL signed over exactly host and the cluster header. Its errors wrap
// ErrMalformed and never quote the token or its query values.
func parseToken(value string) (*parsedToken, error) {
	if value == "" {
		return nil, malformed("the token is empty")
	}
	if len(value) > MaxTokenLen {
		return nil, malformed("the token is %d bytes, more than %d", len(value), MaxTokenLen)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil {
		return nil, malformed("the token is not base64url without padding")
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return nil, malformed("the token is not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, malformed("the token's URL is not http(s)")
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return nil, malformed("the token's URL has no plain host")
	}
	p := &parsedToken{scheme: u.Scheme, host: u.Host, path: u.Path, rawQuery: u.RawQuery}
	if u.Fragment != "" {
		k, v, ok := strings.Cut(u.Fragment, "=")
		if !ok || k != fragmentKey || ValidateClusterID(v) != nil {
			return nil, malformed("the token's URL fragment is not cluster=<id>")
		}
		p.clusterHint = v
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, malformed("the token's query string does not parse")
	}
	for k, vs := range q {
		if !allowedParams[k] {
			return nil, malformed("the token's URL has the unexpected parameter %q", clip(k))
		}
		if len(vs) != 1 {
			return nil, malformed("the token's URL repeats %s", k)
		}
	}
	for _, k := range requiredParams {
		if q.Get(k) == "" {
			return nil, malformed("the token's URL has no %s", k)
		}
	}
	if q.Get("Action") != stsAction || q.Get("Version") != stsVersion {
		return nil, malformed("the token is not a presigned sts:GetCallerIdentity (Version %s)", stsVersion)
	}
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return nil, malformed("the token is not signed with AWS4-HMAC-SHA256")
	}
	if got := q.Get("X-Amz-SignedHeaders"); got != signedHeaders {
		return nil, malformed("the token signs the headers %q, want %q", clip(got), signedHeaders)
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(scope) != 5 || scope[0] == "" || scope[3] != signingService || scope[4] != "aws4_request" {
		return nil, malformed("the token's credential scope is not <key>/<date>/<region>/sts/aws4_request")
	}
	p.accessKeyID = scope[0]
	p.date, err = time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
	if err != nil {
		return nil, malformed("the token's X-Amz-Date is not yyyymmddThhmmssZ")
	}
	if scope[1] != p.date.Format("20060102") {
		return nil, malformed("the token's credential scope date differs from X-Amz-Date")
	}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || secs < 1 || secs > int(MaxValidity/time.Second) {
		return nil, malformed("the token's X-Amz-Expires must be 1-%d seconds", int(MaxValidity/time.Second))
	}
	p.expires = time.Duration(secs) * time.Second
	if sig := q.Get("X-Amz-Signature"); len(sig) != 64 || strings.Trim(sig, "0123456789abcdef") != "" {
		return nil, malformed("the token's X-Amz-Signature is not 64 lower-case hex digits")
	}
	return p, nil
}

func malformed(format string, args ...any) error {
	return refuse(ErrMalformed, format, args...)
}

// clip shortens attacker-chosen text quoted in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
