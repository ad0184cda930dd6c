package config

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Setting describes one broker setting by its Kafka name.
type Setting struct {
	Name    string
	Type    string // Kafka's config type name: int, long, boolean, string, list, password
	Default string // as written in a properties file; "" when unset by default
	Doc     string
	// Dynamic settings can be changed on a running broker with
	// IncrementalAlterConfigs / AlterConfigs on the broker resource; they
	// are stored in the metadata and survive restarts.
	Dynamic bool

	skipEmptyDefault bool
	set              func(*Config, string) error
	get              func(*Config) string
}

// Settings returns the settings table, sorted by name.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	copy(out, settings)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup finds a setting by its Kafka name.
func Lookup(name string) (Setting, bool) {
	for _, s := range settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// The table is applied in this order, so aliases that Kafka lets override
// each other come less precise first (hours, minutes, then ms).
var settings = []Setting{
	{Name: "node.id", Type: "int", Default: "1", Doc: "This broker's id.",
		set: func(c *Config, v string) error { return setInt32(&c.NodeID, v, 0, 1<<30) },
		get: func(c *Config) string { return itoa(int64(c.NodeID)) }},
	{Name: "broker.id", Type: "int", Default: "", Doc: "Alias of node.id, for old server.properties files.", skipEmptyDefault: true,
		set: func(c *Config, v string) error {
			if v == "" || v == "-1" {
				return nil
			}
			return setInt32(&c.NodeID, v, 0, 1<<30)
		},
		get: func(c *Config) string { return itoa(int64(c.NodeID)) }},
	{Name: "broker.rack", Type: "string", Default: "", Doc: "Rack (Availability Zone) of this broker, reported in Metadata.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { c.Rack = v; return nil },
		get: func(c *Config) string { return c.Rack }},
	{Name: "listeners", Type: "list", Default: "PLAINTEXT://127.0.0.1:9092", Doc: "Listeners, NAME://host:port,... The first one whose security protocol is PLAINTEXT is served; TLS and SASL listeners are not served yet and are ignored with a warning.",
		set: func(c *Config, v string) error {
			if _, err := parseListeners(v); err != nil {
				return err
			}
			c.Listeners = v
			return c.resolveListeners()
		},
		get: func(c *Config) string { return c.Listeners }},
	{Name: "advertised.listeners", Type: "list", Default: "", Doc: "Addresses given to clients in Metadata, by listener name. Defaults to the listener.", skipEmptyDefault: true,
		set: func(c *Config, v string) error {
			if _, err := parseListeners(v); v != "" && err != nil {
				return err
			}
			c.AdvertisedListeners = v
			return c.resolveListeners()
		},
		get: func(c *Config) string { return c.AdvertisedListeners }},
	{Name: "listener.security.protocol.map", Type: "list", Default: "", Doc: "Security protocol of each listener name (NAME:PROTOCOL,...); a name without an entry is its own protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).", skipEmptyDefault: true,
		set: func(c *Config, v string) error {
			if _, err := parseProtocolMap(v); err != nil {
				return err
			}
			c.ProtocolMap = v
			return c.resolveListeners()
		},
		get: func(c *Config) string { return c.ProtocolMap }},
	{Name: "log.dir", Type: "string", Default: "./data", Doc: "Data directory. log.dirs wins when both are set.",
		set: func(c *Config, v string) error { return setDataDir(c, v) },
		get: func(c *Config) string { return c.DataDir }},
	{Name: "log.dirs", Type: "list", Default: "", Doc: "Data directory (one; with a list the first is used).", skipEmptyDefault: true,
		set: func(c *Config, v string) error { return setDataDir(c, v) },
		get: func(c *Config) string { return c.DataDir }},
	{Name: "cluster.id", Type: "string", Default: "", Doc: "Cluster id reported to clients. Generated and stored in the data directory when empty.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { c.ClusterID = v; return nil },
		get: func(c *Config) string { return c.ClusterID }},
	{Name: "controller.quorum.voters", Type: "list", Default: "", Doc: "Raft metadata quorum seed list (id@host:port,...). Set: the broker joins that cluster (see docs/broker-cluster.md); empty: a single node.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { c.ControllerQuorumVoters = v; return nil },
		get: func(c *Config) string { return c.ControllerQuorumVoters }},
	{Name: "broker.session.timeout.ms", Type: "int", Default: "1500", Doc: "Cluster only: how long a broker's lease lasts. A broker that has not renewed it for this long (killed, partitioned, stalled) is fenced and its partition leaderships move. Must exceed twice broker.heartbeat.interval.ms.",
		set: func(c *Config, v string) error { return setMillis(&c.BrokerSessionTimeout, v, false) },
		get: func(c *Config) string { return millis(c.BrokerSessionTimeout) }},
	{Name: "broker.heartbeat.interval.ms", Type: "int", Default: "300", Doc: "Cluster only: how often a broker renews its lease with the active controller; also how often the active controller looks for expired leases (twice per interval).",
		set: func(c *Config, v string) error { return setMillis(&c.BrokerHeartbeatInterval, v, false) },
		get: func(c *Config) string { return millis(c.BrokerHeartbeatInterval) }},
	{Name: "controller.quorum.election.timeout.ms", Type: "int", Default: "500", Doc: "Cluster only: how long a Raft candidate waits for votes before it starts a new election (hashicorp/raft ElectionTimeout).",
		set: func(c *Config, v string) error { return setMillis(&c.ControllerElectionTimeout, v, false) },
		get: func(c *Config) string { return millis(c.ControllerElectionTimeout) }},
	{Name: "controller.quorum.fetch.timeout.ms", Type: "int", Default: "500", Doc: "Cluster only: how long a voter goes without hearing from the active controller before it starts an election (hashicorp/raft HeartbeatTimeout). With the election timeout, it bounds how long the cluster has no active controller after that controller dies.",
		set: func(c *Config, v string) error { return setMillis(&c.ControllerFetchTimeout, v, false) },
		get: func(c *Config) string { return millis(c.ControllerFetchTimeout) }},
	{Name: "inter.broker.listener.port", Type: "int", Default: "9093", Doc: "Port of the replication listener on the advertised host, where followers fetch (cluster only).",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseUint(v, 10, 16)
			c.InterBrokerPort = int(n)
			return err
		},
		get: func(c *Config) string { return itoa(int64(c.InterBrokerPort)) }},
	{Name: "metrics.listen", Type: "string", Default: "", Doc: "host:port of the Prometheus /metrics, /healthz, /readyz and /bootz endpoint (see docs/broker-metrics.md); unset serves none.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { c.MetricsListen = v; return nil },
		get: func(c *Config) string { return c.MetricsListen }},

	metricsSetting("tributary.cluster.name", "Cluster name: the `Cluster Name` dimension of CloudWatch metrics (defaults to cluster.id)."),
	metricsSetting("tributary.metrics.cloudwatch.enable", "Ship metrics to CloudWatch (true/false), with MSK's metric names."),
	metricsSetting("tributary.metrics.cloudwatch.namespace", "CloudWatch namespace of the shipped metrics (required when shipping)."),
	metricsSetting("tributary.metrics.cloudwatch.level", "MSK monitoring level: DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER, PER_TOPIC_PER_PARTITION."),
	metricsSetting("tributary.metrics.cloudwatch.interval.ms", "How often metrics are shipped (default 60000)."),

	{Name: "num.partitions", Type: "int", Default: "1", Doc: "Partitions of an auto-created topic, and of CreateTopics with -1 partitions.",
		set: func(c *Config, v string) error { return setInt32(&c.NumPartitions, v, 1, 1<<20) },
		get: func(c *Config) string { return itoa(int64(c.NumPartitions)) }},
	{Name: "default.replication.factor", Type: "int", Default: "1", Doc: "Replication factor of auto-created topics. A single node accepts only 1.",
		set: func(c *Config, v string) error {
			var n int32
			err := setInt32(&n, v, 1, 32767)
			c.DefaultReplicationFactor = int16(n)
			return err
		},
		get: func(c *Config) string { return itoa(int64(c.DefaultReplicationFactor)) }},
	{Name: "auto.create.topics.enable", Type: "boolean", Default: "true", Doc: "Create a topic when Metadata names one that does not exist.",
		set: func(c *Config, v string) error { return setBool(&c.AutoCreateTopics, v) },
		get: func(c *Config) string { return strconv.FormatBool(c.AutoCreateTopics) }},
	{Name: "delete.topic.enable", Type: "boolean", Default: "true", Doc: "Allow DeleteTopics.",
		set: func(c *Config, v string) error { return setBool(&c.DeleteTopicEnable, v) },
		get: func(c *Config) string { return strconv.FormatBool(c.DeleteTopicEnable) }},
	{Name: "min.insync.replicas", Type: "int", Default: "1", Dynamic: true, Doc: "Replicas that must have a record before acks=all succeeds. A single node is its own ISR.",
		set: func(c *Config, v string) error { return setInt32(&c.MinInsyncReplicas, v, 1, 32767) },
		get: func(c *Config) string { return itoa(int64(c.MinInsyncReplicas)) }},

	{Name: "message.max.bytes", Type: "int", Default: "1048588", Dynamic: true, Doc: "Largest record batch accepted (after compression); topics override it with max.message.bytes.",
		set: func(c *Config, v string) error { return setInt32(&c.MessageMaxBytes, v, 0, 1<<31-1) },
		get: func(c *Config) string { return itoa(int64(c.MessageMaxBytes)) }},
	{Name: "socket.request.max.bytes", Type: "int", Default: "104857600", Doc: "Largest request frame; a bigger one closes the connection.",
		set: func(c *Config, v string) error { return setInt32(&c.SocketRequestMaxBytes, v, 1, 1<<31-1) },
		get: func(c *Config) string { return itoa(int64(c.SocketRequestMaxBytes)) }},
	{Name: "max.connections", Type: "int", Default: "10000", Dynamic: true, Doc: "Connections served at once; further ones are closed on accept.",
		set: func(c *Config, v string) error {
			var n int32
			err := setInt32(&n, v, 1, 1<<30)
			c.MaxConnections = int(n)
			return err
		},
		get: func(c *Config) string { return itoa(int64(c.MaxConnections)) }},
	{Name: "connections.max.idle.ms", Type: "long", Default: "600000", Doc: "A connection that sends nothing for this long is closed.",
		set: func(c *Config, v string) error { return setMillis(&c.ConnectionsMaxIdle, v, false) },
		get: func(c *Config) string { return millis(c.ConnectionsMaxIdle) }},
	{Name: "fetch.max.wait.cap.ms", Type: "long", Default: "30000", Doc: "Tributary: the longest a Fetch long poll is held, whatever max wait the client asks for.",
		set: func(c *Config, v string) error { return setMillis(&c.FetchMaxWaitCap, v, false) },
		get: func(c *Config) string { return millis(c.FetchMaxWaitCap) }},

	{Name: "max.incremental.fetch.session.cache.slots", Type: "int", Default: "1000", Doc: "Incremental fetch sessions (KIP-227) kept at once; when all are in use new ones are refused and those consumers send full fetches. 0 turns sessions off.",
		set: func(c *Config, v string) error {
			var n int32
			err := setInt32(&n, v, 0, 1<<20)
			c.FetchSessionCacheSlots = int(n)
			return err
		},
		get: func(c *Config) string { return itoa(int64(c.FetchSessionCacheSlots)) }},

	{Name: "compression.type", Type: "string", Default: "producer", Doc: "Only producer: batches are stored as the producer compressed them.",
		set: func(c *Config, v string) error {
			if v != "producer" {
				return fmt.Errorf("only producer is supported: the broker stores batches as the producer compressed them")
			}
			return nil
		},
		get: func(*Config) string { return "producer" }},

	{Name: "log.retention.hours", Type: "int", Default: "168", Dynamic: true, Doc: "Retention by time, in hours (log.retention.minutes and log.retention.ms win).",
		set: func(c *Config, v string) error { return setUnits(&c.LogRetention, v, time.Hour) },
		get: func(c *Config) string { return unitsOf(c.LogRetention, time.Hour) }},
	{Name: "log.retention.minutes", Type: "int", Default: "", Dynamic: true, Doc: "Retention by time, in minutes.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { return setUnits(&c.LogRetention, v, time.Minute) },
		get: func(c *Config) string { return unitsOf(c.LogRetention, time.Minute) }},
	{Name: "log.retention.ms", Type: "long", Default: "", Dynamic: true, Doc: "Retention by time; -1 keeps data forever. Topic override: retention.ms.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { return setMillis(&c.LogRetention, v, true) },
		get: func(c *Config) string { return millis(c.LogRetention) }},
	{Name: "log.retention.bytes", Type: "long", Default: "-1", Dynamic: true, Doc: "Retention by size per partition; -1 is unlimited. Topic override: retention.bytes.",
		set: func(c *Config, v string) error { return setInt64(&c.LogRetentionBytes, v, -1) },
		get: func(c *Config) string { return itoa(c.LogRetentionBytes) }},
	{Name: "log.segment.bytes", Type: "int", Default: "1073741824", Dynamic: true, Doc: "Segment size before a roll. Topic override: segment.bytes.",
		set: func(c *Config, v string) error { return setInt64(&c.LogSegmentBytes, v, 14) },
		get: func(c *Config) string { return itoa(c.LogSegmentBytes) }},
	{Name: "log.roll.hours", Type: "int", Default: "168", Dynamic: true, Doc: "Segment age before a roll, in hours (log.roll.ms wins).",
		set: func(c *Config, v string) error { return setUnits(&c.LogRoll, v, time.Hour) },
		get: func(c *Config) string { return unitsOf(c.LogRoll, time.Hour) }},
	{Name: "log.roll.ms", Type: "long", Default: "", Dynamic: true, Doc: "Segment age before a roll. Topic override: segment.ms.", skipEmptyDefault: true,
		set: func(c *Config, v string) error { return setMillis(&c.LogRoll, v, false) },
		get: func(c *Config) string { return millis(c.LogRoll) }},
	{Name: "log.cleanup.policy", Type: "list", Default: "delete", Dynamic: true, Doc: "delete, compact or compact,delete. Topic override: cleanup.policy.",
		set: func(c *Config, v string) error {
			p, err := NormalizeCleanupPolicy(v)
			c.LogCleanupPolicy = p
			return err
		},
		get: func(c *Config) string { return c.LogCleanupPolicy }},
	{Name: "log.cleaner.delete.retention.ms", Type: "long", Default: "86400000", Dynamic: true, Doc: "How long tombstones stay after compaction. Topic override: delete.retention.ms.",
		set: func(c *Config, v string) error { return setMillis(&c.LogDeleteRetention, v, false) },
		get: func(c *Config) string { return millis(c.LogDeleteRetention) }},
	{Name: "log.index.interval.bytes", Type: "int", Default: "4096", Dynamic: true, Doc: "Bytes between offset index entries. Topic override: index.interval.bytes.",
		set: func(c *Config, v string) error { return setInt32(&c.LogIndexIntervalBytes, v, 0, 1<<31-1) },
		get: func(c *Config) string { return itoa(int64(c.LogIndexIntervalBytes)) }},
	{Name: "log.message.timestamp.type", Type: "string", Default: "CreateTime", Dynamic: true, Doc: "CreateTime or LogAppendTime. Topic override: message.timestamp.type.",
		set: func(c *Config, v string) error {
			if v != "CreateTime" && v != "LogAppendTime" {
				return fmt.Errorf("must be CreateTime or LogAppendTime")
			}
			c.LogTimestampType = v
			return nil
		},
		get: func(c *Config) string { return c.LogTimestampType }},
	{Name: "log.flush.policy", Type: "string", Default: FlushGroup, Doc: "Tributary: when data reaches the disk. group: fsync before acknowledging, concurrent produces share one fsync (default). interval: acknowledge first, fsync every log.flush.interval.ms. none: leave it to the OS.",
		set: func(c *Config, v string) error {
			switch v {
			case FlushGroup, FlushInterval, FlushNone:
				c.LogFlushPolicy = v
				return nil
			}
			return fmt.Errorf("must be %s, %s or %s", FlushGroup, FlushInterval, FlushNone)
		},
		get: func(c *Config) string { return c.LogFlushPolicy }},
	{Name: "log.flush.interval.ms", Type: "long", Default: "1000", Doc: "fsync period with log.flush.policy=interval.",
		set: func(c *Config, v string) error { return setMillis(&c.LogFlushInterval, v, false) },
		get: func(c *Config) string { return millis(c.LogFlushInterval) }},
	{Name: "log.retention.check.interval.ms", Type: "long", Default: "300000", Doc: "How often retention and compaction run.",
		set: func(c *Config, v string) error { return setMillis(&c.LogRetentionCheck, v, false) },
		get: func(c *Config) string { return millis(c.LogRetentionCheck) }},

	{Name: "group.initial.rebalance.delay.ms", Type: "int", Default: "3000", Doc: "Wait for more members before the first rebalance of an empty group.",
		set: func(c *Config, v string) error { return setMillis(&c.GroupInitialRebalanceDelay, v, false) },
		get: func(c *Config) string { return millis(c.GroupInitialRebalanceDelay) }},
	{Name: "group.min.session.timeout.ms", Type: "int", Default: "6000", Doc: "Smallest session timeout a group member may ask for.",
		set: func(c *Config, v string) error { return setMillis(&c.GroupMinSessionTimeout, v, false) },
		get: func(c *Config) string { return millis(c.GroupMinSessionTimeout) }},
	{Name: "group.max.session.timeout.ms", Type: "int", Default: "1800000", Doc: "Largest session timeout a group member may ask for.",
		set: func(c *Config, v string) error { return setMillis(&c.GroupMaxSessionTimeout, v, false) },
		get: func(c *Config) string { return millis(c.GroupMaxSessionTimeout) }},
	{Name: "offsets.retention.minutes", Type: "int", Default: "10080", Doc: "How long committed offsets of an empty group are kept.",
		set: func(c *Config, v string) error { return setUnits(&c.OffsetsRetention, v, time.Minute) },
		get: func(c *Config) string { return unitsOf(c.OffsetsRetention, time.Minute) }},
}

