package boot

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/internal/bootconfig"
)

const (
	testInstanceID = "i-0123456789abcdef0"
	testVolumeID   = "vol-0123456789abcdef0"
	testKeyARN     = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	testAccessKey  = "ASIAROLEFROMIMDS0001"
)

var testSecrets = bootconfig.Secrets{
	TLSPrivateKeyPEM:  "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
	TLSCertificatePEM: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
	SCRAMCredentials: []bootconfig.SCRAMCredential{{Username: "tributary-admin", Mechanism: "SCRAM-SHA-512",
		Salt: []byte("salt-salt-salt"), Iterations: 8192, StoredKey: []byte("stored"), ServerKey: []byte("server")}},
}

// testCAPEM and testClientCAPEM stand for the cluster CA and a client CA.
var testCAPEM, testClientCAPEM = func() (string, string) {
	ca, err := tlstest.NewCA("cluster")
	if err != nil {
		panic(err)
	}
	client, err := tlstest.NewCA("clients")
	if err != nil {
		panic(err)
	}
	return ca.PEM, client.PEM
}()

// bootEnv is one instance's world: an IMDS and a KMS on loopback, the AWS
// SDK pointed at them through the environment exactly as the local cloud
// does for an instance, a volume directory and a runtime directory.
type bootEnv struct {
	imds       *fakeIMDS
	kms        *fakeKMS
	volumeDir  string
	runtimeDir string
	doc        *bootconfig.Document
	execs      [][]string
	execEnv    []string
	logs       bytes.Buffer
}

