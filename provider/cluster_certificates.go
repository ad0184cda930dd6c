package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

// defaultCertificateValidity is how long a broker certificate is valid
// unless certificate_validity says otherwise: a year, as ACM's private
// certificates are by default.
const defaultCertificateValidity = "8760h"

func certificateValiditySchema() schema.StringAttribute {
	return schema.StringAttribute{
		MarkdownDescription: "How long each broker certificate the provider issues is valid: a duration (`8760h`, the default: a year) or a " +
			"number of days (`395d`), at least a minute. A certificate is issued with each broker's boot document (the create, every roll). " +
			"A refresh reads the certificate every broker serves; once one has passed two thirds of its validity, the plan shows an update " +
			"that renews it in place: the provider puts a new key and certificate from the cluster CA, sealed with KMS for that broker alone, " +
			"into the broker's Secrets Manager secret, the broker applies it without a restart, and the apply waits until the broker serves it. " +
			"A broker that does not take it (an older image, an `instance_profile` that may not read the secret) is replaced instead, one at " +
			"a time, gated on the brokers' health like any roll. So a cluster applied at least once in each third of the validity never serves " +
			"an expired certificate. Changing the setting alone renews nothing: it applies to the certificates issued next.",
		Optional: true,
		Computed: true,
		Default:  stringdefault.StaticString(defaultCertificateValidity),
	}
}

// certificateValidity reads certificate_validity (its default when null or
// unknown).
func (m *clusterModel) certificateValidity() (time.Duration, error) {
	v := defaultCertificateValidity
	if !m.CertificateValidity.IsNull() && !m.CertificateValidity.IsUnknown() {
		v = m.CertificateValidity.ValueString()
	}
	return pki.ParseValidity(v)
}

// tlsPort is the port on which a broker's boot document serves its
// certificate: a client TLS listener, else the in-cluster one; 0 when none.
func certificatePort(doc *bootconfig.Document) int {
	for _, l := range doc.Listeners {
		if l.SecurityProtocol == "SSL" || l.SecurityProtocol == "SASL_SSL" {
			return l.Port
		}
	}
	if doc.InClusterTLS {
		if doc.Ports.InterBroker != 0 {
			return doc.Ports.InterBroker
		}
		return bootconfig.DefaultInterBrokerPort
	}
	return 0
}

// servedCertificate returns the certificate a TLS server at addr presents,
// read from the handshake. It is only dated, never trusted: it counts only
// if the CA signed it, which the caller checks.
func servedCertificate(ctx context.Context, addr string) (*x509.Certificate, error) {
	var served *x509.Certificate
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 3 * time.Second},
		Config: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The chain is checked against the cluster CA by the caller;
			// an expired certificate must still be read to be renewed.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					served = cs.PeerCertificates[0]
				}
				return nil
			},
		},
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if served != nil {
		return served, nil
	}
	if err == nil {
		err = errors.New("no certificate presented")
	}
	return nil, err
}

// certificateStatus is what the brokers' certificates need.
type certificateStatus struct {
	// Due are the brokers whose certificate has passed two thirds of its
	// validity (or expired).
	Due []int32
	// Earliest is the earliest renewal time among the certificates read
	// (zero when none was read).
	Earliest time.Time
	// Unread names the brokers whose certificate could not be read.
	Unread []string
}

// brokerCertificates reads the certificate each broker with a live
// instance serves (through the port its boot document names) and says
// which are due for renewal at now.
func brokerCertificates(ctx context.Context, brokers []fleet.Broker, docs map[int32]*bootconfig.Document, now time.Time) certificateStatus {
	var st certificateStatus
	for _, b := range brokers {
		doc, ok := docs[b.NodeID]
		if !ok || doc.TLS == nil || b.PrivateIP == "" {
			continue
		}
		port := certificatePort(doc)
		if port == 0 {
			continue
		}
		cas, err := pki.ParseCertificates(doc.TLS.CertificateAuthorityPEM)
		if err != nil || len(cas) == 0 {
			st.Unread = append(st.Unread, fmt.Sprintf("broker %d: its boot document's CA: %v", b.NodeID, err))
			continue
		}
		cert, err := servedCertificate(ctx, endpoint(b.PrivateIP, port))
		if err != nil {
			st.Unread = append(st.Unread, fmt.Sprintf("broker %d: %v", b.NodeID, err))
			continue
		}
		if !slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return cert.CheckSignatureFrom(ca) == nil }) {
			st.Unread = append(st.Unread, fmt.Sprintf("broker %d serves a certificate the cluster CA did not sign", b.NodeID))
			continue
		}
		renewAt := pki.CertificateRenewalTime(cert)
		if st.Earliest.IsZero() || renewAt.Before(st.Earliest) {
			st.Earliest = renewAt
		}
		if !now.Before(renewAt) {
			st.Due = append(st.Due, b.NodeID)
		}
	}
	return st
}

// renewalWarning says which brokers the apply gives new certificates.
func renewalWarning(due []int32) (summary, detail string) {
	ids := make([]string, 0, len(due))
	for _, id := range due {
		ids = append(ids, fmt.Sprint(id))
	}
	return "Broker certificates will be renewed",
		fmt.Sprintf("The certificates of brokers %s have passed two thirds of their validity. This apply gives those brokers new certificates "+
			"from the cluster CA (valid for certificate_validity) in place, without restarting them; a broker that cannot take its certificate "+
			"in place is replaced instead, one at a time, gated on the cluster's health.", strings.Join(ids, ", "))
}

// certificateValidityValue is certificate_validity for a model whose value
// is not set (an import).
func certificateValidityValue(v types.String) types.String {
	if v.IsNull() || v.IsUnknown() {
		return types.StringValue(defaultCertificateValidity)
	}
	return v
}

// certificatesDue reads the certificate every broker serves and returns the
// brokers whose certificates are due for renewal. Certificates are read
// from the brokers themselves, so only where the provider reaches them
// (wait_for_brokers); one that cannot be read is checked again at the next
// refresh.
func (r *clusterResource) certificatesDue(ctx context.Context, o *fleet.Observed) []int32 {
	docs, err := r.data.liveDocuments(ctx, o.Brokers)
	if err != nil {
		tflog.Warn(ctx, "could not read every broker's boot document to check its certificate", map[string]any{"error": err.Error()})
	}
	if len(docs) == 0 {
		return nil
	}
	certs := brokerCertificates(ctx, o.Brokers, docs, time.Now())
	if len(certs.Unread) > 0 {
		tflog.Warn(ctx, "could not read every broker's certificate", map[string]any{"brokers": certs.Unread})
	}
	if !certs.Earliest.IsZero() {
		tflog.Debug(ctx, "broker certificates", map[string]any{"earliest_renewal": certs.Earliest.UTC().Format(time.RFC3339), "due": certs.Due})
	}
	return certs.Due
}
