package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

// fakeKMS seals and opens as KMS does for these tests: a ciphertext opens
// only under the encryption context it was sealed with, and refuse makes
// every Decrypt fail as a role without kms:Decrypt would.
type fakeKMS struct {
	sealed   map[string]fakeSealed
	decrypts int
	refuse   bool
}

type fakeSealed struct {
	plain  []byte
	encCtx map[string]string
}

func (f *fakeKMS) Encrypt(_ context.Context, in *kms.EncryptInput, _ ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	if f.sealed == nil {
		f.sealed = map[string]fakeSealed{}
	}
	blob := fmt.Sprintf("blob-%d", len(f.sealed))
	f.sealed[blob] = fakeSealed{plain: append([]byte(nil), in.Plaintext...), encCtx: maps.Clone(in.EncryptionContext)}
	return &kms.EncryptOutput{CiphertextBlob: []byte(blob), KeyId: aws.String("arn:aws:kms:us-east-1:000000000000:key/k")}, nil
}

func (f *fakeKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.decrypts++
	s, ok := f.sealed[string(in.CiphertextBlob)]
	switch {
	case f.refuse:
		return nil, errors.New("AccessDeniedException: not allowed")
	case !ok || !maps.Equal(s.encCtx, in.EncryptionContext):
		return nil, errors.New("InvalidCiphertextException")
	}
	return &kms.DecryptOutput{Plaintext: append([]byte(nil), s.plain...)}, nil
}

// mapPrivate is a private state in memory.
type mapPrivate map[string][]byte

func (p mapPrivate) GetKey(_ context.Context, key string) ([]byte, diag.Diagnostics) {
	return p[key], nil
}

func (p mapPrivate) SetKey(_ context.Context, key string, value []byte) diag.Diagnostics {
	p[key] = value
	return nil
}

// sealedCluster renders the boot documents of three brokers as an apply
// does (clusterSpec.userData with the provider's secrets sealed under the
// provider's encryption context), and the state an import reads from them.
type sealedCluster struct {
	cs    *clusterSpec
	kms   *fakeKMS
	nodes []fleet.Node
}

func newSealedCluster(t *testing.T, sec securitySettings) *sealedCluster {
	t.Helper()
	cs := &clusterSpec{EnhancedMonitoring: "DEFAULT"}
	cs.ClusterID, cs.Name, cs.MetricsNamespace = "tc-0123456789abcdef", "orders", "Tributary/Kafka"
	cs.Security = sec
	cs.Listeners = sec.listeners()
	cs.now, cs.certificateValidity = time.Now(), 90*24*time.Hour
	if sec.UserCACert != "" {
		ca, err := pki.ParseCA(sec.UserCACert, sec.UserCAKey, cs.now)
		if err != nil {
			t.Fatal(err)
		}
		cs.CA = ca
	} else {
		ca, err := pki.NewCA(cs.Name, cs.ClusterID, cs.now)
		if err != nil {
			t.Fatal(err)
		}
		cs.CA = ca
	}
	if sec.SCRAM {
		cs.admin = &adminIdentity{Provider: bootconfig.ProviderSecrets{SCRAMUsername: adminUsername, SCRAMPassword: "the-admin-password"}}
	}
	c := &sealedCluster{cs: cs, kms: &fakeKMS{}, nodes: []fleet.Node{
		{NodeID: 1, AvailabilityZone: "a", PrivateIP: "127.1.0.10", VolumeID: "vol-00000000000000001"},
		{NodeID: 2, AvailabilityZone: "b", PrivateIP: "127.1.1.10", VolumeID: "vol-00000000000000002"},
		{NodeID: 3, AvailabilityZone: "c", PrivateIP: "127.1.2.10", VolumeID: "vol-00000000000000003"},
	}}
	c.seal(t, cs.providerSecrets())
	cs.seal = func(nodeID int32, s *bootconfig.Secrets) (*bootconfig.Envelope, error) {
		return sealSecrets(context.Background(), c.kms, "k", bootconfig.EncryptionContext(cs.ClusterID, nodeID), s)
	}
	return c
}

// seal makes the spec seal plain as its ProviderSecrets (nil: none), as
// secure does.
func (c *sealedCluster) seal(t *testing.T, plain *bootconfig.ProviderSecrets) {
	t.Helper()
	c.cs.sealProvider = nil
	if plain == nil {
		return
	}
	env, err := sealSecrets(context.Background(), c.kms, "k", bootconfig.ProviderEncryptionContext(c.cs.ClusterID), plain)
	if err != nil {
		t.Fatal(err)
	}
	c.cs.sealProvider = func() (*bootconfig.Envelope, error) { return env, nil }
}

