// Package metastore keeps the broker's cluster metadata (topics, their
// partitions and ids, topic and dynamic broker configs, leader epochs and
// producer-id blocks) in one small file in the data directory.
//
// The whole state is rewritten atomically on every change (write a temporary
// file, fsync it, rename it over the old one, fsync the directory), so a crash
// leaves either the old or the new state, never a mix. Changes are rare
// (admin operations, start-up), and the state is small, so rewriting it is
// cheaper than a log. The cluster release replaces this file with a Raft log;
// the server sees it only through its Metadata interface.
package metastore

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
)

// FileName is the metadata file inside the data directory.
const FileName = "tributary-metadata.json"

// ProducerIDBlockSize is how many producer ids one persisted block reserves.
// A restart skips the rest of the block in use, so ids are never reused.
const ProducerIDBlockSize = 1000

// formatVersion is bumped on incompatible changes to the file.
const formatVersion = 1

// Errors callers map to Kafka error codes.
var (
	ErrTopicExists   = errors.New("topic already exists")
	ErrUnknownTopic  = errors.New("unknown topic")
	ErrInvalidChange = errors.New("invalid metadata change")
)

// TopicID is Kafka's 16-byte topic id (KIP-516).
type TopicID [16]byte

// Topic is one topic's metadata.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Partitions []Partition       `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"` // explicit overrides only
}

// Partition is one partition's metadata. A single node leads every
// partition; the epoch is bumped each time the broker starts (a new
// leadership term), as a re-election would in Kafka, so clients holding an
// old epoch are fenced and re-validate their positions (KIP-320).
type Partition struct {
	LeaderEpoch int32 `json:"leader_epoch"`
}

type state struct {
	Version             int               `json:"version"`
	ClusterID           string            `json:"cluster_id"`
	Topics              map[string]*Topic `json:"topics"`
	NextProducerIDBlock int64             `json:"next_producer_id_block"`
	BrokerConfigs       map[string]string `json:"broker_configs,omitempty"` // cluster-wide defaults
	// NodeConfigs are per-broker overrides, by node id; they win over
	// BrokerConfigs on their broker (Kafka's DYNAMIC_BROKER_CONFIG).
	NodeConfigs map[int32]map[string]string `json:"node_configs,omitempty"`
}

// Store is the file-backed metadata store. It is safe for concurrent use.
type Store struct {
	mu   sync.Mutex
	dir  string
	st   state
	byID map[TopicID]string
}

// Open loads the metadata file in dir, or starts empty with the given
// cluster id (a random one when empty) if there is none.
func Open(dir, clusterID string) (*Store, error) {
	s := &Store{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if clusterID == "" {
			clusterID = newClusterID()
		}
		s.st = state{Version: formatVersion, ClusterID: clusterID, Topics: map[string]*Topic{}}
		if err := s.persist(s.st); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading metadata: %w", err)
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			return nil, fmt.Errorf("decoding metadata %s: %w", filepath.Join(dir, FileName), err)
		}
		if s.st.Version != formatVersion {
			return nil, fmt.Errorf("metadata %s: format version %d, this broker reads %d", filepath.Join(dir, FileName), s.st.Version, formatVersion)
		}
		if s.st.Topics == nil {
			s.st.Topics = map[string]*Topic{}
		}
		if clusterID != "" && clusterID != s.st.ClusterID {
			return nil, fmt.Errorf("data directory %s belongs to cluster %q, configured cluster.id is %q", dir, s.st.ClusterID, clusterID)
		}
	}
	s.reindex()
	return s, nil
}

func (s *Store) reindex() {
	s.byID = make(map[TopicID]string, len(s.st.Topics))
	for name, t := range s.st.Topics {
		s.byID[t.ID] = name
	}
}

// ClusterID is the id of the cluster this data directory belongs to.
func (s *Store) ClusterID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.ClusterID
}

