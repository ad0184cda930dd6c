package server

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/server/metastore"
	"github.com/tributary/tributary/broker/storage"
)

// TestAlterBrokerConfigsUsesTheTable checks that a live change is judged by
// the settings table, with the same words as config.Validate: unknown
// names get a suggestion, out-of-range values and static settings are
// refused, and nothing is changed by a refused request.
func TestAlterBrokerConfigsUsesTheTable(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name, value string
		op          kmsg.IncrementalAlterConfigOp
		wantErr     string // "" = accepted
	}{
		{"min.insync.replicas", "0", kmsg.IncrementalAlterConfigOpSet, `min.insync.replicas must be between 1 and 32767, got "0"`},
		{"min.insync.replica", "2", kmsg.IncrementalAlterConfigOpSet, `is not a broker setting (did you mean "min.insync.replicas"?)`},
		{"unclean.leader.election.enable", "maybe", kmsg.IncrementalAlterConfigOpSet, "must be true or false"},
		{"num.partitions", "3", kmsg.IncrementalAlterConfigOpSet, "cannot be changed on a running broker"},
		{"message.max.bytes", "2097152", kmsg.IncrementalAlterConfigOpSet, ""},
		{"leader.replication.throttled.rate", "0", kmsg.IncrementalAlterConfigOpSet, "leader.replication.throttled.rate must be"},
		{"follower.replication.throttled.rate", "fast", kmsg.IncrementalAlterConfigOpSet, "follower.replication.throttled.rate must be"},
		{"follower.replication.throttled.rate", "1048576", kmsg.IncrementalAlterConfigOpSet, ""},
		{"unclean.leader.election.enable", "TRUE", kmsg.IncrementalAlterConfigOpSet, ""},
		{"message.max.bytes", "", kmsg.IncrementalAlterConfigOpDelete, ""},
	}
	for _, tt := range tests {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Version = 1
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, ""
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op = tt.name, tt.op
		if tt.op == kmsg.IncrementalAlterConfigOpSet {
			c.Value = kmsg.StringPtr(tt.value)
		}
		rr.Configs = append(rr.Configs, c)
		req.Resources = append(req.Resources, rr)
		resp := roundTrip[*kmsg.IncrementalAlterConfigsResponse](t, s, req)
		r := resp.Resources[0]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		switch {
		case tt.wantErr == "" && r.ErrorCode != 0:
			t.Errorf("%s=%q: refused: %v %s", tt.name, tt.value, kerr.ErrorForCode(r.ErrorCode), msg)
		case tt.wantErr != "" && (r.ErrorCode != kerr.InvalidConfig.Code || !strings.Contains(msg, tt.wantErr)):
			t.Errorf("%s=%q: %v %q, want INVALID_CONFIG with %q", tt.name, tt.value, kerr.ErrorForCode(r.ErrorCode), msg, tt.wantErr)
		}
		if tt.wantErr != "" && tt.op == kmsg.IncrementalAlterConfigOpSet && config.Validate(tt.name, tt.value) != nil &&
			!strings.Contains(msg, config.Validate(tt.name, tt.value).Error()) {
			t.Errorf("%s=%q: the broker says %q, config.Validate says %q", tt.name, tt.value, msg, config.Validate(tt.name, tt.value))
		}
	}
	if got := s.Config().MinInsyncReplicas; got != 1 {
		t.Errorf("min.insync.replicas = %d after refused changes, want 1", got)
	}
	// Stored as the broker spells it: the controller compares it to "true".
	if v := s.meta.BrokerConfigs(metastore.ClusterDefault)["unclean.leader.election.enable"]; v != "true" {
		t.Errorf("unclean.leader.election.enable stored as %q, want true", v)
	}
	if v := describeBroker(t, s, "follower.replication.throttled.rate")["follower.replication.throttled.rate"]; v.Value == nil || *v.Value != "1048576" || v.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig || v.ReadOnly {
		t.Errorf("follower.replication.throttled.rate described as %+v", v)
	}
	if v := describeBroker(t, s, "leader.replication.throttled.rate")["leader.replication.throttled.rate"]; v.Value == nil || *v.Value != "9223372036854775807" || v.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("leader.replication.throttled.rate after a refused change described as %+v", v)
	}
	// The DELETE above restored the default, reported as such.
	cfgs := describeBroker(t, s, "message.max.bytes")
	if v := cfgs["message.max.bytes"]; v.Value == nil || *v.Value != "1048588" || v.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("message.max.bytes after DELETE: %+v", v)
	}
}

