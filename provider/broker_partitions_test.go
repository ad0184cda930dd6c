package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
)

// TestPartitionRuleMatchesMSK: every instance type of Amazon MSK's table
// gets its MSK value, and the memory rule for other types gives each of
// them the same: the rule extends MSK's table rather than departing from
// it.
func TestPartitionRuleMatchesMSK(t *testing.T) {
	want := map[string]int{"t3.small": 300, "m5.large": 1000, "m5.xlarge": 1000, "m5.2xlarge": 2000, "m5.4xlarge": 4000, "m5.24xlarge": 4000,
		"m7g.large": 1000, "m7g.xlarge": 1000, "m7g.2xlarge": 2000, "m7g.4xlarge": 4000, "m7g.16xlarge": 4000}
	for typ, n := range want {
		if got, _ := brokerPartitionsFor(typ); got != n {
			t.Errorf("%s: %d, want MSK's %d", typ, got, n)
		}
	}
	for typ, n := range mskBrokerPartitions {
		gib, ok := instanceMemoryGiB(typ)
		if !ok {
			t.Errorf("%s: memory not read from the name", typ)
			continue
		}
		if got := partitionsForMemory(gib); got != n {
			t.Errorf("%s (%v GiB): the rule gives %d, MSK %d", typ, gib, got, n)
		}
	}
}

// TestPartitionRuleForOtherTypes: types MSK does not offer get a value by
// their memory, read from the name; an unknown family counts low, a size
// the provider cannot read gets MSK's smallest limit.
func TestPartitionRuleForOtherTypes(t *testing.T) {
	for typ, want := range map[string]int{
		"t3.medium": 600, "t4g.medium": 600, "t3.micro": 150, "t3.nano": 75, "t4g.small": 300, "t3a.2xlarge": 2000,
		"c7g.large": 600, "c6i.xlarge": 1000, "c5.2xlarge": 1000, "r7g.large": 1000, "r6i.2xlarge": 4000, "m7i.8xlarge": 4000,
		"m6g.medium": 600, "m6i.2xlarge": 2000, "x2gd.large": 2000, "i4i.large": 1000, "c5.metal": 4000, "m7g.metal-48xl": 4000,
		"im4gn.large": 600, // unknown class "im": 2 GiB per vCPU
		"q9.weird":    300, // a size the provider cannot read
	} {
		if got, why := brokerPartitionsFor(typ); got != want {
			t.Errorf("%s: %d (%s), want %d", typ, got, why, want)
		}
	}
}

// TestClusterBrokerPartitions: broker_config's value wins over the
// instance type's, and the provider sets its own only where broker_config
// does not name the setting.
func TestClusterBrokerPartitions(t *testing.T) {
	if n, from := clusterBrokerPartitions(nil, "t3.small"); n != 300 || from == "" {
		t.Errorf("t3.small without broker_config: %d (%s), want 300", n, from)
	}
	named := map[string]string{maxBrokerPartitionsSetting: "5000"}
	if n, from := clusterBrokerPartitions(named, "t3.small"); n != 5000 || from != "max.broker.partitions from the cluster's broker_config" {
		t.Errorf("t3.small with broker_config 5000: %d (%s), want 5000 from broker_config", n, from)
	}
	if n, _ := clusterBrokerPartitions(map[string]string{maxBrokerPartitionsSetting: "x"}, "t3.small"); n != 0 {
		t.Errorf("an invalid broker_config value: %d, want 0 (left to broker_config's validation)", n)
	}
	if got := sizedBrokerConfig(named, "t3.small"); got != nil {
		t.Errorf("sized settings with broker_config naming the setting: %v, want none", got)
	}
	if got := sizedBrokerConfig(map[string]string{"log.retention.ms": "1"}, "m5.2xlarge"); got[maxBrokerPartitionsSetting] != "2000" {
		t.Errorf("sized settings of m5.2xlarge: %v, want max.broker.partitions 2000", got)
	}
}

