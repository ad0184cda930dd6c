// Package acmpca emulates AWS Private Certificate Authority (awsJson1_1, X-Amz-Target:
// ACMPrivateCA.<Operation>, SigV4 service acm-pca) for the local cloud, with AWS's life cycle
// of a certificate authority: CreateCertificateAuthority makes the CA's key and leaves it
// PENDING_CERTIFICATE; its CSR (GetCertificateAuthorityCsr) is signed by IssueCertificate with
// the RootCACertificate/V1 template (a root CA signs its own) and installed with
// ImportCertificateAuthorityCertificate, which makes it ACTIVE. An ACTIVE CA issues end-entity
// certificates from CSRs (IssueCertificate, GetCertificate) and gives its certificate to
// anyone allowed to read it (GetCertificateAuthorityCertificate), which is what
// tributary_cluster's client_authentication.tls.certificate_authority_arns reads.
// UpdateCertificateAuthority disables and re-enables a CA, DeleteCertificateAuthority deletes
// one that is not ACTIVE (as AWS: disable it first), DescribeCertificateAuthority and
// ListCertificateAuthorities describe them. Every call is authorized by IAM as
// acm-pca:<Operation> on the CA's ARN ("*" for the create and the list). The CAs' private keys
// are sealed (AES-256-GCM) under a key of the service's own state directory, never in clear in
// its state file.
package acmpca

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// The certificate templates the service knows (AWS has more; these are the two that a root CA
// and its end-entity certificates need).
const (
	TemplateRootCA    = "arn:aws:acm-pca:::template/RootCACertificate/V1"
	TemplateEndEntity = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
)

// CA statuses, as AWS names them.
const (
	statusPending  = "PENDING_CERTIFICATE"
	statusActive   = "ACTIVE"
	statusDisabled = "DISABLED"
	statusDeleted  = "DELETED"
)

// Service is the emulated AWS Private CA of one account. It is safe for concurrent use.
type Service struct {
	account   string
	region    string
	statePath string
	log       *slog.Logger
	now       func() time.Time
	aead      cipher.AEAD

	mu  sync.Mutex
	cas map[string]*authority // by ARN
}

var _ awsapi.Service = (*Service)(nil)

// authority is one certificate authority and the certificates it issued.
type authority struct {
	ARN           string          `json:"arn"`
	Type          string          `json:"type"`
	Configuration json.RawMessage `json:"configuration"` // CertificateAuthorityConfiguration as given
	KeyAlgorithm  string          `json:"keyAlgorithm"`
	Subject       subject         `json:"subject"`
	SealedKey     []byte          `json:"sealedKey"` // nonce || AES-GCM(PKCS#8 DER)
	CertPEM       string          `json:"certPem,omitempty"`
	ChainPEM      string          `json:"chainPem,omitempty"`
	Status        string          `json:"status"`
	Created       float64         `json:"created"`
	Changed       float64         `json:"changed"`
	RestorableTil float64         `json:"restorableUntil,omitempty"`
	Issued        map[string]leaf `json:"issued,omitempty"` // by certificate ARN
}

type leaf struct {
	CertPEM  string `json:"certPem"`
	ChainPEM string `json:"chainPem,omitempty"`
}

// subject is the API's ASN1Subject (the fields a CA's subject may have).
type subject struct {
	Country            string `json:"Country,omitempty"`
	Organization       string `json:"Organization,omitempty"`
	OrganizationalUnit string `json:"OrganizationalUnit,omitempty"`
	State              string `json:"State,omitempty"`
	Locality           string `json:"Locality,omitempty"`
	CommonName         string `json:"CommonName,omitempty"`
	SerialNumber       string `json:"SerialNumber,omitempty"`
}

func (s subject) name() pkix.Name {
	n := pkix.Name{CommonName: s.CommonName, SerialNumber: s.SerialNumber}
	add := func(dst *[]string, v string) {
		if v != "" {
			*dst = append(*dst, v)
		}
	}
	add(&n.Country, s.Country)
	add(&n.Organization, s.Organization)
	add(&n.OrganizationalUnit, s.OrganizationalUnit)
	add(&n.Province, s.State)
	add(&n.Locality, s.Locality)
	return n
}

