package txn

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of a __transaction_state partition: Kafka's
// TxnMetadataKey and TxnMetadataValue encodings, so Kafka's tools read the
// topic as they read Kafka's. A nil Value is a tombstone (the id expired).
type Record struct {
	Key   []byte
	Value []byte
}

// txnValueVersion is the TxnMetadataValue version written: v1 (flexible)
// carries the previous producer id, which a KIP-360 retry after an epoch
// exhaustion needs after a failover.
const txnValueVersion = 1

func txnKey(id string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version = 0
	k.TransactionalID = id
	return k.AppendTo(nil)
}

// txnValue encodes a transaction's durable fields.
func txnValue(m *txnMeta) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = txnValueVersion
	v.ProducerID = m.producerID
	v.ProducerEpoch = m.epoch
	v.TimeoutMillis = m.timeoutMs
	v.State = kmsg.TransactionState(m.state)
	v.LastUpdateTimestamp = m.lastUpdate
	v.StartTimestamp = m.startTime
	v.PreviousProducerID = m.lastProducerID
	var topic *kmsg.TxnMetadataValueTopic
	for _, tp := range sortedPartitions(m.partitions) {
		if topic == nil || topic.Topic != tp.Topic {
			v.Topics = append(v.Topics, kmsg.NewTxnMetadataValueTopic())
			topic = &v.Topics[len(v.Topics)-1]
			topic.Topic = tp.Topic
		}
		topic.Partitions = append(topic.Partitions, tp.Partition)
	}
	return v.AppendTo(nil)
}

// decodeRecord reads one record of the log: the transactional id and, for a
// value, the metadata (nil for a tombstone).
func decodeRecord(r Record) (string, *txnMeta, error) {
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(r.Key); err != nil {
		return "", nil, fmt.Errorf("transaction log key: %w", err)
	}
	if k.Version != 0 {
		return "", nil, fmt.Errorf("transaction log key version %d is not known", k.Version)
	}
	if r.Value == nil {
		return k.TransactionalID, nil, nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(r.Value); err != nil {
		return "", nil, fmt.Errorf("transaction log value of %q: %w", k.TransactionalID, err)
	}
	if v.Version < 0 || v.Version > 1 {
		return "", nil, fmt.Errorf("transaction log value of %q: version %d is not known", k.TransactionalID, v.Version)
	}
	st := State(v.State)
	if st < Empty || st > PrepareEpochFence {
		return "", nil, fmt.Errorf("transaction log value of %q: state %d is not known", k.TransactionalID, v.State)
	}
	m := &txnMeta{
		id: k.TransactionalID, producerID: v.ProducerID, lastProducerID: v.PreviousProducerID,
		epoch: v.ProducerEpoch, lastEpoch: -1, timeoutMs: v.TimeoutMillis, state: st,
		partitions: map[TopicPartition]struct{}{}, startTime: v.StartTimestamp, lastUpdate: v.LastUpdateTimestamp,
		pending: noState,
	}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			m.partitions[TopicPartition{t.Topic, p}] = struct{}{}
		}
	}
	return k.TransactionalID, m, nil
}
