package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Owner says who sets a setting on a broker that the boot agent starts.
type Owner string

const (
	// OwnerUser settings are the operator's: the config file of
	// `tributary-broker run`, a cluster's broker_config, and (when Dynamic)
	// IncrementalAlterConfigs on a running broker.
	OwnerUser Owner = "user"
	// OwnerAgent settings fix a broker's identity and wiring (node id,
	// listeners, data directory, quorum voters, key files). The boot agent
	// derives them from the boot document and the instance; a broker_config
	// entry for one is refused, because a value that disagrees with the
	// document would silently break the broker.
	OwnerAgent Owner = "agent"
)

// Range is the inclusive range of a numeric setting.
type Range struct{ Min, Max int64 }

// Setting describes one broker setting by its Kafka name.
type Setting struct {
	// Name is the Kafka name. A name holding "<listener>" stands for one
	// setting per listener, the placeholder being the lower-case listener
	// name (listener.name.<listener>.ssl.client.auth).
	Name string
	Type string // Kafka's config type name: int, long, boolean, string, list, password
	// Default is the broker's own default, as written in a properties file;
	// "" when unset by default.
	Default string
	// ClusterDefault, when not "", is what a cluster built from boot
	// documents (the Terraform provider's) runs with where broker_config
	// does not set the setting: Amazon MSK's default configuration for a
	// cluster of three or more brokers. The boot agent writes it;
	// ClusterDefaults sizes it for smaller clusters.
	ClusterDefault string
	// Range bounds a numeric setting (nil for others); Values lists the
	// values an enumerated setting accepts (nil for others). Allowed says
	// the same in words, for documentation and errors.
	Range   *Range
	Values  []string
	Allowed string
	// Dynamic settings can be changed on a running broker with
	// IncrementalAlterConfigs / AlterConfigs on the broker resource; they
	// are stored in the metadata and survive restarts.
	Dynamic bool
	// ClusterWide dynamic settings take a dynamic value only at the
	// cluster-wide default (broker resource ""), never one broker's own:
	// the active controller applies them to every broker, so a value
	// per broker would make its answer depend on which broker leads.
	ClusterWide bool
	Owner       Owner
	Doc         string

	skipEmptyDefault bool
	perListener      bool // also settable as listener.name.<listener>.<name>
	// sized returns ClusterDefault for a cluster of n brokers.
	sized func(n int) string
	set   func(c *Config, name, v string) error
	get   func(c *Config, name string) string
}

// SettingError is a problem with one setting: its value, its name, or its
// value together with others'.
type SettingError struct {
	Name    string
	Problem string
}

func (e *SettingError) Error() string { return e.Name + " " + e.Problem }

// Settings returns the settings table, sorted by name.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	copy(out, settings)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

const listenerPlaceholder = "<listener>"

var listenerNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Lookup finds a setting by its Kafka name. A per-listener setting is
// returned under the concrete name asked for.
func Lookup(name string) (Setting, bool) {
	if i, ok := settingIndex[name]; ok {
		return settings[i], true
	}
	for _, s := range settings {
		prefix, suffix, ok := strings.Cut(s.Name, listenerPlaceholder)
		if !ok || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) || len(name) <= len(prefix)+len(suffix) {
			continue
		}
		if listenerNamePattern.MatchString(name[len(prefix) : len(name)-len(suffix)]) {
			s.Name = name
			return s, true
		}
	}
	return Setting{}, false
}

var settingIndex = func() map[string]int {
	m := make(map[string]int, len(settings))
	for i, s := range settings {
		m[s.Name] = i
	}
	return m
}()

// Validate checks one value of a setting exactly as the broker checks it
// when it applies it: from its config file, or live with
// IncrementalAlterConfigs. It does not check the value against other
// settings (Config.Validate does). The error is a *SettingError; for an
// unknown name it suggests the closest known one.
func Validate(name, value string) error {
	s, ok := Lookup(name)
	if !ok {
		return unknownSetting(name)
	}
	return s.Validate(value)
}

// Validate checks one value of s (see the package-level Validate).
func (s Setting) Validate(value string) error {
	if err := s.set(Default(), s.Name, strings.TrimSpace(value)); err != nil {
		return &SettingError{Name: s.Name, Problem: fmt.Sprintf("%v, got %q", err, value)}
	}
	return nil
}

// Canonical returns a valid value in the spelling the broker reports it in
// (log.cleanup.policy=delete,compact is compact,delete).
func Canonical(name, value string) (string, error) {
	s, ok := Lookup(name)
	if !ok {
		return "", unknownSetting(name)
	}
	c := Default()
	if err := s.set(c, s.Name, strings.TrimSpace(value)); err != nil {
		return "", &SettingError{Name: s.Name, Problem: fmt.Sprintf("%v, got %q", err, value)}
	}
	return s.get(c, s.Name), nil
}

func unknownSetting(name string) *SettingError {
	problem := "is not a broker setting"
	if alt := Suggest(name); alt != "" {
		problem += fmt.Sprintf(" (did you mean %q?)", alt)
	}
	return &SettingError{Name: name, Problem: problem}
}

// ValidateOverrides checks settings a user asks for on top of the defaults
// (a cluster's broker_config): every name must be a known setting the user
// owns, every value valid, and all of them together must pass the checks
// the broker makes when it starts. It returns every problem, in name order.
func ValidateOverrides(values map[string]string) []*SettingError {
	var errs []*SettingError
	c := Default()
	valid := true
	for _, name := range sortedNames(values) {
		s, ok := Lookup(name)
		switch {
		case !ok:
			errs = append(errs, unknownSetting(name))
			valid = false
		case s.Owner != OwnerUser:
			errs = append(errs, &SettingError{Name: name, Problem: "is set by the boot agent from the boot document and cannot be overridden"})
			valid = false
		default:
			if err := s.Validate(values[name]); err != nil {
				errs = append(errs, err.(*SettingError))
				valid = false
				continue
			}
			_ = s.set(c, name, strings.TrimSpace(values[name]))
		}
	}
	if valid {
		errs = append(errs, c.settingErrors()...)
	}
	return errs
}

// ClusterDefaults returns the ClusterDefault of every setting that has one,
// sized for a cluster of n brokers: with fewer than three, replication
// needs fewer copies (a cluster can only satisfy what it has brokers for).
func ClusterDefaults(n int) map[string]string {
	out := map[string]string{}
	for _, s := range settings {
		switch {
		case s.sized != nil:
			out[s.Name] = s.sized(n)
		case s.ClusterDefault != "":
			out[s.Name] = s.ClusterDefault
		}
	}
	return out
}

// clusterReplicationFactor is default.replication.factor in a cluster of n
// brokers: three copies, one per Availability Zone, when there are enough.
func clusterReplicationFactor(n int) int { return max(1, min(3, n)) }

