package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Getter reads a broker setting by its Kafka name, reporting whether it is
// set (broker/config's Config.Get).
type Getter func(name string) (string, bool)

// MapGetter adapts a map of settings to a Getter.
func MapGetter(m map[string]string) Getter {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// Settings are one listener's TLS settings, resolved and checked.
type Settings struct {
	// Keystore: inline PEM (certificate chain and key) or a file holding
	// both, key and chain in any order.
	CertChainPEM, KeyPEM string
	KeystoreLocation     string
	// Truststore: inline PEM certificates or a file of them. Empty: the
	// client side uses the system roots, the server side verifies no
	// client certificate.
	TruststorePEM      string
	TruststoreLocation string

	ClientAuth   tls.ClientAuthType
	MinVersion   uint16
	MaxVersion   uint16
	CipherSuites []uint16 // TLS 1.2 suites; nil: Go's defaults
	// VerifyHostname is ssl.endpoint.identification.algorithm=https (the
	// default): a client checks the server certificate's name.
	VerifyHostname bool
	Principals     *PrincipalMapper
}

// Load reads the TLS settings of listener (e.g. "SSL", "REPLICATION"):
// listener.name.<listener lower case>.<setting> wins over <setting>, as in
// Kafka. Every problem is reported at once, each naming its setting.
//
//	ssl.keystore.type                   PEM (the only type; JKS and PKCS12 are refused)
//	ssl.keystore.certificate.chain      inline PEM chain, leaf first
//	ssl.keystore.key                    inline PEM private key (PKCS#1, PKCS#8 or EC; not encrypted)
//	ssl.keystore.location               file with the key and the chain (instead of the two above)
//	ssl.truststore.type                 PEM
//	ssl.truststore.certificates         inline PEM CA certificates
//	ssl.truststore.location             file of PEM CA certificates
//	ssl.client.auth                     none (default), requested, required
//	ssl.enabled.protocols               TLSv1.2,TLSv1.3 (default); nothing older
//	ssl.protocol                        TLSv1.3 (default), TLSv1.2 or TLS; ssl.enabled.protocols decides
//	ssl.cipher.suites                   IANA names; restricts TLS 1.2 (Go does not let TLS 1.3 suites be chosen)
//	ssl.endpoint.identification.algorithm  https (default) or empty
//	ssl.principal.mapping.rules         Kafka's RULE:pattern/replacement/[LU] list, DEFAULT
func Load(get Getter, listener string) (*Settings, error) {
	prefix := "listener.name." + strings.ToLower(listener) + "."
	lookup := func(name string) (string, bool) {
		if listener != "" {
			if v, ok := get(prefix + name); ok {
				return v, true
			}
		}
		return get(name)
	}
	value := func(name, def string) string {
		if v, ok := lookup(name); ok {
			return strings.TrimSpace(v)
		}
		return def
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	s := &Settings{}

	if t := value("ssl.keystore.type", "PEM"); !strings.EqualFold(t, "PEM") {
		bad("ssl.keystore.type", "%q is not supported: only PEM (convert a JKS or PKCS12 keystore with openssl)", t)
	}
	s.CertChainPEM, _ = lookup("ssl.keystore.certificate.chain")
	s.KeyPEM, _ = lookup("ssl.keystore.key")
	s.KeystoreLocation = value("ssl.keystore.location", "")
	inline := s.CertChainPEM != "" || s.KeyPEM != ""
	switch {
	case inline && s.KeystoreLocation != "":
		bad("ssl.keystore.location", "set together with ssl.keystore.certificate.chain/ssl.keystore.key: use one or the other")
	case inline && (s.CertChainPEM == "" || s.KeyPEM == ""):
		bad("ssl.keystore.key", "ssl.keystore.certificate.chain and ssl.keystore.key go together")
	case !inline && s.KeystoreLocation == "":
		bad("ssl.keystore.location", "no keystore: set ssl.keystore.location, or ssl.keystore.certificate.chain and ssl.keystore.key")
	}
	if v, ok := lookup("ssl.key.password"); ok && v != "" {
		bad("ssl.key.password", "encrypted private keys are not supported: store the key unencrypted (the data volume and the boot secrets are encrypted with KMS)")
	}

	if t := value("ssl.truststore.type", "PEM"); !strings.EqualFold(t, "PEM") {
		bad("ssl.truststore.type", "%q is not supported: only PEM", t)
	}
	s.TruststorePEM, _ = lookup("ssl.truststore.certificates")
	s.TruststoreLocation = value("ssl.truststore.location", "")
	if s.TruststorePEM != "" && s.TruststoreLocation != "" {
		bad("ssl.truststore.location", "set together with ssl.truststore.certificates: use one or the other")
	}

	switch auth := strings.ToLower(value("ssl.client.auth", "none")); auth {
	case "none", "":
		s.ClientAuth = tls.NoClientCert
	case "requested":
		s.ClientAuth = tls.VerifyClientCertIfGiven
	case "required":
		s.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		bad("ssl.client.auth", "%q: want none, requested or required", auth)
	}
	if s.ClientAuth != tls.NoClientCert && s.TruststorePEM == "" && s.TruststoreLocation == "" {
		bad("ssl.client.auth", "client certificates are checked against a truststore: set ssl.truststore.location or ssl.truststore.certificates")
	}

	switch p := value("ssl.protocol", "TLSv1.3"); p {
	case "TLSv1.3", "TLSv1.2", "TLS":
	default:
		bad("ssl.protocol", "%q: want TLSv1.3, TLSv1.2 or TLS", p)
	}
	versions := map[string]uint16{"TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}
	for _, p := range splitList(value("ssl.enabled.protocols", "TLSv1.2,TLSv1.3")) {
		v, ok := versions[p]
		switch {
		case ok:
			if s.MinVersion == 0 || v < s.MinVersion {
				s.MinVersion = v
			}
			s.MaxVersion = max(s.MaxVersion, v)
		case p == "TLSv1" || p == "TLSv1.1" || strings.HasPrefix(p, "SSL"):
			bad("ssl.enabled.protocols", "%s is older than TLS 1.2 and is not served", p)
		default:
			bad("ssl.enabled.protocols", "%q: want TLSv1.2 and/or TLSv1.3", p)
		}
	}
	if s.MinVersion == 0 {
		bad("ssl.enabled.protocols", "no protocol enabled")
	}

	if names := splitList(value("ssl.cipher.suites", "")); len(names) > 0 {
		s.CipherSuites = cipherSuites(names, s.MinVersion <= tls.VersionTLS12 && s.MinVersion != 0, bad)
	}

	switch alg := value("ssl.endpoint.identification.algorithm", "https"); strings.ToLower(alg) {
	case "https":
		s.VerifyHostname = true
	case "":
	default:
		bad("ssl.endpoint.identification.algorithm", "%q: want https or empty", alg)
	}

	rules := "DEFAULT"
	if v, ok := lookup("ssl.principal.mapping.rules"); ok {
		rules = v
	}
	pm, err := ParsePrincipalRules(rules)
	if err != nil {
		bad("ssl.principal.mapping.rules", "%v", err)
	}
	s.Principals = pm

	if len(errs) > 0 {
		return nil, fmt.Errorf("TLS settings of listener %s: %w", listener, errors.Join(errs...))
	}
	return s, nil
}

// cipherSuites resolves IANA names. TLS 1.3 suites are accepted and change
// nothing: Go always offers all three. With TLS 1.2 enabled the list must
// name a TLS 1.2 suite, or TLS 1.2 would silently use Go's defaults.
func cipherSuites(names []string, tls12 bool, bad func(string, string, ...any)) []uint16 {
	secure := map[string]*tls.CipherSuite{}
	for _, c := range tls.CipherSuites() {
		secure[c.Name] = c
	}
	insecure := map[string]bool{}
	for _, c := range tls.InsecureCipherSuites() {
		insecure[c.Name] = true
	}
	var out []uint16
	for _, n := range names {
		c, ok := secure[n]
		switch {
		case ok && slices.Contains(c.SupportedVersions, tls.VersionTLS13):
			// always on
		case ok:
			out = append(out, c.ID)
		case insecure[n]:
			bad("ssl.cipher.suites", "%s is insecure and not served", n)
		default:
			bad("ssl.cipher.suites", "%s is not a cipher suite Go implements", n)
		}
	}
	if tls12 && len(out) == 0 {
		bad("ssl.cipher.suites", "names no TLS 1.2 suite while TLSv1.2 is enabled (TLS 1.3 suites cannot be restricted in Go)")
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
