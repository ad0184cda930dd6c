// Package storage is the broker's durable log: for each topic partition, an
// append-only sequence of Kafka RecordBatch v2 bytes kept exactly as
// producers sent them (with broker-assigned offsets) in segment files, with
// sparse offset and time indexes, CRC-checked crash recovery from the last
// checkpoint, group-commit fsync, retention, idempotent-producer state,
// the partition side of transactions (markers, last stable offset,
// aborted-transaction index) and leader epochs. The on-disk format and the
// durability guarantee are in docs/broker-disk-format.md.
//
// API overview:
//
//	st, err := storage.Open(dir, storage.Options{FlushPolicy: storage.FlushGroup})
//	defer st.Close()                      // checkpoints, writes the clean-shutdown marker
//	st.StartCleaner(ctx)                  // retention and compaction in the background
//	p, err := st.CreatePartition("orders", 0, storage.TopicConfig{}) // idempotent; zero = Kafka defaults
//	p, ok := st.Partition("orders", 0)
//	st.DeleteTopic("orders")              // renames; closes and removes the files after file.delete.delay.ms
//
//	res, err := p.Append(ctx, recordsField, storage.AppendOptions{LeaderEpoch: 0})
//	// res.BaseOffset/LastOffset/LogAppendTime/LogStartOffset, res.Duplicate for resent idempotent batches.
//	// Append owns and rewrites recordsField (baseOffset, partitionLeaderEpoch, LogAppendTime).
//	data, err := p.Read(fetchOffset, maxBytes, p.HighWatermark()) // whole batches, at least one
//	<-p.Wait(ctx, fetchOffset)            // closed when the high watermark moves (Fetch long-poll)
//	p.LogStartOffset(), p.LogEndOffset(), p.HighWatermark(), p.SetHighWatermark(hw)
//	p.OffsetForTimestamp(ts)              // ListOffsets: ts>=0, -1 latest, -2 earliest
//	p.DeleteRecordsBefore(off)            // DeleteRecords; -1 = high watermark
//	p.EndOffsetForLeaderEpoch(epoch)      // OffsetForLeaderEpoch
//	p.TruncateTo(off), p.SetConfig(cfg), p.Size(), p.Config(), p.LatestEpoch()
//
//	// Replication (follower side):
//	p.AppendAsFollower(ctx, leaderBatches) // leader's bytes kept as they are
//	p.TruncateFullyAndStartAt(off)         // leader's log start passed our end
//
//	// Transactions (partition side):
//	g := p.StartTxnVerification(pid, epoch, seq) // 0: a transaction is ongoing here
//	// ... coordinator confirms the partition is in the transaction ...
//	p.Append(ctx, batches, storage.AppendOptions{LeaderEpoch: e, VerificationGuard: g})
//	p.AppendTxnMarker(ctx, storage.TxnMarker{ProducerID: pid, ProducerEpoch: epoch,
//		CoordinatorEpoch: ce, Commit: true}, storage.AppendOptions{LeaderEpoch: e}) // WriteTxnMarkers
//	r, err := p.ReadIsolated(off, maxBytes, storage.ReadCommitted) // Fetch: records, HW, LSO, aborted list
//	<-p.WaitIsolated(ctx, off, storage.ReadCommitted)
//	p.LastStableOffset(), p.ListOffset(ts, storage.ReadCommitted)  // ListOffsets with isolation
//	p.Producers(), p.OngoingTransactions()                         // DescribeProducers, hanging transactions
//
// Error mapping to Kafka codes (test with errors.Is):
//
//	ErrCorruptMessage           CORRUPT_MESSAGE (2)
//	ErrRecordTooLarge           MESSAGE_TOO_LARGE (10)
//	ErrInvalidRecord            INVALID_RECORD (87)
//	ErrUnsupportedMessageFormat UNSUPPORTED_FOR_MESSAGE_FORMAT (43)
//	ErrOutOfOrderSequence       OUT_OF_ORDER_SEQUENCE_NUMBER (45)
//	ErrInvalidProducerEpoch     INVALID_PRODUCER_EPOCH (47), for data and markers
//	ErrInvalidTxnState          INVALID_TXN_STATE (48)
//	ErrTransactionCoordinatorFenced TRANSACTION_COORDINATOR_FENCED (52)
//	ErrUnknownProducerID        UNKNOWN_PRODUCER_ID (59)
//	ErrOffsetOutOfRange         OFFSET_OUT_OF_RANGE (1)
//	ErrStorage                  KAFKA_STORAGE_ERROR (56)
//	ErrUnknownTopicOrPartition  UNKNOWN_TOPIC_OR_PARTITION (3)
//	ErrClosed                   NOT_LEADER_OR_FOLLOWER (6) while shutting down
//
// Notes for callers: a Duplicate result wrote nothing and must be answered
// with the returned offsets and no error (Kafka 2.x+ behaviour). A
// transactional batch that starts a transaction on the partition needs the
// guard of a verification the coordinator confirmed (KIP-890), else
// ErrInvalidTxnState. Storage never returns PRODUCER_FENCED: a stale epoch
// on produce or on a marker is ErrInvalidProducerEpoch, as Kafka 2.7+
// answers Produce; PRODUCER_FENCED is the transaction coordinator's answer.
// Under the group flush policy the high watermark is the fsynced end of the
// log, so pass p.HighWatermark() as Read's upTo and consumers never see data
// a crash could take back.
//
// The record batch format itself (parsing, CRC, rewriting, record
// iteration, compression) is in the recordbatch sub-package.
package storage
