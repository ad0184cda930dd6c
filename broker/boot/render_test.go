package boot

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/bootconfig"
)

// TestRenderedKeysAreTheAgents renders the config of documents with every
// feature (TLS, SCRAM, SASL, CloudWatch, one to three controllers) and
// checks each key against the settings table: the agent writes only
// settings the table gives to the agent, plus the cluster defaults for the
// cluster's size and the document's broker_config; the broker loads the
// file without a warning or an error.
func TestRenderedKeysAreTheAgents(t *testing.T) {
	for _, tc := range []struct {
		voters    int
		inCluster bool
	}{{1, true}, {2, true}, {3, true}, {1, false}, {3, false}} {
		voters := tc.voters
		t.Run(fmt.Sprintf("%d controllers, in-cluster TLS %v", voters, tc.inCluster), func(t *testing.T) {
			doc := &bootconfig.Document{
				Version: bootconfig.CurrentVersion, ClusterID: "c-0123abcd", ClusterName: "orders", NodeID: 1, Rack: "us-east-1a",
				Listeners:    mskListeners(),
				InClusterTLS: tc.inCluster,
				TLS:          &bootconfig.TLS{CertificateAuthorityPEM: testCAPEM, ClientCertificateAuthoritiesPEM: testClientCAPEM},
				SuperUsers:   []string{"User:tributary-admin"},
				Secrets:      &bootconfig.Envelope{Ciphertext: []byte{1}, KeyID: "k", EncryptionContext: bootconfig.EncryptionContext("c-0123abcd", 1)},
				Ports:        bootconfig.Ports{InterBroker: 9093, Controller: 9095, Metrics: 11001},
				DataVolume:   bootconfig.Volume{VolumeID: testVolumeID, MountPath: "/var/lib/tributary", Filesystem: "xfs"},
				BrokerConfig: map[string]string{"num.partitions": "6", "min.insync.replicas": "1"},
				Metrics:      bootconfig.Metrics{CloudWatch: true, Namespace: "Tributary", Level: "PER_BROKER", IntervalSeconds: 60},
				Logging: &bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "tributary/orders"},
					S3:       &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs", Prefix: "prod/"},
					Firehose: &bootconfig.FirehoseLogs{Enabled: true, DeliveryStream: "orders-broker-logs"}},
			}
			for i := 1; i <= voters; i++ {
				doc.Controllers = append(doc.Controllers, bootconfig.Peer{NodeID: int32(i), Host: fmt.Sprintf("127.0.%d.5", i), Port: 9095})
			}
			if err := doc.Validate(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			inst := &Instance{ID: testInstanceID, AvailabilityZone: "us-east-1a", PrivateIP: "127.0.1.5", Region: "us-east-1", AccountID: "111122223333"}
			files, err := writeSecretFiles(filepath.Join(dir, SecretsDirName), doc, &testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			out := renderConfig(doc, inst, filepath.Join(dir, "data"), files)
			for _, want := range []string{"\ntributary.logs.cloudwatch.enable=true\n", "\ntributary.logs.cloudwatch.log.group=tributary/orders\n",
				"\ntributary.logs.s3.enable=true\n", "\ntributary.logs.s3.bucket=kafka-logs\n",
				"\ntributary.logs.s3.key.prefix=prod/AWSLogs/111122223333/KafkaBrokerLogs/us-east-1/orders-c-0123abcd/\n",
				"\ntributary.logs.firehose.enable=true\n", "\ntributary.logs.firehose.delivery.stream=orders-broker-logs\n"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("rendered config lacks %q", strings.TrimSpace(want))
				}
			}

			// Without in-cluster TLS, next to TLS client listeners, the
			// broker starts only with the opt-in the cluster's choice is.
			if optIn := strings.Contains(string(out), "\ntributary.allow.plaintext.inter.broker=true\n"); optIn == tc.inCluster {
				t.Errorf("tributary.allow.plaintext.inter.broker=true written %v with in-cluster TLS %v", optIn, tc.inCluster)
			}

			props, err := config.ParseProperties(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			defaults := config.ClusterDefaults(voters)
			userKeys := map[string]string{}
			for _, p := range props {
				s, ok := config.Lookup(p.Key)
				switch {
				case !ok:
					t.Errorf("%s is written but is not in the settings table", p.Key)
				case s.Owner == config.OwnerAgent:
					if _, ok := doc.BrokerConfig[p.Key]; ok {
						t.Errorf("%s is the agent's and came from broker_config", p.Key)
					}
				default:
					userKeys[p.Key] = p.Value
				}
			}
			want := maps.Clone(defaults)
			maps.Copy(want, doc.BrokerConfig)
			if !maps.Equal(userKeys, want) {
				t.Errorf("user settings written %v, want the cluster defaults under broker_config: %v", userKeys, want)
			}

			file := filepath.Join(dir, ConfigFileName)
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			c, err := config.Load(file, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				t.Fatalf("the broker refuses the rendered file: %v\n%s", err, out)
			}
			if logs.Len() > 0 {
				t.Errorf("the broker warns about the rendered file:\n%s", logs.String())
			}
			if err := c.Validate(); err != nil {
				t.Errorf("the rendered file does not validate: %v", err)
			}
			if want := defaults["default.replication.factor"]; fmt.Sprint(c.DefaultReplicationFactor) != want {
				t.Errorf("default.replication.factor = %d, want the cluster default %s", c.DefaultReplicationFactor, want)
			}
			if c.MinInsyncReplicas != 1 {
				t.Errorf("min.insync.replicas = %d, want broker_config's 1 over the cluster default", c.MinInsyncReplicas)
			}
			if c.AutoCreateTopics {
				t.Error("auto.create.topics.enable is on in a cluster")
			}
			if strings.Contains(string(out), "<listener>") {
				t.Error("a placeholder was written")
			}
		})
	}
}

