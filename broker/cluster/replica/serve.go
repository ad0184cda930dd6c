package replica

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/internal/fetchwire"
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
// ok is false when it does not lead it. A Leader it returned, until it
// resigns, is the partition's with that log: whatever moves the partition
// (another leader or epoch, its deletion) resigns the tracker first, as
// Manager does. A fetch session keeps what it returned on that promise
// (leaderRef).
type Lookup func(topic string, partition int32) (l *Leader, log LeaderLog, ok bool)

// leaderRef is a fetch session's lookup of one of its partitions, kept
// between fetches: a session's pass over thousands of partitions looked
// each up in the manager's map, under its lock, twice per long poll.
type leaderRef struct {
	leader *Leader
	log    LeaderLog
}

// get is lookup(topic, partition), from r while the tracker r holds has
// not resigned (see Lookup); r nil looks up every time.
func (r *leaderRef) get(lookup Lookup, topic string, partition int32) (*Leader, LeaderLog, bool) {
	if r != nil && r.leader != nil && !r.leader.Resigned() {
		return r.leader, r.log, true
	}
	l, log, ok := lookup(topic, partition)
	if r != nil {
		*r = leaderRef{}
		if ok {
			r.leader, r.log = l, log
		}
	}
	return l, log, ok
}

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
//
// throttle (nil: none) is the leader side of the replication throttle: a
// partition whose leader side is throttled here, fetched by a replica
// outside its ISR while the measured rate is over the bound, is answered
// without data (its fetch offset still counts), and the long poll looks
// again once the rate is back, as Kafka's DelayedFetch leaves such
// partitions out of the bytes it waits for.
func HandleFetch(ctx context.Context, req *kmsg.FetchRequest, lookup Lookup, throttle *Throttle) *kmsg.FetchResponse {
	resp, _ := handleFetch(ctx, req, lookup, nil, throttle, readVia{})
	return resp
}

// fileBatches are the record batches of a response left in their segment
// files, by topic and partition index in the response: the replication
// listener sends them with sendfile.
type fileBatches map[[2]int][]storage.FileSlice

// records returns the batches of resp.Topics[t].Partitions[p] in files.
func (fb fileBatches) records(t, p int) []fetchwire.FileRecords {
	return fetchwire.FileRecordsOf(fb[[2]int{t, p}])
}

// bytes is the size of the batches of resp.Topics[t].Partitions[p] in
// files.
func (fb fileBatches) bytes(t, p int) int { return storage.SlicesLen(fb[[2]int{t, p}]) }

// readVia says how a response's record batches are read. With files, those
// of partitions whose log can locate them (sliceReader) are left in their
// files and returned beside the response, whose RecordBatches stay nil for
// them. Else, with rb, they are read into rb's pooled memory where the log
// can (bufferedReader), which the caller releases once the response is
// written: a follower's fetch otherwise allocates (and the runtime clears)
// a buffer as large as the data.
type readVia struct {
	files bool
	rb    *storage.ReadBuffers
}

// handleFetch is HandleFetch, reading the batches as via says. refs, when
// not nil, holds a leaderRef for each partition of req (refs[t][p] for
// req.Topics[t].Partitions[p]): a session's, kept from fetch to fetch.
func handleFetch(ctx context.Context, req *kmsg.FetchRequest, lookup Lookup, refs [][]leaderRef, throttle *Throttle, via readVia) (*kmsg.FetchResponse, fileBatches) {
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	// One channel for the whole long poll: every partition without data
	// registers it with its leader (Leader.NotifyAfter).
	wake := make(chan struct{}, 1)
	for {
		resp, fb, bytes, w, held := fetchOnce(req, lookup, refs, throttle, via, wake)
		if bytes >= int(max(req.MinBytes, 1)) || (w == waitNone && held == 0) || !time.Now().Before(deadline) {
			return resp, fb
		}
		// This response is dropped unsent: its reads' memory can serve
		// the next.
		via.rb.Release()
		if w == waitReady {
			continue // data came between a partition's read and its registration
		}
		d := time.Until(deadline)
		if held > 0 && held < d {
			d = held
		}
		if !waitWake(ctx, wake, d) && (ctx.Err() != nil || !time.Now().Before(deadline)) {
			resp, fb, _, _, _ = fetchOnce(req, lookup, refs, throttle, via, nil)
			return resp, fb
		}
	}
}

// sliceReader is a LeaderLog that can locate batches in its files instead
// of reading them (*storage.Partition, storage.Partition.ReadSlices).
type sliceReader interface {
	ReadSlices(offset int64, maxBytes int32, upTo int64) ([]storage.FileSlice, bool, error)
}

// bufferedReader is a LeaderLog that reads into pooled memory
// (*storage.Partition, storage.Partition.ReadInto).
type bufferedReader interface {
	ReadInto(offset int64, maxBytes int32, upTo int64, rb *storage.ReadBuffers) ([]byte, error)
}