func newBootEnv(t *testing.T) *bootEnv {
	t.Helper()
	e := &bootEnv{volumeDir: t.TempDir(), runtimeDir: filepath.Join(t.TempDir(), "run")}
	e.kms = startFakeKMS(t, &fakeKMS{AccessKeyID: testAccessKey})
	e.doc = &bootconfig.Document{
		ClusterID: "c-0123abcd", ClusterName: "orders", NodeID: 2, Rack: "us-east-1b",
		Listeners: []bootconfig.Listener{
			{Name: "CLIENT", Port: 9092, SecurityProtocol: "PLAINTEXT"},
			{Name: "CLIENT_SASL_SCRAM", Port: 9096, SecurityProtocol: "SASL_SSL", SASLMechanisms: []string{"SCRAM-SHA-512"}},
			{Name: "CLIENT_SECURE", Port: 9094, SecurityProtocol: "SSL", ClientAuth: "required"},
		},
		InClusterTLS: true,
		TLS:          &bootconfig.TLS{CertificateAuthorityPEM: testCAPEM, ClientCertificateAuthoritiesPEM: testClientCAPEM},
		SuperUsers:   []string{"User:CN=tributary-broker,OU=c-0123abcd,O=Tributary", "User:tributary-admin"},
		Ports:        bootconfig.Ports{InterBroker: 9093, Controller: 9095, Metrics: 11001},
		Controllers: []bootconfig.Peer{
			{NodeID: 1, Host: "127.0.1.5", Port: 9095},
			{NodeID: 2, Host: "127.0.2.7", Port: 9095},
			{NodeID: 3, Host: "127.0.3.9", Port: 9095},
		},
		DataVolume: bootconfig.Volume{VolumeID: testVolumeID, MountPath: "/var/lib/tributary", Filesystem: "xfs"},
		BrokerConfig: map[string]string{
			"num.partitions":      "6",
			"log.retention.ms":    "3600000",
			"min.insync.replicas": "3",
		},
		Metrics: bootconfig.Metrics{CloudWatch: true, Namespace: "Tributary", Level: "PER_BROKER", IntervalSeconds: 60},
	}
	plaintext, err := json.Marshal(testSecrets)
	if err != nil {
		t.Fatal(err)
	}
	ctx := bootconfig.EncryptionContext(e.doc.ClusterID, e.doc.NodeID)
	e.doc.Secrets = &bootconfig.Envelope{
		Ciphertext: e.kms.encrypt(testKeyARN, ctx, plaintext), KeyID: testKeyARN, EncryptionContext: ctx,
	}
	userData, err := e.doc.Encode()
	if err != nil {
		t.Fatalf("encoding the test document: %v", err)
	}
	e.imds = startFakeIMDS(t, &fakeIMDS{
		InstanceID: testInstanceID, Region: "us-east-1", AZ: "us-east-1b", PrivateIP: "127.0.2.7",
		UserData: userData, RoleName: "tributary-broker", AccessKeyID: testAccessKey,
	})
	if err := os.Mkdir(filepath.Join(e.volumeDir, testVolumeID), 0o755); err != nil {
		t.Fatal(err)
	}

	// The environment the local cloud gives an instance, and nothing from
	// this machine.
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", e.imds.URL)
	t.Setenv("AWS_ENDPOINT_URL", e.kms.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ENDPOINT_URL_KMS", "AWS_EC2_METADATA_DISABLED", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		EnvRuntimeDir, envSystemdRuntimeDir} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "no-credentials"))
	return e
}

// setUserData replaces the instance's user data.
func (e *bootEnv) setUserData(b []byte) { e.imds.UserData = b }

// reencode re-encodes the document after a test changed it.
func (e *bootEnv) reencode(t *testing.T) {
	t.Helper()
	b, err := json.Marshal(e.doc)
	if err != nil {
		t.Fatal(err)
	}
	e.setUserData(b)
}

func (e *bootEnv) options() Options {
	return Options{
		RuntimeDir: e.runtimeDir,
		VolumeDir:  e.volumeDir,
		IMDSWait:   10 * time.Second,
		KMSWait:    10 * time.Second,
		VolumeWait: 10 * time.Second,
		Executable: "/opt/tributary/bin/tributary-broker",
		Exec: func(argv0 string, argv []string, envv []string) error {
			e.execs = append(e.execs, append([]string{argv0}, argv...))
			e.execEnv = envv
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(&e.logs, nil)),
	}
}

func (e *bootEnv) run(t *testing.T, opts Options) (*Result, *bootstatus.Status, error) {
	t.Helper()
	res, err := Run(t.Context(), opts)
	st, serr := bootstatus.Read(filepath.Join(e.runtimeDir, bootstatus.FileName))
	if serr != nil {
		t.Fatalf("status file after the boot: %v", serr)
	}
	return res, st, err
}

func TestBootRendersConfigAndExecsTheBroker(t *testing.T) {
	e := newBootEnv(t)
	res, st, err := e.run(t, e.options())
	if err != nil {
		t.Fatalf("boot failed: %v\nlogs:\n%s", err, e.logs.String())
	}

	volume := filepath.Join(e.volumeDir, testVolumeID)
	secretsDir := filepath.Join(e.runtimeDir, "secrets")
	want := strings.Join([]string{
		"# Written by `tributary-broker boot` from the boot document (EC2 user data) of",
		"# cluster orders (c-0123abcd), node 2, on instance i-0123456789abcdef0.",
		"# Rewritten on every boot: change the cluster in Terraform, not this file.",
		"node.id=2",
		"broker.rack=us-east-1b",
		"cluster.id=c-0123abcd",
		"tributary.cluster.name=orders",
		"listeners=CLIENT://127.0.2.7:9092,CLIENT_SASL_SCRAM://127.0.2.7:9096,CLIENT_SECURE://127.0.2.7:9094,REPLICATION://127.0.2.7:9093,CONTROLLER://127.0.2.7:9095",
		"advertised.listeners=CLIENT://127.0.2.7:9092,CLIENT_SASL_SCRAM://127.0.2.7:9096,CLIENT_SECURE://127.0.2.7:9094,REPLICATION://127.0.2.7:9093,CONTROLLER://127.0.2.7:9095",
		"listener.security.protocol.map=CLIENT:PLAINTEXT,CLIENT_SASL_SCRAM:SASL_SSL,CLIENT_SECURE:SSL,REPLICATION:SSL,CONTROLLER:SSL",
		"inter.broker.listener.name=REPLICATION",
		"controller.listener.names=CONTROLLER",
		"controller.quorum.voters=1@127.0.1.5:9095,2@127.0.2.7:9095,3@127.0.3.9:9095",
		"ssl.keystore.type=PEM",
		"ssl.keystore.location=" + filepath.Join(secretsDir, "tls-keystore.pem"),
		"ssl.truststore.type=PEM",
		"ssl.truststore.location=" + filepath.Join(secretsDir, "ca.pem"),
		"listener.name.client_sasl_scram.sasl.enabled.mechanisms=SCRAM-SHA-512",
		"listener.name.client_secure.ssl.client.auth=required",
		"listener.name.client_secure.ssl.truststore.location=" + filepath.Join(secretsDir, "client-ca.pem"),
		"tributary.scram.bootstrap.file=" + filepath.Join(secretsDir, "scram-bootstrap.json"),
		"listener.name.replication.ssl.client.auth=required",
		"listener.name.controller.ssl.client.auth=required",
		"super.users=User:CN=tributary-broker,OU=c-0123abcd,O=Tributary;User:tributary-admin",
		"log.dirs=" + filepath.Join(volume, "data"),
		"metrics.listen=127.0.2.7:11001",
		"tributary.metrics.cloudwatch.enable=true",
		"tributary.metrics.cloudwatch.namespace=Tributary",
		"tributary.metrics.cloudwatch.level=PER_BROKER",
		"tributary.metrics.cloudwatch.interval.ms=60000",
		"",
		"# Cluster defaults (Amazon MSK's default configuration) where broker_config sets nothing",
		"auto.create.topics.enable=false",
		"default.replication.factor=3",
		"unclean.leader.election.enable=false",
		"",
		"# broker_config overrides from the cluster definition",
		"log.retention.ms=3600000",
		"min.insync.replicas=3",
		"num.partitions=6",
		"",
	}, "\n")
	configPath := filepath.Join(e.runtimeDir, "broker.properties")
	got, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("broker.properties:\n%s\nwant:\n%s", got, want)
	}

	// Secret files: exactly the decrypted material, readable by the broker's user only.
	keystore := string(mustRead(t, filepath.Join(secretsDir, "tls-keystore.pem"), 0o600))
	if keystore != testSecrets.TLSPrivateKeyPEM+testSecrets.TLSCertificatePEM {
		t.Errorf("tls-keystore.pem = %q, want the key then the certificate", keystore)
	}
	var users []bootconfig.SCRAMCredential
	if err := json.Unmarshal(mustRead(t, filepath.Join(secretsDir, "scram-bootstrap.json"), 0o600), &users); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(users, testSecrets.SCRAMCredentials) {
		t.Errorf("scram-bootstrap.json = %+v, want %+v", users, testSecrets.SCRAMCredentials)
	}
	if got := string(mustRead(t, filepath.Join(secretsDir, "ca.pem"), 0o600)); got != testCAPEM {
		t.Errorf("ca.pem = %q, want the cluster CA", got)
	}
	if got := string(mustRead(t, filepath.Join(secretsDir, "client-ca.pem"), 0o600)); got != testClientCAPEM+testCAPEM {
		t.Errorf("client-ca.pem = %q, want the client CAs then the cluster CA", got)
	}
	if fi, err := os.Stat(secretsDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("secrets dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(filepath.Join(volume, "data")); err != nil || !fi.IsDir() {
		t.Errorf("data directory not created inside the volume: %v", err)
	}

	// The exec: the same binary, `run --config <file>`, and the status file's path in the environment.
	wantArgv := []string{"/opt/tributary/bin/tributary-broker", "/opt/tributary/bin/tributary-broker", "run", "--config", configPath}
	if len(e.execs) != 1 || !slices.Equal(e.execs[0], wantArgv) {
		t.Fatalf("exec calls = %q, want one %q", e.execs, wantArgv)
	}
	if !slices.Contains(e.execEnv, bootstatus.EnvPath+"="+res.StatusPath) {
		t.Errorf("exec environment lacks %s=%s", bootstatus.EnvPath, res.StatusPath)
	}

	// IMDSv2: a token was fetched; KMS was called once with the role's credentials.
	if e.imds.tokenPuts.Load() == 0 {
		t.Error("no IMDSv2 token was requested")
	}
	if n := e.kms.decrypts.Load(); n != 1 {
		t.Errorf("KMS Decrypt calls = %d, want 1", n)
	}

	// The status file tells the whole story.
	if st.Step != bootstatus.StepExec || st.State != bootstatus.StateDone || st.Error != "" {
		t.Errorf("status = %s/%s %q, want exec/done", st.Step, st.State, st.Error)
	}
	if st.InstanceID != testInstanceID || st.ClusterID != "c-0123abcd" || st.NodeID == nil || *st.NodeID != 2 {
		t.Errorf("status identity = %q %q %v", st.InstanceID, st.ClusterID, st.NodeID)
	}
	var steps []string
	for _, s := range st.Steps {
		steps = append(steps, s.Step+"="+s.State)
	}
	wantSteps := []string{"imds=done", "document=done", "secrets=done", "volume=done", "config=done", "exec=done"}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("status steps = %v, want %v", steps, wantSteps)
	}

	// Idempotent: a second boot (reboot, service restart) renders the same file.
	if _, _, err := e.run(t, e.options()); err != nil {
		t.Fatalf("second boot: %v", err)
	}
	if again, _ := os.ReadFile(configPath); !bytes.Equal(again, got) {
		t.Errorf("second boot rendered a different config:\n%s", again)
	}
}

