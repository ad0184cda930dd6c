package server

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/storage"
)

// topicSetting is one per-topic config. A topic without an explicit value
// inherits the broker setting named by brokerName (Kafka's synonym), so
// changing log.retention.ms on the broker changes every topic that did not
// set retention.ms itself. Values are checked by that broker setting's
// rules (config.Canonical): a topic accepts what the broker would.
type topicSetting struct {
	name       string
	brokerName string
	typ        kmsg.ConfigType
	doc        string
	// apply sets the (normalized) value on a storage config.
	apply func(*storage.TopicConfig, string)
}

var topicSettings = []topicSetting{
	{name: "cleanup.policy", brokerName: "log.cleanup.policy", typ: kmsg.ConfigTypeList,
		doc:   "delete, compact or compact,delete.",
		apply: func(c *storage.TopicConfig, v string) { c.CleanupPolicy = v }},
	{name: "retention.ms", brokerName: "log.retention.ms", typ: kmsg.ConfigTypeLong,
		doc:   "Delete segments older than this; -1 keeps data forever.",
		apply: func(c *storage.TopicConfig, v string) { c.RetentionMs = parseMillis(v) }},
	{name: "retention.bytes", brokerName: "log.retention.bytes", typ: kmsg.ConfigTypeLong,
		doc:   "Delete old segments while the partition is bigger than this; -1 is unlimited.",
		apply: func(c *storage.TopicConfig, v string) { c.RetentionBytes, _ = strconv.ParseInt(v, 10, 64) }},
	{name: "segment.bytes", brokerName: "log.segment.bytes", typ: kmsg.ConfigTypeInt,
		doc:   "Roll to a new segment at this size.",
		apply: func(c *storage.TopicConfig, v string) { c.SegmentBytes, _ = strconv.ParseInt(v, 10, 64) }},
	{name: "segment.ms", brokerName: "log.roll.ms", typ: kmsg.ConfigTypeLong,
		doc:   "Roll to a new segment at this age.",
		apply: func(c *storage.TopicConfig, v string) { c.SegmentMs = parseMillis(v) }},
	{name: "delete.retention.ms", brokerName: "log.cleaner.delete.retention.ms", typ: kmsg.ConfigTypeLong,
		doc:   "How long tombstones stay after compaction.",
		apply: func(c *storage.TopicConfig, v string) { c.DeleteRetentionMs = parseMillis(v) }},
	{name: "max.message.bytes", brokerName: "message.max.bytes", typ: kmsg.ConfigTypeInt,
		doc: "Largest record batch accepted.",
		apply: func(c *storage.TopicConfig, v string) {
			n, _ := strconv.ParseInt(v, 10, 32)
			c.MaxMessageBytes = int32(n)
		}},
	{name: "index.interval.bytes", brokerName: "log.index.interval.bytes", typ: kmsg.ConfigTypeInt,
		doc: "Bytes between offset index entries.",
		apply: func(c *storage.TopicConfig, v string) {
			n, _ := strconv.ParseInt(v, 10, 32)
			c.IndexIntervalBytes = int32(n)
		}},
	{name: "message.timestamp.type", brokerName: "log.message.timestamp.type", typ: kmsg.ConfigTypeString,
		doc:   "CreateTime or LogAppendTime.",
		apply: func(c *storage.TopicConfig, v string) { c.MessageTimestampType = v }},
	{name: "compression.type", brokerName: "compression.type", typ: kmsg.ConfigTypeString,
		doc:   "Only producer: batches are stored exactly as the producer compressed them (re-compressing on the broker is not supported).",
		apply: func(*storage.TopicConfig, string) {}},
	{name: "min.insync.replicas", brokerName: "min.insync.replicas", typ: kmsg.ConfigTypeInt,
		doc:   "Replicas that must have a record before acks=all succeeds.",
		apply: func(*storage.TopicConfig, string) {}}, // enforced by Produce, not the log
}

func lookupTopicSetting(name string) (topicSetting, bool) {
	for _, s := range topicSettings {
		if s.name == name {
			return s, true
		}
	}
	return topicSetting{}, false
}

// validateTopicConfigs checks explicit topic configs and returns them in
// canonical form.
func validateTopicConfigs(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for k, v := range in {
		s, ok := lookupTopicSetting(k)
		if !ok {
			return nil, fmt.Errorf("unknown or unsupported topic config %q", k)
		}
		n, err := config.Canonical(s.brokerName, v)
		var se *config.SettingError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s %s", k, se.Problem)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = n
	}
	return out, nil
}

// effectiveTopicValue is a topic config's value and where it comes from.
type effectiveTopicValue struct {
	value  string
	source kmsg.ConfigSource
}

// dynamicLayers are the dynamic broker configs, for reporting sources.
type dynamicLayers struct {
	clusterDefault map[string]string // DYNAMIC_DEFAULT_BROKER_CONFIG
	node           map[string]string // DYNAMIC_BROKER_CONFIG, wins
}

// brokerSource says where a broker setting's value in force comes from.
func brokerSource(cfg *config.Config, dyn dynamicLayers, name string) kmsg.ConfigSource {
	switch {
	case hasKey(dyn.node, name):
		return kmsg.ConfigSourceDynamicBrokerConfig
	case hasKey(dyn.clusterDefault, name):
		return kmsg.ConfigSourceDynamicDefaultBrokerConfig
	case cfg.Explicit[name]:
		return kmsg.ConfigSourceStaticBrokerConfig
	default:
		return kmsg.ConfigSourceDefaultConfig
	}
}

// topicConfigValue resolves one topic config: the topic's own value, else
// the broker's.
func topicConfigValue(cfg *config.Config, dyn dynamicLayers, overrides map[string]string, s topicSetting) effectiveTopicValue {
	if v, ok := overrides[s.name]; ok {
		return effectiveTopicValue{v, kmsg.ConfigSourceDynamicTopicConfig}
	}
	v, _ := cfg.Get(s.brokerName)
	return effectiveTopicValue{v, brokerSource(cfg, dyn, s.brokerName)}
}

// resolveTopicConfig builds the storage config of a topic from its
// overrides and the broker defaults.
func resolveTopicConfig(cfg *config.Config, overrides map[string]string) storage.TopicConfig {
	var tc storage.TopicConfig
	for _, s := range topicSettings {
		s.apply(&tc, topicConfigValue(cfg, dynamicLayers{}, overrides, s).value)
	}
	return tc
}

// minInsyncReplicas is the topic's min.insync.replicas.
func minInsyncReplicas(cfg *config.Config, overrides map[string]string) int32 {
	if v, ok := overrides["min.insync.replicas"]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err == nil {
			return int32(n)
		}
	}
	return cfg.MinInsyncReplicas
}

func sortedTopicSettingNames() []string {
	names := make([]string, 0, len(topicSettings))
	for _, s := range topicSettings {
		names = append(names, s.name)
	}
	sort.Strings(names)
	return names
}

// parseMillis turns a validated millisecond count into a duration; -1
// (forever) stays negative.
func parseMillis(v string) time.Duration {
	n, _ := strconv.ParseInt(v, 10, 64)
	if n < 0 {
		return -1
	}
	return time.Duration(n) * time.Millisecond
}
