package metrics

import (
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// datumKey names a datum by metric and dimensions: "Name{Dim=Value,...}",
// dimensions in the order shipped.
func datumKey(d types.MetricDatum) string {
	var parts []string
	for _, dim := range d.Dimensions {
		parts = append(parts, aws.ToString(dim.Name)+"="+aws.ToString(dim.Value))
	}
	return aws.ToString(d.MetricName) + "{" + strings.Join(parts, ",") + "}"
}

func byKey(t *testing.T, data []types.MetricDatum) map[string]types.MetricDatum {
	t.Helper()
	m := make(map[string]types.MetricDatum, len(data))
	for _, d := range data {
		k := datumKey(d)
		if _, dup := m[k]; dup {
			t.Errorf("datum %s shipped twice", k)
		}
		m[k] = d
	}
	return m
}

// busyRegistry is a registry with state, lag and one minute of activity
// between the two snapshots it returns.
func busyRegistry(t *testing.T) (r *Registry, prev, cur *Snapshot) {
	t.Helper()
	r, clock := newTestRegistry(t)
	r.SetFetchMemorySource(func() FetchMemory { return FetchMemory{Held: 3 << 20, Limit: 64 << 20, Cut: 5, Leaked: 1} })
	r.SetStateSource(func() BrokerState {
		return BrokerState{
			ActiveController: true, GlobalTopicCount: 2, GlobalPartitionCount: 4,
			Partitions: []PartitionState{
				{Topic: "orders", Partition: 0, Leader: true, Replicas: 3, InSync: 3, MinInsync: 2},
				{Topic: "orders", Partition: 1, Leader: true, Replicas: 3, InSync: 1, MinInsync: 2}, // under-replicated and under min ISR
				{Topic: "orders", Partition: 2, Leader: false, Replicas: 3, InSync: 2, MinInsync: 2},
				{Topic: "audit", Partition: 0, Leader: true, Replicas: 3, InSync: 2, MinInsync: 2}, // under-replicated only
			},
			ReplicationThrottle: []ThrottleState{
				{Side: "leader", Rate: 1000, Bound: 2048, Limited: true},
				{Side: "follower", Rate: 0, Bound: 9223372036854775807},
			},
			PendingDeletionSegments: 2, PendingDeletionBytes: 3 << 20,
			RaftStoreReserveBytes: 12 << 20, RaftStoreReserveKept: true, RaftStoreOnReserve: true, RaftStoreLogStopped: true,
			PeerRefusals: []PeerRefusal{
				{Listener: "controller", Reason: "node_mismatch", Count: 7},
				{Listener: "controller", Reason: "controller_duty", Count: 0},
				{Listener: "controller", Reason: "raft_rpc", Count: 3},
				{Listener: "replication", Reason: "node_mismatch", Count: 2},
			},
			PeerUnbound: []PeerUnbound{{Listener: "controller", Count: 4}, {Listener: "replication", Count: 1}},
		}
	})
	committed := int64(100)
	r.SetLagSource(func() []GroupLag {
		return []GroupLag{{Group: "billing", Partitions: []PartitionLag{
			{Topic: "orders", Partition: 0, Committed: committed, End: 1000, Lag: 1000 - committed},
			{Topic: "orders", Partition: 1, Committed: 40, End: 50, Lag: 10},
		}}}
	})
	r.RecordProduce("orders", 1000, 10)
	r.RecordTrafficIn(1500) // before the interval: not in its TrafficBytes
	prev = r.Snapshot()
	clock.advance(time.Minute)
	committed = 400 // 300 offsets a minute: 600 left take 2 minutes
	writeProc(t, r.opts.ProcRoot, "150 20 70 900 60 0 0 0")
	r.RecordProduce("orders", 6000, 120)
	r.RecordFetch("orders", 12000)
	r.RecordProduce("audit", 600, 6)
	r.RecordRequest(RequestProduce, 300, 4*time.Millisecond)
	r.RecordRequest(RequestProduce, 100, 2*time.Millisecond)
	r.RecordRequest(RequestFetchConsumer, 100, 500*time.Millisecond)
	r.RecordLogFlush(2*time.Millisecond, 3)
	r.RecordLogFlush(4*time.Millisecond, 0)
	r.RecordFollowerFetch(10*time.Millisecond, 3*time.Millisecond, 2048)
	r.ConnOpened()
	r.ConnOpened()
	r.ConnOpened()
	r.ConnClosed()
	r.RecordTrafficIn(700)
	r.RecordTrafficOut(5000)
	cur = r.Snapshot()
	return r, prev, cur
}

// TestCloudWatchDimensionsPerLevel pins which metric ships with which
// dimensions at each monitoring level, after MSK's metrics-details page.
func TestCloudWatchDimensionsPerLevel(t *testing.T) {
	runtime.GC() // HeapMemoryAfterGC needs a collection to have happened
	r, prev, cur := busyRegistry(t)
	const (
		cluster = "{Cluster Name=orders}"
		broker  = "{Cluster Name=orders,Broker ID=2}"
		orders  = "{Cluster Name=orders,Broker ID=2,Topic=orders}"
		group   = "{Cluster Name=orders,Consumer Group=billing,Topic=orders}"
		part0   = "{Cluster Name=orders,Consumer Group=billing,Topic=orders,Partition=0}"
	)
	byAuth := func(kind string) string {
		return "{Cluster Name=orders,Broker ID=2,Client Authentication=" + kind + "}"
	}
	defaultKeys := []string{
		"ActiveControllerCount" + cluster, "GlobalPartitionCount" + cluster, "GlobalTopicCount" + cluster,
		"OfflinePartitionsCount" + cluster, "KafkaDataLogsDiskUsed" + cluster,
		"ConnectionCount" + broker, "CpuUser" + broker, "CpuSystem" + broker, "CpuIdle" + broker, "CpuIoWait" + broker,
		"KafkaDataLogsDiskUsed" + broker, "RootDiskUsed" + broker, "LeaderCount" + broker, "PartitionCount" + broker,
		"UnderReplicatedPartitions" + broker, "UnderMinIsrPartitionCount" + broker, "MemoryUsed" + broker,
		"MemoryFree" + broker, "MemoryBuffered" + broker, "MemoryCached" + broker, "SwapUsed" + broker, "SwapFree" + broker,
		"BytesInPerSec" + broker, "BytesOutPerSec" + broker, "MessagesInPerSec" + broker,
		"NetworkRxPackets" + broker, "NetworkTxPackets" + broker, "NetworkRxErrors" + broker, "NetworkTxErrors" + broker,
		"NetworkRxDropped" + broker, "NetworkTxDropped" + broker, "ProduceTotalTimeMsMean" + broker, "RequestBytesMean" + broker,
		"KafkaAppLogsDiskUsed" + broker, "HeapMemoryAfterGC" + broker, "RequestTime" + broker,
		"ClientConnectionCount" + byAuth("Unauthenticated"), "ClientConnectionCount" + byAuth("TLS"),
		"ClientConnectionCount" + byAuth("SASL/SCRAM"), "ClientConnectionCount" + byAuth("IAM"),
		"BytesInPerSec" + orders, "BytesOutPerSec" + orders,
		"SumOffsetLag" + group, "MaxOffsetLag" + group, "EstimatedMaxTimeLag" + group,
	}
	perBrokerKeys := []string{
		"ConnectionCreationRate" + broker, "ConnectionCloseRate" + broker, "FetchConsumerTotalTimeMsMean" + broker,
		"ProduceMessageConversionsPerSec" + broker, "FetchMessageConversionsPerSec" + broker,
		"ReplicationBytesInPerSec" + broker, "ReplicationBytesOutPerSec" + broker, "TrafficBytes" + broker,
	}
	perTopicKeys := []string{
		"MessagesInPerSec" + orders, "ProduceMessageConversionsPerSec" + orders, "FetchMessageConversionsPerSec" + orders,
	}
	perPartitionKeys := []string{"OffsetLag" + part0, "EstimatedTimeLag" + part0}
	cases := []struct {
		level        Level
		want, absent [][]string
	}{
		{LevelDefault, [][]string{defaultKeys}, [][]string{perBrokerKeys, perTopicKeys, perPartitionKeys}},
		{LevelPerBroker, [][]string{defaultKeys, perBrokerKeys}, [][]string{perTopicKeys, perPartitionKeys}},
		{LevelPerTopicPerBroker, [][]string{defaultKeys, perBrokerKeys, perTopicKeys}, [][]string{perPartitionKeys}},
		{LevelPerTopicPerPartition, [][]string{defaultKeys, perBrokerKeys, perTopicKeys, perPartitionKeys}, nil},
	}
	for _, c := range cases {
		t.Run(c.level.String(), func(t *testing.T) {
			got := byKey(t, CloudWatchData(prev, cur, c.level, r.ClusterName(), r.BrokerID()))
			for _, keys := range c.want {
				for _, k := range keys {
					if _, ok := got[k]; !ok {
						t.Errorf("missing %s", k)
					}
				}
			}
			for _, keys := range c.absent {
				for _, k := range keys {
					if _, ok := got[k]; ok {
						t.Errorf("%s is not shipped at %s", k, c.level)
					}
				}
			}
			// FetchFollowerTotalTimeMsMean: no follower fetch in the
			// interval, so no mean rather than a false 0.
			if _, ok := got["FetchFollowerTotalTimeMsMean"+broker]; ok {
				t.Error("a mean over no requests was shipped")
			}
			for k, d := range got {
				if len(d.Dimensions) > 30 || !d.Timestamp.Equal(cur.Time) || d.Unit == "" {
					t.Errorf("%s: dims %d, time %v, unit %q", k, len(d.Dimensions), d.Timestamp, d.Unit)
				}
			}
		})
	}
}

// TestCloudWatchValues checks the rates, means and gauges of one interval.
func TestCloudWatchValues(t *testing.T) {
	r, prev, cur := busyRegistry(t)
	got := byKey(t, CloudWatchData(prev, cur, LevelPerTopicPerPartition, r.ClusterName(), r.BrokerID()))
	const (
		cluster = "{Cluster Name=orders}"
		broker  = "{Cluster Name=orders,Broker ID=2}"
		orders  = "{Cluster Name=orders,Broker ID=2,Topic=orders}"
		audit   = "{Cluster Name=orders,Broker ID=2,Topic=audit}"
		group   = "{Cluster Name=orders,Consumer Group=billing,Topic=orders}"
		part0   = "{Cluster Name=orders,Consumer Group=billing,Topic=orders,Partition=0}"
		part1   = "{Cluster Name=orders,Consumer Group=billing,Topic=orders,Partition=1}"
	)
	want := []struct {
		key  string
		v    float64
		unit types.StandardUnit
	}{
		{"ActiveControllerCount" + cluster, 1, types.StandardUnitCount},
		{"GlobalTopicCount" + cluster, 2, types.StandardUnitCount},
		{"GlobalPartitionCount" + cluster, 4, types.StandardUnitCount},
		{"BytesInPerSec" + broker, 6600.0 / 60, types.StandardUnitBytesSecond},
		{"BytesInPerSec" + orders, 6000.0 / 60, types.StandardUnitBytesSecond},
		{"BytesInPerSec" + audit, 600.0 / 60, types.StandardUnitBytesSecond},
		{"BytesOutPerSec" + orders, 12000.0 / 60, types.StandardUnitBytesSecond},
		{"MessagesInPerSec" + broker, 126.0 / 60, types.StandardUnitCountSecond},
		{"MessagesInPerSec" + orders, 120.0 / 60, types.StandardUnitCountSecond},
		{"ProduceTotalTimeMsMean" + broker, 3, types.StandardUnitMilliseconds},
		{"FetchConsumerTotalTimeMsMean" + broker, 500, types.StandardUnitMilliseconds},
		{"LogFlushTimeMsMean" + broker, 3, types.StandardUnitMilliseconds},
		{"LogFlushRate" + broker, 2.0 / 60, types.StandardUnitCountSecond},
		{"ReplicationBytesInPerSec" + broker, 2048.0 / 60, types.StandardUnitBytesSecond},
		{"RequestBytesMean" + broker, 500.0 / 3, types.StandardUnitBytes},
		{"ConnectionCount" + broker, 2, types.StandardUnitCount},
		{"ConnectionCreationRate" + broker, 3.0 / 60, types.StandardUnitCountSecond},
		{"ConnectionCloseRate" + broker, 1.0 / 60, types.StandardUnitCountSecond},
		{"TrafficBytes" + broker, 700 + 5000, types.StandardUnitBytes},
		{"PartitionCount" + broker, 4, types.StandardUnitCount},
		{"LeaderCount" + broker, 3, types.StandardUnitCount},
		{"UnderReplicatedPartitions" + broker, 2, types.StandardUnitCount},
		{"UnderMinIsrPartitionCount" + broker, 1, types.StandardUnitCount},
		{"CpuUser" + broker, 30, types.StandardUnitPercent},
		{"CpuSystem" + broker, 10, types.StandardUnitPercent},
		{"CpuIdle" + broker, 50, types.StandardUnitPercent},
		{"CpuIoWait" + broker, 10, types.StandardUnitPercent},
		{"MemoryUsed" + broker, 3000000 * 1024, types.StandardUnitBytes},
		{"NetworkRxPackets" + broker, 0, types.StandardUnitCount}, // the fixture did not change
		{"ProduceMessageConversionsPerSec" + broker, 0, types.StandardUnitCountSecond},
		{"SumOffsetLag" + group, 610, types.StandardUnitCount},
		{"MaxOffsetLag" + group, 600, types.StandardUnitCount},
		{"OffsetLag" + part0, 600, types.StandardUnitCount},
		{"OffsetLag" + part1, 10, types.StandardUnitCount},
		// Partition 0 drains 300 offsets a minute: 600 take 120 s.
		// Partition 1 did not move in the minute: 60 s stalled.
		{"EstimatedTimeLag" + part0, 120, types.StandardUnitSeconds},
		{"EstimatedTimeLag" + part1, 60, types.StandardUnitSeconds},
		{"EstimatedMaxTimeLag" + group, 120, types.StandardUnitSeconds},
	}
	for _, w := range want {
		d, ok := got[w.key]
		if !ok {
			t.Errorf("missing %s", w.key)
			continue
		}
		if v := aws.ToFloat64(d.Value); math.Abs(v-w.v) > 1e-9*math.Max(1, math.Abs(w.v)) || d.Unit != w.unit {
			t.Errorf("%s = %v %s, want %v %s", w.key, v, d.Unit, w.v, w.unit)
		}
	}
}

// TestCloudWatchLeavesOutWhatItCannotMeasure: no state source, no /proc,
// no data dir: no partition counts, CPU, memory or data disk, and no zeros
// in their place.
func TestCloudWatchLeavesOutWhatItCannotMeasure(t *testing.T) {
	r := New(Options{ClusterName: "c", BrokerID: 1, ProcRoot: t.TempDir(), Logger: quietLogger()})
	prev, cur := r.Snapshot(), r.Snapshot()
	got := CloudWatchData(prev, cur, LevelPerTopicPerPartition, "c", 1)
	var names []string
	for _, d := range got {
		names = append(names, aws.ToString(d.MetricName))
	}
	for _, absent := range []string{"PartitionCount", "ActiveControllerCount", "CpuUser", "MemoryUsed", "KafkaDataLogsDiskUsed", "NetworkRxPackets", "ProduceTotalTimeMsMean", "RequestBytesMean", "OffsetLag"} {
		if slices.Contains(names, absent) {
			t.Errorf("%s shipped without a measurement", absent)
		}
	}
	for _, present := range []string{"ConnectionCount", "BytesInPerSec", "RootDiskUsed"} {
		if !slices.Contains(names, present) {
			t.Errorf("%s missing", present)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Level
		ok   bool
	}{
		{"DEFAULT", LevelDefault, true}, {"per_broker", LevelPerBroker, true},
		{"PER_TOPIC_PER_BROKER", LevelPerTopicPerBroker, true}, {" PER_TOPIC_PER_PARTITION ", LevelPerTopicPerPartition, true},
		{"VERBOSE", 0, false}, {"", 0, false},
	} {
		got, err := ParseLevel(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseLevel(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestBatches(t *testing.T) {
	datum := func(name string) types.MetricDatum {
		return types.MetricDatum{MetricName: aws.String(name), Value: aws.Float64(1), Unit: types.StandardUnitCount,
			Dimensions: dims(nil, DimClusterName, "c", DimBrokerID, "1")}
	}
	many := func(n int) []types.MetricDatum {
		out := make([]types.MetricDatum, n)
		for i := range out {
			out[i] = datum("BytesInPerSec")
		}
		return out
	}
	size := datumSize(datum("BytesInPerSec"))
	cases := []struct {
		name     string
		n        int
		maxBytes int
		want     []int
	}{
		{"empty", 0, putBytesBudget, nil},
		{"one", 1, putBytesBudget, []int{1}},
		{"exactly 1000", 1000, putBytesBudget, []int{1000}},
		{"1001", 1001, putBytesBudget, []int{1000, 1}},
		{"2500", 2500, putBytesBudget, []int{1000, 1000, 500}},
		{"by size", 10, 3 * size, []int{3, 3, 3, 1}},
		{"one datum over the size still goes alone", 2, size - 1, []int{1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []int
			total := 0
			for _, b := range batches(many(c.n), maxDataPerPut, c.maxBytes) {
				got = append(got, len(b))
				total += len(b)
			}
			if !slices.Equal(got, c.want) || total != c.n {
				t.Errorf("batch sizes %v, want %v", got, c.want)
			}
		})
	}
	// The longest data we ship (consumer lag per partition with long
	// group and topic names) hit the body budget before the count limit.
	long := datum(strings.Repeat("M", 40))
	long.Dimensions = dims(nil, DimClusterName, strings.Repeat("c", 64), DimConsumerGroup, strings.Repeat("g", 249), DimTopic, strings.Repeat("t", 249), DimPartition, "2147483647")
	data := slices.Repeat([]types.MetricDatum{long}, 1000)
	bs := batches(data, maxDataPerPut, putBytesBudget)
	if len(bs) < 2 {
		t.Fatalf("1000 data of ~%d bytes each went in %d call(s)", datumSize(long), len(bs))
	}
	for _, b := range bs {
		if n := len(b) * datumSize(long); n > putBytesBudget {
			t.Errorf("a batch of %d estimated bytes exceeds the budget %d", n, putBytesBudget)
		}
	}
}

// TestCloudWatchSkipsGroupsCloudWatchWouldRefuse: group ids come from
// clients; one CloudWatch refuses as a dimension value would fail a whole
// PutMetricData.
func TestCloudWatchSkipsGroupsCloudWatchWouldRefuse(t *testing.T) {
	r, _ := newTestRegistry(t)
	r.SetLagSource(func() []GroupLag {
		var out []GroupLag
		for _, g := range []string{"", "bad\xff", strings.Repeat("g", 1025), "fine"} {
			out = append(out, GroupLag{Group: g, Partitions: []PartitionLag{{Topic: "t", Lag: 1}}})
		}
		return out
	})
	prev := r.Snapshot()
	got := CloudWatchData(prev, r.Snapshot(), LevelPerTopicPerPartition, "c", 1)
	groups := map[string]bool{}
	for _, d := range got {
		for _, dim := range d.Dimensions {
			if aws.ToString(dim.Name) == DimConsumerGroup {
				groups[aws.ToString(dim.Value)] = true
			}
		}
	}
	if len(groups) != 1 || !groups["fine"] {
		t.Errorf("groups shipped: %v, want only fine", groups)
	}
}

func TestHeapAndRequestTime(t *testing.T) {
	s := &Snapshot{HeapLive: 512 << 20, Memory: memInfo{Total: 4 << 30}}
	if pct, ok := heapAfterGCPercent(s); !ok || pct != 12.5 {
		t.Errorf("heap of 512 MiB on a 4 GiB host: %v %v, want 12.5", pct, ok)
	}
	s.HeapLimit = 1 << 30 // GOMEMLIMIT wins over the host's memory
	if pct, _ := heapAfterGCPercent(s); pct != 50 {
		t.Errorf("heap of 512 MiB under a 1 GiB limit: %v, want 50", pct)
	}
	if _, ok := heapAfterGCPercent(&Snapshot{Memory: memInfo{Total: 1 << 30}}); ok {
		t.Error("no heap figure before the first collection, not 0 %")
	}
	var prev, cur Snapshot
	cur.RequestTimes[RequestProduce] = histogramSnapshot{Count: 3, Sum: 3 * time.Millisecond}
	cur.RequestTimes[RequestFetchConsumer] = histogramSnapshot{Count: 1, Sum: 9 * time.Millisecond}
	if ms, ok := allRequestsMeanMs(&prev, &cur); !ok || ms != 3 {
		t.Errorf("RequestTime %v %v, want 3 ms over four requests", ms, ok)
	}
	if _, ok := allRequestsMeanMs(&cur, &cur); ok {
		t.Error("RequestTime over no request")
	}
}

// TestClientConnectionCountByAuth: each connection counts under its kind
// of authentication until it closes, and every kind is shipped, one
// without connections as 0.
func TestClientConnectionCountByAuth(t *testing.T) {
	r := New(Options{BrokerID: 1})
	for _, a := range []ClientAuth{AuthSCRAM, AuthSCRAM, AuthTLS, AuthNone} {
		r.ClientAuthenticated(a)
	}
	r.ClientAuthClosed(AuthSCRAM)
	s := r.Snapshot()
	got := map[string]float64{}
	for _, d := range CloudWatchData(s, s, LevelDefault, "c", 1) {
		if *d.MetricName != "ClientConnectionCount" {
			continue
		}
		for _, dim := range d.Dimensions {
			if *dim.Name == DimClientAuth {
				got[*dim.Value] = *d.Value
			}
		}
	}
	want := map[string]float64{"Unauthenticated": 1, "TLS": 1, "SASL/SCRAM": 1, "IAM": 0}
	if !maps.Equal(got, want) {
		t.Errorf("ClientConnectionCount by Client Authentication %v, want %v", got, want)
	}
}
