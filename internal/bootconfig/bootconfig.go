// Package bootconfig is the boot document: the only thing the Terraform provider
// tells a broker. The provider encodes it into EC2 user data; the broker's boot
// agent reads it back from IMDS, validates it and renders the broker config.
//
// The document is versioned JSON. A broker reads every version up to
// CurrentVersion (older documents are upgraded in memory) and refuses newer
// ones with ErrUnsupportedVersion, so an old image never half-understands a new
// provider. Nothing secret travels in clear: key material rides in the Secrets
// envelope, encrypted with the cluster's KMS key under an encryption context
// that names the cluster and the node (see EncryptionContext).
package bootconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// CurrentVersion is the newest document version this code writes and reads.
// Version 2 added Attachments (instances of an Auto Scaling group attach the
// broker's network interface and volume themselves), the cluster's TLS
// (in-cluster encryption, the CAs, client certificates required or requested
// per listener in place of version 1's mutual_tls), super users and the
// provider's sealed secrets.
const CurrentVersion = 2

// MaxUserDataBytes is EC2's limit on user data, counted before base64 encoding.
const MaxUserDataBytes = 16 * 1024

// Default ports, as Amazon MSK uses them (see docs/broker.md).
const (
	DefaultPlaintextPort   = 9092
	DefaultTLSPort         = 9094
	DefaultSCRAMPort       = 9096
	DefaultIAMPort         = 9098
	DefaultInterBrokerPort = 9093
	DefaultControllerPort  = 9095
	DefaultMetricsPort     = 11001
	DefaultNodeMetricsPort = 11002
	DefaultMountPath       = "/var/lib/tributary"
	DefaultFilesystem      = "xfs"
)

// Tags the boot agent finds the broker's own network interface and data
// volume by (the provider tags every object of a cluster so).
const (
	TagClusterID = "tributary:cluster-id"
	TagNodeID    = "tributary:node-id"
)

// Document is version 2 of the boot document.
type Document struct {
	// Version of the document format; Encode sets CurrentVersion when zero.
	Version int `json:"version"`
	// ClusterID is the provider's stable id of the cluster; every AWS object
	// of the cluster is tagged with it.
	ClusterID   string `json:"cluster_id"`
	ClusterName string `json:"cluster_name"`
	// NodeID is the Kafka node id (broker.id) of this broker; it stays with
	// the broker's ENI and volume across instance replacements.
	NodeID int32 `json:"node_id"`
	// Rack is the broker's Availability Zone, used for rack-aware placement.
	Rack string `json:"rack"`
	// Listeners are the client listeners, one per security protocol.
	Listeners []Listener `json:"listeners"`
	// Ports used between brokers and for observability.
	Ports Ports `json:"ports"`
	// Controllers are the Raft metadata quorum's voters (one per AZ by default),
	// addressed by their ENI private IPs, which never change.
	Controllers []Peer `json:"controllers"`
	// DataVolume is the persistent EBS volume that holds the log.
	DataVolume Volume `json:"data_volume"`
	// Attachments, when set, says the instance was launched without the
	// broker's network interface and data volume (by the broker's Auto
	// Scaling group of one): the boot agent attaches both itself, found by
	// the tags TagClusterID and TagNodeID, and the broker listens on the
	// interface's address. Absent, the instance was launched on the
	// interface (device 0) with the volume attached, and the broker listens
	// on the instance's primary address.
	Attachments *Attachments `json:"attachments,omitempty"`
	// InClusterTLS encrypts replication (ports.inter_broker) and the
	// metadata quorum (ports.controller) with TLS, brokers presenting their
	// certificates both ways; off, both are plaintext.
	InClusterTLS bool `json:"in_cluster_tls,omitempty"`
	// TLS is the public half of the cluster's certificates; required when
	// a listener or the cluster's own traffic uses TLS.
	TLS *TLS `json:"tls,omitempty"`
	// SuperUsers are the principals the authorizer allows everything
	// (super.users): the brokers' own certificate principal and the
	// provider's administrator.
	SuperUsers []string `json:"super_users,omitempty"`
	// BrokerConfig holds broker setting overrides by Kafka name (for
	// example "num.partitions"), checked against the broker's settings
	// table (broker/config): unknown names, settings the boot agent owns
	// and values the broker would refuse are refused here.
	BrokerConfig map[string]string `json:"broker_config,omitempty"`
	Metrics      Metrics           `json:"metrics"`
	// Logging says where the broker ships its logs; absent, it ships none.
	// (An image older than this field refuses a document that has it, by
	// name: the decoder refuses unknown fields.)
	Logging *Logging `json:"logging,omitempty"`
	// OpenMonitoring is Amazon MSK's open monitoring with Prometheus: who
	// may scrape the broker's endpoints. Absent, the metrics endpoint
	// answers any source (the security group keeps it inside the host).
	OpenMonitoring *OpenMonitoring `json:"open_monitoring,omitempty"`
	// Secrets is the encrypted key material, absent when the cluster has none.
	Secrets *Envelope `json:"secrets,omitempty"`
	// ProviderSecrets is sealed for the provider, not for the broker: the
	// provider's own credentials for the cluster (ProviderSecrets'
	// plaintext), encrypted with the cluster's key under
	// ProviderEncryptionContext, which names no node, so no broker role
	// may decrypt it. It lets the provider authenticate to the brokers
	// knowing only the cluster id. The boot agent ignores it.
	ProviderSecrets *Envelope `json:"provider_secrets,omitempty"`
}

