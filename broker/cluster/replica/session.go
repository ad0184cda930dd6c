package replica

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sessions between brokers (KIP-227, as Kafka's replica fetchers use
// them).
//
// A follower's fetch names every partition it follows from this broker;
// with thousands of idle partitions, building, encoding, decoding and
// answering those lists twice a second is most of what an idle broker
// does. So a follower opens a session with a full fetch (session epoch 0,
// every partition named) and then sends incremental fetches (the session's
// id and next epoch) that name only the partitions whose fetch state
// changed (fetch offset, last fetched epoch, log start, current leader
// epoch) or that it starts following again, and forget those it stops
// fetching. The leader keeps each session's partitions with the state
// last named: a partition absent from an incremental fetch is fetched at
// that state, so its fetch offset still counts as the follower's position
// for the high watermark and the ISR (Leader.Fetched runs for every
// partition of the session on every fetch, as before). The leader answers
// the partitions with news: records, an error, a diverging epoch, a high
// watermark, last stable offset or log start offset other than the one
// last sent, and every partition the request named (the follower names a
// partition it restarted following, whose new state must be told even if
// nothing moved).
//
// Sessions here are the replication listener's, separate from the client
// listeners' (broker/server): a follower broker keeps one session per
// leader broker, so a new session of a replica replaces its previous one,
// and the cache holds at most maxFetchSessions (the least recently used
// is evicted; its follower's next incremental fetch gets
// FETCH_SESSION_ID_NOT_FOUND and starts over with a full fetch, as after
// INVALID_FETCH_SESSION_EPOCH).

// defaultMaxFetchSessions bounds the replication listener's sessions: one
// per follower broker is the need.
const defaultMaxFetchSessions = 1000

// Session epochs with a meaning of their own (KIP-227).
const (
	sessionEpochFull  = 0  // a full fetch that opens a session
	sessionEpochNone  = -1 // a full fetch without (or closing) a session
	minSessionVersion = 7  // Fetch v7 brought sessions
)

// sessionSent is what the follower was last told of a partition; sentHW
// starts below any offset, so a partition's first answer always carries it.
type sessionSent struct {
	hw, lso, logStart int64
}

type fetchSession struct {
	id, replica int32
	mu          sync.Mutex // held for the whole of one fetch on the session
	evicted     atomic.Bool
	epoch       int32 // the epoch the next incremental fetch must carry
	// req names every partition of the session at the state last named:
	// the fetch the leader answers. sent[t][p] is what was last told of
	// req.Topics[t].Partitions[p] (a response lists the partitions of its
	// request in the same order), at[tp] where tp is in both. A fetch that
	// names nothing new touches neither index.
	req  *kmsg.FetchRequest
	sent [][]sessionSent
	at   map[TopicPartition][2]int
	// leaders[t][p] is the lookup of req.Topics[t].Partitions[p], kept
	// in step with sent.
	leaders [][]leaderRef
	// lastUsed is under the cache's lock.
	lastUsed time.Time
}

type sessionCache struct {
	mu        sync.Mutex
	max       int
	nextID    int32
	byID      map[int32]*fetchSession
	byReplica map[int32]*fetchSession
}

func newSessionCache(max int) *sessionCache {
	return &sessionCache{max: max, byID: map[int32]*fetchSession{}, byReplica: map[int32]*fetchSession{}}
}

// removeLocked drops s from the cache.
func (c *sessionCache) removeLocked(s *fetchSession) {
	delete(c.byID, s.id)
	if c.byReplica[s.replica] == s {
		delete(c.byReplica, s.replica)
	}
	s.evicted.Store(true)
}

func (c *sessionCache) drop(id, replica int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.byID[id]; ok && s.replica == replica {
		c.removeLocked(s)
	}
}

// create opens a session for replica, replacing its previous one and
// evicting the least recently used when the cache is full; nil when
// sessions are off (max 0).
func (c *sessionCache) create(replica int32, now time.Time) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 {
		return nil
	}
	if old, ok := c.byReplica[replica]; ok {
		c.removeLocked(old)
	}
	for len(c.byID) >= c.max {
		var lru *fetchSession
		for _, s := range c.byID {
			if lru == nil || s.lastUsed.Before(lru.lastUsed) {
				lru = s
			}
		}
		c.removeLocked(lru)
	}
	for {
		c.nextID++
		if c.nextID <= 0 {
			c.nextID = 1
		}
		if _, taken := c.byID[c.nextID]; !taken {
			break
		}
	}
	s := &fetchSession{id: c.nextID, replica: replica, req: kmsg.NewPtrFetchRequest(), at: map[TopicPartition][2]int{}, lastUsed: now}
	c.byID[s.id], c.byReplica[replica] = s, s
	return s
}

