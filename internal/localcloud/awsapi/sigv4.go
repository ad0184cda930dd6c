package awsapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
	unsignedBody   = "UNSIGNED-PAYLOAD"
)

// signature is what a request's SigV4 Authorization header (or presigned query) says.
type signature struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
	AmzDate       time.Time
	Expires       time.Duration // presigned only
	Presigned     bool
	SecurityToken string
}

// parseSignature reads the SigV4 parts of r. It returns (nil, nil) when the request carries no
// signature at all.
func parseSignature(r *http.Request) (*signature, *incomplete) {
	q := r.URL.Query()
	if auth := r.Header.Get("Authorization"); auth != "" {
		return parseAuthorizationHeader(r, auth)
	}
	if q.Get("X-Amz-Algorithm") != "" || q.Get("X-Amz-Signature") != "" {
		return parsePresigned(q)
	}
	return nil, nil
}

// incomplete explains why a signature could not be parsed (AWS's IncompleteSignature).
type incomplete struct{ msg string }

func parseAuthorizationHeader(r *http.Request, auth string) (*signature, *incomplete) {
	alg, rest, ok := strings.Cut(auth, " ")
	if !ok || alg != sigV4Algorithm {
		return nil, &incomplete{fmt.Sprintf("Unsupported AWS 'algorithm': '%s'.", alg)}
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return nil, &incomplete{fmt.Sprintf("'%s' not a valid key=value pair (missing equal-sign) in Authorization header: '%s'.", strings.TrimSpace(p), auth)}
		}
		parts[k] = v
	}
	var missing []string
	for _, k := range []string{"Credential", "Signature", "SignedHeaders"} {
		if parts[k] == "" {
			missing = append(missing, k)
		}
	}
	dateHeader := r.Header.Get("X-Amz-Date")
	if dateHeader == "" {
		dateHeader = r.Header.Get("Date")
	}
	if dateHeader == "" {
		missing = append(missing, "X-Amz-Date")
	}
	if len(missing) > 0 {
		var b strings.Builder
		for _, m := range missing {
			if m == "X-Amz-Date" {
				b.WriteString("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ")
			} else {
				fmt.Fprintf(&b, "Authorization header requires '%s' parameter. ", m)
			}
		}
		b.WriteString("Authorization=" + auth)
		return nil, &incomplete{b.String()}
	}
	sig := &signature{Signature: parts["Signature"], SignedHeaders: strings.Split(parts["SignedHeaders"], ";"), SecurityToken: r.Header.Get("X-Amz-Security-Token")}
	if err := sig.setCredential(parts["Credential"]); err != nil {
		return nil, err
	}
	t, err := parseAmzDate(dateHeader)
	if err != nil {
		return nil, &incomplete{fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", dateHeader)}
	}
	sig.AmzDate = t
	return sig, nil
}

func parsePresigned(q url.Values) (*signature, *incomplete) {
	var missing []string
	for _, k := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date"} {
		if q.Get(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, &incomplete{"AWS query-string parameters must include " + strings.Join(missing, ", ") + ". Re-examine the query-string parameters."}
	}
	if q.Get("X-Amz-Algorithm") != sigV4Algorithm {
		return nil, &incomplete{fmt.Sprintf("Unsupported AWS 'algorithm': '%s'.", q.Get("X-Amz-Algorithm"))}
	}
	sig := &signature{
		Presigned:     true,
		Signature:     q.Get("X-Amz-Signature"),
		SignedHeaders: strings.Split(q.Get("X-Amz-SignedHeaders"), ";"),
		SecurityToken: q.Get("X-Amz-Security-Token"),
	}
	if err := sig.setCredential(q.Get("X-Amz-Credential")); err != nil {
		return nil, err
	}
	t, err := parseAmzDate(q.Get("X-Amz-Date"))
	if err != nil {
		return nil, &incomplete{fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'.", q.Get("X-Amz-Date"))}
	}
	sig.AmzDate = t
	if e := q.Get("X-Amz-Expires"); e != "" {
		secs, err := strconv.Atoi(e)
		if err != nil || secs < 0 || secs > 7*24*3600 {
			return nil, &incomplete{fmt.Sprintf("X-Amz-Expires must be between 0 and 604800 seconds, got '%s'.", e)}
		}
		sig.Expires = time.Duration(secs) * time.Second
	} else {
		sig.Expires = 15 * time.Minute
	}
	return sig, nil
}

func (s *signature) setCredential(cred string) *incomplete {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" {
		return &incomplete{fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. Credential should be scoped to correct service. Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", cred, cred)}
	}
	s.AccessKeyID, s.Date, s.Region, s.Service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

func parseAmzDate(v string) (time.Time, error) {
	if t, err := time.Parse(amzDateFormat, v); err == nil {
		return t, nil
	}
	return time.Parse(http.TimeFormat, v)
}

// verify checks sig against the request and secret. body is the full request payload.
func (s *signature) verify(r *http.Request, body []byte, secret string) bool {
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	hashes := []string{bodyHash}
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && !s.Presigned {
		if h != unsignedBody && h != bodyHash {
			return false // the body was changed after signing
		}
		hashes = []string{h}
	} else if s.Presigned {
		// S3-style presigners sign UNSIGNED-PAYLOAD; accept either.
		hashes = append(hashes, unsignedBody)
	}
	key := signingKey(secret, s.Date, s.Region, s.Service)
	for _, h := range hashes {
		canonical := s.canonicalRequest(r, h)
		sum := sha256.Sum256([]byte(canonical))
		toSign := sigV4Algorithm + "\n" + s.AmzDate.UTC().Format(amzDateFormat) + "\n" +
			s.Date + "/" + s.Region + "/" + s.Service + "/aws4_request\n" + hex.EncodeToString(sum[:])
		want := hex.EncodeToString(hmacSHA256(key, toSign))
		if hmac.Equal([]byte(want), []byte(strings.ToLower(s.Signature))) {
			return true
		}
	}
	return false
}

func (s *signature) canonicalRequest(r *http.Request, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	if s.Service == "s3" {
		b.WriteString(s3CanonicalURI(r.URL))
	} else {
		b.WriteString(canonicalURI(r.URL))
	}
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, s.Presigned))
	b.WriteByte('\n')
	for _, h := range s.SignedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(s.SignedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalURI escapes the already-escaped path once more, as every AWS service but S3 expects.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return awsEscape(p, true)
}

// s3CanonicalURI escapes the decoded path once: S3 is the service whose signers do not
// double-encode (the SDK's DisableURIPathEscaping, botocore's S3SigV4Auth).
func s3CanonicalURI(u *url.URL) string {
	if u.Path == "" {
		return "/"
	}
	return awsEscape(u.Path, true)
}

func canonicalQuery(raw string, presigned bool) string {
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			dv = v
		}
		if presigned && dk == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, kv{awsEscape(dk, false), awsEscape(dv, false)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

func canonicalHeaderValue(r *http.Request, name string) string {
	var values []string
	switch name {
	case "host":
		values = []string{r.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			values = v
		} else {
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		values = append([]string(nil), r.Header.Values(name)...) // a copy: trimmed below
	}
	for i, v := range values {
		values[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(values, ",")
}

// awsEscape percent-encodes every byte but the unreserved characters (and '/' in paths).
func awsEscape(s string, path bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || (path && c == '/') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xf])
	}
	return b.String()
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
