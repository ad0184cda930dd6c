package provider

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/pki"
)

// securityModel is a cluster model whose security blocks say s, with three
// brokers in its state.
func securityModel(t *testing.T, s securitySettings) *clusterModel {
	t.Helper()
	var m clusterModel
	if d := securityFromDocument(&bootconfig.Document{InClusterTLS: s.InCluster, Listeners: s.listeners()}, &m); d.HasError() {
		t.Fatal(d)
	}
	nodes, d := brokerNodesValue([]fleet.Broker{
		{NodeID: 1, PrivateIP: "127.1.0.10"}, {NodeID: 2, PrivateIP: "127.1.1.10"}, {NodeID: 3, PrivateIP: "127.1.2.10"},
	}, s.listeners())
	if d.HasError() {
		t.Fatal(d)
	}
	m.BrokerNodes = nodes
	return &m
}

// TestPlanSecurityChange pins what a plan says about a change of the
// security blocks: whether the brokers roll, the bootstrap strings the
// update will fill in, a warning when no client listener survives the
// change, and the refusal of in_cluster changes.
func TestPlanSecurityChange(t *testing.T) {
	plaintext := securitySettings{ClientBroker: clientBrokerPlaintext, InCluster: true, Unauthenticated: true}
	both := securitySettings{ClientBroker: clientBrokerTLSPlaintext, InCluster: true, Unauthenticated: true}
	tlsOnly := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true}
	withIAM := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true, IAM: true}
	plaintextNoTLS := securitySettings{ClientBroker: clientBrokerPlaintext, Unauthenticated: true}
	for _, tt := range []struct {
		name            string
		from, to        securitySettings
		rolls           bool
		wantTLS, wantPT string
		warning, err    string
	}{
		{name: "unchanged", from: withIAM, to: withIAM},
		{name: "plaintext to both", from: plaintext, to: both, rolls: true,
			wantTLS: "127.1.0.10:9094,127.1.1.10:9094,127.1.2.10:9094", wantPT: "127.1.0.10:9092,127.1.1.10:9092,127.1.2.10:9092"},
		{name: "both to TLS", from: both, to: tlsOnly, rolls: true, wantTLS: "127.1.0.10:9094,127.1.1.10:9094,127.1.2.10:9094"},
		{name: "IAM on", from: tlsOnly, to: withIAM, rolls: true, wantTLS: "127.1.0.10:9094,127.1.1.10:9094,127.1.2.10:9094"},
		{name: "plaintext straight to TLS", from: plaintext, to: tlsOnly, rolls: true,
			wantTLS: "127.1.0.10:9094,127.1.1.10:9094,127.1.2.10:9094", warning: "No client listener is kept"},
		{name: "in_cluster off", from: plaintext, to: plaintextNoTLS, err: "in_cluster cannot change in place"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state, plan := securityModel(t, tt.from), securityModel(t, tt.to)
			plan.BootstrapBrokers, plan.BootstrapBrokersTLS = state.BootstrapBrokers, state.BootstrapBrokersTLS
			rolls, diags := planSecurityChange(context.Background(), plan, state)
			if tt.err != "" {
				if !hasSummary(diags.Errors(), tt.err) {
					t.Fatalf("diagnostics %v, want the error %q", diags, tt.err)
				}
				return
			}
			if diags.HasError() || rolls != tt.rolls {
				t.Fatalf("rolls %v (%v), want %v", rolls, diags, tt.rolls)
			}
			if got := hasSummary(diags.Warnings(), "No client listener is kept"); got != (tt.warning != "") {
				t.Errorf("warnings %v, want %q", diags.Warnings(), tt.warning)
			}
			if !rolls {
				return
			}
			if got := plan.BootstrapBrokersTLS.ValueString(); got != tt.wantTLS {
				t.Errorf("bootstrap_brokers_tls %q, want %q", got, tt.wantTLS)
			}
			if got := plan.BootstrapBrokers.ValueString(); got != tt.wantPT {
				t.Errorf("bootstrap_brokers %q, want %q", got, tt.wantPT)
			}
		})
	}
}

func hasSummary(diags diag.Diagnostics, summary string) bool {
	for _, d := range diags {
		if d.Summary() == summary {
			return true
		}
	}
	return false
}

