package server

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Incremental fetch sessions (KIP-227).
//
// A consumer that fetches many partitions sends them all once (a full fetch
// with epoch 0), gets a session id back, and from then on sends only what
// changed (new fetch offsets, added and forgotten partitions) with the
// session's next epoch; the broker answers only partitions that have
// something new: records, an error, or a moved high watermark, last stable
// offset or log start offset. This saves request and response bytes and
// per-partition work when most partitions are idle.
//
// Sessions live in a broker-wide cache of max.incremental.fetch.session.cache.slots
// entries. When it is full and no session has been idle for
// sessionIdleEviction, a new session is refused the way KIP-227 allows:
// the full fetch is answered with session id 0, and the client keeps
// sending full fetches. A slot count of 0 turns sessions off that way.

// sessionIdleEviction is how long a session must be unused before a new
// one may take its slot.
const sessionIdleEviction = time.Minute

// Fetch session epochs with a meaning of their own.
const (
	sessionEpochInitial = 0  // full fetch that asks for a new session
	sessionEpochFinal   = -1 // full fetch without (or closing) a session
)

type sessionKey struct {
	topic     string   // by name, up to Fetch v12
	topicID   [16]byte // by id, from Fetch v13
	partition int32
}

type sessionPartition struct {
	req kmsg.FetchRequestTopicPartition // the latest request state for it
	// What the client was last told, to decide whether an incremental
	// response must include the partition.
	sent                          bool
	sentHW, sentLSO, sentLogStart int64
}

type fetchSession struct {
	id       int32
	mu       sync.Mutex // held for the whole of one fetch on the session
	epoch    int32      // the epoch the next incremental request must carry (0 until the creating fetch is answered)
	order    []sessionKey
	parts    map[sessionKey]*sessionPartition
	lastUsed time.Time
}

type fetchSessionCache struct {
	mu       sync.Mutex
	sessions map[int32]*fetchSession
}

func (c *fetchSessionCache) remove(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, id)
}

// create makes a session for a full fetch, or returns nil when the cache
// has no slot (the fetch is then answered without a session).
func (c *fetchSessionCache) create(slots int, now time.Time) *fetchSession {
	if slots <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions == nil {
		c.sessions = map[int32]*fetchSession{}
	}
	if len(c.sessions) >= slots {
		var oldest *fetchSession
		for _, s := range c.sessions {
			if oldest == nil || s.lastUsed.Before(oldest.lastUsed) {
				oldest = s
			}
		}
		if oldest == nil || now.Sub(oldest.lastUsed) < sessionIdleEviction {
			return nil
		}
		delete(c.sessions, oldest.id)
	}
	id := rand.Int32N(1<<31-1) + 1 // 0 means "no session"
	for c.sessions[id] != nil {
		id = rand.Int32N(1<<31-1) + 1
	}
	s := &fetchSession{id: id, parts: map[sessionKey]*sessionPartition{}, lastUsed: now}
	c.sessions[id] = s
	return s
}

func (c *fetchSessionCache) get(id int32) *fetchSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

// key returns the session key of a requested topic partition.
func sessionKeyOf(version int16, topic string, topicID [16]byte, partition int32) sessionKey {
	if version >= 13 {
		return sessionKey{topicID: topicID, partition: partition}
	}
	return sessionKey{topic: topic, partition: partition}
}

// update records the partitions of a request in the session: new or
// changed ones, then forgotten ones.
func (s *fetchSession) update(req *kmsg.FetchRequest) {
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := sessionKeyOf(req.Version, rt.Topic, rt.TopicID, rp.Partition)
			if sp, ok := s.parts[k]; ok {
				sp.req = rp
				continue
			}
			s.parts[k] = &sessionPartition{req: rp}
			s.order = append(s.order, k)
		}
	}
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			k := sessionKeyOf(req.Version, ft.Topic, ft.TopicID, p)
			if _, ok := s.parts[k]; ok {
				delete(s.parts, k)
				s.order = slices.DeleteFunc(s.order, func(o sessionKey) bool { return o == k })
			}
		}
	}
}