// Listener is one client listener of the broker.
type Listener struct {
	// Name is the Kafka listener name, e.g. "PLAINTEXT", "TLS", "SASL_SCRAM", "SASL_IAM".
	Name string `json:"name"`
	Port int    `json:"port"`
	// SecurityProtocol is Kafka's: PLAINTEXT, SSL or SASL_SSL.
	SecurityProtocol string `json:"security_protocol"`
	// SASLMechanisms lists the mechanisms of a SASL_SSL listener:
	// SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER.
	SASLMechanisms []string `json:"sasl_mechanisms,omitempty"`
	// ClientAuth is an SSL listener's request for client certificates:
	// "required" (mutual TLS), "requested" (a client without one is
	// User:ANONYMOUS), or empty (none asked).
	ClientAuth string `json:"client_auth,omitempty"`
}

// TLS is the cluster's public certificate material.
type TLS struct {
	// CertificateAuthorityPEM is the cluster CA, which signed every broker
	// certificate: brokers trust it from each other, and clients trust it.
	CertificateAuthorityPEM string `json:"certificate_authority_pem"`
	// ClientCertificateAuthoritiesPEM are the CAs whose client certificates
	// the listeners with ClientAuth accept (besides the cluster CA, which
	// signed the provider's own client certificate).
	ClientCertificateAuthoritiesPEM string `json:"client_certificate_authorities_pem,omitempty"`
}

// Ports are the non-client ports of a broker.
type Ports struct {
	InterBroker int `json:"inter_broker"`
	Controller  int `json:"controller"`
	Metrics     int `json:"metrics"`
	// NodeMetrics is the host metrics endpoint (MSK's node exporter
	// port); required when OpenMonitoring.NodeExporter is on.
	NodeMetrics int `json:"node_metrics,omitempty"`
}

// Peer is a controller voter.
type Peer struct {
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int    `json:"port"`
}

// Volume names the broker's data volume and where it is mounted.
type Volume struct {
	// VolumeID is the EBS volume id; on Nitro instances the NVMe serial.
	VolumeID string `json:"volume_id"`
	// DeviceName is the block-device mapping name the provider attached it
	// as (e.g. /dev/sdf); Xen instances expose it under that name.
	DeviceName string `json:"device_name,omitempty"`
	MountPath  string `json:"mount_path"`
	Filesystem string `json:"filesystem"`
}

// Attachments says how the boot agent attaches the broker's own network
// interface and data volume (the volume at DataVolume.DeviceName).
type Attachments struct {
	// NetworkInterfaceDeviceIndex is the device index the interface is
	// attached at: 1-15, since device 0 is the instance's own primary
	// interface, which an Auto Scaling group's launch creates.
	NetworkInterfaceDeviceIndex int `json:"network_interface_device_index"`
}

// Metrics says where the broker ships its metrics.
type Metrics struct {
	CloudWatch bool `json:"cloudwatch"`
	// Namespace is the CloudWatch namespace; metric names follow AWS/Kafka.
	Namespace string `json:"namespace,omitempty"`
	// Level is MSK's enhanced monitoring level: DEFAULT, PER_BROKER,
	// PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION.
	Level           string `json:"level,omitempty"`
	IntervalSeconds int    `json:"interval_seconds,omitempty"`
}

// OpenMonitoring opens the broker's Prometheus endpoints to AllowedCIDRs:
// the broker metrics on ports.metrics when JMXExporter (MSK's name for
// them), the host metrics on ports.node_metrics when NodeExporter. A port
// not enabled answers only the host itself (the metrics port keeps
// serving the health endpoints); the host metrics port is not served.
type OpenMonitoring struct {
	JMXExporter  bool     `json:"jmx_exporter"`
	NodeExporter bool     `json:"node_exporter"`
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
}

