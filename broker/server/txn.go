package server

// Transactions (KIP-98, KIP-447, KIP-890 part 1): the transaction
// coordinator (broker/txn) follows the leaders of __transaction_state's
// partitions, as the group coordinator follows __consumer_offsets; markers
// go to partition leaders, and partition leaders ask the coordinator to
// verify transactional produces, over the inter-broker (replication)
// listener when the other side is another broker.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/cluster/node"
	"github.com/tributary/tributary/broker/cluster/replica"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/groups"
	"github.com/tributary/tributary/broker/storage"
	"github.com/tributary/tributary/broker/txn"
)

const txnTopic = txn.StateTopic

// txnRequestTimeout bounds a verification or marker request to another
// broker, and the replication wait of a marker.
const txnRequestTimeout = 30 * time.Second

// openTxn starts the transaction coordinator with no partition loaded; the
// follower loop loads the partitions of __transaction_state this broker
// leads. It runs before the cluster node starts, whose replication
// listener serves the coordinator's inter-broker requests.
func (s *Server) openTxn() error {
	cfg := s.static
	c, err := txn.New(txn.Config{
		AllocateProducerID: s.producerIDs.allocate,
		Markers:            txnMarkerWriter{s},
		MaxTimeout:         cfg.TransactionMaxTimeout,
		IDExpiration:       cfg.TransactionalIDExpiration,
		AbortInterval:      cfg.TransactionAbortCheck,
		ExpiryInterval:     cfg.TransactionalIDExpiryCheck,
		OnShardStopped:     func(int32) { s.kickCluster() },
		Logger:             s.log,
	})
	if err != nil {
		return fmt.Errorf("starting the transaction coordinator: %w", err)
	}
	// Requests to other brokers go to their replication listeners, over
	// TLS with this broker's certificate when in-cluster encryption is on.
	var dialTLS func(serverName string) *tls.Config
	peerTLS, err := node.PeerTLS(cfg, config.RoleInterBroker, s.log)
	if err != nil {
		c.Close()
		return err
	}
	if peerTLS != nil {
		dialTLS = peerTLS.Peers().ClientConfig
	}
	s.txn = c
	s.peers = replica.NewPeers("tributary-broker-"+strconv.Itoa(int(s.nodeID)), dialTLS)
	return nil
}

// interBrokerAPIs are the transaction requests brokers send each other on
// the replication listener.
func (s *Server) interBrokerAPIs() map[int16]replica.InterBrokerAPI {
	return map[int16]replica.InterBrokerAPI{
		addPartitionsToTxnAPI.key: {Min: 4, Max: addPartitionsToTxnAPI.max, Handle: func(ctx context.Context, r kmsg.Request) kmsg.Response {
			return s.handleAddPartitionsToTxn(ctx, r.(*kmsg.AddPartitionsToTxnRequest), nil)
		}},
		writeTxnMarkersAPI.key: {Min: writeTxnMarkersAPI.min, Max: writeTxnMarkersAPI.max, Handle: func(ctx context.Context, r kmsg.Request) kmsg.Response {
			return s.handleWriteTxnMarkers(ctx, r.(*kmsg.WriteTxnMarkersRequest))
		}},
	}
}

// txnTopicConfigs are __transaction_state's settings, as topic configs so
// that DescribeConfigs shows what is in force.
func txnTopicConfigs() map[string]string {
	tc := txn.StateTopicConfig()
	return map[string]string{
		"cleanup.policy":    tc.CleanupPolicy,
		"segment.bytes":     strconv.FormatInt(tc.SegmentBytes, 10),
		"max.message.bytes": strconv.FormatInt(int64(tc.MaxMessageBytes), 10),
	}
}

