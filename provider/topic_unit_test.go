package provider

import (
	"context"
	"maps"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"

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
