package config

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// TopicSetting is one per-topic config the broker serves. A topic without
// its own value inherits BrokerSetting (Kafka's synonym), so changing
// log.retention.ms on the brokers changes every topic that did not set
// retention.ms itself. A topic value is checked by BrokerSetting's rules: a
// topic accepts exactly what the broker setting accepts.
//
// This table is the one list of topic configs: the broker serves and
// validates them from it, and the Terraform provider checks a topic's
// config against it at plan time.
type TopicSetting struct {
	Name string
	// BrokerSetting is the broker setting the topic inherits; "" for a
	// topic-only config (Kafka has no broker synonym for it), which then
	// has its own Default, OwnAllowed and canonical rule.
	BrokerSetting string
	// Type is Kafka's config type name, as for broker settings.
	Type string
	Doc  string

	Default    string
	OwnAllowed string
	canonical  func(string) (string, error)
}

var topicSettings = []TopicSetting{
	{Name: "cleanup.policy", BrokerSetting: "log.cleanup.policy", Type: "list",
		Doc: "delete, compact or compact,delete."},
	{Name: "retention.ms", BrokerSetting: "log.retention.ms", Type: "long",
		Doc: "Delete segments older than this; -1 keeps data forever."},
	{Name: "retention.bytes", BrokerSetting: "log.retention.bytes", Type: "long",
		Doc: "Delete old segments while the partition is bigger than this; -1 is unlimited."},
	{Name: "segment.bytes", BrokerSetting: "log.segment.bytes", Type: "int",
		Doc: "Roll to a new segment at this size."},
	{Name: "segment.ms", BrokerSetting: "log.roll.ms", Type: "long",
		Doc: "Roll to a new segment at this age."},
	{Name: "delete.retention.ms", BrokerSetting: "log.cleaner.delete.retention.ms", Type: "long",
		Doc: "How long tombstones stay after compaction."},
	{Name: "file.delete.delay.ms", BrokerSetting: "log.segment.delete.delay.ms", Type: "long",
		Doc: "How long a segment taken out of the log stays on disk before its files are removed, so that fetches reading it finish; 0 deletes at once."},
	{Name: "max.message.bytes", BrokerSetting: "message.max.bytes", Type: "int",
		Doc: "Largest record batch accepted."},
	{Name: "index.interval.bytes", BrokerSetting: "log.index.interval.bytes", Type: "int",
		Doc: "Bytes between offset index entries."},
	{Name: "message.timestamp.type", BrokerSetting: "log.message.timestamp.type", Type: "string",
		Doc: "CreateTime or LogAppendTime."},
	{Name: "compression.type", BrokerSetting: "compression.type", Type: "string",
		Doc: "The codec batches are stored in: producer keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd makes the leader re-compress a batch sent in another codec before storing it."},
	{Name: "min.insync.replicas", BrokerSetting: "min.insync.replicas", Type: "int",
		Doc: "Replicas that must have a record before acks=all succeeds."},
	{Name: LeaderThrottledReplicas, Type: "list", OwnAllowed: throttledReplicasAllowed, canonical: canonicalThrottledReplicas,
		Doc: "Replicas whose leader throttles what it sends to followers outside the ISR to its leader.replication.throttled.rate: partition:broker pairs naming the leader's broker (a reassignment names the partition's current replicas), or * for every replica."},
	{Name: FollowerThrottledReplicas, Type: "list", OwnAllowed: throttledReplicasAllowed, canonical: canonicalThrottledReplicas,
		Doc: "Replicas that fetch at most their broker's follower.replication.throttled.rate while behind the leader: partition:broker pairs naming the follower's broker (a reassignment names the replicas it adds), or * for every replica."},
}

var topicSettingIndex = func() map[string]int {
	m := make(map[string]int, len(topicSettings))
	for i, s := range topicSettings {
		m[s.Name] = i
	}
	return m
}()

// TopicSettings returns the topic configs, sorted by name.
func TopicSettings() []TopicSetting {
	out := make([]TopicSetting, len(topicSettings))
	copy(out, topicSettings)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupTopic finds a topic config by its Kafka name.
func LookupTopic(name string) (TopicSetting, bool) {
	if i, ok := topicSettingIndex[name]; ok {
		return topicSettings[i], true
	}
	return TopicSetting{}, false
}

// Allowed says in words which values the topic config accepts: those of
// its broker setting.
func (s TopicSetting) Allowed() string {
	if s.BrokerSetting == "" {
		return s.OwnAllowed
	}
	if bs, ok := Lookup(s.BrokerSetting); ok {
		return bs.Allowed
	}
	return ""
}

// CanonicalTopic checks one value of a topic config and returns it in the
// spelling the broker reports it in. The error is a *SettingError naming
// the topic config; for an unknown name it suggests the closest one.
func CanonicalTopic(name, value string) (string, error) {
	s, ok := LookupTopic(name)
	if !ok {
		return "", unknownTopicSetting(name)
	}
	if s.BrokerSetting == "" {
		c, err := s.canonical(value)
		if err != nil {
			return "", &SettingError{Name: name, Problem: err.Error()}
		}
		return c, nil
	}
	c, err := Canonical(s.BrokerSetting, value)
	var se *SettingError
	if errors.As(err, &se) {
		return "", &SettingError{Name: name, Problem: se.Problem}
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// ValidateTopicConfigs checks a topic's own configs and returns every
// problem, in name order.
func ValidateTopicConfigs(values map[string]string) []*SettingError {
	var errs []*SettingError
	for _, name := range sortedNames(values) {
		if _, err := CanonicalTopic(name, values[name]); err != nil {
			var se *SettingError
			if !errors.As(err, &se) {
				se = &SettingError{Name: name, Problem: err.Error()}
			}
			errs = append(errs, se)
		}
	}
	return errs
}

func unknownTopicSetting(name string) *SettingError {
	problem := "is not a topic config"
	// A broker setting's name where the topic's own was meant
	// (log.retention.ms for retention.ms).
	for _, s := range topicSettings {
		if s.BrokerSetting == name && s.Name != name {
			return &SettingError{Name: name, Problem: fmt.Sprintf("is the broker setting; the topic config is %q", s.Name)}
		}
	}
	if alt := suggestTopic(name); alt != "" {
		problem += fmt.Sprintf(" (did you mean %q?)", alt)
	} else {
		problem += fmt.Sprintf(" (the topic configs are %s)", strings.Join(topicSettingNames(), ", "))
	}
	return &SettingError{Name: name, Problem: problem}
}

// suggestTopic returns the topic config closest to name, or "".
func suggestTopic(name string) string {
	best, bestDist := "", math.MaxInt
	for _, s := range topicSettings {
		if d := editDistance(name, s.Name); d < bestDist {
			best, bestDist = s.Name, d
		}
	}
	if bestDist <= max(2, len(name)/3) {
		return best
	}
	return ""
}

func topicSettingNames() []string {
	out := make([]string, 0, len(topicSettings))
	for _, s := range TopicSettings() {
		out = append(out, s.Name)
	}
	return out
}
