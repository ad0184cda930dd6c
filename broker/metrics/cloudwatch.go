package metrics

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Level is an Amazon MSK enhanced-monitoring level: each level ships every
// metric of the levels below it plus its own.
type Level int

// Monitoring levels, MSK's names.
const (
	LevelDefault Level = iota
	LevelPerBroker
	LevelPerTopicPerBroker
	LevelPerTopicPerPartition
)

var levelNames = [...]string{"DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l]
}

// ParseLevel reads a level by its MSK name (case-insensitive).
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("unknown monitoring level %q: want one of %s", s, strings.Join(levelNames[:], ", "))
}

// Dimension names, as in AWS/Kafka.
const (
	DimClusterName   = "Cluster Name"
	DimBrokerID      = "Broker ID"
	DimTopic         = "Topic"
	DimConsumerGroup = "Consumer Group"
	DimPartition     = "Partition"
	DimClientAuth    = "Client Authentication"
)

// dataBuilder accumulates the metric data of one shipment.
type dataBuilder struct {
	at      time.Time
	cluster []types.Dimension
	broker  []types.Dimension
	out     []types.MetricDatum
}

func dims(base []types.Dimension, more ...string) []types.Dimension {
	d := make([]types.Dimension, 0, len(base)+len(more)/2)
	d = append(d, base...)
	for i := 0; i+1 < len(more); i += 2 {
		d = append(d, types.Dimension{Name: aws.String(more[i]), Value: aws.String(more[i+1])})
	}
	return d
}

func (b *dataBuilder) add(name string, unit types.StandardUnit, v float64, d []types.Dimension) {
	b.out = append(b.out, types.MetricDatum{
		MetricName: aws.String(name),
		Dimensions: d,
		Timestamp:  aws.Time(b.at),
		Unit:       unit,
		Value:      aws.Float64(v),
	})
}

// delta is how much a counter grew; a counter that went down (a topic
// deleted and created again) restarted from zero.
func delta(prev, cur int64) int64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

