// Package config holds the broker's settings: their Kafka names, defaults,
// parsing from a Java-properties file (the format of Kafka's
// server.properties), command-line overrides and validation.
//
// Every setting is declared once in the table in settings.go; the table drives
// parsing, DescribeConfigs answers, dynamic updates and the settings table in
// docs/broker.md (a test checks the doc against it).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/broker/security/authz"
)

// Flush policies (log.flush.policy).
const (
	// FlushGroup fsyncs before a produce is acknowledged; concurrent
	// produces share one fsync (group commit). The default.
	FlushGroup = "group"
	// FlushInterval acknowledges before fsync and fsyncs every
	// log.flush.interval.ms, as Kafka does with replication doing the rest.
	FlushInterval = "interval"
	// FlushNone leaves flushing to the operating system.
	FlushNone = "none"
)

// Config is the broker's resolved configuration. Durations and sizes are in
// Go units; the Kafka names are in the settings table.
type Config struct {
	NodeID int32
	Rack   string
	// The listener settings as configured; Listeners resolves them.
	ListenersSpec           string // listeners
	AdvertisedListeners     string // advertised.listeners
	ProtocolMap             string // listener.security.protocol.map
	InterBrokerListenerName string // inter.broker.listener.name
	ControllerListenerNames string // controller.listener.names
	// AllowPlaintextInCluster is tributary.allow.plaintext.inter.broker:
	// accept a plaintext replication or controller listener next to a TLS
	// client listener (plaintextInClusterErrors).
	AllowPlaintextInCluster bool
	DataDir                 string
	ClusterID               string
	ControllerQuorumVoters  string // controller.quorum.voters: set = run in a cluster
	// Cluster timings (see docs/broker-cluster.md): the broker lease and how
	// often it is renewed, and the metadata quorum's Raft timeouts.
	BrokerSessionTimeout      time.Duration // broker.session.timeout.ms
	BrokerHeartbeatInterval   time.Duration // broker.heartbeat.interval.ms
	ControllerElectionTimeout time.Duration // controller.quorum.election.timeout.ms
	ControllerFetchTimeout    time.Duration // controller.quorum.fetch.timeout.ms
	InterBrokerPort           int
	MetricsListen             string
	// MetricsAllowedCIDRs and MetricsNodeAllowedCIDRs are the sources the
	// metrics listener and the host-metrics listener (MetricsNodeListen)
	// answer; nil answers any (see metrics.AllowSources).
	MetricsAllowedCIDRs     []netip.Prefix
	MetricsNodeListen       string
	MetricsNodeAllowedCIDRs []netip.Prefix

	NumPartitions            int32
	MaxBrokerPartitions      int // max.broker.partitions
	DefaultReplicationFactor int16
	AutoCreateTopics         bool
	DeleteTopicEnable        bool
	MinInsyncReplicas        int32
	UncleanLeaderElection    bool // the cluster's controller reads the dynamic value

	MessageMaxBytes       int32
	ZstdMaxWindowBytes    int64 // tributary.zstd.max.window.bytes
	SocketRequestMaxBytes int32
	MaxConnections        int
	// MaxConnectionsPerIP bounds the client connections one source
	// address holds at once, MaxConnectionsPerIPOverrides per address
	// (max.connections.per.ip, max.connections.per.ip.overrides).
	MaxConnectionsPerIP          int
	MaxConnectionsPerIPOverrides map[netip.Addr]int
	ConnectionsMaxIdle           time.Duration
	FetchMaxWaitCap              time.Duration // upper bound on a Fetch long poll, whatever the client asks
	FetchMemoryMaxBytes          int64         // fetch.memory.max.bytes; 0: derived from the memory the process may use
	QueuedMaxRequestBytes        int64         // queued.max.request.bytes; 0: derived from the memory the process may use, -1: no bound
	FetchSessionCacheSlots       int           // KIP-227 incremental fetch sessions kept; 0 turns them off
	QuotaWindowNum               int           // quota.window.num: samples of a client quota's rate
	QuotaWindowSizeSeconds       int           // quota.window.size.seconds: one sample's length

	// Replication throttle (KIP-73), bytes per second per broker; the
	// metadata's dynamic values win over these.
	LeaderReplicationThrottledRate    int64 // leader.replication.throttled.rate
	FollowerReplicationThrottledRate  int64 // follower.replication.throttled.rate
	ReplicationQuotaWindowNum         int   // replication.quota.window.num
	ReplicationQuotaWindowSizeSeconds int   // replication.quota.window.size.seconds

	LogRetention          time.Duration // negative: forever
	LogRetentionBytes     int64         // negative: unlimited
	LogSegmentBytes       int64
	LogRoll               time.Duration
	LogCleanupPolicy      string
	LogDeleteRetention    time.Duration
	LogSegmentDeleteDelay time.Duration
	LogIndexIntervalBytes int32
	LogTimestampType      string
	LogFlushPolicy        string
	LogFlushSync          string
	LogFlushInterval      time.Duration
	LogRetentionCheck     time.Duration

	// CompressionType is compression.type, the codec batches are stored
	// in: producer (as sent), uncompressed, gzip, snappy, lz4 or zstd.
	CompressionType string

	// ConnectionsMaxReauth bounds a SASL session (KIP-368); 0: the
	// mechanism's own lifetime only.
	ConnectionsMaxReauth time.Duration

	// allowEveryone is allow.everyone.if.no.acl.found when set.
	allowEveryone *bool

	GroupInitialRebalanceDelay time.Duration
	GroupMinSessionTimeout     time.Duration
	GroupMaxSessionTimeout     time.Duration
	OffsetsRetention           time.Duration

	// Transactions (broker/txn).
	TransactionStatePartitions int32         // transaction.state.log.num.partitions
	TransactionMaxTimeout      time.Duration // transaction.max.timeout.ms
	TransactionalIDExpiration  time.Duration // transactional.id.expiration.ms
	ProducerIDExpiration       time.Duration // producer.id.expiration.ms
	TransactionAbortCheck      time.Duration // transaction.abort.timed.out.transaction.cleanup.interval.ms
	TransactionalIDExpiryCheck time.Duration // transaction.remove.expired.transaction.cleanup.interval.ms

	// Metrics holds the tributary.* settings of the metrics component
	// (cluster name, CloudWatch shipping), by key, as written; package
	// broker/metrics parses them (metrics.ParseCloudWatchSettings(c.Get)).
	Metrics map[string]string

	// IAMAuthorization is tributary.iam.authorization (IAMPolicies or
	// IAMACLs).
	IAMAuthorization string

	// Kept holds, by name, the settings the boot agent writes for the TLS
	// and SASL listeners (key material, mechanisms, super.users), as
	// written; packages tlsconf and authz read them.
	Kept map[string]string

	// Explicit names the settings given in the config file or by flags
	// (DescribeConfigs reports them as STATIC_BROKER_CONFIG).
	Explicit map[string]bool
}