// mskListeners are the four client listeners of Amazon MSK's ports, with
// mutual TLS on 9094.
func mskListeners() []bootconfig.Listener {
	return []bootconfig.Listener{
		{Name: "CLIENT", Port: 9092, SecurityProtocol: "PLAINTEXT"},
		{Name: "CLIENT_SECURE", Port: 9094, SecurityProtocol: "SSL", ClientAuth: "required"},
		{Name: "CLIENT_SASL_SCRAM", Port: 9096, SecurityProtocol: "SASL_SSL", SASLMechanisms: []string{"SCRAM-SHA-512", "SCRAM-SHA-256"}},
		{Name: "CLIENT_IAM", Port: 9098, SecurityProtocol: "SASL_SSL", SASLMechanisms: []string{"OAUTHBEARER"}},
	}
}

// documentedLayout reads the properties docs/broker-security.md gives for a
// broker with every MSK port (the block the broker's own tests load), with
// its placeholders filled in.
func documentedLayout(t *testing.T, r *strings.Replacer) map[string]string {
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
	block := strings.TrimSpace(string(doc[i+len(begin) : j]))
	block = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(block, "```properties"), "```"))
	props, err := config.ParseProperties(strings.NewReader(r.Replace(block)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range props {
		out[p.Key] = p.Value
	}
	return out
}

// TestRenderedIsTheDocumentedContract renders a broker with all six
// listeners and checks the listener, TLS, SASL and authorizer settings are
// exactly the documented ones: every documented line is written with its
// value, and no other such setting is.
// TestRenderedOpenMonitoring: an enabled exporter answers the document's
// CIDR blocks, a disabled one only the host, and no block changes nothing.
func TestRenderedOpenMonitoring(t *testing.T) {
	tests := []struct {
		name string
		om   *bootconfig.OpenMonitoring
		want map[string]string // "" = not written
	}{
		{"none", nil, map[string]string{"metrics.allowed.cidrs": "", "metrics.node.listen": "", "metrics.node.allowed.cidrs": ""}},
		{"both", &bootconfig.OpenMonitoring{JMXExporter: true, NodeExporter: true, AllowedCIDRs: []string{"10.0.0.0/16", "192.168.1.7/32"}},
			map[string]string{"metrics.allowed.cidrs": "10.0.0.0/16,192.168.1.7/32", "metrics.node.listen": "10.0.1.5:11002",
				"metrics.node.allowed.cidrs": "10.0.0.0/16,192.168.1.7/32"}},
		{"node only", &bootconfig.OpenMonitoring{NodeExporter: true, AllowedCIDRs: []string{"10.0.0.0/16"}},
			map[string]string{"metrics.allowed.cidrs": "10.0.1.5/32", "metrics.node.listen": "10.0.1.5:11002", "metrics.node.allowed.cidrs": "10.0.0.0/16"}},
		{"broker metrics only", &bootconfig.OpenMonitoring{JMXExporter: true, AllowedCIDRs: []string{"10.0.0.0/16"}},
			map[string]string{"metrics.allowed.cidrs": "10.0.0.0/16", "metrics.node.listen": "", "metrics.node.allowed.cidrs": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := &bootconfig.Document{
				Version: bootconfig.CurrentVersion, ClusterID: "c-0123abcd", ClusterName: "orders", NodeID: 1, Rack: "us-east-1a",
				Listeners:      []bootconfig.Listener{{Name: "PLAINTEXT", Port: 9092, SecurityProtocol: "PLAINTEXT"}},
				Ports:          bootconfig.Ports{InterBroker: 9093, Controller: 9095, Metrics: 11001},
				Controllers:    []bootconfig.Peer{{NodeID: 1, Host: "10.0.1.5", Port: 9095}},
				DataVolume:     bootconfig.Volume{VolumeID: testVolumeID, MountPath: "/var/lib/tributary", Filesystem: "xfs"},
				OpenMonitoring: tt.om,
			}
			if tt.om != nil && tt.om.NodeExporter {
				doc.Ports.NodeMetrics = bootconfig.DefaultNodeMetricsPort
			}
			if err := doc.Validate(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			out := renderConfig(doc, &Instance{ID: testInstanceID, AvailabilityZone: "us-east-1a", PrivateIP: "10.0.1.5"}, filepath.Join(dir, "data"), secretFiles{})
			props, err := config.ParseProperties(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			rendered := map[string]string{}
			for _, p := range props {
				rendered[p.Key] = p.Value
			}
			for k, v := range tt.want {
				if got := rendered[k]; got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			// The broker loads what was written, with the CIDR blocks parsed.
			file := filepath.Join(dir, "broker.properties")
			if err := os.WriteFile(file, out, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(file, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatalf("the broker refuses the rendered config: %v", err)
			}
			if tt.om != nil && tt.om.JMXExporter && len(c.MetricsAllowedCIDRs) != len(tt.om.AllowedCIDRs) {
				t.Errorf("metrics.allowed.cidrs loaded as %v", c.MetricsAllowedCIDRs)
			}
		})
	}
}

func TestRenderedIsTheDocumentedContract(t *testing.T) {
	doc := &bootconfig.Document{
		Version: bootconfig.CurrentVersion, ClusterID: "c-0123abcd", ClusterName: "orders", NodeID: 1, Rack: "us-east-1a",
		Listeners:    mskListeners(),
		InClusterTLS: true,
		TLS:          &bootconfig.TLS{CertificateAuthorityPEM: testCAPEM, ClientCertificateAuthoritiesPEM: testClientCAPEM},
		SuperUsers:   []string{"User:tributary-admin"},
		Ports:        bootconfig.Ports{InterBroker: 9093, Controller: 9095, Metrics: 11001},
		Controllers: []bootconfig.Peer{
			{NodeID: 1, Host: "10.0.1.5", Port: 9095}, {NodeID: 2, Host: "10.0.2.5", Port: 9095}, {NodeID: 3, Host: "10.0.3.5", Port: 9095},
		},
		DataVolume: bootconfig.Volume{VolumeID: testVolumeID, MountPath: "/var/lib/tributary", Filesystem: "xfs"},
		Secrets:    &bootconfig.Envelope{Ciphertext: []byte{1}, KeyID: "k", EncryptionContext: bootconfig.EncryptionContext("c-0123abcd", 1)},
	}
	if err := doc.Validate(); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(t.TempDir(), SecretsDirName)
	files, err := writeSecretFiles(secrets, doc, &testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	out := renderConfig(doc, &Instance{ID: testInstanceID, AvailabilityZone: "us-east-1a", PrivateIP: "10.0.1.5"}, "/var/lib/tributary/data", files)
	props, err := config.ParseProperties(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[string]string{}
	for _, p := range props {
		rendered[p.Key] = p.Value
	}
	want := documentedLayout(t, strings.NewReplacer("<ip>", "10.0.1.5", "<ip1>", "10.0.1.5", "<ip2>", "10.0.2.5", "<ip3>", "10.0.3.5", "<secrets>", secrets))
	security := func(k string) bool {
		return strings.HasPrefix(k, "listener") || strings.HasPrefix(k, "ssl.") || strings.HasPrefix(k, "sasl.") ||
			strings.Contains(k, "listener") || k == "super.users" || k == "tributary.scram.bootstrap.file" || k == "controller.quorum.voters"
	}
	for k, v := range want {
		if got, ok := rendered[k]; !ok || got != v {
			t.Errorf("%s: rendered %q (written %v), documented %q", k, got, ok, v)
		}
	}
	for k, v := range rendered {
		if _, ok := want[k]; !ok && security(k) {
			t.Errorf("%s=%s is rendered but not documented", k, v)
		}
	}
}
