package provider

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/broker/security/tlsconf"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

// The listener names and ports of Amazon MSK's client ports, as the boot
// agent renders them (docs/broker-security.md, "The properties of each MSK
// port").
const (
	listenerPlaintext = "CLIENT"
	listenerTLS       = "CLIENT_SECURE"
	listenerSCRAM     = "CLIENT_SASL_SCRAM"
	listenerIAM       = "CLIENT_IAM"

	tlsPort   = bootconfig.DefaultTLSPort
	scramPort = bootconfig.DefaultSCRAMPort
	iamPort   = bootconfig.DefaultIAMPort
)

// Client settings as MSK names them (encryption_in_transit.client_broker).
const (
	clientBrokerTLS          = "TLS"
	clientBrokerTLSPlaintext = "TLS_PLAINTEXT"
	clientBrokerPlaintext    = "PLAINTEXT"
)

// securitySettings is what encryption_in_transit, client_authentication and
// tls_certificate_authority ask for, with MSK's defaults filled in.
type securitySettings struct {
	ClientBroker    string
	InCluster       bool
	Unauthenticated bool
	IAM, SCRAM      bool
	// ClientCAs are the PEM certificates of client_authentication.tls:
	// mutual TLS is on when there is one.
	ClientCAs []string
	// ClientCAARNs are AWS Private CA ARNs: their certificates join
	// ClientCAs when a spec is built (withPrivateCAs).
	ClientCAARNs []string
	// UserCACert and UserCAKey are tls_certificate_authority, empty when
	// the provider makes the CA.
	UserCACert, UserCAKey string
}

// equal reports whether s and o ask for the same settings, every field
// compared (TestSecuritySettingsEqualComparesEveryField fails for a field
// added to the struct and not here). A nil list equals an empty one.
func (s securitySettings) equal(o securitySettings) bool {
	return s.ClientBroker == o.ClientBroker && s.InCluster == o.InCluster && s.Unauthenticated == o.Unauthenticated &&
		s.IAM == o.IAM && s.SCRAM == o.SCRAM && slices.Equal(s.ClientCAs, o.ClientCAs) &&
		slices.Equal(s.ClientCAARNs, o.ClientCAARNs) && s.UserCACert == o.UserCACert && s.UserCAKey == o.UserCAKey
}

// security reads the security blocks of a configuration or plan. Unknown
// values read as their defaults; ValidateConfig checks again once known.
func (m *clusterModel) security(ctx context.Context) (securitySettings, diag.Diagnostics) {
	var diags diag.Diagnostics
	s := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true}
	if !m.EncryptionInTransit.IsNull() && !m.EncryptionInTransit.IsUnknown() {
		var e encryptionInTransitModel
		diags.Append(m.EncryptionInTransit.As(ctx, &e, objectAsOptions)...)
		if v := e.ClientBroker.ValueString(); v != "" {
			s.ClientBroker = v
		}
		if !e.InCluster.IsNull() && !e.InCluster.IsUnknown() {
			s.InCluster = e.InCluster.ValueBool()
		}
	}
	unauthenticatedSet := false
	if !m.ClientAuthentication.IsNull() && !m.ClientAuthentication.IsUnknown() {
		var ca clientAuthenticationModel
		diags.Append(m.ClientAuthentication.As(ctx, &ca, objectAsOptions)...)
		if !ca.SASL.IsNull() && !ca.SASL.IsUnknown() {
			var sm saslModel
			diags.Append(ca.SASL.As(ctx, &sm, objectAsOptions)...)
			s.IAM, s.SCRAM = sm.IAM.ValueBool(), sm.SCRAM.ValueBool()
		}
		if !ca.TLS.IsNull() && !ca.TLS.IsUnknown() {
			var t tlsAuthModel
			diags.Append(ca.TLS.As(ctx, &t, objectAsOptions)...)
			var d diag.Diagnostics
			s.ClientCAs, d = stringSet(ctx, t.CertificateAuthorityPEMs)
			diags.Append(d...)
			s.ClientCAARNs, d = stringSet(ctx, t.CertificateAuthorityARNs)
			diags.Append(d...)
		}
		if !ca.Unauthenticated.IsNull() && !ca.Unauthenticated.IsUnknown() {
			s.Unauthenticated, unauthenticatedSet = ca.Unauthenticated.ValueBool(), true
		}
	}
	if !unauthenticatedSet {
		s.Unauthenticated = !s.authenticated()
	}
	if !m.TLSCertificateAuthority.IsNull() && !m.TLSCertificateAuthority.IsUnknown() {
		var t tlsCertificateAuthorityModel
		diags.Append(m.TLSCertificateAuthority.As(ctx, &t, objectAsOptions)...)
		s.UserCACert, s.UserCAKey = t.CertificatePEM.ValueString(), t.PrivateKeyPEM.ValueString()
	}
	return s, diags
}