// New returns the Private CA service, restoring its state from env.StateDir: the sealing key
// (key.hex, made at the first start) and authorities.json.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, log: env.Logger, now: env.Now, cas: map[string]*authority{}}
	key := make([]byte, 32)
	if env.StateDir == "" {
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	} else {
		var err error
		if key, err = loadKey(filepath.Join(env.StateDir, "key.hex")); err != nil {
			return nil, err
		}
		s.statePath = filepath.Join(env.StateDir, "authorities.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			var list []*authority
			if err := json.Unmarshal(data, &list); err != nil {
				return nil, fmt.Errorf("reading Private CA state %s: %w", s.statePath, err)
			}
			for _, a := range list {
				s.cas[a.ARN] = a
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading Private CA state: %w", err)
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return s, nil
}

// loadKey reads the sealing key, making it (readable by the owner only) when there is none.
func loadKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("the Private CA key %s is not 32 hex-encoded bytes", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the Private CA key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := awsapi.WriteFileAtomic(path, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		return nil, fmt.Errorf("writing the Private CA key: %w", err)
	}
	return key, nil
}

// Close has nothing to flush: every change is written when it is made.
func (s *Service) Close() error { return nil }

func (s *Service) saveLocked() error {
	if s.statePath == "" {
		return nil
	}
	return awsapi.SaveJSONState(s.statePath, "Private CA", awsapi.SortedValues(s.cas))
}

// operation serves one action; it runs with s.mu held.
type operation func(s *Service, c *call) (any, error)

var operations = map[string]operation{
	"CreateCertificateAuthority":            (*Service).createCertificateAuthority,
	"DescribeCertificateAuthority":          (*Service).describeCertificateAuthority,
	"ListCertificateAuthorities":            (*Service).listCertificateAuthorities,
	"GetCertificateAuthorityCsr":            (*Service).getCertificateAuthorityCsr,
	"ImportCertificateAuthorityCertificate": (*Service).importCertificateAuthorityCertificate,
	"GetCertificateAuthorityCertificate":    (*Service).getCertificateAuthorityCertificate,
	"IssueCertificate":                      (*Service).issueCertificate,
	"GetCertificate":                        (*Service).getCertificate,
	"UpdateCertificateAuthority":            (*Service).updateCertificateAuthority,
	"DeleteCertificateAuthority":            (*Service).deleteCertificateAuthority,
}

type call struct {
	ctx context.Context
	req *awsapi.Request
}

// Handle serves one Private CA request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	op, err := awsapi.JSONOperation(req, "Private CA", "ACMPrivateCA.", operations)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.purgeLocked()
	out, err := op(s, &call{ctx: ctx, req: req})
	s.mu.Unlock()
	return awsapi.JSONResult(req, out, err)
}

func (c *call) authorize(resource string) error {
	return c.req.Authorize(c.ctx, "acm-pca:"+c.req.Action, resource, nil)
}

// Errors, as Private CA names them.
func notFound(arn string) error {
	return awsapi.Errorf("ResourceNotFoundException", "Could not find certificate authority %s.", arn)
}

func invalidArgs(format string, args ...any) error {
	return awsapi.Errorf("InvalidArgsException", format, args...)
}

func invalidState(format string, args ...any) error {
	return awsapi.Errorf("InvalidStateException", format, args...)
}

func (s *Service) seconds() float64 { return float64(s.now().UnixMilli()) / 1000 }

// purgeLocked removes the CAs whose restore period ended.
func (s *Service) purgeLocked() {
	now := s.seconds()
	changed := false
	for arn, a := range s.cas {
		if a.Status == statusDeleted && a.RestorableTil <= now {
			delete(s.cas, arn)
			changed = true
		}
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			s.log.Error("acm-pca: saving after purging deleted CAs", "err", err)
		}
	}
}

// requestedLocked is the authority a request that names only its
// CertificateAuthorityArn is about (findLocked's checks apply).
func (s *Service) requestedLocked(c *call) (*authority, error) {
	var in struct{ CertificateAuthorityArn string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	return s.findLocked(c, in.CertificateAuthorityArn)
}

// findLocked resolves a CertificateAuthorityArn, authorized.
func (s *Service) findLocked(c *call, arn string) (*authority, error) {
	if arn == "" {
		return nil, invalidArgs("CertificateAuthorityArn is required.")
	}
	if !strings.HasPrefix(arn, "arn:aws:acm-pca:") {
		return nil, awsapi.Errorf("InvalidArnException", "%s is not a valid certificate authority ARN.", arn)
	}
	if err := c.authorize(arn); err != nil {
		return nil, err
	}
	a, ok := s.cas[arn]
	if !ok {
		return nil, notFound(arn)
	}
	return a, nil
}

func (s *Service) seal(plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, nil)
}

