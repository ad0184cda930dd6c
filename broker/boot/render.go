package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/bootconfig"
)

// Names of the files the agent writes into its runtime directory.
const (
	ConfigFileName = "broker.properties"
	SecretsDirName = "secrets"
	// TLSKeystoreFileName holds the TLS private key followed by the
	// certificate chain, the layout Kafka's ssl.keystore.type=PEM reads.
	TLSKeystoreFileName = "tls-keystore.pem"
	// CAFileName holds the cluster CA: what brokers trust from each other.
	CAFileName = "ca.pem"
	// ClientCAFileName holds the CAs whose client certificates the mutual
	// TLS listeners accept: the document's client CAs and the cluster CA
	// (which signed the provider's own client certificate).
	ClientCAFileName = "client-ca.pem"
	// SCRAMFileName holds the bootstrap SCRAM users as JSON, salted
	// ([{"username","mechanism","salt","iterations","stored_key","server_key"}],
	// byte fields in base64), read by the broker at every start.
	SCRAMFileName = "scram-bootstrap.json"
	// DataDirName is the log directory inside the mounted volume.
	DataDirName = "data"
)

// Names of settings the agent writes besides the plain identity ones. Who
// may set what is the settings table's (broker/config): every key written
// here is a boot-agent setting there, and the boot document refuses
// broker_config entries for those (TestRenderedKeysAreTheAgents).
const (
	keyProtocolMap     = "listener.security.protocol.map"
	keyKeystoreType    = "ssl.keystore.type"
	keyKeystoreFile    = "ssl.keystore.location"
	keyTruststoreType  = "ssl.truststore.type"
	keyTruststoreFile  = "ssl.truststore.location"
	keySCRAMBootstrap  = "tributary.scram.bootstrap.file"
	keyClusterName     = "tributary.cluster.name"
	keyCWEnable        = "tributary.metrics.cloudwatch.enable"
	keyCWNamespace     = "tributary.metrics.cloudwatch.namespace"
	keyCWLevel         = "tributary.metrics.cloudwatch.level"
	keyCWIntervalMS    = "tributary.metrics.cloudwatch.interval.ms"
	keyLogsEnable      = "tributary.logs.cloudwatch.enable"
	keyLogsGroup       = "tributary.logs.cloudwatch.log.group"
	keyLogsS3Enable    = "tributary.logs.s3.enable"
	keyLogsS3Bucket    = "tributary.logs.s3.bucket"
	keyLogsS3KeyPrefix = "tributary.logs.s3.key.prefix"
	keyLogsFirehose    = "tributary.logs.firehose.enable"
	keyLogsFHStream    = "tributary.logs.firehose.delivery.stream"
	listenerNamePrefix = "listener.name."
)

// The in-cluster listeners' names when in-cluster traffic is encrypted
// (docs/broker-security.md, "The properties of each MSK port").
const (
	replicationListener = "REPLICATION"
	controllerListener  = "CONTROLLER"
)

// secretFiles are the paths of the secret files written for this boot.
type secretFiles struct {
	TLSKeystore string // "" when the document has no TLS key
	CA          string // "" when the document has no cluster CA
	ClientCA    string // "" when no listener asks for client certificates
	SCRAM       string // "" when it has no bootstrap users
}

// all lists the paths written.
func (f secretFiles) all() []string { return []string{f.TLSKeystore, f.CA, f.ClientCA, f.SCRAM} }