// waitWake waits for wake, the timeout or ctx; false on timeout/ctx.
func waitWake(ctx context.Context, wake <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// What a fetch without enough data can wait for (fetchOnce).
const (
	waitNone       = iota // nothing: answer now
	waitRegistered        // wake is registered with a partition without data
	waitReady             // a partition's data came after it was read: look again
)

// fetchOnce builds the response from the current state; bytes counts
// record bytes (and errors, which must be answered at once); with wake
// not nil, the partitions with no data register it with their leader
// (NotifyAfter) and wait says whether any did (waitRegistered) or found
// data had come meanwhile (waitReady); held, when not 0, is how long
// until the throttle lets the partitions it held back through.
func fetchOnce(req *kmsg.FetchRequest, lookup Lookup, refs [][]leaderRef, throttle *Throttle, via readVia, wake chan<- struct{}) (resp *kmsg.FetchResponse, fb fileBatches, bytes, wait int, held time.Duration) {
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	total := 0
	// One clock read for the pass, from the first leader's clock: the
	// leaders of a broker share one (the manager gives them time.Now, a
	// test its fake clock), and a session's pass over thousands of idle
	// partitions read it once per partition.
	var now time.Time
	// Sized up front: a session's pass answers its thousands of
	// partitions (most dropped again by fetchSession.finish), and growing
	// the list by appends allocated and cleared it several times over.
	resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(req.Topics))
	for ti, t := range req.Topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, 0, len(t.Partitions))
		for i := range t.Partitions {
			p := &t.Partitions[i]
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			var ref *leaderRef
			if refs != nil {
				ref = &refs[ti][i]
			}
			l, log, ok := ref.get(lookup, t.Topic, p.Partition)
			if !ok {
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			} else {
				throttled := throttle.LeaderThrottled(TopicPartition{t.Topic, p.Partition})
				hold := time.Duration(0)
				if throttled && !slices.Contains(l.ISR(), req.ReplicaID) {
					hold = throttle.Leader.Delay()
				}
				var slices *[]storage.FileSlice
				if via.files {
					slices = new([]storage.FileSlice)
				}
				if now.IsZero() {
					now = l.cfg.Now()
				}
				servePartition(req.ReplicaID, l, log, p, &rp, now, hold > 0, slices, via.rb)
				n := len(rp.RecordBatches)
				if slices != nil && len(*slices) > 0 {
					if fb == nil {
						fb = fileBatches{}
					}
					key := [2]int{ti, len(rt.Partitions)}
					fb[key] = *slices
					n += fb.bytes(key[0], key[1])
				}
				switch {
				case hold > 0:
					if held == 0 || hold < held {
						held = hold
					}
				case n == 0 && rp.ErrorCode == 0 && rp.DivergingEpoch.Epoch < 0 && wake != nil && wait != waitReady:
					if l.NotifyAfter(p.FetchOffset, req.ReplicaID, wake) {
						wait = waitReady
					} else {
						wait = waitRegistered
					}
				}
				if throttled {
					// In-sync replicas' bytes count against the bound
					// too: the copy gets what the ISR leaves of it.
					throttle.Leader.Record(n)
				}
				total += n
			}
			if rp.ErrorCode != 0 || rp.DivergingEpoch.Epoch >= 0 {
				total += 1 << 30 // answer now
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, fb, total, wait, held
}

// servePartition answers one partition, at now (the follower's fetch
// time, Leader.FetchedAt); hold leaves its data out (the
// throttle's), everything else being answered as usual. With slices not
// nil and a log that can locate its batches (sliceReader), the batches are
// left in their files: *slices says where, rp.RecordBatches stays nil.
// Else, with rb not nil and a log that can (bufferedReader), they are read
// into rb's memory.
func servePartition(replica int32, l *Leader, log LeaderLog, p *kmsg.FetchRequestTopicPartition, rp *kmsg.FetchResponseTopicPartition, now time.Time, hold bool, slices *[]storage.FileSlice, rb *storage.ReadBuffers) {
	epoch, hw := l.epochAndHighWatermark()
	rp.LogStartOffset = log.LogStartOffset()
	rp.HighWatermark = hw
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
	hw, err := l.FetchedAt(replica, p.FetchOffset, now)
	if err != nil {
		rp.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	rp.HighWatermark, rp.LastStableOffset = hw, hw
	if p.FetchOffset == leo || hold {
		return
	}
	if sr, ok := log.(sliceReader); ok && slices != nil {
		found, ok, err := sr.ReadSlices(p.FetchOffset, p.PartitionMaxBytes, leo)
		switch {
		case errors.Is(err, storage.ErrOffsetOutOfRange):
			rp.ErrorCode = kerr.OffsetOutOfRange.Code
			return
		case err != nil:
			rp.ErrorCode = kerr.KafkaStorageError.Code
			return
		case ok:
			*slices = found
			return
		}
		// Not located without reading: read them below.
	}
	var data []byte
	if br, ok := log.(bufferedReader); ok && rb != nil {
		data, err = br.ReadInto(p.FetchOffset, p.PartitionMaxBytes, leo, rb)
	} else {
		data, err = log.Read(p.FetchOffset, p.PartitionMaxBytes, leo)
	}
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		rp.ErrorCode = kerr.OffsetOutOfRange.Code
	case err != nil:
		rp.ErrorCode = kerr.KafkaStorageError.Code
	default:
		rp.RecordBatches = data
	}
}
