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
// # Wiring guide (for broker/server and the run command)
//
// broker/server (owned by the server engineer), step by step:
//
// 1. server.Options gains `Metrics *metrics.Registry`; New keeps it in
// Server.metrics, or makes one when nil, so handlers never test for nil:
//
//	s.metrics = opts.Metrics
//	if s.metrics == nil {
//		s.metrics = metrics.New(metrics.Options{BrokerID: static.NodeID, DataDir: static.DataDir, Logger: log})
//	}
//
// 2. server.go, Serve: once the max.connections check admits a connection
// (just before newConn), and in the connection's goroutine beside
// `defer s.openConns.Add(-1)`:
//
//	s.metrics.ConnOpened()
//	...
//	defer s.metrics.ConnClosed()
//
// 3. conn.go, dispatch: time every handler (RequestBytesMean and the
// *TotalTimeMsMean metrics); req.size is the frame size the reader set:
//
//	start := time.Now()
//	resp, err := a.handle(ctx, s, c, req.kreq)
//	s.metrics.RecordRequest(metrics.ClassifyRequest(req.kreq), req.size, time.Since(start))
//	return resp, err
//
// 4. 00_produce.go, handleProduce, in run() after a successful Append
// (after `j.out.LogStartOffset = res.LogStartOffset`); duplicates of
// idempotent batches are not counted again, as in Kafka:
//
//	if !res.Duplicate {
//		s.metrics.RecordProduce(j.p.topic, len(j.record), int(res.LastOffset-res.BaseOffset+1))
//	}
//
// 5. 01_fetch.go, handleFetch: count the records of the response that is
// sent, not the intermediate reads of a long poll: replace
// `return finish(resp)` with `return s.countFetched(finish(resp))`:
//
//	func (s *Server) countFetched(resp *kmsg.FetchResponse) *kmsg.FetchResponse {
//		for _, t := range resp.Topics {
//			name := t.Topic
//			if name == "" { // v13+: topics by id
//				tp, ok := s.lookupTopicID(t.TopicID)
//				if !ok {
//					continue
//				}
//				name = tp.name
//			}
//			for _, p := range t.Partitions {
//				s.metrics.RecordFetch(name, len(p.RecordBatches))
//			}
//		}
//		return resp
//	}
//
// Follower fetches (once replication serves them) call
// s.metrics.RecordReplicationOut(bytes) instead, and a follower's append of
// fetched data calls s.metrics.RecordReplicationIn(bytes).
//
// 6. 20_delete_topics.go: after a topic is deleted, s.metrics.RemoveTopic(name).
//
// 7. New, after openGroups: register the pull sources and the readiness
// check:
//
//	s.metrics.SetStateSource(s.metricsState)
//	s.metrics.SetLagSource(grouplag.Source(s.groups, func(topic string, p int32) (int64, bool) {
//		part, ok := s.lookupPartition(topic, p)
//		if !ok {
//			return 0, false
//		}
//		return part.log.HighWatermark(), true
//	}))
//	s.metrics.SetReady(s.ready) // nil once Serve accepts connections; an error before, and from Shutdown on
//
// where metricsState reports every partition of every topic (the internal
// __consumer_offsets included, as Kafka's counts do): on a single node
// Leader true, Replicas 1, InSync 1, MinInsync the topic's
// min.insync.replicas, ActiveController true, GlobalTopicCount and
// GlobalPartitionCount the totals, OfflinePartitionsCount 0. The cluster
// release fills these from the metadata quorum: the Raft leader is the
// active controller and only it reports the Global* and Offline counts.
//
// broker/cmd/tributary-broker/main.go, runMain, after config.FromArgs:
//
//	cw, err := metrics.ParseCloudWatchSettings(cfg.Get) // broker/config declares the tributary.* keys
//	if err != nil { log.Error("cannot start", "err", err); return 2 }
//	clusterName := cw.ClusterName
//	if clusterName == "" { clusterName = cfg.ClusterID }
//	reg := metrics.New(metrics.Options{ClusterName: clusterName, BrokerID: cfg.NodeID, DataDir: cfg.DataDir, Logger: log})
//	if cfg.MetricsListen != "" { // before server.New: /healthz answers and /readyz says 503 during log recovery
//		hs, err := metrics.ListenHTTP(cfg.MetricsListen, reg.Handler(os.Getenv(bootstatus.EnvPath)), log)
//		if err != nil { log.Error("cannot start", "err", err); return 1 }
//		defer hs.Shutdown(context.Background())
//	}
//	srv, err := server.New(server.Options{Config: cfg, Logger: log, Metrics: reg})
//	...
//	ctx, stop := signal.NotifyContext(...)   // existing
//	if cw.Enabled {
//		client, err := metrics.NewCloudWatchClient(ctx) // default chain: IMDS role credentials, AWS_ENDPOINT_URL
//		if err != nil {
//			log.Error("CloudWatch metrics are off", "err", err) // never fatal: the broker serves without them
//		} else if sh, err := metrics.NewShipper(metrics.ShipperOptions{Registry: reg, Client: client,
//			Namespace: cw.Namespace, Level: cw.Level, Interval: cw.Interval, Logger: log}); err != nil {
//			log.Error("CloudWatch metrics are off", "err", err)
//		} else {
//			go sh.Run(ctx)
//		}
//	}
//
// (broker/server and the run command are wired this way. Without broker/config,
// LoadCloudWatchSettings reads the same keys from a properties file.)
package metrics