// metricsSetting declares a setting of the metrics component: kept as
// written, validated by broker/metrics when the broker starts.
func metricsSetting(name, doc string) Setting {
	return Setting{Name: name, Type: "string", Doc: doc, skipEmptyDefault: true,
		set: func(c *Config, v string) error {
			if c.Metrics == nil {
				c.Metrics = map[string]string{}
			}
			c.Metrics[name] = v
			return nil
		},
		get: func(c *Config) string { return c.Metrics[name] },
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

// listener is one entry of a Kafka listener list.
type listener struct {
	name string
	addr string // host:port
}

// parseListeners parses "NAME://host:port,...".
func parseListeners(v string) ([]listener, error) {
	var out []listener
	for _, l := range strings.Split(v, ",") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		name, addr, ok := strings.Cut(l, "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("listener %q: want NAME://host:port", l)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l, err)
		}
		out = append(out, listener{name: strings.ToUpper(name), addr: addr})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no listener in %q", v)
	}
	return out, nil
}

// parseProtocolMap parses "NAME:PROTOCOL,...".
func parseProtocolMap(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		name, proto, ok := strings.Cut(e, ":")
		if !ok || name == "" || proto == "" {
			return nil, fmt.Errorf("protocol map entry %q: want NAME:PROTOCOL", e)
		}
		m[strings.ToUpper(name)] = strings.ToUpper(proto)
	}
	return m, nil
}

