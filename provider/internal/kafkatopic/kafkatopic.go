// Package kafkatopic manages the topics of a Tributary cluster through the
// Kafka protocol (franz-go kadm): create, describe, grow, configure, change
// the replication factor by reassignment, delete. Every change returns once
// every live broker reports it from its own copy of the cluster metadata, so
// the read that follows a change (Terraform's refresh) sees it whichever
// broker answers.
package kafkatopic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// ErrNotFound says the topic does not exist.
var ErrNotFound = errors.New("topic does not exist")

// Topic is what the cluster says about one topic.
type Topic struct {
	Name     string
	Internal bool
	// Partitions are indexed by partition id.
	Partitions []Partition
	// Config holds the topic's own configs (source DYNAMIC_TOPIC_CONFIG):
	// what was set on the topic, not what it inherits from the brokers.
	Config map[string]string
	// Effective holds every topic config in force, inherited ones included.
	Effective map[string]string
}

// Partition is one partition's placement.
type Partition struct {
	Leader   int32
	Replicas []int32
	ISR      []int32
}

// ReplicationFactor is the topic's replica count. When the partitions
// disagree (a reassignment by hand, or one that stopped halfway), it is the
// first count that differs from want, so that a caller comparing it with
// what it wants sees the difference; want is returned only when every
// partition has it.
func (t *Topic) ReplicationFactor(want int) int {
	if len(t.Partitions) == 0 {
		return want
	}
	for _, p := range t.Partitions {
		if len(p.Replicas) != want {
			return len(p.Replicas)
		}
	}
	return want
}

// Spec is a topic to create.
type Spec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	Config            map[string]string
}

// Admin manages the topics of one cluster.
type Admin struct {
	Conn *kafkaconn.Conn
	// Log reports progress (tflog in the provider); may be nil.
	Log kafkaconn.LogFunc
	// PollInterval is the delay between two checks of a wait (default 500ms).
	PollInterval time.Duration
	// CreateRetry bounds how long Create retries a replication factor the
	// cluster refuses although it has the brokers for it (default 1m).
	CreateRetry time.Duration
	// Throttle is the replication throttle of the reassignments it runs
	// (replication-factor increases, rebalances, drains), bytes per
	// second per broker and side (see throttle); 0 copies unthrottled.
	Throttle int64
}

func (a *Admin) interval() time.Duration {
	if a.PollInterval > 0 {
		return a.PollInterval
	}
	return kafkaconn.DefaultPollInterval
}

func (a *Admin) log(ctx context.Context, msg string, attrs ...any) {
	if a.Log != nil {
		a.Log(ctx, msg, attrs...)
	}
}

// admin returns an admin client of the cluster; the caller closes it.
func (a *Admin) admin() (*kadm.Client, error) {
	return a.Conn.Admin()
}

// Describe reads one topic: its partitions from Metadata, its configs from
// DescribeConfigs. ErrNotFound when the topic does not exist, or when some
// live broker, asked for it by name, does not know it.
func (a *Admin) Describe(ctx context.Context, name string) (*Topic, error) {
	adm, err := a.admin()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of topic %s from %s: %w", name, strings.Join(a.Conn.Bootstrap(), ","), err)
	}
	td, ok := md.Topics[name]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if td.Err != nil {
		return nil, fmt.Errorf("reading the metadata of topic %s: %w", name, td.Err)
	}
	// The broker that answered may not have applied the topic's deletion
	// yet (each applies the metadata log in its own time); one that says
	// it does not know the topic has caught up with the controller first,
	// so that answer from any live broker is the cluster's.
	gone, err := a.unknownTopics(ctx, []string{name})
	switch {
	case err != nil:
		a.log(ctx, "could not ask every broker whether the topic still exists; read from one broker", "topic", name, "error", err.Error())
	case len(gone) > 0:
		return nil, fmt.Errorf("%s (deleted; a broker still listed it): %w", name, ErrNotFound)
	}
	t := topicFrom(td)
	if err := a.describeConfigs(ctx, adm, map[string]*Topic{name: &t}); err != nil {
		return nil, err
	}
	return &t, nil
}

// List reads every topic (internal ones only when internal is true), in
// name order.
func (a *Admin) List(ctx context.Context, internal bool) ([]Topic, error) {
	adm, err := a.admin()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of cluster %s: %w", a.Conn.ClusterID, err)
	}
	byName := map[string]*Topic{}
	for name, td := range md.Topics {
		if td.Err != nil {
			return nil, fmt.Errorf("reading the metadata of topic %s: %w", name, td.Err)
		}
		if td.IsInternal && !internal {
			continue
		}
		t := topicFrom(td)
		byName[name] = &t
	}
	if err := a.describeConfigs(ctx, adm, byName); err != nil {
		return nil, err
	}
	out := make([]Topic, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[name])
	}
	return out, nil
}