func mustRead(t *testing.T, path string, perm os.FileMode) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonWith returns the document's JSON with one change made by edit.
func jsonWith(t *testing.T, doc *bootconfig.Document, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBootFailures: every way a boot can fail stops at the right step, with
// an error that says what is wrong, in the returned error and in the status
// file, and never execs the broker.
func TestBootFailures(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, e *bootEnv, o *Options)
		step     string
		want     []string // substrings of the error
		checkEnv func(t *testing.T, e *bootEnv)
	}{
		{
			name:  "bad JSON",
			setup: func(t *testing.T, e *bootEnv, o *Options) { e.setUserData([]byte(`{"version": 1, "cluster_id": `)) },
			step:  bootstatus.StepDocument, want: []string{"not valid JSON"},
		},
		{
			name: "document from a newer provider",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				e.setUserData(jsonWith(t, e.doc, func(m map[string]any) { m["version"] = 7 }))
			},
			step: bootstatus.StepDocument, want: []string{"version 7", "newer than this broker understands"},
		},
		{
			name: "missing field",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				e.setUserData(jsonWith(t, e.doc, func(m map[string]any) { delete(m["data_volume"].(map[string]any), "volume_id") }))
			},
			step: bootstatus.StepDocument, want: []string{"data_volume.volume_id"},
		},
		{
			name: "wrong type",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				e.setUserData(jsonWith(t, e.doc, func(m map[string]any) { m["node_id"] = "two" }))
			},
			step: bootstatus.StepDocument, want: []string{"node_id", "int32"},
		},
		{
			name:  "empty user data",
			setup: func(t *testing.T, e *bootEnv, o *Options) { e.setUserData([]byte("\n")) },
			step:  bootstatus.StepDocument, want: []string{"user data is empty"},
		},
		{
			name: "user data base64-encoded twice",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				b, _ := json.Marshal(e.doc)
				e.setUserData([]byte(base64.StdEncoding.EncodeToString(b)))
			},
			step: bootstatus.StepDocument, want: []string{"base64-encoded twice"},
		},
		{
			name:  "no user data",
			setup: func(t *testing.T, e *bootEnv, o *Options) { e.setUserData(nil) },
			step:  bootstatus.StepIMDS, want: []string{testInstanceID, "has no user data"},
		},
		{
			name: "IMDS unreachable",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				l := listenLoopback(t)
				addr := l.Addr().String()
				l.Close() // nothing listens there now
				t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+addr+"/")
				o.IMDSWait = time.Second
			},
			// (Not "connection refused": on a busy machine another process may take the port.)
			step: bootstatus.StepIMDS, want: []string{"did not answer within 1s", "IMDSv2 at http://127.0.0.1:"},
		},
		{
			name: "KMS denies the instance role",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				e.kms.Deny = true
				o.KMSWait = 3 * time.Second // room for a retry on a busy machine
			},
			step: bootstatus.StepSecrets,
			want: []string{"AccessDeniedException", "instance role may not decrypt", testKeyARN, "tributary:cluster-id=c-0123abcd", "tributary:node-id=2"},
			checkEnv: func(t *testing.T, e *bootEnv) {
				if n := e.kms.decrypts.Load(); n < 2 {
					t.Errorf("AccessDenied was tried %d times; it should be retried while the role propagates", n)
				}
			},
		},
		{
			name: "wrong encryption context",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				// Encrypted under the context of another node of the cluster (for
				// example copied from its user data): KMS refuses.
				plaintext, _ := json.Marshal(testSecrets)
				e.doc.Secrets.Ciphertext = e.kms.encrypt(testKeyARN, bootconfig.EncryptionContext("c-0123abcd", 3), plaintext)
				e.reencode(t)
			},
			step: bootstatus.StepSecrets,
			want: []string{"InvalidCiphertextException", "context does not match", "tributary:node-id=2"},
			checkEnv: func(t *testing.T, e *bootEnv) {
				if n := e.kms.decrypts.Load(); n != 1 {
					t.Errorf("a context mismatch was tried %d times; it cannot heal and must fail at once", n)
				}
			},
		},
		{
			name: "secrets of another key",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				e.doc.Secrets.KeyID = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
				e.reencode(t)
			},
			step: bootstatus.StepSecrets, want: []string{"IncorrectKeyException", "were not encrypted with KMS key arn:aws:kms:us-east-1:123456789012:key/00000000"},
		},
		{
			name: "decrypted secrets are not a secrets document",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				ctx := bootconfig.EncryptionContext(e.doc.ClusterID, e.doc.NodeID)
				e.doc.Secrets.Ciphertext = e.kms.encrypt(testKeyARN, ctx, []byte("PRIVATE KEY bytes, not JSON"))
				e.reencode(t)
			},
			step: bootstatus.StepSecrets, want: []string{"not a JSON secrets document"},
			checkEnv: func(t *testing.T, e *bootEnv) {
				if strings.Contains(e.logs.String(), "PRIVATE KEY bytes") {
					t.Error("the decrypted plaintext leaked into the logs")
				}
			},
		},
		{
			name: "volume never attached",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				if err := os.Remove(filepath.Join(e.volumeDir, testVolumeID)); err != nil {
					t.Fatal(err)
				}
				o.VolumeWait = 500 * time.Millisecond
			},
			step: bootstatus.StepVolume, want: []string{testVolumeID, "volume not attached after 500ms"},
		},
		{
			name: "exec fails",
			setup: func(t *testing.T, e *bootEnv, o *Options) {
				o.Exec = func(string, []string, []string) error { return os.ErrPermission }
			},
			step: bootstatus.StepExec, want: []string{"exec /opt/tributary/bin/tributary-broker", "permission denied"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBootEnv(t)
			opts := e.options()
			tt.setup(t, e, &opts)
			_, st, err := e.run(t, opts)
			if err == nil {
				t.Fatal("boot succeeded, want a failure")
			}
			t.Logf("the error a person reads: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if !strings.HasPrefix(err.Error(), "boot step "+tt.step+": ") {
				t.Errorf("error does not name step %s: %v", tt.step, err)
			}
			if st.Step != tt.step || st.State != bootstatus.StateFailed {
				t.Errorf("status = %s/%s, want %s/failed", st.Step, st.State, tt.step)
			}
			if !strings.Contains(err.Error(), st.Error) || st.Error == "" {
				t.Errorf("status error %q is not the boot's error %q", st.Error, err)
			}
			if last := st.Steps[len(st.Steps)-1]; last.Step != tt.step || last.State != bootstatus.StateFailed || last.Error == "" {
				t.Errorf("last status step = %+v", last)
			}
			if !strings.Contains(e.logs.String(), "step failed") {
				t.Errorf("the failure was not logged:\n%s", e.logs.String())
			}
			if tt.step != bootstatus.StepExec && len(e.execs) != 0 {
				t.Errorf("the broker was exec'd after a failed boot: %q", e.execs)
			}
			if tt.checkEnv != nil {
				tt.checkEnv(t, e)
			}
		})
	}
}

