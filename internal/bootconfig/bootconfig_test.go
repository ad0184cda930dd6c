package bootconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCAPEM is a throwaway CA certificate for the documents below.
var testCAPEM = sync.OnceValue(func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
})

// validDocument is a complete three-AZ broker document.
func validDocument() *Document {
	return &Document{
		Version:     CurrentVersion,
		ClusterID:   "trb-0123456789",
		ClusterName: "orders",
		NodeID:      2,
		Rack:        "us-east-1b",
		Listeners: []Listener{
			{Name: "CLIENT", Port: DefaultPlaintextPort, SecurityProtocol: "PLAINTEXT"},
			{Name: "CLIENT_SASL_SCRAM", Port: DefaultSCRAMPort, SecurityProtocol: "SASL_SSL", SASLMechanisms: []string{"SCRAM-SHA-512"}},
			{Name: "CLIENT_SECURE", Port: DefaultTLSPort, SecurityProtocol: "SSL", ClientAuth: "requested"},
		},
		InClusterTLS: true,
		TLS:          &TLS{CertificateAuthorityPEM: testCAPEM(), ClientCertificateAuthoritiesPEM: testCAPEM()},
		SuperUsers:   []string{"User:CN=tributary-broker,OU=trb-0123456789,O=Tributary", "User:tributary-admin"},
		Ports:        Ports{InterBroker: DefaultInterBrokerPort, Controller: DefaultControllerPort, Metrics: DefaultMetricsPort},
		Controllers: []Peer{
			{NodeID: 1, Host: "10.0.1.10", Port: DefaultControllerPort},
			{NodeID: 2, Host: "10.0.2.10", Port: DefaultControllerPort},
			{NodeID: 3, Host: "10.0.3.10", Port: DefaultControllerPort},
		},
		DataVolume:   Volume{VolumeID: "vol-0123456789abcdef0", DeviceName: "/dev/sdf", MountPath: DefaultMountPath, Filesystem: DefaultFilesystem},
		Attachments:  &Attachments{NetworkInterfaceDeviceIndex: 1},
		BrokerConfig: map[string]string{"log.retention.ms": "604800000", "num.partitions": "6"},
		Metrics:      Metrics{CloudWatch: true, Namespace: "Tributary/Kafka", Level: "PER_BROKER", IntervalSeconds: 60},
		Secrets: &Envelope{
			Ciphertext:        []byte{1, 2, 3, 4},
			KeyID:             "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			EncryptionContext: EncryptionContext("trb-0123456789", 2),
		},
		ProviderSecrets: &Envelope{
			Ciphertext:        []byte{5, 6, 7},
			KeyID:             "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			EncryptionContext: ProviderEncryptionContext("trb-0123456789"),
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, doc := range map[string]*Document{
		"full": validDocument(),
		"minimal": func() *Document {
			d := validDocument()
			d.Secrets, d.BrokerConfig, d.Metrics, d.ProviderSecrets, d.Attachments = nil, nil, Metrics{}, nil, nil
			d.Listeners = d.Listeners[:1]
			d.InClusterTLS, d.TLS, d.SuperUsers = false, nil, nil
			return d
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := doc.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, doc) {
				t.Fatalf("round trip changed the document:\n got %+v\nwant %+v", got, doc)
			}
		})
	}
}

