package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// describeTopicConfigs describes a topic's effective configs; names limits
// the answer (nil: all).
func (s *Server) describeTopicConfigs(overrides map[string]string, names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	cfg := s.Config()
	dyn := s.dynamicLayers()
	defaults := config.Default()
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, name := range sortedTopicSettingNames() {
		if names != nil && !slices.Contains(names, name) {
			continue
		}
		ts, _ := lookupTopicSetting(name)
		ev := topicConfigValue(cfg, dyn, overrides, ts)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = name
		v := ev.value
		c.Value = &v
		c.Source = ev.source
		c.IsDefault = ev.source == kmsg.ConfigSourceDefaultConfig
		c.ConfigType = ts.typ
		doc := ts.doc
		c.Documentation = &doc
		// Synonyms, most specific first, as Kafka lists them.
		if ov, ok := overrides[name]; ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(name, ov, kmsg.ConfigSourceDynamicTopicConfig))
		}
		if ts.brokerName == "" {
			out = append(out, c)
			continue
		}
		if v, ok := dyn.node[ts.brokerName]; ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(ts.brokerName, v, kmsg.ConfigSourceDynamicBrokerConfig))
		}
		if v, ok := dyn.clusterDefault[ts.brokerName]; ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(ts.brokerName, v, kmsg.ConfigSourceDynamicDefaultBrokerConfig))
		}
		if cfg.Explicit[ts.brokerName] {
			sv, _ := s.static.Get(ts.brokerName)
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(ts.brokerName, sv, kmsg.ConfigSourceStaticBrokerConfig))
		}
		if dv, ok := defaults.Get(ts.brokerName); ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(ts.brokerName, dv, kmsg.ConfigSourceDefaultConfig))
		}
		out = append(out, c)
	}
	return out
}

// dynamicLayers returns the dynamic broker configs in force here.
func (s *Server) dynamicLayers() dynamicLayers {
	return dynamicLayers{clusterDefault: s.meta.BrokerConfigs(metadata.ClusterDefault), node: s.meta.BrokerConfigs(s.nodeID)}
}

// describeBrokerConfigs describes this broker's settings (node true) or,
// as Kafka does for the cluster-default resource (""), only the dynamic
// cluster-wide defaults that are set.
func (s *Server) describeBrokerConfigs(node bool, names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	cfg := s.Config()
	dyn := s.dynamicLayers()
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, name := range cfg.Names() {
		if names != nil && !slices.Contains(names, name) {
			continue
		}
		st, _ := config.Lookup(name)
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = st.Name
		c.ReadOnly = !st.Dynamic
		c.ConfigType = configType(st.Type)
		doc := st.Doc
		c.Documentation = &doc
		if !node {
			v, ok := dyn.clusterDefault[st.Name]
			if !ok {
				continue
			}
			c.Value = &v
			c.Source = kmsg.ConfigSourceDynamicDefaultBrokerConfig
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(st.Name, v, c.Source))
			out = append(out, c)
			continue
		}
		v, _ := cfg.Get(st.Name)
		c.Value = &v
		c.Source = brokerSource(cfg, dyn, st.Name)
		c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
		// Synonyms, most specific first.
		if nv, ok := dyn.node[st.Name]; ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(st.Name, nv, kmsg.ConfigSourceDynamicBrokerConfig))
		}
		if dv, ok := dyn.clusterDefault[st.Name]; ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(st.Name, dv, kmsg.ConfigSourceDynamicDefaultBrokerConfig))
		}
		if cfg.Explicit[st.Name] {
			sv, _ := s.static.Get(st.Name)
			c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(st.Name, sv, kmsg.ConfigSourceStaticBrokerConfig))
		}
		if st.Type == "password" {
			// A secret (an inline private key) is reported as set,
			// never with its value, as Kafka reports its passwords.
			c.IsSensitive, c.Value = true, nil
			for i := range c.ConfigSynonyms {
				c.ConfigSynonyms[i].Value = nil
			}
		}
		out = append(out, c)
	}
	return out
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func synonym(name, value string, src kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	syn.Name = name
	syn.Value = &value
	syn.Source = src
	return syn
}

func configType(t string) kmsg.ConfigType {
	switch t {
	case "int":
		return kmsg.ConfigTypeInt
	case "long":
		return kmsg.ConfigTypeLong
	case "boolean":
		return kmsg.ConfigTypeBoolean
	case "list":
		return kmsg.ConfigTypeList
	case "password":
		return kmsg.ConfigTypePassword
	default:
		return kmsg.ConfigTypeString
	}
}

// configChange is one requested change of a config: set (value non-nil)
// or remove (value nil), or for IncrementalAlterConfigs an op on a list.
type configChange struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// alterResource applies changes to one config resource. replace=true is
// the legacy AlterConfigs: the given set replaces every explicit value.
// It returns a Kafka error code and message.
func (s *Server) alterResource(ctx context.Context, typ kmsg.ConfigResourceType, name string, changes []configChange, replace, validateOnly bool) (int16, string) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return s.alterTopicConfigs(ctx, name, changes, replace, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		if name != "" && name != strconv.Itoa(int(s.nodeID)) {
			return kerr.InvalidRequest.Code, fmt.Sprintf("broker %s is not this broker (%d)", name, s.nodeID)
		}
		node := metadata.ClusterDefault
		if name != "" {
			node = s.nodeID
		}
		return s.alterBrokerConfigs(ctx, node, changes, replace, validateOnly)
	default:
		return kerr.InvalidRequest.Code, fmt.Sprintf("config resource type %v is not supported", typ)
	}
}