// TestReadDynamicConfigLeavesTheSizedValue: a refresh does not show in
// broker_config the value the provider set by instance type, shows one
// changed outside Terraform, and shows brokers without any value (a
// cluster created before the provider set it) at their default, so the
// plan sets it.
func TestReadDynamicConfigLeavesTheSizedValue(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		live map[string]string
		want map[string]string // nil: broker_config stays null
	}{
		{"the provider's value", map[string]string{maxBrokerPartitionsSetting: "300"}, nil},
		{"changed outside Terraform", map[string]string{maxBrokerPartitionsSetting: "9000"}, map[string]string{maxBrokerPartitionsSetting: "9000"}},
		{"never set", map[string]string{}, map[string]string{maxBrokerPartitionsSetting: "10000"}},
	} {
		m := &clusterModel{InstanceType: types.StringValue("t3.small"), BrokerConfig: types.MapNull(types.StringType)}
		if d := readDynamicConfig(ctx, m, tc.live); d.HasError() {
			t.Fatalf("%s: %v", tc.name, d)
		}
		if tc.want == nil {
			if !m.BrokerConfig.IsNull() {
				t.Errorf("%s: broker_config %v, want it left null", tc.name, m.BrokerConfig)
			}
			continue
		}
		got, _ := m.brokerConfig(ctx)
		if len(got) != len(tc.want) || got[maxBrokerPartitionsSetting] != tc.want[maxBrokerPartitionsSetting] {
			t.Errorf("%s: broker_config %v, want %v", tc.name, got, tc.want)
		}
	}
	// Named in broker_config: the brokers' value, as any dynamic setting.
	named, _ := types.MapValueFrom(ctx, types.StringType, map[string]string{maxBrokerPartitionsSetting: "300"})
	m := &clusterModel{InstanceType: types.StringValue("t3.small"), BrokerConfig: named}
	readDynamicConfig(ctx, m, map[string]string{maxBrokerPartitionsSetting: "300"})
	if got, _ := m.brokerConfig(ctx); got[maxBrokerPartitionsSetting] != "300" {
		t.Errorf("named and equal to the sized value: broker_config %v, want it kept", got)
	}
}

// TestClusterWideChangeFollowsTheInstanceType: an update sets the new
// instance type's max.broker.partitions where broker_config does not name
// it, leaves it where broker_config does, and gives the instance type's
// value back (no deletion) when broker_config stops naming it.
func TestClusterWideChangeFollowsTheInstanceType(t *testing.T) {
	spec := func(instanceType string, cfg map[string]string) *clusterSpec {
		cs := &clusterSpec{}
		cs.InstanceType = instanceType
		cs.StaticConfig, cs.DynamicConfig = splitBrokerConfig(cfg)
		cs.SizedConfig = sizedBrokerConfig(cfg, instanceType)
		return cs
	}
	named := map[string]string{maxBrokerPartitionsSetting: "500"}
	for _, tc := range []struct {
		name      string
		stateCfg  map[string]string
		stateType string
		next      *clusterSpec
		changed   bool
		wantLimit string
	}{
		{"instance type grows", nil, "t3.small", spec("m5.2xlarge", nil), true, "2000"},
		{"instance type shrinks", nil, "m5.4xlarge", spec("t3.small", nil), true, "300"},
		{"nothing changes", nil, "m5.large", spec("m5.large", nil), false, "1000"},
		{"named: the instance type does not matter", named, "t3.small", spec("m5.2xlarge", named), false, "500"},
		{"name removed", named, "t3.small", spec("t3.small", nil), true, "300"},
		{"name added", nil, "t3.small", spec("t3.small", named), true, "500"},
	} {
		changed, remove := clusterWideChange(tc.stateCfg, tc.stateType, tc.next)
		if changed != tc.changed {
			t.Errorf("%s: changed %v, want %v", tc.name, changed, tc.changed)
		}
		if len(remove) != 0 {
			t.Errorf("%s: removes %v, want nothing removed", tc.name, remove)
		}
		if got := tc.next.clusterWideConfig()[maxBrokerPartitionsSetting]; got != tc.wantLimit {
			t.Errorf("%s: sets max.broker.partitions %q, want %q", tc.name, got, tc.wantLimit)
		}
	}
}
