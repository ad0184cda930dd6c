package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/storage"
)

// topicSetting is one per-topic config the broker serves: its entry in
// broker/config's topic-config table (name, inherited broker setting,
// type, meaning; the one list of topic configs) and how a value changes
// the log.
type topicSetting struct {
	name       string
	brokerName string // "" for a topic-only config
	def        string // a topic-only config's default
	typ        kmsg.ConfigType
	doc        string
	// apply sets the (normalized) value on a storage config.
	apply func(*storage.TopicConfig, string)
}

// topicApply says how each topic config of broker/config's table changes a
// partition's log; a test checks that both name the same configs.
var topicApply = map[string]func(*storage.TopicConfig, string){
	"cleanup.policy":      func(c *storage.TopicConfig, v string) { c.CleanupPolicy = v },
	"retention.ms":        func(c *storage.TopicConfig, v string) { c.RetentionMs = parseMillis(v) },
	"retention.bytes":     func(c *storage.TopicConfig, v string) { c.RetentionBytes, _ = strconv.ParseInt(v, 10, 64) },
	"segment.bytes":       func(c *storage.TopicConfig, v string) { c.SegmentBytes, _ = strconv.ParseInt(v, 10, 64) },
	"segment.ms":          func(c *storage.TopicConfig, v string) { c.SegmentMs = parseMillis(v) },
	"delete.retention.ms": func(c *storage.TopicConfig, v string) { c.DeleteRetentionMs = parseMillis(v) },
	"file.delete.delay.ms": func(c *storage.TopicConfig, v string) {
		// 0 is storage's "default"; file.delete.delay.ms=0 deletes at once.
		if c.FileDeleteDelay = parseMillis(v); c.FileDeleteDelay == 0 {
			c.FileDeleteDelay = storage.NoFileDeleteDelay
		}
	},
	"max.message.bytes": func(c *storage.TopicConfig, v string) {
		n, _ := strconv.ParseInt(v, 10, 32)
		c.MaxMessageBytes = int32(n)
	},
	"index.interval.bytes": func(c *storage.TopicConfig, v string) {
		n, _ := strconv.ParseInt(v, 10, 32)
		c.IndexIntervalBytes = int32(n)
	},
	"message.timestamp.type": func(c *storage.TopicConfig, v string) { c.MessageTimestampType = v },
	// Read by Produce, which re-compresses batches before the append.
	"compression.type": func(c *storage.TopicConfig, v string) { c.CompressionType = v },
	// Enforced by Produce, not the log.
	"min.insync.replicas": func(*storage.TopicConfig, string) {},
	// Enforced by replication (package replica reads them from the
	// metadata), not the log.
	config.LeaderThrottledReplicas:   func(*storage.TopicConfig, string) {},
	config.FollowerThrottledReplicas: func(*storage.TopicConfig, string) {},
}

// topicSettings is broker/config's topic-config table with each config's
// effect on the log, in name order.
var topicSettings = func() []topicSetting {
	var out []topicSetting
	for _, ts := range config.TopicSettings() {
		apply := topicApply[ts.Name]
		if apply == nil {
			// A config the table lists and the log ignores would be
			// accepted and silently not honoured.
			panic(fmt.Sprintf("topic config %s has no effect on the log defined", ts.Name))
		}
		out = append(out, topicSetting{name: ts.Name, brokerName: ts.BrokerSetting, def: ts.Default, typ: configType(ts.Type), doc: ts.Doc, apply: apply})
	}
	return out
}()

func lookupTopicSetting(name string) (topicSetting, bool) {
	for _, s := range topicSettings {
		if s.name == name {
			return s, true
		}
	}
	return topicSetting{}, false
}

// validateTopicConfigs checks explicit topic configs and returns them in
// canonical form, or the first problem in name order.
func validateTopicConfigs(in map[string]string) (map[string]string, error) {
	if errs := config.ValidateTopicConfigs(in); len(errs) > 0 {
		return nil, errs[0]
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		n, err := config.CanonicalTopic(k, v)
		if err != nil {
			return nil, err
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
	if s.brokerName == "" {
		return effectiveTopicValue{s.def, kmsg.ConfigSourceDefaultConfig}
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
	return names // topicSettings is in name order
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
