package clienttest

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func ptr(s string) *string { return &s }

func TestAdminTopicsAndConfigs(t *testing.T) {
	b := startBroker(t)
	adm := b.admin(t)
	ctx := testContext(t, 30*time.Second)

	// Create with configs; bad configs and names are refused.
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": ptr("60000"), "cleanup.policy": ptr("compact")}, "cfg"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		rf      int16
		configs map[string]*string
		want    error
	}{
		{"bad-config", 1, map[string]*string{"retention.ms": ptr("soon")}, kerr.InvalidConfig},
		{"unknown-config", 1, map[string]*string{"no.such.config": ptr("1")}, kerr.InvalidConfig},
		{"broker-compression", 1, map[string]*string{"compression.type": ptr("gzip")}, nil},
		{"unknown-compression", 1, map[string]*string{"compression.type": ptr("brotli")}, kerr.InvalidConfig},
		{"producer-compression", 1, map[string]*string{"compression.type": ptr("producer")}, nil},
		{"rf3", 3, nil, kerr.InvalidReplicationFactor},
		{"bad/name", 1, nil, kerr.InvalidTopicException},
		{"cfg", 1, nil, kerr.TopicAlreadyExists},
	} {
		// kadm returns the topic's error as the call's error.
		if _, err := adm.CreateTopic(ctx, 1, tt.rf, tt.configs, tt.name); !errors.Is(err, tt.want) {
			t.Errorf("create %s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// validateOnly creates nothing.
	if _, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, "validate-only"); err != nil {
		t.Fatal(err)
	}
	if topics, _ := b.admin(t).ListTopics(ctx, "validate-only"); topics.Has("validate-only") {
		t.Fatal("validate-only created the topic")
	}

	describe := func(name string) map[string]*kadm.Config {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(name, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe %s: %v %v", name, err, rc.Err)
		}
		out := map[string]*kadm.Config{}
		for _, c := range rc.Configs {
			out[c.Key] = &c
		}
		return out
	}
	cfgs := describe("cfg")
	if c := cfgs["retention.ms"]; c.MaybeValue() != "60000" || c.Source.String() != "DYNAMIC_TOPIC_CONFIG" {
		t.Fatalf("retention.ms %+v", c)
	}
	if c := cfgs["segment.bytes"]; c.MaybeValue() != "1073741824" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("segment.bytes %+v", c)
	}

	// Incremental changes: set, delete back to the default, append to a list.
	_, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "retention.ms", Op: kadm.DeleteConfig},
		{Name: "segment.bytes", Value: ptr("1048576")},
		{Name: "cleanup.policy", Op: kadm.AppendConfig, Value: ptr("delete")},
	}, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfgs = describe("cfg")
	if c := cfgs["retention.ms"]; c.MaybeValue() != "604800000" || c.Source.String() != "DEFAULT_CONFIG" {
		t.Fatalf("retention.ms after delete %+v", c)
	}
	if cfgs["segment.bytes"].MaybeValue() != "1048576" || cfgs["cleanup.policy"].MaybeValue() != "compact,delete" {
		t.Fatalf("after alter: segment.bytes %v cleanup.policy %v", cfgs["segment.bytes"].MaybeValue(), cfgs["cleanup.policy"].MaybeValue())
	}
	// A bad value changes nothing.
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: ptr("-5")}}, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.On("cfg", nil); !errors.Is(r.Err, kerr.InvalidConfig) {
		t.Fatalf("bad alter: %v", r.Err)
	}

	// Dynamic broker config: topics that inherit it follow, and it
	// survives a restart; a static one is refused.
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "log.retention.ms", Value: ptr("123000")}}); err != nil {
		t.Fatal(err)
	}
	resps, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "log.dirs", Value: ptr("/elsewhere")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resps {
		if !errors.Is(r.Err, kerr.InvalidConfig) {
			t.Fatalf("altering a static broker config: %v", r.Err)
		}
	}
	if c := describe("cfg")["retention.ms"]; c.MaybeValue() != "123000" || c.Source.String() != "DYNAMIC_DEFAULT_BROKER_CONFIG" {
		t.Fatalf("inherited retention.ms %+v", c)
	}
	// This broker's own value wins over the cluster-wide default.
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "log.retention.ms", Value: ptr("222000")}}, 1); err != nil {
		t.Fatal(err)
	}
	if c := describe("cfg")["retention.ms"]; c.MaybeValue() != "222000" || c.Source.String() != "DYNAMIC_BROKER_CONFIG" {
		t.Fatalf("retention.ms with a per-broker value %+v", c)
	}
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "log.retention.ms", Op: kadm.DeleteConfig}}, 1); err != nil {
		t.Fatal(err)
	}
	b.restart()
	adm = b.admin(t)
	cfgs = describe("cfg")
	if cfgs["retention.ms"].MaybeValue() != "123000" || cfgs["segment.bytes"].MaybeValue() != "1048576" {
		t.Fatalf("after restart: retention.ms %v segment.bytes %v", cfgs["retention.ms"].MaybeValue(), cfgs["segment.bytes"].MaybeValue())
	}

	// Partitions grow, never shrink.
	if _, err := adm.UpdatePartitions(ctx, 5, "cfg"); err != nil {
		t.Fatal(err)
	}
	cr, err := adm.UpdatePartitions(ctx, 3, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := cr.On("cfg", nil); !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Fatalf("shrinking: %v", r.Err)
	}
	td, err := adm.ListTopics(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["cfg"].Partitions); n != 5 {
		t.Fatalf("%d partitions, want 5", n)
	}

	// Delete, then the name is free again.
	dr, err := adm.DeleteTopics(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.On("cfg", nil); r.Err != nil {
		t.Fatalf("delete: %v (%s)", r.Err, r.ErrMessage)
	}
	// A fresh client: kgo answers Metadata from its cache for a while.
	if td, _ := b.admin(t).ListTopics(ctx, "cfg"); td.Has("cfg") {
		t.Fatalf("topic still listed after delete: %+v", td["cfg"])
	}
	b.createTopic(t, "cfg", 1, nil)
}