func (s *Service) privateKey(a *authority) (crypto.Signer, error) {
	n := s.aead.NonceSize()
	if len(a.SealedKey) < n {
		return nil, errors.New("sealed CA key too short")
	}
	der, err := s.aead.Open(nil, a.SealedKey[:n], a.SealedKey[n:], nil)
	if err != nil {
		return nil, fmt.Errorf("opening the key of %s: %w", a.ARN, err)
	}
	defer clear(der)
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("reading the key of %s: %w", a.ARN, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the key of %s cannot sign", a.ARN)
	}
	return signer, nil
}

func newKey(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case "EC_prime256v1":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EC_secp384r1":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RSA_2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "RSA_3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "RSA_4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, invalidArgs("KeyAlgorithm %q is not one of RSA_2048, RSA_3072, RSA_4096, EC_prime256v1, EC_secp384r1.", algorithm)
}

func (s *Service) createCertificateAuthority(c *call) (any, error) {
	var in struct {
		CertificateAuthorityConfiguration json.RawMessage
		CertificateAuthorityType          string
		IdempotencyToken                  string
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	var conf struct {
		KeyAlgorithm     string
		SigningAlgorithm string
		Subject          subject
	}
	if len(in.CertificateAuthorityConfiguration) == 0 {
		return nil, invalidArgs("CertificateAuthorityConfiguration is required.")
	}
	if err := json.Unmarshal(in.CertificateAuthorityConfiguration, &conf); err != nil {
		return nil, invalidArgs("CertificateAuthorityConfiguration: %v", err)
	}
	switch in.CertificateAuthorityType {
	case "ROOT":
	case "SUBORDINATE":
		return nil, invalidArgs("The local cloud makes ROOT certificate authorities only.")
	default:
		return nil, invalidArgs("CertificateAuthorityType must be ROOT or SUBORDINATE.")
	}
	if conf.Subject == (subject{}) {
		return nil, invalidArgs("The certificate authority's Subject needs at least one field.")
	}
	key, err := newKey(conf.KeyAlgorithm)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	now := s.seconds()
	a := &authority{
		ARN:           "arn:aws:acm-pca:" + s.region + ":" + s.account + ":certificate-authority/" + newUUID(),
		Type:          in.CertificateAuthorityType,
		Configuration: in.CertificateAuthorityConfiguration,
		KeyAlgorithm:  conf.KeyAlgorithm,
		Subject:       conf.Subject,
		SealedKey:     s.seal(der),
		Status:        statusPending,
		Created:       now,
		Changed:       now,
	}
	clear(der)
	s.cas[a.ARN] = a
	return map[string]any{"CertificateAuthorityArn": a.ARN}, s.saveLocked()
}

func (s *Service) describe(a *authority) map[string]any {
	d := map[string]any{
		"Arn": a.ARN, "OwnerAccount": s.account, "Type": a.Type, "Status": a.Status,
		"CreatedAt": a.Created, "LastStateChangeAt": a.Changed,
		"CertificateAuthorityConfiguration": a.Configuration,
		"KeyStorageSecurityStandard":        "FIPS_140_2_LEVEL_3_OR_HIGHER",
		"UsageMode":                         "GENERAL_PURPOSE",
	}
	if cert, err := parseCert(a.CertPEM); err == nil {
		d["Serial"] = colonHex(cert.SerialNumber)
		d["NotBefore"] = float64(cert.NotBefore.Unix())
		d["NotAfter"] = float64(cert.NotAfter.Unix())
	}
	if a.Status == statusDeleted {
		d["RestorableUntil"] = a.RestorableTil
	}
	return d
}

func (s *Service) describeCertificateAuthority(c *call) (any, error) {
	a, err := s.requestedLocked(c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"CertificateAuthority": s.describe(a)}, nil
}

func (s *Service) listCertificateAuthorities(c *call) (any, error) {
	if err := c.authorize("*"); err != nil {
		return nil, err
	}
	list := []map[string]any{}
	for _, arn := range slices.Sorted(maps.Keys(s.cas)) {
		list = append(list, s.describe(s.cas[arn]))
	}
	return map[string]any{"CertificateAuthorities": list}, nil
}

func (s *Service) getCertificateAuthorityCsr(c *call) (any, error) {
	a, err := s.requestedLocked(c)
	if err != nil {
		return nil, err
	}
	if a.Status == statusDeleted {
		return nil, invalidState("The certificate authority %s is deleted.", a.ARN)
	}
	key, err := s.privateKey(a)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: a.Subject.name()}, key)
	if err != nil {
		return nil, fmt.Errorf("making the CSR of %s: %w", a.ARN, err)
	}
	return map[string]any{"Csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}, nil
}

// validity is the API's Validity: a period relative to now, or an absolute end.
type validity struct {
	Type  string
	Value int64
}