func (c *sessionCache) get(id, replica int32, now time.Time) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.byID[id]
	if !ok || s.replica != replica {
		return nil
	}
	s.lastUsed = now
	return s
}

// len is the number of open sessions.
func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}

// begin resolves req's session. With a session, it is returned locked
// (the caller calls finish, which unlocks it) with the fetch to answer:
// every partition of the session. Without one (sessions off, an old
// version, epoch -1), req is answered as it is. A code other than 0 is
// the top-level error to answer with.
func (c *sessionCache) begin(req *kmsg.FetchRequest, now time.Time) (*fetchSession, *kmsg.FetchRequest, int16) {
	if req.GetVersion() < minSessionVersion {
		return nil, req, 0
	}
	switch req.SessionEpoch {
	case sessionEpochNone:
		if req.SessionID != 0 {
			c.drop(req.SessionID, req.ReplicaID)
		}
		return nil, req, 0
	case sessionEpochFull:
		if req.SessionID != 0 {
			c.drop(req.SessionID, req.ReplicaID)
		}
		s := c.create(req.ReplicaID, now)
		if s == nil {
			return nil, req, 0
		}
		s.mu.Lock()
		s.update(req)
		s.epoch = 1
		return s, s.request(req), 0
	}
	s := c.get(req.SessionID, req.ReplicaID, now)
	if s == nil {
		return nil, nil, kerr.FetchSessionIDNotFound.Code
	}
	s.mu.Lock()
	switch {
	case s.evicted.Load():
		s.mu.Unlock()
		return nil, nil, kerr.FetchSessionIDNotFound.Code
	case req.SessionEpoch != s.epoch:
		s.mu.Unlock()
		return nil, nil, kerr.InvalidFetchSessionEpoch.Code
	}
	s.epoch = nextSessionEpoch(s.epoch)
	s.update(req)
	return s, s.request(req), 0
}

// nextSessionEpoch follows epoch, wrapping past the largest int32 to 1 (0
// and -1 have their own meanings).
func nextSessionEpoch(epoch int32) int32 {
	if epoch == 1<<31-1 {
		return 1
	}
	return epoch + 1
}

// update takes req's forgotten and named partitions into the session.
func (s *fetchSession) update(req *kmsg.FetchRequest) {
	forgotten := false
	for _, t := range req.ForgottenTopics {
		for _, p := range t.Partitions {
			if at, ok := s.at[TopicPartition{t.Topic, p}]; ok {
				s.sent[at[0]][at[1]].hw = forgottenHW
				forgotten = true
			}
		}
	}
	if forgotten {
		s.compact()
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := TopicPartition{t.Topic, p.Partition}
			if at, ok := s.at[tp]; ok {
				s.req.Topics[at[0]].Partitions[at[1]] = p
				continue
			}
			ti := slices.IndexFunc(s.req.Topics, func(rt kmsg.FetchRequestTopic) bool { return rt.Topic == t.Topic })
			if ti < 0 {
				rt := kmsg.NewFetchRequestTopic()
				rt.Topic = t.Topic
				s.req.Topics = append(s.req.Topics, rt)
				s.sent = append(s.sent, nil)
				s.leaders = append(s.leaders, nil)
				ti = len(s.req.Topics) - 1
			}
			s.req.Topics[ti].Partitions = append(s.req.Topics[ti].Partitions, p)
			s.sent[ti] = append(s.sent[ti], sessionSent{hw: neverSentHW})
			s.leaders[ti] = append(s.leaders[ti], leaderRef{})
			s.at[tp] = [2]int{ti, len(s.sent[ti]) - 1}
		}
	}
}

