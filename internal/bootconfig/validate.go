package bootconfig

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/tributary/tributary/broker/config"
)

// FieldError names the field of the document that is wrong and how.
type FieldError struct {
	Field   string
	Problem string
	// Key is the setting name of a broker_config problem ("" otherwise).
	Key string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("boot document field %s %s", e.Field, e.Problem)
}

// Listener security protocols and SASL mechanisms a document may name.
var (
	securityProtocols = []string{"PLAINTEXT", "SSL", "SASL_SSL"}
	saslMechanisms    = []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}
	// logGroupName is CloudWatch Logs' rule for log group names.
	logGroupName     = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)
	monitoringLevels = []string{"DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"}
	filesystems      = []string{"xfs"}
	clientAuths      = []string{"required", "requested"}
)

var (
	clusterIDPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	clusterNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)
	listenerPattern    = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)
	volumeIDPattern    = regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`)
	hostnamePattern    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
)

// maxConfigValueBytes bounds one broker_config value; the whole document
// must fit 16 KiB anyway, this just makes the error precise.
const maxConfigValueBytes = 1024

// Validate checks every field and returns all problems at once, each a
// *FieldError, joined with errors.Join.
func (d *Document) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}

	if d.Version != CurrentVersion {
		bad("version", "must be %d, got %d", CurrentVersion, d.Version)
	}
	if !clusterIDPattern.MatchString(d.ClusterID) {
		bad("cluster_id", "must be 1-64 letters, digits, '-' or '_', got %q", d.ClusterID)
	}
	if !clusterNamePattern.MatchString(d.ClusterName) {
		bad("cluster_name", "must be 1-64 letters, digits or '-', starting with a letter, got %q", d.ClusterName)
	}
	if d.NodeID < 0 {
		bad("node_id", "must not be negative, got %d", d.NodeID)
	}
	if strings.TrimSpace(d.Rack) == "" {
		bad("rack", "must name the broker's Availability Zone")
	}

	ports := map[int]string{}
	usePort := func(field string, port int) {
		if port < 1 || port > 65535 {
			bad(field, "must be a TCP port 1-65535, got %d", port)
			return
		}
		if other, dup := ports[port]; dup {
			bad(field, "port %d is already used by %s", port, other)
			return
		}
		ports[port] = field
	}

	if len(d.Listeners) == 0 {
		bad("listeners", "must have at least one listener")
	}
	names := map[string]bool{}
	usesTLS := d.InClusterTLS
	for i, l := range d.Listeners {
		f := fmt.Sprintf("listeners[%d]", i)
		if !listenerPattern.MatchString(l.Name) {
			bad(f+".name", "must be an upper-case Kafka listener name, got %q", l.Name)
		} else if names[l.Name] {
			bad(f+".name", "duplicates listener %q", l.Name)
		}
		names[l.Name] = true
		usePort(f+".port", l.Port)
		if !slices.Contains(securityProtocols, l.SecurityProtocol) {
			bad(f+".security_protocol", "must be one of %s, got %q", strings.Join(securityProtocols, ", "), l.SecurityProtocol)
		}
		switch {
		case l.SecurityProtocol == "SASL_SSL" && len(l.SASLMechanisms) == 0:
			bad(f+".sasl_mechanisms", "must name at least one mechanism for a SASL_SSL listener")
		case l.SecurityProtocol != "SASL_SSL" && len(l.SASLMechanisms) > 0:
			bad(f+".sasl_mechanisms", "is only allowed on SASL_SSL listeners")
		}
		for j, m := range l.SASLMechanisms {
			if !slices.Contains(saslMechanisms, m) {
				bad(fmt.Sprintf("%s.sasl_mechanisms[%d]", f, j), "must be one of %s, got %q", strings.Join(saslMechanisms, ", "), m)
			}
		}
		switch {
		case l.ClientAuth == "":
		case !slices.Contains(clientAuths, l.ClientAuth):
			bad(f+".client_auth", "must be one of %s, got %q", strings.Join(clientAuths, ", "), l.ClientAuth)
		case l.SecurityProtocol != "SSL":
			bad(f+".client_auth", "is only allowed on SSL listeners")
		}
		if l.SecurityProtocol == "SSL" || l.SecurityProtocol == "SASL_SSL" {
			usesTLS = true
		}
	}
	usePort("ports.inter_broker", d.Ports.InterBroker)
	usePort("ports.controller", d.Ports.Controller)
	usePort("ports.metrics", d.Ports.Metrics)
	if d.Ports.NodeMetrics != 0 || (d.OpenMonitoring != nil && d.OpenMonitoring.NodeExporter) {
		usePort("ports.node_metrics", d.Ports.NodeMetrics)
	}

	if len(d.Controllers) == 0 {
		bad("controllers", "must name at least one controller voter")
	}
	voters := map[int32]bool{}
	for i, p := range d.Controllers {
		f := fmt.Sprintf("controllers[%d]", i)
		if p.NodeID < 0 {
			bad(f+".node_id", "must not be negative, got %d", p.NodeID)
		} else if voters[p.NodeID] {
			bad(f+".node_id", "duplicates voter %d", p.NodeID)
		}
		voters[p.NodeID] = true
		if net.ParseIP(p.Host) == nil && !hostnamePattern.MatchString(p.Host) {
			bad(f+".host", "must be an IP address or host name, got %q", p.Host)
		}
		if p.Port < 1 || p.Port > 65535 {
			bad(f+".port", "must be a TCP port 1-65535, got %d", p.Port)
		}
	}

	if !volumeIDPattern.MatchString(d.DataVolume.VolumeID) {
		bad("data_volume.volume_id", "must be an EBS volume id like vol-0123456789abcdef0, got %q", d.DataVolume.VolumeID)
	}
	if d.DataVolume.DeviceName != "" && !strings.HasPrefix(d.DataVolume.DeviceName, "/dev/") {
		bad("data_volume.device_name", "must start with /dev/, got %q", d.DataVolume.DeviceName)
	}
	if !path.IsAbs(d.DataVolume.MountPath) || path.Clean(d.DataVolume.MountPath) != d.DataVolume.MountPath || d.DataVolume.MountPath == "/" {
		bad("data_volume.mount_path", "must be a clean absolute path other than /, got %q", d.DataVolume.MountPath)
	}
	if !slices.Contains(filesystems, d.DataVolume.Filesystem) {
		bad("data_volume.filesystem", "must be one of %s, got %q", strings.Join(filesystems, ", "), d.DataVolume.Filesystem)
	}

	if a := d.Attachments; a != nil {
		if a.NetworkInterfaceDeviceIndex < 1 || a.NetworkInterfaceDeviceIndex > 15 {
			bad("attachments.network_interface_device_index", "must be 1-15 (device 0 is the instance's primary interface), got %d", a.NetworkInterfaceDeviceIndex)
		}
		if d.DataVolume.DeviceName == "" {
			bad("data_volume.device_name", "must be set when the agent attaches the volume itself (attachments)")
		}
	}

	for _, e := range ValidateBrokerConfig(d.BrokerConfig) {
		errs = append(errs, e)
	}

	if d.Metrics.CloudWatch {
		switch ns := d.Metrics.Namespace; {
		case ns == "":
			bad("metrics.namespace", "must be set when CloudWatch metrics are on")
		case strings.HasPrefix(ns, "AWS/"):
			bad("metrics.namespace", "must not start with AWS/ (reserved by AWS), got %q", ns)
		case len(ns) > 255:
			bad("metrics.namespace", "must be at most 255 characters")
		}
		if !slices.Contains(monitoringLevels, d.Metrics.Level) {
			bad("metrics.level", "must be one of %s, got %q", strings.Join(monitoringLevels, ", "), d.Metrics.Level)
		}
		if d.Metrics.IntervalSeconds < 10 || d.Metrics.IntervalSeconds > 3600 {
			bad("metrics.interval_seconds", "must be 10-3600, got %d", d.Metrics.IntervalSeconds)
		}
	}

	if l := d.Logging; l != nil && l.CloudWatchLogs != nil && l.CloudWatchLogs.Enabled {
		if g := l.CloudWatchLogs.LogGroup; !logGroupName.MatchString(g) {
			bad("logging.cloudwatch_logs.log_group", "must be a CloudWatch Logs group name (1-512 of a-z A-Z 0-9 . - _ / #), got %q", g)
		}
	}
	if l := d.Logging; l != nil && l.S3 != nil && l.S3.Enabled {
		if !ValidS3BucketName(l.S3.Bucket) {
			bad("logging.s3.bucket", "must be an S3 bucket name (3-63 of a-z 0-9 . -, beginning and ending with a letter or digit), got %q", l.S3.Bucket)
		}
		if !ValidS3LogPrefix(l.S3.Prefix) {
			bad("logging.s3.prefix", "must be at most 256 of a-z A-Z 0-9 ! - _ . * ' ( ) / and not begin with /, got %q", l.S3.Prefix)
		}
	}

	if l := d.Logging; l != nil && l.Firehose != nil && l.Firehose.Enabled && !ValidDeliveryStreamName(l.Firehose.DeliveryStream) {
		bad("logging.firehose.delivery_stream", "must be a Firehose delivery stream name (1-64 of a-z A-Z 0-9 _ . -), got %q", l.Firehose.DeliveryStream)
	}

	if om := d.OpenMonitoring; om != nil {
		for i, c := range om.AllowedCIDRs {
			if _, err := netip.ParsePrefix(c); err != nil {
				bad(fmt.Sprintf("open_monitoring.allowed_cidrs[%d]", i), "must be a CIDR block such as 10.0.0.0/16, got %q", c)
			}
		}
		if (om.JMXExporter || om.NodeExporter) && len(om.AllowedCIDRs) == 0 {
			bad("open_monitoring.allowed_cidrs", "must name at least one CIDR block when an exporter is enabled")
		}
	}

	switch t := d.TLS; {
	case t == nil && usesTLS:
		bad("tls", "must give the cluster CA: a listener or the in-cluster traffic uses TLS")
	case t != nil:
		if err := checkCertificates(t.CertificateAuthorityPEM); err != nil {
			bad("tls.certificate_authority_pem", "%v", err)
		}
		if t.ClientCertificateAuthoritiesPEM != "" {
			if err := checkCertificates(t.ClientCertificateAuthoritiesPEM); err != nil {
				bad("tls.client_certificate_authorities_pem", "%v", err)
			}
		}
	}
	if usesTLS && d.Secrets == nil {
		bad("secrets", "must carry the broker's TLS key and certificate: a listener or the in-cluster traffic uses TLS")
	}
	for i, p := range d.SuperUsers {
		typ, name, ok := strings.Cut(p, ":")
		if !ok || typ == "" || name == "" || strings.ContainsAny(p, ";\r\n") {
			bad(fmt.Sprintf("super_users[%d]", i), "must be a principal Type:name without ';' or line breaks, got %q", p)
		}
	}

	checkEnvelope := func(field string, e *Envelope, want map[string]string, what string) {
		if e == nil {
			return
		}
		if len(e.Ciphertext) == 0 {
			bad(field+".ciphertext", "must not be empty")
		}
		if strings.TrimSpace(e.KeyID) == "" {
			bad(field+".kms_key_id", "must name the KMS key that encrypted the secrets")
		}
		if !maps.Equal(e.EncryptionContext, want) {
			bad(field+".encryption_context", "must be %s (%s)", formatContext(want), what)
		}
	}
	checkEnvelope("secrets", d.Secrets, EncryptionContext(d.ClusterID, d.NodeID), "the cluster and node this document is for")
	checkEnvelope("provider_secrets", d.ProviderSecrets, ProviderEncryptionContext(d.ClusterID), "the cluster, for the provider")
	return errors.Join(errs...)
}

// checkCertificates checks that text is PEM certificates and nothing else.
func checkCertificates(text string) error {
	rest := []byte(text)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("must hold only PEM certificates, found a %q block", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d is not readable: %v", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("must hold at least one PEM certificate")
	}
	return nil
}

func formatContext(c map[string]string) string {
	parts := make([]string, 0, len(c))
	for _, k := range sortedKeys(c) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, c[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ValidateBrokerConfig checks broker_config overrides as Validate does:
// the broker's settings table decides (names, owners, values and the
// start-up checks between them), so the provider, the document, the boot
// agent and the broker never disagree; the document adds its own limits
// (no line breaks, values up to 1 KiB). Every problem is a *FieldError
// with Key set, in key order.
func ValidateBrokerConfig(cfg map[string]string) []*FieldError {
	var errs []*FieldError
	bad := func(key, format string, args ...any) {
		errs = append(errs, &FieldError{Field: fmt.Sprintf("broker_config[%q]", key), Problem: fmt.Sprintf(format, args...), Key: key})
	}
	for _, k := range sortedKeys(cfg) {
		switch {
		case len(cfg[k]) > maxConfigValueBytes:
			bad(k, "value is %d bytes, limit %d", len(cfg[k]), maxConfigValueBytes)
		case strings.ContainsAny(cfg[k], "\r\n"):
			bad(k, "value must not contain line breaks")
		}
	}
	for _, e := range config.ValidateOverrides(cfg) {
		bad(e.Name, "%s", e.Problem)
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int { return strings.Compare(a.Key, b.Key) })
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
