package server

// Fetch: v4-16
//
// Behaviour:
//   - Long poll: the response waits until MinBytes of records are
//     available or MaxWaitMillis passes (capped by fetch.max.wait.cap.ms),
//     woken by every move of a high watermark this broker leads; it
//     returns at once on any partition error and when the broker shuts
//     down.
//   - Size limits: PartitionMaxBytes per partition and MaxBytes for the
//     response, counted in whole record batches; the first batch of the
//     first partition with data is returned even if larger (KIP-74), so a
//     consumer never gets stuck behind a big batch.
//   - Reads stop at the high watermark: the end every in-sync replica has
//     (the durable end when the ISR is this broker alone).
//   - Only the partition's leader serves consumers; other brokers answer
//     NOT_LEADER_OR_FOLLOWER so the client refreshes its metadata. A
//     broker whose metadata makes it the leader while its replica manager
//     is still taking the leadership up (opening the log) waits for it
//     within MaxWait instead (awaitLeadershipsUntil). A topic or
//     partition it does not know is looked for once more after catching
//     up with the active controller's metadata, within MaxWait and at most
//     500 ms (catchUpWithController), before UNKNOWN_TOPIC_OR_PARTITION
//     or UNKNOWN_TOPIC_ID.
//     Follower fetches come to the inter-broker listener, where they read
//     everything up to the log end, transactions open or not.
//   - isolation_level read_committed (KIP-98) reads up to the last stable
//     offset (before the first transaction still open, or decided by a
//     marker the high watermark has not passed) and lists the aborted
//     transactions overlapping the records returned, so the consumer drops
//     their records; markers are returned (consumers need them).
//     read_uncommitted reads up to the high watermark. Both get the real
//     last stable offset. The long poll of a read_committed consumer waits
//     for the last stable offset, which moves with the high watermark.
//   - Offsets below the log start or past the log end answer
//     OFFSET_OUT_OF_RANGE; an offset between the high watermark and the
//     log end waits for data.
//   - CurrentLeaderEpoch (v9+) is checked: older = FENCED_LEADER_EPOCH,
//     newer = UNKNOWN_LEADER_EPOCH (KIP-320). LastFetchedEpoch (v12+) is
//     checked against the leader-epoch history and answered with
//     DivergingEpoch when the fetcher's log diverged (KIP-595 style).
//   - Fetch sessions (KIP-227, v7+): a full fetch with epoch 0 creates a
//     session (when the cache has a free slot; otherwise it is answered
//     with session id 0, which tells the client to keep sending full
//     fetches); incremental fetches name only changed partitions and get
//     only partitions with records, errors or moved offsets back. See
//     fetch_sessions.go.
//   - A consumer needs READ on each topic (TOPIC_AUTHORIZATION_FAILED for
//     its partitions, whether the topic exists or not; a topic id this
//     broker does not know is UNKNOWN_TOPIC_ID).
//   - Follower fetches (ReplicaID >= 0) on the client listener need
//     CLUSTER_ACTION (else TOPIC_AUTHORIZATION_FAILED on every partition,
//     as Kafka answers) and are then refused with NOT_LEADER_OR_FOLLOWER:
//     followers fetch on the replication listener.
//
// Version notes:
//   - v4: isolation level, LSO, aborted transactions; v5: log start offset
//   - v7: sessions (KIP-227); v9: CurrentLeaderEpoch (KIP-320)
//   - v11: rack (KIP-392, ignored: no read replicas); v12: flexible,
//     LastFetchedEpoch, DivergingEpoch; v13: topic ids (KIP-516)
//   - v15: ReplicaState replaces ReplicaID.
//   - kafka-go negotiates v2/v5/v10; floor 4 as Kafka 4 (KIP-896).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/internal/fetchwire"
	"github.com/tributary/tributary/broker/storage"
)