// observed is the fleet as Observe sees it, each broker launching its
// rendered user data; only lists the brokers whose documents are given.
func (c *sealedCluster) observed(t *testing.T, userData map[int32][]byte) *fleet.Observed {
	t.Helper()
	o := &fleet.Observed{}
	for _, n := range c.nodes {
		if ud, ok := userData[n.NodeID]; ok {
			o.Brokers = append(o.Brokers, fleet.Broker{NodeID: n.NodeID, Launch: &fleet.LaunchSettings{UserData: ud}})
		}
	}
	return o
}

func (c *sealedCluster) render(t *testing.T, nodeIDs ...int32) map[int32][]byte {
	t.Helper()
	out := map[int32][]byte{}
	for _, id := range nodeIDs {
		ud, err := c.cs.userData(c.nodes[id-1], c.nodes)
		if err != nil {
			t.Fatal(err)
		}
		for _, clear := range []string{"PRIVATE KEY", "ca_private_key_pem", "the-admin-password"} {
			if strings.Contains(string(ud), clear) {
				t.Fatalf("broker %d's user data holds %q in clear", id, clear)
			}
		}
		out[id] = ud
	}
	return out
}

// importedState is the state an import reads from a document.
func importedState(t *testing.T, ud []byte) *clusterModel {
	t.Helper()
	doc, err := bootconfig.Decode(ud)
	if err != nil {
		t.Fatal(err)
	}
	m := &clusterModel{CertificateAuthorityPEM: types.StringValue(documentCA(doc)), ClusterID: types.StringValue(doc.ClusterID)}
	if d := securityFromDocument(doc, m); d.HasError() {
		t.Fatal(d)
	}
	return m
}

// TestImportedStateSignsWithTheSealedCA: the brokers' documents carry the
// CA the provider made, sealed for the provider; a state that imported the
// cluster (an empty private state) gets it from them on refresh, so its
// update signs with the brokers' own CA instead of being refused (or making
// a new one), and gets the provider's SCRAM password the brokers know.
func TestImportedStateSignsWithTheSealedCA(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		sec  securitySettings
	}{
		{"TLS, unauthenticated", securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true}},
		{"TLS with SCRAM", securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, SCRAM: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newSealedCluster(t, tt.sec)
			ud := c.render(t, 1, 2, 3)
			state := importedState(t, ud[1])
			private := mapPrivate{}
			if d := refuseUpdateWithoutCA(ctx, state, state, private); !d.HasError() {
				t.Fatal("an update from a state without the CA was not refused before the refresh")
			}
			if d := restoreProviderSecrets(ctx, c.kms, state, c.observed(t, ud), private); d.HasError() || d.WarningsCount() > 0 {
				t.Fatalf("restoring: %v", d)
			}
			if c.kms.decrypts != 1 {
				t.Errorf("%d decrypts for three documents sharing one envelope, want 1", c.kms.decrypts)
			}
			if d := refuseUpdateWithoutCA(ctx, state, state, private); d.HasError() {
				t.Fatalf("the update is still refused after the refresh: %v", d)
			}
			sec, _ := state.security(ctx)
			ca, d := clusterCA(ctx, sec, c.cs.Name, c.cs.ClusterID, private, private, time.Now())
			if d.HasError() || !ca.Cert.Equal(c.cs.CA.Cert) || ca.KeyPEM != c.cs.CA.KeyPEM {
				t.Fatalf("the update signs with another CA than the brokers' (%v)", d)
			}
			got, d := adminPassword(ctx, private, private)
			switch {
			case d.HasError():
				t.Fatal(d)
			case tt.sec.SCRAM && got != "the-admin-password":
				t.Fatalf("the update's SCRAM login is %q, not the one the brokers know", got)
			}
			// A second refresh has nothing to restore: no KMS call.
			restoreProviderSecrets(ctx, c.kms, state, c.observed(t, ud), private)
			if c.kms.decrypts != 1 {
				t.Errorf("a refresh of a state that has the CA decrypted again")
			}
		})
	}
}

