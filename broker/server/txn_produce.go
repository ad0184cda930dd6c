package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary/tributary/broker/storage/recordbatch"
	"github.com/tributary/tributary/broker/txn"
)

// verifyTxnProduce is the partition leader's side of KIP-890 part 1 for a
// transactional Produce: for each partition whose batch would open the
// producer's transaction here (storage.StartTxnVerification returns a
// guard), the transaction's coordinator is asked, in one request for the
// whole Produce, whether the partition is in the transaction; the guard
// then rides the append. Partitions the coordinator refuses get its answer
// as Kafka's ReplicaManager gives it (verifyErrorForProduce) and are not
// appended. Batches that do not parse, or are not transactional, go on to
// storage, which refuses them for what they are.
func (s *Server) verifyTxnProduce(ctx context.Context, id string, jobs []produceJob) []produceJob {
	type pending struct {
		job int
		tp  txn.TopicPartition
	}
	var (
		need     []pending
		tps      []txn.TopicPartition
		pid      int64
		epoch    int16
		mismatch bool
	)
	for i := range jobs {
		j := &jobs[i]
		h, err := recordbatch.ParseHeader(j.record)
		if err != nil || !h.IsTransactional() || h.ProducerID < 0 {
			continue
		}
		log := j.p.log
		if log == nil {
			var ok bool
			if log, ok = s.store.Partition(j.p.topic, j.p.index); !ok {
				continue // not led here: the append answers NOT_LEADER_OR_FOLLOWER
			}
		}
		g := log.StartTxnVerification(h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		if g == 0 {
			continue // its transaction is open here already
		}
		if len(need) == 0 {
			pid, epoch = h.ProducerID, h.ProducerEpoch
		} else if h.ProducerID != pid || h.ProducerEpoch != epoch {
			mismatch = true // one request, one producer: storage refuses the odd one
			continue
		}
		j.guard = g
		tp := txn.TopicPartition{Topic: j.p.topic, Partition: j.p.index}
		need = append(need, pending{i, tp})
		tps = append(tps, tp)
	}
	if len(need) == 0 {
		return jobs
	}
	if mismatch {
		s.log.Warn("transactional produce with batches of several producers", "transactional_id", id)
	}
	codes := s.verifyTxn(ctx, id, pid, epoch, tps)
	refused := map[int]bool{}
	for _, n := range need {
		code := codes[n.tp]
		if code == 0 {
			continue
		}
		j := jobs[n.job]
		j.out.ErrorCode = verifyErrorForProduce(code)
		msg := "the partition could not be verified as part of the transaction of " + id + ": " + kerr.ErrorForCode(code).Error()
		j.out.ErrorMessage = &msg
		refused[n.job] = true
	}
	if len(refused) == 0 {
		return jobs
	}
	kept := jobs[:0:0]
	for i, j := range jobs {
		if !refused[i] {
			kept = append(kept, j)
		}
	}
	return kept
}