// ensureTxnTopic creates __transaction_state the first time a transaction
// coordinator is looked for, as Kafka does: transaction.state.log.num.partitions
// partitions, replicated as default.replication.factor says. Too few live
// brokers for that is an error (the client retries), never a smaller
// replication factor. It waits for the controller within ctx.
func (s *Server) ensureTxnTopic(ctx context.Context) error {
	if _, ok := s.lookupTopic(txnTopic); ok {
		return nil
	}
	cfg := s.Config()
	_, err := s.createTopicRF(ctx, txnTopic, cfg.TransactionStatePartitions, cfg.DefaultReplicationFactor, txnTopicConfigs())
	if errors.Is(err, errTopicExists) {
		return nil
	}
	if err == nil {
		s.syncTxnCoordinator()
	}
	return err
}

// txnPartitionFor is the partition of __transaction_state holding a
// transactional id; ok is false while the topic does not exist.
func (s *Server) txnPartitionFor(id string) (int32, bool) {
	t, ok := s.lookupTopic(txnTopic)
	if !ok || len(t.partitions) == 0 {
		return 0, false
	}
	return txn.PartitionFor(id, int32(len(t.partitions))), true
}

// txnCoordinatorBroker is the broker coordinating a transactional id, as
// seen on a listener; noListener when it is live but has no such listener.
func (s *Server) txnCoordinatorBroker(listener, id string) (b brokerInfo, ok, noListener bool) {
	p, ok := s.txnPartitionFor(id)
	if !ok {
		return brokerInfo{}, false, false
	}
	st := s.node.Controller.State()
	mp, ok := st.Partition(txnTopic, p)
	if !ok || mp.Leader == metadata.NoLeader {
		return brokerInfo{}, false, false
	}
	if b, ok = s.brokerByID(st, mp.Leader, listener); ok {
		return b, true, false
	}
	return brokerInfo{}, false, s.liveWithoutListener(st, mp.Leader, listener)
}

// syncTxnCoordinator loads a shard for each partition of
// __transaction_state this broker leads (again when the leader epoch
// moved, or after a failed write stopped it) and unloads the others.
func (s *Server) syncTxnCoordinator() {
	t, ok := s.lookupTopic(txnTopic)
	led := map[int32]bool{}
	if ok {
		for _, p := range t.partitions {
			epoch, leading := s.node.LeaderEpoch(txnTopic, p.index)
			if !leading {
				continue
			}
			led[p.index] = true
			state, loaded := s.txn.Status(p.index)
			if state == txn.ShardReady && loaded == epoch || state == txn.ShardLoading && loaded == epoch {
				continue
			}
			log, ok := s.store.Partition(txnTopic, p.index)
			if !ok {
				continue // the replica manager has not opened it yet
			}
			s.log.Info("transaction coordinator loading a partition", "partition", p.index, "epoch", epoch)
			s.txn.Load(p.index, epoch, txn.NewPartitionLog(log, s.replicatedTxnWrite(p.index, epoch, log)))
		}
	}
	for _, p := range s.txn.Partitions() {
		if !led[p] {
			s.txn.Unload(p)
		}
	}
}

// replicatedTxnWrite writes a batch of __transaction_state through the
// replica manager with acks=all, at the coordinator epoch the shard was
// loaded with: a shard whose leadership moved on writes nothing.
func (s *Server) replicatedTxnWrite(partition, epoch int32, log *storage.Partition) func(context.Context, []byte) error {
	return func(ctx context.Context, batch []byte) error {
		if f := s.beforeTxnWrite.Load(); f != nil {
			(*f)(partition)
		}
		ctx, cancel := context.WithTimeout(ctx, offsetsWriteTimeout)
		defer cancel()
		_, err := s.node.Produce(ctx, txnTopic, partition, -1, func(leaderEpoch int32) (storage.AppendResult, error) {
			if leaderEpoch != epoch {
				return storage.AppendResult{}, fmt.Errorf("%w: %s-%d is at leader epoch %d, the coordinator at %d", replica.ErrNotLeader, txnTopic, partition, leaderEpoch, epoch)
			}
			return log.Append(context.WithoutCancel(ctx), batch, storage.AppendOptions{LeaderEpoch: leaderEpoch})
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, replica.ErrNotLeader):
			return fmt.Errorf("%w: %w", txn.ErrNotLeader, err)
		case errors.Is(err, replica.ErrNotEnoughReplicas), errorBeforeWrite(err):
			return fmt.Errorf("%w: %w", txn.ErrNotAppended, err)
		}
		return err
	}
}

