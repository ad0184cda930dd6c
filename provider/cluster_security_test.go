package provider

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/broker/security/tlsconf"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

func TestSecurityListeners(t *testing.T) {
	ca, err := pki.NewCA("c", "tc-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    securitySettings
		want string // name:port:protocol:client_auth, joined
	}{
		{"MSK's default: TLS, unauthenticated", securitySettings{ClientBroker: "TLS", InCluster: true, Unauthenticated: true},
			"CLIENT_SECURE:9094:SSL:"},
		{"plaintext", securitySettings{ClientBroker: "PLAINTEXT", Unauthenticated: true}, "CLIENT:9092:PLAINTEXT:"},
		{"TLS_PLAINTEXT", securitySettings{ClientBroker: "TLS_PLAINTEXT", Unauthenticated: true},
			"CLIENT:9092:PLAINTEXT: CLIENT_SECURE:9094:SSL:"},
		{"IAM only", securitySettings{ClientBroker: "TLS", IAM: true}, "CLIENT_IAM:9098:SASL_SSL:"},
		{"IAM and SCRAM", securitySettings{ClientBroker: "TLS", IAM: true, SCRAM: true},
			"CLIENT_SASL_SCRAM:9096:SASL_SSL: CLIENT_IAM:9098:SASL_SSL:"},
		{"mutual TLS", securitySettings{ClientBroker: "TLS", IAM: true, ClientCAs: []string{ca.CertPEM}},
			"CLIENT_SECURE:9094:SSL:required CLIENT_IAM:9098:SASL_SSL:"},
		{"mutual TLS beside unauthenticated", securitySettings{ClientBroker: "TLS", Unauthenticated: true, IAM: true, ClientCAs: []string{ca.CertPEM}},
			"CLIENT_SECURE:9094:SSL:requested CLIENT_IAM:9098:SASL_SSL:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, l := range tt.s.listeners() {
				got = append(got, l.Name+":"+strconv.Itoa(l.Port)+":"+l.SecurityProtocol+":"+l.ClientAuth)
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("listeners = %q, want %q", strings.Join(got, " "), tt.want)
			}
			if err := tt.s.validate(time.Now()); err.HasError() {
				t.Fatalf("a served configuration is refused: %v", err)
			}
		})
	}
}