var fetchAPI = api{key: 1, min: 4, max: 16,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		// On plain TCP the record batches stay in the segment files and
		// the writer sends them with sendfile; over TLS they are read
		// into memory the connection's writer releases once the response
		// is written (conn.frame).
		rd := fetchRead{rb: c.reads.Buffers("Fetch")}
		if c.sendsFiles() {
			rd.files = fetchFiles{}
		}
		c.readBufs, c.readFiles = rd.rb, rd.files
		resp := s.handleFetch(ctx, s.authFor(c, 1), r.(*kmsg.FetchRequest), fetchQuota{s.quotas, c.quotaUser(), c.clientID}, rd)
		if f := s.afterFetchRead.Load(); f != nil {
			(*f)(c)
		}
		return resp, nil
	}}

// fetchRead says where a Fetch puts the record batches it returns: left in
// their segment files, in files (nil: none are), or read into rb's memory
// (nil: memory of their own).
type fetchRead struct {
	rb    *storage.ReadBuffers
	files fetchFiles
}

// fetchFiles are the record batches of a response left in their segment
// files, by partition, for the connection to send with sendfile: a
// consumer's fetch then costs no memory for its records, however large
// fetch.max.bytes is and however many consumers fetch at once, and no
// copy through user space. A partition's RecordBatches is empty when its
// batches are here.
type fetchFiles map[fetchFileKey][]storage.FileSlice

// fetchFileKey names a partition of a response (by topic name below v13,
// by id from v13 on).
type fetchFileKey struct {
	topic     string
	id        [16]byte
	partition int32
}

func fileKeyOf(t *kmsg.FetchResponseTopic, p int32) fetchFileKey {
	return fetchFileKey{t.Topic, t.TopicID, p}
}

// bytes is the size of a partition's batches: in memory and in files.
func (ff fetchFiles) bytes(t *kmsg.FetchResponseTopic, p *kmsg.FetchResponseTopicPartition) int {
	return len(p.RecordBatches) + storage.SlicesLen(ff[fileKeyOf(t, p.Partition)])
}

// records returns the batches of resp.Topics[t].Partitions[p] in files,
// for fetchwire.EncodeFiles.
func (ff fetchFiles) records(resp *kmsg.FetchResponse) func(t, p int) []fetchwire.FileRecords {
	return func(t, p int) []fetchwire.FileRecords {
		return fetchwire.FileRecordsOf(ff[fileKeyOf(&resp.Topics[t], resp.Topics[t].Partitions[p].Partition)])
	}
}

