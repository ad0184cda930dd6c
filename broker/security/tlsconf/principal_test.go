package tlsconf

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

var (
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidDC    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidUID   = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

// raw is an ASN.1 value with an explicit tag.
func raw(tag int, content []byte) asn1.RawValue {
	v := asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: content}
	full, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	v.FullBytes = full
	return v
}

type rawATV struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

type rawRDN []rawATV

// subject encodes RDNs (first = outermost, as in the certificate).
func subject(t *testing.T, rdns ...rawRDN) []byte {
	t.Helper()
	seq := make([]asn1.RawValue, len(rdns))
	for i, r := range rdns {
		set, err := asn1.MarshalWithParams([]rawATV(r), "set")
		if err != nil {
			t.Fatal(err)
		}
		seq[i] = asn1.RawValue{FullBytes: set}
	}
	b, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func utf8s(s string) asn1.RawValue { return raw(asn1.TagUTF8String, []byte(s)) }

// TestDistinguishedName pins Java's X500Principal.getName() rendering,
// which Kafka's principals and mapping rules are written against.
func TestDistinguishedName(t *testing.T) {
	email := raw(asn1.TagIA5String, []byte("a@b.c"))
	bmp := raw(asn1.TagBMPString, []byte{0, 'Z', 0, 'o', 0, 0xeb})
	num := raw(asn1.TagInteger, []byte{1})
	tests := []struct {
		name string
		rdns []rawRDN
		want string
	}{
		{"order and escaped comma", []rawRDN{
			{{asn1.ObjectIdentifier{2, 5, 4, 6}, raw(asn1.TagPrintableString, []byte("US"))}},
			{{asn1.ObjectIdentifier{2, 5, 4, 10}, utf8s("Acme, Inc.")}},
			{{oidOU, utf8s("team")}},
			{{oidCN, utf8s("app")}},
		}, `CN=app,OU=team,O=Acme\, Inc.,C=US`},
		{"escapes", []rawRDN{{{oidCN, utf8s(`a=b+c<d>e#f;g"h\i`)}}}, `CN=a\=b\+c\<d\>e\#f\;g\"h\\i`},
		{"leading and trailing spaces", []rawRDN{{{oidCN, utf8s("  x y ")}}}, `CN=\ \ x y\ `},
		{"NUL", []rawRDN{{{oidCN, utf8s("a\x00b")}}}, `CN=a\00b`},
		{"non-ASCII kept", []rawRDN{{{oidCN, utf8s("Łukasz")}}}, "CN=Łukasz"},
		{"BMPString", []rawRDN{{{oidCN, bmp}}}, "CN=Zoë"},
		{"T61String as Latin-1", []rawRDN{{{oidCN, raw(asn1.TagT61String, []byte{'c', 'a', 'f', 0xe9})}}}, "CN=café"},
		{"DC and UID keywords", []rawRDN{{{oidDC, raw(asn1.TagIA5String, []byte("com"))}}, {{oidDC, raw(asn1.TagIA5String, []byte("example"))}}, {{oidUID, utf8s("jdoe")}}}, "UID=jdoe,DC=example,DC=com"},
		{"emailAddress as OID and hex", []rawRDN{{{oidEmail, email}}, {{oidCN, utf8s("app")}}}, "CN=app,1.2.840.113549.1.9.1=#" + hex.EncodeToString(email.FullBytes)},
		{"keyword with a value that is not a string", []rawRDN{{{oidCN, num}}}, "CN=#" + hex.EncodeToString(num.FullBytes)},
		{"multi-valued RDN", []rawRDN{{{oidCN, utf8s("a")}, {oidOU, utf8s("b")}}}, "CN=a+OU=b"},
		{"empty subject", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DistinguishedName(&x509.Certificate{RawSubject: subject(t, tt.rdns...)})
			if err != nil || got != tt.want {
				t.Fatalf("%q %v, want %q", got, err, tt.want)
			}
		})
	}
	// A certificate made by crypto/x509 from a pkix.Name: it puts the two
	// OUs in one multi-valued RDN.
	c := newCA(t, "ca")
	l := c.issue(t, 5, pkix.Name{CommonName: "app", OrganizationalUnit: []string{"OU1", "OU2"}, Organization: []string{"Org"}, Locality: []string{"Fulton"}, Province: []string{"MD"}, Country: []string{"US"}}, nil)
	cert, err := tlsCert(l)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := DistinguishedName(cert); got != "CN=app,OU=OU1+OU=OU2,O=Org,L=Fulton,ST=MD,C=US" {
		t.Fatalf("x509 subject: %q", got)
	}
	if _, err := DistinguishedName(&x509.Certificate{RawSubject: []byte{0x30, 0x03, 0x01}}); err == nil {
		t.Fatal("a broken subject rendered")
	}
}