// Logging is Amazon MSK's logging_info: the destinations of the broker's
// logs.
type Logging struct {
	CloudWatchLogs *CloudWatchLogs `json:"cloudwatch_logs,omitempty"`
	S3             *S3Logs         `json:"s3,omitempty"`
	Firehose       *FirehoseLogs   `json:"firehose,omitempty"`
}

// FirehoseLogs sends the broker's log to the Firehose delivery stream
// DeliveryStream, a record per line.
type FirehoseLogs struct {
	Enabled        bool   `json:"enabled"`
	DeliveryStream string `json:"delivery_stream,omitempty"`
}

// ValidDeliveryStreamName reports whether Firehose accepts name for a
// delivery stream: 1-64 of a-z A-Z 0-9 _ . -.
func ValidDeliveryStreamName(name string) bool { return deliveryStreamName.MatchString(name) }

// S3Logs delivers the broker's log to Bucket as gzip objects under Prefix,
// in Amazon MSK's key layout (S3LogKeyPrefix).
type S3Logs struct {
	Enabled bool   `json:"enabled"`
	Bucket  string `json:"bucket,omitempty"`
	Prefix  string `json:"prefix,omitempty"`
}

// S3LogKeyPrefix is where a cluster's brokers put their log objects, as
// Amazon MSK lays them out: <prefix>/AWSLogs/<account>/KafkaBrokerLogs/
// <region>/<cluster name>-<cluster id>/ (no leading prefix when prefix is
// empty). Slashes around prefix are not doubled.
func S3LogKeyPrefix(prefix, account, region, clusterName, clusterID string) string {
	p := strings.Trim(prefix, "/")
	if p != "" {
		p += "/"
	}
	return p + "AWSLogs/" + account + "/KafkaBrokerLogs/" + region + "/" + clusterName + "-" + clusterID + "/"
}

// S3LogObjectsARN is the ARN pattern of every object under prefix of
// bucket: what a broker role may s3:PutObject.
func S3LogObjectsARN(bucket, prefix string) string {
	p := strings.Trim(prefix, "/")
	if p != "" {
		p += "/"
	}
	return "arn:aws:s3:::" + bucket + "/" + p + "*"
}

// ValidS3BucketName reports whether S3 accepts name for a general purpose
// bucket: 3-63 of a-z 0-9 . -, beginning and ending with a letter or digit,
// no "..", not an IP address, not xn--... or ...-s3alias.
func ValidS3BucketName(name string) bool {
	return s3BucketName.MatchString(name) && !strings.Contains(name, "..") && !ipv4Like.MatchString(name) &&
		!strings.HasPrefix(name, "xn--") && !strings.HasSuffix(name, "-s3alias")
}

// ValidS3LogPrefix reports whether prefix may lead the brokers' log keys:
// at most 256 of S3's safe key characters (a-z A-Z 0-9 ! - _ . * ' ( ) /),
// not beginning with a slash.
func ValidS3LogPrefix(prefix string) bool {
	return s3LogPrefix.MatchString(prefix) && !strings.HasPrefix(prefix, "/")
}

var (
	s3BucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	ipv4Like     = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)
	s3LogPrefix  = regexp.MustCompile(`^[A-Za-z0-9!_.*'()/-]{0,256}$`)
	// deliveryStreamName is Firehose's rule for delivery stream names.
	deliveryStreamName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)
)

// CloudWatchLogs ships the broker's log to LogGroup, one stream per broker
// (broker-<id>) and its audit trail to another (broker-<id>/audit).
type CloudWatchLogs struct {
	Enabled  bool   `json:"enabled"`
	LogGroup string `json:"log_group,omitempty"`
}

// Envelope is KMS-encrypted Secrets. The plaintext is the JSON of Secrets.
type Envelope struct {
	// Ciphertext is the KMS CiphertextBlob (base64 in JSON).
	Ciphertext []byte `json:"ciphertext"`
	// KeyID is the KMS key id or ARN that encrypted it.
	KeyID string `json:"kms_key_id"`
	// EncryptionContext must be passed to kms:Decrypt unchanged; it names the
	// cluster and the node, and the instance role may decrypt only with it.
	EncryptionContext map[string]string `json:"encryption_context"`
}