// ClusterRules checks the settings of a cluster of n brokers (explicit
// values over ClusterDefaults) against each other and the broker count:
// default.replication.factor <= n, so that topics created with the default
// can be placed, and min.insync.replicas <= default.replication.factor, so
// that acks=all writes to such topics can succeed.
func ClusterRules(values map[string]string, n int) []*SettingError {
	eff := ClusterDefaults(n)
	for k, v := range values {
		eff[k] = strings.TrimSpace(v)
	}
	rf, err1 := strconv.Atoi(eff["default.replication.factor"])
	isr, err2 := strconv.Atoi(eff["min.insync.replicas"])
	if err1 != nil || err2 != nil {
		return nil // reported by Validate
	}
	var errs []*SettingError
	if rf > n {
		errs = append(errs, &SettingError{Name: "default.replication.factor",
			Problem: fmt.Sprintf("is %d but the cluster has %d brokers: topics created with the default could not be placed", rf, n)})
	}
	if isr > rf {
		const why = "acks=all writes to topics created with the default replication factor would always fail"
		if _, ok := values["min.insync.replicas"]; ok {
			errs = append(errs, &SettingError{Name: "min.insync.replicas",
				Problem: fmt.Sprintf("(%d) is above default.replication.factor (%d): %s", isr, rf, why)})
		} else {
			errs = append(errs, &SettingError{Name: "default.replication.factor",
				Problem: fmt.Sprintf("(%d) is below min.insync.replicas (%d): %s", rf, isr, why)})
		}
	}
	return errs
}