func TestBootRetriesIMDSUntilItAnswers(t *testing.T) {
	e := newBootEnv(t)
	e.imds.FailFirst = 3 // IMDS not up for the first requests: the agent retries with backoff
	if _, _, err := e.run(t, e.options()); err != nil {
		t.Fatalf("boot failed: %v\nlogs:\n%s", err, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "instance metadata not available yet") {
		t.Errorf("the IMDS retries were not logged:\n%s", e.logs.String())
	}
}

func TestBootVolumeOnlyStopsBeforeSecrets(t *testing.T) {
	e := newBootEnv(t)
	e.kms.Deny = true // the privileged step must not even ask KMS
	opts := e.options()
	opts.VolumeOnly = true
	res, st, err := e.run(t, opts)
	if err != nil {
		t.Fatalf("volume-only boot: %v", err)
	}
	if want := filepath.Join(e.volumeDir, testVolumeID); res.MountPath != want {
		t.Errorf("mount path = %q, want %q", res.MountPath, want)
	}
	if e.kms.decrypts.Load() != 0 || len(e.execs) != 0 {
		t.Errorf("volume-only step called KMS %d times and exec %d times", e.kms.decrypts.Load(), len(e.execs))
	}
	if st.Step != bootstatus.StepVolume || st.State != bootstatus.StateDone {
		t.Errorf("status = %s/%s, want volume/done", st.Step, st.State)
	}
	if _, err := os.Stat(filepath.Join(e.runtimeDir, ConfigFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volume-only step wrote a config: %v", err)
	}
}

func TestBootWithoutSecrets(t *testing.T) {
	e := newBootEnv(t)
	// A first boot with secrets, then the cluster drops them: the next boot
	// must not leave the old key lying around.
	if _, _, err := e.run(t, e.options()); err != nil {
		t.Fatalf("boot with secrets failed: %v", err)
	}
	decrypts := e.kms.decrypts.Load()
	e.doc.Secrets, e.doc.TLS, e.doc.InClusterTLS = nil, nil, false
	e.doc.Listeners = e.doc.Listeners[:1]
	e.reencode(t)
	if _, _, err := e.run(t, e.options()); err != nil {
		t.Fatalf("boot failed: %v", err)
	}
	cfg := string(mustRead(t, filepath.Join(e.runtimeDir, ConfigFileName), 0o640))
	for _, absent := range []string{"ssl.", "scram.bootstrap", "REPLICATION"} {
		if strings.Contains(cfg, absent) {
			t.Errorf("config without secrets mentions %s:\n%s", absent, cfg)
		}
	}
	for _, name := range []string{TLSKeystoreFileName, SCRAMFileName, CAFileName, ClientCAFileName} {
		if _, err := os.Stat(filepath.Join(e.runtimeDir, SecretsDirName, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the previous boot's %s is still there: %v", name, err)
		}
	}
	if e.kms.decrypts.Load() != decrypts {
		t.Error("KMS was called for a document without secrets")
	}
}

func TestMainFlagsAndRuntimeDir(t *testing.T) {
	t.Setenv(EnvRuntimeDir, "")
	t.Setenv(envSystemdRuntimeDir, "")
	tests := []struct {
		flag, env, systemd, volumeDir, want string
	}{
		{"/flag", "/env", "/systemd", "/vols", "/flag"},
		{"", "/env", "/systemd", "/vols", "/env"},
		{"", "", "/systemd", "/vols", "/systemd"},
		{"", "", "", "/vols", "/vols/.tributary-run"},
		{"", "", "", "", DefaultRuntimeDir},
	}
	for _, tt := range tests {
		t.Setenv(EnvRuntimeDir, tt.env)
		t.Setenv(envSystemdRuntimeDir, tt.systemd)
		if got := runtimeDir(tt.flag, tt.volumeDir); got != tt.want {
			t.Errorf("runtimeDir(%q, %q) with env %q systemd %q = %q, want %q", tt.flag, tt.volumeDir, tt.env, tt.systemd, got, tt.want)
		}
	}
	if err := runMain(t.Context(), []string{"extra"}, io.Discard); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Errorf("stray argument: err = %v", err)
	}
	if err := runMain(t.Context(), []string{"--no-such-flag"}, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestEscapePropertyValue(t *testing.T) {
	tests := map[string]string{
		"plain":         "plain",
		`C:\dir`:        `C:\\dir`,
		" leading":      `\ leading`,
		"inner space":   "inner space",
		"tab\tand\nnew": `tab\tand\nnew`,
		"":              "",
	}
	for in, want := range tests {
		if got := escapePropertyValue(in); got != want {
			t.Errorf("escapePropertyValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestImageUnitFlags keeps the image's systemd unit and the agent's flags in
// step: every `tributary-broker boot` command line in the unit must parse.
func TestImageUnitFlags(t *testing.T) {
	unit, err := os.ReadFile("../../packer/files/tributary-broker.service")
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for line := range strings.Lines(string(unit)) {
		_, cmd, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || !strings.HasPrefix(strings.TrimSpace(line), "Exec") {
			continue
		}
		fields := strings.Fields(strings.TrimLeft(cmd, "+-@!:"))
		if len(fields) < 2 || fields[0] != "/usr/local/bin/tributary-broker" || fields[1] != "boot" {
			continue
		}
		found++
		var stderr bytes.Buffer
		opts, err := parseFlags(fields[2:], &stderr)
		if err != nil {
			t.Errorf("unit line %q does not parse: %v\n%s", line, err, stderr.String())
		}
		if opts.RuntimeDir != DefaultRuntimeDir {
			t.Errorf("unit line %q: runtime dir %q, want %q (RuntimeDirectory=tributary)", line, opts.RuntimeDir, DefaultRuntimeDir)
		}
	}
	if found != 2 {
		t.Errorf("found %d boot command lines in the unit, want 2 (ExecStartPre and ExecStart)", found)
	}
}

// TestBootWritesTheRenewedCertificate: the boot of an instance launched
// from a template that still holds an expired certificate writes the
// renewed one of the broker's secret as the keystore, so the broker serves
// it from its first connection, and the secrets step says which it took.
func TestBootWritesTheRenewedCertificate(t *testing.T) {
	e := newBootEnv(t)
	ca, err := tlstest.NewCA("cluster")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old, err := ca.IssueValid("broker", now.Add(-90*24*time.Hour), now.Add(-time.Hour), "127.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := ca.IssueValid("broker", now.Add(-time.Minute), now.Add(60*24*time.Hour), "127.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	seal := func(s bootconfig.Secrets) *bootconfig.Envelope {
		plaintext, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		ctx := bootconfig.EncryptionContext(e.doc.ClusterID, e.doc.NodeID)
		return &bootconfig.Envelope{Ciphertext: e.kms.encrypt(testKeyARN, ctx, plaintext), KeyID: testKeyARN, EncryptionContext: ctx}
	}
	inDoc := testSecrets
	inDoc.TLSPrivateKeyPEM, inDoc.TLSCertificatePEM = old.KeyPEM, old.CertPEM
	e.doc.TLS.CertificateAuthorityPEM = ca.PEM
	e.doc.Secrets = seal(inDoc)
	e.reencode(t)
	delivered, err := json.Marshal(seal(bootconfig.Secrets{TLSPrivateKeyPEM: renewed.KeyPEM, TLSCertificatePEM: renewed.CertPEM}))
	if err != nil {
		t.Fatal(err)
	}
	opts := e.options()
	opts.Secrets = &oneSecret{name: bootconfig.CertificateSecretName(e.doc.ClusterID, e.doc.NodeID), value: string(delivered), version: "v2"}
	_, st, err := e.run(t, opts)
	if err != nil {
		t.Fatalf("boot failed: %v\nlogs:\n%s", err, e.logs.String())
	}
	keystore, err := os.ReadFile(filepath.Join(e.runtimeDir, "secrets", "tls-keystore.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if string(keystore) != renewed.KeyPEM+renewed.CertPEM {
		t.Fatal("the keystore is not the renewed key and certificate")
	}
	var detail string
	for _, s := range st.Steps {
		if s.Step == bootstatus.StepSecrets {
			detail = s.Detail
		}
	}
	if !strings.Contains(detail, "renewed certificate of secret") {
		t.Errorf("the secrets step says %q, not that it took the renewed certificate", detail)
	}
}
