package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus exposition. The registry is exported through client_golang as
// a collector that reads a Snapshot at every scrape (the "const metrics"
// pattern of exporters), so nothing is kept twice and the hot path never
// touches client_golang. Counters stay counters: MSK's PerSec metrics are
// rate() of the _total series; means are _sum / _count.
//
// Every name starts with tributary_; docs/broker-metrics.md maps each one
// to its MSK name.

const ns = "tributary"

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+"_"+name, help, labels, nil)
}

var (
	descInfo = desc("broker_info", "Constant 1, labelled with the broker's CloudWatch dimensions.", "cluster_name", "broker_id")

	descBytesIn              = desc("bytes_in_total", "Record bytes received from producers per topic (MSK BytesInPerSec = rate).", "topic")
	descBytesOut             = desc("bytes_out_total", "Record bytes sent to consumers per topic, without replication (MSK BytesOutPerSec = rate).", "topic")
	descMessagesIn           = desc("messages_in_total", "Records received from producers per topic (MSK MessagesInPerSec = rate).", "topic")
	descReplicationBytesIn   = desc("replication_bytes_in_total", "Record bytes appended from leaders as a follower (MSK ReplicationBytesInPerSec = rate).")
	descReplicationBytesOut  = desc("replication_bytes_out_total", "Record bytes sent to followers (MSK ReplicationBytesOutPerSec = rate).")
	descProduceConversions   = desc("produce_message_conversions_total", "Produced records converted between message formats: always 0, batches are stored as sent (MSK ProduceMessageConversionsPerSec = rate).")
	descRequestDuration      = desc("request_duration_seconds", "Time from the start of a request's handling to its response, by kind (MSK ProduceTotalTimeMsMean, FetchConsumerTotalTimeMsMean, FetchFollowerTotalTimeMsMean = sum/count).", "kind")
	descLogFlush             = desc("log_flush_duration_seconds", "Sync rounds of the log: the time to make the partitions written since the last round durable (Kafka LogFlushRateAndTimeMs; rate of _count = flushes per second).")
	descLogFlushFiles        = desc("log_flush_files_total", "Segment files fsynced by the log's sync rounds (none when a round syncs the data volume's file system at once).")
	descFollowerFetch        = desc("follower_fetch_duration_seconds", "This broker's follower fetch cycles, by phase: request (a Fetch's round trip to the leader, the time it was parked included), durable (writing the response's partitions and waiting until they are durable before the next Fetch).", "phase")
	descRequestSize          = desc("request_size_bytes", "Size of requests received (MSK RequestBytesMean = sum/count).")
	descConnections          = desc("connections", "Open client connections (MSK ConnectionCount).")
	descClientConns          = desc("client_connections", "Open client connections that have authenticated, by how (MSK ClientConnectionCount).", "client_authentication")
	descConnCreated          = desc("connections_created_total", "Client connections accepted (MSK ConnectionCreationRate = rate).")
	descConnClosed           = desc("connections_closed_total", "Client connections closed (MSK ConnectionCloseRate = rate).")
	descConnRefused          = desc("connections_refused_total", "Client connections closed at accept, unserved, by reason: max_connections, per_ip (max.connections.per.ip or its override), creation_rate (a connection_creation_rate quota).", "reason")
	descTraffic              = desc("client_traffic_bytes_total", "Kafka protocol bytes read from (in) and written to (out) client connections; replication and quorum traffic excluded (MSK TrafficBytes = increase of in + out).", "direction")
	descThrottled            = desc("quota_throttled_responses_total", "Responses throttled by a client quota (MSK <Quota>ThrottleTime = time / count).", "quota")
	descThrottleTime         = desc("quota_throttle_seconds_total", "Throttle time of the throttled responses, summed.", "quota")
	descThrottleBytes        = desc("quota_bytes_total", "Bytes measured against a byte-rate client quota (MSK <Quota>ThrottleByteRate = rate).", "quota")
	descThrottleQueue        = desc("quota_throttle_queue", "Throttles still running: connections muted by a client quota (MSK <Quota>ThrottleQueueSize).", "quota")
	descExempt               = desc("quota_exempt_request_duration_seconds", "Handling time of requests no client quota measures (MSK RequestExemptFromThrottleTime = sum / count).")
	descFetchMemory          = desc("fetch_memory_bytes", "Memory held by fetch responses read into memory (TLS listeners, TLS replication) until written, in bytes (whole pooled blocks).")
	descFetchMemoryLimit     = desc("fetch_memory_limit_bytes", "The bound on tributary_fetch_memory_bytes (fetch.memory.max.bytes, resolved); a fetch may pass it by its first batch.")
	descFetchMemoryCut       = desc("fetch_memory_cut_total", "Fetches (or long-poll reads) that got less than they asked, or only their first batch, because the fetch memory bound was reached.")
	descRequestMemory        = desc("request_memory_bytes", "Request bytes held read from the sockets of the listener kind (client, replication): a request is charged its size when its size header is read, a Produce request until its records are appended, any other until decoded.", "listener")
	descRequestMemoryLimit   = desc("request_memory_limit_bytes", "The bound on tributary_request_memory_bytes (client: queued.max.request.bytes, resolved; replication: 64 MiB); absent when there is none.", "listener")
	descRequestMemoryWaiting = desc("request_memory_waiting_connections", "Connections waiting now for request memory (not reading their sockets).", "listener")
	descRequestMemoryWaits   = desc("request_memory_waits_total", "Requests that waited for request memory before being read, counted when the wait ends.", "listener")
	descRequestMemoryWait    = desc("request_memory_wait_seconds_total", "Time requests waited for request memory before being read, in all, counted when each wait ends.", "listener")
	descRequestMemoryRefused = desc("request_memory_refused_total", "Requests refused (their connection closed) as larger than the whole request memory bound.", "listener")
	descFetchMemoryLeaked    = desc("fetch_memory_leaked_releases_total", "Fetch read buffers released only when their connection ended, not by the path that dropped their response: a bug in the broker; should stay 0.")
	descPeerRefusals         = desc("peer_refusals_total", "Requests of other brokers refused on the controller and replication listeners, by listener and reason: node_mismatch (a request speaking for a node other than the one its certificate names: controller requests, or replication Fetch and OffsetForLeaderEpoch as another replica id), controller_duty (a command only the active controller proposes), raft_rpc (a Raft RPC sent as another server; its connection closed). Any increase is a misconfigured or compromised broker.", "listener", "reason")
	descAuthentications      = desc("authentications_total", "Authentications of connections, by listener, mechanism (TLS: the TLS handshake, which authenticates SSL and in-cluster listeners and precedes SASL on SASL_SSL ones, where only its failures count; a SASL mechanism; unsupported: a SaslHandshake naming a mechanism the listener does not offer) and result (success, failure). Kafka's successful-authentication-total and failed-authentication-total.", "listener", "mechanism", "result")
	descAuthFailures         = desc("authentication_failures_total", "Failed authentications by listener, mechanism and reason: no_certificate, unknown_ca, expired_certificate, protocol_version, not_tls, no_principal (TLS); unknown_user, bad_password (SCRAM); token_expired, token_wrong_cluster, token_wrong_endpoint, token_refused, sts_unavailable, not_authorized (IAM); malformed, principal_changed, unsupported_mechanism, other.", "listener", "mechanism", "reason")
	descPeerUnbound          = desc("peer_unbound_connections_total", "Connections of other brokers on the controller and replication listeners served unbound, because their certificate names no node (issued before certificates named their node): what is left to renew.", "listener")
	descLogDropped           = desc("log_lines_dropped_total", "Broker log lines the log shipper dropped because CloudWatch Logs could not take them (CloudWatch LogLinesDropped).")

	descPartitions      = desc("partitions", "Partition replicas on this broker (MSK PartitionCount).")
	descLeaders         = desc("leader_partitions", "Partitions this broker leads (MSK LeaderCount).")
	descUnderReplicated = desc("under_replicated_partitions", "Partitions led here with fewer in-sync replicas than replicas (MSK UnderReplicatedPartitions).")
	descUnderMinISR     = desc("under_min_isr_partitions", "Partitions led here with fewer in-sync replicas than min.insync.replicas (MSK UnderMinIsrPartitionCount).")
	descActive          = desc("active_controller", "1 on the active controller, else 0 (MSK ActiveControllerCount).")
	descGlobalTopics    = desc("global_topics", "Topics in the cluster, reported by the active controller only (MSK GlobalTopicCount).")
	descGlobalParts     = desc("global_partitions", "Partitions in the cluster, reported by the active controller only (MSK GlobalPartitionCount).")
	descOffline         = desc("offline_partitions", "Partitions without a leader, reported by the active controller only (MSK OfflinePartitionsCount).")
	descThrottleRate    = desc("replication_throttled_bytes_per_second", "Measured rate of the throttled replicas' replication bytes, over the replication quota windows, by side (leader: sent, follower: fetched).", "side")
	descThrottleBound   = desc("replication_throttle_limit_bytes_per_second", "The replication throttle rate in force (leader/follower.replication.throttled.rate), by side; absent when none is set.", "side")

	descDataDiskUsed   = desc("data_disk_used_ratio", "Used share of the data volume, as df's Use% / 100 (MSK KafkaDataLogsDiskUsed / 100).")
	descDataDiskAvail  = desc("data_disk_available_bytes", "Bytes still writable on the data volume.")
	descDataDiskSize   = desc("data_disk_size_bytes", "Size of the data volume's file system.")
	descPendingBytes   = desc("log_pending_deletion_bytes", "Bytes of segments out of every log (retention, DeleteRecords, compaction, deleted topics) still on the data volume, waiting for file.delete.delay.ms.")
	descPendingSegs    = desc("log_pending_deletion_segments", "Segments out of every log still on the data volume, waiting for file.delete.delay.ms.")
	descRaftOnReserve  = desc("raft_store_on_reserve", "1 while the data volume is full and the metadata log lives on the Raft store's reserve (its top-up failed), else 0; absent when the store keeps no reserve.")
	descRaftLogStopped = desc("raft_store_log_stopped", "1 while the data volume is full and the metadata log has used the Raft store's reserve up to the part kept for Raft's term and vote: the broker stores and applies no metadata until space frees, else 0; absent when the store keeps no reserve.")
	descRaftReserve    = desc("raft_store_reserve_bytes", "Space the Raft store keeps allocated on the data volume past its data (16 MiB, topped up at half): what the metadata log can still take once the volume is full; absent when it keeps none.")
	descRootDiskUsed   = desc("root_disk_used_ratio", "Used share of the root file system (MSK RootDiskUsed / 100).")
	descCPU            = desc("host_cpu_seconds_total", "Host CPU time by mode, all CPUs (MSK CpuUser = user+nice, CpuSystem, CpuIdle, CpuIoWait as shares of the total).", "mode")
	descMemory         = desc("host_memory_bytes", "Host memory from /proc/meminfo (MSK MemoryUsed = used, MemoryFree = free, MemoryBuffered, MemoryCached).", "kind")
	descSwap           = desc("host_swap_bytes", "Host swap (MSK SwapUsed, SwapFree).", "kind")
	descNetRx          = desc("host_network_receive_total", "Packets received on every interface but loopback, by outcome (MSK NetworkRxPackets, NetworkRxErrors, NetworkRxDropped).", "kind")
	descNetTx          = desc("host_network_transmit_total", "Packets sent on every interface but loopback, by outcome (MSK NetworkTxPackets, NetworkTxErrors, NetworkTxDropped).", "kind")

	descOffsetLag    = desc("consumer_group_offset_lag", "Offsets a group's committed position trails the partition's high watermark (MSK OffsetLag).", "group", "topic", "partition")
	descSumLag       = desc("consumer_group_sum_offset_lag", "A group's lag summed over a topic's partitions (MSK SumOffsetLag).", "group", "topic")
	descMaxLag       = desc("consumer_group_max_offset_lag", "A group's largest partition lag on a topic (MSK MaxOffsetLag).", "group", "topic")
	descTimeLag      = desc("consumer_group_estimated_time_lag_seconds", "Estimated seconds for a group to drain a partition's lag at its recent pace (MSK EstimatedTimeLag).", "group", "topic", "partition")
	descMaxTimeLag   = desc("consumer_group_estimated_max_time_lag_seconds", "Largest partition estimate of a group on a topic (MSK EstimatedMaxTimeLag).", "group", "topic")
	descCWPuts       = desc("cloudwatch_puts_total", "Successful PutMetricData calls.")
	descCWShipped    = desc("cloudwatch_data_shipped_total", "Metric data accepted by CloudWatch.")
	descCWDropped    = desc("cloudwatch_data_dropped_total", "Metric data given up on after errors, throttling or lack of permission.")
	descCWDenied     = desc("cloudwatch_denied_total", "PutMetricData calls refused for lack of permission or credentials.")
	descCWThrottled  = desc("cloudwatch_throttled_total", "PutMetricData calls throttled (each try counts).")
	descCWLastOK     = desc("cloudwatch_last_success_timestamp_seconds", "Unix time of the last successful PutMetricData.")
	allDescs         = []*prometheus.Desc{descInfo, descTraffic, descBytesIn, descBytesOut, descMessagesIn, descReplicationBytesIn, descReplicationBytesOut, descProduceConversions, descRequestDuration, descLogFlush, descLogFlushFiles, descFollowerFetch, descRequestSize, descConnections, descClientConns, descConnCreated, descConnClosed, descConnRefused, descThrottled, descThrottleTime, descThrottleBytes, descThrottleQueue, descExempt, descFetchMemory, descFetchMemoryLimit, descFetchMemoryCut, descFetchMemoryLeaked, descRequestMemory, descRequestMemoryLimit, descRequestMemoryWaiting, descRequestMemoryWaits, descRequestMemoryWait, descRequestMemoryRefused, descPeerRefusals, descPeerUnbound, descAuthentications, descAuthFailures, descLogDropped, descPartitions, descLeaders, descUnderReplicated, descUnderMinISR, descActive, descGlobalTopics, descGlobalParts, descOffline, descThrottleRate, descThrottleBound, descDataDiskUsed, descDataDiskAvail, descDataDiskSize, descPendingBytes, descPendingSegs, descRaftReserve, descRaftOnReserve, descRaftLogStopped, descRootDiskUsed, descCPU, descMemory, descSwap, descNetRx, descNetTx, descOffsetLag, descSumLag, descMaxLag, descTimeLag, descMaxTimeLag, descCWPuts, descCWShipped, descCWDropped, descCWDenied, descCWThrottled, descCWLastOK}
	latencyBoundsSec = func() []float64 {
		b := make([]float64, len(latencyBuckets))
		for i, d := range latencyBuckets {
			b[i] = d.Seconds()
		}
		return b
	}()
)