func TestAdminOffsetsAndRecords(t *testing.T) {
	b := startBroker(t)
	adm := b.admin(t)
	ctx := testContext(t, 30*time.Second)
	b.createTopic(t, "recs", 1, nil)
	cl := b.client(t, kgo.DefaultProduceTopic("recs"))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		r := &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "recs")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("recs", 0); o.Offset != 10 {
		t.Fatalf("end offset %d", o.Offset)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, base.Add(4*time.Minute).UnixMilli(), "recs")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := byTime.Lookup("recs", 0); o.Offset != 4 || o.Timestamp != base.Add(4*time.Minute).UnixMilli() {
		t.Fatalf("offset by time: %+v", o)
	}
	after, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), "recs")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := after.Lookup("recs", 0); o.Offset != 10 && o.Offset != -1 {
		t.Fatalf("offset after the last record: %+v", o)
	}

	// DeleteRecords moves the log start; earliest follows.
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "recs", Partition: 0, At: 6})
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.Lookup("recs", 0); r.Err != nil || r.LowWatermark != 6 {
		t.Fatalf("delete records: %+v", r)
	}
	starts, err := adm.ListStartOffsets(ctx, "recs")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("recs", 0); o.Offset != 6 {
		t.Fatalf("start offset after DeleteRecords: %d", o.Offset)
	}
	got := flatten(consumeAll(t, b.addr, "recs", 4))
	for _, v := range []string{"6", "7", "8", "9"} {
		if got[v] != 1 {
			t.Fatalf("after DeleteRecords consumed %v", got)
		}
	}

	// DescribeLogDirs sizes the partition; DescribeCluster names us.
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == "recs" {
				size += p.Size
			}
		})
	})
	if size <= 0 {
		t.Fatalf("log dir size of recs: %d", size)
	}
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 1 || meta.Cluster == "" || meta.Controller != 1 {
		t.Fatalf("cluster: %+v", meta)
	}
}

func TestClusterIDStableAcrossRestarts(t *testing.T) {
	b := startBroker(t)
	ctx := testContext(t, 20*time.Second)
	m1, err := b.admin(t).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.restart()
	m2, err := b.admin(t).BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Cluster != m2.Cluster {
		t.Fatalf("cluster id changed from %s to %s", m1.Cluster, m2.Cluster)
	}
}

// TestAdminReservedAndCollidingTopicNames: through kadm, creating an
// internal topic is refused with INVALID_REQUEST and a message saying
// it is prohibited; once the broker made __consumer_offsets, its creation
// answers TOPIC_ALREADY_EXISTS and its deletion INVALID_REQUEST; a name
// equal to an existing one once '.' and '_' are equated answers
// INVALID_TOPIC_EXCEPTION ("collides with existing topic"), as in Kafka.
func TestAdminReservedAndCollidingTopicNames(t *testing.T) {
	b := startBroker(t)
	adm := b.admin(t)
	ctx := testContext(t, 30*time.Second)

	for _, name := range []string{"__consumer_offsets", "__transaction_state", "__cluster_metadata"} {
		resp, err := adm.CreateTopic(ctx, 1, 1, nil, name)
		if !errors.Is(err, kerr.InvalidRequest) || !strings.Contains(resp.ErrMessage, "is prohibited") {
			t.Errorf("creating %s: %v (%q), want INVALID_REQUEST saying it is prohibited", name, err, resp.ErrMessage)
		}
	}
	if err := adm.FindGroupCoordinators(ctx, "g").Error(); err != nil { // creates __consumer_offsets
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "__consumer_offsets"); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Errorf("creating __consumer_offsets once it exists: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	if _, err := adm.DeleteTopic(ctx, "__consumer_offsets"); !errors.Is(err, kerr.InvalidRequest) {
		t.Errorf("deleting __consumer_offsets: %v, want INVALID_REQUEST", err)
	}

	b.createTopic(t, "orders.eu", 1, nil)
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, "orders_eu")
	if !errors.Is(err, kerr.InvalidTopicException) || !strings.Contains(resp.ErrMessage, "collides with existing topic orders.eu") {
		t.Errorf("creating orders_eu beside orders.eu: %v (%q), want INVALID_TOPIC_EXCEPTION saying it collides", err, resp.ErrMessage)
	}
}