// TestClusterOfAnEarlierProviderStaysRefused: documents whose sealed
// secrets hold no CA (an earlier provider's) leave the imported state
// without one, and its update refused with the message that says why,
// until a document carrying the CA is launched (here, a broker added by
// the state that created the cluster).
func TestClusterOfAnEarlierProviderStaysRefused(t *testing.T) {
	ctx := context.Background()
	c := newSealedCluster(t, securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, SCRAM: true})
	c.seal(t, &c.cs.admin.Provider) // an earlier provider sealed only the login
	ud := c.render(t, 1, 2)
	state := importedState(t, ud[1])
	private := mapPrivate{}
	if d := restoreProviderSecrets(ctx, c.kms, state, c.observed(t, ud), private); d.HasError() {
		t.Fatal(d)
	}
	if _, ok := private[privateCAKey]; ok {
		t.Fatal("a CA was restored from documents that hold none")
	}
	if string(private[privateAdminKey]) == "" {
		t.Error("the login the documents hold was not restored")
	}
	d := refuseUpdateWithoutCA(ctx, state, state, private)
	if !d.HasError() || !strings.Contains(d.Errors()[0].Summary(), "The cluster's CA is not in this state") {
		t.Fatalf("refusal: %v", d)
	}

	c.seal(t, c.cs.providerSecrets())
	for id, u := range c.render(t, 3) {
		ud[id] = u
	}
	if d := restoreProviderSecrets(ctx, c.kms, state, c.observed(t, ud), private); d.HasError() {
		t.Fatal(d)
	}
	if d := refuseUpdateWithoutCA(ctx, state, state, private); d.HasError() {
		t.Fatalf("still refused once broker 3 carries the sealed CA: %v", d)
	}
}

// TestLackingSealedCAFindsEarlierProvidersDocuments: of brokers launched
// with the CA sealed for the provider (1), with an envelope holding only
// the login (2, an earlier provider's) and with no envelope (3, one older
// still), Update reseals 2 and 3; each envelope is opened once. Once they
// launch documents rendered again, an imported state restores the CA from
// them and its update is no longer refused. A broker whose envelope cannot
// be opened is left alone; a user's CA is never resealed.
func TestLackingSealedCAFindsEarlierProvidersDocuments(t *testing.T) {
	ctx := context.Background()
	c := newSealedCluster(t, securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, SCRAM: true})
	ud := c.render(t, 1)
	c.seal(t, &c.cs.admin.Provider)
	maps.Copy(ud, c.render(t, 2))
	c.seal(t, nil)
	maps.Copy(ud, c.render(t, 3))
	c.seal(t, c.cs.providerSecrets())
	o := c.observed(t, ud)
	if got := lackingSealedCA(ctx, c.kms, c.cs, o); !maps.Equal(got, map[int32]bool{2: true, 3: true}) {
		t.Fatalf("lackingSealedCA = %v, want brokers 2 and 3", got)
	}
	if c.kms.decrypts != 2 {
		t.Errorf("%d decrypts for two envelopes", c.kms.decrypts)
	}
	c.kms.refuse = true
	if got := lackingSealedCA(ctx, c.kms, c.cs, o); !maps.Equal(got, map[int32]bool{3: true}) {
		t.Errorf("lackingSealedCA with kms:Decrypt refused = %v, want broker 3 only (its document has no envelope)", got)
	}
	c.kms.refuse = false

	// Updated: brokers 2 and 3 launch their documents rendered again.
	maps.Copy(ud, c.render(t, 2, 3))
	if got := lackingSealedCA(ctx, c.kms, c.cs, c.observed(t, ud)); len(got) != 0 {
		t.Fatalf("lackingSealedCA after the reseal = %v, want none", got)
	}
	state := importedState(t, ud[3])
	private := mapPrivate{}
	if d := restoreProviderSecrets(ctx, c.kms, state, c.observed(t, map[int32][]byte{3: ud[3]}), private); d.HasError() || d.WarningsCount() > 0 {
		t.Fatalf("restoring from a resealed document: %v", d)
	}
	if d := refuseUpdateWithoutCA(ctx, state, state, private); d.HasError() {
		t.Fatalf("an imported state's update is refused after the reseal: %v", d)
	}

	own, err := pki.NewCA("mine", "x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u := newSealedCluster(t, securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true, UserCACert: own.CertPEM, UserCAKey: own.KeyPEM})
	if got := lackingSealedCA(ctx, u.kms, u.cs, u.observed(t, u.render(t, 1, 2, 3))); got != nil {
		t.Errorf("lackingSealedCA with a user's CA = %v, want none", got)
	}
}