func tlsCert(l leaf) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(l.certPEM))
	return x509.ParseCertificate(b.Bytes)
}

// TestPrincipalRulesFromKafka replays Kafka's SslPrincipalMapperTest and
// the example of Kafka's documentation.
func TestPrincipalRulesFromKafka(t *testing.T) {
	for _, valid := range []string{
		"DEFAULT",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
		"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
		"RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
		"RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
		"RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
		"RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
	} {
		if _, err := ParsePrincipalRules(valid); err != nil {
			t.Errorf("%q refused: %v", valid, err)
		}
	}
	for _, invalid := range []string{
		"default", "DEFAUL", "DEFAULT/L", "DEFAULT/U",
		"RULE:CN=(.*?),OU=ServiceUsers.*/$1",
		"rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
	} {
		if _, err := ParsePrincipalRules(invalid); err == nil {
			t.Errorf("%q accepted", invalid)
		}
	}

	pm, err := ParsePrincipalRules(strings.Join([]string{
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
		"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
		"RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
		"RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
		"DEFAULT",
	}, ", "))
	if err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[string]string{
		"CN=Duke,OU=ServiceUsers,O=Org,C=US":        "duke",
		"CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US": "duke@sme",
		"cn=duke,ou=sme,dc=mycp,dc=com":             "DUKE@SME",
		"cN=duke,OU=JavaSoft,O=Sun Microsystems":    "DUKE",
		"OU=JavaSoft,O=Sun Microsystems,C=US":       "OU=JavaSoft,O=Sun Microsystems,C=US",
	} {
		if got, err := pm.Map(dn); err != nil || got != want {
			t.Errorf("Map(%q) = %q %v, want %q", dn, got, err, want)
		}
	}

	splits := []struct{ in, want string }{
		{"", "[]"},
		{"DEFAULT", "[DEFAULT]"},
		{"RULE://", "[RULE:/]"},
		{"RULE:/.*/", "[RULE:/.*]"},
		{"RULE:/.*/L", "[RULE:/.*/L]"},
		{"RULE://,DEFAULT", "[RULE:/, DEFAULT]"},
		{"  RULE:// ,  DEFAULT  ", "[RULE:/, DEFAULT]"},
		{"  RULE:   /     / ,  DEFAULT  ", "[RULE:   /     , DEFAULT]"},
		{"  RULE:  /     /U   ,DEFAULT  ", "[RULE:  /     /U, DEFAULT]"},
		{"  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ", "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]"},
		{",   , , ,      , , ,   ", "[]"},
		{",,RULE://,,,DEFAULT,,", "[RULE:/, DEFAULT]"},
		{",  , RULE: /   /    ,,,   DEFAULT, ,   ", "[RULE: /   , DEFAULT]"},
		{"     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,", "[RULE:   /  /U, DEFAULT]"},
		{`RULE:\/\\\(\)\n\t/\/\//`, `[RULE:\/\\\(\)\n\t/\/\/]`},
		{`RULE:\**\/+/*/L,RULE:\/*\**/**/`, `[RULE:\**\/+/*/L, RULE:\/*\**/**]`},
		{`RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT`,
			`[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]`},
	}
	for _, tt := range splits {
		pm, err := ParsePrincipalRules(tt.in)
		if err != nil || pm.String() != tt.want {
			t.Errorf("split %q: %v %v, want %s", tt.in, pm, err, tt.want)
		}
	}

	pm, err = ParsePrincipalRules(`RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pm.Map(`CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz`); err != nil || got != `Tkac\, Adam` {
		t.Fatalf("comma with whitespace: %q %v", got, err)
	}

	// Kafka's documentation (Customizing SSL User Name).
	pm, err = ParsePrincipalRules(`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,
RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,
RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,
DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[string]string{
		"CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown": "serviceuser",
		"CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown":          "adminuser@admin",
	} {
		if got, err := pm.Map(dn); err != nil || got != want {
			t.Errorf("docs example Map(%q) = %q %v, want %q", dn, got, err, want)
		}
	}
}

func TestPrincipalRulesReplacement(t *testing.T) {
	tests := []struct {
		rules, dn, want, err string
	}{
		{`RULE:^CN=(\w+),OU=(\w+)$/$2-$1/`, "CN=a,OU=b", "b-a", ""},
		{`RULE:^CN=(\w+)$/$4$1/`, "CN=a", "$4a", ""},  // no group 4: literal, as Kafka escapes it
		{`RULE:^CN=(\w+)$/$12/`, "CN=a", "a2", ""},    // Java takes digits while a group exists
		{`RULE:^CN=(\w+)$/\$1/`, "CN=a", "$1", ""},    // \$ is a dollar sign
		{`RULE:^CN=(\w+)$/$0!/`, "CN=a", "CN=a!", ""}, // group 0, the whole match
		{`RULE:^CN=\w+$/$1/`, "CN=a", "", "no groups"},
		{`RULE:^CN=(\w+)$/$x/`, "CN=a", "", "not followed by a group number"},
		{`RULE:^CN=(\w+)$/${name}/`, "CN=a", "", "named group"},
		{`RULE:^CN=(?<=x)$/a/`, "CN=a", "", "regular expression"},
		{`RULE:^CN=x$/a/`, "CN=y", "", "no ssl.principal.mapping.rules rule applies"},
	}
	for _, tt := range tests {
		pm, err := ParsePrincipalRules(tt.rules)
		if err == nil {
			var got string
			got, err = pm.Map(tt.dn)
			if err == nil && got != tt.want {
				t.Errorf("%s on %s: %q, want %q", tt.rules, tt.dn, got, tt.want)
			}
			if tt.err != "" && err != nil && !errors.Is(err, ErrNoRule) && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v", tt.rules, err)
			}
		}
		if tt.err == "" && err != nil {
			t.Errorf("%s: %v", tt.rules, err)
		}
		if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: err %v, want %q", tt.rules, err, tt.err)
		}
	}
}

