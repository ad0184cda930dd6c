package boot

import (
	"bytes"
	"fmt"
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
	for _, voters := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d controllers", voters), func(t *testing.T) {
			doc := &bootconfig.Document{
				Version: bootconfig.CurrentVersion, ClusterID: "c-0123abcd", ClusterName: "orders", NodeID: 1, Rack: "us-east-1a",
				Listeners: []bootconfig.Listener{
					{Name: "PLAINTEXT", Port: 9092, SecurityProtocol: "PLAINTEXT"},
					{Name: "SASL_SCRAM", Port: 9096, SecurityProtocol: "SASL_SSL", SASLMechanisms: []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}},
					{Name: "SASL_IAM", Port: 9098, SecurityProtocol: "SASL_SSL", SASLMechanisms: []string{"OAUTHBEARER"}},
					{Name: "TLS", Port: 9094, SecurityProtocol: "SSL"},
				},
				Ports:        bootconfig.Ports{InterBroker: 9093, Controller: 9095, Metrics: 11001},
				DataVolume:   bootconfig.Volume{VolumeID: testVolumeID, MountPath: "/var/lib/tributary", Filesystem: "xfs"},
				BrokerConfig: map[string]string{"num.partitions": "6", "min.insync.replicas": "1"},
				Metrics:      bootconfig.Metrics{CloudWatch: true, Namespace: "Tributary", Level: "PER_BROKER", IntervalSeconds: 60},
			}
			for i := 1; i <= voters; i++ {
				doc.Controllers = append(doc.Controllers, bootconfig.Peer{NodeID: int32(i), Host: fmt.Sprintf("127.0.%d.5", i), Port: 9095})
			}
			if err := doc.Validate(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			inst := &Instance{ID: testInstanceID, AvailabilityZone: "us-east-1a", PrivateIP: "127.0.1.5"}
			out := renderConfig(doc, inst, filepath.Join(dir, "data"), secretFiles{TLSKeystore: filepath.Join(dir, "k.pem"), SCRAM: filepath.Join(dir, "s.json")})

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

// TestRenderedMutualTLSNeedsATruststore: a boot document carries no CA
// bundle yet, so the file rendered for a mutual-TLS listener names no
// truststore, and the broker refuses it (rather than serve a listener that
// can accept no client certificate), naming the missing setting.
func TestRenderedMutualTLSNeedsATruststore(t *testing.T) {
	doc := &bootconfig.Document{
		Version: bootconfig.CurrentVersion, ClusterID: "c-0123abcd", ClusterName: "orders", NodeID: 1, Rack: "us-east-1a",
		Listeners:   []bootconfig.Listener{{Name: "TLS", Port: 9094, SecurityProtocol: "SSL", MutualTLS: true}},
		Ports:       bootconfig.Ports{InterBroker: 9093, Controller: 9095, Metrics: 11001},
		Controllers: []bootconfig.Peer{{NodeID: 1, Host: "127.0.1.5", Port: 9095}},
		DataVolume:  bootconfig.Volume{VolumeID: testVolumeID, MountPath: "/var/lib/tributary", Filesystem: "xfs"},
	}
	if err := doc.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := renderConfig(doc, &Instance{ID: testInstanceID, AvailabilityZone: "us-east-1a", PrivateIP: "127.0.1.5"},
		filepath.Join(dir, "data"), secretFiles{TLSKeystore: filepath.Join(dir, "k.pem")})
	file := filepath.Join(dir, ConfigFileName)
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ssl.truststore.location") {
		t.Fatalf("Validate = %v, want a refusal naming ssl.truststore.location", err)
	}
}