// TestDescribeConfigsListsPerListenerSettings checks that settings written
// per listener (listener.name.<listener>.*) are reported under their names.
func TestDescribeConfigsListsPerListenerSettings(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		if err := c.Set("listener.name.tls.ssl.client.auth", "required"); err != nil {
			t.Fatal(err)
		}
	})
	cfgs := describeBroker(t, s)
	if v := cfgs["listener.name.tls.ssl.client.auth"]; v.Value == nil || *v.Value != "required" {
		t.Errorf("listener.name.tls.ssl.client.auth: %+v", v)
	}
	for name := range cfgs {
		if strings.Contains(name, "<") {
			t.Errorf("DescribeConfigs lists the placeholder %s", name)
		}
	}
}

// describeBroker describes this broker's own configs (names limits them).
func describeBroker(t *testing.T, s *Server, names ...string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(s.Config().NodeID)), names
	req.Resources = append(req.Resources, rr)
	resp := roundTrip[*kmsg.DescribeConfigsResponse](t, s, req)
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = c
	}
	return out
}

// TestAlterTopicConfigsUsesTheTable checks that a topic config change is
// judged by broker/config's topic-config table, in its words (the same
// config.CanonicalTopic errors the Terraform provider shows at plan time),
// and that every config of the table changes the log.
func TestAlterTopicConfigsUsesTheTable(t *testing.T) {
	for _, ts := range config.TopicSettings() {
		if topicApply[ts.Name] == nil {
			t.Errorf("topic config %s has no effect on the log", ts.Name)
		}
	}
	for name := range topicApply {
		if _, ok := config.LookupTopic(name); !ok {
			t.Errorf("topicApply has %s, which broker/config's topic-config table does not list", name)
		}
	}

	s := startServer(t)
	if _, err := s.createTopic("judged", 1, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value string
		wantErr     string // "" = accepted
	}{
		{"retention.ms", "soon", `retention.ms must be`},
		{"retention.mss", "1000", `is not a topic config (did you mean "retention.ms"?)`},
		{"log.retention.ms", "1000", `is the broker setting; the topic config is "retention.ms"`},
		{"cleanup.policy", "shred", `cleanup.policy`},
		{"retention.ms", "3600000", ""},
		{"cleanup.policy", "delete,compact", ""},
		{"leader.replication.throttled.replicas", "0-1", `leader.replication.throttled.replicas must be`},
		{"leader.replication.throttled.replicas", "*,0:1", `* alone`},
		{"follower.replication.throttled.replicas", " 0:1, 1:2", ""},
	}
	for _, tt := range tests {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "judged"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = tt.name, kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(tt.value)
		rr.Configs = append(rr.Configs, c)
		req.Resources = append(req.Resources, rr)
		r := roundTrip[*kmsg.IncrementalAlterConfigsResponse](t, s, req).Resources[0]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		switch {
		case tt.wantErr == "" && r.ErrorCode != 0:
			t.Errorf("%s=%q: refused: %v %s", tt.name, tt.value, kerr.ErrorForCode(r.ErrorCode), msg)
		case tt.wantErr != "" && (r.ErrorCode != kerr.InvalidConfig.Code || !strings.Contains(msg, tt.wantErr)):
			t.Errorf("%s=%q: %v %q, want INVALID_CONFIG with %q", tt.name, tt.value, kerr.ErrorForCode(r.ErrorCode), msg, tt.wantErr)
		}
		if _, err := config.CanonicalTopic(tt.name, tt.value); tt.wantErr != "" && (err == nil || !strings.Contains(msg, err.Error())) {
			t.Errorf("%s=%q: the broker says %q, config.CanonicalTopic says %v", tt.name, tt.value, msg, err)
		}
	}
	topic, _ := s.lookupTopic("judged")
	if got := topic.configs; got["retention.ms"] != "3600000" || got["cleanup.policy"] != "compact,delete" || got["follower.replication.throttled.replicas"] != "0:1,1:2" || len(got) != 3 {
		t.Errorf("topic configs after the changes: %v, want retention.ms=3600000, cleanup.policy=compact,delete and follower.replication.throttled.replicas=0:1,1:2 (canonical)", got)
	}
	// DescribeConfigs shows the throttled replicas set and the one left
	// at its empty default.
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "judged"
	rr.ConfigNames = []string{"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"}
	req.Resources = append(req.Resources, rr)
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, c := range roundTrip[*kmsg.DescribeConfigsResponse](t, s, req).Resources[0].Configs {
		got[c.Name] = c
	}
	if c := got["follower.replication.throttled.replicas"]; c.Value == nil || *c.Value != "0:1,1:2" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("follower.replication.throttled.replicas described as %+v", c)
	}
	if c := got["leader.replication.throttled.replicas"]; c.Value == nil || *c.Value != "" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("leader.replication.throttled.replicas described as %+v", c)
	}
}