// Suggest returns the user-settable setting whose name is closest to name,
// or "" when none is close enough to be what was meant.
func Suggest(name string) string {
	best, bestDist := "", math.MaxInt
	for _, s := range settings {
		if s.Owner != OwnerUser {
			continue
		}
		if strings.Contains(name, ".") && strings.HasSuffix(s.Name, "."+name) {
			return s.Name // the name without its prefix ("retention.ms")
		}
		if d := editDistance(name, s.Name); d < bestDist {
			best, bestDist = s.Name, d
		}
	}
	if bestDist <= max(2, len(name)/3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// The largest whole numbers of milliseconds, minutes and hours a
// time.Duration holds.
var (
	maxMillis  = int64(math.MaxInt64 / time.Millisecond)
	maxMinutes = int64(math.MaxInt64 / time.Minute)
	maxHours   = int64(math.MaxInt64 / time.Hour)
)

// The table is applied in this order, so aliases that Kafka lets override
// each other come less precise first (hours, minutes, then ms).
var settings = withListenerForms(append([]Setting{
	agent(intSetting("node.id", "int", "1", 0, 1<<30, func(c *Config) *int32 { return &c.NodeID }), "This broker's id."),
	agent(Setting{Name: "broker.id", Type: "int", Allowed: "-1 (none) or 0 .. 1073741824", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			if v == "" || v == "-1" {
				return nil
			}
			return setRange(&c.NodeID, v, 0, 1<<30)
		},
		get: func(c *Config, _ string) string { return itoa(int64(c.NodeID)) }}, "Alias of node.id, for old server.properties files."),
	agent(stringSetting("broker.rack", "", func(c *Config) *string { return &c.Rack }), "Rack (Availability Zone) of this broker, reported in Metadata."),
	agent(Setting{Name: "listeners", Type: "list", Default: "PLAINTEXT://127.0.0.1:9092", Allowed: "NAME://host:port,...",
		set: func(c *Config, _, v string) error {
			if _, err := parseListeners(v); err != nil {
				return err
			}
			c.ListenersSpec = v
			return nil
		},
		get: func(c *Config, _ string) string { return c.ListenersSpec }},
		"Listeners, NAME://host:port,... Every one is served: client listeners with their security protocol, and the listeners named by inter.broker.listener.name and controller.listener.names for replication and the metadata quorum. A listener the broker cannot serve stops it at start with the reason."),
	agent(Setting{Name: "advertised.listeners", Type: "list", Allowed: "NAME://host:port,...", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			if _, err := parseListeners(v); v != "" && err != nil {
				return err
			}
			c.AdvertisedListeners = v
			return nil
		},
		get: func(c *Config, _ string) string { return c.AdvertisedListeners }},
		"Addresses given to clients in Metadata (and to peers for the inter-broker and controller listeners), by listener name. A listener without an entry is advertised at its own address."),
	agent(Setting{Name: "listener.security.protocol.map", Type: "list", Allowed: "NAME:PROTOCOL,...", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			if _, err := parseProtocolMap(v); err != nil {
				return err
			}
			c.ProtocolMap = v
			return nil
		},
		get: func(c *Config, _ string) string { return c.ProtocolMap }},
		"Security protocol of each listener name (NAME:PROTOCOL,...): PLAINTEXT, SSL or SASL_SSL (SASL_PLAINTEXT is refused). A name without an entry must be a protocol name itself."),
	agent(stringSetting("inter.broker.listener.name", "a listener name", func(c *Config) *string { return &c.InterBrokerListenerName }),
		"The listener where followers fetch (replication), PLAINTEXT or SSL (with SSL, brokers present their certificates both ways). Unset: replication listens on inter.broker.listener.port in plaintext."),
	agent(stringSetting("controller.listener.names", "a listener name", func(c *Config) *string { return &c.ControllerListenerNames }),
		"The listener of the Raft metadata quorum, PLAINTEXT or SSL (with SSL, brokers present their certificates both ways). Unset: the quorum listens in plaintext on the port of controller.quorum.voters."),
	agent(Setting{Name: "log.dir", Type: "string", Default: "./data", Allowed: "a directory",
		set: func(c *Config, _, v string) error { return setDataDir(c, v) },
		get: func(c *Config, _ string) string { return c.DataDir }}, "Data directory. log.dirs wins when both are set."),
	agent(Setting{Name: "log.dirs", Type: "list", Allowed: "directories (the first is used)", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error { return setDataDir(c, v) },
		get: func(c *Config, _ string) string { return c.DataDir }}, "Data directory (one; with a list the first is used)."),
	agent(stringSetting("cluster.id", "", func(c *Config) *string { return &c.ClusterID }),
		"Cluster id reported to clients. Generated and kept in the cluster metadata when empty."),
	agent(Setting{Name: "controller.quorum.voters", Type: "list", Allowed: "id@host:port,...", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error { c.ControllerQuorumVoters = v; return nil },
		get: func(c *Config, _ string) string { return c.ControllerQuorumVoters }},
		"Raft metadata quorum seed list (id@host:port,...). Set: the broker joins that cluster (see docs/broker-cluster.md); empty: the broker is a cluster of one, the only voter of its own quorum."),
	user(msSetting("broker.session.timeout.ms", "int", "1500", 1, math.MaxInt32, func(c *Config) *time.Duration { return &c.BrokerSessionTimeout }),
		"How long a broker's lease lasts. A broker that has not renewed it for this long (killed, partitioned, stalled) is fenced and its partition leaderships move. Must exceed twice broker.heartbeat.interval.ms."),
	user(msSetting("broker.heartbeat.interval.ms", "int", "300", MinClusterTiming.Milliseconds(), math.MaxInt32, func(c *Config) *time.Duration { return &c.BrokerHeartbeatInterval }),
		"How often a broker renews its lease with the active controller; also how often the active controller looks for expired leases (twice per interval)."),
	user(msSetting("controller.quorum.election.timeout.ms", "int", "500", MinClusterTiming.Milliseconds(), math.MaxInt32, func(c *Config) *time.Duration { return &c.ControllerElectionTimeout }),
		"How long a Raft candidate waits for votes before it starts a new election (hashicorp/raft ElectionTimeout). The only voter of a cluster of one uses 50 ms unless this is set."),
	user(msSetting("controller.quorum.fetch.timeout.ms", "int", "500", MinClusterTiming.Milliseconds(), math.MaxInt32, func(c *Config) *time.Duration { return &c.ControllerFetchTimeout }),
		"How long a voter goes without hearing from the active controller before it starts an election (hashicorp/raft HeartbeatTimeout). With the election timeout, it bounds how long the cluster has no active controller after that controller dies. The only voter of a cluster of one uses 50 ms unless this is set."),
	agent(boolSetting("tributary.allow.plaintext.inter.broker", "false", func(c *Config) *bool { return &c.AllowPlaintextInCluster }),
		"Accept a plaintext replication or controller listener (named as PLAINTEXT, or left unnamed in a cluster) while a client listener is SSL or SASL_SSL. Without it such a broker does not start: a plaintext in-cluster listener authenticates nobody (finding 8 of docs/broker-security.md). The boot agent sets it for a cluster without in-cluster encryption."),
	agent(intSetting("inter.broker.listener.port", "int", "9093", 1, 65535, func(c *Config) *int { return &c.InterBrokerPort }),
		"Port of the replication listener on the advertised host, where followers fetch. A broker without controller.quorum.voters takes a free port unless this is set."),
	agent(stringSetting("metrics.listen", "host:port", func(c *Config) *string { return &c.MetricsListen }),
		"host:port of the Prometheus /metrics, /healthz, /readyz and /bootz endpoint (see docs/broker-metrics.md); unset serves none."),
	agent(cidrListSetting("metrics.allowed.cidrs", func(c *Config) *[]netip.Prefix { return &c.MetricsAllowedCIDRs }),
		"Source CIDR blocks metrics.listen answers (open monitoring's monitoring_cidr_blocks); a connection from elsewhere is closed unanswered, except from the listening address itself. Unset: any source."),
	agent(stringSetting("metrics.node.listen", "host:port", func(c *Config) *string { return &c.MetricsNodeListen }),
		"host:port of the host metrics endpoint (/metrics in node_exporter's names: CPU, memory, file systems, disks, network from /proc; port 11002 as MSK's node exporter); unset serves none."),
	agent(cidrListSetting("metrics.node.allowed.cidrs", func(c *Config) *[]netip.Prefix { return &c.MetricsNodeAllowedCIDRs }),
		"Source CIDR blocks metrics.node.listen answers, as metrics.allowed.cidrs. Unset: any source."),

	// Written by the boot agent for the TLS and SASL listeners and their
	// key material; package tlsconf reads them, a listener's own
	// listener.name.<listener>.ssl.* setting over the broker-wide one.
	agent(sslSetting(enumSetting("ssl.keystore.type", "", []string{"PEM"}, keptAs)),
		"Format of the keystore: PEM (JKS and PKCS12 are refused: convert them with openssl)."),
	agent(sslSetting(stringSetting("ssl.keystore.location", "a file", keptAs)),
		"File holding a TLS listener's private key and certificate chain (PEM, leaf first), read again when it changes. Instead of ssl.keystore.certificate.chain and ssl.keystore.key."),
	agent(sslSetting(stringSetting("ssl.keystore.certificate.chain", "PEM certificates", keptAs)),
		"A TLS listener's certificate chain, inline PEM, leaf first; with ssl.keystore.key."),
	agent(sslSetting(passwordSetting("ssl.keystore.key", "a PEM private key")),
		"A TLS listener's private key, inline PEM (not encrypted); with ssl.keystore.certificate.chain. Never reported by DescribeConfigs."),
	agent(sslSetting(passwordSetting("ssl.key.password", "empty")),
		"Refused when set: keys are stored unencrypted (the data volume and the boot secrets are encrypted with KMS)."),
	agent(sslSetting(enumSetting("ssl.truststore.type", "", []string{"PEM"}, keptAs)),
		"Format of the truststore: PEM."),
	agent(sslSetting(stringSetting("ssl.truststore.location", "a file", keptAs)),
		"File of PEM CA certificates that client (and peer broker) certificates must chain to, read again when it changes."),
	agent(sslSetting(stringSetting("ssl.truststore.certificates", "PEM certificates", keptAs)),
		"PEM CA certificates inline, instead of ssl.truststore.location."),
	agent(sslSetting(enumSetting("ssl.client.auth", "", []string{"required", "requested", "none"}, keptAs)),
		"Whether a TLS listener asks clients for a certificate: required (mutual TLS; the principal is the certificate's subject), requested, none (default). Needs a truststore unless none."),
	agent(sslSetting(stringSetting("ssl.enabled.protocols", "TLSv1.2, TLSv1.3", keptAs)),
		"TLS versions served (default TLSv1.2,TLSv1.3); older ones are refused."),
	agent(sslSetting(enumSetting("ssl.protocol", "", []string{"TLSv1.3", "TLSv1.2", "TLS"}, keptAs)),
		"Kafka's SSLContext protocol; ssl.enabled.protocols decides what is served."),
	agent(sslSetting(stringSetting("ssl.cipher.suites", "IANA TLS 1.2 suite names", keptAs)),
		"TLS 1.2 cipher suites (Go's secure defaults when unset); TLS 1.3 suites are always on."),
	agent(sslSetting(stringSetting("ssl.endpoint.identification.algorithm", "https or empty", keptAs)),
		"https (default): a broker dialing a peer checks the peer certificate's name against the address; empty: only the chain."),
	agent(sslSetting(stringSetting("ssl.principal.mapping.rules", "RULE:pattern/replacement/[LU],...,DEFAULT", keptAs)),
		"Kafka's rules turning a client certificate's subject into the principal name (DEFAULT: the whole subject)."),
	agent(stringSetting("tributary.scram.bootstrap.file", "a file", keptAs),
		"JSON file of SCRAM users, written by the boot agent from the boot document's secrets: each [{username, mechanism, salt, iterations, stored_key, server_key}] (salted, no password on the instance) or [{username, mechanism, password}] (salted at start). At start the broker stores each credential in the metadata where that user has none of that mechanism; a password itself is never stored."),
	agent(listSetting("sasl.enabled.mechanisms", saslMechanisms),
		"SASL mechanisms of SASL_SSL listeners that do not set their own."),
	agent(listSetting("listener.name.<listener>.sasl.enabled.mechanisms", saslMechanisms),
		"SASL mechanisms a SASL_SSL listener offers: SCRAM-SHA-512, SCRAM-SHA-256 (credentials in the metadata), OAUTHBEARER (AWS IAM identity tokens). Refused on other listeners."),
	user(msSetting("connections.max.reauth.ms", "long", "0", 0, maxMillis, func(c *Config) *time.Duration { return &c.ConnectionsMaxReauth }),
		"Longest SASL session before the client must re-authenticate (KIP-368); 0: the mechanism's own lifetime (an IAM token's validity; none for SCRAM). A session past it is closed at its next request."),
	agent(Setting{Name: "super.users", Type: "list", Allowed: "User:name;User:name...", skipEmptyDefault: true,
		set: func(c *Config, name, v string) error {
			if c.Kept == nil {
				c.Kept = map[string]string{}
			}
			c.Kept[name] = v
			return nil
		},
		get: func(c *Config, name string) string { return c.Kept[name] }},
		"Principals allowed everything by the authorizer, separated by ';' (User:admin;User:CN=broker-1)."),
	agent(Setting{Name: "allow.everyone.if.no.acl.found", Type: "boolean", Values: []string{"true", "false"}, Allowed: "true, false", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			switch strings.ToLower(v) {
			case "true", "false":
				b := strings.ToLower(v) == "true"
				c.allowEveryone = &b
			case "":
				c.allowEveryone = nil
			default:
				return fmt.Errorf("must be true or false")
			}
			return nil
		},
		get: func(c *Config, _ string) string {
			return strconv.FormatBool(c.AllowEveryoneIfNoACLFound())
		}},
		"Whether a resource no ACL applies to is open to everyone. Unset: true while no client listener authenticates (every client is User:ANONYMOUS), false as soon as one does (SASL_SSL, or SSL with ssl.client.auth); true is refused then."),

	metricsSetting("tributary.cluster.name", "a name", "Cluster name: the `Cluster Name` dimension of CloudWatch metrics (defaults to cluster.id)."),
	metricsSetting("tributary.metrics.cloudwatch.enable", "true, false", "Ship metrics to CloudWatch, with MSK's metric names."),
	metricsSetting("tributary.metrics.cloudwatch.namespace", "a namespace not starting with AWS/", "CloudWatch namespace of the shipped metrics (required when shipping)."),
	metricsSetting("tributary.metrics.cloudwatch.level", "DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER, PER_TOPIC_PER_PARTITION", "MSK monitoring level."),
	metricsSetting("tributary.metrics.cloudwatch.interval.ms", ">= 1000", "How often metrics are shipped (default 60000)."),
	metricsSetting("tributary.logs.cloudwatch.enable", "true, false", "Ship the broker's log and audit trail to CloudWatch Logs (streams broker-<id> and broker-<id>/audit)."),
	metricsSetting("tributary.logs.cloudwatch.log.group", "a log group name", "CloudWatch Logs group the logs go to (required when shipping); created when missing."),
	metricsSetting("tributary.logs.s3.enable", "true, false", "Deliver the broker's log and audit trail to S3 as gzip objects (Broker-<id>_... and Broker-<id>-audit_...)."),
	metricsSetting("tributary.logs.s3.bucket", "an S3 bucket name", "S3 bucket the log objects go to (required when delivering); it must exist."),
	metricsSetting("tributary.logs.firehose.enable", "true, false", "Send the broker's log and audit trail to a Firehose delivery stream, a record per line (audit lines carry log=audit)."),
	metricsSetting("tributary.logs.firehose.delivery.stream", "a delivery stream name", "Firehose delivery stream the log records go to (required when sending); it must exist."),
	metricsSetting("tributary.logs.s3.key.prefix", "an S3 key prefix", "Key prefix of the log objects, MSK's <prefix>/AWSLogs/<account>/KafkaBrokerLogs/<region>/<cluster name>-<cluster id>/ as the boot agent writes it; the objects go under <key prefix><yyyy-mm-dd-hh>/."),

	user(intSetting("num.partitions", "int", "1", 1, 1<<20, func(c *Config) *int32 { return &c.NumPartitions }),
		"Partitions of an auto-created topic, and of CreateTopics with -1 partitions."),
	clusterWide(user(intSetting("max.broker.partitions", "int", "10000", 1, math.MaxInt32, func(c *Config) *int { return &c.MaxBrokerPartitions }),
		"Partition replicas one broker may hold (Amazon MSK's partitions-per-broker limit, replicas included; as KIP-578's name). The active controller refuses, with POLICY_VIOLATION, a CreateTopics, CreatePartitions or AlterPartitionReassignments that would put more on a broker. Cluster-wide and dynamic: set it with IncrementalAlterConfigs on the cluster default (broker resource \"\", ALTER_CONFIGS on the cluster), as the Terraform provider does; a broker's own dynamic value is refused. Until a cluster-wide value is set, the active controller's static value applies (give every broker the same). Lowering it below what a broker already holds is allowed, as in Kafka: that broker keeps its partitions and refuses only more. MSK allows 300 (t3.small) to 4,000 (m5.4xlarge and larger), which the provider sets by instance type. Apart from it, one request creates at most 9,999 partitions of a topic (Kafka's 10,000 metadata records per request).")),
	sizedBy(user(intSetting("default.replication.factor", "int", "1", 1, math.MaxInt16, func(c *Config) *int16 { return &c.DefaultReplicationFactor }),
		"Replication factor of auto-created topics and of CreateTopics with -1. Must not exceed the number of brokers."),
		"3", func(n int) string { return strconv.Itoa(clusterReplicationFactor(n)) }),
	clusterDefault(user(boolSetting("auto.create.topics.enable", "true", func(c *Config) *bool { return &c.AutoCreateTopics }),
		"Create a topic when Metadata names one that does not exist."), "false"),
	user(boolSetting("delete.topic.enable", "true", func(c *Config) *bool { return &c.DeleteTopicEnable }), "Allow DeleteTopics."),
	sizedBy(dynamic(user(intSetting("min.insync.replicas", "int", "1", 1, math.MaxInt16, func(c *Config) *int32 { return &c.MinInsyncReplicas }),
		"Replicas that must have a record before acks=all succeeds. A single broker is its own ISR: acks=all needs 1 there.")),
		"2", func(n int) string { return strconv.Itoa(max(1, min(2, clusterReplicationFactor(n)-1))) }),
	clusterDefault(clusterWide(user(boolSetting("unclean.leader.election.enable", "false", func(c *Config) *bool { return &c.UncleanLeaderElection }),
		"Whether a replica outside the ISR may become leader when no ISR member can, losing the writes only the ISR had. Only when the ISR's members are gone (fenced): a leader that is alive but gives its partitions up (a controlled shutdown, a full disk) hands them to ISR members only, and keeps those it alone holds in sync. The cluster's controller reads the topic's value, else the cluster-wide dynamic value (IncrementalAlterConfigs on the cluster default, as the Terraform provider sets it); a broker's own dynamic value, which it would ignore, is refused, and a config file's value is reported but not used.")), "false"),

	dynamic(user(intSetting("message.max.bytes", "int", "1048588", 1, math.MaxInt32, func(c *Config) *int32 { return &c.MessageMaxBytes }),
		"Largest record batch accepted (after compression); topics override it with max.message.bytes.")),
	// The bounds are recordbatch.MinZstdMaxWindow and MaxZstdMaxWindow
	// (zstd's smallest window; the largest its reference decoder, and so
	// Kafka's zstd-jni, accepts by default).
	dynamic(user(intSetting("tributary.zstd.max.window.bytes", "long", "8388608", 1<<10, 128<<20, func(c *Config) *int64 { return &c.ZstdMaxWindowBytes }),
		"Largest window a zstd frame may declare in a batch a producer sends (the leader streams every compressed batch through its decoder before the log takes it: the records' check, a compacted topic's keys, re-compression to the topic's compression.type). A frame asking for more is refused as corrupt (CORRUPT_MESSAGE). Stored batches (ListOffsets by timestamp, the log cleaner) are read whatever this bound is now, up to 128 MiB: they were accepted under a higher bound or copied from a leader; a stored frame over this bound is read by one stream at a time, broker wide. The default, 8 MiB, is zstd's window up to level 19; levels 20-22 and --long ask for 16 to 128 MiB, which Kafka accepts. Each of the broker's max(4, GOMAXPROCS) decoding streams may hold a window of history, so the broker holds at most max(4, GOMAXPROCS) x this of zstd history at once, plus 128 MiB while a stored frame over it is read (32 MiB at the default on up to 4 cores, 512 MiB at 128 MiB). Dynamic: a change holds from the next stream on (a decoder made under the old bound is not reused).")),
	user(intSetting("socket.request.max.bytes", "int", "104857600", 1024, math.MaxInt32, func(c *Config) *int32 { return &c.SocketRequestMaxBytes }),
		"Largest request frame; a bigger one closes the connection."),
	dynamic(user(intSetting("max.connections", "int", "10000", 1, 1<<30, func(c *Config) *int { return &c.MaxConnections }),
		"Connections served at once; further ones are closed on accept.")),
	dynamic(user(intSetting("max.connections.per.ip", "int", "2147483647", 1, math.MaxInt32, func(c *Config) *int { return &c.MaxConnectionsPerIP }),
		"Client connections one source address may hold at once, on all client listeners together; further ones from it are closed on accept (tributary_connections_refused_total{reason=\"per_ip\"}). The default, Kafka's and MSK's, is no limit: one address can then hold all of max.connections. 0 (Kafka: only the overrides' addresses may connect) is refused.")),
	dynamic(user(connectionOverridesSetting("max.connections.per.ip.overrides", func(c *Config) *map[netip.Addr]int { return &c.MaxConnectionsPerIPOverrides }),
		"max.connections.per.ip for given addresses, ip:count comma-separated (10.0.0.7:500,fd00::1:20); 0 refuses every connection from that address. Kafka also takes host names, resolved when set: here only IP addresses.")),
	user(msSetting("connections.max.idle.ms", "long", "600000", 1, maxMillis, func(c *Config) *time.Duration { return &c.ConnectionsMaxIdle }),
		"A connection that sends nothing for this long is closed."),
	user(msSetting("fetch.max.wait.cap.ms", "long", "30000", 0, maxMillis, func(c *Config) *time.Duration { return &c.FetchMaxWaitCap }),
		"Tributary: the longest a Fetch long poll is held, whatever max wait the client asks for."),
	user(intSetting("fetch.memory.max.bytes", "long", "0", 0, math.MaxInt64, func(c *Config) *int64 { return &c.FetchMemoryMaxBytes }),
		"Tributary: the most memory, broker-wide, that fetch responses read into memory hold until written: consumers' on TLS listeners (SSL, SASL_SSL) and followers' over TLS replication; plaintext ones are sent from the segment files and hold none. A fetch that finds it spent gets what is left, or only its first batch when it has nothing yet (KIP-74), so the bound may be passed by one batch (max.message.bytes) per fetch in progress. 0: a quarter of GOMEMLIMIT when set, else of the memory the process may use (its cgroup's limit, or the host's), at least 64 MiB."),

	dynamic(user(intSetting("queued.max.request.bytes", "long", "0", -1, math.MaxInt64, func(c *Config) *int64 { return &c.QueuedMaxRequestBytes }),
		"The most request bytes, broker-wide, that the client listeners hold read from their sockets: a request is charged its size when its size header is read, a Produce request until its records are appended, any other until it is decoded. A connection whose request does not fit stops reading (TCP backpressure) until others give theirs back, in the order they came; a request larger than the whole bound is refused and its connection closed. The replication listener has its own bound (64 MiB, its requests being at most 1 MiB). 0: a quarter of GOMEMLIMIT when set, else of the memory the process may use (its cgroup's limit, or the host's), and at least socket.request.max.bytes, so that every request the broker accepts fits; a value set above 0 must be at least socket.request.max.bytes too (refused otherwise, as Kafka does); -1: no bound (Kafka's default).")),

	user(intSetting("quota.window.num", "int", "11", 1, 1000, func(c *Config) *int { return &c.QuotaWindowNum }),
		"Samples a client quota's rate is measured over (the rate spans at least all but one of them)."),
	user(intSetting("quota.window.size.seconds", "int", "1", 1, 3600, func(c *Config) *int { return &c.QuotaWindowSizeSeconds }),
		"Length of one client quota sample, in seconds. A throttle lasts at most quota.window.num of them."),

	dynamic(user(intSetting("leader.replication.throttled.rate", "long", "9223372036854775807", 1, math.MaxInt64, func(c *Config) *int64 { return &c.LeaderReplicationThrottledRate }),
		"Replication throttle (KIP-73): bytes per second this broker, as a leader, sends to followers of the replicas a topic's leader.replication.throttled.replicas names here. Replicas in the ISR are counted but never held back. Set per broker or cluster-wide with IncrementalAlterConfigs; the default is no limit. 0 (which Kafka accepts and which would stop a throttled reassignment for good) is refused.")),
	dynamic(user(intSetting("follower.replication.throttled.rate", "long", "9223372036854775807", 1, math.MaxInt64, func(c *Config) *int64 { return &c.FollowerReplicationThrottledRate }),
		"Replication throttle (KIP-73): bytes per second this broker, as a follower, fetches for the replicas a topic's follower.replication.throttled.replicas names here, while they are behind the leader's high watermark. Set per broker or cluster-wide with IncrementalAlterConfigs; the default is no limit; 0 is refused.")),
	user(intSetting("replication.quota.window.num", "int", "11", 1, 1000, func(c *Config) *int { return &c.ReplicationQuotaWindowNum }),
		"Samples the replication throttle's rate is measured over (the rate spans at least all but one of them, so a throttled copy may start with a burst of that many seconds' worth)."),
	user(intSetting("replication.quota.window.size.seconds", "int", "1", 1, 3600, func(c *Config) *int { return &c.ReplicationQuotaWindowSizeSeconds }),
		"Length of one replication throttle sample, in seconds."),

	user(intSetting("max.incremental.fetch.session.cache.slots", "int", "1000", 0, 1<<20, func(c *Config) *int { return &c.FetchSessionCacheSlots }),
		"Incremental fetch sessions (KIP-227) kept at once; when all are in use new ones are refused and those consumers send full fetches. 0 turns sessions off."),

	dynamic(user(enumSetting("compression.type", "producer", []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}, func(c *Config) *string { return &c.CompressionType }),
		"The codec record batches are stored in; topics override it with compression.type. producer keeps each batch as the producer compressed it; any other value makes the leader rewrite a batch in another codec (uncompressed: none) before storing it, keeping its offsets, timestamps and producer id, epoch and sequence, as Kafka does. A rewritten batch larger than max.message.bytes is refused (MESSAGE_TOO_LARGE).")),

	dynamic(user(unitSetting("log.retention.hours", "168", time.Hour, maxHours, func(c *Config) *time.Duration { return &c.LogRetention }),
		"Retention by time, in hours; -1 keeps data forever (log.retention.minutes and log.retention.ms win).")),
	dynamic(user(unitSetting("log.retention.minutes", "", time.Minute, maxMinutes, func(c *Config) *time.Duration { return &c.LogRetention }),
		"Retention by time, in minutes; -1 keeps data forever.")),
	dynamic(user(unitSetting("log.retention.ms", "", time.Millisecond, maxMillis, func(c *Config) *time.Duration { return &c.LogRetention }),
		"Retention by time; -1 keeps data forever. Topic override: retention.ms.")),
	dynamic(user(intSetting("log.retention.bytes", "long", "-1", -1, math.MaxInt64, func(c *Config) *int64 { return &c.LogRetentionBytes }),
		"Retention by size per partition; -1 is unlimited. Topic override: retention.bytes.")),
	dynamic(user(intSetting("log.segment.bytes", "int", "1073741824", 14, math.MaxInt32, func(c *Config) *int64 { return &c.LogSegmentBytes }),
		"Segment size before a roll. Topic override: segment.bytes.")),
	dynamic(user(hoursSetting("log.roll.hours", "168", func(c *Config) *time.Duration { return &c.LogRoll }),
		"Segment age before a roll, in hours (log.roll.ms wins).")),
	dynamic(user(msSetting("log.roll.ms", "long", "", 1, maxMillis, func(c *Config) *time.Duration { return &c.LogRoll }),
		"Segment age before a roll. Topic override: segment.ms.")),
	dynamic(user(Setting{Name: "log.cleanup.policy", Type: "list", Default: "delete", Allowed: "delete, compact, compact,delete",
		set: func(c *Config, _, v string) error {
			p, err := NormalizeCleanupPolicy(v)
			if err != nil {
				return err
			}
			c.LogCleanupPolicy = p
			return nil
		},
		get: func(c *Config, _ string) string { return c.LogCleanupPolicy }},
		"delete, compact or compact,delete. Topic override: cleanup.policy.")),
	dynamic(user(msSetting("log.cleaner.delete.retention.ms", "long", "86400000", 1, maxMillis, func(c *Config) *time.Duration { return &c.LogDeleteRetention }),
		"How long tombstones stay after compaction. Topic override: delete.retention.ms.")),
	dynamic(user(msSetting("log.segment.delete.delay.ms", "long", "60000", 0, maxMillis, func(c *Config) *time.Duration { return &c.LogSegmentDeleteDelay }),
		"How long a segment that retention, DeleteRecords or compaction took out of the log (or a deleted topic's partition, or a partition moved off this broker) stays on disk, renamed, before its files are closed and removed, so that fetches sending from it finish instead of closing their connections. 0 deletes at once; so does a data volume under 5 % free or a write or fsync that failed for lack of space in the last minute. Topic override: file.delete.delay.ms.")),
	dynamic(user(intSetting("log.index.interval.bytes", "int", "4096", 1, math.MaxInt32, func(c *Config) *int32 { return &c.LogIndexIntervalBytes }),
		"Bytes between offset index entries. Topic override: index.interval.bytes.")),
	dynamic(user(enumSetting("log.message.timestamp.type", "CreateTime", []string{"CreateTime", "LogAppendTime"}, func(c *Config) *string { return &c.LogTimestampType }),
		"CreateTime or LogAppendTime. Topic override: message.timestamp.type.")),
	user(enumSetting("log.flush.policy", FlushGroup, []string{FlushGroup, FlushInterval, FlushNone}, func(c *Config) *string { return &c.LogFlushPolicy }),
		"Tributary: when data reaches the disk. group: fsync before acknowledging, concurrent produces share one fsync (default). interval: acknowledge first, fsync every log.flush.interval.ms. none: leave it to the OS."),
	user(enumSetting("log.flush.sync", "auto", []string{"auto", "fdatasync", "syncfs"}, func(c *Config) *string { return &c.LogFlushSync }),
		"Tributary: how a sync round makes data durable. fdatasync: each file written since the last round, concurrently. syncfs: the data directory's whole file system in one call, one journal commit and device flush instead of one per file; right only where nothing else writes to that file system (the data volume), and needs Linux 5.8+. auto: syncfs when the data directory is on a file system other than the root one and the kernel is 5.8+, else fdatasync. Either way an acknowledged write is on disk; after a failed syncfs the broker uses fdatasync until it restarts."),
	user(msSetting("log.flush.interval.ms", "long", "1000", 1, maxMillis, func(c *Config) *time.Duration { return &c.LogFlushInterval }),
		"fsync period with log.flush.policy=interval."),
	user(msSetting("log.retention.check.interval.ms", "long", "300000", 1, maxMillis, func(c *Config) *time.Duration { return &c.LogRetentionCheck }),
		"How often retention and compaction run."),

	user(msSetting("group.initial.rebalance.delay.ms", "int", "3000", 0, math.MaxInt32, func(c *Config) *time.Duration { return &c.GroupInitialRebalanceDelay }),
		"Wait for more members before the first rebalance of an empty group."),
	user(msSetting("group.min.session.timeout.ms", "int", "6000", 0, math.MaxInt32, func(c *Config) *time.Duration { return &c.GroupMinSessionTimeout }),
		"Smallest session timeout a group member may ask for."),
	user(msSetting("group.max.session.timeout.ms", "int", "1800000", 0, math.MaxInt32, func(c *Config) *time.Duration { return &c.GroupMaxSessionTimeout }),
		"Largest session timeout a group member may ask for."),
	user(minutesSetting("offsets.retention.minutes", "10080", func(c *Config) *time.Duration { return &c.OffsetsRetention }),
		"How long committed offsets of an empty group are kept."),

	user(intSetting("transaction.state.log.num.partitions", "int", "50", 1, 1000, func(c *Config) *int32 { return &c.TransactionStatePartitions }),
		"Partitions of __transaction_state, created with the cluster's default.replication.factor at the first transaction-coordinator lookup; a transactional id is coordinated by the leader of the partition its hash selects. Fixed once the topic exists."),
	user(msSetting("transaction.max.timeout.ms", "int", "900000", 1, math.MaxInt32, func(c *Config) *time.Duration { return &c.TransactionMaxTimeout }),
		"Largest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT above it)."),
	user(msSetting("producer.id.expiration.ms", "int", "86400000", 1, math.MaxInt32, func(c *Config) *time.Duration { return &c.ProducerIDExpiration }),
		"How long a partition keeps the state (id, epoch, last sequences) of an idempotent producer that no longer writes to it; dropped at the partition's next checkpoint after that. Any principal with WRITE on a topic can write with producer ids of its choosing, each kept this long (about 124 bytes of memory a partition and producer id): a lower value bounds what such a loop holds. Kafka's setting and default; not dynamic here."),
	user(msSetting("transactional.id.expiration.ms", "int", "604800000", 1, math.MaxInt32, func(c *Config) *time.Duration { return &c.TransactionalIDExpiration }),
		"A transactional id with no transaction open and no request for this long is forgotten (its producer id is no longer fenced by it)."),
	user(msSetting("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", "10000", 1, math.MaxInt32, func(c *Config) *time.Duration { return &c.TransactionAbortCheck }),
		"How often the transaction coordinator aborts transactions open longer than their transaction.timeout.ms."),
	user(msSetting("transaction.remove.expired.transaction.cleanup.interval.ms", "int", "3600000", 1, math.MaxInt32, func(c *Config) *time.Duration { return &c.TransactionalIDExpiryCheck }),
		"How often the transaction coordinator forgets transactional ids idle past transactional.id.expiration.ms."),
}, authorizationSettings...))