// authenticated reports whether a mechanism is on.
func (s securitySettings) authenticated() bool {
	return s.IAM || s.SCRAM || s.mutualTLS()
}

func (s securitySettings) mutualTLS() bool { return len(s.ClientCAs) > 0 || len(s.ClientCAARNs) > 0 }

func (s securitySettings) plaintext() bool { return s.ClientBroker != clientBrokerTLS }

func (s securitySettings) clientTLS() bool { return s.ClientBroker != clientBrokerPlaintext }

// usesTLS reports whether any listener, or the brokers' own traffic, uses
// TLS, so the cluster needs its CA and broker certificates.
func (s securitySettings) usesTLS() bool {
	return s.InCluster || slices.ContainsFunc(s.listeners(), func(l bootconfig.Listener) bool {
		return l.SecurityProtocol != "PLAINTEXT"
	})
}

// validate says what a configuration cannot have, each problem at its
// attribute. Every listener it allows is one the brokers serve.
func (s securitySettings) validate(now time.Time) diag.Diagnostics {
	var diags diag.Diagnostics
	ca := path.Root("client_authentication")
	if s.authenticated() && !s.clientTLS() {
		diags.AddAttributeError(ca, "Authentication needs TLS",
			"SASL/IAM, SASL/SCRAM and mutual TLS authenticate over TLS: set encryption_in_transit.client_broker to TLS or TLS_PLAINTEXT (as with MSK).")
	}
	if !s.Unauthenticated && !s.authenticated() {
		diags.AddAttributeError(ca.AtName("unauthenticated"), "No way for clients to connect",
			"unauthenticated = false with no SASL or TLS authentication leaves clients no way in.")
	}
	if s.plaintext() && !s.Unauthenticated {
		diags.AddAttributeError(path.Root("encryption_in_transit").AtName("client_broker"), "Plaintext clients cannot authenticate",
			"client_broker = \""+s.ClientBroker+"\" opens the plaintext port 9092, where clients are unauthenticated, while "+
				"client_authentication.unauthenticated is false: use client_broker = \"TLS\", or allow unauthenticated clients.")
	}
	for _, a := range s.ClientCAARNs {
		if err := checkPrivateCAARN(a); err != nil {
			diags.AddAttributeError(ca.AtName("tls").AtName("certificate_authority_arns"), "Invalid client CA ARN", err.Error()+".")
		}
	}
	for i, text := range s.ClientCAs {
		if _, err := pki.ParseTrustBundle(text, now); err != nil {
			diags.AddAttributeError(ca.AtName("tls").AtName("certificate_authority_pems"), "Invalid client CA",
				fmt.Sprintf("Entry %d: %v.", i+1, err))
		}
	}
	tca := path.Root("tls_certificate_authority")
	switch {
	case s.UserCACert == "" && s.UserCAKey == "":
	case s.UserCACert == "" || s.UserCAKey == "":
		diags.AddAttributeError(tca, "Incomplete CA", "tls_certificate_authority needs both certificate_pem and private_key_pem.")
	default:
		if _, err := pki.ParseCA(s.UserCACert, s.UserCAKey, now); err != nil {
			diags.AddAttributeError(tca, "Invalid CA", err.Error())
		}
	}
	return diags
}

// listeners are the client listeners the settings turn on, in port order.
func (s securitySettings) listeners() []bootconfig.Listener {
	var out []bootconfig.Listener
	if s.plaintext() && s.Unauthenticated {
		out = append(out, bootconfig.Listener{Name: listenerPlaintext, Port: plaintextPort, SecurityProtocol: "PLAINTEXT"})
	}
	if s.clientTLS() && (s.Unauthenticated || s.mutualTLS()) {
		l := bootconfig.Listener{Name: listenerTLS, Port: tlsPort, SecurityProtocol: "SSL"}
		switch {
		case s.mutualTLS() && s.Unauthenticated:
			l.ClientAuth = "requested"
		case s.mutualTLS():
			l.ClientAuth = "required"
		}
		out = append(out, l)
	}
	if s.clientTLS() && s.SCRAM {
		out = append(out, bootconfig.Listener{Name: listenerSCRAM, Port: scramPort, SecurityProtocol: "SASL_SSL",
			SASLMechanisms: []string{"SCRAM-SHA-512", "SCRAM-SHA-256"}})
	}
	if s.clientTLS() && s.IAM {
		out = append(out, bootconfig.Listener{Name: listenerIAM, Port: iamPort, SecurityProtocol: "SASL_SSL",
			SASLMechanisms: []string{"OAUTHBEARER"}})
	}
	return out
}

