package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/placement"
	"github.com/tributary/tributary/broker/server/metastore"
)

// ProducerIDBlockSize is how many producer ids one AllocateProducerIDBlock
// reserves, as the single-node store does.
const ProducerIDBlockSize = metastore.ProducerIDBlockSize

// MetadataStore is the server's Metadata interface (topics, configs,
// producer-id blocks) on the Raft log: the drop-in replacement for the
// single-node metastore.Store. Changes go through the active controller;
// each method returns once this node has applied the change, so the
// server reads its own writes.
type MetadataStore struct {
	Controller *Controller
	// DefaultReplicationFactor is used by CreateTopic (the server's
	// Metadata interface does not carry one). A topic needs that many live
	// brokers, as in Kafka.
	DefaultReplicationFactor int16
	// Timeout bounds each change; default 15 s.
	Timeout time.Duration
}

func (m *MetadataStore) ctx() (context.Context, context.CancelFunc) {
	t := m.Timeout
	if t <= 0 {
		t = 15 * time.Second
	}
	return context.WithTimeout(context.Background(), t)
}

// serverError maps metadata errors to the ones the server's handlers test.
func serverError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, metadata.ErrTopicExists):
		return fmt.Errorf("%w: %w", metastore.ErrTopicExists, err)
	case errors.Is(err, metadata.ErrUnknownTopicOrPartition):
		return fmt.Errorf("%w: %w", metastore.ErrUnknownTopic, err)
	case errors.Is(err, metadata.ErrInvalidPartitions), errors.Is(err, metadata.ErrInvalidReplicaAssignment),
		errors.Is(err, metadata.ErrInvalidRequest), errors.Is(err, placement.ErrNotEnoughBrokers):
		return fmt.Errorf("%w: %w", metastore.ErrInvalidChange, err)
	}
	return err
}

// waitLocal waits until this node's state satisfies ok (the change was
// applied here too).
func (m *MetadataStore) waitLocal(ctx context.Context, ok func(*metadata.State) bool) error {
	for {
		ch := m.Controller.Changed()
		if ok(m.Controller.State()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the metadata change to reach this broker: %w", ctx.Err())
		}
	}
}

func toServerTopic(t *metadata.Topic) metastore.Topic {
	out := metastore.Topic{Name: t.Name, ID: metastore.TopicID(t.ID), Configs: maps.Clone(t.Configs), Partitions: make([]metastore.Partition, len(t.Partitions))}
	for i, p := range t.Partitions {
		out.Partitions[i] = metastore.Partition{LeaderEpoch: p.LeaderEpoch}
	}
	return out
}

// ClusterID implements the server's Metadata.
func (m *MetadataStore) ClusterID() string {
	if id := m.Controller.State().ClusterID; id != "" {
		return id
	}
	return m.Controller.cfg.ClusterID
}

// Topics implements the server's Metadata.
func (m *MetadataStore) Topics() []metastore.Topic {
	st := m.Controller.State()
	out := make([]metastore.Topic, 0, len(st.Topics))
	for _, name := range st.TopicNames() {
		out = append(out, toServerTopic(st.Topics[name]))
	}
	return out
}

// CreateTopic implements the server's Metadata.
func (m *MetadataStore) CreateTopic(name string, partitions int32, configs map[string]string) (metastore.Topic, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	t, err := m.Controller.CreateTopic(ctx, name, partitions, max(m.DefaultReplicationFactor, 1), configs)
	if err != nil {
		return metastore.Topic{}, serverError(err)
	}
	if err := m.waitLocal(ctx, func(st *metadata.State) bool { _, ok := st.TopicByID(t.ID); return ok }); err != nil {
		return metastore.Topic{}, err
	}
	return toServerTopic(t), nil
}

// DeleteTopic implements the server's Metadata.
func (m *MetadataStore) DeleteTopic(name string) error {
	ctx, cancel := m.ctx()
	defer cancel()
	if err := m.Controller.DeleteTopic(ctx, name); err != nil {
		return serverError(err)
	}
	return m.waitLocal(ctx, func(st *metadata.State) bool { _, ok := st.Topic(name); return !ok })
}

// AddPartitions implements the server's Metadata: grow to count.
func (m *MetadataStore) AddPartitions(name string, count int32) (metastore.Topic, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	t, err := m.Controller.CreatePartitions(ctx, name, count)
	if err != nil {
		return metastore.Topic{}, serverError(err)
	}
	err = m.waitLocal(ctx, func(st *metadata.State) bool { lt, ok := st.Topic(name); return ok && len(lt.Partitions) >= int(count) })
	return toServerTopic(t), err
}

// SetTopicConfigs implements the server's Metadata.
func (m *MetadataStore) SetTopicConfigs(name string, configs map[string]string) (metastore.Topic, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	t, err := m.Controller.SetTopicConfigs(ctx, name, configs)
	if err != nil {
		return metastore.Topic{}, serverError(err)
	}
	err = m.waitLocal(ctx, func(st *metadata.State) bool {
		lt, ok := st.Topic(name)
		return ok && maps.Equal(lt.Configs, t.Configs)
	})
	return toServerTopic(t), err
}

// BumpLeaderEpochs implements the server's Metadata. In a cluster, leader
// epochs change only by elections in the metadata log, so a broker start
// changes nothing.
func (m *MetadataStore) BumpLeaderEpochs() error { return nil }

// BrokerConfigs implements the server's Metadata: the dynamic configs of
// one broker, or the cluster-wide defaults for metastore.ClusterDefault.
func (m *MetadataStore) BrokerConfigs(node int32) map[string]string {
	return maps.Clone(m.Controller.State().BrokerConfigs[brokerConfigKey(node)])
}

// SetBrokerConfigs implements the server's Metadata.
func (m *MetadataStore) SetBrokerConfigs(node int32, configs map[string]string) error {
	ctx, cancel := m.ctx()
	defer cancel()
	key := brokerConfigKey(node)
	if err := m.Controller.SetBrokerConfigs(ctx, key, configs); err != nil {
		return serverError(err)
	}
	return m.waitLocal(ctx, func(st *metadata.State) bool {
		return maps.Equal(st.BrokerConfigs[key], configs) || (len(configs) == 0 && len(st.BrokerConfigs[key]) == 0)
	})
}

// brokerConfigKey maps the server's node ids to the metadata's.
func brokerConfigKey(node int32) int32 {
	if node == metastore.ClusterDefault {
		return metadata.ClusterDefault
	}
	return node
}

// AllocateProducerIDBlock implements the server's Metadata: the block is
// unique in the whole cluster.
func (m *MetadataStore) AllocateProducerIDBlock() (int64, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	return m.Controller.AllocateProducerIDs(ctx, ProducerIDBlockSize)
}