// TestFileDeleteDelayReachesTheLog: file.delete.delay.ms inherits
// log.segment.delete.delay.ms, a topic's own value (CreateTopics,
// IncrementalAlterConfigs) reaches its partitions' logs, and 0 means
// "at once" there (storage's zero value is "the default", a minute).
func TestFileDeleteDelayReachesTheLog(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.LogSegmentDeleteDelay = 5 * time.Second })
	if _, err := s.createTopic("inherits", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.createTopic("own", 1, map[string]string{"file.delete.delay.ms": "0"}); err != nil {
		t.Fatal(err)
	}
	logDelay := func(topic string) time.Duration {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if p, ok := s.store.Partition(topic, 0); ok {
				return p.Config().FileDeleteDelay
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log for %s-0", topic)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := logDelay("inherits"); got != 5*time.Second {
		t.Errorf("a topic without its own value: the log waits %v, want the broker's 5s", got)
	}
	if got := logDelay("own"); got != storage.NoFileDeleteDelay {
		t.Errorf("file.delete.delay.ms=0: the log waits %v, want NoFileDeleteDelay", got)
	}

	alter := func(value string) (int16, string) {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "own"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = "file.delete.delay.ms", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr(value)
		rr.Configs = append(rr.Configs, c)
		req.Resources = append(req.Resources, rr)
		r := roundTrip[*kmsg.IncrementalAlterConfigsResponse](t, s, req).Resources[0]
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		return r.ErrorCode, msg
	}
	if code, msg := alter("-1"); code != kerr.InvalidConfig.Code || !strings.Contains(msg, "file.delete.delay.ms") {
		t.Errorf("file.delete.delay.ms=-1: %v %q, want INVALID_CONFIG naming it", kerr.ErrorForCode(code), msg)
	}
	if code, msg := alter("250"); code != 0 {
		t.Fatalf("file.delete.delay.ms=250: %v %s", kerr.ErrorForCode(code), msg)
	}
	deadline := time.Now().Add(10 * time.Second)
	for logDelay("own") != 250*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("after file.delete.delay.ms=250 the log waits %v", logDelay("own"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	for _, name := range []string{"inherits", "own"} {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, name
		rr.ConfigNames = []string{"file.delete.delay.ms"}
		req.Resources = append(req.Resources, rr)
	}
	resp := roundTrip[*kmsg.DescribeConfigsResponse](t, s, req)
	for i, want := range []struct {
		value string
		own   bool
	}{{"5000", false}, {"250", true}} {
		cs := resp.Resources[i].Configs
		if len(cs) != 1 || cs[0].Value == nil || *cs[0].Value != want.value || (cs[0].Source == kmsg.ConfigSourceDynamicTopicConfig) != want.own {
			t.Errorf("%s: file.delete.delay.ms described as %+v, want %s (the topic's own: %v)", resp.Resources[i].ResourceName, cs, want.value, want.own)
		}
	}
}

// TestUncleanLeaderElectionIsClusterWide: the active controller reads
// unclean.leader.election.enable from the topic and the cluster default
// only, so a broker's own dynamic value would be taken and then ignored:
// it is refused (INVALID_CONFIG naming the cluster default), and nothing
// is stored for the broker. DELETE on the broker's resource stays allowed
// (clients clearing a setting send it to every broker), and the cluster
// default takes the value.
func TestUncleanLeaderElectionIsClusterWide(t *testing.T) {
	s := startServer(t)
	node := s.Config().NodeID
	resource := strconv.Itoa(int(node))
	if code, msg := alterBrokerResource(t, s, resource, "unclean.leader.election.enable", "true", false); code != kerr.InvalidConfig.Code || !strings.Contains(msg, "cluster-wide") {
		t.Fatalf("setting unclean.leader.election.enable on broker %s: %v %q, want INVALID_CONFIG saying it is cluster-wide", resource, kerr.ErrorForCode(code), msg)
	}
	if v, ok := s.meta.BrokerConfigs(node)["unclean.leader.election.enable"]; ok {
		t.Fatalf("broker %s stores unclean.leader.election.enable=%s after the refusal", resource, v)
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, resource
	del := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	del.Name, del.Op = "unclean.leader.election.enable", kmsg.IncrementalAlterConfigOpDelete
	rr.Configs = append(rr.Configs, del)
	req.Resources = append(req.Resources, rr)
	if r := exchange(t, s, req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0]; r.ErrorCode != 0 {
		t.Fatalf("deleting unclean.leader.election.enable on broker %s: %v", resource, kerr.ErrorForCode(r.ErrorCode))
	}
	if code, msg := alterBrokerResource(t, s, "", "unclean.leader.election.enable", "true", false); code != 0 {
		t.Fatalf("setting unclean.leader.election.enable on the cluster default: %v %s", kerr.ErrorForCode(code), msg)
	}
	if v := s.meta.BrokerConfigs(metastore.ClusterDefault)["unclean.leader.election.enable"]; v != "true" {
		t.Errorf("the cluster default's unclean.leader.election.enable is %q, want true", v)
	}
}
