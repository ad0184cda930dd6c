package tlsconf

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Anonymous is the principal of a TLS client without a certificate, as in
// Kafka.
const Anonymous = "User:ANONYMOUS"

// attribute and rdnSET mirror the ASN.1 of a Name, keeping each value's
// DER encoding: attributes without an RFC 2253 keyword are written as
// #<hex of the DER value>.
type attribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

type rdnSET []attribute

// rfc2253Keywords are the attribute types Java's
// X500Principal.getName(RFC2253) writes by keyword; every other type is
// written as its dotted OID.
var rfc2253Keywords = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.9":                    "STREET",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// DistinguishedName renders cert's subject as Kafka sees it: Java's
// X500Principal.getName() (RFC 2253): the last RDN first, RDNs separated by
// ',', attributes of one RDN by '+', keyword attributes as
// KEYWORD=value with ,=+<>#;"\ escaped by a backslash (and leading or
// trailing spaces), other attributes and values that are not strings as
// OID=#<hex DER>.
func DistinguishedName(cert *x509.Certificate) (string, error) {
	var rdns []rdnSET
	rest, err := asn1.Unmarshal(cert.RawSubject, &rdns)
	if err != nil || len(rest) != 0 {
		return "", fmt.Errorf("reading the certificate subject: %v", err)
	}
	parts := make([]string, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		avas := make([]string, 0, len(rdns[i]))
		for _, a := range rdns[i] {
			avas = append(avas, renderAttribute(a))
		}
		parts = append(parts, strings.Join(avas, "+"))
	}
	return strings.Join(parts, ","), nil
}

func renderAttribute(a attribute) string {
	oid := a.Type.String()
	keyword, ok := rfc2253Keywords[oid]
	if s, isString := directoryString(a.Value); ok && isString {
		return keyword + "=" + escapeValue(s)
	}
	if ok {
		oid = keyword
	}
	return oid + "=#" + hex.EncodeToString(a.Value.FullBytes)
}

// directoryString decodes the string types Java's RFC 2253 output writes
// as text: PrintableString, T61String (as Latin-1), IA5String,
// GeneralString, BMPString and UTF8String.
func directoryString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String:
		if !utf8.Valid(v.Bytes) {
			return "", false
		}
		return string(v.Bytes), true
	case asn1.TagPrintableString, asn1.TagIA5String, 27: // 27: GeneralString
		return latin1(v.Bytes), true
	case asn1.TagT61String:
		return latin1(v.Bytes), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// escapeValue is Java's AVA.toRFC2253String escaping.
