package metrics

import (
	"cmp"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"time"
)

// Snapshot is every metric read at one moment: the counters since start,
// the broker's state and the host's figures. Prometheus exports it as is
// (counters stay counters); the CloudWatch shipper turns two consecutive
// snapshots into MSK's per-second rates and per-interval means.
type Snapshot struct {
	Time time.Time

	BytesIn, BytesOut, MessagesIn           int64
	ReplicationBytesIn, ReplicationBytesOut int64
	ProduceConversions                      int64
	Connections                             int64
	ClientConnections                       [numClientAuths]int64 // by ClientAuth
	ConnectionsCreated, ConnectionsClosed   int64
	ConnectionsRefused                      [numRefusals]int64 // by Refusal
	TrafficIn, TrafficOut                   int64              // bytes read from / written to client connections
	RequestBytesSum, RequestCount           int64
	RequestTimes                            [numRequestKinds]histogramSnapshot
	// LogFlushTimes are the log's sync rounds, LogFlushFiles the files
	// they synced; FollowerFetchTimes and FollowerDurableTimes the two
	// halves of this broker's follower fetch cycles (RecordFollowerFetch).
	LogFlushTimes                            histogramSnapshot
	LogFlushFiles                            int64
	FollowerFetchTimes, FollowerDurableTimes histogramSnapshot
	Topics                                   []TopicTotals // sorted by name
	Throttles                                [numThrottleKinds]ThrottleTotals
	ExemptCount, ExemptNanos                 int64
	// LogLinesDropped is the log shipper's count; LogShipping says there
	// is one.
	LogLinesDropped int64
	LogShipping     bool
	// FetchMemory is the broker's read budget (SetFetchMemorySource);
	// FetchMemoryKnown says there is one.
	FetchMemory      FetchMemory
	FetchMemoryKnown bool
	// RequestMemory are the request memory budgets by listener kind
	// (SetRequestMemorySource); nil when none is registered.
	RequestMemory []RequestMemory

	// State is nil when no state source is registered.
	State *BrokerState

	// Host figures; the Err fields say why one could not be read (the
	// metric is then left out rather than reported as zero).
	CPU         cpuTimes
	CPUErr      error
	Memory      memInfo
	MemoryErr   error
	Network     netCounters
	NetworkErr  error
	DataDisk    diskUsage
	DataDiskErr error
	RootDisk    diskUsage
	RootDiskErr error

	// HeapLive is the Go heap's live bytes as of the last garbage
	// collection (0 before the first), HeapLimit the runtime's soft memory
	// limit (GOMEMLIMIT; 0 when none is set).
	HeapLive, HeapLimit uint64

	// Lag holds the groups' lag (nil without a lag source) and TimeLag the
	// estimates, TimeLag[i][j] for Lag[i].Partitions[j].
	Lag     []GroupLag
	TimeLag [][]partitionTimeLag
}

// TopicTotals are one topic's counters since start (or since the topic was
// created again).
type TopicTotals struct {
	Topic                         string
	BytesIn, BytesOut, MessagesIn int64
}

// Snapshot reads every metric now. It calls the state and lag sources and
// reads /proc and the file systems, so it is for scrapes and shipments,
// not for the hot path.
func (r *Registry) Snapshot() *Snapshot {
	s := &Snapshot{
		Time:                r.now(),
		BytesIn:             r.bytesIn.Load(),
		BytesOut:            r.bytesOut.Load(),
		MessagesIn:          r.messagesIn.Load(),
		ReplicationBytesIn:  r.replicationBytesIn.Load(),
		ReplicationBytesOut: r.replicationBytesOut.Load(),
		ProduceConversions:  r.produceConversions.Load(),
		Connections:         r.connOpen.Load(),
		ConnectionsCreated:  r.connCreated.Load(),
		ConnectionsClosed:   r.connClosed.Load(),
		TrafficIn:           r.trafficIn.Load(),
		TrafficOut:          r.trafficOut.Load(),
		RequestBytesSum:     r.requestBytes.sum.Load(),
		RequestCount:        r.requestBytes.count.Load(),
	}
	for why := range r.connRefused {
		s.ConnectionsRefused[why] = r.connRefused[why].Load()
	}
	for a := range r.clientConns {
		s.ClientConnections[a] = r.clientConns[a].Load()
	}
	for k := range r.requests {
		s.RequestTimes[k] = r.requests[k].snapshot()
	}
	s.LogFlushTimes, s.LogFlushFiles = r.logFlush.snapshot(), r.logFlushFiles.Load()
	s.FollowerFetchTimes, s.FollowerDurableTimes = r.followerFetch.snapshot(), r.followerDurable.snapshot()
	topics := *r.topics.Load()
	s.Topics = make([]TopicTotals, 0, len(topics))
	for name, t := range topics {
		s.Topics = append(s.Topics, TopicTotals{Topic: name, BytesIn: t.bytesIn.Load(), BytesOut: t.bytesOut.Load(), MessagesIn: t.messagesIn.Load()})
	}
	slices.SortFunc(s.Topics, func(a, b TopicTotals) int { return cmp.Compare(a.Topic, b.Topic) })

	s.Throttles = r.throttleTotals(s.Time)
	s.ExemptCount, s.ExemptNanos = r.exempt.count.Load(), r.exempt.sum.Load()
	if f := r.logDroppedSource(); f != nil {
		s.LogShipping, s.LogLinesDropped = true, f()
	}
	if f := r.requestMemorySource(); f != nil {
		s.RequestMemory = f()
	}
	if f := r.fetchMemorySource(); f != nil {
		s.FetchMemory, s.FetchMemoryKnown = f(), true
	}

	state, lag, _ := r.sources()
	if state != nil {
		st := state()
		s.State = &st
	}
	if lag != nil {
		s.Lag = lag()
		s.TimeLag = r.timeLag.observe(s.Time, s.Lag)
	}
	s.CPU, s.CPUErr = readCPUTimes(r.opts.ProcRoot)
	s.Memory, s.MemoryErr = readMemInfo(r.opts.ProcRoot)
	s.Network, s.NetworkErr = readNetCounters(r.opts.ProcRoot)
	s.DataDisk, s.DataDiskErr = readDiskUsage(r.opts.DataDir)
	s.RootDisk, s.RootDiskErr = readDiskUsage(r.opts.RootDir)
	s.HeapLive, s.HeapLimit = readHeap()
	return s
}

// heapSample is the runtime metric of the live heap after the last GC.
var heapSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

// readHeap reads the Go heap's live bytes after the last GC and the soft
// memory limit (0 when unset, which the runtime reports as MaxInt64).
func readHeap() (live, limit uint64) {
	sample := slices.Clone(heapSample)
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		limit = uint64(l)
	}
	return live, limit
}
