package server

// Produce: v0-11 advertised, v3-11 served
//
// Behaviour:
//   - v0-2 carry the old message formats, which Kafka 4 removed (KIP-896);
//     they are advertised only because librdkafka disables compression
//     when Produce does not start at v0 (KAFKA-18659) and answered with
//     UNSUPPORTED_VERSION on every partition, as Kafka 4 does.
//   - The records of each partition go to storage as sent (any codec)
//     when the topic's compression.type is producer or already the
//     batch's codec; otherwise the leader re-compresses the batch in the
//     topic's codec first (uncompressed: none), keeping its header fields
//     (Kafka's LogValidator; CORRUPT_MESSAGE when its records do not
//     inflate). Storage checks sizes against
//     max.message.bytes, the CRC-32C, magic 2, and idempotent sequences,
//     and assigns offsets. A duplicate idempotent batch answers with its
//     original offsets.
//   - The partitions of one request are appended concurrently, so they
//     share fsyncs (group commit); the response is sent when every
//     partition is durable per log.flush.policy.
//   - acks: 0 (no response at all; an error closes the connection so the
//     producer notices, as Kafka does), 1 and -1 (all).
//   - Each partition goes through its leader in the replica manager: only
//     the leader appends (else NOT_LEADER_OR_FOLLOWER), stamping its leader
//     epoch; acks=all is refused with NOT_ENOUGH_REPLICAS while the ISR is
//     below min.insync.replicas (so a single broker, an ISR of one, refuses
//     it when min.insync.replicas > 1), and answered when the high
//     watermark passes the batch (REQUEST_TIMED_OUT after the request's
//     timeout, NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank
//     meanwhile).
//   - Consecutive requests of a connection to the same partition are
//     appended as one (one write, one fsync), each then answered when its
//     own acks are met.
//   - WRITE on each topic is needed (TOPIC_AUTHORIZATION_FAILED for its
//     partitions, whether the topic exists or not), and WRITE on the
//     transactional id for transactional records
//     (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition). With
//     acks=0 a refusal closes the connection like any other error, as in
//     Kafka: there is no response to carry it.
//   - Transactional produce (KIP-98) with KIP-890 part 1 verification: a
//     transactional batch that would open its producer's transaction on a
//     partition is appended only once the transaction's coordinator
//     confirmed the partition is in the transaction (see txn_produce.go),
//     so a late or stray produce cannot leave a transaction hanging:
//     INVALID_TXN_STATE when it is not, INVALID_PRODUCER_EPOCH for a fenced
//     producer, NOT_ENOUGH_REPLICAS (retriable) while the coordinator
//     cannot answer.
//   - A full or failing disk answers KAFKA_STORAGE_ERROR.
//
// Version notes:
//   - v3: RecordBatch v2 only, TransactionalID; v5: LogStartOffset
//   - v8: RecordErrors, ErrorMessage (KIP-467); v9: flexible
//   - v10/11: CurrentLeader tags (KIP-951), left empty: we are the leader.
//   - v12 (KIP-890 transactions) and v13 (topic ids) are not served yet.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/replica"
	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/storage/recordbatch"
)

var produceAPI = api{key: 0, min: 0, max: 11,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleProduce(ctx, s.authFor(c, 0), r.(*kmsg.ProduceRequest))
	}}

// produceFloor is the oldest Produce version served (KIP-896).
const produceFloor = 3

// produceJob is one partition of one Produce request.
type produceJob struct {
	p      *partition
	out    *kmsg.ProduceResponseTopicPartition
	record []byte
	// sent is the size of the record batches as the client sent them,
	// what BytesInPerSec counts: Kafka marks bytesInRate with the
	// request's records, not with what LogValidator re-compressed them
	// into for the topic's compression.type.
	sent      int
	acks      int16
	timeoutMs int32
	// guard is the verification of a transactional batch that opens its
	// transaction here (KIP-890), 0 when none is needed.
	guard storage.VerificationGuard
}

// handleProduce handles one request outside a connection's pipeline (see
// answers in conn.go; acks=0 requests, for one): a group of one, answered
// once its appends are durable and, for acks=all, replicated.
func (s *Server) handleProduce(ctx context.Context, az reqAuth, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resps := s.handleProduceGroup(ctx, az, []*kmsg.ProduceRequest{req})()
	return finishProduce(req, resps[0].(*kmsg.ProduceResponse))
}

