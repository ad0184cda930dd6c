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
	"os"
	"strconv"
	"strings"
	"time"
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
	NodeID                 int32
	Rack                   string
	Listeners              string // listeners, as configured
	AdvertisedListeners    string // advertised.listeners, as configured
	ProtocolMap            string // listener.security.protocol.map, as configured
	ListenAddr             string // host:port the served (PLAINTEXT) listener binds
	AdvertisedAddr         string // host:port given to clients in Metadata; "" = ListenAddr
	listenName             string
	DataDir                string
	ClusterID              string
	ControllerQuorumVoters string // controller.quorum.voters: set = run in a cluster
	// Cluster timings (see docs/broker-cluster.md): the broker lease and how
	// often it is renewed, and the metadata quorum's Raft timeouts.
	BrokerSessionTimeout      time.Duration // broker.session.timeout.ms
	BrokerHeartbeatInterval   time.Duration // broker.heartbeat.interval.ms
	ControllerElectionTimeout time.Duration // controller.quorum.election.timeout.ms
	ControllerFetchTimeout    time.Duration // controller.quorum.fetch.timeout.ms
	InterBrokerPort           int
	MetricsListen             string

	NumPartitions            int32
	DefaultReplicationFactor int16
	AutoCreateTopics         bool
	DeleteTopicEnable        bool
	MinInsyncReplicas        int32

	MessageMaxBytes        int32
	SocketRequestMaxBytes  int32
	MaxConnections         int
	ConnectionsMaxIdle     time.Duration
	FetchMaxWaitCap        time.Duration // upper bound on a Fetch long poll, whatever the client asks
	FetchSessionCacheSlots int           // KIP-227 incremental fetch sessions kept; 0 turns them off

	LogRetention          time.Duration // negative: forever
	LogRetentionBytes     int64         // negative: unlimited
	LogSegmentBytes       int64
	LogRoll               time.Duration
	LogCleanupPolicy      string
	LogDeleteRetention    time.Duration
	LogIndexIntervalBytes int32
	LogTimestampType      string
	LogFlushPolicy        string
	LogFlushInterval      time.Duration
	LogRetentionCheck     time.Duration

	GroupInitialRebalanceDelay time.Duration
	GroupMinSessionTimeout     time.Duration
	GroupMaxSessionTimeout     time.Duration
	OffsetsRetention           time.Duration

	// Metrics holds the tributary.* settings of the metrics component
	// (cluster name, CloudWatch shipping), by key, as written; package
	// broker/metrics parses them (metrics.ParseCloudWatchSettings(c.Get)).
	Metrics map[string]string

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
		if err := s.set(c, s.Default); err != nil {
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
	for _, s := range settings {
		p, ok := byKey[s.Name]
		if !ok {
			continue
		}
		delete(byKey, s.Name)
		if err := s.set(c, strings.TrimSpace(p.Value)); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s=%q: %w", p.Line, s.Name, p.Value, err))
			continue
		}
		c.markExplicit(s.Name)
	}
	for key, p := range byKey {
		if log != nil {
			log.Warn("ignoring unknown config key", "key", key, "line", p.Line)
		}
	}
	return errors.Join(errs...)
}

// Set changes one setting by its Kafka name.
func (c *Config) Set(name, value string) error {
	s, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("unknown config %q", name)
	}
	if err := s.set(c, strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("%s=%q: %w", name, value, err)
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
	return s.get(c), true
}

// Validate checks values that depend on each other and the ones that only
// make sense in a range.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID < 0 {
		errs = append(errs, fmt.Errorf("node.id must be >= 0, got %d", c.NodeID))
	}
	if c.ListenAddr == "" {
		errs = append(errs, fmt.Errorf("listeners=%q has no PLAINTEXT listener; TLS and SASL listeners are not served yet", c.Listeners))
	} else if _, _, err := splitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen address: %w", err))
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAddr); err != nil {
			errs = append(errs, fmt.Errorf("advertised address: %w", err))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("log.dirs must not be empty"))
	}
	if c.NumPartitions < 1 {
		errs = append(errs, fmt.Errorf("num.partitions must be >= 1, got %d", c.NumPartitions))
	}
	if c.MessageMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("message.max.bytes must be >= 0, got %d", c.MessageMaxBytes))
	}
	if c.SocketRequestMaxBytes < 1024 {
		errs = append(errs, fmt.Errorf("socket.request.max.bytes must be >= 1024, got %d", c.SocketRequestMaxBytes))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("max.connections must be >= 1, got %d", c.MaxConnections))
	}
	if c.LogSegmentBytes < 14 {
		errs = append(errs, fmt.Errorf("log.segment.bytes must be >= 14, got %d", c.LogSegmentBytes))
	}
	if c.DefaultReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("default.replication.factor must be >= 1, got %d", c.DefaultReplicationFactor))
	}
	if c.MinInsyncReplicas < 1 {
		errs = append(errs, fmt.Errorf("min.insync.replicas must be >= 1, got %d", c.MinInsyncReplicas))
	}
	errs = append(errs, c.validateClusterTimings()...)
	return errors.Join(errs...)
}

// MinClusterTiming is the smallest accepted heartbeat interval and Raft
// timeout: below it timer jitter and scheduling delays alone would fence
// brokers and start elections.
const MinClusterTiming = 10 * time.Millisecond

// validateClusterTimings checks the lease and Raft settings against each
// other. A broker must get at least two renewals into every lease, so that
// one late or lost heartbeat does not fence it.
func (c *Config) validateClusterTimings() []error {
	var errs []error
	if c.BrokerHeartbeatInterval < MinClusterTiming {
		errs = append(errs, fmt.Errorf("broker.heartbeat.interval.ms must be >= %d, got %d", MinClusterTiming.Milliseconds(), c.BrokerHeartbeatInterval.Milliseconds()))
	} else if 2*c.BrokerHeartbeatInterval >= c.BrokerSessionTimeout {
		errs = append(errs, fmt.Errorf("broker.heartbeat.interval.ms (%d) must be less than half of broker.session.timeout.ms (%d), so that a lease survives a missed heartbeat",
			c.BrokerHeartbeatInterval.Milliseconds(), c.BrokerSessionTimeout.Milliseconds()))
	}
	if c.ControllerElectionTimeout < MinClusterTiming {
		errs = append(errs, fmt.Errorf("controller.quorum.election.timeout.ms must be >= %d, got %d", MinClusterTiming.Milliseconds(), c.ControllerElectionTimeout.Milliseconds()))
	}
	if c.ControllerFetchTimeout < MinClusterTiming {
		errs = append(errs, fmt.Errorf("controller.quorum.fetch.timeout.ms must be >= %d, got %d", MinClusterTiming.Milliseconds(), c.ControllerFetchTimeout.Milliseconds()))
	}
	return errs
}

// AdvertisedHostPort is the address given to clients in Metadata: the
// advertised listener, else the listener itself; an unspecified listen host
// (":9092", "0.0.0.0:9092") is replaced by this machine's host name, as
// Kafka does, because clients cannot connect to "0.0.0.0".
func (c *Config) AdvertisedHostPort() (string, int32, error) {
	addr := c.AdvertisedAddr
	if addr == "" {
		addr = c.ListenAddr
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		name, err := os.Hostname()
		if err != nil {
			return "", 0, fmt.Errorf("advertised address: listener %q has no host and the host name is unknown: %w", addr, err)
		}
		host = name
	}
	return host, port, nil
}

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