// writeSecretFiles writes the decrypted key material, and the CA bundles
// beside it, into dir with mode 0600 (the directory 0700). On an instance
// dir is under /run, a tmpfs: the secrets never touch a disk. (The local
// cloud gives each instance its own runtime directory under the cloud's
// state directory instead, on the host's disk, with the same modes.)
//
// Files a previous boot wrote and this one does not (the cluster turned TLS
// off, say) are removed, so no stale key outlives its use. Nothing written
// here is ever logged.
func writeSecretFiles(dir string, doc *bootconfig.Document, s *bootconfig.Secrets) (files secretFiles, err error) {
	defer func() {
		if err == nil {
			err = removeStaleSecrets(dir, files)
		}
	}()
	if s == nil && doc.TLS == nil {
		return files, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, fmt.Errorf("creating the secrets directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return files, fmt.Errorf("securing the secrets directory: %w", err)
	}
	if s != nil && (s.TLSPrivateKeyPEM != "" || s.TLSCertificatePEM != "") {
		switch {
		case s.TLSPrivateKeyPEM == "":
			return files, errors.New("the secrets hold a TLS certificate without its private key")
		case s.TLSCertificatePEM == "":
			return files, errors.New("the secrets hold a TLS private key without its certificate")
		}
		files.TLSKeystore = filepath.Join(dir, TLSKeystoreFileName)
		pem := strings.TrimRight(s.TLSPrivateKeyPEM, "\n") + "\n" + strings.TrimRight(s.TLSCertificatePEM, "\n") + "\n"
		if err := writeFileAtomic(files.TLSKeystore, []byte(pem), 0o600); err != nil {
			return files, err
		}
	}
	if t := doc.TLS; t != nil {
		files.CA = filepath.Join(dir, CAFileName)
		if err := writeFileAtomic(files.CA, []byte(pemText(t.CertificateAuthorityPEM)), 0o600); err != nil {
			return files, err
		}
		if slices.ContainsFunc(doc.Listeners, func(l bootconfig.Listener) bool { return l.ClientAuth != "" }) {
			files.ClientCA = filepath.Join(dir, ClientCAFileName)
			bundle := pemText(t.ClientCertificateAuthoritiesPEM) + pemText(t.CertificateAuthorityPEM)
			if err := writeFileAtomic(files.ClientCA, []byte(bundle), 0o600); err != nil {
				return files, err
			}
		}
	}
	if s != nil && len(s.SCRAMCredentials) > 0 {
		files.SCRAM = filepath.Join(dir, SCRAMFileName)
		data, err := json.MarshalIndent(s.SCRAMCredentials, "", "  ")
		if err != nil {
			return files, fmt.Errorf("encoding the SCRAM bootstrap users: %w", err)
		}
		if err := writeFileAtomic(files.SCRAM, append(data, '\n'), 0o600); err != nil {
			return files, err
		}
	}
	return files, nil
}

// pemText ends non-empty PEM text with exactly one line break, so that
// bundles concatenate cleanly.
func pemText(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return s + "\n"
}

// removeStaleSecrets deletes the secret files of earlier boots that this boot
// did not write.
func removeStaleSecrets(dir string, written secretFiles) error {
	for _, name := range []string{TLSKeystoreFileName, CAFileName, ClientCAFileName, SCRAMFileName} {
		path := filepath.Join(dir, name)
		if slices.Contains(written.all(), path) {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing the stale secret file %s: %w", path, err)
		}
	}
	return nil
}

// renderConfig returns the broker's config file (Java properties, Kafka's
// names) for this document on this instance: the settings the agent owns,
// the cluster defaults where broker_config says nothing, then broker_config
// itself. The document was validated against the settings table when it
// was decoded, so every override is a user setting with a valid value.
func renderConfig(doc *bootconfig.Document, inst *Instance, dataDir string, secrets secretFiles) []byte {
	ip := inst.PrivateIP
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by `tributary-broker boot` from the boot document (EC2 user data) of\n")
	fmt.Fprintf(&b, "# cluster %s (%s), node %d, on instance %s.\n", doc.ClusterName, doc.ClusterID, doc.NodeID, inst.ID)
	fmt.Fprintf(&b, "# Rewritten on every boot: change the cluster in Terraform, not this file.\n")

	set := func(key, value string) {
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(escapePropertyValue(value))
		b.WriteByte('\n')
	}

	set("node.id", strconv.Itoa(int(doc.NodeID)))
	// The instance's AZ is the truth about where the broker runs (its EBS
	// volume lives there); the document's rack is what the provider meant.
	set("broker.rack", inst.AvailabilityZone)
	set("cluster.id", doc.ClusterID)
	set(keyClusterName, doc.ClusterName)

	var listeners, protocols []string
	for _, l := range doc.Listeners {
		listeners = append(listeners, fmt.Sprintf("%s://%s", l.Name, hostPort(ip, l.Port)))
		protocols = append(protocols, l.Name+":"+l.SecurityProtocol)
	}
	if doc.InClusterTLS {
		listeners = append(listeners,
			fmt.Sprintf("%s://%s", replicationListener, hostPort(ip, doc.Ports.InterBroker)),
			fmt.Sprintf("%s://%s", controllerListener, hostPort(ip, doc.Ports.Controller)))
		protocols = append(protocols, replicationListener+":SSL", controllerListener+":SSL")
	}
	set("listeners", strings.Join(listeners, ","))
	set("advertised.listeners", strings.Join(listeners, ","))
	set(keyProtocolMap, strings.Join(protocols, ","))
	if doc.InClusterTLS {
		set("inter.broker.listener.name", replicationListener)
		set("controller.listener.names", controllerListener)
	} else {
		set("inter.broker.listener.port", strconv.Itoa(doc.Ports.InterBroker))
		// The cluster was made without in-cluster encryption
		// (encryption_in_transit.in_cluster = false): that is the
		// operator's explicit choice, which the broker otherwise refuses
		// next to a TLS client listener.
		if slices.ContainsFunc(doc.Listeners, func(l bootconfig.Listener) bool {
			return l.SecurityProtocol == "SSL" || l.SecurityProtocol == "SASL_SSL"
		}) {
			set("tributary.allow.plaintext.inter.broker", "true")
		}
	}
	voters := make([]string, 0, len(doc.Controllers))
	for _, p := range doc.Controllers {
		voters = append(voters, fmt.Sprintf("%d@%s", p.NodeID, hostPort(p.Host, p.Port)))
	}
	set("controller.quorum.voters", strings.Join(voters, ","))
	if secrets.TLSKeystore != "" {
		set(keyKeystoreType, "PEM")
		set(keyKeystoreFile, secrets.TLSKeystore)
	}
	if secrets.CA != "" {
		set(keyTruststoreType, "PEM")
		set(keyTruststoreFile, secrets.CA)
	}
	for _, l := range doc.Listeners {
		prefix := listenerNamePrefix + strings.ToLower(l.Name) + "."
		if l.ClientAuth != "" {
			set(prefix+"ssl.client.auth", l.ClientAuth)
			// Client certificates chain to the client CAs, never to the
			// cluster CA alone: the brokers' own certificates must not be
			// the only way in, and a client CA must never let anyone in as
			// a broker on the in-cluster listeners, which trust ca.pem.
			set(prefix+"ssl.truststore.location", secrets.ClientCA)
		}
		if len(l.SASLMechanisms) > 0 {
			set(prefix+"sasl.enabled.mechanisms", strings.Join(l.SASLMechanisms, ","))
		}
	}
	if secrets.SCRAM != "" {
		set(keySCRAMBootstrap, secrets.SCRAM)
	}
	if doc.InClusterTLS {
		for _, name := range []string{replicationListener, controllerListener} {
			set(listenerNamePrefix+strings.ToLower(name)+".ssl.client.auth", "required")
		}
	}
	if len(doc.SuperUsers) > 0 {
		set("super.users", strings.Join(doc.SuperUsers, ";"))
	}

	set("log.dirs", dataDir)
	set("metrics.listen", hostPort(ip, doc.Ports.Metrics))
	if om := doc.OpenMonitoring; om != nil {
		// A port whose exporter is off still answers the host itself
		// (AllowSources always lets the listening address in): the
		// broker's own address is the narrowest list there is.
		own := ip + "/32"
		if strings.Contains(ip, ":") {
			own = ip + "/128"
		}
		if om.JMXExporter {
			set("metrics.allowed.cidrs", strings.Join(om.AllowedCIDRs, ","))
		} else {
			set("metrics.allowed.cidrs", own)
		}
		if om.NodeExporter {
			set("metrics.node.listen", hostPort(ip, doc.Ports.NodeMetrics))
			set("metrics.node.allowed.cidrs", strings.Join(om.AllowedCIDRs, ","))
		}
	}
	set(keyCWEnable, strconv.FormatBool(doc.Metrics.CloudWatch))
	if doc.Metrics.CloudWatch {
		set(keyCWNamespace, doc.Metrics.Namespace)
		set(keyCWLevel, doc.Metrics.Level)
		set(keyCWIntervalMS, strconv.Itoa(doc.Metrics.IntervalSeconds*1000))
	}
	if l := doc.Logging; l != nil && l.CloudWatchLogs != nil && l.CloudWatchLogs.Enabled {
		set(keyLogsEnable, "true")
		set(keyLogsGroup, l.CloudWatchLogs.LogGroup)
	}
	if l := doc.Logging; l != nil && l.S3 != nil && l.S3.Enabled {
		set(keyLogsS3Enable, "true")
		set(keyLogsS3Bucket, l.S3.Bucket)
		set(keyLogsS3KeyPrefix, bootconfig.S3LogKeyPrefix(l.S3.Prefix, inst.AccountID, inst.Region, doc.ClusterName, doc.ClusterID))
	}
	if l := doc.Logging; l != nil && l.Firehose != nil && l.Firehose.Enabled {
		set(keyLogsFirehose, "true")
		set(keyLogsFHStream, l.Firehose.DeliveryStream)
	}

	// A cluster never has more controller voters than brokers, so their
	// number sizes the defaults to what the cluster can satisfy.
	defaults := config.ClusterDefaults(len(doc.Controllers))
	var unset []string
	for _, k := range slices.Sorted(maps.Keys(defaults)) {
		if _, ok := doc.BrokerConfig[k]; !ok {
			unset = append(unset, k)
		}
	}
	if len(unset) > 0 {
		b.WriteString("\n# Cluster defaults (Amazon MSK's default configuration) where broker_config sets nothing\n")
		for _, k := range unset {
			set(k, defaults[k])
		}
	}
	if len(doc.BrokerConfig) > 0 {
		b.WriteString("\n# broker_config overrides from the cluster definition\n")
		for _, k := range slices.Sorted(maps.Keys(doc.BrokerConfig)) {
			set(k, doc.BrokerConfig[k])
		}
	}
	return []byte(b.String())
}

// hostPort joins host and port, bracketing IPv6 addresses.
func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// escapePropertyValue escapes a value for a Java-properties file: backslashes,
// leading white space (which the format would strip) and line breaks (which
// the document's validation already refuses in overrides).
func escapePropertyValue(v string) string {
	var b strings.Builder
	for i, r := range v {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == ' ' && i == 0:
			b.WriteString(`\ `)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so a crash never leaves a half-written config or key.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
