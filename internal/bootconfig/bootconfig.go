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
)

// CurrentVersion is the newest document version this code writes and reads.
// Version 2 added Attachments (instances of an Auto Scaling group attach the
// broker's network interface and volume themselves).
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
	// BrokerConfig holds broker setting overrides by Kafka name (for
	// example "num.partitions"), checked against the broker's settings
	// table (broker/config): unknown names, settings the boot agent owns
	// and values the broker would refuse are refused here.
	BrokerConfig map[string]string `json:"broker_config,omitempty"`
	Metrics      Metrics           `json:"metrics"`
	// Secrets is the encrypted key material, absent when the cluster has none.
	Secrets *Envelope `json:"secrets,omitempty"`
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
	// MutualTLS requires client certificates on an SSL listener.
	MutualTLS bool `json:"mutual_tls,omitempty"`
}

// Ports are the non-client ports of a broker.
type Ports struct {
	InterBroker int `json:"inter_broker"`
	Controller  int `json:"controller"`
	Metrics     int `json:"metrics"`
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

// Secrets is the plaintext inside an Envelope.
type Secrets struct {
	// TLSPrivateKeyPEM and TLSCertificatePEM serve the TLS listeners.
	TLSPrivateKeyPEM  string `json:"tls_private_key_pem,omitempty"`
	TLSCertificatePEM string `json:"tls_certificate_pem,omitempty"`
	// SCRAMCredentials bootstrap the first SCRAM users (e.g. the provider's admin).
	SCRAMCredentials []SCRAMCredential `json:"scram_credentials,omitempty"`
}

// SCRAMCredential is one bootstrap SCRAM user.
type SCRAMCredential struct {
	Username  string `json:"username"`
	Mechanism string `json:"mechanism"`
	Password  string `json:"password"`
}

// Encryption-context keys of the Secrets envelope.
const (
	ContextKeyClusterID = "tributary:cluster-id"
	ContextKeyNodeID    = "tributary:node-id"
)

// EncryptionContext is the KMS encryption context of a node's secrets. IAM
// policies pin kms:Decrypt to it (kms:EncryptionContext:tributary:cluster-id).
func EncryptionContext(clusterID string, nodeID int32) map[string]string {
	return map[string]string{
		ContextKeyClusterID: clusterID,
		ContextKeyNodeID:    fmt.Sprint(nodeID),
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

// decodeV1 reads a version 1 document (version 2 without attachments) and
// upgrades it: its instance was launched on the broker's interface with the
// volume attached.
func decodeV1(b []byte) (*Document, error) {
	d, err := decodeStrict(b)
	if err != nil {
		return nil, err
	}
	if d.Attachments != nil {
		return nil, &FieldError{Field: "attachments", Problem: "is not a field of version 1 documents (it came with version 2)"}
	}
	d.Version = CurrentVersion
	return d, nil
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
}

// describeJSONError turns encoding/json errors into ones that name the field.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return &FieldError{Field: typeErr.Field, Problem: fmt.Sprintf("must be %s, got JSON %s", typeErr.Type, typeErr.Value)}
	}
	return fmt.Errorf("decoding boot document: %w", err)
}
