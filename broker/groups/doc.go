// Package groups is the classic consumer-group coordinator of the Tributary
// broker: Kafka's JoinGroup/SyncGroup/Heartbeat/LeaveGroup state machine,
// committed offsets, and the group admin APIs, with everything written to a
// durable, compacted offsets log (the internal topic __consumer_offsets) and
// rebuilt from it at start-up.
//
// # Wiring (for the protocol server)
//
// At start-up, after the storage is open:
//
//	offsetsLog, err := groups.OpenPartitionLog(store)   // __consumer_offsets partition 0, with groups.OffsetsTopicConfig()
//	                                                     // (compact, 100 MiB segments, 16 MiB batches) applied
//	cfg := groups.DefaultConfig()                        // Kafka defaults; override from broker properties:
//	cfg.InitialRebalanceDelay = ...                      //   group.initial.rebalance.delay.ms (default 3 s)
//	cfg.MinSessionTimeout, cfg.MaxSessionTimeout = ...   //   group.min/max.session.timeout.ms (6 s / 30 min)
//	cfg.MaxGroupSize = ...                               //   group.max.size (0 = unlimited)
//	cfg.OffsetsRetention = ...                           //   offsets.retention.minutes (7 days)
//	cfg.OffsetsRetentionCheckInterval = ...              //   offsets.retention.check.interval.ms (10 min)
//	cfg.OffsetMetadataMaxBytes = ...                     //   offset.metadata.max.bytes (4096)
//	cfg.PartitionExists = func(topic string, p int32) bool { ... }  // optional: UNKNOWN_TOPIC_OR_PARTITION on commit
//	cfg.Logger = logger
//	coord, err := groups.New(ctx, offsetsLog, cfg)       // replays the log; returns when ready
//	defer coord.Close()                                  // before closing the store
//
// If the server records __consumer_offsets in its own topic metadata (so
// Metadata lists it, IsInternal=true), it should record the settings of
// groups.OffsetsTopicConfig(), which OpenPartitionLog applies to the
// partition. The topic must stay compacted and must not accept Produce,
// DeleteRecords or config changes from clients, or committed offsets could be
// lost or forged.
//
// Request handlers: pass the decoded kmsg request (its Version set) and send
// back the returned response, whose Version is already the request's.
// Versions this package serves (advertise these in ApiVersions):
//
//	11 JoinGroup      v0-v9  coord.JoinGroup(ctx, groups.Client{ID: clientID, Host: "/" + remoteIP}, req)   blocks
//	14 SyncGroup      v0-v5  coord.SyncGroup(ctx, req)                                                        blocks
//	12 Heartbeat      v0-v4  coord.Heartbeat(req)
//	13 LeaveGroup     v0-v5  coord.LeaveGroup(req)
//	 8 OffsetCommit   v2-v9  coord.OffsetCommit(ctx, req)   (v10 names topics by id: not served)
//	 9 OffsetFetch    v1-v9  coord.OffsetFetch(req)         (v10 names topics by id: not served)
//	16 ListGroups     v0-v5  coord.ListGroups(req)
//	15 DescribeGroups v0-v6  coord.DescribeGroups(req)      (fill AuthorizedOperations yourself when asked)
//	42 DeleteGroups   v0-v2  coord.DeleteGroups(ctx, req)
//	47 OffsetDelete   v0     coord.OffsetDelete(ctx, req)
//	28 TxnOffsetCommit v0-v4 coord.TxnOffsetCommit(ctx, req)   (KIP-447 group metadata checked from v3)
//
// Transactional offsets: TxnOffsetCommit writes through the offsets log's
// AppendTxn, which checks with the transaction coordinator that the offsets
// partition is in the producer's transaction (KIP-890) and writes a
// transactional batch. The offsets stay pending (invisible to OffsetFetch,
// UNSTABLE_OFFSET_COMMIT with require_stable) until the server, having
// written the transaction's marker to the offsets partition
// (WriteTxnMarkers), calls coord.CompleteTxn(producerID, commit). Replay
// finds the markers in the log and does the same.
//
// JoinGroup and SyncGroup block until the group's rebalance moves on: up to
// the members' rebalance timeout (5 minutes by default in Java clients, plus
// the initial rebalance delay), so the server must not put a shorter request
// timeout on them; Kafka processes one request per connection at a time, so
// blocking the connection's request loop is the expected behaviour. ctx should
// end when the connection closes or the broker stops; the call then returns
// COORDINATOR_NOT_AVAILABLE.
//
// FindCoordinator (key 10, v0-v6, key type 0 = group) is the server's: on a
// single broker, answer this broker's node id, host and port for every group.
// Group ACLs (READ on the group) are checked by the server before calling.
//
// DeleteTopics should call coord.DeleteTopicOffsets(ctx, topic) after the
// topic is gone, as Kafka drops committed offsets of deleted topics.
//
// Metadata for the internal topic: list __consumer_offsets with
// IsInternal=true (Kafka does) when clients ask for all topics.
//
// For metrics (consumer lag) and admin views: coord.Groups() summarises every
// group; coord.CommittedOffsets(group) returns its committed offsets;
// coord.GroupLag(group, endFn) measures lag per partition and per topic
// (MSK's SumOffsetLag/MaxOffsetLag) given each partition's high watermark;
// coord.Stats() counts rebalances, expired members, committed and expired
// offsets.
//
// Errors: the methods never return Go errors; every failure is a Kafka error
// code in the response, so the connection stays open. A failed write to the
// offsets log answers COORDINATOR_NOT_AVAILABLE (retriable),
// INVALID_COMMIT_OFFSET_SIZE (commit larger than a batch) or NOT_COORDINATOR
// (shutting down).
//
// # The offsets log
//
// Records use Kafka's __consumer_offsets formats (see records.go): offset
// commits keyed by group+topic+partition, group metadata keyed by group,
// tombstones (nil values) for deleted or expired offsets and deleted groups,
// so compaction keeps the log bounded by the live state. Group metadata is
// written when a generation's assignment is complete and when a group becomes
// empty, so members survive a broker restart without a rebalance if they
// heartbeat within their session timeout.
//
// # Concurrency
//
// Each group has its own mutex; timers (session expiry, rebalance and sync
// timeouts, initial delay) run with time.AfterFunc and take the group's mutex.
// The coordinator's map lock may be taken while a group's lock is held (to
// remove a dead group), never the other way round. Writes to the offsets log
// happen under the group's lock, so one group's records reach the log in
// the order its state changed.
package groups