// Default returns the configuration of a single-node development broker on
// 127.0.0.1:9092 with data in ./data.
func Default() *Config {
	c := &Config{}
	for _, s := range settings {
		if s.Default == "" && s.skipEmptyDefault {
			continue
		}
		if err := s.set(c, s.Name, s.Default); err != nil {
			// The table's defaults are constants; a bad one is a bug
			// caught by TestDefaultsParse, not bad input.
			panic(fmt.Sprintf("config: default of %s: %v", s.Name, err))
		}
	}
	return c
}

// Clone returns a copy that can be changed without affecting c.
func (c *Config) Clone() *Config {
	cp := *c
	cp.Explicit = maps.Clone(c.Explicit)
	cp.Metrics = maps.Clone(c.Metrics)
	cp.Kept = maps.Clone(c.Kept)
	return &cp
}

// Load reads a properties file over the defaults. Unknown keys are logged as
// warnings and otherwise ignored, so a config written by a newer provider
// does not stop an older broker from starting.
func Load(path string, log *slog.Logger) (*Config, error) {
	c := Default()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening config file: %w", err)
	}
	defer f.Close()
	props, err := ParseProperties(f)
	if err != nil {
		return nil, fmt.Errorf("parsing config file %s: %w", path, err)
	}
	if err := c.ApplyProperties(props, log); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// ApplyProperties sets every known key. Keys are applied in the order of the