func (s *Server) alterTopicConfigs(ctx context.Context, name string, changes []configChange, replace, validateOnly bool) (int16, string) {
	t, ok := s.lookupTopic(name)
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %s does not exist", name)
	}
	next := maps.Clone(t.configs)
	if replace || next == nil {
		next = map[string]string{}
	}
	for _, ch := range changes {
		ts, known := lookupTopicSetting(ch.name)
		if !known {
			_, err := config.CanonicalTopic(ch.name, "") // the unknown-name error, with a suggestion
			return kerr.InvalidConfig.Code, err.Error()
		}
		cur := topicConfigValue(s.Config(), dynamicLayers{}, t.configs, ts).value
		if err := applyChange(next, ch, cur, ts.typ == kmsg.ConfigTypeList); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
	}
	valid, err := validateTopicConfigs(next)
	if err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if validateOnly {
		return 0, ""
	}
	if err := s.setTopicConfigs(ctx, name, valid); err != nil {
		return s.configChangeFailure("topic "+name, err)
	}
	s.log.Info("changed topic configs", "topic", name, "configs", valid)
	return 0, ""
}

// alterBrokerConfigs changes the dynamic configs of this node, or the
// cluster-wide defaults (node metadata.ClusterDefault).
func (s *Server) alterBrokerConfigs(ctx context.Context, node int32, changes []configChange, replace, validateOnly bool) (int16, string) {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	next := s.meta.BrokerConfigs(node)
	if replace || next == nil {
		next = map[string]string{}
	}
	for _, ch := range changes {
		st, known := config.Lookup(ch.name)
		if !known {
			return kerr.InvalidConfig.Code, config.Validate(ch.name, "").Error()
		}
		if !st.Dynamic {
			return kerr.InvalidConfig.Code, fmt.Sprintf("%s cannot be changed on a running broker; set it in the config file", ch.name)
		}
		// DELETE stays allowed: it sets nothing, and clients clearing a
		// setting everywhere send it to every broker's resource.
		if st.ClusterWide && node != metadata.ClusterDefault && ch.op != kmsg.IncrementalAlterConfigOpDelete && ch.value != nil {
			return kerr.InvalidConfig.Code, fmt.Sprintf("%s is cluster-wide: set it on the cluster default (broker resource \"\"), not on broker %d", ch.name, node)
		}
		cur, _ := s.Config().Get(ch.name)
		if err := applyChange(next, ch, cur, st.Type == "list"); err != nil {
			return kerr.InvalidConfig.Code, err.Error()
		}
		// Stored as the broker spells it, for the metadata's readers
		// (the controller compares unclean.leader.election.enable to "true").
		if v, ok := next[ch.name]; ok {
			canonical, err := config.Canonical(ch.name, v)
			if err != nil {
				return kerr.InvalidConfig.Code, err.Error()
			}
			next[ch.name] = canonical
		}
	}
	dyn := s.dynamicLayers()
	if node == metadata.ClusterDefault {
		dyn.clusterDefault = next
	} else {
		dyn.node = next
	}
	cfg, err := applyDynamic(s.static, dyn.clusterDefault, dyn.node)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return kerr.InvalidConfig.Code, err.Error()
	}
	if validateOnly {
		return 0, ""
	}
	if err := s.meta.SetBrokerConfigs(ctx, node, next); err != nil {
		return s.configChangeFailure(fmt.Sprintf("broker %d", node), err)
	}
	s.cfg.Store(cfg)
	s.reconfigureAll()
	s.log.Info("changed dynamic broker configs", "node", node, "configs", next)
	return 0, ""
}

// configChangeFailure is the error code and message of a config change the
// metadata did not take: REQUEST_TIMED_OUT (retriable; the change may still
// be made) when the request's deadline passed, KAFKA_STORAGE_ERROR, logged,
// otherwise.
func (s *Server) configChangeFailure(resource string, err error) (int16, string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code, err.Error()
	case errors.Is(err, errUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code, err.Error()
	}
	s.log.Error("storing configs", "resource", resource, "err", err)
	return kerr.KafkaStorageError.Code, err.Error()
}

// applyChange applies one change to an explicit-config map. cur is the
// effective value before the change, the base for list APPEND/SUBTRACT.
func applyChange(m map[string]string, ch configChange, cur string, isList bool) error {
	switch ch.op {
	case kmsg.IncrementalAlterConfigOpSet:
		if ch.value == nil {
			delete(m, ch.name) // legacy AlterConfigs null value: back to default
			return nil
		}
		m[ch.name] = *ch.value
	case kmsg.IncrementalAlterConfigOpDelete:
		delete(m, ch.name)
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		if !isList {
			return fmt.Errorf("%s is not a list; APPEND and SUBTRACT apply to lists only", ch.name)
		}
		if ch.value == nil {
			return fmt.Errorf("%s: APPEND and SUBTRACT need a value", ch.name)
		}
		items := splitList(cur)
		for _, v := range splitList(*ch.value) {
			if ch.op == kmsg.IncrementalAlterConfigOpAppend {
				if !slices.Contains(items, v) {
					items = append(items, v)
				}
			} else {
				items = slices.DeleteFunc(items, func(x string) bool { return x == v })
			}
		}
		m[ch.name] = strings.Join(items, ",")
	default:
		return fmt.Errorf("%s: unknown operation %d", ch.name, ch.op)
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
