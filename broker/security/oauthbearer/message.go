package oauthbearer

import (
	"fmt"
	"sort"
	"strings"
)

// MaxMessageLen bounds an initial response: a 16 KiB token plus room for
// extensions.
const MaxMessageLen = 32 << 10

// InitialResponse is a parsed client initial response.
type InitialResponse struct {
	// GS2Flag is "n" or "y" (no channel binding either way).
	GS2Flag string
	// Authzid is the GS2 authorization id, unescaped; "" when absent.
	Authzid string
	// Scheme is the auth scheme as sent ("Bearer", any case).
	Scheme string
	// Token is the bearer token.
	Token string
	// Extensions are the key=value pairs other than auth (KIP-342).
	Extensions map[string]string
}

// ParseInitialResponse reads RFC 7628's client initial response:
//
//	gs2-header %x01 *(key "=" value %x01) %x01
//	gs2-header = ("n" / "y") "," ["a=" saslname] ","
//	key        = 1*ALPHA
//	value      = *(VCHAR / SP / HTAB / CR / LF)
//
// with exactly one key "auth" whose value is "Bearer" 1*SP b64token (RFC
// 6750). Keys may not repeat. Errors wrap ErrMalformed and do not quote the
// token.
func ParseInitialResponse(msg []byte) (*InitialResponse, error) {
	if len(msg) > MaxMessageLen {
		return nil, malformed("initial response of %d bytes, more than %d", len(msg), MaxMessageLen)
	}
	s := string(msg)
	flag, rest, ok := strings.Cut(s, ",")
	if !ok || (flag != "n" && flag != "y") {
		return nil, malformed("the GS2 header does not start with n, or y, (channel binding is not offered)")
	}
	authz, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, malformed("the GS2 header is not closed by ','")
	}
	ir := &InitialResponse{GS2Flag: flag}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return nil, malformed("the GS2 authzid does not start with a=")
		}
		name, err := decodeSaslname(authz[2:])
		if err != nil {
			return nil, err
		}
		ir.Authzid = name
	}
	if !strings.HasPrefix(rest, "\x01") || !strings.HasSuffix(rest, "\x01\x01") || len(rest) < 3 {
		return nil, malformed("the key=value pairs are not framed by \\x01 ... \\x01\\x01")
	}
	pairs := strings.Split(rest[1:len(rest)-2], "\x01")
	kv := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !isKey(k) {
			return nil, malformed("a pair is not key=value with an alphabetic key")
		}
		if !isValue(v) {
			return nil, malformed("the value of %s has characters outside VCHAR, SP, HTAB, CR, LF", k)
		}
		if _, dup := kv[k]; dup {
			return nil, malformed("key %s repeated", k)
		}
		kv[k] = v
	}
	auth, ok := kv["auth"]
	if !ok {
		return nil, malformed("no auth=Bearer <token> pair")
	}
	delete(kv, "auth")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil, malformed("the auth scheme is not Bearer")
	}
	token = strings.TrimLeft(token, " ")
	if !isB64Token(token) {
		return nil, malformed("the bearer token is not an RFC 6750 b64token")
	}
	ir.Scheme, ir.Token = scheme, token
	if len(kv) > 0 {
		ir.Extensions = kv
	}
	return ir, nil
}

// Encode is the initial response's wire form, with extensions sorted: a
// client's message, and the inverse of ParseInitialResponse.
func (ir *InitialResponse) Encode() []byte {
	var b strings.Builder
	b.WriteString(ir.GS2Flag + ",")
	if ir.Authzid != "" {
		b.WriteString("a=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(ir.Authzid))
	}
	b.WriteString(",\x01auth=" + ir.Scheme + " " + ir.Token + "\x01")
	keys := make([]string, 0, len(ir.Extensions))
	for k := range ir.Extensions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + ir.Extensions[k] + "\x01")
	}
	b.WriteString("\x01")
	return []byte(b.String())
}

func isKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func isValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 0x20 && c <= 0x7e || c == '\t' || c == '\r' || c == '\n') {
			return false
		}
	}
	return true
}

// isB64Token is RFC 6750's 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+"
// / "/" ) *"=".
func isB64Token(t string) bool {
	body := strings.TrimRight(t, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

func decodeSaslname(s string) (string, error) {
	if s == "" {
		return "", malformed("empty authzid")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=' && strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case c == '=' && strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		case c == '=' || c < 0x20 || c == 0x7f:
			return "", malformed("the authzid has a bad escape or a control character")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func malformed(format string, args ...any) error {
	return &failure{kind: ErrMalformed, detail: fmt.Sprintf(format, args...)}
}