// clientPorts are the ports of listeners, for the security group.
func clientPorts(ls []bootconfig.Listener) []int32 {
	out := make([]int32, 0, len(ls))
	for _, l := range ls {
		out = append(out, int32(l.Port))
	}
	return out
}

// hasListener reports whether a listener of that name is on.
func hasListener(ls []bootconfig.Listener, name string) bool {
	return slices.ContainsFunc(ls, func(l bootconfig.Listener) bool { return l.Name == name })
}

// clientCABundle joins the client CAs into one PEM text.
func (s securitySettings) clientCABundle() string {
	var b strings.Builder
	for _, c := range s.ClientCAs {
		b.WriteString(strings.TrimRight(c, "\n"))
		b.WriteByte('\n')
	}
	return b.String()
}

// privateCAKey is the private-state key holding the CA the provider made:
// its certificate and private key live only in Terraform's state.
const privateCAKey = "cluster_ca"

// storedCA is the private-state form of the provider's CA.
type storedCA struct {
	CertificatePEM string `json:"certificate_pem"`
	PrivateKeyPEM  string `json:"private_key_pem"`
}

// privateState is the part of Terraform's private state the resource reads
// and writes (req.Private and resp.Private of each operation).
type privateState interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
}

type privateStateWriter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

// privateStore is a private state read and written (resp.Private of Read).
type privateStore interface {
	privateState
	privateStateWriter
}

// clusterCA returns the CA that signs the broker certificates: the user's,
// else the one made earlier (private state), else a new one, which is
// written to the private state.
func clusterCA(ctx context.Context, s securitySettings, name, clusterID string, from privateState, to privateStateWriter, now time.Time) (*pki.CA, diag.Diagnostics) {
	var diags diag.Diagnostics
	if s.UserCACert != "" {
		ca, err := pki.ParseCA(s.UserCACert, s.UserCAKey, now)
		if err != nil {
			diags.AddAttributeError(path.Root("tls_certificate_authority"), "Invalid CA", err.Error())
		}
		return ca, diags
	}
	if from != nil {
		raw, d := from.GetKey(ctx, privateCAKey)
		diags.Append(d...)
		if len(raw) > 0 {
			var st storedCA
			if err := json.Unmarshal(raw, &st); err != nil {
				diags.AddError("Reading the cluster CA from the state", "The private state's CA is not readable: "+err.Error())
				return nil, diags
			}
			ca, err := pki.ParseCA(st.CertificatePEM, st.PrivateKeyPEM, now)
			if err != nil {
				diags.AddError("Reading the cluster CA from the state", err.Error())
				return nil, diags
			}
			diags.Append(to.SetKey(ctx, privateCAKey, raw)...)
			return ca, diags
		}
	}
	ca, err := pki.NewCA(name, clusterID, now)
	if err != nil {
		diags.AddError("Making the cluster CA", err.Error())
		return nil, diags
	}
	raw, err := json.Marshal(storedCA{CertificatePEM: ca.CertPEM, PrivateKeyPEM: ca.KeyPEM})
	if err != nil {
		diags.AddError("Making the cluster CA", err.Error())
		return nil, diags
	}
	diags.Append(to.SetKey(ctx, privateCAKey, raw)...)
	return ca, diags
}

