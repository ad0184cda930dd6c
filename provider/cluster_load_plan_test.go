package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

// TestPlannedBrokerLoad: an update that touches no broker keeps the load
// the refresh measured (null too, when it could not measure); one that
// changes brokers, or turns wait_for_brokers on or off, plans it unknown,
// for the apply to measure.
func TestPlannedBrokerLoad(t *testing.T) {
	measured, d := brokerLoadValue([]kafkatopic.BrokerLoad{
		{NodeID: 1, Rack: "us-east-1a", Endpoint: "127.1.0.10:9092", Partitions: 4, Leaders: 2, DiskUsedBytes: 1024},
		{NodeID: 2, Rack: "us-east-1b", Endpoint: "127.1.1.10:9092", Partitions: 4, Leaders: 2, DiskUsedBytes: 2048},
	})
	if d.HasError() {
		t.Fatal(d)
	}
	null := types.ListNull(brokerLoadObjectType)
	on, off := types.BoolValue(true), types.BoolValue(false)
	for _, tt := range []struct {
		name           string
		load           types.List
		stateWait      types.Bool
		planWait       types.Bool
		changesBrokers bool
		want           types.List // unknown: measured by the apply
	}{
		{"tags or dynamic settings", measured, on, on, false, measured},
		{"not measured by the refresh", null, on, on, false, null},
		{"brokers change", measured, on, on, true, types.ListUnknown(brokerLoadObjectType)},
		{"wait_for_brokers turned off", measured, on, off, false, types.ListUnknown(brokerLoadObjectType)},
		{"wait_for_brokers turned on", null, off, on, false, types.ListUnknown(brokerLoadObjectType)},
		{"wait_for_brokers unknown", measured, on, types.BoolUnknown(), false, types.ListUnknown(brokerLoadObjectType)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := &clusterModel{BrokerLoad: tt.load, WaitForBrokers: tt.stateWait}
			plan := &clusterModel{BrokerLoad: types.ListUnknown(brokerLoadObjectType), WaitForBrokers: tt.planWait}
			if got := plannedBrokerLoad(plan, state, tt.changesBrokers); !got.Equal(tt.want) {
				t.Fatalf("planned %v, want %v", got, tt.want)
			}
		})
	}
}
