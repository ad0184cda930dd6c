package clienttest

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/groups"
	"github.com/tributary/tributary/broker/server"
	"github.com/tributary/tributary/broker/server/metastore"
	"github.com/tributary/tributary/broker/storage"
)

// oldMetadataFile is a metadata file written by the broker version that kept
// its metadata in a file: topics orders (3 partitions), events (2) and
// __consumer_offsets, every partition at leader epoch 3 (three starts),
// cluster-wide and node-1 dynamic broker configs, and two producer-id blocks
// handed out.
const oldMetadataFile = "../server/metastore/testdata/tributary-metadata-v1.json"

// oldRecords is what the old broker wrote into each partition.
var oldRecords = map[string]int{"orders": 3, "events": 2}

// writeOldDataDir lays out a data directory as the broker that kept its
// metadata in a file left it: the metadata file, the partition logs
// written with the leader epoch the file records, and committed offsets
// of group "legacy-group" in __consumer_offsets, written by the group
// coordinator straight to the offsets partition as that broker did.
func writeOldDataDir(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(oldMetadataFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, metastore.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(dir, storage.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for topic, partitions := range oldRecords {
		for p := range int32(partitions) {
			log, err := st.CreatePartition(topic, p, storage.TopicConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if _, err := log.Append(ctx, oldBatch(fmt.Sprintf("old-%s-%d-%d", topic, p, i)), storage.AppendOptions{LeaderEpoch: 3}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	offsets, err := st.CreatePartition("__consumer_offsets", 0, storage.TopicConfig{CleanupPolicy: "compact"})
	if err != nil {
		t.Fatal(err)
	}
	gc := groups.DefaultConfig()
	gc.Logger = testLogger()
	c, err := groups.New(ctx, groups.NewPartitionLog(offsets), gc)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 8, "legacy-group", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "orders"
	for p, off := range []int64{7, 4} {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = int32(p), off, 3
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.OffsetCommitRequestTopic{rt}
	for _, p := range c.OffsetCommit(ctx, req).Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("committing in the old data dir: %v", kerr.ErrorForCode(p.ErrorCode))
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// oldBatch is a one-record batch with the given value.
func oldBatch(value string) []byte {
	b := kmsg.NewRecordBatch()
	b.Magic = 2
	b.ProducerID, b.ProducerEpoch, b.FirstSequence = -1, -1, -1
	b.FirstTimestamp = time.Now().UnixMilli()
	b.MaxTimestamp = b.FirstTimestamp
	b.NumRecords = 1
	r := kmsg.NewRecord()
	r.Value = []byte(value)
	body := r.AppendTo(nil)[1:] // without the zero length varint
	r.Length = int32(len(body))
	b.Records = r.AppendTo(nil)
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// TestOldDataDirIsImported starts a broker on a data directory written by
// the broker version that kept its metadata in a file, and checks with a
// real client that topics (ids, partitions, configs), records, committed
// offsets, dynamic broker configs, the cluster id and the producer-id
// counter came through; then that a restart keeps them without importing
// again.
func TestOldDataDirIsImported(t *testing.T) {
	dir := t.TempDir()
	writeOldDataDir(t, dir)
	b := startBroker(t, func(c *config.Config) { c.DataDir = dir })

	check := func(stage string) {
		t.Helper()
		ctx := testContext(t, 30*time.Second)
		adm := b.admin(t)
		meta, err := adm.Metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if meta.Cluster != "legacy-single-node-cl" || meta.Controller != b.cfg.NodeID {
			t.Fatalf("%s: cluster %q controller %d", stage, meta.Cluster, meta.Controller)
		}
		wantIDs := map[string]string{"orders": "w5mJJuyrCnWkfDX5wd2jww", "events": "ud1KKjQHYDHxvMp9Y0Xxbw", "__consumer_offsets": "ik69mQbw1NDeoqmdpx10ng"}
		for name, id := range wantIDs {
			td, ok := meta.Topics[name]
			if !ok || td.Err != nil {
				t.Fatalf("%s: topic %s missing (%v)", stage, name, td.Err)
			}
			var want metastore.TopicID
			if err := want.UnmarshalText([]byte(id)); err != nil {
				t.Fatal(err)
			}
			if [16]byte(td.ID) != [16]byte(want) {
				t.Fatalf("%s: topic %s has id %s, the file had %s", stage, name, td.ID, id)
			}
			for _, p := range td.Partitions {
				if p.Leader != b.cfg.NodeID || p.LeaderEpoch <= 3 || len(p.Replicas) != 1 || len(p.ISR) != 1 {
					t.Fatalf("%s: %s-%d %+v, want led by %d past epoch 3", stage, name, p.Partition, p, b.cfg.NodeID)
				}
			}
		}
		if n := len(meta.Topics["orders"].Partitions); n != 3 {
			t.Fatalf("%s: orders has %d partitions", stage, n)
		}
		if !meta.Topics["__consumer_offsets"].IsInternal {
			t.Fatalf("%s: __consumer_offsets is not internal", stage)
		}

		// Topic configs kept; dynamic broker configs in force.
		rcs, err := adm.DescribeTopicConfigs(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("orders", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct{ key, value string }{{"retention.ms", "86400000"}, {"min.insync.replicas", "1"}} {
			if c := configNamed(rc.Configs, want.key); c == nil || c.MaybeValue() != want.value || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Fatalf("%s: orders %s = %+v, want the topic's own %s", stage, want.key, c, want.value)
			}
		}
		bcs, err := adm.DescribeBrokerConfigs(ctx, b.cfg.NodeID)
		if err != nil {
			t.Fatal(err)
		}
		bc, err := bcs.On(fmt.Sprint(b.cfg.NodeID), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct {
			key, value string
			source     kmsg.ConfigSource
		}{
			{"max.connections", "900", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
			{"log.retention.ms", "604800000", kmsg.ConfigSourceDynamicDefaultBrokerConfig},
			{"num.partitions", "4", kmsg.ConfigSourceDynamicBrokerConfig},
		} {
			if c := configNamed(bc.Configs, want.key); c == nil || c.MaybeValue() != want.value || c.Source != want.source {
				t.Fatalf("%s: broker %s = %+v, want %s from %v", stage, want.key, c, want.value, want.source)
			}
		}

		// Committed offsets of the old group.
		offs, err := adm.FetchOffsets(ctx, "legacy-group")
		if err != nil {
			t.Fatal(err)
		}
		for p, want := range []int64{7, 4} {
			o, ok := offs.Lookup("orders", int32(p))
			if !ok || o.Err != nil || o.At != want {
				t.Fatalf("%s: legacy-group orders-%d committed %+v, want %d", stage, p, o, want)
			}
		}

		// A producer id beyond the blocks the file handed out.
		cl := b.client(t)
		ireq := kmsg.NewPtrInitProducerIDRequest()
		ireq.TransactionTimeoutMillis = -1
		iresp, err := ireq.RequestWith(ctx, cl)
		if err != nil || iresp.ErrorCode != 0 {
			t.Fatalf("%s: InitProducerID: %v %v", stage, err, kerr.ErrorForCode(iresp.ErrorCode))
		}
		if iresp.ProducerID < 2000 {
			t.Fatalf("%s: producer id %d reuses the blocks the file handed out (below 2000)", stage, iresp.ProducerID)
		}
	}

	check("after the import")
	if _, err := os.Stat(filepath.Join(dir, metastore.FileName)); !os.IsNotExist(err) {
		t.Fatalf("the metadata file is still in place after the import: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, metastore.FileName+metastore.RetiredSuffix)); err != nil {
		t.Fatalf("the retired metadata file: %v", err)
	}
	// New records follow the old ones; everything reads back in order.
	produceSync(t, b.client(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner())), "orders", 6, "new")

	b.restart()
	check("after a restart")
	got := consumeAll(t, b.addr, "orders", 3*10+6)
	for p := range int32(3) {
		vs := got[p]
		if len(vs) != 12 {
			t.Fatalf("orders-%d read %d records, want 10 old and 2 new: %v", p, len(vs), vs)
		}
		for i := range 10 {
			if want := fmt.Sprintf("old-orders-%d-%d", p, i); vs[i] != want {
				t.Fatalf("orders-%d offset %d is %q, want %q", p, i, vs[i], want)
			}
		}
		for _, v := range vs[10:] {
			if !strings.HasPrefix(v, "new-") {
				t.Fatalf("orders-%d: %q after the old records", p, v)
			}
		}
	}
	if got := flatten(consumeAll(t, b.addr, "events", 2*10)); len(got) != 20 {
		t.Fatalf("events read back %d distinct records, want 20", len(got))
	}
}

// TestOldDataDirOfAnotherClusterIsRefused: a data directory whose metadata
// file names another cluster than cluster.id does not start, and keeps
// its file.
func TestOldDataDirOfAnotherClusterIsRefused(t *testing.T) {
	dir := t.TempDir()
	writeOldDataDir(t, dir)
	cfg := config.Default()
	cfg.DataDir, cfg.ClusterID = dir, "some-other-cluster"
	if err := cfg.Set("listeners", "PLAINTEXT://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 30*time.Second)
	srv, err := server.New(ctx, server.Options{Config: cfg, Logger: testLogger()})
	if err == nil {
		srv.Shutdown(ctx)
		t.Fatal("a data directory of another cluster was accepted")
	}
	if !strings.Contains(err.Error(), "legacy-single-node-cl") || !strings.Contains(err.Error(), "some-other-cluster") {
		t.Fatalf("error does not name both clusters: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, metastore.FileName)); err != nil {
		t.Fatalf("the metadata file after a refused start: %v", err)
	}
}

// configNamed finds a config in a DescribeConfigs answer.
func configNamed(cs []kadm.Config, name string) *kadm.Config {
	for i := range cs {
		if cs[i].Key == name {
			return &cs[i]
		}
	}
	return nil
}