// TestClusterAccessFollowsTheBrokers checks the listener the provider's
// cluster-wide clients use while brokers serve different listeners: the one
// the most brokers serve (the best of equals), and each other broker through
// its own.
func TestClusterAccessFollowsTheBrokers(t *testing.T) {
	doc := func(s securitySettings) *bootconfig.Document {
		return &bootconfig.Document{ClusterID: "tc-test", InClusterTLS: s.InCluster, Listeners: s.listeners(),
			TLS: &bootconfig.TLS{CertificateAuthorityPEM: testCAPEM(t)}}
	}
	plaintext := securitySettings{ClientBroker: clientBrokerPlaintext, InCluster: true, Unauthenticated: true}
	both := securitySettings{ClientBroker: clientBrokerTLSPlaintext, InCluster: true, Unauthenticated: true}
	tlsOnly := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true}
	d := &providerData{}
	for _, tt := range []struct {
		name     string
		docs     map[int32]*bootconfig.Document
		want     string
		wantOwn  map[int32]string
		wantPort int
	}{
		{name: "all the same", docs: map[int32]*bootconfig.Document{1: doc(both), 2: doc(both), 3: doc(both)}, want: listenerTLS, wantPort: 9094},
		{name: "one broker added TLS", docs: map[int32]*bootconfig.Document{1: doc(both), 2: doc(plaintext), 3: doc(plaintext)},
			want: listenerPlaintext, wantPort: 9092},
		{name: "two brokers dropped plaintext", docs: map[int32]*bootconfig.Document{1: doc(tlsOnly), 2: doc(tlsOnly), 3: doc(both)},
			want: listenerTLS, wantPort: 9094},
		{name: "one broker dropped plaintext", docs: map[int32]*bootconfig.Document{1: doc(tlsOnly), 2: doc(both), 3: doc(both)},
			want: listenerTLS, wantPort: 9094},
		{name: "plaintext straight to TLS", docs: map[int32]*bootconfig.Document{1: doc(tlsOnly), 2: doc(plaintext), 3: doc(plaintext)},
			want: listenerPlaintext, wantPort: 9092, wantOwn: map[int32]string{1: listenerTLS}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			common, own, err := d.clusterAccess(context.Background(), tt.docs)
			if err != nil {
				t.Fatal(err)
			}
			if common.Listener != tt.want || common.Port != tt.wantPort {
				t.Errorf("cluster-wide access through %s:%d, want %s:%d", common.Listener, common.Port, tt.want, tt.wantPort)
			}
			if len(own) != len(tt.wantOwn) {
				t.Errorf("brokers reached through their own listener: %v, want %v", own, tt.wantOwn)
			}
			for id, l := range tt.wantOwn {
				if own[id].Listener != l {
					t.Errorf("broker %d through %q, want %q", id, own[id].Listener, l)
				}
			}
		})
	}
}

func testCAPEM(t *testing.T) string {
	t.Helper()
	ca, err := pki.NewCA("test", "tc-test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM
}

// TestPendingSharedRole: a broker whose group launches with the one profile
// all brokers of an older cluster shared is remembered for the next apply,
// which gives it its own; a broker's own profile, or a user's, is not.
func TestPendingSharedRole(t *testing.T) {
	for _, tt := range []struct {
		profile string
		want    bool
	}{
		{"arn:aws:iam::000000000000:instance-profile/tributary/tributary-tc-0123456789abcdef", true},
		{"tributary-tc-0123456789abcdef", true},
		{"tributary-tc-0123456789abcdef-broker-2", false},
		{"my-brokers", false},
	} {
		o := &fleet.Observed{ClusterID: "tc-0123456789abcdef", Brokers: []fleet.Broker{{
			NodeID: 2, GroupName: "g", GroupMin: 1, GroupMax: 1, GroupDesired: 1, Launch: &fleet.LaunchSettings{InstanceProfile: tt.profile},
		}}}
		if got := pendingWork(o).SharedRole; got != tt.want {
			t.Errorf("launch profile %s: shared role pending %v, want %v", tt.profile, got, tt.want)
		}
	}
}

// TestAccessWithTheProvidersLogin: on a cluster without IAM, the provider
// goes in with its own login, SCRAM before mutual TLS, and without a login
// it has no way in.
func TestAccessWithTheProvidersLogin(t *testing.T) {
	ca, err := pki.NewCA("test", "tc-test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.Request{Subject: pki.AdminSubject("tc-test"), NotBefore: time.Now(), Validity: time.Hour, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	scramLogin := &bootconfig.ProviderSecrets{SCRAMUsername: "tributary-admin", SCRAMPassword: "p"}
	certLogin := &bootconfig.ProviderSecrets{ClientCertificatePEM: leaf.CertPEM, ClientKeyPEM: leaf.KeyPEM}
	both := &bootconfig.ProviderSecrets{SCRAMUsername: "tributary-admin", SCRAMPassword: "p", ClientCertificatePEM: leaf.CertPEM, ClientKeyPEM: leaf.KeyPEM}
	scramOnly := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, SCRAM: true}
	mtlsOnly := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, ClientCAs: []string{ca.CertPEM}}
	scramAndMTLS := securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, SCRAM: true, ClientCAs: []string{ca.CertPEM}}
	d := &providerData{}
	for _, tt := range []struct {
		name  string
		s     securitySettings
		login *bootconfig.ProviderSecrets
		want  string // listener, "" for no way in
	}{
		{"SCRAM only, with the login", scramOnly, scramLogin, listenerSCRAM},
		{"SCRAM only, without", scramOnly, nil, ""},
		{"mutual TLS only, with the certificate", mtlsOnly, certLogin, listenerTLS},
		{"mutual TLS only, with a SCRAM login alone", mtlsOnly, scramLogin, ""},
		{"both: SCRAM first", scramAndMTLS, both, listenerSCRAM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := d.kafkaAccessTo("tc-test", tt.s.listeners(), ca.CertPEM, tt.login)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("access through %s, want none", a.Listener)
			case tt.want != "" && (err != nil || a.Listener != tt.want):
				t.Fatalf("access through %q (%v), want %s", a.Listener, err, tt.want)
			}
		})
	}
}
