package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// mskLayout is the broker config docs/broker-security.md gives for every
// listener of Amazon MSK's ports (the boot agent renders it), for node 1 at
// 10.0.1.5: the test checks the documented properties themselves.
func mskLayout(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/broker-security.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- BEGIN TESTED properties msk-listeners -->", "<!-- END TESTED properties msk-listeners -->"
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("docs/broker-security.md has no %s ... %s block", begin, end)
	}
	block := string(doc[i+len(begin) : j])
	block = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(block), "```properties")), "```"))
	r := strings.NewReplacer("<ip>", "10.0.1.5", "<ip1>", "10.0.1.5", "<ip2>", "10.0.2.5", "<ip3>", "10.0.3.5", "<secrets>", "/run/tributary/secrets")
	props, err := ParseProperties(strings.NewReader(r.Replace(block)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range props {
		out[p.Key] = p.Value
	}
	return out
}

func configWith(t *testing.T, props map[string]string) (*Config, error) {
	t.Helper()
	c := Default()
	var ps []Property
	for k, v := range props {
		ps = append(ps, Property{Key: k, Value: v, Line: len(ps) + 1})
	}
	if err := c.ApplyProperties(ps, nil); err != nil {
		return c, &SettingError{Name: "set", Problem: err.Error()}
	}
	return c, c.Validate()
}

func TestListenersMSKLayout(t *testing.T) {
	c, err := configWith(t, mskLayout(t))
	if err != nil {
		t.Fatalf("the MSK layout does not validate: %v", err)
	}
	ls, err := c.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{
		{Name: "CLIENT", Protocol: "PLAINTEXT", Addr: "10.0.1.5:9092", Advertised: "10.0.1.5:9092"},
		{Name: "CLIENT_SECURE", Protocol: "SSL", Addr: "10.0.1.5:9094", Advertised: "10.0.1.5:9094"},
		{Name: "CLIENT_SASL_SCRAM", Protocol: "SASL_SSL", Addr: "10.0.1.5:9096", Advertised: "10.0.1.5:9096"},
		{Name: "CLIENT_IAM", Protocol: "SASL_SSL", Addr: "10.0.1.5:9098", Advertised: "10.0.1.5:9098"},
		{Name: "REPLICATION", Protocol: "SSL", Addr: "10.0.1.5:9093", Advertised: "10.0.1.5:9093", Role: RoleInterBroker},
		{Name: "CONTROLLER", Protocol: "SSL", Addr: "10.0.1.5:9095", Advertised: "10.0.1.5:9095", Role: RoleController},
	}
	if v, _ := c.Configured("tributary.scram.bootstrap.file"); v != "/run/tributary/secrets/scram-bootstrap.json" {
		t.Errorf("bootstrap file %q", v)
	}
	if !slices.Equal(ls, want) {
		t.Fatalf("listeners\n got %+v\nwant %+v", ls, want)
	}
	if got := c.SASLMechanisms("CLIENT_SASL_SCRAM"); !slices.Equal(got, []string{"SCRAM-SHA-512", "SCRAM-SHA-256"}) {
		t.Errorf("SCRAM mechanisms %v", got)
	}
	if got := c.SASLMechanisms("CLIENT"); got != nil {
		t.Errorf("CLIENT mechanisms %v", got)
	}
	if c.AllowEveryoneIfNoACLFound() {
		t.Error("allow.everyone.if.no.acl.found is true with authenticated listeners on")
	}
	if v, _ := c.Get("allow.everyone.if.no.acl.found"); v != "false" {
		t.Errorf("allow.everyone.if.no.acl.found reads %q", v)
	}
	if !c.Authenticates(want[1]) || c.Authenticates(want[0]) || !c.Authenticates(want[2]) || c.Authenticates(want[4]) {
		t.Error("Authenticates: CLIENT_SECURE with client auth and SASL listeners authenticate, CLIENT and REPLICATION do not")
	}
	if l, ok := c.RoleListener(RoleInterBroker); !ok || l.Name != "REPLICATION" {
		t.Errorf("inter-broker listener %+v %v", l, ok)
	}
	c2, err := configWith(t, map[string]string{"listeners": "SSL://127.0.0.1:9094", "ssl.keystore.location": "/k.pem", "listener.name.ssl.ssl.endpoint.identification.algorithm": ""})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c2.Configured("listener.name.ssl.ssl.endpoint.identification.algorithm"); !ok || v != "" {
		t.Errorf("an empty setting reads %q %v: it must count as set", v, ok)
	}
}

func TestAllowEveryoneDefault(t *testing.T) {
	for _, tt := range []struct {
		name  string
		props map[string]string
		want  bool
	}{
		{"plaintext only", nil, true},
		{"TLS without client certificates", map[string]string{"listeners": "SSL://127.0.0.1:9094", "ssl.keystore.location": "/k.pem"}, true},
		{"mutual TLS", map[string]string{"listeners": "SSL://127.0.0.1:9094", "ssl.keystore.location": "/k.pem", "ssl.truststore.location": "/ca.pem", "ssl.client.auth": "required"}, false},
		{"SASL", map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9096", "ssl.keystore.location": "/k.pem", "sasl.enabled.mechanisms": "SCRAM-SHA-512"}, false},
		{"set false, plaintext", map[string]string{"allow.everyone.if.no.acl.found": "false"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := configWith(t, tt.props)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.AllowEveryoneIfNoACLFound(); got != tt.want {
				t.Fatalf("AllowEveryoneIfNoACLFound = %v, want %v", got, tt.want)
			}
		})
	}
	// true beside a listener that authenticates is refused (authorization.go).
	if _, err := configWith(t, map[string]string{"listeners": "SASL_SSL://127.0.0.1:9096", "ssl.keystore.location": "/k.pem", "sasl.enabled.mechanisms": "SCRAM-SHA-512", "allow.everyone.if.no.acl.found": "true"}); err == nil || !strings.Contains(err.Error(), "allow.everyone.if.no.acl.found") {
		t.Fatalf("true with SASL: %v", err)
	}
}

// TestListenersRefused: a config whose listeners the broker cannot serve is
// refused, naming the setting to change and why.
func TestListenersRefused(t *testing.T) {
	tls := map[string]string{"ssl.keystore.location": "/k.pem"}
	with := func(extra map[string]string, base ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, b := range base {
			for k, v := range b {
				out[k] = v
			}
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		props   map[string]string
		setting string // the SettingError's name
		reason  string
	}{
		{"unknown protocol", map[string]string{"listeners": "CLIENT://127.0.0.1:9092"}, "listener.security.protocol.map", "has no security protocol"},
		{"unknown protocol in the map", map[string]string{"listeners": "CLIENT://127.0.0.1:9092", "listener.security.protocol.map": "CLIENT:TLS"}, "listener.security.protocol.map", `unknown security protocol "TLS"`},
		{"SASL_PLAINTEXT", map[string]string{"listeners": "SASL_PLAINTEXT://127.0.0.1:9092", "sasl.enabled.mechanisms": "SCRAM-SHA-512"}, "listener.security.protocol.map", "SASL_PLAINTEXT is not served"},
		{"SASL listener without a mechanism", with(map[string]string{"listeners": "SASL_SSL://127.0.0.1:9096"}, tls), "listener.name.sasl_ssl.sasl.enabled.mechanisms", "needs a mechanism"},
		{"TLS listener without a keystore", map[string]string{"listeners": "SSL://127.0.0.1:9094"}, "listener SSL", "no keystore"},
		{"SASL_SSL listener without a keystore", map[string]string{"listeners": "SASL_SSL://127.0.0.1:9096", "sasl.enabled.mechanisms": "SCRAM-SHA-512"}, "listener SASL_SSL", "no keystore"},
		{"unknown mechanism", with(map[string]string{"listeners": "SASL_SSL://127.0.0.1:9096", "sasl.enabled.mechanisms": "PLAIN"}, tls), "set", `"PLAIN" is not one of`},
		{"mechanism on a plaintext listener", map[string]string{"listener.name.plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512"}, "listener.name.plaintext.sasl.enabled.mechanisms", "carries no SASL"},
		{"mechanism on an SSL listener", with(map[string]string{"listeners": "SSL://127.0.0.1:9094", "listener.name.ssl.sasl.enabled.mechanisms": "OAUTHBEARER"}, tls), "listener.name.ssl.sasl.enabled.mechanisms", "carries no SASL"},
		{"client auth without a truststore", with(map[string]string{"listeners": "SSL://127.0.0.1:9094", "ssl.client.auth": "required"}, tls), "listener SSL", "truststore"},
		{"JKS keystore", with(map[string]string{"listeners": "SSL://127.0.0.1:9094", "listener.name.ssl.ssl.keystore.type": "JKS"}, tls), "set", "must be PEM"},
		{"encrypted key", with(map[string]string{"listeners": "SSL://127.0.0.1:9094", "ssl.key.password": "x"}, tls), "listener SSL", "ssl.key.password"},
		{"TLS 1.1", with(map[string]string{"listeners": "SSL://127.0.0.1:9094", "ssl.enabled.protocols": "TLSv1.1"}, tls), "listener SSL", "older than TLS 1.2"},
		{"duplicate name", map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093"}, "listeners", "names PLAINTEXT twice"},
		{"duplicate address", map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9092", "ssl.keystore.location": "/k.pem"}, "listeners", "both bind 127.0.0.1:9092"},
		{"advertised unknown listener", map[string]string{"advertised.listeners": "OTHER://h:9092"}, "advertised.listeners", "not in listeners"},
		{"advertised wildcard", map[string]string{"advertised.listeners": "PLAINTEXT://0.0.0.0:9092"}, "advertised.listeners", "wildcard"},
		{"inter-broker listener missing", map[string]string{"inter.broker.listener.name": "REPLICATION"}, "inter.broker.listener.name", "not in listeners"},
		{"inter-broker listener over SASL", with(map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,REPLICATION://127.0.0.1:9093", "listener.security.protocol.map": "REPLICATION:SASL_SSL", "inter.broker.listener.name": "REPLICATION", "sasl.enabled.mechanisms": "SCRAM-SHA-512"}, tls), "listener.security.protocol.map", "use SSL"},
		{"replication over TLS without client certificates", with(map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,REPLICATION://127.0.0.1:9093", "listener.security.protocol.map": "REPLICATION:SSL", "inter.broker.listener.name": "REPLICATION", "ssl.truststore.location": "/ca.pem"}, tls), "listener.name.replication.ssl.client.auth", "must be required"},
		{"controller listener missing", map[string]string{"controller.listener.names": "CONTROLLER"}, "controller.listener.names", "not in listeners"},
		{"two controller listeners", map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,A://127.0.0.1:9095,B://127.0.0.1:9097", "listener.security.protocol.map": "A:PLAINTEXT,B:PLAINTEXT", "controller.listener.names": "A,B"}, "controller.listener.names", "on one"},
		{"one listener for both roles", map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,X://127.0.0.1:9093", "listener.security.protocol.map": "X:PLAINTEXT", "controller.listener.names": "X", "inter.broker.listener.name": "X"}, "inter.broker.listener.name", "need a port each"},
		{"no client listener", map[string]string{"listeners": "REPLICATION://127.0.0.1:9093", "listener.security.protocol.map": "REPLICATION:PLAINTEXT", "inter.broker.listener.name": "REPLICATION"}, "listeners", "no client listener"},
		{"port set twice", map[string]string{"listeners": "PLAINTEXT://127.0.0.1:9092,REPLICATION://127.0.0.1:9093", "listener.security.protocol.map": "REPLICATION:PLAINTEXT", "inter.broker.listener.name": "REPLICATION", "inter.broker.listener.port": "9193"}, "inter.broker.listener.port", "set one of them"},
		{"bad super.users", map[string]string{"super.users": "admin"}, "super.users", "not Type:name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := configWith(t, tt.props)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !strings.Contains(err.Error(), tt.setting) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not name %s and %q", err, tt.setting, tt.reason)
			}
			if tt.setting != "set" {
				if _, lerr := c.Listeners(); lerr == nil && strings.HasPrefix(tt.setting, "listener") && tt.setting != "listener SSL" && tt.setting != "listener SASL_SSL" {
					t.Errorf("Listeners() accepts what Validate refuses")
				}
			}
		})
	}
}

func TestWithBoundPorts(t *testing.T) {
	c, err := configWith(t, map[string]string{
		"listeners":                      "PLAINTEXT://127.0.0.1:0,SECURE://127.0.0.1:0,FIXED://127.0.0.1:9099",
		"advertised.listeners":           "SECURE://broker.example:0",
		"listener.security.protocol.map": "SECURE:SSL,FIXED:PLAINTEXT",
		"ssl.keystore.location":          "/k.pem",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.WithBoundPorts(map[string]int{"PLAINTEXT": 40001, "SECURE": 40002, "FIXED": 40003})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{
		{Name: "PLAINTEXT", Protocol: "PLAINTEXT", Addr: "127.0.0.1:40001", Advertised: "127.0.0.1:40001"},
		{Name: "SECURE", Protocol: "SSL", Addr: "127.0.0.1:40002", Advertised: "broker.example:40002"},
		{Name: "FIXED", Protocol: "PLAINTEXT", Addr: "127.0.0.1:9099", Advertised: "127.0.0.1:9099"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if ls, _ := c.Listeners(); ls[0].Addr != "127.0.0.1:0" {
		t.Fatal("WithBoundPorts changed its receiver")
	}
}

func TestPasswordSettingsAreSecret(t *testing.T) {
	for _, name := range []string{"ssl.keystore.key", "listener.name.client_secure.ssl.keystore.key", "ssl.key.password"} {
		s, ok := Lookup(name)
		if !ok || s.Type != "password" {
			t.Errorf("%s: type %q (found %v), want password", name, s.Type, ok)
		}
	}
}

// TestPlaintextInClusterListenerRefused: a broker whose client listeners
// include an SSL or SASL_SSL one does not start with a plaintext
// replication or controller listener that other brokers dial (named as
// PLAINTEXT, or left unnamed in a cluster), each problem naming the
// listener and the opt-in, unless tributary.allow.plaintext.inter.broker
// is set (finding 8 of docs/broker-security.md).
func TestPlaintextInClusterListenerRefused(t *testing.T) {
	edit := func(base map[string]string, set map[string]string, del ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range set {
			out[k] = v
		}
		for _, k := range del {
			delete(out, k)
		}
		return out
	}
	msk := mskLayout(t)
	// What the boot agent renders without in-cluster encryption: the
	// client listeners only, replication and the quorum in plaintext on
	// their default ports.
	const clientListeners = "CLIENT://10.0.1.5:9092,CLIENT_SECURE://10.0.1.5:9094,CLIENT_SASL_SCRAM://10.0.1.5:9096,CLIENT_IAM://10.0.1.5:9098"
	noInCluster := edit(msk, map[string]string{
		"listeners":                      clientListeners,
		"advertised.listeners":           clientListeners,
		"listener.security.protocol.map": "CLIENT:PLAINTEXT,CLIENT_SECURE:SSL,CLIENT_SASL_SCRAM:SASL_SSL,CLIENT_IAM:SASL_SSL",
		"inter.broker.listener.port":     "9093",
	}, "inter.broker.listener.name", "controller.listener.names", "listener.name.replication.ssl.client.auth", "listener.name.controller.ssl.client.auth")
	const plaintextOnly = "CLIENT://10.0.1.5:9092"
	allow := map[string]string{"tributary.allow.plaintext.inter.broker": "true"}
	refused := []struct {
		name  string
		props map[string]string
		want  []string // every one in the error
	}{
		{"replication mapped to PLAINTEXT", edit(msk, map[string]string{"listener.security.protocol.map": strings.Replace(msk["listener.security.protocol.map"], "REPLICATION:SSL", "REPLICATION:PLAINTEXT", 1)}, "listener.name.replication.ssl.client.auth"),
			[]string{"listener.security.protocol.map", "REPLICATION (inter.broker.listener.name, replication) is PLAINTEXT while the client listener CLIENT_SECURE is SSL", "tributary.allow.plaintext.inter.broker=true"}},
		{"controller mapped to PLAINTEXT", edit(msk, map[string]string{"listener.security.protocol.map": strings.Replace(msk["listener.security.protocol.map"], "CONTROLLER:SSL", "CONTROLLER:PLAINTEXT", 1)}, "listener.name.controller.ssl.client.auth"),
			[]string{"listener.security.protocol.map", "CONTROLLER (controller.listener.names, the metadata quorum) is PLAINTEXT", "tributary.allow.plaintext.inter.broker=true"}},
		{"neither named, in a cluster", noInCluster,
			[]string{"inter.broker.listener.name is not set, so replication listens in plaintext on inter.broker.listener.port 9093 while the client listener CLIENT_SECURE is SSL",
				"controller.listener.names is not set, so the metadata quorum listens in plaintext", "tributary.allow.plaintext.inter.broker=true"}},
		{"only a SASL_SSL client listener", edit(noInCluster, map[string]string{
			"listeners": "CLIENT_SASL_SCRAM://10.0.1.5:9096", "advertised.listeners": "CLIENT_SASL_SCRAM://10.0.1.5:9096", "listener.security.protocol.map": "CLIENT_SASL_SCRAM:SASL_SSL"},
			"listener.name.client_secure.ssl.client.auth", "listener.name.client_secure.ssl.truststore.location", "listener.name.client_iam.sasl.enabled.mechanisms"),
			[]string{"the client listener CLIENT_SASL_SCRAM is SASL_SSL"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configWith(t, tt.props)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := configWith(t, edit(tt.props, allow)); err != nil {
				t.Errorf("with tributary.allow.plaintext.inter.broker=true: %v", err)
			}
		})
	}
	accepted := []struct {
		name  string
		props map[string]string
	}{
		{"in-cluster TLS", msk},
		{"plaintext clients only", edit(noInCluster, map[string]string{"listeners": plaintextOnly, "advertised.listeners": plaintextOnly, "listener.security.protocol.map": "CLIENT:PLAINTEXT"},
			"listener.name.client_secure.ssl.client.auth", "listener.name.client_secure.ssl.truststore.location", "listener.name.client_sasl_scram.sasl.enabled.mechanisms", "listener.name.client_iam.sasl.enabled.mechanisms")},
		// A cluster of one binds its unnamed in-cluster listeners on a
		// kernel-picked port that only its own process dials.
		{"a cluster of one", edit(noInCluster, nil, "controller.quorum.voters", "inter.broker.listener.port")},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := configWith(t, tt.props); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}