func agent(s Setting, doc string) Setting { s.Owner, s.Doc = OwnerAgent, doc; return s }
func user(s Setting, doc string) Setting  { s.Owner, s.Doc = OwnerUser, doc; return s }
func dynamic(s Setting) Setting           { s.Dynamic = true; return s }
func clusterWide(s Setting) Setting       { s.Dynamic, s.ClusterWide = true, true; return s }

func clusterDefault(s Setting, v string) Setting { s.ClusterDefault = v; return s }

func sizedBy(s Setting, v string, f func(n int) string) Setting {
	s.ClusterDefault, s.sized = v, f
	return s
}

// integer is the Go types integer settings are stored in.
type integer interface {
	~int | ~int16 | ~int32 | ~int64
}

// intSetting is an integer setting in [lo, hi].
func intSetting[T integer](name, typ, def string, lo, hi int64, field func(*Config) *T) Setting {
	return Setting{Name: name, Type: typ, Default: def, Range: &Range{lo, hi}, Allowed: rangeText(lo, hi),
		set: func(c *Config, _, v string) error { return setRange(field(c), v, lo, hi) },
		get: func(c *Config, _ string) string { return itoa(int64(*field(c))) }}
}

// msSetting is a duration in milliseconds, in [lo, hi]; lo -1 stands for
// "forever", kept as a negative duration.
func msSetting(name, typ, def string, lo, hi int64, field func(*Config) *time.Duration) Setting {
	s := unitSetting(name, def, time.Millisecond, hi, field)
	s.Type = typ
	if lo >= 0 {
		s.Range.Min, s.Allowed = lo, rangeText(lo, hi)
		s.set = func(c *Config, _, v string) error {
			var n int64
			if err := setRange(&n, v, lo, hi); err != nil {
				return err
			}
			*field(c) = time.Duration(n) * time.Millisecond
			return nil
		}
	}
	return s
}

