package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

// The provider's own identity on a cluster whose clients must authenticate
// and IAM is off: a SCRAM login when SASL/SCRAM is on, a client certificate
// of the cluster CA when mutual TLS is on. Both are super users. The
// password is made once and kept only in the resource's private state; the
// brokers get its salted form (the broker secrets envelope), and every
// boot document carries the login sealed for the provider alone
// (ProviderSecrets, under an encryption context that names no node, which
// no broker role may decrypt), so a topic or ACL resource that knows only
// the cluster id reads it back with the provider's own KMS rights.

// adminUsername is the provider's SCRAM user; adminMechanism its mechanism.
const (
	adminUsername   = "tributary-admin"
	adminMechanism  = scram.SHA512
	adminIterations = 8192
)

// privateAdminKey is the private-state key of the admin password.
const privateAdminKey = "admin_scram"

type storedAdmin struct {
	Password string `json:"password"`
}

// adminPassword returns the provider's SCRAM password for the cluster: the
// one made earlier (private state), else a new random one, which is
// written to the private state.
func adminPassword(ctx context.Context, from privateState, to privateStateWriter) (string, diag.Diagnostics) {
	var diags diag.Diagnostics
	if from != nil {
		raw, d := from.GetKey(ctx, privateAdminKey)
		diags.Append(d...)
		if len(raw) > 0 {
			var st storedAdmin
			if err := json.Unmarshal(raw, &st); err != nil || st.Password == "" {
				diags.AddError("Reading the provider's SCRAM login from the state", fmt.Sprintf("The private state's login is not readable: %v", err))
				return "", diags
			}
			diags.Append(to.SetKey(ctx, privateAdminKey, raw)...)
			return st.Password, diags
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		diags.AddError("Making the provider's SCRAM login", err.Error())
		return "", diags
	}
	password := base64.RawURLEncoding.EncodeToString(b)
	raw, err := json.Marshal(storedAdmin{Password: password})
	if err != nil {
		diags.AddError("Making the provider's SCRAM login", err.Error())
		return "", diags
	}
	diags.Append(to.SetKey(ctx, privateAdminKey, raw)...)
	return password, diags
}

// adminIdentity is what secure settles of the provider's own identity.
type adminIdentity struct {
	// Provider is the plaintext of every document's ProviderSecrets;
	// SCRAM the salted credential the brokers bootstrap.
	Provider bootconfig.ProviderSecrets
	SCRAM    *bootconfig.SCRAMCredential
}

// makeAdmin settles the provider's own identity for the settings: a SCRAM
// login when SCRAM is on, a client certificate of ca when mutual TLS is on,
// and their principals as super users. Nil when neither is on.
func makeAdmin(ctx context.Context, cs *clusterSpec, from privateState, to privateStateWriter) (*adminIdentity, []string, diag.Diagnostics) {
	var diags diag.Diagnostics
	if !cs.Security.SCRAM && !cs.Security.mutualTLS() {
		return nil, nil, nil
	}
	a := &adminIdentity{}
	var principals []string
	if cs.Security.SCRAM {
		password, d := adminPassword(ctx, from, to)
		diags.Append(d...)
		if diags.HasError() {
			return nil, nil, diags
		}
		c, err := scram.NewCredential(adminMechanism, password, adminIterations)
		if err != nil {
			diags.AddError("Salting the provider's SCRAM login", err.Error())
			return nil, nil, diags
		}
		a.Provider.SCRAMUsername, a.Provider.SCRAMPassword = adminUsername, password
		a.SCRAM = &bootconfig.SCRAMCredential{Username: adminUsername, Mechanism: adminMechanism.String(), Salt: c.Salt,
			Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
		principals = append(principals, "User:"+adminUsername)
	}
	if cs.Security.mutualTLS() && cs.CA != nil {
		leaf, err := cs.CA.Issue(pki.Request{Subject: pki.AdminSubject(cs.ClusterID), NotBefore: cs.now, Validity: cs.certificateValidity, Client: true})
		if err != nil {
			diags.AddError("Issuing the provider's client certificate", err.Error())
			return nil, nil, diags
		}
		a.Provider.ClientCertificatePEM, a.Provider.ClientKeyPEM = leaf.CertPEM, leaf.KeyPEM
		p, err := pki.Principal(pki.AdminSubject(cs.ClusterID))
		if err != nil {
			diags.AddError("Naming the provider's principal", err.Error())
			return nil, nil, diags
		}
		principals = append(principals, p)
	}
	return a, principals, diags
}

// kmsDecrypter is the one KMS call reading the provider's secrets makes.
type kmsDecrypter interface {
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// openProviderSecrets decrypts a boot document's ProviderSecrets with the
// provider's own KMS rights (nil when the document has none).
func openProviderSecrets(ctx context.Context, client kmsDecrypter, doc *bootconfig.Document) (*bootconfig.ProviderSecrets, error) {
	env := doc.ProviderSecrets
	if env == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: env.Ciphertext, KeyId: aws.String(env.KeyID), EncryptionContext: env.EncryptionContext})
	if err != nil {
		return nil, fmt.Errorf("decrypting the provider's login to cluster %s (kms:Decrypt on %s): %w", doc.ClusterID, env.KeyID, err)
	}
	var s bootconfig.ProviderSecrets
	err = json.Unmarshal(out.Plaintext, &s)
	clear(out.Plaintext)
	if err != nil {
		return nil, fmt.Errorf("reading the provider's login to cluster %s: %w", doc.ClusterID, err)
	}
	return &s, nil
}

// lacksLogin reports whether a broker's group launches a boot document
// without the provider's login (a cluster of an earlier provider).
func lacksLogin(o *fleet.Observed) bool {
	for _, b := range o.Brokers {
		if b.Launch == nil || len(b.Launch.UserData) == 0 {
			continue
		}
		if doc, err := bootconfig.Decode(b.Launch.UserData); err == nil && doc.ProviderSecrets == nil {
			return true
		}
	}
	return false
}