// settings table rather than file order, so that, as in Kafka, the more
// precise of two aliases wins (log.retention.ms over log.retention.hours)
// wherever they appear in the file.
func (c *Config) ApplyProperties(props []Property, log *slog.Logger) error {
	byKey := make(map[string]Property, len(props))
	for _, p := range props {
		byKey[p.Key] = p
	}
	var errs []error
	apply := func(name string, p Property) {
		s, _ := Lookup(name)
		if err := s.set(c, name, strings.TrimSpace(p.Value)); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s=%q: %w", p.Line, name, p.Value, err))
			return
		}
		c.markExplicit(name)
	}
	for _, s := range settings {
		if p, ok := byKey[s.Name]; ok {
			delete(byKey, s.Name)
			apply(s.Name, p)
		}
	}
	// Per-listener settings, and keys no setting has: Kafka ignores
	// unknown keys in server.properties, so files written for it load.
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		p := byKey[key]
		if _, ok := Lookup(key); ok {
			apply(key, p)
			continue
		}
		if log != nil {
			attrs := []any{"key", key, "line", p.Line}
			if alt := Suggest(key); alt != "" {
				attrs = append(attrs, "did_you_mean", alt)
			}
			log.Warn("ignoring unknown config key", attrs...)
		}
	}
	return errors.Join(errs...)
}

// Set changes one setting by its Kafka name.
func (c *Config) Set(name, value string) error {
	s, ok := Lookup(name)
	if !ok {
		return unknownSetting(name)
	}
	if err := s.set(c, name, strings.TrimSpace(value)); err != nil {
		return &SettingError{Name: name, Problem: fmt.Sprintf("%v, got %q", err, value)}
	}
	return nil
}

func (c *Config) markExplicit(name string) {
	if c.Explicit == nil {
		c.Explicit = map[string]bool{}
	}
	c.Explicit[name] = true
}

// Get returns the current value of a setting by its Kafka name, formatted
// as Kafka would print it.
func (c *Config) Get(name string) (string, bool) {
	s, ok := Lookup(name)
	if !ok {
		return "", false
	}
	return s.get(c, name), true
}

// Names lists the settings c has, sorted: every setting of the table, with
// per-listener ones under the names they are set by.
func (c *Config) Names() []string {
	var names []string
	for _, s := range settings {
		if !strings.Contains(s.Name, listenerPlaceholder) {
			names = append(names, s.Name)
		}
	}
	for name := range c.Kept {
		if _, table := settingIndex[name]; !table {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Validate checks what a setting's own range cannot: the listeners (every
// one must be servable: a known protocol, key material for TLS, a
// mechanism for SASL), the data directory that must exist, and values that
// depend on each other.
// Each problem is a *SettingError naming the setting to change.
func (c *Config) Validate() error {
	var errs []error
	for _, e := range c.settingErrors() {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

func (c *Config) settingErrors() []*SettingError {
	var errs []*SettingError
	bad := func(name, format string, args ...any) {
		errs = append(errs, &SettingError{Name: name, Problem: fmt.Sprintf(format, args...)})
	}
	ls, lerrs := c.resolveListeners()
	errs = append(errs, lerrs...)
	if len(lerrs) == 0 {
		errs = append(errs, c.plaintextInClusterErrors(ls)...)
	}
	if v, ok := c.Configured("super.users"); ok {
		if _, err := authz.ParseSuperUsers(v); err != nil {
			bad("super.users", "%v", err)
		}
	}
	if c.DataDir == "" {
		bad("log.dirs", "must not be empty")
	}
	errs = append(errs, c.authorizationErrors()...)
	// A broker must get at least two lease renewals into every lease, so
	// that one late or lost heartbeat does not fence it.
	if 2*c.BrokerHeartbeatInterval >= c.BrokerSessionTimeout {
		bad("broker.heartbeat.interval.ms", "(%d) must be less than half of broker.session.timeout.ms (%d), so that a lease survives a missed heartbeat",
			c.BrokerHeartbeatInterval.Milliseconds(), c.BrokerSessionTimeout.Milliseconds())
	}
	// A request the broker accepts must fit in its request memory, or it
	// would be refused after its size passed socket.request.max.bytes'
	// check (Kafka refuses the same configuration at start).
	if c.QueuedMaxRequestBytes > 0 && c.QueuedMaxRequestBytes < int64(c.SocketRequestMaxBytes) {
		bad("queued.max.request.bytes", "(%d) must be -1 (no bound), 0 (derived) or at least socket.request.max.bytes (%d), so that every request the broker accepts fits",
			c.QueuedMaxRequestBytes, c.SocketRequestMaxBytes)
	}
	return errs
}

// MinClusterTiming is the smallest accepted heartbeat interval and Raft
// timeout: below it timer jitter and scheduling delays alone would fence
// brokers and start elections.
const MinClusterTiming = 10 * time.Millisecond

func splitHostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port: %w", addr, err)
	}
	return host, int32(p), nil
}