// TestSealedCAUnreadable: a refused kms:Decrypt is a warning of the
// refresh, the state stays without the CA and the update refused; a user's
// own CA (tls_certificate_authority) is never sealed.
func TestSealedCAUnreadable(t *testing.T) {
	ctx := context.Background()
	c := newSealedCluster(t, securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true})
	ud := c.render(t, 1, 2, 3)
	state := importedState(t, ud[1])
	private := mapPrivate{}
	c.kms.refuse = true
	d := restoreProviderSecrets(ctx, c.kms, state, c.observed(t, ud), private)
	if d.HasError() || d.WarningsCount() != 1 || !strings.Contains(d.Warnings()[0].Detail(), "AccessDeniedException") {
		t.Fatalf("refused decrypt: %v, want one warning naming the refusal", d)
	}
	if len(private) != 0 || !refuseUpdateWithoutCA(ctx, state, state, private).HasError() {
		t.Fatal("the update of a state without the CA is not refused")
	}

	own, err := pki.NewCA("mine", "x", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	u := newSealedCluster(t, securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true, UserCACert: own.CertPEM, UserCAKey: own.KeyPEM})
	if u.cs.providerSecrets() != nil || u.cs.sealProvider != nil {
		t.Fatal("a user's CA is sealed into the boot documents")
	}
	doc, err := bootconfig.Decode(u.render(t, 1)[1])
	if err != nil || doc.ProviderSecrets != nil {
		t.Fatalf("document with a user's CA: provider secrets %v (%v)", doc.ProviderSecrets, err)
	}
}

// TestDocumentLoginOnlyWhenAListenerTakesIt: the envelope of a cluster
// whose clients need no login holds only the CA, which connecting does not
// use: no listener takes a login, so no KMS call is made for it.
func TestDocumentLoginOnlyWhenAListenerTakesIt(t *testing.T) {
	for _, tt := range []struct {
		name string
		sec  securitySettings
		want bool
	}{
		{"TLS, unauthenticated", securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true}, false},
		{"plaintext", securitySettings{ClientBroker: clientBrokerPlaintext, Unauthenticated: true}, false},
		{"SCRAM", securitySettings{ClientBroker: clientBrokerTLS, SCRAM: true}, true},
		{"mutual TLS", securitySettings{ClientBroker: clientBrokerTLS, ClientCAs: []string{"x"}}, true},
		{"mutual TLS, unauthenticated too", securitySettings{ClientBroker: clientBrokerTLS, ClientCAs: []string{"x"}, Unauthenticated: true}, true},
	} {
		if got := needsLogin(tt.sec.listeners()); got != tt.want {
			t.Errorf("%s: needsLogin = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestRenderUsesTheRenewedPair: a broker renewed in place (clusterSpec.renewed)
// has its boot document rendered with the pair it was delivered and serves,
// so the template resealed after the renewal holds that certificate and
// key; a broker not renewed gets a certificate issued for the render.
func TestRenderUsesTheRenewedPair(t *testing.T) {
	c := newSealedCluster(t, securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true})
	delivered, err := c.cs.CA.Issue(pki.Request{
		Subject: pki.BrokerSubject(c.cs.ClusterID), Hosts: brokerHosts(c.nodes[1]), URIs: brokerURIs(2),
		NotBefore: c.cs.now, Validity: c.cs.certificateValidity, Server: true, Client: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.cs.renewed = map[int32]*pki.Leaf{2: delivered}
	ud := c.render(t, 1, 2)
	secrets := func(id int32) *bootconfig.Secrets {
		t.Helper()
		doc, err := bootconfig.Decode(ud[id])
		if err != nil {
			t.Fatal(err)
		}
		if doc.Secrets == nil {
			t.Fatalf("broker %d's document has no sealed secrets", id)
		}
		out, err := c.kms.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: doc.Secrets.Ciphertext, EncryptionContext: doc.Secrets.EncryptionContext})
		if err != nil {
			t.Fatal(err)
		}
		var s bootconfig.Secrets
		if err := json.Unmarshal(out.Plaintext, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	if s := secrets(2); s.TLSCertificatePEM != delivered.CertPEM || s.TLSPrivateKeyPEM != delivered.KeyPEM {
		t.Error("broker 2's document does not hold the pair it was delivered")
	}
	if s := secrets(1); s.TLSCertificatePEM == "" || s.TLSCertificatePEM == delivered.CertPEM {
		t.Error("broker 1's document does not hold a certificate of its own")
	}
}
