// Package metastore reads the metadata file that brokers kept in their data
// directory before every broker, a single one included, ran the Raft
// metadata quorum: topics (ids, partitions, leader epochs, config
// overrides), dynamic broker configs and the producer-id counter, in
// tributary-metadata.json. Nothing writes that file any more: a broker that
// finds one imports it into its Raft log at start and then retires it
// (Retire), so the file is read at most until one import succeeded. The
// format is described in docs/broker-disk-format.md.
package metastore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tributary/tributary/broker/internal/topicid"
)

// FileName is the metadata file inside the data directory.
const FileName = "tributary-metadata.json"

// RetiredSuffix is appended to FileName once the file was imported; the
// retired file is kept for the operator and never read again.
const RetiredSuffix = ".imported"

// formatVersion is the only version of the file ever written.
const formatVersion = 1

// ClusterDefault is the node id under which the file's cluster-wide
// dynamic broker configs are returned in File.BrokerConfigs.
const ClusterDefault int32 = -1

// TopicID is Kafka's 16-byte topic id (KIP-516), written in URL-safe
// base64 without padding.
type TopicID = topicid.ID

// Topic is one topic of the file.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Partitions []Partition       `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"` // explicit overrides only
}

// Partition is one partition of the file: the single broker led every
// partition, at this epoch (bumped at each start).
type Partition struct {
	LeaderEpoch int32 `json:"leader_epoch"`
}

// File is the decoded metadata file.
type File struct {
	ClusterID string
	// Topics are by name.
	Topics map[string]*Topic
	// NextProducerID is the first producer id the file never handed out
	// (the start of the next block).
	NextProducerID int64
	// BrokerConfigs are the dynamic broker configs by node id, the
	// cluster-wide defaults under ClusterDefault.
	BrokerConfigs map[int32]map[string]string
}

// onDisk is the file's JSON layout.
type onDisk struct {
	Version             int                         `json:"version"`
	ClusterID           string                      `json:"cluster_id"`
	Topics              map[string]*Topic           `json:"topics"`
	NextProducerIDBlock int64                       `json:"next_producer_id_block"`
	BrokerConfigs       map[string]string           `json:"broker_configs,omitempty"`
	NodeConfigs         map[int32]map[string]string `json:"node_configs,omitempty"`
}

// Read decodes dir's metadata file; nil (and no error) when there is none.
// A file this reader cannot take whole (bad JSON, an unknown field or
// version, a topic whose name disagrees with its key) is an error: a broker
// must not start on a part of its metadata.
func Read(dir string) (*File, error) {
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading metadata file: %w", err)
	}
	var d onDisk
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decoding metadata file %s: %w", path, err)
	}
	if d.Version != formatVersion {
		return nil, fmt.Errorf("metadata file %s: format version %d, this broker reads %d", path, d.Version, formatVersion)
	}
	if d.ClusterID == "" {
		return nil, fmt.Errorf("metadata file %s has no cluster id", path)
	}
	f := &File{ClusterID: d.ClusterID, Topics: d.Topics, NextProducerID: d.NextProducerIDBlock, BrokerConfigs: map[int32]map[string]string{}}
	if f.Topics == nil {
		f.Topics = map[string]*Topic{}
	}
	for name, t := range f.Topics {
		if t == nil || t.Name != name || len(t.Partitions) == 0 {
			return nil, fmt.Errorf("metadata file %s: topic %q is malformed", path, name)
		}
	}
	if len(d.BrokerConfigs) > 0 {
		f.BrokerConfigs[ClusterDefault] = d.BrokerConfigs
	}
	for node, c := range d.NodeConfigs {
		if node < 0 {
			return nil, fmt.Errorf("metadata file %s: configs of node %d", path, node)
		}
		if len(c) > 0 {
			f.BrokerConfigs[node] = c
		}
	}
	return f, nil
}

// Retire renames dir's metadata file out of the way (FileName +
// RetiredSuffix) once its content is in the Raft log, durably: the rename
// is followed by an fsync of the directory.
func Retire(dir string) error {
	from := filepath.Join(dir, FileName)
	if err := os.Rename(from, from+RetiredSuffix); err != nil {
		return fmt.Errorf("retiring the imported metadata file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("retiring the imported metadata file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("retiring the imported metadata file: syncing %s: %w", dir, err)
	}
	return nil
}