func TestSecurityValidate(t *testing.T) {
	tests := []struct {
		name string
		s    securitySettings
		want string
	}{
		{"SASL over plaintext", securitySettings{ClientBroker: "PLAINTEXT", IAM: true}, "Authentication needs TLS"},
		{"nobody can connect", securitySettings{ClientBroker: "TLS"}, "No way for clients to connect"},
		{"plaintext beside authentication", securitySettings{ClientBroker: "TLS_PLAINTEXT", IAM: true}, "Plaintext clients cannot authenticate"},
		{"SCRAM over plaintext", securitySettings{ClientBroker: "PLAINTEXT", SCRAM: true}, "Authentication needs TLS"},
		{"a Private CA ARN that is not one", securitySettings{ClientBroker: "TLS", IAM: true, ClientCAARNs: []string{"arn:aws:acm-pca:x"}}, "Invalid client CA ARN"},
		{"a Private CA ARN of a certificate", securitySettings{ClientBroker: "TLS", ClientCAARNs: []string{
			"arn:aws:acm-pca:us-east-1:000000000000:certificate-authority/0b1c/certificate/99"}}, "Invalid client CA ARN"},
		{"an ACM certificate ARN", securitySettings{ClientBroker: "TLS", ClientCAARNs: []string{
			"arn:aws:acm:us-east-1:000000000000:certificate/0b1c"}}, "Invalid client CA ARN"},
		{"a client CA that is not PEM", securitySettings{ClientBroker: "TLS", IAM: true, ClientCAs: []string{"hello"}}, "Invalid client CA"},
		{"a CA without its key", securitySettings{ClientBroker: "TLS", Unauthenticated: true, UserCACert: "x"}, "Incomplete CA"},
		{"a CA that is not one", securitySettings{ClientBroker: "TLS", Unauthenticated: true, UserCACert: "x", UserCAKey: "y"}, "Invalid CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := tt.s.validate(time.Now())
			var got []string
			for _, d := range diags.Errors() {
				got = append(got, d.Summary())
			}
			if !strings.Contains(strings.Join(got, "; "), tt.want) {
				t.Fatalf("errors %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSecurityDefaults: omitted blocks are MSK's defaults, and
// unauthenticated defaults to true only while no mechanism is on.
func TestSecurityDefaults(t *testing.T) {
	m := clusterModel{
		EncryptionInTransit:     types.ObjectNull(map[string]attr.Type{"client_broker": types.StringType, "in_cluster": types.BoolType}),
		ClientAuthentication:    types.ObjectNull(map[string]attr.Type{"unauthenticated": types.BoolType}),
		TLSCertificateAuthority: types.ObjectNull(map[string]attr.Type{"certificate_pem": types.StringType, "private_key_pem": types.StringType}),
	}
	s, diags := m.security(context.Background())
	if diags.HasError() {
		t.Fatal(diags)
	}
	if s.ClientBroker != "TLS" || !s.InCluster || !s.Unauthenticated || s.authenticated() {
		t.Fatalf("defaults: %+v", s)
	}
	if !s.usesTLS() {
		t.Fatal("the default cluster does not use TLS")
	}
}

// TestBrokerDocumentHasNoClearKey renders a broker's user data with a fake
// sealer and checks that the key is only inside the envelope.
func TestBrokerDocumentHasNoClearKey(t *testing.T) {
	cs := &clusterSpec{EnhancedMonitoring: "DEFAULT"}
	cs.ClusterID, cs.Name, cs.MetricsNamespace = "tc-0123456789abcdef", "orders", "Tributary/Kafka"
	nodes := []fleet.Node{
		{NodeID: 1, AvailabilityZone: "a", PrivateIP: "127.1.0.10", VolumeID: "vol-00000000000000001"},
		{NodeID: 2, AvailabilityZone: "b", PrivateIP: "127.1.1.10", PrivateDNSName: "ip-127-1-1-10.ec2.internal", VolumeID: "vol-00000000000000002"},
		{NodeID: 3, AvailabilityZone: "c", PrivateIP: "127.1.2.10", VolumeID: "vol-00000000000000003"},
	}
	ca, err := pki.NewCA(cs.Name, cs.ClusterID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cs.Security = securitySettings{ClientBroker: "TLS", InCluster: true, IAM: true}
	cs.Listeners = cs.Security.listeners()
	cs.CA = ca
	cs.now, cs.certificateValidity = time.Now(), 90*24*time.Hour
	var sealed *bootconfig.Secrets
	cs.seal = func(nodeID int32, s *bootconfig.Secrets) (*bootconfig.Envelope, error) {
		sealed = s
		return &bootconfig.Envelope{Ciphertext: []byte("sealed"), KeyID: "k", EncryptionContext: bootconfig.EncryptionContext(cs.ClusterID, nodeID)}, nil
	}
	ud, err := cs.userData(nodes[1], nodes)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ud), "PRIVATE KEY") {
		t.Fatalf("user data holds a private key in clear: %s", ud)
	}
	if sealed == nil || !strings.Contains(sealed.TLSPrivateKeyPEM, "PRIVATE KEY") {
		t.Fatal("the broker's key was not sealed")
	}
	leaf, err := pki.ParseCertificates(sealed.TLSCertificatePEM)
	if err != nil || len(leaf) != 2 || len(leaf[0].IPAddresses) != 1 || leaf[0].IPAddresses[0].String() != nodes[1].PrivateIP ||
		len(leaf[0].DNSNames) != 1 || leaf[0].DNSNames[0] != nodes[1].PrivateDNSName {
		t.Fatalf("broker certificate: %v %v", leaf, err)
	}
	// It names its node, to which its peers bind its replica and node
	// ids on the in-cluster ports.
	if id, ok, err := tlsconf.CertificateNodeID(leaf[0]); !ok || err != nil || id != nodes[1].NodeID {
		t.Errorf("broker certificate of node %d names node %d (%v, %v), URIs %v", nodes[1].NodeID, id, ok, err, leaf[0].URIs)
	}
	if _, validity := pki.IssuedFor(leaf[0]); validity != cs.certificateValidity {
		t.Errorf("broker certificate issued for %s, want certificate_validity %s", validity, cs.certificateValidity)
	}
	doc, err := bootconfig.Decode(ud)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.InClusterTLS || doc.TLS == nil || doc.TLS.CertificateAuthorityPEM != ca.CertPEM || len(doc.Listeners) != 1 || doc.Listeners[0].Port != 9098 {
		t.Fatalf("document: %+v", doc)
	}
}

// TestSecuritySettingsEqualComparesEveryField sets each field of
// securitySettings in turn, by reflection, and wants equal to see the
// difference: a field added to the struct and left out of equal fails
// here (and would have made updatesOnlyState take a changed security
// block for the same one).
func TestSecuritySettingsEqualComparesEveryField(t *testing.T) {
	typ := reflect.TypeFor[securitySettings]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		var changed securitySettings
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch {
		case f.Type.Kind() == reflect.String:
			v.SetString("x")
		case f.Type.Kind() == reflect.Bool:
			v.SetBool(true)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			v.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("field %s has type %s, which this test cannot set: teach it, and equal, that type", f.Name, f.Type)
		}
		if (securitySettings{}).equal(changed) || changed.equal(securitySettings{}) {
			t.Errorf("equal does not compare field %s", f.Name)
		}
		if !changed.equal(changed) {
			t.Errorf("a setting with %s set is not equal to itself", f.Name)
		}
	}
	if !(securitySettings{ClientCAs: []string{}}).equal(securitySettings{}) {
		t.Error("an empty list of client CAs differs from none")
	}
}