func topicFrom(td kadm.TopicDetail) Topic {
	t := Topic{Name: td.Topic, Internal: td.IsInternal, Partitions: make([]Partition, len(td.Partitions))}
	for id, pd := range td.Partitions {
		if id >= 0 && int(id) < len(t.Partitions) {
			t.Partitions[id] = Partition{Leader: pd.Leader, Replicas: slices.Clone(pd.Replicas), ISR: slices.Clone(pd.ISR)}
		}
	}
	return t
}

// describeConfigs fills the configs of the topics.
func (a *Admin) describeConfigs(ctx context.Context, adm *kadm.Client, topics map[string]*Topic) error {
	if len(topics) == 0 {
		return nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, slices.Sorted(maps.Keys(topics))...)
	if err != nil {
		return fmt.Errorf("describing the configs of %d topics: %w", len(topics), err)
	}
	for _, rc := range rcs {
		t, ok := topics[rc.Name]
		if !ok {
			continue
		}
		if rc.Err != nil {
			if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("%s: %w", rc.Name, ErrNotFound)
			}
			return fmt.Errorf("describing the configs of topic %s: %w %s", rc.Name, rc.Err, rc.ErrMessage)
		}
		t.Config, t.Effective = map[string]string{}, map[string]string{}
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			t.Effective[c.Key] = *c.Value
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				t.Config[c.Key] = *c.Value
			}
		}
	}
	return nil
}

// Create creates a topic and waits until every live broker lists it with
// a leader for each partition. A replication factor the cluster refuses
// although it has as many brokers (they are still registering, right after
// the cluster formed) is retried for CreateRetry.
func (a *Admin) Create(ctx context.Context, s Spec) error {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	configs := make(map[string]*string, len(s.Config))
	for k, v := range s.Config {
		configs[k] = kmsg.StringPtr(v)
	}
	retry := a.CreateRetry
	if retry <= 0 {
		retry = time.Minute
	}
	deadline := time.Now().Add(retry)
	for {
		resp, err := adm.CreateTopic(ctx, int32(s.Partitions), int16(s.ReplicationFactor), configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			a.log(ctx, "created topic; waiting until every broker lists it with its leaders", "topic", s.Name)
			return a.waitTopic(ctx, s.Name, "topic "+s.Name+" to have a leader for every partition on every broker", func(t *Topic) (string, bool) {
				if t == nil {
					return "not listed yet", false
				}
				return leadersStatus(t, s.Partitions)
			})
		case errors.Is(err, kerr.TopicAlreadyExists):
			return fmt.Errorf("creating topic %s: %w", s.Name, err)
		case errors.Is(err, kerr.InvalidReplicationFactor) && s.ReplicationFactor <= len(a.Conn.Brokers) && time.Now().Before(deadline):
			a.log(ctx, "the cluster refuses the replication factor for now (brokers still registering); retrying",
				"topic", s.Name, "replication_factor", s.ReplicationFactor, "reason", resp.ErrMessage)
		default:
			return fmt.Errorf("creating topic %s (%d partitions, replication factor %d): %w%s", s.Name, s.Partitions, s.ReplicationFactor, err, kafkaconn.ErrMessage(&resp.ErrMessage))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("creating topic %s: %w (the cluster refused replication factor %d: %s)", s.Name, ctx.Err(), s.ReplicationFactor, resp.ErrMessage)
		case <-time.After(a.interval()):
		}
	}
}

// leadersStatus reports whether a topic has n partitions, each with a leader.
func leadersStatus(t *Topic, n int) (string, bool) {
	if len(t.Partitions) < n {
		return fmt.Sprintf("%d of %d partitions listed", len(t.Partitions), n), false
	}
	for i, p := range t.Partitions {
		if p.Leader < 0 {
			return fmt.Sprintf("%s-%d has no leader yet", t.Name, i), false
		}
	}
	return "", true
}

// Delete deletes a topic (a topic already gone is fine) and waits until no
// live broker lists it, so that a topic of the same name can be created
// right after.
func (a *Admin) Delete(ctx context.Context, name string) error {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	resp, err := adm.DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("deleting topic %s: %w%s", name, err, kafkaconn.ErrMessage(&resp.ErrMessage))
	}
	return a.waitTopic(ctx, name, "topic "+name+" to be gone from every broker", func(t *Topic) (string, bool) {
		if t != nil {
			return "still listed", false
		}
		return "", true
	})
}

// AddPartitions grows a topic to total partitions (CreatePartitions; the
// brokers place the new ones) and waits until every live broker lists them
// with a leader.
func (a *Admin) AddPartitions(ctx context.Context, name string, total int) error {
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	resps, err := adm.UpdatePartitions(ctx, total, name)
	if err != nil {
		return fmt.Errorf("growing topic %s to %d partitions: %w", name, total, err)
	}
	if r, ok := resps[name]; ok && r.Err != nil {
		return fmt.Errorf("growing topic %s to %d partitions: %w%s", name, total, r.Err, kafkaconn.ErrMessage(&r.ErrMessage))
	}
	a.log(ctx, "added partitions; waiting until every broker lists them with their leaders", "topic", name, "partitions", total)
	return a.waitTopic(ctx, name, fmt.Sprintf("topic %s to have %d partitions with leaders on every broker", name, total), func(t *Topic) (string, bool) {
		if t == nil {
			return "topic not listed", false
		}
		return leadersStatus(t, total)
	})
}