// handleFetch answers a consumer's Fetch. The records of the response are
// where rd says, valid until rd.rb.Release.
func (s *Server) handleFetch(ctx context.Context, az reqAuth, req *kmsg.FetchRequest, fq fetchQuota, rd fetchRead) *kmsg.FetchResponse {
	replicaID := req.ReplicaID
	if req.Version >= 15 {
		replicaID = req.ReplicaState.ID
	}
	if replicaID >= 0 {
		// A follower needs CLUSTER_ACTION; Kafka refuses one without it
		// partition by partition.
		if !az.cluster(ctx, kmsg.ACLOperationClusterAction) {
			return s.fetchAllErrors(req, kerr.TopicAuthorizationFailed.Code)
		}
		s.log.Warn("refusing follower fetch: replication is not available on this broker", "replica_id", replicaID)
		return s.fetchAllErrors(req, kerr.NotLeaderForPartition.Code)
	}

	// Fetch sessions (v7+): an incremental request is served as the
	// session's whole partition list, and its response filtered to what
	// changed.
	var (
		sess        *fetchSession
		incremental bool
	)
	if req.Version >= 7 {
		orig := req
		var code int16
		req, sess, incremental, code = s.beginFetchSession(orig)
		if code != 0 {
			resp := orig.ResponseKind().(*kmsg.FetchResponse)
			resp.ErrorCode = code
			return resp
		}
		if sess != nil {
			defer sess.mu.Unlock()
		}
	}
	// No response larger than the client's consumer_byte_rate lets
	// through in a quota window: it would never be sent.
	if most, ok := fq.maxBytes(); ok && int64(req.MaxBytes) > most {
		capped := *req
		capped.MaxBytes = int32(max(most, 1))
		req = &capped
	}
	finish := func(resp *kmsg.FetchResponse) *kmsg.FetchResponse {
		if sess != nil && incremental {
			sess.filter(req.Version, resp, rd.files)
		}
		if d, sent := fq.record(resp, rd.files); !sent {
			// Over consumer_byte_rate: Kafka answers with the throttle
			// time and no data, and counts none of it against the
			// quota; the client fetches the same offsets again once
			// the throttle has passed.
			resp = req.ResponseKind().(*kmsg.FetchResponse)
			resp.ThrottleMillis = int32(min(d.Milliseconds(), 1<<31-1))
		}
		if sess == nil {
			return resp
		}
		sess.sent(req.Version, resp, rd.files, time.Now())
		resp.SessionID = sess.id
		return resp
	}

	// The session's partitions are known now: READ on each topic, asked
	// once for the whole long poll.
	denied := az.denied(ctx, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, s.fetchTopicNames(req))

	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if limit := s.Config().FetchMaxWaitCap; wait > limit {
		wait = limit
	}
	deadline := time.Now().Add(wait)
	var timer *time.Timer
	awaited, caughtUp := false, false
	for {
		// Take the wake-up channel before reading, so an append that
		// lands between the read and the wait is not missed.
		woken := s.data.wait()
		resp, bytes, stop, takingUp, unknown := s.fetchOnce(req, denied, rd)
		if unknown && !caughtUp && time.Now().Before(deadline) && ctx.Err() == nil {
			// A topic or partition this broker does not know may have
			// been created at the controller and not reached this
			// broker yet (a consumer that learnt of it from another
			// broker): catch up once, within the fetch's own wait,
			// instead of answering UNKNOWN_TOPIC_OR_PARTITION, after
			// which franz-go waits for a metadata refresh.
			caughtUp = true
			rd.rb.Release()
			clear(rd.files)
			s.catchUpWithController(ctx, min(s.unknownTopicBound(), time.Until(deadline)), func(st *metadata.State) bool {
				return s.fetchViewLacks(req, st)
			})
			continue
		}
		if takingUp && !awaited && time.Now().Before(deadline) && ctx.Err() == nil {
			// A partition this broker's metadata makes it lead is
			// still being taken up by its replica manager: wait for
			// it (once, within the fetch's own wait) and read again,
			// instead of answering NOT_LEADER_OR_FOLLOWER.
			awaited = true
			rd.rb.Release()
			clear(rd.files)
			s.awaitLeadershipsUntil(ctx, deadline)
			continue
		}
		if stop || bytes >= int(req.MinBytes) || !time.Now().Before(deadline) || ctx.Err() != nil {
			return s.countFetched(finish(resp), rd.files)
		}
		// Too little to answer yet: this read is dropped, its memory
		// serves the next one.
		rd.rb.Release()
		clear(rd.files)
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		// woken closes when a high watermark moves (an append on a
		// partition whose ISR is this broker alone, a follower fetch
		// otherwise), a topic is deleted, or shutdown starts.
		parkedAt := time.Now()
		select {
		case <-woken:
		case <-timer.C:
		case <-ctx.Done():
		}
		addParked(ctx, time.Since(parkedAt))
	}
}

// countFetched counts the records of the response that is sent (not the
// intermediate reads of a long poll) for the metrics.
func (s *Server) countFetched(resp *kmsg.FetchResponse, files fetchFiles) *kmsg.FetchResponse {
	for i := range resp.Topics {
		t := &resp.Topics[i]
		name := t.Topic
		if name == "" { // v13+: topics by id
			tp, ok := s.lookupTopicID(t.TopicID)
			if !ok {
				continue
			}
			name = tp.name
		}
		for j := range t.Partitions {
			if n := files.bytes(t, &t.Partitions[j]); n > 0 {
				s.metrics.RecordFetch(name, n)
			}
		}
	}
	return resp
}

// fetchTopicNames names the topics of a fetch: by name, or (v13+) by the
// name of the topic each id is (unknown ids answer UNKNOWN_TOPIC_ID).
func (s *Server) fetchTopicNames(req *kmsg.FetchRequest) []string {
	names := make([]string, 0, len(req.Topics))
	for _, rt := range req.Topics {
		if req.Version < 13 {
			names = append(names, rt.Topic)
		} else if t, ok := s.lookupTopicID(rt.TopicID); ok {
			names = append(names, t.name)
		}
	}
	return names
}