// unitSetting is a retention time in units: -1 keeps data forever, 0 is
// refused (the log would be deleted as it is written).
func unitSetting(name, def string, unit time.Duration, hi int64, field func(*Config) *time.Duration) Setting {
	typ := "int"
	if unit == time.Millisecond {
		typ = "long"
	}
	return Setting{Name: name, Type: typ, Default: def, Range: &Range{-1, hi}, Allowed: "-1 (forever) or " + rangeText(1, hi),
		skipEmptyDefault: def == "",
		set: func(c *Config, _, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			switch {
			case err != nil:
				return fmt.Errorf("must be an integer")
			case n == -1:
				*field(c) = -1
			case n < 1 || n > hi:
				return fmt.Errorf("must be -1 (forever) or %s", strings.Replace(rangeText(1, hi), ">= 1", "at least 1", 1))
			default:
				*field(c) = time.Duration(n) * unit
			}
			return nil
		},
		get: func(c *Config, _ string) string {
			if d := *field(c); d < 0 {
				return "-1"
			}
			return itoa(int64(*field(c) / unit))
		}}
}

// hoursSetting and minutesSetting are durations in whole hours or minutes, at least 1.
func hoursSetting(name, def string, field func(*Config) *time.Duration) Setting {
	return wholeUnits(name, def, time.Hour, maxHours, field)
}

