package server

// A data directory written by a broker that kept its metadata in a file
// (tributary-metadata.json: a single broker before every broker ran the Raft
// metadata quorum) comes up with its topics, configs and producer ids in the
// Raft log. Its partition logs, __consumer_offsets included, are the same
// format as ever and stay where they are: once the import names them, the
// replica manager leads them and the group coordinator loads the committed
// offsets from the offsets partition. The file is imported once and then
// renamed out of the way; a crash between the two imports it again, which
// changes nothing (see metadata.ImportFileMetadata).

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/server/metastore"
)

// readFileMetadata reads the data directory's metadata file, if any, and
// checks that it belongs to the configured cluster.
func readFileMetadata(cfg *config.Config) (*metastore.File, error) {
	f, err := metastore.Read(cfg.DataDir)
	if err != nil || f == nil {
		return nil, err
	}
	if cfg.ClusterID != "" && cfg.ClusterID != f.ClusterID {
		return nil, fmt.Errorf("data directory %s belongs to cluster %q, configured cluster.id is %q", cfg.DataDir, f.ClusterID, cfg.ClusterID)
	}
	return f, nil
}

// importFileMetadata writes the file's metadata into the Raft log, as this
// broker's own (it was the only one), then retires the file.
func (s *Server) importFileMetadata(ctx context.Context, f *metastore.File) error {
	if id := s.node.Controller.State().ClusterID; id != f.ClusterID {
		return fmt.Errorf("the metadata file in %s belongs to cluster %q, the Raft metadata to %q", s.dataDir, f.ClusterID, id)
	}
	imp := metadata.ImportFileMetadata{NodeID: s.nodeID, NextProducerID: f.NextProducerID, BrokerConfigs: map[int32]map[string]string{}}
	for node, c := range f.BrokerConfigs {
		if node == metastore.ClusterDefault {
			node = metadata.ClusterDefault
		}
		imp.BrokerConfigs[node] = c
	}
	for _, name := range slices.Sorted(maps.Keys(f.Topics)) {
		t := f.Topics[name]
		it := metadata.ImportedTopic{Name: name, ID: metadata.TopicID(t.ID), Configs: t.Configs}
		for _, p := range t.Partitions {
			it.LeaderEpochs = append(it.LeaderEpochs, p.LeaderEpoch)
		}
		imp.Topics = append(imp.Topics, it)
	}
	ictx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	added, err := s.node.Controller.ImportFileMetadata(ictx, imp)
	if err != nil {
		return fmt.Errorf("importing %s into the Raft metadata (the file is kept; fix the cause and start again): %w", metastore.FileName, err)
	}
	// The import must be applied here before the file goes.
	if err := s.waitState(ictx, func(st *metadata.State) bool {
		for _, t := range imp.Topics {
			if mt, ok := st.Topic(t.Name); !ok || mt.ID != t.ID {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	if err := metastore.Retire(s.dataDir); err != nil {
		return err
	}
	s.log.Info("imported the metadata file into the Raft metadata", "file", metastore.FileName, "topics", len(imp.Topics), "new_topics", added,
		"retired_as", metastore.FileName+metastore.RetiredSuffix)
	return nil
}