// Secrets is the plaintext inside a broker's Envelope.
type Secrets struct {
	// TLSPrivateKeyPEM and TLSCertificatePEM (the broker's certificate
	// then the CA's) serve the TLS listeners and the in-cluster ones.
	TLSPrivateKeyPEM  string `json:"tls_private_key_pem,omitempty"`
	TLSCertificatePEM string `json:"tls_certificate_pem,omitempty"`
	// SCRAMCredentials bootstrap the first SCRAM users (the provider's
	// administrator), salted: the broker never learns their passwords.
	SCRAMCredentials []SCRAMCredential `json:"scram_credentials,omitempty"`
}

// SCRAMCredential is one bootstrap SCRAM user as the brokers store it
// (RFC 5802): the salt, the iteration count, StoredKey and ServerKey, which
// check a client's proof but cannot make one.
type SCRAMCredential struct {
	Username string `json:"username"`
	// Mechanism is SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism  string `json:"mechanism"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// ProviderSecrets is the plaintext of a document's ProviderSecrets: what
// the provider needs of a cluster that only its Terraform state would
// otherwise hold. Its login, when clients must authenticate and IAM is
// off; and the cluster CA the provider made, so that a state that imported
// the cluster signs new broker certificates with the same CA.
type ProviderSecrets struct {
	// SCRAMUsername and SCRAMPassword are the administrator's SCRAM login.
	SCRAMUsername string `json:"scram_username,omitempty"`
	SCRAMPassword string `json:"scram_password,omitempty"`
	// ClientCertificatePEM and ClientKeyPEM are the administrator's client
	// certificate (signed by the cluster CA) for mutual TLS.
	ClientCertificatePEM string `json:"client_certificate_pem,omitempty"`
	ClientKeyPEM         string `json:"client_key_pem,omitempty"`
	// CACertificatePEM and CAPrivateKeyPEM are the cluster CA when the
	// provider made it (empty when the user gives tls_certificate_authority,
	// whose key is the user's to keep, and in documents of providers older
	// than these fields). They ride in this envelope rather than in one of
	// their own: its encryption context already names no node, so no
	// broker role may open it, the provider's role already may, and the
	// boot agent, which never opens it, needs no new document field (an
	// older image refuses unknown fields).
	CACertificatePEM string `json:"ca_certificate_pem,omitempty"`
	CAPrivateKeyPEM  string `json:"ca_private_key_pem,omitempty"`
}

// Encryption-context keys of the Secrets envelope.
const (
	ContextKeyClusterID = "tributary:cluster-id"
	ContextKeyNodeID    = "tributary:node-id"
	// ContextKeyPurpose marks the provider's sealed secrets.
	ContextKeyPurpose = "tributary:purpose"
	// PurposeProvider is ContextKeyPurpose's value on ProviderSecrets.
	PurposeProvider = "provider"
)

// CertificateSecretName is the Secrets Manager secret through which the
// provider delivers a renewed TLS key and certificate to a running broker:
// its value is an Envelope (JSON) of Secrets holding only the TLS fields,
// sealed under the node's EncryptionContext, so the secret store sees only
// ciphertext and only that broker's role can open it. The broker's
// companion applies a newer certificate from it without a restart
// (docs/broker-security.md, "Certificate renewal in place").
func CertificateSecretName(clusterID string, nodeID int32) string {
	return fmt.Sprintf("tributary/%s/broker-%d/tls", clusterID, nodeID)
}

// EncryptionContext is the KMS encryption context of a node's secrets. IAM
// policies pin kms:Decrypt to it (kms:EncryptionContext:tributary:cluster-id).
func EncryptionContext(clusterID string, nodeID int32) map[string]string {
	return map[string]string{
		ContextKeyClusterID: clusterID,
		ContextKeyNodeID:    fmt.Sprint(nodeID),
	}
}

// ProviderEncryptionContext is the KMS encryption context of the provider's
// sealed secrets: the cluster, and no node, so that no broker role (each
// may decrypt only under its own node's context) can open it.
func ProviderEncryptionContext(clusterID string) map[string]string {
	return map[string]string{
		ContextKeyClusterID: clusterID,
		ContextKeyPurpose:   PurposeProvider,
	}
}

// ErrUnsupportedVersion is returned for documents newer than CurrentVersion.
var ErrUnsupportedVersion = errors.New("unsupported boot document version")

// ErrTooLarge is returned when an encoded document exceeds MaxUserDataBytes.
var ErrTooLarge = errors.New("boot document exceeds EC2's 16 KiB user-data limit")

// Encode validates the document and returns its JSON, refusing documents that
// would not fit in EC2 user data.
func (d *Document) Encode() ([]byte, error) {
	if d.Version == 0 {
		d.Version = CurrentVersion
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding boot document: %w", err)
	}
	if err := CheckSize(b); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckSize reports ErrTooLarge when user data is over EC2's limit.
func CheckSize(userData []byte) error {
	if len(userData) > MaxUserDataBytes {
		return fmt.Errorf("%w: %d bytes, limit %d (fewer broker_config overrides or controllers would fit)",
			ErrTooLarge, len(userData), MaxUserDataBytes)
	}
	return nil
}

// Decode reads a boot document of any supported version, upgrades it to the
// current one, and validates it.
func Decode(b []byte) (*Document, error) {
	if err := CheckSize(b); err != nil {
		return nil, err
	}
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("boot document is not valid JSON: %w", err)
	}
	if head.Version == nil {
		return nil, &FieldError{Field: "version", Problem: "is missing"}
	}
	v := *head.Version
	decode, ok := decoders[v]
	switch {
	case v > CurrentVersion:
		return nil, fmt.Errorf("%w: document version %d is newer than this broker understands (up to %d); use a broker image at least as new as the provider",
			ErrUnsupportedVersion, v, CurrentVersion)
	case !ok:
		return nil, fmt.Errorf("%w: document version %d does not exist (versions start at 1)", ErrUnsupportedVersion, v)
	}
	d, err := decode(b)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// decoders maps each readable version to a function returning a current
// Document: older versions are decoded and upgraded, so brokers keep
// reading documents written by older providers.
var decoders = map[int]func([]byte) (*Document, error){
	1: decodeV1,
	2: decodeStrict,
}

// decodeV1 reads a version 1 document and upgrades it: its listeners' only
// client-certificate setting was mutual_tls, which is client_auth
// "required" now, and it has none of the fields version 2 added.
func decodeV1(b []byte) (*Document, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("boot document is not valid JSON: %w", err)
	}
	for _, f := range []string{"attachments", "in_cluster_tls", "tls", "super_users", "provider_secrets"} {
		if _, ok := raw[f]; ok {
			return nil, &FieldError{Field: f, Problem: "is not a field of version 1 documents (it came with version 2)"}
		}
	}
	if ls, ok := raw["listeners"]; ok {
		var listeners []map[string]json.RawMessage
		if err := json.Unmarshal(ls, &listeners); err != nil {
			return nil, describeJSONError(err)
		}
		for i, l := range listeners {
			if _, ok := l["client_auth"]; ok {
				return nil, &FieldError{Field: fmt.Sprintf("listeners[%d].client_auth", i), Problem: "is not a field of version 1 documents (they say mutual_tls)"}
			}
			if m, ok := l["mutual_tls"]; ok {
				var mutual bool
				if err := json.Unmarshal(m, &mutual); err != nil {
					return nil, &FieldError{Field: fmt.Sprintf("listeners[%d].mutual_tls", i), Problem: "must be a boolean"}
				}
				delete(l, "mutual_tls")
				if mutual {
					l["client_auth"] = json.RawMessage(`"required"`)
				}
			}
		}
		enc, err := json.Marshal(listeners)
		if err != nil {
			return nil, fmt.Errorf("upgrading a version 1 document: %w", err)
		}
		raw["listeners"] = enc
	}
	upgraded, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("upgrading a version 1 document: %w", err)
	}
	d, err := decodeStrict(upgraded)
	if err != nil {
		return nil, err
	}
	d.Version = CurrentVersion
	return d, nil
}

// decodeStrict decodes a document of the current version.
func decodeStrict(b []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	// Within one version the format is fixed: an unknown field is a typo or
	// a document from a newer provider that forgot to bump the version.
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, describeJSONError(err)
	}
	d.normalize()
	return &d, nil
}

// normalize makes empty collections nil, so that a decoded document equals
// the one that was encoded (omitempty drops them on the way out).
func (d *Document) normalize() {
	if len(d.BrokerConfig) == 0 {
		d.BrokerConfig = nil
	}
	for i := range d.Listeners {
		if len(d.Listeners[i].SASLMechanisms) == 0 {
			d.Listeners[i].SASLMechanisms = nil
		}
	}
	if len(d.SuperUsers) == 0 {
		d.SuperUsers = nil
	}
}

// describeJSONError turns encoding/json errors into ones that name the field.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return &FieldError{Field: typeErr.Field, Problem: fmt.Sprintf("must be %s, got JSON %s", typeErr.Type, typeErr.Value)}
	}
	return fmt.Errorf("decoding boot document: %w", err)
}
