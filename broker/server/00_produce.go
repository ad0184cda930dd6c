package server

// Produce: v0-11 advertised, v3-11 served
//
// Behaviour:
//   - v0-2 carry the old message formats, which Kafka 4 removed (KIP-896);
//     they are advertised only because librdkafka disables compression
//     when Produce does not start at v0 (KAFKA-18659) and answered with
//     UNSUPPORTED_VERSION on every partition, as Kafka 4 does.
//   - The records of each partition go to storage as sent (any codec: the
//     broker never decompresses); storage checks sizes against
//     max.message.bytes, the CRC-32C, magic 2, and idempotent sequences,
//     and assigns offsets. A duplicate idempotent batch answers with its
//     original offsets.
//   - The partitions of one request are appended concurrently, so they
//     share fsyncs (group commit); the response is sent when every
//     partition is durable per log.flush.policy.
//   - acks: 0 (no response at all; an error closes the connection so the
//     producer notices, as Kafka does), 1 and -1 (all). On one node the
//     ISR is this node, so acks=all fails with NOT_ENOUGH_REPLICAS when
//     min.insync.replicas > 1, instead of pretending.
//   - Transactional produce is refused (transactions are not served yet).
//   - A full or failing disk answers KAFKA_STORAGE_ERROR.
//
// Version notes:
//   - v3: RecordBatch v2 only, TransactionalID; v5: LogStartOffset
//   - v8: RecordErrors, ErrorMessage (KIP-467); v9: flexible
//   - v10/11: CurrentLeader tags (KIP-951), left empty: we are the leader.
//   - v12 (KIP-890 transactions) and v13 (topic ids) are not served yet.

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
)

var produceAPI = api{key: 0, min: 0, max: 11,
	handle: func(ctx context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleProduce(ctx, r.(*kmsg.ProduceRequest))
	}}

// produceFloor is the oldest Produce version served (KIP-896).
const produceFloor = 3

func (s *Server) handleProduce(ctx context.Context, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	type job struct {
		p      *partition
		min    int32 // min.insync.replicas of the topic
		out    *kmsg.ProduceResponseTopicPartition
		record []byte
	}
	var (
		jobs     []job
		topLevel int16 // error for every partition
		message  string
	)
	switch {
	case req.Version < produceFloor:
		topLevel = kerr.UnsupportedVersion.Code
		message = fmt.Sprintf("Produce v%d (message format v0/v1) is not supported; v%d+ is", req.Version, produceFloor)
	case req.TransactionID != nil:
		topLevel = kerr.InvalidRequest.Code
		message = "transactions are not supported by this broker yet"
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		topLevel = kerr.InvalidRequiredAcks.Code
		message = fmt.Sprintf("acks=%d: must be -1, 0 or 1", req.Acks)
	}

	cfg := s.Config()
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
			jobs = append(jobs, job{p: p, min: minInsyncReplicas(cfg, t.configs), out: sp, record: rp.Records})
		}
	}

	// Appends run until durable even if the broker starts shutting down:
	// an acknowledged write must be on disk before the log closes.
	appendCtx := context.WithoutCancel(ctx)
	run := func(j job) {
		defer func() {
			// Appends of several partitions run on their own
			// goroutines, out of reach of dispatch's recover.
			if r := recover(); r != nil {
				s.log.Error("append panic", "topic", j.p.topic, "partition", j.p.index, "panic", r, "stack", string(debug.Stack()))
				j.out.ErrorCode = kerr.UnknownServerError.Code
			}
		}()
		if req.Acks == -1 && j.min > 1 {
			j.out.ErrorCode = kerr.NotEnoughReplicas.Code
			msg := fmt.Sprintf("acks=all needs %d in-sync replicas (min.insync.replicas) and this single node has 1", j.min)
			j.out.ErrorMessage = &msg
			return
		}
		res, err := j.p.log.Append(appendCtx, j.record, storage.AppendOptions{LeaderEpoch: j.p.leaderEpoch})
		if err != nil {
			j.out.ErrorCode = storageErrorCode(err)
			msg := err.Error()
			j.out.ErrorMessage = &msg
			if j.out.ErrorCode == kerr.KafkaStorageError.Code || j.out.ErrorCode == kerr.UnknownServerError.Code {
				s.log.Error("append failed", "topic", j.p.topic, "partition", j.p.index, "err", err)
			}
			return
		}
		j.out.BaseOffset = res.BaseOffset
		j.out.LogAppendTime = res.LogAppendTime
		j.out.LogStartOffset = res.LogStartOffset
	}
	if len(jobs) == 1 {
		run(jobs[0])
	} else if len(jobs) > 1 {
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() { defer wg.Done(); run(j) }()
		}
		wg.Wait()
	}
	if len(jobs) > 0 {
		s.data.notify()
	}

	if req.Acks == 0 {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 {
					return nil, fmt.Errorf("acks=0 produce to %s[%d] failed with %s; closing so the producer notices", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
		return nil, nil
	}
	return resp, nil
}