// FuzzPrincipalRules: any rules text either is refused or maps every name
// without panicking, and rules ending in DEFAULT map every name.
func FuzzPrincipalRules(f *testing.F) {
	f.Add("RULE:^CN=(.*?),OU=(.*?)$/$1@$2/L,DEFAULT", "CN=a,OU=b")
	f.Add(`RULE:\/(a)/\$$1/U`, "/a")
	f.Add("RULE:(a*)/$12$0/,", "aaa")
	f.Fuzz(func(t *testing.T, rules, dn string) {
		pm, err := ParsePrincipalRules(rules)
		if err != nil {
			return
		}
		if _, err := pm.Map(dn); err != nil && !errors.Is(err, ErrNoRule) {
			t.Fatalf("rules %q accepted, then failed on %q: %v", rules, dn, err)
		}
		withDefault, err := ParsePrincipalRules(rules + ",DEFAULT")
		if err != nil {
			return // the rules swallowed the comma into a pattern that no longer compiles
		}
		if _, err := withDefault.Map(dn); err != nil {
			t.Fatalf("rules %q ending in DEFAULT failed on %q: %v", rules+",DEFAULT", dn, err)
		}
	})
}

// FuzzDistinguishedName: any subject either fails to parse or renders,
// and a rendered name never has an unescaped separator inside a value.
func FuzzDistinguishedName(f *testing.F) {
	f.Add([]byte{0x30, 0x0e, 0x31, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, 'a', ',', 'b'})
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, subj []byte) {
		dn, err := DistinguishedName(&x509.Certificate{RawSubject: subj})
		if err != nil {
			return
		}
		// Every unescaped ',' or '+' separates attributes, each KEY=value.
		for _, ava := range splitUnescaped(dn, ",+") {
			if dn == "" {
				break
			}
			if k, _, ok := strings.Cut(ava, "="); !ok || k == "" {
				t.Fatalf("%q renders %q with a part %q that is not KEY=value", subj, dn, ava)
			}
		}
	})
}

func splitUnescaped(s, seps string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case strings.IndexByte(seps, s[i]) >= 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