// AlterConfig sets (op SET) and removes (op DELETE, back to the inherited
// value) topic configs with IncrementalAlterConfigs, and waits until every
// live broker reports the result for the topic.
func (a *Admin) AlterConfig(ctx context.Context, name string, set map[string]string, remove []string) error {
	if len(set) == 0 && len(remove) == 0 {
		return nil
	}
	adm, err := a.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	var changes []kadm.AlterConfig
	for _, k := range slices.Sorted(maps.Keys(set)) {
		changes = append(changes, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kmsg.StringPtr(set[k])})
	}
	for _, k := range slices.Sorted(slices.Values(remove)) {
		changes = append(changes, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	resps, err := adm.AlterTopicConfigs(ctx, changes, name)
	if err != nil {
		return fmt.Errorf("changing the configs of topic %s: %w", name, err)
	}
	for _, r := range resps {
		if r.Err != nil {
			return fmt.Errorf("changing the configs of topic %s: %w%s", name, r.Err, kafkaconn.ErrMessage(&r.ErrMessage))
		}
	}
	a.log(ctx, "changed topic configs; waiting until every broker reports them", "topic", name,
		"set", slices.Sorted(maps.Keys(set)), "removed", remove)
	return a.waitEachBroker(ctx, "the config change of topic "+name+" to reach every broker", func(ctx context.Context, b *kgo.Broker, id int32) (string, bool) {
		own, err := ownConfigsFrom(ctx, b, name)
		if err != nil {
			return fmt.Sprintf("broker %d: %v", id, err), false
		}
		for k, want := range set {
			if got, ok := own[k]; !ok || !sameValue(k, got, want) {
				return fmt.Sprintf("broker %d does not have %s=%s yet", id, k, want), false
			}
		}
		for _, k := range remove {
			if v, ok := own[k]; ok {
				return fmt.Sprintf("broker %d still has the topic's own %s=%s", id, k, v), false
			}
		}
		return "", true
	})
}

// sameValue compares two values of a topic config as the broker spells
// them (cleanup.policy delete,compact is compact,delete).
func sameValue(name, a, b string) bool {
	if a == b {
		return true
	}
	ca, err1 := config.CanonicalTopic(name, a)
	cb, err2 := config.CanonicalTopic(name, b)
	return err1 == nil && err2 == nil && ca == cb
}

// ownConfigsFrom asks one broker for a topic's own configs.
func ownConfigsFrom(ctx context.Context, b *kgo.Broker, topic string) (map[string]string, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctx, b)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return nil, err
		}
		for _, c := range r.Configs {
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig && c.Value != nil {
				out[c.Name] = *c.Value
			}
		}
	}
	return out, nil
}

// topicFromBroker asks one broker for a topic's partitions; nil when the
// broker does not list it.
func topicFromBroker(ctx context.Context, b *kgo.Broker, name string) (*Topic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, b)
	if err != nil {
		return nil, err
	}
	for _, mt := range resp.Topics {
		if mt.Topic == nil || *mt.Topic != name {
			continue
		}
		if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, nil
			}
			return nil, err
		}
		t := &Topic{Name: name, Internal: mt.IsInternal}
		sort.Slice(mt.Partitions, func(i, j int) bool { return mt.Partitions[i].Partition < mt.Partitions[j].Partition })
		for _, p := range mt.Partitions {
			t.Partitions = append(t.Partitions, Partition{Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR})
		}
		return t, nil
	}
	return nil, nil
}

// waitTopic waits until check accepts every live broker's view of the
// topic (nil when a broker does not list it).
func (a *Admin) waitTopic(ctx context.Context, name, what string, check func(*Topic) (string, bool)) error {
	return a.waitEachBroker(ctx, what, func(ctx context.Context, b *kgo.Broker, id int32) (string, bool) {
		t, err := topicFromBroker(ctx, b, name)
		if err != nil {
			return fmt.Sprintf("broker %d: %v", id, err), false
		}
		status, ok := check(t)
		if !ok {
			return fmt.Sprintf("broker %d: %s", id, status), false
		}
		return "", true
	})
}

// waitEachBroker polls until check accepts the answer of every live
// broker.
func (a *Admin) waitEachBroker(ctx context.Context, what string, check func(ctx context.Context, b *kgo.Broker, id int32) (string, bool)) error {
	return a.Conn.WaitEachBroker(ctx, what, a.PollInterval, a.Log, check)
}