func TestEncodeSetsVersion(t *testing.T) {
	d := validDocument()
	d.Version = 0
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"version":2`) {
		t.Fatalf("encoded document lacks version 2: %s", b)
	}
}

// TestDecodeUpgradesVersion1 reads documents an older provider wrote: they
// are upgraded in memory (mutual_tls becomes client_auth "required"), and
// the fields version 2 added are refused in them.
func TestDecodeUpgradesVersion1(t *testing.T) {
	v1 := `{"version":1,"cluster_id":"trb-0123456789","cluster_name":"orders","node_id":2,"rack":"us-east-1b",` +
		`"listeners":[{"name":"PLAINTEXT","port":9092,"security_protocol":"PLAINTEXT"},{"name":"TLS","port":9094,"security_protocol":"SSL","mutual_tls":true},{"name":"T2","port":9097,"security_protocol":"SSL","mutual_tls":false}],` +
		`"ports":{"inter_broker":9093,"controller":9095,"metrics":11001},"controllers":[{"node_id":1,"host":"10.0.1.10","port":9095}],` +
		`"data_volume":{"volume_id":"vol-0123456789abcdef0","mount_path":"/var/lib/tributary","filesystem":"xfs"},"metrics":{"cloudwatch":false},` +
		`"secrets":{"ciphertext":"AQID","kms_key_id":"k","encryption_context":{"tributary:cluster-id":"trb-0123456789","tributary:node-id":"2"}}}`
	// A version 1 document with TLS listeners but no tls block is what an
	// older provider wrote; it is refused now for the missing CA, with the
	// field named, rather than half understood.
	if _, err := Decode([]byte(v1)); err == nil || !strings.Contains(err.Error(), "field tls must give the cluster CA") {
		t.Fatalf("Decode of a version 1 TLS document: %v", err)
	}
	plain := strings.Replace(v1, `,{"name":"TLS","port":9094,"security_protocol":"SSL","mutual_tls":true},{"name":"T2","port":9097,"security_protocol":"SSL","mutual_tls":false}`, `,{"name":"T2","port":9097,"security_protocol":"PLAINTEXT","mutual_tls":false}`, 1)
	got, err := Decode([]byte(plain))
	if err != nil {
		t.Fatalf("Decode of a version 1 document: %v", err)
	}
	if got.Version != CurrentVersion || len(got.Listeners) != 2 || got.Listeners[1].ClientAuth != "" {
		t.Fatalf("upgraded document %+v", got)
	}
	mutual := strings.Replace(v1, `"listeners"`, `"tls":{"certificate_authority_pem":"x"},"listeners"`, 1)
	if _, err := Decode([]byte(mutual)); err == nil || !strings.Contains(err.Error(), "tls is not a field of version 1") {
		t.Fatalf("Decode of a version 1 document with tls: %v", err)
	}
	// mutual_tls true becomes client_auth required.
	d := validDocument()
	d.Listeners[2].ClientAuth = "required"
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"attachments", "in_cluster_tls", "tls", "super_users", "provider_secrets"} {
		delete(raw, f)
	}
	d.InClusterTLS, d.TLS, d.SuperUsers, d.ProviderSecrets, d.Attachments = false, nil, nil, nil, nil
	d.Listeners = d.Listeners[:1]
	raw["listeners"] = json.RawMessage(`[{"name":"CLIENT","port":9092,"security_protocol":"PLAINTEXT","mutual_tls":false}]`)
	raw["version"] = json.RawMessage(`1`)
	old, _ := json.Marshal(raw)
	got, err = Decode(old)
	if err != nil {
		t.Fatalf("Decode of a version 1 document: %v", err)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("upgraded document:\n got %+v\nwant %+v", got, d)
	}
	withClientAuth := strings.Replace(string(old), `"mutual_tls":false`, `"client_auth":"required"`, 1)
	if _, err := Decode([]byte(withClientAuth)); err == nil || !strings.Contains(err.Error(), "client_auth is not a field of version 1") {
		t.Fatalf("Decode of a version 1 document with client_auth: %v", err)
	}
	withAttachments := strings.Replace(string(old), `"data_volume"`, `"attachments":{"network_interface_device_index":1},"data_volume"`, 1)
	if _, err := Decode([]byte(withAttachments)); err == nil || !strings.Contains(err.Error(), "attachments is not a field of version 1") {
		t.Fatalf("Decode of a version 1 document with attachments: %v, want a refusal naming the field", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		field  string
		mutate func(*Document)
	}{
		{"version", func(d *Document) { d.Version = 7 }},
		{"cluster_id", func(d *Document) { d.ClusterID = "" }},
		{"cluster_name", func(d *Document) { d.ClusterName = "9lives" }},
		{"node_id", func(d *Document) { d.NodeID = -1 }},
		{"rack", func(d *Document) { d.Rack = " " }},
		{"listeners", func(d *Document) { d.Listeners = nil }},
		{"listeners[0].name", func(d *Document) { d.Listeners[0].Name = "plain" }},
		{"listeners[1].name", func(d *Document) { d.Listeners[1].Name = "CLIENT" }},
		{"listeners[0].port", func(d *Document) { d.Listeners[0].Port = 70000 }},
		{"listeners[1].port", func(d *Document) { d.Listeners[1].Port = DefaultPlaintextPort }},
		{"listeners[0].security_protocol", func(d *Document) { d.Listeners[0].SecurityProtocol = "SASL_PLAINTEXT" }},
		{"listeners[1].sasl_mechanisms", func(d *Document) { d.Listeners[1].SASLMechanisms = nil }},
		{"listeners[0].sasl_mechanisms", func(d *Document) { d.Listeners[0].SASLMechanisms = []string{"PLAIN"} }},
		{"listeners[1].sasl_mechanisms[0]", func(d *Document) { d.Listeners[1].SASLMechanisms = []string{"PLAIN"} }},
		{"listeners[0].client_auth", func(d *Document) { d.Listeners[0].ClientAuth = "required" }},
		{"listeners[2].client_auth", func(d *Document) { d.Listeners[2].ClientAuth = "always" }},
		{"tls", func(d *Document) { d.TLS = nil }},
		{"logging.s3.bucket", func(d *Document) { d.Logging = &Logging{S3: &S3Logs{Enabled: true, Bucket: "Logs_Bucket"}} }},
		{"logging.s3.bucket", func(d *Document) { d.Logging = &Logging{S3: &S3Logs{Enabled: true, Bucket: "127.0.0.1"}} }},
		{"logging.s3.prefix", func(d *Document) { d.Logging = &Logging{S3: &S3Logs{Enabled: true, Bucket: "logs", Prefix: "/abs"}} }},
		{"logging.s3.prefix", func(d *Document) { d.Logging = &Logging{S3: &S3Logs{Enabled: true, Bucket: "logs", Prefix: "a b"}} }},
		{"logging.firehose.delivery_stream", func(d *Document) { d.Logging = &Logging{Firehose: &FirehoseLogs{Enabled: true}} }},
		{"logging.firehose.delivery_stream", func(d *Document) { d.Logging = &Logging{Firehose: &FirehoseLogs{Enabled: true, DeliveryStream: "a/b"}} }},
		{"open_monitoring.allowed_cidrs[1]", func(d *Document) {
			d.OpenMonitoring = &OpenMonitoring{JMXExporter: true, AllowedCIDRs: []string{"10.0.0.0/16", "10.0.0.0"}}
		}},
		{"open_monitoring.allowed_cidrs", func(d *Document) { d.OpenMonitoring = &OpenMonitoring{JMXExporter: true} }},
		{"ports.node_metrics", func(d *Document) {
			d.OpenMonitoring = &OpenMonitoring{NodeExporter: true, AllowedCIDRs: []string{"10.0.0.0/16"}}
		}},
		{"ports.node_metrics", func(d *Document) { d.Ports.NodeMetrics = d.Ports.Metrics }},
		{"tls.certificate_authority_pem", func(d *Document) {
			d.TLS.CertificateAuthorityPEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		}},
		{"tls.client_certificate_authorities_pem", func(d *Document) { d.TLS.ClientCertificateAuthoritiesPEM = "not pem" }},
		{"secrets", func(d *Document) { d.Secrets = nil }},
		{"super_users[1]", func(d *Document) { d.SuperUsers[1] = "admin" }},
		{"super_users[0]", func(d *Document) { d.SuperUsers[0] = "User:a;User:b" }},
		{"provider_secrets.encryption_context", func(d *Document) { d.ProviderSecrets.EncryptionContext = EncryptionContext(d.ClusterID, d.NodeID) }},
		{"provider_secrets.ciphertext", func(d *Document) { d.ProviderSecrets.Ciphertext = nil }},
		{"ports.inter_broker", func(d *Document) { d.Ports.InterBroker = DefaultPlaintextPort }},
		{"ports.controller", func(d *Document) { d.Ports.Controller = 0 }},
		{"controllers", func(d *Document) { d.Controllers = nil }},
		{"controllers[1].node_id", func(d *Document) { d.Controllers[1].NodeID = 1 }},
		{"controllers[2].host", func(d *Document) { d.Controllers[2].Host = "not a host" }},
		{"controllers[0].port", func(d *Document) { d.Controllers[0].Port = -3 }},
		{"data_volume.volume_id", func(d *Document) { d.DataVolume.VolumeID = "vol-XYZ" }},
		{"data_volume.device_name", func(d *Document) { d.DataVolume.DeviceName = "sdf" }},
		{"data_volume.device_name", func(d *Document) { d.DataVolume.DeviceName = "" }},
		{"attachments.network_interface_device_index", func(d *Document) { d.Attachments.NetworkInterfaceDeviceIndex = 0 }},
		{"data_volume.mount_path", func(d *Document) { d.DataVolume.MountPath = "var/lib/x" }},
		{"data_volume.filesystem", func(d *Document) { d.DataVolume.Filesystem = "ext4" }},
		{`broker_config["Log.Retention"]`, func(d *Document) { d.BrokerConfig["Log.Retention"] = "1" }},
		{`broker_config["node.id"]`, func(d *Document) { d.BrokerConfig["node.id"] = "5" }},
		{`broker_config["ssl.keystore.location"]`, func(d *Document) { d.BrokerConfig["ssl.keystore.location"] = "/tmp/key.pem" }},
		{`broker_config["min.insync.replicas"]`, func(d *Document) { d.BrokerConfig["min.insync.replicas"] = "0" }},
		{`broker_config["log.retention.msec"]`, func(d *Document) { d.BrokerConfig["log.retention.msec"] = "1" }},
		{`broker_config["broker.heartbeat.interval.ms"]`, func(d *Document) { d.BrokerConfig["broker.heartbeat.interval.ms"] = "1000" }},
		{`broker_config["log.segment.bytes"]`, func(d *Document) { d.BrokerConfig["log.segment.bytes"] = "1\nnode.id=9" }},
		{"metrics.namespace", func(d *Document) { d.Metrics.Namespace = "AWS/Kafka" }},
		{"metrics.level", func(d *Document) { d.Metrics.Level = "VERBOSE" }},
		{"metrics.interval_seconds", func(d *Document) { d.Metrics.IntervalSeconds = 1 }},
		{"secrets.ciphertext", func(d *Document) { d.Secrets.Ciphertext = nil }},
		{"secrets.kms_key_id", func(d *Document) { d.Secrets.KeyID = "" }},
		{"secrets.encryption_context", func(d *Document) { d.Secrets.EncryptionContext = EncryptionContext(d.ClusterID, 9) }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			d := validDocument()
			tt.mutate(d)
			err := d.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad document")
			}
			var fe *FieldError
			found := false
			for _, e := range unwrapAll(err) {
				if errors.As(e, &fe) && fe.Field == tt.field {
					found = true
				}
			}
			if !found {
				t.Fatalf("error does not name field %s: %v", tt.field, err)
			}
			if _, err := d.Encode(); err == nil {
				t.Fatal("Encode accepted a document that does not validate")
			}
		})
	}
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestDecodeErrors(t *testing.T) {
	valid, err := validDocument().Encode()
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte {
		if !strings.Contains(string(valid), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return []byte(strings.Replace(string(valid), old, new, 1))
	}
	tests := []struct {
		name  string
		input []byte
		want  string
		is    error
	}{
		{"not json", []byte("#!/bin/bash\necho hi"), "not valid JSON", nil},
		{"no version", []byte(`{"cluster_id":"x"}`), "field version is missing", nil},
		{"future version", replace(`"version":2`, `"version":3`), "newer than this broker understands", ErrUnsupportedVersion},
		{"version zero", replace(`"version":2`, `"version":0`), "does not exist", ErrUnsupportedVersion},
		{"unknown field", replace(`"rack"`, `"rak":"x","rack"`), `unknown field "rak"`, nil},
		{"wrong type", replace(`"node_id":2`, `"node_id":"two"`), "field node_id must be int32", nil},
		{"trailing data", append(append([]byte{}, valid...), []byte(` {}`)...), "not valid JSON", nil},
		{"invalid", replace(`"rack":"us-east-1b"`, `"rack":""`), "field rack", nil},
		{"too large", append(valid, []byte(strings.Repeat(" ", MaxUserDataBytes))...), "16 KiB", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.input)
			if err == nil {
				t.Fatal("Decode accepted bad input")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestEncodeRefusesOversizedDocument(t *testing.T) {
	// A valid document that is too big: far more controller voters than
	// any cluster has, each with a long host name.
	d := validDocument()
	for i := len(d.Controllers); i < 200; i++ {
		d.Controllers = append(d.Controllers, Peer{NodeID: int32(100 + i), Host: fmt.Sprintf("broker-%03d.%s.example", i, strings.Repeat("z", 60)), Port: 9095})
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("the oversized document is not otherwise valid: %v", err)
	}
	_, err := d.Encode()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode of a %d-controller document: got %v, want ErrTooLarge", len(d.Controllers), err)
	}
}

func TestSecretsCiphertextIsBase64(t *testing.T) {
	b, err := validDocument().Encode()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw["secrets"]), `"ciphertext":"AQIDBA=="`) {
		t.Fatalf("secrets envelope not base64: %s", raw["secrets"])
	}
}

// TestBrokerConfigJudgedByTheSettingsTable checks that broker_config is
// refused in the broker's own words, naming the key.
func TestBrokerConfigJudgedByTheSettingsTable(t *testing.T) {
	tests := map[string]string{
		"log.retention.msec":  `boot document field broker_config["log.retention.msec"] is not a broker setting (did you mean "log.retention.ms"?)`,
		"min.insync.replicas": `boot document field broker_config["min.insync.replicas"] must be between 1 and 32767, got "0"`,
		"listeners":           `boot document field broker_config["listeners"] is set by the boot agent`,
	}
	for key, want := range tests {
		d := validDocument()
		d.BrokerConfig = map[string]string{key: "0"}
		err := d.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", key, err, want)
		}
	}
	d := validDocument()
	d.BrokerConfig = map[string]string{"min.insync.replicas": "2", "default.replication.factor": "3", "log.cleanup.policy": "compact,delete"}
	if err := d.Validate(); err != nil {
		t.Errorf("valid overrides refused: %v", err)
	}
}

func TestS3LogKeys(t *testing.T) {
	tests := []struct{ prefix, key, arn string }{
		{"", "AWSLogs/111122223333/KafkaBrokerLogs/us-east-1/orders-tc-1/", "arn:aws:s3:::logs/*"},
		{"kafka", "kafka/AWSLogs/111122223333/KafkaBrokerLogs/us-east-1/orders-tc-1/", "arn:aws:s3:::logs/kafka/*"},
		{"kafka/prod/", "kafka/prod/AWSLogs/111122223333/KafkaBrokerLogs/us-east-1/orders-tc-1/", "arn:aws:s3:::logs/kafka/prod/*"},
	}
	for _, tt := range tests {
		if got := S3LogKeyPrefix(tt.prefix, "111122223333", "us-east-1", "orders", "tc-1"); got != tt.key {
			t.Errorf("S3LogKeyPrefix(%q) = %q, want %q", tt.prefix, got, tt.key)
		}
		if got := S3LogObjectsARN("logs", tt.prefix); got != tt.arn {
			t.Errorf("S3LogObjectsARN(%q) = %q, want %q", tt.prefix, got, tt.arn)
		}
		if !strings.HasPrefix("arn:aws:s3:::logs/"+S3LogKeyPrefix(tt.prefix, "1", "r", "c", "i"), strings.TrimSuffix(tt.arn, "*")) {
			t.Errorf("prefix %q: the keys fall outside %s", tt.prefix, tt.arn)
		}
	}
	for _, ok := range []string{"logs", "my.logs-1", "abc"} {
		if !ValidS3BucketName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"ab", "Logs", "a..b", "-ab", "192.168.1.1", "xn--ab", "ab-s3alias", "a_b"} {
		if ValidS3BucketName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