// restoreProviderSecrets puts what the brokers' boot documents carry
// sealed for the provider (ProviderSecrets) into the private state where
// it lacks them: the CA the provider made, and its SCRAM password. That is
// a state that imported the cluster (the private state of the one that
// created it holds both), so that its updates sign the brokers'
// certificates with the cluster's own CA and keep the login the brokers
// know, rather than make new ones. A document of an earlier provider holds
// no CA: the state stays without one, and refuseUpdateWithoutCA refuses an
// update that would need it. Failing to open the envelope is a warning: a
// refresh must not fail for it, and the plan says what it then cannot do.
func restoreProviderSecrets(ctx context.Context, client kmsDecrypter, state *clusterModel, o *fleet.Observed, private privateStore) diag.Diagnostics {
	var diags diag.Diagnostics
	sec, d := state.security(ctx)
	if d.HasError() {
		return nil
	}
	caPEM := state.CertificateAuthorityPEM.ValueString()
	has := func(key string) bool {
		raw, d := private.GetKey(ctx, key)
		return !d.HasError() && len(raw) > 0
	}
	needCA := caPEM != "" && state.TLSCertificateAuthority.IsNull() && !has(privateCAKey)
	needLogin := sec.SCRAM && !has(privateAdminKey)
	if !needCA && !needLogin {
		return nil
	}
	var docs []*bootconfig.Document
	for _, b := range o.Brokers {
		if b.Launch == nil || len(b.Launch.UserData) == 0 {
			continue
		}
		if doc, err := bootconfig.Decode(b.Launch.UserData); err == nil {
			docs = append(docs, doc)
		}
	}
	found, err := sealedProviderSecrets(ctx, client, docs, caPEM, needCA)
	if err != nil {
		diags.AddWarning("The provider's sealed secrets could not be read",
			fmt.Sprintf("The brokers' boot documents carry the cluster's CA or the provider's login sealed with the cluster's KMS key, "+
				"and this state lacks them (the cluster was imported), but they could not be opened: %v. An update that must "+
				"sign broker certificates will be refused at plan.", err))
		return diags
	}
	if found == nil {
		return nil
	}
	if needCA && found.CACertificatePEM != "" {
		ca, err := pki.ParseCA(found.CACertificatePEM, found.CAPrivateKeyPEM, time.Now())
		switch {
		case err != nil:
			diags.AddWarning("The cluster's sealed CA is not usable", err.Error())
		case !sameCertificate(ca.CertPEM, caPEM):
			// The brokers' documents name another CA than the one sealed
			// (cannot happen with documents this provider writes: both
			// come from one spec); signing with it would split the cluster.
			diags.AddWarning("The cluster's sealed CA is not the brokers' CA", "The CA sealed in the boot documents did not sign the brokers' certificates; it is not used.")
		default:
			raw, err := json.Marshal(storedCA{CertificatePEM: found.CACertificatePEM, PrivateKeyPEM: found.CAPrivateKeyPEM})
			if err != nil {
				diags.AddError("Keeping the cluster CA in the state", err.Error())
				return diags
			}
			diags.Append(private.SetKey(ctx, privateCAKey, raw)...)
		}
	}
	if needLogin && found.SCRAMPassword != "" {
		raw, err := json.Marshal(storedAdmin{Password: found.SCRAMPassword})
		if err != nil {
			diags.AddError("Keeping the provider's SCRAM login in the state", err.Error())
			return diags
		}
		diags.Append(private.SetKey(ctx, privateAdminKey, raw)...)
	}
	return diags
}

