package provider

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func brokerConfigValue(t *testing.T, m map[string]string) types.Map {
	t.Helper()
	if m == nil {
		return types.MapNull(types.StringType)
	}
	elems := map[string]attr.Value{}
	for k, v := range m {
		elems[k] = types.StringValue(v)
	}
	return types.MapValueMust(types.StringType, elems)
}

// problem is one expected diagnostic: its attribute path and a piece of
// its detail.
type problem struct {
	path   path.Path
	detail string
}

func checkProblems(t *testing.T, diags diag.Diagnostics, want []problem) {
	t.Helper()
	errs := diags.Errors()
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, d := range errs {
		wp, ok := d.(diag.DiagnosticWithPath)
		if !ok || !wp.Path().Equal(want[i].path) {
			t.Errorf("error %d at %v, want %s: %s", i, wp, want[i].path, d.Detail())
		}
		if !strings.Contains(d.Detail(), want[i].detail) {
			t.Errorf("error %d: %q, want %q", i, d.Detail(), want[i].detail)
		}
	}
}

func TestValidateBrokerConfigAtPlanTime(t *testing.T) {
	at := func(k string) path.Path { return path.Root("broker_config").AtMapKey(k) }
	tests := []struct {
		name    string
		cfg     map[string]string
		perAZ   int64 // 0: not set, -1: unknown
		subnets int   // 0: not set (three AZs)
		want    []problem
	}{
		{name: "none", cfg: nil},
		{name: "good", cfg: map[string]string{"log.retention.ms": "3600000", "min.insync.replicas": "2", "num.partitions": "6"}},
		{name: "a value the broker would refuse", cfg: map[string]string{"min.insync.replicas": "0"},
			want: []problem{{at("min.insync.replicas"), `broker_config["min.insync.replicas"] must be between 1 and 32767, got "0".`}}},
		{name: "unknown name", cfg: map[string]string{"min.insync.replica": "2"},
			want: []problem{{at("min.insync.replica"), `is not a broker setting (did you mean "min.insync.replicas"?)`}}},
		{name: "the agent's", cfg: map[string]string{"listeners": "PLAINTEXT://0.0.0.0:9092"},
			want: []problem{{at("listeners"), "is set by the boot agent"}}},
		{name: "not in the table any more", cfg: map[string]string{"log.preallocate": "true"},
			want: []problem{{at("log.preallocate"), "is not a broker setting"}}},
		{name: "several at once", cfg: map[string]string{"unclean.leader.election.enable": "yes", "log.retention.ms": "0", "num.partitions": "2"},
			want: []problem{
				{at("log.retention.ms"), "must be -1 (forever) or at least 1"},
				{at("unclean.leader.election.enable"), "must be true or false"},
			}},
		{name: "valid alone, not together", cfg: map[string]string{"broker.session.timeout.ms": "500", "broker.heartbeat.interval.ms": "300"},
			want: []problem{{at("broker.heartbeat.interval.ms"), "must be less than half of broker.session.timeout.ms"}}},
		{name: "more copies than the default cluster's brokers", cfg: map[string]string{"default.replication.factor": "4"},
			want: []problem{{at("default.replication.factor"), "is 4 but the cluster has 3 brokers"}}},
		{name: "four copies on six brokers", cfg: map[string]string{"default.replication.factor": "4"}, perAZ: 2},
		{name: "four copies, broker count unknown", cfg: map[string]string{"default.replication.factor": "4"}, perAZ: -1},
		{name: "four subnets", cfg: map[string]string{"default.replication.factor": "4"},
			subnets: 4},
		{name: "min ISR above the replication factor", cfg: map[string]string{"min.insync.replicas": "3", "default.replication.factor": "2"},
			want: []problem{{at("min.insync.replicas"), "(3) is above default.replication.factor (2)"}}},
		{name: "replication factor under the default min ISR", cfg: map[string]string{"default.replication.factor": "1"},
			want: []problem{{at("default.replication.factor"), "(1) is below min.insync.replicas (2)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := clusterModel{BrokerConfig: brokerConfigValue(t, tt.cfg), BrokersPerAZ: types.Int64Null(), SubnetIDs: types.ListNull(types.StringType)}
			switch {
			case tt.perAZ > 0:
				m.BrokersPerAZ = types.Int64Value(tt.perAZ)
			case tt.perAZ < 0:
				m.BrokersPerAZ = types.Int64Unknown()
			}
			if tt.subnets > 0 {
				var ids []attr.Value
				for i := range tt.subnets {
					ids = append(ids, types.StringValue(fmt.Sprintf("subnet-%d", i)))
				}
				m.SubnetIDs = types.ListValueMust(types.StringType, ids)
			}
			checkProblems(t, validateBrokerConfig(m), tt.want)
		})
	}
}

func TestValidateBrokerConfigWithUnknownValues(t *testing.T) {
	m := clusterModel{
		BrokerConfig: types.MapValueMust(types.StringType, map[string]attr.Value{
			"min.insync.replicas":        types.StringValue("0"),
			"default.replication.factor": types.StringUnknown(),
		}),
		BrokersPerAZ: types.Int64Null(), SubnetIDs: types.ListNull(types.StringType),
	}
	checkProblems(t, validateBrokerConfig(m), []problem{{path.Root("broker_config").AtMapKey("min.insync.replicas"), "between 1 and 32767"}})
	m.BrokerConfig = types.MapUnknown(types.StringType)
	checkProblems(t, validateBrokerConfig(m), nil)
}

func TestSplitBrokerConfigByTheTable(t *testing.T) {
	static, dynamic := splitBrokerConfig(map[string]string{
		"log.retention.ms": "1", "min.insync.replicas": "2", "message.max.bytes": "3", "unclean.leader.election.enable": "false",
		"num.partitions": "4", "default.replication.factor": "3", "auto.create.topics.enable": "false", "log.flush.interval.ms": "5",
	})
	if want := map[string]string{"num.partitions": "4", "default.replication.factor": "3", "auto.create.topics.enable": "false", "log.flush.interval.ms": "5"}; !maps.Equal(static, want) {
		t.Errorf("static = %v, want %v", static, want)
	}
	if want := map[string]string{"log.retention.ms": "1", "min.insync.replicas": "2", "message.max.bytes": "3", "unclean.leader.election.enable": "false"}; !maps.Equal(dynamic, want) {
		t.Errorf("dynamic = %v, want %v", dynamic, want)
	}
}

// TestLiveOrRoll checks the plan's decision for each kind of change: a
// static setting rolls the brokers, a dynamic one does not; with
// wait_for_brokers = false a dynamic change (set or removed) is refused,
// a static one is not.
func TestLiveOrRoll(t *testing.T) {
	at := func(k string) path.Path { return path.Root("broker_config").AtMapKey(k) }
	tests := []struct {
		name           string
		state, plan    map[string]string
		wait           bool
		create         bool
		rolls          bool
		refusedWithout []problem // wait_for_brokers = false
	}{
		{name: "nothing", state: map[string]string{"num.partitions": "3"}, plan: map[string]string{"num.partitions": "3"}, wait: true},
		{name: "static change", state: map[string]string{"num.partitions": "3"}, plan: map[string]string{"num.partitions": "6"}, wait: true, rolls: true},
		{name: "static removed", state: map[string]string{"num.partitions": "3"}, plan: nil, wait: true, rolls: true},
		{name: "static change, no wait", state: nil, plan: map[string]string{"num.partitions": "6"}, rolls: true},
		{name: "dynamic added", state: nil, plan: map[string]string{"message.max.bytes": "2097152"}, wait: true},
		{name: "dynamic changed", state: map[string]string{"message.max.bytes": "2097152"}, plan: map[string]string{"message.max.bytes": "3145728"}, wait: true},
		{name: "dynamic removed", state: map[string]string{"message.max.bytes": "2097152"}, plan: nil, wait: true},
		{name: "dynamic changed, no wait", state: map[string]string{"message.max.bytes": "2097152"}, plan: map[string]string{"message.max.bytes": "3145728"},
			refusedWithout: []problem{{at("message.max.bytes"), "is a dynamic setting"}}},
		{name: "dynamic removed, no wait", state: map[string]string{"message.max.bytes": "2097152", "num.partitions": "3"}, plan: map[string]string{"num.partitions": "3"},
			refusedWithout: []problem{{path.Root("broker_config"), `Removing broker_config["message.max.bytes"] restores its default`}}},
		{name: "dynamic unchanged, no wait", state: map[string]string{"message.max.bytes": "2097152"}, plan: map[string]string{"message.max.bytes": "2097152"}},
		{name: "create with a dynamic setting, no wait", create: true, plan: map[string]string{"log.retention.ms": "1000"},
			refusedWithout: []problem{{at("log.retention.ms"), "wait_for_brokers = false"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := &clusterModel{BrokerConfig: brokerConfigValue(t, tt.plan), WaitForBrokers: types.BoolValue(tt.wait)}
			var state *clusterModel
			if !tt.create {
				state = &clusterModel{BrokerConfig: brokerConfigValue(t, tt.state)}
				if got := staticConfigChanges(plan, state); got != tt.rolls {
					t.Errorf("rolls = %v, want %v", got, tt.rolls)
				}
			}
			var want []problem
			if !tt.wait {
				want = tt.refusedWithout
			}
			checkProblems(t, checkDynamicApplicable(plan, state), want)
		})
	}
}
