package provider

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

// TestReadTopicInto checks what a refresh makes of the cluster's answer:
// drift shows, a value the brokers spell differently but that means the
// same keeps the configuration's spelling, an unset config stays null.
func TestReadTopicInto(t *testing.T) {
	ctx := context.Background()
	mapOf := func(m map[string]string) types.Map {
		if m == nil {
			return types.MapNull(types.StringType)
		}
		v, _ := types.MapValueFrom(ctx, types.StringType, m)
		return v
	}
	partitions := func(counts ...int) []kafkatopic.Partition {
		var out []kafkatopic.Partition
		for _, n := range counts {
			out = append(out, kafkatopic.Partition{Replicas: make([]int32, n)})
		}
		return out
	}
	tests := []struct {
		name      string
		priorRF   int64
		priorCfg  map[string]string // nil: config not set
		live      kafkatopic.Topic
		wantParts int64
		wantRF    int64
		wantCfg   map[string]string // nil: null
	}{
		{name: "unchanged, no config",
			priorRF: 3, live: kafkatopic.Topic{Name: "t", Partitions: partitions(3, 3), Config: map[string]string{}},
			wantParts: 2, wantRF: 3},
		{name: "configs set outside Terraform show although none are configured",
			priorRF: 3, live: kafkatopic.Topic{Name: "t", Partitions: partitions(3), Config: map[string]string{"retention.ms": "1000"}},
			wantParts: 1, wantRF: 3, wantCfg: map[string]string{"retention.ms": "1000"}},
		{name: "the configuration's spelling of the same value is kept",
			priorRF: 3, priorCfg: map[string]string{"cleanup.policy": "delete,compact", "retention.ms": "1000"},
			live:      kafkatopic.Topic{Name: "t", Partitions: partitions(3), Config: map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "2000"}},
			wantParts: 1, wantRF: 3, wantCfg: map[string]string{"cleanup.policy": "delete,compact", "retention.ms": "2000"}},
		{name: "an empty configured map stays empty",
			priorRF: 3, priorCfg: map[string]string{}, live: kafkatopic.Topic{Name: "t", Partitions: partitions(3)},
			wantParts: 1, wantRF: 3, wantCfg: map[string]string{}},
		{name: "partitions grown and one partition's replicas changed outside",
			priorRF: 3, live: kafkatopic.Topic{Name: "t", Partitions: partitions(3, 3, 2, 3)},
			wantParts: 4, wantRF: 2},
		{name: "a reassignment's throttled-replicas configs are not the topic's",
			priorRF: 3, live: kafkatopic.Topic{Name: "t", Partitions: partitions(3), Config: map[string]string{
				"leader.replication.throttled.replicas": "0:1", "follower.replication.throttled.replicas": "0:2"}},
			wantParts: 1, wantRF: 3},
		{name: "a reassignment's throttled-replicas configs beside the topic's own",
			priorRF: 3, priorCfg: map[string]string{"retention.ms": "1000"}, live: kafkatopic.Topic{Name: "t", Partitions: partitions(3), Config: map[string]string{
				"retention.ms": "1000", "follower.replication.throttled.replicas": "0:2"}},
			wantParts: 1, wantRF: 3, wantCfg: map[string]string{"retention.ms": "1000"}},
		{name: "import: no prior replication factor",
			priorRF: 0, live: kafkatopic.Topic{Name: "t", Partitions: partitions(2, 2)},
			wantParts: 2, wantRF: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := topicModel{ClusterID: types.StringValue("tc-0123456789abcdef"), Name: types.StringValue("t"),
				ReplicationFactor: types.Int64Value(tt.priorRF), Config: mapOf(tt.priorCfg)}
			if d := readTopicInto(ctx, &m, &tt.live); d.HasError() {
				t.Fatal(d)
			}
			if m.Partitions.ValueInt64() != tt.wantParts || m.ReplicationFactor.ValueInt64() != tt.wantRF {
				t.Errorf("partitions %d, replication factor %d; want %d, %d", m.Partitions.ValueInt64(), m.ReplicationFactor.ValueInt64(), tt.wantParts, tt.wantRF)
			}
			if m.ID.ValueString() != "tc-0123456789abcdef/t" {
				t.Errorf("id %q", m.ID.ValueString())
			}
			if tt.wantCfg == nil {
				if !m.Config.IsNull() {
					t.Errorf("config %v, want null", m.Config)
				}
				return
			}
			got, _ := knownStrings(m.Config)
			if m.Config.IsNull() || !maps.Equal(got, tt.wantCfg) {
				t.Errorf("config %v, want %v", m.Config, tt.wantCfg)
			}
		})
	}
}

// TestTopicLimitsAreTheBrokers keeps the plan's per-request bound equal to
// the one the brokers enforce.
func TestTopicLimitsAreTheBrokers(t *testing.T) {
	if maxRecordsPerRequest != cluster.MaxRecordsPerUserOp {
		t.Fatalf("maxRecordsPerRequest is %d, the brokers' MaxRecordsPerUserOp %d", maxRecordsPerRequest, cluster.MaxRecordsPerUserOp)
	}
}

// TestPartitionStepRefusal checks the plan's refusal of a topic created or
// grown by more partitions than one request carries: the bounds are the
// brokers' (9,999 created less one per config, 10,000 added), one past
// them is refused, and the message names the limit and the steps.
func TestPartitionStepRefusal(t *testing.T) {
	tests := []struct {
		name       string
		created    bool
		have, want int64
		configs    int
		refused    []string // substrings of the detail; nil: accepted
	}{
		{name: "create at the limit", created: true, want: 9999},
		{name: "create one past the limit", created: true, want: 10000,
			refused: []string{"Topic t would be created with 10000 partitions", "at most 9999 partitions", "POLICY_VIOLATION",
				"Create it with 9999 partitions or fewer", "at most 10000 more each: 10000."}},
		{name: "configs count against a creation", created: true, want: 9998, configs: 2,
			refused: []string{"at most 9997 partitions", "one per config key: 2 here", "Create it with 9997 partitions or fewer", ": 9998."}},
		{name: "a creation with configs under the limit", created: true, want: 9997, configs: 2},
		{name: "a large creation in steps", created: true, want: 25000,
			refused: []string{"Create it with 9999 partitions or fewer", "19999, then 25000."}},
		{name: "growth by exactly the limit", have: 6, want: 10006},
		{name: "growth one past the limit", have: 6, want: 10007,
			refused: []string{"Topic t has 6 partitions and the configuration asks for 10007: 10001 more", "adds at most 10000 partitions",
				"POLICY_VIOLATION", "one apply each: 10006, then 10007."}},
		{name: "growth in three steps", have: 10000, want: 35000,
			refused: []string{"20000, then 30000, then 35000."}},
		{name: "configs do not count against growth", have: 1, want: 10001, configs: 5},
		{name: "a shrink is not this refusal", have: 20000, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			summary, detail := partitionStepRefusal("t", tt.created, tt.have, tt.want, tt.configs)
			if tt.refused == nil {
				if summary != "" {
					t.Fatalf("refused: %s: %s", summary, detail)
				}
				return
			}
			if summary == "" {
				t.Fatal("accepted")
			}
			for _, w := range tt.refused {
				if !strings.Contains(detail, w) {
					t.Errorf("detail %q lacks %q", detail, w)
				}
			}
		})
	}
}
