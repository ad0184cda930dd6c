package logs

import (
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PutLogEvents' limits, as CloudWatch Logs documents them.
const (
	maxBatchEvents = 10000
	maxBatchBytes  = 1048576 // messages in UTF-8 plus eventOverhead per event
	maxEventBytes  = 1 << 20
	eventOverhead  = 26
	maxPastAge     = 14 * 24 * time.Hour
	maxFutureAge   = 2 * time.Hour
	maxBatchSpan   = 24 * time.Hour
	// maxReadBytes bounds one GetLogEvents or FilterLogEvents answer (1 MB, as CloudWatch Logs).
	maxReadBytes = 1 << 20
)

type inputEvent struct {
	Timestamp *int64  `json:"timestamp"`
	Message   *string `json:"message"`
}

func (s *Service) putLogEvents(c *call) (any, error) {
	var in struct {
		streamName
		LogEvents     []inputEvent `json:"logEvents"`
		SequenceToken string       `json:"sequenceToken"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.streamARN(g.Name, in.LogStreamName)); err != nil {
		return nil, err
	}
	st, err := g.streamLocked(in.LogStreamName)
	if err != nil {
		return nil, err
	}
	if n := len(in.LogEvents); n < 1 || n > maxBatchEvents {
		return nil, invalidParameter("1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length between 1 and %d", maxBatchEvents)
	}
	size := 0
	for i, e := range in.LogEvents {
		if e.Timestamp == nil || e.Message == nil || *e.Message == "" {
			return nil, invalidParameter("1 validation error detected: Value at 'logEvents.%d.member' failed to satisfy constraint: timestamp and a message of at least 1 character are required", i+1)
		}
		if !utf8.ValidString(*e.Message) {
			return nil, invalidParameter("Log event %d is not valid UTF-8.", i)
		}
		if len(*e.Message)+eventOverhead > maxEventBytes {
			return nil, invalidParameter("Log event too large: %d bytes (at most %d).", len(*e.Message)+eventOverhead, maxEventBytes)
		}
		if i > 0 && *e.Timestamp < *in.LogEvents[i-1].Timestamp {
			return nil, invalidParameter("Log events in a single PutLogEvents request must be in chronological order.")
		}
		size += len(*e.Message) + eventOverhead
	}
	if size > maxBatchBytes {
		return nil, invalidParameter("Upload too large: %d bytes exceeds limit of %d", size, maxBatchBytes)
	}

	now := s.now()
	nowMs := now.UnixMilli()
	tooOld := now.Add(-maxPastAge).UnixMilli()
	expired := int64(math.MinInt64)
	if g.RetentionDays > 0 {
		expired = now.Add(-time.Duration(g.RetentionDays) * 24 * time.Hour).UnixMilli()
	}
	tooNew := now.Add(maxFutureAge).UnixMilli()
	// The batch is chronological: rejected events are a prefix (too old or expired) and a
	// suffix (too new).
	first, last := 0, len(in.LogEvents)
	var rejected struct {
		TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
		TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
		ExpiredLogEventEndIndex  *int `json:"expiredLogEventEndIndex,omitempty"`
	}
	for first < last && *in.LogEvents[first].Timestamp < max(tooOld, expired) {
		first++
	}
	if first > 0 {
		oldEnd, expiredEnd := 0, 0
		for i := 0; i < first; i++ {
			if *in.LogEvents[i].Timestamp < tooOld {
				oldEnd = i + 1
			} else {
				expiredEnd = i + 1
			}
		}
		if oldEnd > 0 {
			rejected.TooOldLogEventEndIndex = &oldEnd
		}
		if expiredEnd > 0 {
			rejected.ExpiredLogEventEndIndex = &expiredEnd
		}
	}
	for last > first && *in.LogEvents[last-1].Timestamp > tooNew {
		last--
	}
	if last < len(in.LogEvents) {
		start := last
		rejected.TooNewLogEventStartIndex = &start
	}
	valid := in.LogEvents[first:last]
	if len(valid) > 1 && *valid[len(valid)-1].Timestamp-*valid[0].Timestamp > maxBatchSpan.Milliseconds() {
		return nil, invalidParameter("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
	}
	if len(valid) > 0 {
		added := make([]event, len(valid))
		for i, e := range valid {
			s.nextSeq++
			added[i] = event{Timestamp: *e.Timestamp, Ingested: nowMs, Seq: s.nextSeq, Message: *e.Message}
			st.Bytes += int64(len(*e.Message))
		}
		sorted := len(st.Events) == 0 || !added[0].before(st.Events[len(st.Events)-1])
		st.Events = append(st.Events, added...)
		if !sorted {
			sort.SliceStable(st.Events, func(i, j int) bool { return st.Events[i].before(st.Events[j]) })
		}
		st.LastIngest = nowMs
		for st.Bytes > maxStreamBytes && len(st.Events) > 0 {
			st.Bytes -= int64(len(st.Events[0].Message))
			st.Events = st.Events[1:]
		}
		if err := s.changedLocked(false); err != nil {
			return nil, err
		}
	}
	out := struct {
		NextSequenceToken     string `json:"nextSequenceToken"`
		RejectedLogEventsInfo any    `json:"rejectedLogEventsInfo,omitempty"`
	}{NextSequenceToken: fmt.Sprintf("%056d", s.nextSeq)}
	if rejected.TooNewLogEventStartIndex != nil || rejected.TooOldLogEventEndIndex != nil || rejected.ExpiredLogEventEndIndex != nil {
		out.RejectedLogEventsInfo = rejected
	}
	return out, nil
}

// cursor is a place between a stream's events, which are ordered by (timestamp, seq): the
// events at or before it are behind, those after it ahead.
type cursor struct {
	ts  int64
	seq uint64
}

var (
	headCursor = cursor{ts: math.MinInt64}
	tailCursor = cursor{ts: math.MaxInt64, seq: math.MaxUint64}
)

func (c cursor) after(e event) bool { // reports whether e is behind c
	return e.Timestamp < c.ts || e.Timestamp == c.ts && e.Seq <= c.seq
}

// The tokens GetLogEvents hands out: f/ or b/ and the cursor's digits, as CloudWatch Logs' own
// tokens look.
func encodeCursor(dir byte, c cursor) string {
	return fmt.Sprintf("%c/%020d%020d", dir, uint64(c.ts)^(1<<63), c.seq)
}

func decodeCursor(token string) (byte, cursor, error) {
	if len(token) != 42 || token[1] != '/' || (token[0] != 'f' && token[0] != 'b') {
		return 0, cursor{}, invalidParameter("The specified nextToken is invalid.")
	}
	ts, err1 := strconv.ParseUint(token[2:22], 10, 64)
	seq, err2 := strconv.ParseUint(token[22:], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, cursor{}, invalidParameter("The specified nextToken is invalid.")
	}
	return token[0], cursor{ts: int64(ts ^ (1 << 63)), seq: seq}, nil
}

type outputEvent struct {
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
}

func (s *Service) getLogEvents(c *call) (any, error) {
	var in struct {
		groupName
		LogStreamName string `json:"logStreamName"`
		StartTime     *int64 `json:"startTime"`
		EndTime       *int64 `json:"endTime"`
		NextToken     string `json:"nextToken"`
		Limit         *int32 `json:"limit"`
		StartFromHead bool   `json:"startFromHead"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.streamARN(g.Name, in.LogStreamName)); err != nil {
		return nil, err
	}
	st, err := g.streamLocked(in.LogStreamName)
	if err != nil {
		return nil, err
	}
	limit, err := limitOf(in.Limit, maxBatchEvents, maxBatchEvents)
	if err != nil {
		return nil, err
	}
	s.expireLocked(g)
	inRange := func(e event) bool {
		return (in.StartTime == nil || e.Timestamp >= *in.StartTime) && (in.EndTime == nil || e.Timestamp < *in.EndTime)
	}
	forward, from := in.StartFromHead, headCursor
	if !forward {
		from = tailCursor
	}
	if in.NextToken != "" {
		dir, cur, err := decodeCursor(in.NextToken)
		if err != nil {
			return nil, err
		}
		forward, from = dir == 'f', cur
	}
	var picked []event
	bytes := 0
	take := func(e event) bool {
		if len(picked) == limit || bytes+len(e.Message)+eventOverhead > maxReadBytes {
			return false
		}
		picked = append(picked, e)
		bytes += len(e.Message) + eventOverhead
		return true
	}
	if forward {
		for _, e := range st.Events[sort.Search(len(st.Events), func(i int) bool { return !from.after(st.Events[i]) }):] {
			if inRange(e) && !take(e) {
				break
			}
		}
	} else {
		end := sort.Search(len(st.Events), func(i int) bool { return !from.after(st.Events[i]) })
		for i := end - 1; i >= 0; i-- {
			if e := st.Events[i]; inRange(e) && !take(e) {
				break
			}
		}
		for i, j := 0, len(picked)-1; i < j; i, j = i+1, j-1 {
			picked[i], picked[j] = picked[j], picked[i]
		}
	}
	out := struct {
		Events            []outputEvent `json:"events"`
		NextForwardToken  string        `json:"nextForwardToken"`
		NextBackwardToken string        `json:"nextBackwardToken"`
	}{Events: []outputEvent{}}
	for _, e := range picked {
		out.Events = append(out.Events, outputEvent{Timestamp: e.Timestamp, Message: e.Message, IngestionTime: e.Ingested})
	}
	// With nothing read, both tokens stay where the read started: a client polling forward
	// sees the same token back and knows it has reached the end, as with CloudWatch Logs.
	fwd, back := from, from
	if n := len(picked); n > 0 {
		fwd = cursor{ts: picked[n-1].Timestamp, seq: picked[n-1].Seq}
		back = cursor{ts: picked[0].Timestamp, seq: picked[0].Seq - 1}
	}
	out.NextForwardToken, out.NextBackwardToken = encodeCursor('f', fwd), encodeCursor('b', back)
	return out, nil
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

func (s *Service) filterLogEvents(c *call) (any, error) {
	var in struct {
		groupName
		LogStreamNames      []string `json:"logStreamNames"`
		LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		FilterPattern       string   `json:"filterPattern"`
		NextToken           string   `json:"nextToken"`
		Limit               *int32   `json:"limit"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, invalidParameter("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
	}
	if len(in.LogStreamNames) > 100 {
		return nil, invalidParameter("1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: Member must have length less than or equal to 100")
	}
	limit, err := limitOf(in.Limit, maxBatchEvents, maxBatchEvents)
	if err != nil {
		return nil, err
	}
	match, err := compileFilter(in.FilterPattern)
	if err != nil {
		return nil, invalidParameter("%v", err)
	}
	from := headCursor
	if in.NextToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		dir, cur, derr := decodeCursor(string(raw))
		if err != nil || derr != nil || dir != 'f' {
			return nil, invalidParameter("The specified nextToken is invalid.")
		}
		from = cur
	}
	s.expireLocked(g)
	type hit struct {
		stream string
		e      event
	}
	var hits []hit
	var searched []map[string]any
	for _, name := range sortedKeys(g.Streams) {
		if len(in.LogStreamNames) > 0 && !containsString(in.LogStreamNames, name) || !strings.HasPrefix(name, in.LogStreamNamePrefix) {
			continue
		}
		st := g.Streams[name]
		searched = append(searched, map[string]any{"logStreamName": name, "searchedCompletely": true})
		for _, e := range st.Events[sort.Search(len(st.Events), func(i int) bool { return !from.after(st.Events[i]) }):] {
			if (in.StartTime == nil || e.Timestamp >= *in.StartTime) && (in.EndTime == nil || e.Timestamp < *in.EndTime) && match(e.Message) {
				hits = append(hits, hit{name, e})
			}
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].e.before(hits[j].e) })
	out := struct {
		Events             []filteredEvent  `json:"events"`
		SearchedLogStreams []map[string]any `json:"searchedLogStreams"`
		NextToken          string           `json:"nextToken,omitempty"`
	}{Events: []filteredEvent{}, SearchedLogStreams: searched}
	if out.SearchedLogStreams == nil {
		out.SearchedLogStreams = []map[string]any{}
	}
	bytes := 0
	for i, h := range hits {
		if len(out.Events) > 0 && (len(out.Events) == limit || bytes+len(h.e.Message)+eventOverhead > maxReadBytes) {
			last := hits[i-1].e
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(encodeCursor('f', cursor{ts: last.Timestamp, seq: last.Seq})))
			break
		}
		bytes += len(h.e.Message) + eventOverhead
		out.Events = append(out.Events, filteredEvent{LogStreamName: h.stream, Timestamp: h.e.Timestamp, Message: h.e.Message,
			IngestionTime: h.e.Ingested, EventID: fmt.Sprintf("%056d", h.e.Seq)})
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// encodeOffset and decodeOffset are the opaque tokens of lists paged by position.
func encodeOffset(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o/" + strconv.Itoa(n)))
}

func decodeOffset(token string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, err
	}
	rest, ok := strings.CutPrefix(string(raw), "o/")
	if !ok {
		return 0, fmt.Errorf("not an offset token")
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not an offset token")
	}
	return n, nil
}