func udelta(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// meanMs is the mean of a duration histogram between two readings, in
// milliseconds; ok is false when nothing was observed.
func meanMs(prev, cur histogramSnapshot) (float64, bool) {
	n := delta(prev.Count, cur.Count)
	if n == 0 {
		return 0, false
	}
	sum := delta(int64(prev.Sum), int64(cur.Sum))
	return float64(sum) / float64(n) / float64(time.Millisecond), true
}

// heapAfterGCPercent is MSK's HeapMemoryAfterGC for a Go broker: the live
// heap after the last garbage collection as a share of what the heap may
// use, the soft memory limit (GOMEMLIMIT) when set, else the host's memory.
func heapAfterGCPercent(s *Snapshot) (float64, bool) {
	limit := s.HeapLimit
	if limit == 0 && s.MemoryErr == nil {
		limit = s.Memory.Total
	}
	if limit == 0 || s.HeapLive == 0 {
		return 0, false
	}
	return 100 * float64(s.HeapLive) / float64(limit), true
}

// allRequestsMeanMs is MSK's RequestTime for a broker without Kafka's
// thread pools: the mean handling time of every request of the interval,
// in milliseconds (a Fetch's long-poll wait included).
func allRequestsMeanMs(prev, cur *Snapshot) (float64, bool) {
	var n, sum int64
	for k := range cur.RequestTimes {
		n += delta(prev.RequestTimes[k].Count, cur.RequestTimes[k].Count)
		sum += delta(int64(prev.RequestTimes[k].Sum), int64(cur.RequestTimes[k].Sum))
	}
	if n == 0 {
		return 0, false
	}
	return float64(sum) / float64(n) / float64(time.Millisecond), true
}

// CloudWatchData turns two consecutive snapshots into the metric data of
// one shipment at level: rates are the counters' growth divided by the
// time between the snapshots, means are over the requests of that
// interval, gauges are the current snapshot's. Metrics that could not be
// measured (a missing /proc file, no state source, a mean over no
// requests) are left out rather than reported as zero.
func CloudWatchData(prev, cur *Snapshot, level Level, clusterName string, brokerID int32) []types.MetricDatum {
	b := &dataBuilder{at: cur.Time}
	b.cluster = dims(nil, DimClusterName, clusterName)
	b.broker = dims(b.cluster, DimBrokerID, strconv.Itoa(int(brokerID)))
	secs := cur.Time.Sub(prev.Time).Seconds()
	rate := func(p, c int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(delta(p, c)) / secs
	}

	// DEFAULT: cluster-level.
	if st := cur.State; st != nil {
		active := 0.0
		if st.ActiveController {
			active = 1
		}
		b.add("ActiveControllerCount", types.StandardUnitCount, active, b.cluster)
		b.add("GlobalPartitionCount", types.StandardUnitCount, float64(st.GlobalPartitionCount), b.cluster)
		b.add("GlobalTopicCount", types.StandardUnitCount, float64(st.GlobalTopicCount), b.cluster)
		b.add("OfflinePartitionsCount", types.StandardUnitCount, float64(st.OfflinePartitionsCount), b.cluster)
	}
	if cur.DataDiskErr == nil {
		b.add("KafkaDataLogsDiskUsed", types.StandardUnitPercent, cur.DataDisk.UsedPercent(), b.cluster)
	}

	// DEFAULT: per broker.
	b.add("ConnectionCount", types.StandardUnitCount, float64(cur.Connections), b.broker)
	// Every kind each time, a kind without connections as 0, so that an
	// alarm on a kind sees it drop to none.
	for a := range numClientAuths {
		b.add("ClientConnectionCount", types.StandardUnitCount, float64(cur.ClientConnections[a]), dims(b.broker, DimClientAuth, a.String()))
	}
	if cur.CPUErr == nil && prev.CPUErr == nil {
		if cpu, ok := cpuBetween(prev.CPU, cur.CPU); ok {
			b.add("CpuIdle", types.StandardUnitPercent, cpu.Idle, b.broker)
			b.add("CpuIoWait", types.StandardUnitPercent, cpu.IOWait, b.broker)
			b.add("CpuSystem", types.StandardUnitPercent, cpu.System, b.broker)
			b.add("CpuUser", types.StandardUnitPercent, cpu.User, b.broker)
		}
	}
	if cur.DataDiskErr == nil {
		b.add("KafkaDataLogsDiskUsed", types.StandardUnitPercent, cur.DataDisk.UsedPercent(), b.broker)
	}
	if cur.RootDiskErr == nil {
		b.add("RootDiskUsed", types.StandardUnitPercent, cur.RootDisk.UsedPercent(), b.broker)
		// The broker's application log is its stderr, which the journal
		// keeps on the root file system.
		b.add("KafkaAppLogsDiskUsed", types.StandardUnitPercent, cur.RootDisk.UsedPercent(), b.broker)
	}
	if pct, ok := heapAfterGCPercent(cur); ok {
		b.add("HeapMemoryAfterGC", types.StandardUnitPercent, pct, b.broker)
	}
	if ms, ok := allRequestsMeanMs(prev, cur); ok {
		b.add("RequestTime", types.StandardUnitMilliseconds, ms, b.broker)
	}
	if st := cur.State; st != nil {
		c := st.counts()
		b.add("LeaderCount", types.StandardUnitCount, float64(c.leaders), b.broker)
		b.add("PartitionCount", types.StandardUnitCount, float64(c.partitions), b.broker)
		b.add("UnderMinIsrPartitionCount", types.StandardUnitCount, float64(c.underMinISR), b.broker)
		b.add("UnderReplicatedPartitions", types.StandardUnitCount, float64(c.underReplicated), b.broker)
	}
	if m := cur.Memory; cur.MemoryErr == nil {
		b.add("MemoryBuffered", types.StandardUnitBytes, float64(m.Buffers), b.broker)
		b.add("MemoryCached", types.StandardUnitBytes, float64(m.Cached), b.broker)
		b.add("MemoryFree", types.StandardUnitBytes, float64(m.Free), b.broker)
		b.add("MemoryUsed", types.StandardUnitBytes, float64(m.Used()), b.broker)
		b.add("SwapFree", types.StandardUnitBytes, float64(m.SwapFree), b.broker)
		b.add("SwapUsed", types.StandardUnitBytes, float64(m.SwapUsed()), b.broker)
	}
	b.add("BytesInPerSec", types.StandardUnitBytesSecond, rate(prev.BytesIn, cur.BytesIn), b.broker)
	b.add("BytesOutPerSec", types.StandardUnitBytesSecond, rate(prev.BytesOut, cur.BytesOut), b.broker)
	b.add("MessagesInPerSec", types.StandardUnitCountSecond, rate(prev.MessagesIn, cur.MessagesIn), b.broker)
	if cur.NetworkErr == nil && prev.NetworkErr == nil {
		p, c := prev.Network, cur.Network
		b.add("NetworkRxDropped", types.StandardUnitCount, float64(udelta(p.RxDropped, c.RxDropped)), b.broker)
		b.add("NetworkRxErrors", types.StandardUnitCount, float64(udelta(p.RxErrors, c.RxErrors)), b.broker)
		b.add("NetworkRxPackets", types.StandardUnitCount, float64(udelta(p.RxPackets, c.RxPackets)), b.broker)
		b.add("NetworkTxDropped", types.StandardUnitCount, float64(udelta(p.TxDropped, c.TxDropped)), b.broker)
		b.add("NetworkTxErrors", types.StandardUnitCount, float64(udelta(p.TxErrors, c.TxErrors)), b.broker)
		b.add("NetworkTxPackets", types.StandardUnitCount, float64(udelta(p.TxPackets, c.TxPackets)), b.broker)
	}
	if ms, ok := meanMs(prev.RequestTimes[RequestProduce], cur.RequestTimes[RequestProduce]); ok {
		b.add("ProduceTotalTimeMsMean", types.StandardUnitMilliseconds, ms, b.broker)
	}
	if n := delta(prev.RequestCount, cur.RequestCount); n > 0 {
		b.add("RequestBytesMean", types.StandardUnitBytes, float64(delta(prev.RequestBytesSum, cur.RequestBytesSum))/float64(n), b.broker)
	}

	// DEFAULT: per broker and topic. A topic appears once it has had
	// traffic on this broker (its counters exist only from then).
	for _, t := range cur.Topics {
		p := prevTopic(prev, t.Topic)
		td := dims(b.broker, DimTopic, t.Topic)
		b.add("BytesInPerSec", types.StandardUnitBytesSecond, rate(p.BytesIn, t.BytesIn), td)
		b.add("BytesOutPerSec", types.StandardUnitBytesSecond, rate(p.BytesOut, t.BytesOut), td)
	}

	// DEFAULT: consumer lag per group and topic.
	for i, g := range cur.Lag {
		if !validDimensionValue(g.Group) {
			continue
		}
		for _, tl := range topicLags(g, cur.TimeLag[i]) {
			gd := dims(b.cluster, DimConsumerGroup, g.Group, DimTopic, tl.topic)
			b.add("MaxOffsetLag", types.StandardUnitCount, float64(tl.max), gd)
			b.add("SumOffsetLag", types.StandardUnitCount, float64(tl.sum), gd)
			if tl.timeKnown {
				b.add("EstimatedMaxTimeLag", types.StandardUnitSeconds, tl.maxTime, gd)
			}
		}
	}
	// The log shipper's drops, while there is one: a gap in the broker's
	// log in CloudWatch Logs shows as a non-zero sum.
	if cur.LogShipping {
		b.add("LogLinesDropped", types.StandardUnitCount, float64(delta(prev.LogLinesDropped, cur.LogLinesDropped)), b.broker)
	}
	if level < LevelPerBroker {
		return b.out
	}

	// PER_BROKER.
	// Client quotas: the mean throttle time of the interval's throttled
	// responses (0 when none was), the bytes per second measured against
	// the byte-rate quotas, and the throttles running at shipment time.
	for k := range cur.Throttles {
		kind, p, c := ThrottleKind(k), prev.Throttles[k], cur.Throttles[k]
		mean := 0.0
		if n := delta(p.Throttled, c.Throttled); n > 0 {
			mean = float64(delta(p.TimeNanos, c.TimeNanos)) / float64(n) / 1e6
		}
		b.add(kind.msk()+"ThrottleTime", types.StandardUnitMilliseconds, mean, b.broker)
		b.add(kind.msk()+"ThrottleQueueSize", types.StandardUnitCount, float64(c.Queue), b.broker)
		if kind != ThrottleRequest {
			b.add(kind.msk()+"ThrottleByteRate", types.StandardUnitBytesSecond, rate(p.Bytes, c.Bytes), b.broker)
		}
	}
	if n := delta(prev.ExemptCount, cur.ExemptCount); n > 0 {
		b.add("RequestExemptFromThrottleTime", types.StandardUnitMilliseconds, float64(delta(prev.ExemptNanos, cur.ExemptNanos))/float64(n)/1e6, b.broker)
	}
	b.add("ConnectionCloseRate", types.StandardUnitCountSecond, rate(prev.ConnectionsClosed, cur.ConnectionsClosed), b.broker)
	b.add("ConnectionCreationRate", types.StandardUnitCountSecond, rate(prev.ConnectionsCreated, cur.ConnectionsCreated), b.broker)
	// MSK's TrafficBytes is a byte count, not a rate: the bytes clients
	// and this broker exchanged during the interval, both directions.
	b.add("TrafficBytes", types.StandardUnitBytes, float64(delta(prev.TrafficIn, cur.TrafficIn)+delta(prev.TrafficOut, cur.TrafficOut)), b.broker)
	if ms, ok := meanMs(prev.RequestTimes[RequestFetchConsumer], cur.RequestTimes[RequestFetchConsumer]); ok {
		b.add("FetchConsumerTotalTimeMsMean", types.StandardUnitMilliseconds, ms, b.broker)
	}
	if ms, ok := meanMs(prev.RequestTimes[RequestFetchFollower], cur.RequestTimes[RequestFetchFollower]); ok {
		b.add("FetchFollowerTotalTimeMsMean", types.StandardUnitMilliseconds, ms, b.broker)
	}
	if ms, ok := meanMs(prev.LogFlushTimes, cur.LogFlushTimes); ok {
		b.add("LogFlushTimeMsMean", types.StandardUnitMilliseconds, ms, b.broker)
	}
	b.add("LogFlushRate", types.StandardUnitCountSecond, rate(prev.LogFlushTimes.Count, cur.LogFlushTimes.Count), b.broker)
	// The broker stores and serves record batches as clients send them
	// (magic 2 only): it never converts message formats, so these are
	// measured zeros, not placeholders.
	b.add("FetchMessageConversionsPerSec", types.StandardUnitCountSecond, 0, b.broker)
	b.add("ProduceMessageConversionsPerSec", types.StandardUnitCountSecond, rate(prev.ProduceConversions, cur.ProduceConversions), b.broker)
	b.add("ReplicationBytesInPerSec", types.StandardUnitBytesSecond, rate(prev.ReplicationBytesIn, cur.ReplicationBytesIn), b.broker)
	b.add("ReplicationBytesOutPerSec", types.StandardUnitBytesSecond, rate(prev.ReplicationBytesOut, cur.ReplicationBytesOut), b.broker)
	if level < LevelPerTopicPerBroker {
		return b.out
	}

	// PER_TOPIC_PER_BROKER.
	for _, t := range cur.Topics {
		p := prevTopic(prev, t.Topic)
		td := dims(b.broker, DimTopic, t.Topic)
		b.add("MessagesInPerSec", types.StandardUnitCountSecond, rate(p.MessagesIn, t.MessagesIn), td)
		b.add("FetchMessageConversionsPerSec", types.StandardUnitCountSecond, 0, td)
		b.add("ProduceMessageConversionsPerSec", types.StandardUnitCountSecond, 0, td)
	}
	if level < LevelPerTopicPerPartition {
		return b.out
	}

	// PER_TOPIC_PER_PARTITION: consumer lag per partition.
	for i, g := range cur.Lag {
		if !validDimensionValue(g.Group) {
			continue
		}
		for j, p := range g.Partitions {
			pd := dims(b.cluster, DimConsumerGroup, g.Group, DimTopic, p.Topic, DimPartition, strconv.Itoa(int(p.Partition)))
			b.add("OffsetLag", types.StandardUnitCount, float64(p.Lag), pd)
			if tl := cur.TimeLag[i][j]; tl.Known {
				b.add("EstimatedTimeLag", types.StandardUnitSeconds, tl.Seconds, pd)
			}
		}
	}
	return b.out
}

// validDimensionValue says whether CloudWatch accepts s as a dimension
// value (1 to 1,024 characters of valid UTF-8). Group ids come from clients
// and may be empty or hold any bytes; one bad value would make CloudWatch
// refuse the whole PutMetricData, so such groups are left out.
func validDimensionValue(s string) bool {
	return s != "" && utf8.RuneCountInString(s) <= 1024 && utf8.ValidString(s)
}

// prevTopic finds a topic's totals in the previous snapshot (its Topics
// are sorted by name); zero when the topic is new.
func prevTopic(prev *Snapshot, topic string) TopicTotals {
	if i, ok := slices.BinarySearchFunc(prev.Topics, topic, func(t TopicTotals, name string) int { return cmp.Compare(t.Topic, name) }); ok {
		return prev.Topics[i]
	}
	return TopicTotals{Topic: topic}
}

// topicLag is a group's lag on one topic.
type topicLag struct {
	topic     string
	sum, max  int64
	maxTime   float64
	timeKnown bool
}

// topicLags sums a group's partitions per topic (they are sorted by topic):
// SumOffsetLag and MaxOffsetLag; EstimatedMaxTimeLag is the largest known
// partition estimate, the time the slowest partition needs to drain.
func topicLags(g GroupLag, times []partitionTimeLag) []topicLag {
	var out []topicLag
	for j, p := range g.Partitions {
		if n := len(out); n == 0 || out[n-1].topic != p.Topic {
			out = append(out, topicLag{topic: p.Topic})
		}
		t := &out[len(out)-1]
		t.sum += p.Lag
		t.max = max(t.max, p.Lag)
		if j < len(times) && times[j].Known {
			t.maxTime = max(t.maxTime, times[j].Seconds)
			t.timeKnown = true
		}
	}
	return out
}
