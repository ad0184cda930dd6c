package replica

import (
	"context"
	"errors"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
)

// LeaderLog is what the leader side reads from its local log;
// *storage.Partition has these methods.
type LeaderLog interface {
	LogStartOffset() int64
	LogEndOffset() int64
	EndOffsetForLeaderEpoch(epoch int32) (int32, int64)
	// Read returns whole batches from the one holding offset, below upTo,
	// at least one batch if any.
	Read(offset int64, maxBytes int32, upTo int64) ([]byte, error)
}

// Lookup finds the leader state and log of a partition this broker leads;
// ok is false when it does not lead it.
type Lookup func(topic string, partition int32) (l *Leader, log LeaderLog, ok bool)

// HandleFetch answers a follower's Fetch (ReplicaID >= 0) as a Kafka
// leader does. The server calls it from its Fetch handler for replica
// fetches, after resolving topic ids to names (v13+).
//
// Per partition: NOT_LEADER_OR_FOLLOWER unless this broker leads it;
// FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for an older / newer
// CurrentLeaderEpoch; a DivergingEpoch when the follower's LastFetchedEpoch
// ends before its fetch offset here (KIP-320/595); OFFSET_OUT_OF_RANGE
// outside the log; else the data up to the log end (followers read past
// the high watermark), and the fetch offset tells the leader how far the
// follower got (ISR, high watermark). It long-polls up to MaxWaitMillis
// for MinBytes, woken by appends.
func HandleFetch(ctx context.Context, req *kmsg.FetchRequest, lookup Lookup) *kmsg.FetchResponse {
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	for {
		resp, bytes, waitOn := fetchOnce(req, lookup)
		if bytes >= int(max(req.MinBytes, 1)) || len(waitOn) == 0 || !time.Now().Before(deadline) {
			return resp
		}
		if !waitAny(ctx, waitOn, time.Until(deadline)) {
			resp, _, _ = fetchOnce(req, lookup)
			return resp
		}
	}
}

// waitAny waits for one of chs, the timeout or ctx; false on timeout/ctx.
// One select over all of them: a follower fetch covers every partition
// it follows from this broker, and a goroutine per partition for every
// parked fetch would cost more scheduling than the fetch itself.
func waitAny(ctx context.Context, chs []<-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	cases := make([]reflect.SelectCase, 0, len(chs)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(t.C)},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for _, ch := range chs {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	return chosen >= 2
}

// fetchOnce builds the response from the current state; bytes counts
// record bytes (and errors, which must be answered at once); waitOn are
// the channels that signal new data for the partitions with none.
func fetchOnce(req *kmsg.FetchRequest, lookup Lookup) (*kmsg.FetchResponse, int, []<-chan struct{}) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	total := 0
	var waitOn []<-chan struct{}
	for _, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for i := range t.Partitions {
			p := &t.Partitions[i]
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			l, log, ok := lookup(t.Topic, p.Partition)
			if !ok {
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			} else {
				servePartition(req.ReplicaID, l, log, p, &rp)
				if len(rp.RecordBatches) == 0 && rp.ErrorCode == 0 && rp.DivergingEpoch.Epoch < 0 {
					waitOn = append(waitOn, l.DataAfter(p.FetchOffset))
				}
			}
			total += len(rp.RecordBatches)
			if rp.ErrorCode != 0 || rp.DivergingEpoch.Epoch >= 0 {
				total += 1 << 30 // answer now
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, total, waitOn
}

func servePartition(replica int32, l *Leader, log LeaderLog, p *kmsg.FetchRequestTopicPartition, rp *kmsg.FetchResponseTopicPartition) {
	epoch := l.Epoch()
	rp.LogStartOffset = log.LogStartOffset()
	rp.HighWatermark = l.HighWatermark()
	rp.LastStableOffset = rp.HighWatermark
	switch {
	case p.CurrentLeaderEpoch >= 0 && p.CurrentLeaderEpoch < epoch:
		rp.ErrorCode = kerr.FencedLeaderEpoch.Code
		return
	case p.CurrentLeaderEpoch > epoch:
		rp.ErrorCode = kerr.UnknownLeaderEpoch.Code
		return
	}
	if p.LastFetchedEpoch >= 0 {
		e, end := log.EndOffsetForLeaderEpoch(p.LastFetchedEpoch)
		if e < p.LastFetchedEpoch || end < p.FetchOffset {
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = e, end
			return
		}
	}
	leo := log.LogEndOffset()
	if p.FetchOffset < rp.LogStartOffset || p.FetchOffset > leo {
		rp.ErrorCode = kerr.OffsetOutOfRange.Code
		return
	}
	hw, err := l.Fetched(replica, p.FetchOffset)
	if err != nil {
		rp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	rp.HighWatermark, rp.LastStableOffset = hw, hw
	if p.FetchOffset == leo {
		return
	}
	data, err := log.Read(p.FetchOffset, p.PartitionMaxBytes, leo)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		rp.ErrorCode = kerr.OffsetOutOfRange.Code
	case err != nil:
		rp.ErrorCode = kerr.KafkaStorageError.Code
	default:
		rp.RecordBatches = data
	}
}