// Topics returns copies of every topic, sorted by name.
func (s *Store) Topics() []Topic {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Topic, 0, len(s.st.Topics))
	for _, t := range s.st.Topics {
		out = append(out, cloneTopic(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic returns a copy of one topic.
func (s *Store) Topic(name string) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.st.Topics[name]
	if !ok {
		return Topic{}, false
	}
	return cloneTopic(t), true
}

// TopicByID returns a copy of the topic with the given id.
func (s *Store) TopicByID(id TopicID) (Topic, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ok := s.byID[id]
	if !ok {
		return Topic{}, false
	}
	return cloneTopic(s.st.Topics[name]), true
}

// CreateTopic records a new topic with a fresh id.
func (s *Store) CreateTopic(name string, partitions int32, configs map[string]string) (Topic, error) {
	if partitions < 1 {
		return Topic{}, fmt.Errorf("%w: %d partitions", ErrInvalidChange, partitions)
	}
	return s.update(func(st *state) (Topic, error) {
		if _, ok := st.Topics[name]; ok {
			return Topic{}, fmt.Errorf("%w: %s", ErrTopicExists, name)
		}
		t := &Topic{Name: name, ID: newTopicID(), Partitions: make([]Partition, partitions), Configs: maps.Clone(configs)}
		st.Topics[name] = t
		return cloneTopic(t), nil
	})
}

// DeleteTopic forgets a topic.
func (s *Store) DeleteTopic(name string) error {
	_, err := s.update(func(st *state) (Topic, error) {
		if _, ok := st.Topics[name]; !ok {
			return Topic{}, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		}
		delete(st.Topics, name)
		return Topic{}, nil
	})
	return err
}

// AddPartitions grows a topic to count partitions.
func (s *Store) AddPartitions(name string, count int32) (Topic, error) {
	return s.update(func(st *state) (Topic, error) {
		t, ok := st.Topics[name]
		if !ok {
			return Topic{}, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		}
		if int(count) <= len(t.Partitions) {
			return Topic{}, fmt.Errorf("%w: topic %s has %d partitions, cannot go to %d", ErrInvalidChange, name, len(t.Partitions), count)
		}
		for len(t.Partitions) < int(count) {
			t.Partitions = append(t.Partitions, Partition{})
		}
		return cloneTopic(t), nil
	})
}

// SetTopicConfigs replaces a topic's explicit config overrides.
func (s *Store) SetTopicConfigs(name string, configs map[string]string) (Topic, error) {
	return s.update(func(st *state) (Topic, error) {
		t, ok := st.Topics[name]
		if !ok {
			return Topic{}, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
		}
		t.Configs = maps.Clone(configs)
		return cloneTopic(t), nil
	})
}

// BumpLeaderEpochs starts a new leadership term for every partition; the
// broker calls it once at start-up.
func (s *Store) BumpLeaderEpochs() error {
	_, err := s.update(func(st *state) (Topic, error) {
		for _, t := range st.Topics {
			for i := range t.Partitions {
				t.Partitions[i].LeaderEpoch++
			}
		}
		return Topic{}, nil
	})
	return err
}

// ClusterDefault is the node id under which BrokerConfigs and
// SetBrokerConfigs keep the cluster-wide dynamic defaults.
const ClusterDefault int32 = -1

// BrokerConfigs returns the dynamic broker config overrides of one broker
// (node >= 0) or the cluster-wide defaults (ClusterDefault).
func (s *Store) BrokerConfigs(node int32) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if node == ClusterDefault {
		return maps.Clone(s.st.BrokerConfigs)
	}
	return maps.Clone(s.st.NodeConfigs[node])
}

// SetBrokerConfigs replaces the dynamic broker config overrides of one
// broker or the cluster-wide defaults (ClusterDefault).
func (s *Store) SetBrokerConfigs(node int32, configs map[string]string) error {
	_, err := s.update(func(st *state) (Topic, error) {
		if node == ClusterDefault {
			st.BrokerConfigs = maps.Clone(configs)
			return Topic{}, nil
		}
		if st.NodeConfigs == nil {
			st.NodeConfigs = map[int32]map[string]string{}
		}
		if len(configs) == 0 {
			delete(st.NodeConfigs, node)
		} else {
			st.NodeConfigs[node] = maps.Clone(configs)
		}
		return Topic{}, nil
	})
	return err
}

// AllocateProducerIDBlock reserves the next ProducerIDBlockSize producer ids
// durably and returns the first.
func (s *Store) AllocateProducerIDBlock() (int64, error) {
	var first int64
	_, err := s.update(func(st *state) (Topic, error) {
		first = st.NextProducerIDBlock
		st.NextProducerIDBlock += ProducerIDBlockSize
		return Topic{}, nil
	})
	return first, err
}

// update applies fn to a copy of the state and persists it; the in-memory
// state changes only once the file is durable, so a failed write changes
// nothing.
func (s *Store) update(fn func(*state) (Topic, error)) (Topic, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := cloneState(s.st)
	t, err := fn(&next)
	if err != nil {
		return Topic{}, err
	}
	if err := s.persist(next); err != nil {
		return Topic{}, err
	}
	s.st = next
	s.reindex()
	return t, nil
}

func (s *Store) persist(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding metadata: %w", err)
	}
	if err := WriteFileAtomic(s.dir, FileName, b); err != nil {
		return fmt.Errorf("writing metadata: %w", err)
	}
	return nil
}

// WriteFileAtomic replaces dir/name with data so that a crash at any point
// leaves either the old or the new content: write a temporary file, fsync
// it, rename it over the target, fsync the directory.
func WriteFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func cloneTopic(t *Topic) Topic {
	return Topic{Name: t.Name, ID: t.ID, Partitions: slices.Clone(t.Partitions), Configs: maps.Clone(t.Configs)}
}

func cloneState(st state) state {
	next := st
	next.Topics = make(map[string]*Topic, len(st.Topics))
	for name, t := range st.Topics {
		c := cloneTopic(t)
		next.Topics[name] = &c
	}
	next.BrokerConfigs = maps.Clone(st.BrokerConfigs)
	if st.NodeConfigs != nil {
		next.NodeConfigs = make(map[int32]map[string]string, len(st.NodeConfigs))
		for n, c := range st.NodeConfigs {
			next.NodeConfigs[n] = maps.Clone(c)
		}
	}
	return next
}

func newTopicID() TopicID {
	var id TopicID
	for id == (TopicID{}) { // the zero id means "no id" on the wire
		_, _ = rand.Read(id[:])
	}
	return id
}

// newClusterID makes a Kafka-style cluster id: 16 random bytes in URL-safe
// base64 without padding (22 characters).
func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// String formats the id as Kafka prints topic ids (URL-safe base64).
func (id TopicID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// MarshalText keeps the metadata file readable.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads an id written by MarshalText.
func (id *TopicID) UnmarshalText(b []byte) error {
	raw, err := base64.RawURLEncoding.DecodeString(string(b))
	if err != nil || len(raw) != len(id) {
		return fmt.Errorf("bad topic id %q", b)
	}
	copy(id[:], raw)
	return nil
}
