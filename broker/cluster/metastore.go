package cluster

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// ProducerIDBlockSize is how many producer ids one AllocateProducerIDBlock
// reserves. A restart skips the rest of the block in use, so ids are never
// reused.
const ProducerIDBlockSize = 1000

// MetadataStore is the broker's read-your-writes view of the Raft metadata:
// changes go through the active controller, wherever it is, and each method
// returns once this node has applied the change, so the server reads its
// own writes. Errors are the metadata package's (metadata.ErrTopicExists,
// ...), which the server maps to Kafka codes.
type MetadataStore struct {
	Controller *Controller
	// Timeout bounds each change; default 15 s. A change given a
	// context ends at the earlier of its deadline and this.
	Timeout time.Duration
}

func (m *MetadataStore) ctx() (context.Context, context.CancelFunc) {
	return m.ctxWithin(context.Background())
}

func (m *MetadataStore) ctxWithin(parent context.Context) (context.Context, context.CancelFunc) {
	t := m.Timeout
	if t <= 0 {
		t = 15 * time.Second
	}
	return context.WithTimeout(parent, t)
}

// waitLocal waits until this node's state satisfies ok (the change was
// applied here too).
func (m *MetadataStore) waitLocal(ctx context.Context, ok func(*metadata.State) bool) error {
	if _, err := m.Controller.fsm.WaitFor(ctx, ok); err != nil {
		return fmt.Errorf("waiting for the metadata change to reach this broker: %w", err)
	}
	return nil
}

// ClusterID is the cluster's id: the one in the metadata, or the one this
// node will propose while the metadata has none yet.
func (m *MetadataStore) ClusterID() string {
	if id := m.Controller.State().ClusterID; id != "" {
		return id
	}
	return m.Controller.cfg.ClusterID
}

// Topics lists the topics, by name.
func (m *MetadataStore) Topics() []*metadata.Topic {
	st := m.Controller.State()
	out := make([]*metadata.Topic, 0, len(st.Topics))
	for _, name := range st.TopicNames() {
		out = append(out, st.Topics[name])
	}
	return out
}

// CreateTopic creates a topic with rf replicas per partition, placed by the
// active controller, within ctx (a client's timeout_ms): past it the
// error matches context.DeadlineExceeded and the creation may still
// happen.
func (m *MetadataStore) CreateTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*metadata.Topic, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	t, err := m.Controller.CreateTopic(ctx, name, partitions, rf, configs)
	if err != nil {
		return nil, err
	}
	return t, m.waitTopic(ctx, t)
}

// CreateTopicAssigned creates a topic on the given replicas, one list per
// partition, within ctx as CreateTopic.
func (m *MetadataStore) CreateTopicAssigned(ctx context.Context, name string, assignments [][]int32, configs map[string]string) (*metadata.Topic, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	t, err := m.Controller.CreateTopicAssigned(ctx, name, assignments, configs)
	if err != nil {
		return nil, err
	}
	return t, m.waitTopic(ctx, t)
}

// waitTopic waits until this node's state has the new topic.
func (m *MetadataStore) waitTopic(ctx context.Context, t *metadata.Topic) error {
	return m.waitLocal(ctx, func(st *metadata.State) bool { lt, ok := st.Topic(t.Name); return ok && lt.ID == t.ID })
}

// DeleteTopic deletes a topic, within ctx as CreateTopic.
func (m *MetadataStore) DeleteTopic(ctx context.Context, name string) error {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	if err := m.Controller.DeleteTopic(ctx, name); err != nil {
		return err
	}
	return m.waitLocal(ctx, func(st *metadata.State) bool { _, ok := st.Topic(name); return !ok })
}

// AddPartitions grows a topic to count partitions: placed by the active
// controller, or on the given replicas (one list per new partition),
// within ctx as CreateTopic.
func (m *MetadataStore) AddPartitions(ctx context.Context, name string, count int32, assignments [][]int32) (*metadata.Topic, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	t, err := m.Controller.CreatePartitions(ctx, name, count, assignments)
	if err != nil {
		return nil, err
	}
	err = m.waitLocal(ctx, func(st *metadata.State) bool { lt, ok := st.Topic(name); return ok && lt.NumPartitions() >= int(count) })
	return t, err
}

// SetTopicConfigs replaces a topic's explicit config overrides, within
// ctx as CreateTopic.
func (m *MetadataStore) SetTopicConfigs(ctx context.Context, name string, configs map[string]string) (*metadata.Topic, error) {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	t, err := m.Controller.SetTopicConfigs(ctx, name, configs)
	if err != nil {
		return nil, err
	}
	err = m.waitLocal(ctx, func(st *metadata.State) bool {
		lt, ok := st.Topic(name)
		return ok && maps.Equal(lt.Configs, t.Configs)
	})
	return t, err
}

// BrokerConfigs returns the dynamic configs of one broker, or the
// cluster-wide defaults for metadata.ClusterDefault.
func (m *MetadataStore) BrokerConfigs(node int32) map[string]string {
	return maps.Clone(m.Controller.State().BrokerConfigs[node])
}

// SetBrokerConfigs replaces the dynamic configs of one broker, or the
// cluster-wide defaults for metadata.ClusterDefault, within ctx as
// CreateTopic.
func (m *MetadataStore) SetBrokerConfigs(ctx context.Context, node int32, configs map[string]string) error {
	ctx, cancel := m.ctxWithin(ctx)
	defer cancel()
	if err := m.Controller.SetBrokerConfigs(ctx, node, configs); err != nil {
		return err
	}
	return m.waitLocal(ctx, func(st *metadata.State) bool {
		return maps.Equal(st.BrokerConfigs[node], configs) || (len(configs) == 0 && len(st.BrokerConfigs[node]) == 0)
	})
}

// AllocateProducerIDBlock reserves ProducerIDBlockSize producer ids, unique
// in the whole cluster, and returns the first.
func (m *MetadataStore) AllocateProducerIDBlock() (int64, error) {
	ctx, cancel := m.ctx()
	defer cancel()
	return m.Controller.AllocateProducerIDs(ctx, ProducerIDBlockSize)
}