// prepareProduce checks a request and returns its response skeleton (with
// every error found so far) and the appends to do.
func (s *Server) prepareProduce(ctx context.Context, az reqAuth, req *kmsg.ProduceRequest) (*kmsg.ProduceResponse, []produceJob) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var (
		jobs     []produceJob
		topLevel int16 // error for every partition
		message  string
		denied   map[string]bool // topics the principal may not write
	)
	switch {
	case req.Version < produceFloor:
		topLevel = kerr.UnsupportedVersion.Code
		message = fmt.Sprintf("Produce v%d (message format v0/v1) is not supported; v%d+ is", req.Version, produceFloor)
	case req.TransactionID != nil && !az.allowed(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionID):
		topLevel = kerr.TransactionalIDAuthorizationFailed.Code
		message = "not authorized to write with transactional id " + *req.TransactionID
	case req.TransactionID == nil && transactionalRecords(req):
		// Kafka's rule: transactional records need WRITE on a
		// transactional id, so a request that names none is refused.
		// Without it any principal that may write the topic appended
		// into another producer's open transaction with that
		// producer's id and epoch.
		topLevel = kerr.TransactionalIDAuthorizationFailed.Code
		message = "transactional records need the request's transactional id"
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		topLevel = kerr.InvalidRequiredAcks.Code
		message = fmt.Sprintf("acks=%d: must be -1, 0 or 1", req.Acks)
	default:
		names := produceTopics(req)
		denied = az.denied(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, names)
		s.awaitUnknownTopics(ctx, names, denied)
	}

	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		t, topicOK := s.lookupTopic(rt.Topic)
		for j, rp := range rt.Partitions {
			sp := &st.Partitions[j]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			if topLevel != 0 {
				sp.ErrorCode = topLevel
				sp.ErrorMessage = &message
				continue
			}
			if denied[rt.Topic] {
				// Before the existence check: a principal that may not
				// write a topic learns nothing of it.
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				continue
			}
			var p *partition
			ok := topicOK
			if ok {
				p, ok = t.partition(rp.Partition)
			}
			if !ok {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			if isInternalTopic(rt.Topic) {
				// The offsets log belongs to the group coordinator.
				sp.ErrorCode = kerr.InvalidTopicException.Code
				msg := "cannot produce to internal topic " + rt.Topic
				sp.ErrorMessage = &msg
				continue
			}
			jobs = append(jobs, produceJob{p: p, out: sp, record: rp.Records, sent: len(rp.Records), acks: req.Acks, timeoutMs: req.TimeoutMillis})
		}
	}
	return resp, jobs
}

// produceTopics lists the topic of each entry of a request.
func produceTopics(req *kmsg.ProduceRequest) []string {
	names := make([]string, len(req.Topics))
	for i, t := range req.Topics {
		names[i] = t.Topic
	}
	return names
}