// Marks of sessionSent.hw: a partition never answered in the session, and
// one forgotten (to be compacted away).
const (
	neverSentHW = -1 << 63
	forgottenHW = neverSentHW + 1
)

// compact drops the partitions marked forgotten and re-indexes the rest.
func (s *fetchSession) compact() {
	topics, sent, leaders := s.req.Topics[:0], s.sent[:0], s.leaders[:0]
	clear(s.at)
	for ti, t := range s.req.Topics {
		parts, ps, ls := t.Partitions[:0], s.sent[ti][:0], s.leaders[ti][:0]
		for pi, p := range t.Partitions {
			if s.sent[ti][pi].hw == forgottenHW {
				continue
			}
			s.at[TopicPartition{t.Topic, p.Partition}] = [2]int{len(topics), len(parts)}
			parts, ps, ls = append(parts, p), append(ps, s.sent[ti][pi]), append(ls, s.leaders[ti][pi])
		}
		clear(s.leaders[ti][len(ls):])
		if len(parts) > 0 {
			t.Partitions = parts
			topics, sent, leaders = append(topics, t), append(sent, ps), append(leaders, ls)
		}
	}
	clear(s.req.Topics[len(topics):])
	clear(s.leaders[len(leaders):])
	s.req.Topics, s.sent, s.leaders = topics, sent, leaders
}

// request is the fetch of every partition of the session, shaped by req
// (wait, sizes, isolation).
func (s *fetchSession) request(req *kmsg.FetchRequest) *kmsg.FetchRequest {
	s.req.SetVersion(req.GetVersion())
	s.req.ReplicaID, s.req.MaxWaitMillis, s.req.MinBytes, s.req.MaxBytes = req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes
	s.req.IsolationLevel, s.req.SessionID, s.req.SessionEpoch = req.IsolationLevel, s.id, req.SessionEpoch
	return s.req
}

// finish keeps, of resp (the answer to the session's whole fetch, whose
// batches left in files are files), the partitions the follower must be
// told of (see the top of this file), records what it is told, and
// unlocks the session. The files are re-keyed to the kept partitions'
// places.
func (s *fetchSession) finish(req *kmsg.FetchRequest, resp *kmsg.FetchResponse, files fileBatches) fileBatches {
	defer s.mu.Unlock()
	resp.SessionID = s.id
	var named map[TopicPartition]bool
	if len(req.Topics) > 0 {
		named = map[TopicPartition]bool{}
	}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			named[TopicPartition{t.Topic, p.Partition}] = true
		}
	}
	var kept fileBatches
	topics := resp.Topics[:0]
	for ti := range resp.Topics {
		t := resp.Topics[ti]
		parts := t.Partitions[:0]
		for pi := range t.Partitions {
			rp := &t.Partitions[pi]
			sent := &s.sent[ti][pi]
			news := rp.ErrorCode != 0 || rp.DivergingEpoch.Epoch >= 0 ||
				len(rp.RecordBatches) > 0 || files.bytes(ti, pi) > 0 ||
				rp.HighWatermark != sent.hw || rp.LastStableOffset != sent.lso || rp.LogStartOffset != sent.logStart ||
				named[TopicPartition{t.Topic, rp.Partition}]
			if !news {
				continue
			}
			sent.hw, sent.lso, sent.logStart = rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset
			if f, ok := files[[2]int{ti, pi}]; ok {
				if kept == nil {
					kept = fileBatches{}
				}
				kept[[2]int{len(topics), len(parts)}] = f
			}
			parts = append(parts, *rp)
		}
		if len(parts) > 0 {
			t.Partitions = parts
			topics = append(topics, t)
		}
	}
	resp.Topics = topics
	return kept
}
