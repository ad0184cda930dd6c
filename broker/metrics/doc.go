// Package metrics is the broker's observability: a registry of metrics with
// Amazon MSK's names and semantics, their Prometheus exposition with the
// health endpoints on metrics.listen (port 11001), and a Shipper that puts
// them to CloudWatch with MSK's metric names and dimensions (`Cluster Name`,
// `Broker ID`, `Topic`, `Consumer Group`, `Partition`) at MSK's monitoring
// levels. docs/broker-metrics.md lists every metric and how it is measured.
//
// The hot path (Record*, Conn*) adds to atomic counters and never
// allocates; gauges (partitions, leaders, disk, CPU, memory, lag) are pulled
// when metrics are read, from sources the broker registers, so the server
// never pushes state.
//
// The broker makes its Registry and serves metrics.listen before it opens its
// log, so /healthz answers and /readyz says 503 while the log is recovered
// and the broker joins its cluster (a single broker is a cluster of one).
// Partition state comes from the cluster metadata; only the active
// controller reports the cluster-wide counts (Global*, Offline), so their
// sum over the brokers is the cluster's.
// Traffic is counted where Kafka counts it: a Fetch when its response is
// sent (not each read of a long poll), produced records when they are
// appended (a resent duplicate of an idempotent batch is not new traffic).
// CloudWatch shipping is never fatal: a broker that cannot reach CloudWatch
// serves without it.
package metrics
