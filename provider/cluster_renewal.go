package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

// Certificate renewal in place (docs/broker-security.md): a broker whose
// certificate is due gets a new key and certificate, sealed with KMS under
// its own node's encryption context, in its Secrets Manager secret
// (bootconfig.CertificateSecretName); its certificate companion applies it
// and the broker's listeners reload it, with no restart. The provider then
// reads the certificate the broker serves until it is the new one. A
// broker that does not serve it in time (an image without the companion, a
// user's instance profile that may not read the secret) is renewed as
// before, by a rolling replacement.

// deliveryWait bounds the wait for the brokers to serve their delivered
// certificates: a few of the companion's 30-second reads.
const deliveryWait = 2 * time.Minute

// secretsWriter is what delivery needs of Secrets Manager; *secretsmanager.Client has it.
type secretsWriter interface {
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	DeleteSecret(ctx context.Context, in *secretsmanager.DeleteSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DeleteSecretOutput, error)
}

// renewInPlace delivers new certificates to the brokers of cs.Reissue that
// run, waits until they serve them, and removes those from cs.Reissue; the
// others stay there, for the roll to replace. The pairs served go to
// cs.renewed, for Update to reseal those brokers' launch templates with.
// docs are the brokers' live boot documents (the port each serves its
// certificate on).
func (r *clusterResource) renewInPlace(ctx context.Context, cs *clusterSpec, o *fleet.Observed, docs map[int32]*bootconfig.Document) diag.Diagnostics {
	var diags diag.Diagnostics
	if cs.CA == nil || cs.seal == nil || len(cs.Reissue) == 0 {
		return diags
	}
	keyARN := cs.Storage.KMSKeyARN
	if keyARN == "" {
		keyARN = o.KeyARN
	}
	// The created roles may read their own secret from now on (a cluster
	// made by an earlier provider gets the statement here).
	if err := r.fleet().SyncRolePolicy(ctx, &cs.Spec, keyARN); err != nil {
		diags.AddWarning("Broker certificates will be renewed by replacement", "Giving the broker roles their certificate secrets: "+err.Error())
		return diags
	}
	want := map[int32]string{} // node id -> serial of the delivered certificate
	delivered := map[int32]*pki.Leaf{}
	addr := map[int32]string{}
	var failed []string
	for _, b := range o.Brokers {
		doc, ok := docs[b.NodeID]
		if !cs.Reissue[b.NodeID] || !ok || !b.HasLiveInstance() || b.PrivateIP == "" {
			continue
		}
		port := certificatePort(doc)
		if port == 0 {
			continue
		}
		leaf, err := r.deliverCertificate(ctx, cs, b)
		if err != nil {
			failed = append(failed, fmt.Sprintf("broker %d: %v", b.NodeID, err))
			continue
		}
		serial := leaf.Cert.SerialNumber.Text(16)
		want[b.NodeID], addr[b.NodeID], delivered[b.NodeID] = serial, endpoint(b.PrivateIP, port), leaf
		tflog.Info(ctx, "delivered a renewed certificate", map[string]any{"node_id": b.NodeID, "serial": serial})
	}
	served := waitServed(ctx, want, addr, deliveryWait)
	for id := range served {
		delete(cs.Reissue, id)
		if cs.renewed == nil {
			cs.renewed = map[int32]*pki.Leaf{}
		}
		cs.renewed[id] = delivered[id]
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if !served[id] {
			failed = append(failed, fmt.Sprintf("broker %d did not serve its delivered certificate within %s", id, deliveryWait))
		}
	}
	if len(served) > 0 {
		tflog.Info(ctx, "renewed broker certificates in place", map[string]any{"node_ids": slices.Sorted(maps.Keys(served))})
	}
	if len(failed) > 0 {
		diags.AddWarning("Some broker certificates are renewed by replacement",
			"These brokers could not take a renewed certificate in place and are replaced one at a time instead, gated on the cluster's health: "+
				strings.Join(failed, "; ")+".")
	}
	return diags
}

// deliverCertificate issues a broker a new certificate and puts it, sealed,
// into its secret; it returns the certificate and its key.
func (r *clusterResource) deliverCertificate(ctx context.Context, cs *clusterSpec, b fleet.Broker) (*pki.Leaf, error) {
	leaf, err := cs.CA.Issue(pki.Request{
		Subject:   pki.BrokerSubject(cs.ClusterID),
		Hosts:     brokerHosts(fleet.Node{PrivateIP: b.PrivateIP, PrivateDNSName: b.PrivateDNSName}),
		URIs:      brokerURIs(b.NodeID),
		NotBefore: cs.now,
		Validity:  cs.certificateValidity,
		Server:    true,
		Client:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate: %w", err)
	}
	env, err := cs.seal(b.NodeID, &bootconfig.Secrets{TLSPrivateKeyPEM: leaf.KeyPEM, TLSCertificatePEM: leaf.CertPEM})
	if err != nil {
		return nil, fmt.Errorf("sealing the certificate: %w", err)
	}
	value, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	if err := putCertificateSecret(ctx, r.data.aws.SecretsManager, cs.ClusterID, b.NodeID, string(value)); err != nil {
		return nil, err
	}
	return leaf, nil
}

// putCertificateSecret writes a broker's secret, creating it the first time.
func putCertificateSecret(ctx context.Context, sm secretsWriter, clusterID string, nodeID int32, value string) error {
	name := bootconfig.CertificateSecretName(clusterID, nodeID)
	_, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)})
	var notFound *smtypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		if err != nil {
			return fmt.Errorf("writing secret %s: %w", name, err)
		}
		return nil
	}
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		Description:  aws.String(fmt.Sprintf("The KMS-sealed TLS certificate of broker %d of Tributary cluster %s", nodeID, clusterID)),
		SecretString: aws.String(value),
		Tags:         []smtypes.Tag{{Key: aws.String(fleet.TagClusterID), Value: aws.String(clusterID)}},
	})
	if err != nil {
		return fmt.Errorf("creating secret %s: %w", name, err)
	}
	return nil
}

// deleteCertificateSecrets deletes the brokers' certificate secrets, at
// once (they hold only a sealed copy of what the brokers had); a broker
// that never had one is skipped.
func deleteCertificateSecrets(ctx context.Context, sm secretsWriter, clusterID string, nodeIDs []int32) error {
	var errs []error
	for _, id := range nodeIDs {
		name := bootconfig.CertificateSecretName(clusterID, id)
		_, err := sm.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)})
		var notFound *smtypes.ResourceNotFoundException
		if err != nil && !errors.As(err, &notFound) {
			errs = append(errs, fmt.Errorf("deleting secret %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// waitServed reads the certificate each broker serves at addr until it is
// the one with the wanted serial, or until wait passed; it returns the
// brokers that serve theirs.
func waitServed(ctx context.Context, want map[int32]string, addr map[int32]string, wait time.Duration) map[int32]bool {
	served := map[int32]bool{}
	deadline := time.Now().Add(wait)
	for len(served) < len(want) {
		for id, serial := range want {
			if served[id] {
				continue
			}
			if c, err := servedCertificate(ctx, addr[id]); err == nil && c.SerialNumber.Text(16) == serial {
				served[id] = true
			}
		}
		if len(served) == len(want) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return served
		case <-time.After(2 * time.Second):
		}
	}
	return served
}