// producerFencedFor maps the coordinator's PRODUCER_FENCED to
// INVALID_PRODUCER_EPOCH for clients older than KIP-588's versions.
func producerFencedFor(code int16, version, since int16) int16 {
	if code == kerr.ProducerFenced.Code && version < since {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// verifyTxn asks the coordinator of a transactional id whether the
// partitions are in the producer's ongoing transaction at this epoch
// (KIP-890 part 1): directly when this broker coordinates it, else with an
// AddPartitionsToTxn v4 verify_only request to the coordinator's
// replication listener. It returns the coordinator's code per partition.
func (s *Server) verifyTxn(ctx context.Context, id string, producerID int64, epoch int16, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	all := func(code int16) map[txn.TopicPartition]int16 {
		for _, tp := range tps {
			out[tp] = code
		}
		return out
	}
	p, ok := s.txnPartitionFor(id)
	if !ok {
		return all(kerr.CoordinatorNotAvailable.Code)
	}
	st := s.node.Controller.State()
	mp, ok := st.Partition(txnTopic, p)
	if !ok || mp.Leader == metadata.NoLeader {
		return all(kerr.CoordinatorNotAvailable.Code)
	}
	if mp.Leader == s.nodeID {
		return s.txn.VerifyPartitions(p, id, producerID, epoch, tps)
	}
	b, ok := st.Brokers[mp.Leader]
	if !ok || b.ReplicationAddr == "" {
		return all(kerr.CoordinatorNotAvailable.Code)
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
	rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly = id, producerID, epoch, true
	for _, tp := range tps {
		i := len(rt.Topics) - 1
		if i < 0 || rt.Topics[i].Topic != tp.Topic {
			t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
			t.Topic = tp.Topic
			rt.Topics = append(rt.Topics, t)
			i++
		}
		rt.Topics[i].Partitions = append(rt.Topics[i].Partitions, tp.Partition)
	}
	req.Transactions = append(req.Transactions, rt)
	rctx, cancel := context.WithTimeout(ctx, txnRequestTimeout)
	defer cancel()
	kresp, err := s.peers.Request(rctx, b.ReplicationAddr, req)
	if err != nil {
		s.log.Warn("verifying a transaction with its coordinator failed", "transactional_id", id, "coordinator", mp.Leader, "err", err)
		return all(kerr.CoordinatorNotAvailable.Code)
	}
	resp := kresp.(*kmsg.AddPartitionsToTxnResponse)
	if resp.ErrorCode != 0 {
		return all(resp.ErrorCode)
	}
	for _, r := range resp.Transactions {
		if r.TransactionalID != id {
			continue
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				out[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
			}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			out[tp] = kerr.CoordinatorNotAvailable.Code
		}
	}
	return out
}

// verifyErrorForProduce turns a coordinator's verification answer into what
// a producer acts on, as Kafka's ReplicaManager does: PRODUCER_FENCED is
// INVALID_PRODUCER_EPOCH, and the coordinator's retriable errors become
// NOT_ENOUGH_REPLICAS, which every producer retries without a metadata
// refresh.
func verifyErrorForProduce(code int16) int16 {
	switch code {
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.ConcurrentTransactions.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code, kerr.NotCoordinator.Code:
		return kerr.NotEnoughReplicas.Code
	}
	return code
}

// verifyErrorForOffsets is the same for TxnOffsetCommit, as Kafka's group
// coordinator converts it (COORDINATOR_NOT_AVAILABLE for the retriable
// ones).
func verifyErrorForOffsets(code int16) int16 {
	switch code {
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.ConcurrentTransactions.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code, kerr.NotCoordinator.Code:
		return kerr.CoordinatorNotAvailable.Code
	}
	return code
}

// offsetsTxnWrite writes a TxnOffsetCommit batch to the offsets partition:
// verified with the transaction's coordinator first (KIP-890), then
// appended through the replica manager with acks=all.
func (s *Server) offsetsTxnWrite(log *storage.Partition) func(context.Context, groups.TxnWrite, []byte) error {
	return func(ctx context.Context, w groups.TxnWrite, batch []byte) error {
		ctx, cancel := context.WithTimeout(ctx, offsetsWriteTimeout)
		defer cancel()
		guard := log.StartTxnVerification(w.ProducerID, w.ProducerEpoch, -1)
		if guard != 0 {
			tp := txn.TopicPartition{Topic: offsetsTopic, Partition: 0}
			if code := s.verifyTxn(ctx, w.TransactionalID, w.ProducerID, w.ProducerEpoch, []txn.TopicPartition{tp})[tp]; code != 0 {
				return fmt.Errorf("the offsets partition is not in the transaction of %q: %w", w.TransactionalID, kerr.ErrorForCode(verifyErrorForOffsets(code)))
			}
		}
		_, err := s.node.Produce(ctx, offsetsTopic, 0, -1, func(epoch int32) (storage.AppendResult, error) {
			return log.Append(context.WithoutCancel(ctx), batch, storage.AppendOptions{LeaderEpoch: epoch, VerificationGuard: guard, FromCoordinator: true})
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, replica.ErrNotLeader):
			return fmt.Errorf("%w: %w", groups.ErrLogClosed, err)
		case errors.Is(err, storage.ErrInvalidProducerEpoch):
			return fmt.Errorf("%w: %w", kerr.InvalidProducerEpoch, err)
		case errors.Is(err, storage.ErrInvalidTxnState):
			return fmt.Errorf("%w: %w", kerr.InvalidTxnState, err)
		}
		return err
	}
}

// txnMarkerWriter sends a transaction's markers to its partitions' leaders
// for the coordinator.
type txnMarkerWriter struct{ s *Server }

// WriteTxnMarkers implements txn.MarkerWriter.
func (w txnMarkerWriter) WriteTxnMarkers(ctx context.Context, m txn.Markers) map[txn.TopicPartition]int16 {
	s := w.s
	out := make(map[txn.TopicPartition]int16, len(m.Partitions))
	st := s.node.Controller.State()
	byLeader := map[int32][]txn.TopicPartition{}
	for _, tp := range m.Partitions {
		mp, ok := st.Partition(tp.Topic, tp.Partition)
		switch {
		case !ok:
			out[tp] = kerr.UnknownTopicOrPartition.Code // deleted: nothing to mark
		case mp.Leader == metadata.NoLeader:
			out[tp] = kerr.LeaderNotAvailable.Code
		default:
			byLeader[mp.Leader] = append(byLeader[mp.Leader], tp)
		}
	}
	marker := storage.TxnMarker{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, CoordinatorEpoch: m.CoordinatorEpoch, Commit: m.Commit}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, tps := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var codes map[txn.TopicPartition]int16
			if leader == s.nodeID {
				codes = s.writeTxnMarkers(ctx, marker, tps)
			} else {
				codes = s.sendTxnMarkers(ctx, st, leader, m, tps)
			}
			mu.Lock()
			defer mu.Unlock()
			for tp, code := range codes {
				if code == kerr.UnknownTopicOrPartition.Code {
					// The leader does not know a partition our
					// metadata has: it lags; retry.
					code = kerr.NotLeaderForPartition.Code
				}
				out[tp] = code
			}
		}()
	}
	wg.Wait()
	return out
}

// sendTxnMarkers sends one WriteTxnMarkers request to another broker.
func (s *Server) sendTxnMarkers(ctx context.Context, st *metadata.State, leader int32, m txn.Markers, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	b, ok := st.Brokers[leader]
	if !ok || b.ReplicationAddr == "" {
		for _, tp := range tps {
			out[tp] = kerr.NotLeaderForPartition.Code
		}
		return out
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	rm := kmsg.NewWriteTxnMarkersRequestMarker()
	rm.ProducerID, rm.ProducerEpoch, rm.Committed, rm.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	for _, tp := range tps {
		i := len(rm.Topics) - 1
		if i < 0 || rm.Topics[i].Topic != tp.Topic {
			t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			t.Topic = tp.Topic
			rm.Topics = append(rm.Topics, t)
			i++
		}
		rm.Topics[i].Partitions = append(rm.Topics[i].Partitions, tp.Partition)
	}
	req.Markers = append(req.Markers, rm)
	kresp, err := s.peers.Request(ctx, b.ReplicationAddr, req)
	if err != nil {
		s.log.Warn("sending transaction markers failed; retrying", "leader", leader, "producer_id", m.ProducerID, "err", err)
		for _, tp := range tps {
			out[tp] = kerr.NotLeaderForPartition.Code
		}
		return out
	}
	for _, rm := range kresp.(*kmsg.WriteTxnMarkersResponse).Markers {
		if rm.ProducerID != m.ProducerID {
			continue
		}
		for _, t := range rm.Topics {
			for _, p := range t.Partitions {
				out[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
			}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			out[tp] = kerr.NotLeaderForPartition.Code
		}
	}
	return out
}

// writeTxnMarkers writes a marker to partitions this broker leads, in
// parallel, each through the replica manager with acks=all, and returns a
// code per partition. A marker on the offsets partition then makes the
// producer's transactional offsets visible (or drops them).
func (s *Server) writeTxnMarkers(ctx context.Context, m storage.TxnMarker, tps []txn.TopicPartition) map[txn.TopicPartition]int16 {
	out := make(map[txn.TopicPartition]int16, len(tps))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, tp := range tps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := s.writeTxnMarker(ctx, m, tp)
			mu.Lock()
			out[tp] = code
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (s *Server) writeTxnMarker(ctx context.Context, m storage.TxnMarker, tp txn.TopicPartition) int16 {
	if _, ok := s.lookupPartition(tp.Topic, tp.Partition); !ok {
		return kerr.UnknownTopicOrPartition.Code
	}
	log, ok := s.store.Partition(tp.Topic, tp.Partition)
	if !ok {
		return kerr.NotLeaderForPartition.Code
	}
	ctx, cancel := context.WithTimeout(ctx, txnRequestTimeout)
	defer cancel()
	_, err := s.node.Produce(ctx, tp.Topic, tp.Partition, -1, func(epoch int32) (storage.AppendResult, error) {
		return log.AppendTxnMarker(context.WithoutCancel(ctx), m, storage.AppendOptions{LeaderEpoch: epoch})
	})
	if err != nil {
		code := replica.ErrorCode(err)
		if code == 0 {
			code = storageErrorCode(err)
		}
		if code == kerr.KafkaStorageError.Code || code == kerr.UnknownServerError.Code {
			s.log.Error("writing a transaction marker failed", "topic", tp.Topic, "partition", tp.Partition, "producer_id", m.ProducerID, "err", err)
		}
		return code
	}
	if tp.Topic == offsetsTopic {
		// A group coordinator loaded meanwhile either replayed the
		// marker (CompleteTxn finds nothing pending) or is the one in
		// force now: loading holds the lock from its replay to the swap.
		s.offsetsMarkerMu.RLock()
		s.coordinator().CompleteTxn(m.ProducerID, m.Commit)
		s.offsetsMarkerMu.RUnlock()
	}
	return 0
}