// sealedProviderSecrets opens the ProviderSecrets of docs whose cluster CA
// is caPEM, each distinct envelope once, in order: the first that holds a
// CA when wantCA (brokers launched by an earlier provider carry an envelope
// without one), else the first opened. Nil, nil when no document carries
// one; an error only when none could be opened.
func sealedProviderSecrets(ctx context.Context, client kmsDecrypter, docs []*bootconfig.Document, caPEM string, wantCA bool) (*bootconfig.ProviderSecrets, error) {
	var first *bootconfig.ProviderSecrets
	var errs []error
	tried := map[string]bool{}
	for _, doc := range docs {
		env := doc.ProviderSecrets
		if env == nil || documentCA(doc) != caPEM || tried[string(env.Ciphertext)] {
			continue
		}
		tried[string(env.Ciphertext)] = true
		s, err := openProviderSecrets(ctx, client, doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !wantCA || s.CACertificatePEM != "" {
			return s, nil
		}
		if first == nil {
			first = s
		}
	}
	if first == nil && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return first, nil
}

// lackingSealedCA returns the brokers whose groups launch a boot document
// of cs's CA without that CA sealed for the provider, when cs seals it
// (the provider made the CA): brokers launched by a provider older than the
// sealing, from whose documents an import cannot restore the CA
// (restoreProviderSecrets), so that the imported cluster's first change
// would be refused (refuseUpdateWithoutCA). Update gives them template
// versions with it (fleet.Spec.Reseal), which their running instances need
// not roll for: a broker reads its ProviderSecrets never. A document whose
// envelope cannot be opened is left as it is, with a log line: its
// envelope may hold the CA.
func lackingSealedCA(ctx context.Context, client kmsDecrypter, cs *clusterSpec, o *fleet.Observed) map[int32]bool {
	plain := cs.providerSecrets()
	if plain == nil || plain.CACertificatePEM == "" {
		return nil
	}
	opened := map[string]bool{} // envelope ciphertext -> holds a CA
	var out map[int32]bool
	for _, b := range o.Brokers {
		if b.Launch == nil || len(b.Launch.UserData) == 0 {
			continue
		}
		doc, err := bootconfig.Decode(b.Launch.UserData)
		if err != nil || !sameCertificate(documentCA(doc), plain.CACertificatePEM) {
			continue // another CA's document is rolled anyway (the launch hash names the CA)
		}
		has := false
		if env := doc.ProviderSecrets; env != nil {
			var seen bool
			if has, seen = opened[string(env.Ciphertext)]; !seen {
				s, err := openProviderSecrets(ctx, client, doc)
				if err != nil {
					tflog.Warn(ctx, "could not open the provider's sealed secrets of a broker's boot document; it is not resealed", map[string]any{"node_id": b.NodeID, "error": err.Error()})
					continue
				}
				has = s != nil && s.CACertificatePEM != ""
				opened[string(env.Ciphertext)] = has
			}
		}
		if !has {
			if out == nil {
				out = map[int32]bool{}
			}
			out[b.NodeID] = true
		}
	}
	return out
}

// sameCertificate reports whether two PEM texts begin with the same
// certificate.
func sameCertificate(a, b string) bool {
	ca, err1 := pki.ParseCertificates(a)
	cb, err2 := pki.ParseCertificates(b)
	return err1 == nil && err2 == nil && len(ca) > 0 && len(cb) > 0 && ca[0].Equal(cb[0])
}

// providerSecrets is the plaintext of every boot document's
// ProviderSecrets: the provider's login (when it has one) and the CA when
// the provider made it, so that any state that can read the cluster, and
// is allowed kms:Decrypt under the provider's encryption context, signs
// with that CA (restoreProviderSecrets). A user's CA is not sealed: its
// key is in the user's configuration. Nil when there is nothing to seal.
func (cs *clusterSpec) providerSecrets() *bootconfig.ProviderSecrets {
	var s bootconfig.ProviderSecrets
	if cs.admin != nil {
		s = cs.admin.Provider
	}
	if cs.CA != nil && cs.Security.UserCACert == "" {
		s.CACertificatePEM, s.CAPrivateKeyPEM = cs.CA.CertPEM, cs.CA.KeyPEM
	}
	if s == (bootconfig.ProviderSecrets{}) {
		return nil
	}
	return &s
}

// brokerPrincipal is the principal every broker's certificate gives it on
// the in-cluster listeners; it is a super user.
func brokerPrincipal(clusterID string) (string, error) {
	return pki.Principal(pki.BrokerSubject(clusterID))
}

// certificateFingerprint names a CA in the boot settings hash, so that
// changing the CA rolls the brokers.
func certificateFingerprint(ca *pki.CA) string {
	if ca == nil {
		return ""
	}
	return pki.Fingerprint(ca.Cert)
}

// parseCAPEM reads the first certificate of a PEM text.
func parseCAPEM(text string) (*x509.CertPool, error) {
	certs, err := pki.ParseCertificates(text)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// secure completes a spec with the cluster's certificates and principals:
// the CA (from, to: the operation's private state), the super users, and
// how each broker's secrets are sealed. It must run before the spec's boot
// settings hash is taken.
func (r *clusterResource) secure(ctx context.Context, cs *clusterSpec, from privateState, to privateStateWriter) diag.Diagnostics {
	var diags diag.Diagnostics
	cs.now = time.Now()
	if cs.Security.usesTLS() {
		ca, d := clusterCA(ctx, cs.Security, cs.Name, cs.ClusterID, from, to, cs.now)
		diags.Append(d...)
		if diags.HasError() {
			return diags
		}
		cs.CA = ca
		p, err := brokerPrincipal(cs.ClusterID)
		if err != nil {
			diags.AddError("Naming the brokers' principal", err.Error())
			return diags
		}
		cs.SuperUsers = append(cs.SuperUsers, p)
	}
	admin, principals, d := makeAdmin(ctx, cs, from, to)
	diags.Append(d...)
	if diags.HasError() {
		return diags
	}
	cs.admin = admin
	cs.SuperUsers = append(cs.SuperUsers, principals...)
	caPEM := ""
	if cs.CA != nil {
		caPEM = cs.CA.CertPEM
	}
	var login *bootconfig.ProviderSecrets
	if admin != nil {
		login = &admin.Provider
	}
	a, err := r.data.kafkaAccessTo(cs.ClusterID, cs.Listeners, caPEM, login)
	if err != nil {
		diags.AddAttributeError(path.Root("client_authentication"), "No way for the provider to reach the brokers", err.Error())
		return diags
	}
	cs.Access = a
	keyRef := cs.Storage.KMSKeyARN
	if keyRef == "" {
		keyRef = fleet.KeyAlias(cs.ClusterID)
	}
	cs.seal = func(nodeID int32, s *bootconfig.Secrets) (*bootconfig.Envelope, error) {
		return sealSecrets(ctx, r.data.aws.KMS, keyRef, bootconfig.EncryptionContext(cs.ClusterID, nodeID), s)
	}
	// Sealed once, when the first document is rendered: the key may not
	// exist before (a create makes it).
	if plain := cs.providerSecrets(); plain != nil {
		var provider *bootconfig.Envelope
		cs.sealProvider = func() (*bootconfig.Envelope, error) {
			if provider == nil {
				env, err := sealSecrets(ctx, r.data.aws.KMS, keyRef, bootconfig.ProviderEncryptionContext(cs.ClusterID), plain)
				if err != nil {
					return nil, fmt.Errorf("sealing the provider's secrets: %w", err)
				}
				provider = env
			}
			return provider, nil
		}
	}
	cs.BootSettingsHash = cs.bootSettingsHash()
	return diags
}

// kmsEncrypter is the one KMS call sealing makes; *kms.Client has it.
type kmsEncrypter interface {
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
}

// sealSecrets encrypts a value's JSON with the cluster's key under an
// encryption context; the envelope names the key by ARN (what KMS answers),
// so a broker decrypts without resolving the alias.
func sealSecrets(ctx context.Context, client kmsEncrypter, keyRef string, encCtx map[string]string, v any) (*bootconfig.Envelope, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the secrets: %w", err)
	}
	out, err := client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyRef), Plaintext: plain, EncryptionContext: encCtx})
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("encrypting the secrets with KMS key %s: %w", keyRef, err)
	}
	return &bootconfig.Envelope{Ciphertext: out.CiphertextBlob, KeyID: aws.ToString(out.KeyId), EncryptionContext: encCtx}, nil
}

