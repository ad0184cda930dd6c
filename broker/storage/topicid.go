package storage

import (
	"fmt"

	"github.com/tributary/tributary/broker/internal/topicid"
)

// TopicID is the id of the topic a partition's log was created for: the
// 16-byte topic id of the cluster metadata (KIP-516). The zero value is
// "unknown": a log created without one, or before ids were stored.
type TopicID = topicid.ID

// TopicID is the id of the topic the log belongs to, zero when unknown
// (see partitionMeta).
func (p *Partition) TopicID() TopicID {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.topicID
}

// ClaimTopicID records id (in partition.metadata) as the log's topic id
// when it has none yet, and refuses a log that belongs to another topic
// of the same name with ErrTopicIDMismatch. A zero id claims nothing. The
// caller must know id is the current topic of the name: an unknown id is
// taken as this one's for good.
func (p *Partition) ClaimTopicID(id TopicID) error {
	if id.IsZero() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.topicID == id:
		return nil
	case !p.topicID.IsZero():
		return fmt.Errorf("%w: %s holds topic id %s, not %s", ErrTopicIDMismatch, p.dir, p.topicID, id)
	case p.closed:
		return ErrClosed
	}
	// Written before it is believed: a failed write leaves the id
	// unknown, to be claimed again at the next open.
	if err := writePartitionMeta(p.dir, p.topic, p.partition, id, p.cfg); err != nil {
		return fmt.Errorf("%w: recording the topic id of %s: %w", ErrStorage, p.dir, err)
	}
	p.topicID = id
	return nil
}
