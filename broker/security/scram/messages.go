package scram

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// maxMessageLen bounds a client message. Real ones are under 300 bytes.
const maxMessageLen = 4096

// clientFirst is a parsed client-first-message (RFC 5802 section 7).
type clientFirst struct {
	gs2Header string // "n,," / "y,," / "n,a=<authzid>,", as sent
	authzid   string // unescaped, "" when absent
	username  string // unescaped
	nonce     string
	bare      string // client-first-message-bare, for AuthMessage
	// extensions after the nonce, in order (Kafka: tokenauth=true).
	extensions map[string]string
}

// tokenAuth reports Kafka's delegation-token extension (KIP-48).
func (c *clientFirst) tokenAuth() bool { return c.extensions["tokenauth"] == "true" }

// parseClientFirst reads
//
//	gs2-cbind-flag "," [ "a=" saslname ] "," [reserved-mext ","] "n=" saslname "," "r=" c-nonce ["," extensions]
//
// Only "n" and "y" binding flags are accepted: the broker offers no
// channel binding, so "p=" is refused, and a mandatory extension (m=) is
// refused as RFC 5802 requires of a server that does not know it.
func parseClientFirst(msg string) (*clientFirst, error) {
	if len(msg) > maxMessageLen {
		return nil, malformed("client-first message of %d bytes", len(msg))
	}
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, malformed("client-first message without a GS2 header")
	}
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p="):
		return nil, unsupported("channel binding (%s) is not offered", clip(flag))
	default:
		return nil, malformed("GS2 channel binding flag %q", clip(flag))
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, malformed("client-first message without a GS2 header")
	}
	c := &clientFirst{gs2Header: flag + "," + authz + ",", bare: bare}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return nil, malformed("GS2 authzid %q does not start with a=", clip(authz))
		}
		name, err := decodeSaslname(authz[2:])
		if err != nil {
			return nil, err
		}
		c.authzid = name
	}
	attrs := strings.Split(bare, ",")
	if strings.HasPrefix(attrs[0], "m=") {
		return nil, unsupported("mandatory extension m= is not supported")
	}
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, malformed("client-first message is not n=<user>,r=<nonce>[,extensions]")
	}
	name, err := decodeSaslname(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	c.username = name
	c.nonce = attrs[1][2:]
	if err := checkNonce(c.nonce); err != nil {
		return nil, err
	}
	if len(attrs) > 2 {
		c.extensions = map[string]string{}
		for _, a := range attrs[2:] {
			k, v, ok := strings.Cut(a, "=")
			if !ok || !isAttrName(k) || v == "" {
				return nil, malformed("client-first extension %q is not key=value", clip(a))
			}
			if _, dup := c.extensions[k]; dup {
				return nil, malformed("client-first extension %s repeated", k)
			}
			c.extensions[k] = v
		}
	}
	return c, nil
}

// isAttrName accepts SCRAM attribute names (RFC 5802: one ALPHA) and the
// longer names Kafka's extensions use ("tokenauth").
func isAttrName(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// decodeSaslname undoes RFC 5802's escaping: "=2C" is ',' and "=3D" is
// '='; any other '=' is an error, as is a name SASLprep would prohibit.
func decodeSaslname(s string) (string, error) {
	if s == "" {
		return "", malformed("empty username")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", malformed("username has '=' not followed by 2C or 3D")
		}
		i += 2
	}
	name := b.String()
	if err := ValidateUsername(name); err != nil {
		return "", malformed("%v", err)
	}
	return name, nil
}

// EscapeUsername is RFC 5802's saslname escaping of name, the form a
// client sends.
func EscapeUsername(name string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(name)
}

// checkNonce: printable ASCII except ',' (RFC 5802 "printable").
func checkNonce(n string) error {
	if n == "" || len(n) > 512 {
		return malformed("nonce of %d bytes", len(n))
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == ',' {
			return malformed("nonce has a character outside printable ASCII")
		}
	}
	return nil
}

// clientFinal is a parsed client-final-message.
type clientFinal struct {
	channelBinding string // decoded c=
	nonce          string
	withoutProof   string // client-final-message-without-proof, for AuthMessage
	proof          []byte
}

// parseClientFinal reads
//
//	"c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64
func parseClientFinal(msg string) (*clientFinal, error) {
	if len(msg) > maxMessageLen {
		return nil, malformed("client-final message of %d bytes", len(msg))
	}
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, malformed("client-final message without a proof")
	}
	f := &clientFinal{withoutProof: msg[:i]}
	proof, err := decodeBase64(msg[i+3:])
	if err != nil || len(proof) == 0 {
		return nil, malformed("client-final proof is not base64")
	}
	f.proof = proof
	attrs := strings.Split(f.withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, malformed("client-final message is not c=<binding>,r=<nonce>[,extensions],p=<proof>")
	}
	cb, err := decodeBase64(attrs[0][2:])
	if err != nil {
		return nil, malformed("client-final channel binding is not base64")
	}
	f.channelBinding = string(cb)
	f.nonce = attrs[1][2:]
	if err := checkNonce(f.nonce); err != nil {
		return nil, err
	}
	for _, a := range attrs[2:] {
		if k, v, ok := strings.Cut(a, "="); !ok || !isAttrName(k) || v == "" {
			return nil, malformed("client-final extension %q is not key=value", clip(a))
		}
	}
	return f, nil
}

// decodeBase64 decodes RFC 5802's base64: padded, canonical, and without
// the line breaks Go's decoder would skip even in strict mode, so that a
// message has one spelling only.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

func malformed(format string, args ...any) error {
	return &failure{kind: ErrMalformed, detail: fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) error {
	return &failure{kind: ErrUnsupported, detail: fmt.Sprintf(format, args...)}
}