// brokerHosts are the names a broker's certificate is valid for: its
// interface's private IP, which clients and peers dial, and EC2's private
// DNS name of that address where the region gives one.
func brokerHosts(n fleet.Node) []string {
	hosts := []string{n.PrivateIP}
	if n.PrivateDNSName != "" {
		hosts = append(hosts, n.PrivateDNSName)
	}
	return hosts
}

// brokerURIs are the URI names of node id's certificate: the node id
// (tlsconf.NodeURI), to which its peers bind the replica and node ids of
// its requests on the replication and controller listeners, so that a
// broker's key lets it act only as itself there.
func brokerURIs(id int32) []*url.URL { return []*url.URL{tlsconf.NodeURI(id)} }

// setBootstrap sets the bootstrap strings of the listeners that are on, and
// empty ones for the others.
func (m *clusterModel) setBootstrap(ls []bootconfig.Listener, brokers []fleet.Broker) {
	bootstrap := func(name string, port int) types.String {
		if !hasListener(ls, name) {
			return types.StringValue("")
		}
		return types.StringValue(bootstrapString(brokers, port))
	}
	m.BootstrapBrokers = bootstrap(listenerPlaintext, plaintextPort)
	m.BootstrapBrokersTLS = bootstrap(listenerTLS, tlsPort)
	m.BootstrapBrokersSASLSCRAM = bootstrap(listenerSCRAM, scramPort)
	m.BootstrapBrokersSASLIAM = bootstrap(listenerIAM, iamPort)
}