// collector adapts a Registry to client_golang.
type collector struct{ r *Registry }

var _ prometheus.Collector = collector{}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Snapshot()
	// Label values come from clients (group names may hold any bytes): a
	// series that client_golang refuses is reported as an invalid metric,
	// which the handler skips (ContinueOnError), instead of a panic.
	send := func(m prometheus.Metric, err error, d *prometheus.Desc) {
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, prometheus.CounterValue, v, labels...)
		send(m, err, d)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
		send(m, err, d)
	}

	gauge(descInfo, 1, c.r.ClusterName(), strconv.Itoa(int(c.r.BrokerID())))
	for _, t := range s.Topics {
		counter(descBytesIn, float64(t.BytesIn), t.Topic)
		counter(descBytesOut, float64(t.BytesOut), t.Topic)
		counter(descMessagesIn, float64(t.MessagesIn), t.Topic)
	}
	counter(descReplicationBytesIn, float64(s.ReplicationBytesIn))
	counter(descReplicationBytesOut, float64(s.ReplicationBytesOut))
	counter(descProduceConversions, float64(s.ProduceConversions))
	histogram := func(d *prometheus.Desc, h histogramSnapshot, labels ...string) {
		buckets := make(map[float64]uint64, len(latencyBoundsSec))
		for i, b := range latencyBoundsSec {
			buckets[b] = uint64(h.Buckets[i])
		}
		m, err := prometheus.NewConstHistogram(d, uint64(h.Count), h.Sum.Seconds(), buckets, labels...)
		send(m, err, d)
	}
	for k := range s.RequestTimes {
		histogram(descRequestDuration, s.RequestTimes[k], RequestKind(k).String())
	}
	histogram(descLogFlush, s.LogFlushTimes)
	counter(descLogFlushFiles, float64(s.LogFlushFiles))
	histogram(descFollowerFetch, s.FollowerFetchTimes, "request")
	histogram(descFollowerFetch, s.FollowerDurableTimes, "durable")
	m, err := prometheus.NewConstSummary(descRequestSize, uint64(s.RequestCount), float64(s.RequestBytesSum), nil)
	send(m, err, descRequestSize)
	gauge(descConnections, float64(s.Connections))
	for a, n := range s.ClientConnections {
		gauge(descClientConns, float64(n), ClientAuth(a).String())
	}
	counter(descConnCreated, float64(s.ConnectionsCreated))
	counter(descConnClosed, float64(s.ConnectionsClosed))
	for why, n := range s.ConnectionsRefused {
		counter(descConnRefused, float64(n), Refusal(why).String())
	}
	counter(descTraffic, float64(s.TrafficIn), "in")
	counter(descTraffic, float64(s.TrafficOut), "out")
	for k, t := range s.Throttles {
		kind := ThrottleKind(k).String()
		counter(descThrottled, float64(t.Throttled), kind)
		counter(descThrottleTime, float64(t.TimeNanos)/1e9, kind)
		gauge(descThrottleQueue, float64(t.Queue), kind)
		if ThrottleKind(k) != ThrottleRequest {
			counter(descThrottleBytes, float64(t.Bytes), kind)
		}
	}
	m, err = prometheus.NewConstSummary(descExempt, uint64(s.ExemptCount), float64(s.ExemptNanos)/1e9, nil)
	send(m, err, descExempt)
	if s.LogShipping {
		counter(descLogDropped, float64(s.LogLinesDropped))
	}
	if fm := s.FetchMemory; s.FetchMemoryKnown {
		gauge(descFetchMemory, float64(fm.Held))
		if fm.Limit > 0 {
			gauge(descFetchMemoryLimit, float64(fm.Limit))
		}
		counter(descFetchMemoryCut, float64(fm.Cut))
		counter(descFetchMemoryLeaked, float64(fm.Leaked))
	}
	for _, rm := range s.RequestMemory {
		gauge(descRequestMemory, float64(rm.Held), rm.Listener)
		if rm.Limit > 0 {
			gauge(descRequestMemoryLimit, float64(rm.Limit), rm.Listener)
		}
		gauge(descRequestMemoryWaiting, float64(rm.Waiting), rm.Listener)
		counter(descRequestMemoryWaits, float64(rm.Waits), rm.Listener)
		counter(descRequestMemoryWait, rm.WaitSeconds, rm.Listener)
		counter(descRequestMemoryRefused, float64(rm.Refused), rm.Listener)
	}

	if st := s.State; st != nil {
		n := st.counts()
		gauge(descPartitions, float64(n.partitions))
		gauge(descLeaders, float64(n.leaders))
		gauge(descUnderReplicated, float64(n.underReplicated))
		gauge(descUnderMinISR, float64(n.underMinISR))
		active := 0.0
		if st.ActiveController {
			active = 1
		}
		gauge(descActive, active)
		gauge(descGlobalTopics, float64(st.GlobalTopicCount))
		gauge(descGlobalParts, float64(st.GlobalPartitionCount))
		gauge(descOffline, float64(st.OfflinePartitionsCount))
		for _, th := range st.ReplicationThrottle {
			gauge(descThrottleRate, th.Rate, th.Side)
			if th.Limited {
				gauge(descThrottleBound, th.Bound, th.Side)
			}
		}
		gauge(descPendingBytes, float64(st.PendingDeletionBytes))
		gauge(descPendingSegs, float64(st.PendingDeletionSegments))
		if st.RaftStoreReserveKept {
			gauge(descRaftReserve, float64(st.RaftStoreReserveBytes))
			onReserve := 0.0
			if st.RaftStoreOnReserve {
				onReserve = 1
			}
			gauge(descRaftOnReserve, onReserve)
			logStopped := 0.0
			if st.RaftStoreLogStopped {
				logStopped = 1
			}
			gauge(descRaftLogStopped, logStopped)
		}
		for _, p := range st.PeerRefusals {
			counter(descPeerRefusals, float64(p.Count), p.Listener, p.Reason)
		}
		for _, p := range st.PeerUnbound {
			counter(descPeerUnbound, float64(p.Count), p.Listener)
		}
		for _, a := range st.Authentications {
			counter(descAuthentications, float64(a.Count), a.Listener, a.Mechanism, a.Result)
		}
		for _, f := range st.AuthenticationFailures {
			counter(descAuthFailures, float64(f.Count), f.Listener, f.Mechanism, f.Reason)
		}
	}

	if s.DataDiskErr == nil {
		gauge(descDataDiskUsed, s.DataDisk.UsedPercent()/100)
		gauge(descDataDiskAvail, float64(s.DataDisk.Avail))
		gauge(descDataDiskSize, float64(s.DataDisk.Size))
	}
	if s.RootDiskErr == nil {
		gauge(descRootDiskUsed, s.RootDisk.UsedPercent()/100)
	}
	if s.CPUErr == nil {
		for _, m := range []struct {
			mode  string
			ticks uint64
		}{
			{"user", s.CPU.User}, {"nice", s.CPU.Nice}, {"system", s.CPU.System}, {"idle", s.CPU.Idle},
			{"iowait", s.CPU.IOWait}, {"irq", s.CPU.IRQ}, {"softirq", s.CPU.SoftIRQ}, {"steal", s.CPU.Steal},
		} {
			counter(descCPU, float64(m.ticks)/userHZ, m.mode)
		}
	}
	if m := s.Memory; s.MemoryErr == nil {
		gauge(descMemory, float64(m.Total), "total")
		gauge(descMemory, float64(m.Used()), "used")
		gauge(descMemory, float64(m.Free), "free")
		gauge(descMemory, float64(m.Available), "available")
		gauge(descMemory, float64(m.Buffers), "buffers")
		gauge(descMemory, float64(m.Cached), "cached")
		gauge(descSwap, float64(m.SwapUsed()), "used")
		gauge(descSwap, float64(m.SwapFree), "free")
	}
	if n := s.Network; s.NetworkErr == nil {
		counter(descNetRx, float64(n.RxPackets), "packets")
		counter(descNetRx, float64(n.RxErrors), "errors")
		counter(descNetRx, float64(n.RxDropped), "dropped")
		counter(descNetTx, float64(n.TxPackets), "packets")
		counter(descNetTx, float64(n.TxErrors), "errors")
		counter(descNetTx, float64(n.TxDropped), "dropped")
	}

	for i, g := range s.Lag {
		for j, p := range g.Partitions {
			part := strconv.Itoa(int(p.Partition))
			gauge(descOffsetLag, float64(p.Lag), g.Group, p.Topic, part)
			if tl := s.TimeLag[i][j]; tl.Known {
				gauge(descTimeLag, tl.Seconds, g.Group, p.Topic, part)
			}
		}
		for _, tl := range topicLags(g, s.TimeLag[i]) {
			gauge(descSumLag, float64(tl.sum), g.Group, tl.topic)
			gauge(descMaxLag, float64(tl.max), g.Group, tl.topic)
			if tl.timeKnown {
				gauge(descMaxTimeLag, tl.maxTime, g.Group, tl.topic)
			}
		}
	}

	if sh := c.r.shipper.Load(); sh != nil {
		st := sh.Stats()
		counter(descCWPuts, float64(st.Puts))
		counter(descCWShipped, float64(st.Shipped))
		counter(descCWDropped, float64(st.Dropped))
		counter(descCWDenied, float64(st.Denied))
		counter(descCWThrottled, float64(st.Throttled))
		if !st.LastOK.IsZero() {
			gauge(descCWLastOK, float64(st.LastOK.UnixNano())/1e9)
		}
	}
}