// fetchOnce reads every requested partition once; topics in denied answer
// TOPIC_AUTHORIZATION_FAILED, whether they exist or not. stop is true when
// the response must go out now (an error in some partition); takingUp is
// true when some partition answered NOT_LEADER_OR_FOLLOWER although this
// broker's metadata makes it the leader: its replica manager has not taken
// the leadership up yet (awaitLeadershipsUntil); unknown is true when some
// partition the client may read answered UNKNOWN_TOPIC_OR_PARTITION or
// UNKNOWN_TOPIC_ID (catchUpWithController).
func (s *Server) fetchOnce(req *kmsg.FetchRequest, denied map[string]bool, rd fetchRead) (resp *kmsg.FetchResponse, bytes int, stop, takingUp, unknown bool) {
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	remaining := int(req.MaxBytes)
	if req.MaxBytes <= 0 {
		remaining = int(^uint32(0) >> 1)
	}
	resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(req.Topics))
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var (
			t       *topic
			topicOK bool
		)
		if req.Version >= 13 {
			t, topicOK = s.lookupTopicID(rt.TopicID)
		} else {
			t, topicOK = s.lookupTopic(rt.Topic)
		}
		refused := denied != nil && (topicOK && denied[t.name] || req.Version < 13 && denied[rt.Topic])
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			// Empty, not null: librdkafka rejects a null record set
			// ("invalid MessageSetSize -1"), and Kafka never sends one.
			sp.RecordBatches = []byte{}
			var p *partition
			ok := topicOK
			if ok {
				p, ok = t.partition(rp.Partition)
			}
			switch {
			case refused:
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			case !ok && req.Version >= 13:
				sp.ErrorCode = kerr.UnknownTopicID.Code
				unknown = true
			case !ok:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				unknown = true
			default:
				n := s.fetchPartition(req, fileKeyOf(&st, rp.Partition), rp, p, &sp, remaining, bytes > 0, rd)
				bytes += n
				remaining -= n
				if sp.ErrorCode == kerr.NotLeaderForPartition.Code && p.leader == s.nodeID {
					takingUp = true
				}
			}
			if sp.ErrorCode != 0 {
				stop = true
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, bytes, stop, takingUp, unknown
}

// fetchViewLacks reports whether st holds a topic req names (by id from
// v13, else by name) that the topic view lacks, or with more partitions
// than the view has.
func (s *Server) fetchViewLacks(req *kmsg.FetchRequest, st *metadata.State) bool {
	for _, rt := range req.Topics {
		var (
			mt     *metadata.Topic
			inView *topic
			ok     bool
		)
		if req.Version >= 13 {
			mt, ok = st.TopicByID(metadata.TopicID(rt.TopicID))
			inView, _ = s.lookupTopicID(rt.TopicID)
		} else {
			mt, ok = st.Topic(rt.Topic)
			inView, _ = s.lookupTopic(rt.Topic)
		}
		if ok && (inView == nil || len(inView.partitions) < mt.NumPartitions()) {
			return true
		}
	}
	return false
}

// awaitLeadershipsUntil waits until this broker's replica manager has
// caught up with the controller's metadata, at most until deadline (the
// fetch's own MaxWait, so a fetch is never held longer than it asked).
//
// The replica manager takes up a leadership after the metadata reached
// this broker's topic view: it first opens (for a new partition, creates
// and fsyncs) the log. A consumer that fetched in that window, typically
// from a fresh topic or from the new leader after a failover, was answered
// NOT_LEADER_OR_FOLLOWER and backed off for a metadata refresh (franz-go:
// up to its 5 s metadata.min.age), as a producer was before
// awaitLeadership.
func (s *Server) awaitLeadershipsUntil(ctx context.Context, deadline time.Time) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	_ = s.node.WaitCaughtUp(ctx) // past the deadline, the read answers what it finds
}