func escapeValue(s string) string {
	const escapees = ",=+<>#;\"\\"
	var b strings.Builder
	for _, c := range s {
		switch {
		case strings.ContainsRune(escapees, c):
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteRune(c)
		}
	}
	out := []rune(b.String())
	lead := 0
	for lead < len(out) && (out[lead] == ' ' || out[lead] == '\r') {
		lead++
	}
	trail := len(out) - 1
	for trail >= 0 && (out[trail] == ' ' || out[trail] == '\r') {
		trail--
	}
	b.Reset()
	for i, c := range out {
		if i < lead || i > trail {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// PrincipalMapper is Kafka's ssl.principal.mapping.rules: a list of
// RULE:pattern/replacement/[LU] and DEFAULT, tried in order on the
// distinguished name; the first that applies names the principal.
type PrincipalMapper struct{ rules []rule }

type rule struct {
	isDefault   bool
	pattern     string
	re, full    *regexp.Regexp // full: anchored, for Java's matches()
	replacement string
	lower       bool
	upper       bool
}

// Kafka's rule grammar (SslPrincipalMapper). Go's regexp picks the match a
// backtracking engine would, so these split and parse as Java does.
const rulePattern = `(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)`

var (
	ruleSplitter = regexp.MustCompile(`\s*(` + rulePattern + `)\s*(,\s*|$)`)
	ruleParser   = regexp.MustCompile(`^(?:` + rulePattern + `)`)
)

// ParsePrincipalRules parses ssl.principal.mapping.rules. Patterns are Go
// regular expressions (RE2: Java's syntax without backreferences and
// lookaround); a pattern or replacement that cannot work is refused here,
// where Kafka would fail each connection it applies to.
func ParsePrincipalRules(s string) (*PrincipalMapper, error) {
	pm := &PrincipalMapper{}
	for _, m := range ruleSplitter.FindAllStringSubmatch(strings.TrimSpace(s), -1) {
		text := m[1]
		p := ruleParser.FindStringSubmatchIndex(text)
		if p == nil || p[1] != len(text) {
			end := 0
			if p != nil {
				end = p[1]
			}
			return nil, fmt.Errorf("invalid rule `%s`, unmatched substring `%s`", text, text[end:])
		}
		group := func(i int) (string, bool) {
			if p[2*i] < 0 {
				return "", false
			}
			return text[p[2*i]:p[2*i+1]], true
		}
		if _, ok := group(1); ok {
			pm.rules = append(pm.rules, rule{isDefault: true})
			continue
		}
		pattern, ok := group(2)
		if !ok {
			continue // an empty rule, ignored as in Kafka
		}
		replacement, _ := group(4)
		flag, _ := group(6)
		r := rule{pattern: pattern, replacement: replacement, lower: flag == "L", upper: flag == "U"}
		var err error
		if r.re, err = regexp.Compile(pattern); err != nil {
			return nil, fmt.Errorf("rule `%s`: the pattern is not a regular expression Go accepts: %v", text, err)
		}
		r.full = regexp.MustCompile(`^(?:` + pattern + `)$`)
		if _, err := expandJava(r.replacement, r.re.NumSubexp(), nil, ""); err != nil {
			return nil, fmt.Errorf("rule `%s`: %v", text, err)
		}
		pm.rules = append(pm.rules, r)
	}
	return pm, nil
}

// String lists the rules as Kafka prints them, e.g.
// [RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT].
func (pm *PrincipalMapper) String() string {
	parts := make([]string, len(pm.rules))
	for i, r := range pm.rules {
		if r.isDefault {
			parts[i] = "DEFAULT"
			continue
		}
		parts[i] = "RULE:" + r.pattern + "/" + r.replacement
		if r.lower {
			parts[i] += "/L"
		} else if r.upper {
			parts[i] += "/U"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// ErrNoRule: no rule applies to the name, so no principal can be built
// and the connection is refused.
var ErrNoRule = errors.New("no ssl.principal.mapping.rules rule applies")

// Map applies the rules to a distinguished name. A RULE applies when its
// pattern matches the whole name; the name then becomes every match of the
// pattern replaced (Java's String.replaceAll: $n is group n, \x is x), in
// lower or upper case with /L or /U.
func (pm *PrincipalMapper) Map(dn string) (string, error) {
	for _, r := range pm.rules {
		if r.isDefault {
			return dn, nil
		}
		if !r.full.MatchString(dn) {
			continue
		}
		var b strings.Builder
		last := 0
		for _, m := range r.re.FindAllStringSubmatchIndex(dn, -1) {
			b.WriteString(dn[last:m[0]])
			out, err := expandJava(r.replacement, r.re.NumSubexp(), m, dn)
			if err != nil {
				return "", err
			}
			b.WriteString(out)
			last = m[1]
		}
		b.WriteString(dn[last:])
		name := b.String()
		switch {
		case r.lower:
			name = strings.ToLower(name)
		case r.upper:
			name = strings.ToUpper(name)
		}
		return name, nil
	}
	return "", fmt.Errorf("%w to %q (rules %s)", ErrNoRule, dn, pm)
}

// expandJava expands a java.util.regex replacement for one match (m, the
// submatch indexes in s; nil only checks the replacement): "\x" is x, "$n"
// is group n, taking as many digits as still name a group. A "$n" naming a
// group the pattern does not have is literal text, as Kafka's
// escapeLiteralBackReferences makes it.
func expandJava(repl string, groups int, m []int, s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		switch c {
		case '\\':
			if i+1 == len(repl) {
				return "", fmt.Errorf("the replacement %q ends with a lone backslash", repl)
			}
			i++
			b.WriteByte(repl[i])
		case '$':
			j := i + 1
			if j < len(repl) && repl[j] == '{' {
				return "", fmt.Errorf("the replacement %q uses a named group, which Kafka's rules do not", repl)
			}
			if j == len(repl) || repl[j] < '0' || repl[j] > '9' {
				return "", fmt.Errorf("the replacement %q has a '$' not followed by a group number (write \\$ for a dollar sign)", repl)
			}
			n := int(repl[j] - '0')
			switch {
			case groups == 0 && n != 0:
				return "", fmt.Errorf("the replacement %q refers to group %d, and the pattern has no groups", repl, n)
			case n > groups:
				// Kafka escapes a reference to a group the pattern does
				// not have: "$4" with three groups is the text "$4".
				b.WriteByte('$')
				continue
			}
			j++
			for j < len(repl) && repl[j] >= '0' && repl[j] <= '9' && n*10+int(repl[j]-'0') <= groups {
				n = n*10 + int(repl[j]-'0')
				j++
			}
			if m != nil && m[2*n] >= 0 {
				b.WriteString(s[m[2*n]:m[2*n+1]])
			}
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