// Object types of the security blocks, for the values an import writes.
var (
	encryptionInTransitAttrTypes = map[string]attr.Type{"client_broker": types.StringType, "in_cluster": types.BoolType}
	saslAttrTypes                = map[string]attr.Type{"iam": types.BoolType, "scram": types.BoolType}
	tlsAuthAttrTypes             = map[string]attr.Type{
		"certificate_authority_arns": types.SetType{ElemType: types.StringType},
		"certificate_authority_pems": types.SetType{ElemType: types.StringType},
	}
	clientAuthenticationAttrTypes = map[string]attr.Type{
		"sasl":            types.ObjectType{AttrTypes: saslAttrTypes},
		"tls":             types.ObjectType{AttrTypes: tlsAuthAttrTypes},
		"unauthenticated": types.BoolType,
	}
)

// securityFromDocument sets encryption_in_transit and client_authentication
// on import from the listeners of a broker's boot document: each block only
// where it differs from what omitting it means, so that a configuration
// that omits it plans no change after the import.
func securityFromDocument(doc *bootconfig.Document, m *clusterModel) diag.Diagnostics {
	var diags diag.Diagnostics
	s := securitySettings{ClientBroker: clientBrokerTLS, InCluster: doc.InClusterTLS}
	tlsListener := false
	for _, l := range doc.Listeners {
		switch {
		case l.Name == listenerIAM:
			s.IAM = true
		case l.Name == listenerSCRAM:
			s.SCRAM = true
		case l.SecurityProtocol == "PLAINTEXT":
			s.Unauthenticated = true
		case l.Name == listenerTLS:
			tlsListener = true
			if l.ClientAuth != "required" {
				s.Unauthenticated = true
			}
		}
	}
	hasPlaintext := slices.ContainsFunc(doc.Listeners, func(l bootconfig.Listener) bool { return l.SecurityProtocol == "PLAINTEXT" })
	switch {
	case hasPlaintext && (tlsListener || s.IAM || s.SCRAM):
		s.ClientBroker = clientBrokerTLSPlaintext
	case hasPlaintext:
		s.ClientBroker = clientBrokerPlaintext
	}
	if doc.TLS != nil && strings.TrimSpace(doc.TLS.ClientCertificateAuthoritiesPEM) != "" {
		certs, err := pki.ParseCertificates(doc.TLS.ClientCertificateAuthoritiesPEM)
		if err != nil {
			diags.AddWarning("Unreadable client CAs", "The boot document's client CAs: "+err.Error())
		}
		for _, c := range certs {
			s.ClientCAs = append(s.ClientCAs, pki.Bundle(c))
		}
	}
	// Each attribute is set only where it differs from its default, as a
	// configuration that means the same would leave it out.
	boolOr := func(v, def bool) types.Bool {
		if v == def {
			return types.BoolNull()
		}
		return types.BoolValue(v)
	}
	if s.ClientBroker != clientBrokerTLS || !s.InCluster {
		cb := types.StringNull()
		if s.ClientBroker != clientBrokerTLS {
			cb = types.StringValue(s.ClientBroker)
		}
		obj, d := types.ObjectValue(encryptionInTransitAttrTypes, map[string]attr.Value{
			"client_broker": cb, "in_cluster": boolOr(s.InCluster, true),
		})
		diags.Append(d...)
		m.EncryptionInTransit = obj
	}
	if s.authenticated() {
		sasl := types.ObjectNull(saslAttrTypes)
		if s.IAM || s.SCRAM {
			var d diag.Diagnostics
			sasl, d = types.ObjectValue(saslAttrTypes, map[string]attr.Value{"iam": boolOr(s.IAM, false), "scram": boolOr(s.SCRAM, false)})
			diags.Append(d...)
		}
		tlsBlock := types.ObjectNull(tlsAuthAttrTypes)
		if len(s.ClientCAs) > 0 {
			pems, d := types.SetValueFrom(context.Background(), types.StringType, s.ClientCAs)
			diags.Append(d...)
			tlsBlock, d = types.ObjectValue(tlsAuthAttrTypes, map[string]attr.Value{
				"certificate_authority_arns": types.SetNull(types.StringType), "certificate_authority_pems": pems,
			})
			diags.Append(d...)
		}
		obj, d := types.ObjectValue(clientAuthenticationAttrTypes, map[string]attr.Value{
			"sasl": sasl, "tls": tlsBlock, "unauthenticated": boolOr(s.Unauthenticated, !s.authenticated()),
		})
		diags.Append(d...)
		m.ClientAuthentication = obj
	}
	return diags
}