// resolveListeners picks the served (PLAINTEXT) listener and its
// advertised address. It is called whenever one of the three listener
// settings changes; a setting given before the others may see an
// incomplete picture, so only the final state is validated (Validate).
func (c *Config) resolveListeners() error {
	c.ListenAddr, c.listenName, c.AdvertisedAddr = "", "", ""
	ls, err := parseListeners(c.Listeners)
	if err != nil {
		return nil // reported by Validate
	}
	protos, _ := parseProtocolMap(c.ProtocolMap)
	for _, l := range ls {
		proto := l.name
		if p, ok := protos[l.name]; ok {
			proto = p
		}
		if proto == "PLAINTEXT" {
			c.ListenAddr, c.listenName = l.addr, l.name
			break
		}
	}
	if c.AdvertisedListeners != "" && c.listenName != "" {
		adv, err := parseListeners(c.AdvertisedListeners)
		if err != nil {
			return nil
		}
		for _, l := range adv {
			if l.name == c.listenName {
				c.AdvertisedAddr = l.addr
			}
		}
	}
	return nil
}

// IgnoredListeners lists the listeners that are configured but not served
// (TLS and SASL arrive with the security release), for a start-up warning.
func (c *Config) IgnoredListeners() []string {
	ls, _ := parseListeners(c.Listeners)
	var out []string
	for _, l := range ls {
		if l.name != c.listenName {
			out = append(out, l.name+"://"+l.addr)
		}
	}
	return out
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

func setInt32(dst *int32, v string, lo, hi int64) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return fmt.Errorf("not an integer")
	}
	if n < lo || n > hi {
		return fmt.Errorf("must be between %d and %d", lo, hi)
	}
	*dst = int32(n)
	return nil
}

func setInt64(dst *int64, v string, lo int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer")
	}
	if n < lo {
		return fmt.Errorf("must be >= %d", lo)
	}
	*dst = n
	return nil
}

func setBool(dst *bool, v string) error {
	switch strings.ToLower(v) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return fmt.Errorf("must be true or false")
	}
	return nil
}

// setMillis parses milliseconds; with allowForever, -1 means "forever" and
// is kept as a negative duration.
func setMillis(dst *time.Duration, v string, allowForever bool) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer")
	}
	if n < 0 {
		if allowForever && n == -1 {
			*dst = -1
			return nil
		}
		return fmt.Errorf("must be >= 0")
	}
	*dst = time.Duration(n) * time.Millisecond
	return nil
}

func setUnits(dst *time.Duration, v string, unit time.Duration) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer")
	}
	if n < 0 {
		*dst = -1
		return nil
	}
	*dst = time.Duration(n) * unit
	return nil
}

func millis(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return itoa(d.Milliseconds())
}

func unitsOf(d time.Duration, unit time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return itoa(int64(d / unit))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