func minutesSetting(name, def string, field func(*Config) *time.Duration) Setting {
	return wholeUnits(name, def, time.Minute, maxMinutes, field)
}

func wholeUnits(name, def string, unit time.Duration, hi int64, field func(*Config) *time.Duration) Setting {
	return Setting{Name: name, Type: "int", Default: def, Range: &Range{1, hi}, Allowed: rangeText(1, hi),
		set: func(c *Config, _, v string) error {
			var n int64
			if err := setRange(&n, v, 1, hi); err != nil {
				return err
			}
			*field(c) = time.Duration(n) * unit
			return nil
		},
		get: func(c *Config, _ string) string { return itoa(int64(*field(c) / unit)) }}
}

func boolSetting(name, def string, field func(*Config) *bool) Setting {
	return Setting{Name: name, Type: "boolean", Default: def, Values: []string{"true", "false"}, Allowed: "true, false",
		set: func(c *Config, _, v string) error {
			switch strings.ToLower(v) {
			case "true":
				*field(c) = true
			case "false":
				*field(c) = false
			default:
				return fmt.Errorf("must be true or false")
			}
			return nil
		},
		get: func(c *Config, _ string) string { return strconv.FormatBool(*field(c)) }}
}

// sslSetting declares an ssl.* setting together with its per-listener
// form, listener.name.<listener>.ssl.*, which withListenerForms adds.
func sslSetting(s Setting) Setting { s.perListener = true; return s }