func (v *validity) end(now time.Time) (time.Time, error) {
	if v == nil {
		return time.Time{}, invalidArgs("Validity is required.")
	}
	if v.Value <= 0 {
		return time.Time{}, invalidArgs("Validity.Value must be positive.")
	}
	switch v.Type {
	case "END_DATE":
		// YYYYMMDDHHMMSS, as AWS takes it.
		t, err := time.Parse("20060102150405", fmt.Sprint(v.Value))
		if err != nil {
			return time.Time{}, invalidArgs("Validity.Value %d is not a YYYYMMDDHHMMSS date.", v.Value)
		}
		return t, nil
	case "ABSOLUTE":
		return time.Unix(v.Value, 0), nil
	case "DAYS":
		return now.AddDate(0, 0, int(v.Value)), nil
	case "MONTHS":
		return now.AddDate(0, int(v.Value), 0), nil
	case "YEARS":
		return now.AddDate(int(v.Value), 0, 0), nil
	}
	return time.Time{}, invalidArgs("Validity.Type must be END_DATE, ABSOLUTE, DAYS, MONTHS or YEARS.")
}

func (s *Service) issueCertificate(c *call) (any, error) {
	var in struct {
		CertificateAuthorityArn string
		Csr                     []byte
		SigningAlgorithm        string
		TemplateArn             string
		Validity                *validity
		IdempotencyToken        string
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	a, err := s.findLocked(c, in.CertificateAuthorityArn)
	if err != nil {
		return nil, err
	}
	if in.TemplateArn == "" {
		in.TemplateArn = TemplateEndEntity
	}
	root := in.TemplateArn == TemplateRootCA
	switch {
	case in.TemplateArn != TemplateRootCA && in.TemplateArn != TemplateEndEntity:
		return nil, invalidArgs("TemplateArn %s is not one the local cloud knows (%s, %s).", in.TemplateArn, TemplateRootCA, TemplateEndEntity)
	case root && a.Status != statusPending:
		return nil, invalidState("The certificate authority %s is %s: only a CA waiting for its certificate signs its own.", a.ARN, a.Status)
	case !root && a.Status != statusActive:
		return nil, invalidState("The certificate authority %s is %s, not ACTIVE.", a.ARN, a.Status)
	}
	block, _ := pem.Decode(in.Csr)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, awsapi.Errorf("MalformedCSRException", "The CSR is not a PEM CERTIFICATE REQUEST.")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, awsapi.Errorf("MalformedCSRException", "The CSR cannot be read: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, awsapi.Errorf("MalformedCSRException", "The CSR's signature does not verify: %v", err)
	}
	now := s.now()
	notAfter, err := in.Validity.end(now)
	if err != nil {
		return nil, err
	}
	if !notAfter.After(now) {
		return nil, invalidArgs("The validity ends in the past.")
	}
	key, err := s.privateKey(a)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      csr.Subject,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		SubjectKeyId: keyID(csr.PublicKey),
	}
	parent := tmpl
	if root {
		if !samePublicKey(csr.PublicKey, key.Public()) {
			return nil, awsapi.Errorf("MalformedCSRException", "A RootCACertificate/V1 certificate is for the CA's own CSR (GetCertificateAuthorityCsr).")
		}
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		if parent, err = parseCert(a.CertPEM); err != nil {
			return nil, fmt.Errorf("reading the certificate of %s: %w", a.ARN, err)
		}
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses, tmpl.EmailAddresses, tmpl.URIs = csr.DNSNames, csr.IPAddresses, csr.EmailAddresses, csr.URIs
		if notAfter.After(parent.NotAfter) {
			return nil, invalidArgs("The validity ends after the CA's certificate (%s).", parent.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, csr.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate with %s: %w", a.ARN, err)
	}
	arn := a.ARN + "/certificate/" + hex.EncodeToString(tmpl.SerialNumber.Bytes())
	l := leaf{CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
	if !root {
		l.ChainPEM = a.CertPEM
	}
	if a.Issued == nil {
		a.Issued = map[string]leaf{}
	}
	a.Issued[arn] = l
	return map[string]any{"CertificateArn": arn}, s.saveLocked()
}

func (s *Service) getCertificate(c *call) (any, error) {
	var in struct{ CertificateAuthorityArn, CertificateArn string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	a, err := s.findLocked(c, in.CertificateAuthorityArn)
	if err != nil {
		return nil, err
	}
	l, ok := a.Issued[in.CertificateArn]
	if !ok {
		return nil, awsapi.Errorf("ResourceNotFoundException", "Could not find certificate %s.", in.CertificateArn)
	}
	out := map[string]any{"Certificate": strings.TrimRight(l.CertPEM, "\n")}
	if l.ChainPEM != "" {
		out["CertificateChain"] = strings.TrimRight(l.ChainPEM, "\n")
	}
	return out, nil
}

func (s *Service) importCertificateAuthorityCertificate(c *call) (any, error) {
	var in struct {
		CertificateAuthorityArn string
		Certificate             []byte
		CertificateChain        []byte
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	a, err := s.findLocked(c, in.CertificateAuthorityArn)
	if err != nil {
		return nil, err
	}
	if a.Status != statusPending && a.Status != statusActive {
		return nil, invalidState("The certificate authority %s is %s.", a.ARN, a.Status)
	}
	cert, err := parseCert(string(in.Certificate))
	if err != nil {
		return nil, awsapi.Errorf("MalformedCertificateException", "The certificate cannot be read: %v", err)
	}
	key, err := s.privateKey(a)
	if err != nil {
		return nil, err
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, awsapi.Errorf("CertificateMismatchException", "The certificate is not for this certificate authority's key.")
	}
	if !cert.IsCA {
		return nil, awsapi.Errorf("MalformedCertificateException", "The certificate is not a CA certificate (basic constraints).")
	}
	if a.Type == "ROOT" {
		if err := cert.CheckSignatureFrom(cert); err != nil {
			return nil, awsapi.Errorf("InvalidRequestException", "A root CA's certificate must be self-signed: %v", err)
		}
	}
	a.CertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	a.ChainPEM = string(in.CertificateChain)
	a.Status, a.Changed = statusActive, s.seconds()
	return map[string]any{}, s.saveLocked()
}

func (s *Service) getCertificateAuthorityCertificate(c *call) (any, error) {
	a, err := s.requestedLocked(c)
	if err != nil {
		return nil, err
	}
	if a.CertPEM == "" || a.Status == statusDeleted {
		return nil, invalidState("The certificate authority %s is %s: it has no certificate to give.", a.ARN, a.Status)
	}
	out := map[string]any{"Certificate": strings.TrimRight(a.CertPEM, "\n")}
	if a.ChainPEM != "" {
		out["CertificateChain"] = strings.TrimRight(a.ChainPEM, "\n")
	}
	return out, nil
}

func (s *Service) updateCertificateAuthority(c *call) (any, error) {
	var in struct{ CertificateAuthorityArn, Status string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	a, err := s.findLocked(c, in.CertificateAuthorityArn)
	if err != nil {
		return nil, err
	}
	switch {
	case in.Status == "":
	case in.Status != statusActive && in.Status != statusDisabled:
		return nil, invalidArgs("Status must be ACTIVE or DISABLED.")
	case a.Status != statusActive && a.Status != statusDisabled:
		return nil, invalidState("The certificate authority %s is %s.", a.ARN, a.Status)
	default:
		a.Status, a.Changed = in.Status, s.seconds()
	}
	return map[string]any{}, s.saveLocked()
}

func (s *Service) deleteCertificateAuthority(c *call) (any, error) {
	var in struct {
		CertificateAuthorityArn     string
		PermanentDeletionTimeInDays int
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	a, err := s.findLocked(c, in.CertificateAuthorityArn)
	if err != nil {
		return nil, err
	}
	days := in.PermanentDeletionTimeInDays
	switch {
	case days == 0:
		days = 30
	case days < 7 || days > 30:
		return nil, invalidArgs("PermanentDeletionTimeInDays must be between 7 and 30.")
	}
	switch a.Status {
	case statusActive:
		return nil, invalidState("The certificate authority %s is ACTIVE: disable it (UpdateCertificateAuthority) before deleting it.", a.ARN)
	case statusDeleted:
		return nil, invalidState("The certificate authority %s is already deleted.", a.ARN)
	case statusPending:
		// AWS deletes a CA that never had a certificate at once.
		delete(s.cas, a.ARN)
		return map[string]any{}, s.saveLocked()
	}
	now := s.seconds()
	a.Status, a.Changed, a.RestorableTil = statusDeleted, now, now+float64(days*24*3600)
	return map[string]any{}, s.saveLocked()
}

func parseCert(text string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM CERTIFICATE")
	}
	return x509.ParseCertificate(block.Bytes)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// keyID is the subject key identifier of a public key (RFC 5280, method 1).
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

// newUUID is a CA's id, as AWS makes them.
func newUUID() string {
	h := awsapi.NewID(32)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-" + h[16:20] + "-" + h[20:]
}

// colonHex writes a serial number as AWS does: hex bytes separated by colons.
func colonHex(n *big.Int) string {
	b := n.Bytes()
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}