// finishProduce returns the response to send: none for acks=0, unless an
// append failed, which closes the connection so the producer notices, as
// Kafka does.
func finishProduce(req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) (kmsg.Response, error) {
	if req.Acks != 0 {
		return resp, nil
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("acks=0 produce to %s[%d] failed with %s; closing so the producer notices", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	return nil, nil
}

// appendProduceJobs writes the jobs of one or more consecutive requests
// of a connection (groups[i] are request i's jobs) and returns wait, which
// waits until they are durable per the flush policy and the acks=all ones
// replicated, and sets the errors of those that are not. Partitions run
// in parallel. The connection writes its next requests while these are
// fsynced and copied by the ISR (see answers in conn.go).
func (s *Server) appendProduceJobs(ctx context.Context, groups [][]produceJob) (wait func()) {
	byPartition := map[*partition][]produceJob{}
	var order []*partition
	for _, jobs := range groups {
		for _, j := range jobs {
			if _, ok := byPartition[j.p]; !ok {
				order = append(order, j.p)
			}
			byPartition[j.p] = append(byPartition[j.p], j)
		}
	}
	if len(order) == 0 {
		return func() {}
	}
	// Appends run until durable even if the broker starts shutting down:
	// an acknowledged write must be on disk before the log closes.
	appendCtx := context.WithoutCancel(ctx)
	var (
		mu    sync.Mutex
		waits []func()
	)
	run := func(p *partition) {
		jobs := byPartition[p]
		defer func() {
			// Appends of several partitions run on their own
			// goroutines, out of reach of dispatch's recover.
			if r := recover(); r != nil {
				s.log.Error("append panic", "topic", p.topic, "partition", p.index, "panic", r, "stack", string(debug.Stack()))
				for _, j := range jobs {
					j.out.ErrorCode = kerr.UnknownServerError.Code
				}
			}
		}()
		w := s.producePartition(appendCtx, p, jobs)
		mu.Lock()
		waits = append(waits, w)
		mu.Unlock()
	}
	if len(order) == 1 {
		run(order[0])
	} else {
		var wg sync.WaitGroup
		for _, p := range order {
			wg.Add(1)
			go func() { defer wg.Done(); run(p) }()
		}
		wg.Wait()
	}
	return func() {
		// One partition after another: the requests are answered when
		// the last is done.
		for _, w := range waits {
			w()
		}
	}
}

// producePartition appends the jobs of one partition through its leader:
// acks=all jobs are checked against the ISR first; the records of all the
// jobs left go to storage as ONE append, in request order (one write and
// one fsync instead of one per request, with exactly the order and offsets
// one-by-one appends would give); the leader learns the new log end, which
// moves the high watermark at once when the ISR is this broker alone; and
// wait, returned, waits until the records are durable and each acks=all
// job's records are in the ISR. Storage checks
// every batch before writing any, so when the joint append is refused (a
// bad batch, a sequence error, an idempotent duplicate) nothing was written
// and the jobs are appended one by one, each getting its own answer, as
// Kafka gives them.
func (s *Server) producePartition(ctx context.Context, p *partition, jobs []produceJob) (wait func()) {
	l, ok := s.node.Leader(p.topic, p.index)
	if !ok && p.leader == s.nodeID {
		l, ok = s.awaitLeadership(p, jobs[0].timeoutMs)
	}
	log := p.log
	if ok && log == nil { // led since the last resync of the topic view
		log, ok = s.store.Partition(p.topic, p.index)
	}
	if !ok {
		err := fmt.Errorf("%w: %s-%d", replica.ErrNotLeader, p.topic, p.index)
		for _, j := range jobs {
			s.setAppendError(j, err)
		}
		return func() {}
	}
	codec := log.StoredCodec()
	maxBytes := int(log.Config().MaxMessageBytes)
	run := make([]produceJob, 0, len(jobs))
	for _, j := range jobs {
		if j.acks == -1 {
			if err := l.CheckAcksAll(); err != nil {
				s.setAppendError(j, err)
				continue
			}
		}
		// A topic whose compression.type names a codec stores its
		// batches in it (Kafka's LogValidator): the leader rewrites a
		// batch sent in another codec before the append, so that storage
		// checks (max.message.bytes included, MESSAGE_TOO_LARGE) and
		// writes the bytes the followers then copy. Batches already in
		// the codec, and every batch of a producer topic, are kept as
		// sent after reading their headers. The rewritten batch is
		// bounded by max.message.bytes as it is encoded, so that a batch
		// inflating to far more (a compression bomb) is refused before
		// the broker holds it (MESSAGE_TOO_LARGE, as Kafka).
		rec, err := recordbatch.Recompress(j.record, codec, maxBytes)
		if err != nil {
			s.setAppendError(j, recompressError(codec, err))
			continue
		}
		j.record = rec
		run = append(run, j)
	}
	if len(run) == 0 {
		return func() {}
	}
	epoch := l.Epoch()
	// last[i] is the last offset of run[i]'s records, -1 when it failed;
	// durable[k] waits for the write of the jobs in written[k].
	var (
		last    []int64
		durable []func(context.Context) error
		written [][]int
	)
	if len(run) > 1 {
		var wait func(context.Context) error
		if last, wait = s.appendJoint(l, log, epoch, run); wait != nil {
			all := make([]int, len(run))
			for i := range all {
				all[i] = i
			}
			durable, written = append(durable, wait), append(written, all)
		}
	}
	if last == nil {
		last = make([]int64, len(run))
		for i, j := range run {
			var wait func(context.Context) error
			if last[i], wait = s.appendOne(l, log, epoch, j); wait != nil {
				durable, written = append(durable, wait), append(written, []int{i})
			}
		}
	}
	deadline := make([]time.Time, len(run))
	for i, j := range run {
		timeout := time.Duration(j.timeoutMs) * time.Millisecond
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		deadline[i] = time.Now().Add(timeout)
	}
	return func() {
		for k, wait := range durable {
			if err := wait(ctx); err != nil {
				for _, i := range written[k] {
					run[i].out.BaseOffset, run[i].out.LogAppendTime, run[i].out.LogStartOffset = -1, -1, -1
					s.setAppendError(run[i], err)
					last[i] = -1
				}
			}
		}
		end := int64(-1)
		for _, o := range last {
			end = max(end, o)
		}
		if end >= 0 {
			l.Appended(end + 1)
		}
		for i, j := range run {
			if j.acks != -1 || last[i] < 0 {
				continue
			}
			wctx, cancel := context.WithDeadline(ctx, deadline[i])
			err := l.WaitReplicated(wctx, last[i])
			cancel()
			if err != nil {
				j.out.BaseOffset, j.out.LogAppendTime, j.out.LogStartOffset = -1, -1, -1
				s.setAppendError(j, err)
			}
		}
	}
}

// leadershipWaitMax bounds how long a produce waits for this broker's
// replica manager to take up a leadership its metadata already gives it
// (awaitLeadership): franz-go's metadata.min.age, the wait a refusal
// would cost its producers.
const leadershipWaitMax = 5 * time.Second

// awaitLeadership waits until the replica manager leads p, which this
// broker's metadata says it leads, and returns its leader state; ok is
// false when it did not within the request's timeout (timeoutMs; at most
// leadershipWaitMax).
//
// The replica manager takes up a leadership after the metadata reached
// this broker: it first opens (for a new partition, creates and fsyncs)
// the partition's log. A producer that learnt of the leadership from a
// broker that got there first, typically a new topic's or the new
// leader's after a failover, was answered NOT_LEADER_OR_FOLLOWER in that
// window, and franz-go then waits for its next metadata refresh, up to
// metadata.min.age (5 s): all the first records of 1 to 2 of 6 fresh
// topics were acknowledged after 5.1 s instead of 0.1 s
// (docs/benchmarks.md, "A fresh producer's first acknowledgement").
// Waiting here costs the producer only the log's opening.
func (s *Server) awaitLeadership(p *partition, timeoutMs int32) (*replica.Leader, bool) {
	limit := leadershipWaitMax
	if timeoutMs > 0 {
		limit = min(limit, time.Duration(timeoutMs)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(s.ctx, limit)
	defer cancel()
	if err := s.node.WaitCaughtUp(ctx); err != nil {
		return nil, false
	}
	return s.node.Leader(p.topic, p.index)
}

// appendOne writes one request's records to one partition and returns
// the last offset they got (that of the original batch for an idempotent
// duplicate), or -1 when the write failed, and the wait for their
// durability (nil when nothing was written).
func (s *Server) appendOne(l *replica.Leader, log *storage.Partition, epoch int32, j produceJob) (int64, func(context.Context) error) {
	res, wait, err := log.Write(j.record, storage.AppendOptions{LeaderEpoch: epoch, VerificationGuard: j.guard})
	if err != nil {
		l.WriteFailed(err) // a full disk hands the partition over
		s.setAppendError(j, err)
		return -1, nil
	}
	j.out.BaseOffset = res.BaseOffset
	j.out.LogAppendTime = res.LogAppendTime
	j.out.LogStartOffset = res.LogStartOffset
	if !res.Duplicate { // a resent batch is not new traffic, as in Kafka
		s.metrics.RecordProduce(j.p.topic, j.sent, int(res.LastOffset-res.BaseOffset+1))
	}
	return res.LastOffset, wait
}

// appendJoint writes the records of several requests to one partition in
// one call and returns the last offset of each request's records (-1 for
// a request that failed) and the wait for their durability (nil when
// nothing was written). It returns nil, having written nothing, when the
// requests must be appended one by one instead.
func (s *Server) appendJoint(l *replica.Leader, log *storage.Partition, epoch int32, jobs []produceJob) ([]int64, func(context.Context) error) {
	// One buffer per request, written with one pwritev: joining them
	// into one buffer first was a copy of every record (2 % of the
	// three brokers' CPU producing flat out).
	bufs := make([][]byte, len(jobs))
	for i, j := range jobs {
		bufs[i] = j.record
	}
	res, wait, err := log.WriteVec(bufs, storage.AppendOptions{LeaderEpoch: epoch, VerificationGuard: jobs[0].guard})
	switch {
	case err == nil && !res.Duplicate:
		for _, j := range jobs {
			// Storage stamped each batch's base offset in place; the
			// first batch of each request gives its base offset.
			if len(j.record) < 8 {
				j.out.ErrorCode = kerr.UnknownServerError.Code
				continue
			}
			j.out.BaseOffset = int64(binary.BigEndian.Uint64(j.record))
			j.out.LogAppendTime = res.LogAppendTime
			j.out.LogStartOffset = res.LogStartOffset
		}
		// Records per request: up to the next request's base offset,
		// the last one up to the end of the joint append.
		last := make([]int64, len(jobs))
		for i, j := range jobs {
			end := res.LastOffset + 1
			if i+1 < len(jobs) && jobs[i+1].out.BaseOffset >= 0 {
				end = jobs[i+1].out.BaseOffset
			}
			last[i] = end - 1
			if j.out.ErrorCode == 0 {
				s.metrics.RecordProduce(j.p.topic, j.sent, int(end-j.out.BaseOffset))
			} else {
				last[i] = -1
			}
		}
		return last, wait
	case err == nil, errorBeforeWrite(err):
		return nil, nil // a duplicate or a refused batch: nothing written
	default:
		// The disk failed or the partition closed: every request gets
		// the error; retrying one by one could write twice.
		l.WriteFailed(err)
		last := make([]int64, len(jobs))
		for i, j := range jobs {
			s.setAppendError(j, err)
			last[i] = -1
		}
		return last, nil
	}
}

// recompressError is the storage error a batch that could not be
// re-compressed for compression.type is refused with: INVALID_RECORD when
// its inflated records do not match its header, CORRUPT_MESSAGE when they
// do not inflate.
func recompressError(codec int, err error) error {
	kind := storage.ErrCorruptMessage
	switch {
	case errors.Is(err, recordbatch.ErrTooLarge):
		kind = storage.ErrRecordTooLarge
	case errors.Is(err, recordbatch.ErrInvalid):
		kind = storage.ErrInvalidRecord
	}
	return fmt.Errorf("%w: re-compressing a batch in the topic's compression.type (codec %d): %w", kind, codec, err)
}

// errorBeforeWrite reports storage errors raised while checking batches,
// before anything is written.
func errorBeforeWrite(err error) bool {
	for _, e := range []error{storage.ErrCorruptMessage, storage.ErrRecordTooLarge, storage.ErrInvalidRecord,
		storage.ErrUnsupportedMessageFormat, storage.ErrOutOfOrderSequence, storage.ErrInvalidProducerEpoch, storage.ErrUnknownProducerID,
		storage.ErrInvalidTxnState, storage.ErrTransactionCoordinatorFenced} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) setAppendError(j produceJob, err error) {
	j.out.ErrorCode = replica.ErrorCode(err) // replication errors; 0 for storage ones
	if j.out.ErrorCode == 0 {
		j.out.ErrorCode = storageErrorCode(err)
	}
	msg := err.Error()
	j.out.ErrorMessage = &msg
	if j.out.ErrorCode == kerr.KafkaStorageError.Code || j.out.ErrorCode == kerr.UnknownServerError.Code {
		s.log.Error("append failed", "topic", j.p.topic, "partition", j.p.index, "err", err)
	}
}

// answeredLater reports whether a request is written by the connection's
// processing loop and answered by its second stage (see answers in
// conn.go): Produce with acks=1 or all, transactional or not. acks=0
// requests have no answer to wait for, and a failure closes their
// connection, which must not cost the answers of the requests before them.
func answeredLater(req *request) bool {
	pr, ok := req.kreq.(*kmsg.ProduceRequest)
	return ok && pr.Version >= produceFloor && (pr.Acks == 1 || pr.Acks == -1)
}

// mergeableProduce reports whether a request may be appended jointly with
// the Produce requests around it on its connection. acks=0 requests are
// left alone: a failure closes their connection, which must not cost the
// answers of the requests before them.
func mergeableProduce(req *request) (*kmsg.ProduceRequest, bool) {
	pr, ok := req.kreq.(*kmsg.ProduceRequest)
	if !ok || pr.Version < produceFloor || pr.TransactionID != nil || (pr.Acks != 1 && pr.Acks != -1) {
		return nil, false
	}
	return pr, true
}

// handleProduceGroup appends consecutive Produce requests of one
// connection together (see appendProduceJobs) and returns answer, which
// waits for their replication and returns the responses in request order.
// A transactional request comes alone (mergeableProduce); its partitions
// are verified first, as handleProduce does.
func (s *Server) handleProduceGroup(ctx context.Context, az reqAuth, reqs []*kmsg.ProduceRequest) (answer func() []kmsg.Response) {
	resps := make([]*kmsg.ProduceResponse, len(reqs))
	groups := make([][]produceJob, len(reqs))
	for i, req := range reqs {
		resps[i], groups[i] = s.prepareProduce(ctx, az, req)
		if req.TransactionID != nil {
			groups[i] = s.verifyTxnProduce(ctx, *req.TransactionID, groups[i])
		}
	}
	wait := s.appendProduceJobs(ctx, groups)
	return func() []kmsg.Response {
		wait()
		out := make([]kmsg.Response, len(reqs))
		for i := range reqs {
			out[i] = resps[i]
		}
		return out
	}
}