// withListenerForms adds, after the table, the per-listener form of every
// setting declared with sslSetting: Kafka lets a listener override any
// ssl.* setting with listener.name.<listener>.ssl.*.
func withListenerForms(table []Setting) []Setting {
	out := slices.Clone(table)
	for _, s := range table {
		if !s.perListener {
			continue
		}
		l := s
		l.Name = "listener.name." + listenerPlaceholder + "." + s.Name
		l.Doc = "Per-listener " + s.Name + ", over the broker-wide one."
		l.perListener = false
		out = append(out, l)
	}
	return out
}

// passwordSetting is a secret kept by name: DescribeConfigs reports it as
// sensitive, without its value, as Kafka does for its password type.
func passwordSetting(name, allowed string) Setting {
	s := stringSetting(name, allowed, keptAs)
	s.Type = "password"
	return s
}

// keptAs stores an agent-written setting that the broker only reports.
func keptAs(*Config) *string { return nil }

// enumSetting accepts one of values. A nil field (keptAs) keeps the value
// by name in Config.Kept.
func enumSetting(name, def string, values []string, field func(*Config) *string) Setting {
	s := stringSetting(name, "", field)
	s.Default, s.Values, s.Allowed = def, values, strings.Join(values, ", ")
	s.skipEmptyDefault = def == ""
	set := s.set
	s.set = func(c *Config, name, v string) error {
		if !slices.Contains(values, v) {
			if len(values) == 1 {
				return fmt.Errorf("must be %s", values[0])
			}
			return fmt.Errorf("must be one of %s", strings.Join(values, ", "))
		}
		return set(c, name, v)
	}
	return s
}