// topics is the session's partition list as request topics, in the
// session's order (partitions of one topic kept together as Kafka expects
// in a response).
func (s *fetchSession) topics() []kmsg.FetchRequestTopic {
	var out []kmsg.FetchRequestTopic
	index := map[sessionKey]int{} // topic (partition zeroed) -> index in out
	for _, k := range s.order {
		tk := sessionKey{topic: k.topic, topicID: k.topicID}
		i, ok := index[tk]
		if !ok {
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = k.topic, k.topicID
			out = append(out, t)
			i = len(out) - 1
			index[tk] = i
		}
		out[i].Partitions = append(out[i].Partitions, s.parts[k].req)
	}
	return out
}

// mustRespond reports whether an incremental response has to include a
// partition: it has records or an error, or the client's view of its
// offsets is out of date.
func (sp *sessionPartition) mustRespond(p *kmsg.FetchResponseTopicPartition, records int) bool {
	return records > 0 || p.ErrorCode != 0 || !sp.sent ||
		p.HighWatermark != sp.sentHW || p.LastStableOffset != sp.sentLSO || p.LogStartOffset != sp.sentLogStart ||
		p.DivergingEpoch.Epoch != -1
}

// filter drops the partitions an incremental response need not carry. It
// does not change the session.
func (s *fetchSession) filter(version int16, resp *kmsg.FetchResponse, files fetchFiles) {
	topics := resp.Topics[:0]
	for _, t := range resp.Topics {
		parts := t.Partitions[:0]
		for i := range t.Partitions {
			p := &t.Partitions[i]
			sp, ok := s.parts[sessionKeyOf(version, t.Topic, t.TopicID, p.Partition)]
			if !ok || sp.mustRespond(p, files.bytes(&t, p)) {
				parts = append(parts, *p)
			}
		}
		if len(parts) > 0 {
			t.Partitions = parts
			topics = append(topics, t)
		}
	}
	resp.Topics = topics
}

// sent records what a response told the client, moves partitions that
// returned records to the back of the order (so a response size limit
// does not starve the others, as KIP-227 suggests) and advances the epoch.
func (s *fetchSession) sent(version int16, resp *kmsg.FetchResponse, files fetchFiles, now time.Time) {
	var served []sessionKey
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			k := sessionKeyOf(version, t.Topic, t.TopicID, p.Partition)
			sp, ok := s.parts[k]
			if !ok {
				continue
			}
			sp.sent = true
			sp.sentHW, sp.sentLSO, sp.sentLogStart = p.HighWatermark, p.LastStableOffset, p.LogStartOffset
			if files.bytes(t, p) > 0 {
				served = append(served, k)
			}
		}
	}
	if len(served) > 0 {
		rest := slices.DeleteFunc(slices.Clone(s.order), func(k sessionKey) bool { return slices.Contains(served, k) })
		s.order = append(rest, served...)
	}
	s.epoch++
	if s.epoch < 1 { // wrapped: epochs run 1..MaxInt32
		s.epoch = 1
	}
	s.lastUsed = now
}

// beginFetchSession resolves the session side of a Fetch request (v7+).
// It returns the request to serve (for an incremental fetch: the session's
// whole partition list), the session (locked; nil for a sessionless
// fetch), whether the response is incremental, and an error code for the
// whole response.
func (s *Server) beginFetchSession(req *kmsg.FetchRequest) (*kmsg.FetchRequest, *fetchSession, bool, int16) {
	now := time.Now()
	if req.SessionEpoch == sessionEpochInitial || req.SessionEpoch == sessionEpochFinal {
		// A full fetch; it closes the session it names.
		if req.SessionID != 0 {
			s.fetchSessions.remove(req.SessionID)
		}
		if req.SessionEpoch == sessionEpochFinal {
			return req, nil, false, 0
		}
		sess := s.fetchSessions.create(s.Config().FetchSessionCacheSlots, now)
		if sess == nil {
			return req, nil, false, 0 // refused: answered without a session
		}
		sess.mu.Lock()
		sess.update(req)
		s.log.Debug("fetch session created", "session_id", sess.id, "partitions", len(sess.parts))
		return req, sess, false, 0
	}
	if req.SessionID == 0 {
		return nil, nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	sess := s.fetchSessions.get(req.SessionID)
	if sess == nil {
		return nil, nil, false, kerr.FetchSessionIDNotFound.Code
	}
	sess.mu.Lock()
	if req.SessionEpoch != sess.epoch {
		sess.mu.Unlock()
		return nil, nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	sess.update(req)
	work := *req
	work.Topics = sess.topics()
	work.ForgottenTopics = nil
	return &work, sess, true, 0
}