// fetchPartition fills one partition of the response and returns the bytes
// of records it added.
func (s *Server) fetchPartition(req *kmsg.FetchRequest, key fetchFileKey, rp kmsg.FetchRequestTopicPartition, p *partition, sp *kmsg.FetchResponseTopicPartition, remaining int, haveData bool, rd fetchRead) int {
	log, _, code := s.servingLog(p, rp.CurrentLeaderEpoch, req.Version >= 9)
	if code != 0 {
		sp.ErrorCode = code
		return 0
	}
	hw := log.HighWatermark()
	// Read after the high watermark, the last stable offset may be past
	// it; capped, it is one the log had at some point of this read.
	lso := min(log.LastStableOffset(), hw)
	logStart := log.LogStartOffset()
	sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = hw, lso, logStart
	isolation, stable := storage.ReadUncommitted, hw
	if req.IsolationLevel == 1 {
		isolation, stable = storage.ReadCommitted, lso
	}

	if req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
		epoch, end := log.EndOffsetForLeaderEpoch(rp.LastFetchedEpoch)
		if epoch != rp.LastFetchedEpoch || end < rp.FetchOffset {
			sp.DivergingEpoch.Epoch, sp.DivergingEpoch.EndOffset = epoch, end
			return 0
		}
	}
	if rp.FetchOffset < logStart || rp.FetchOffset > log.LogEndOffset() {
		sp.ErrorCode = kerr.OffsetOutOfRange.Code
		return 0
	}
	if rp.FetchOffset >= stable {
		return 0 // nothing committed (or stable) yet: wait
	}
	limit := min(int(rp.PartitionMaxBytes), remaining)
	if limit <= 0 && haveData {
		return 0
	}
	if room, bounded := rd.rb.Room(); bounded && room <= 0 && haveData && rd.files == nil {
		// The broker's fetch memory is spent: the response goes with
		// what it has (its first batch at least; storage gives the
		// reads of a response that has nothing yet that batch past the
		// bound, so that every consumer progresses).
		rd.rb.MarkCut()
		return 0
	}
	readFailed := func(err error) int {
		sp.ErrorCode = storageErrorCode(err)
		if sp.ErrorCode != kerr.OffsetOutOfRange.Code {
			s.log.Error("read failed", "topic", p.topic, "partition", p.index, "offset", rp.FetchOffset, "err", err)
		}
		return 0
	}
	// A partition named twice in one request (possible without fetch
	// sessions) has its second batches read: files holds one entry a
	// partition.
	if _, twice := rd.files[key]; rd.files != nil && !twice {
		res, err := log.ReadIsolatedSlices(rp.FetchOffset, int32(max(limit, 1)), isolation)
		if err != nil {
			return readFailed(err)
		}
		n := res.Len()
		if n == 0 || haveData && n > limit {
			return 0
		}
		rd.files[key] = res.Slices
		sp.HighWatermark, sp.LastStableOffset = res.HighWatermark, res.LastStableOffset
		sp.AbortedTransactions = abortedForResponse(res.AbortedTransactions)
		return n
	}
	// Only the first data of the response may pass the limits (KIP-74):
	// storage returns its first batch whole. A later partition's read
	// returns only batches within what is left, and reads (and charges
	// to the fetch memory bound) nothing when its first batch does not
	// fit: read to be dropped, it would hold memory until the response is
	// written, and could cut the partitions after it short.
	read := log.ReadIsolatedInto
	if haveData {
		read = log.ReadIsolatedIntoWithin
	}
	res, err := read(rp.FetchOffset, int32(max(limit, 1)), isolation, rd.rb)
	data := res.Records
	if err != nil {
		return readFailed(err)
	}
	if data != nil {
		sp.RecordBatches = data
		// The watermarks the read was bounded by (they may have moved
		// since the first look).
		sp.HighWatermark, sp.LastStableOffset = res.HighWatermark, res.LastStableOffset
	}
	sp.AbortedTransactions = abortedForResponse(res.AbortedTransactions)
	return len(data)
}

// abortedForResponse lists aborted transactions as a Fetch response does
// (nil for none).
func abortedForResponse(aborted []storage.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	var out []kmsg.FetchResponseTopicPartitionAbortedTransaction
	for _, a := range aborted {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		out = append(out, at)
	}
	return out
}

// fetchAllErrors answers every partition with one error code.
func (s *Server) fetchAllErrors(req *kmsg.FetchRequest, code int16) *kmsg.FetchResponse {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.RecordBatches = []byte{}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