// listSetting is a comma-separated list of some of values, kept by name.
func listSetting(name string, values []string) Setting {
	s := stringSetting(name, "", keptAs)
	s.Type, s.Values, s.Allowed = "list", values, "a list of "+strings.Join(values, ", ")
	set := s.set
	s.set = func(c *Config, name, v string) error {
		for _, item := range strings.Split(v, ",") {
			if !slices.Contains(values, strings.TrimSpace(item)) {
				return fmt.Errorf("%q is not one of %s", strings.TrimSpace(item), strings.Join(values, ", "))
			}
		}
		return set(c, name, v)
	}
	return s
}

// cidrListSetting is a comma-separated list of CIDR blocks (IPv4 or IPv6).
func cidrListSetting(name string, field func(*Config) *[]netip.Prefix) Setting {
	return Setting{Name: name, Type: "list", Allowed: "CIDR blocks (a.b.c.d/n, comma-separated)", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			var out []netip.Prefix
			for _, item := range strings.Split(v, ",") {
				item = strings.TrimSpace(item)
				if item == "" {
					continue
				}
				p, err := netip.ParsePrefix(item)
				if err != nil {
					return fmt.Errorf("%q is not a CIDR block such as 10.0.0.0/16", item)
				}
				out = append(out, p.Masked())
			}
			if len(out) == 0 {
				return errors.New("must list at least one CIDR block; leave it unset to answer any source")
			}
			*field(c) = out
			return nil
		},
		get: func(c *Config, _ string) string {
			var parts []string
			for _, p := range *field(c) {
				parts = append(parts, p.String())
			}
			return strings.Join(parts, ",")
		}}
}

// connectionOverridesSetting is a comma-separated list of ip:count, a
// count in [0, 2^31-1] per IP address (IPv6 without brackets, the count
// after the last colon).
func connectionOverridesSetting(name string, field func(*Config) *map[netip.Addr]int) Setting {
	return Setting{Name: name, Type: "string", Allowed: "ip:count, comma-separated", skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			out := map[netip.Addr]int{}
			for _, item := range strings.Split(v, ",") {
				item = strings.TrimSpace(item)
				if item == "" {
					continue
				}
				i := strings.LastIndexByte(item, ':')
				if i < 0 {
					return fmt.Errorf("%q is not ip:count, such as 10.0.0.7:100", item)
				}
				host, count := strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:])
				addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
				if err != nil {
					return fmt.Errorf("%q: %q is not an IP address (host names are not resolved; give the address)", item, host)
				}
				n, err := strconv.ParseInt(count, 10, 32)
				if err != nil || n < 0 {
					return fmt.Errorf("%q: the count %q is not a whole number in 0 .. 2147483647", item, count)
				}
				addr = addr.Unmap()
				if _, dup := out[addr]; dup {
					return fmt.Errorf("%s is listed twice", addr)
				}
				out[addr] = int(n)
			}
			*field(c) = out
			return nil
		},
		get: func(c *Config, _ string) string {
			m := *field(c)
			addrs := make([]netip.Addr, 0, len(m))
			for a := range m {
				addrs = append(addrs, a)
			}
			slices.SortFunc(addrs, netip.Addr.Compare)
			parts := make([]string, 0, len(addrs))
			for _, a := range addrs {
				parts = append(parts, a.String()+":"+strconv.Itoa(m[a]))
			}
			return strings.Join(parts, ",")
		}}
}

// stringSetting is free text; allowed describes it ("" for anything).
func stringSetting(name, allowed string, field func(*Config) *string) Setting {
	return Setting{Name: name, Type: "string", Allowed: allowed, skipEmptyDefault: true,
		set: func(c *Config, name, v string) error {
			if p := field(c); p != nil {
				*p = v
				return nil
			}
			if c.Kept == nil {
				c.Kept = map[string]string{}
			}
			c.Kept[name] = v
			return nil
		},
		get: func(c *Config, name string) string {
			if p := field(c); p != nil {
				return *p
			}
			return c.Kept[name]
		}}
}

// metricsSetting declares a setting of the metrics component: kept as
// written, validated by broker/metrics (metrics.ParseCloudWatchSettings)
// when the broker starts; allowed says what it accepts.
func metricsSetting(name, allowed, doc string) Setting {
	return agent(Setting{Name: name, Type: "string", Allowed: allowed, skipEmptyDefault: true,
		set: func(c *Config, _, v string) error {
			if c.Metrics == nil {
				c.Metrics = map[string]string{}
			}
			c.Metrics[name] = v
			return nil
		},
		get: func(c *Config, _ string) string { return c.Metrics[name] },
	}, doc)
}

func rangeText(lo, hi int64) string {
	switch {
	case hi >= maxMillis:
		return fmt.Sprintf(">= %d", lo)
	default:
		return fmt.Sprintf("%d .. %d", lo, hi)
	}
}

// NormalizeCleanupPolicy accepts Kafka's cleanup.policy spellings and returns
// "delete", "compact" or "compact,delete".
func NormalizeCleanupPolicy(v string) (string, error) {
	var del, compact bool
	for _, p := range strings.Split(v, ",") {
		switch strings.TrimSpace(p) {
		case "delete":
			del = true
		case "compact":
			compact = true
		default:
			return "", fmt.Errorf("cleanup policy %q: want delete, compact or both", v)
		}
	}
	switch {
	case del && compact:
		return "compact,delete", nil
	case compact:
		return "compact", nil
	default:
		return "delete", nil
	}
}

func setDataDir(c *Config, v string) error {
	dirs := strings.Split(v, ",")
	d := strings.TrimSpace(dirs[0])
	if d == "" {
		return fmt.Errorf("empty directory")
	}
	c.DataDir = d
	return nil
}

// setRange parses an integer in [lo, hi] into dst.
func setRange[T integer](dst *T, v string, lo, hi int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("must be an integer")
	}
	if n < lo || n > hi {
		if hi >= maxMillis {
			return fmt.Errorf("must be at least %d", lo)
		}
		return fmt.Errorf("must be between %d and %d", lo, hi)
	}
	*dst = T(n)
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
