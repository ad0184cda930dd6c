package provider

import (
	"context"
	"strconv"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/pricing"
)

// defaultEstimatedWriteMiBps is the write rate the cost estimate assumes
// when the configuration states none.
const defaultEstimatedWriteMiBps = 1.0

// estimateCost fills the two cost attributes from the planned (or read)
// settings and the provider's region, with the repository's price table.
// A figure the table cannot give (a region or instance type it lacks; MSK
// has no broker of that instance type) is null, and the reason is logged;
// a figure that depends on a value unknown until apply is unknown. The
// arithmetic is a pure function of the model, so plan, apply and refresh
// agree.
func estimateCost(ctx context.Context, m *clusterModel, region string) {
	m.EstimatedMonthlyCostUSD, m.MSKEquivalentMonthlyCostUSD = types.Float64Null(), types.Float64Null()
	brokers := plannedBrokers(*m)
	if m.InstanceType.IsUnknown() || m.Storage.IsUnknown() || m.EstimatedWriteMiBps.IsUnknown() || m.BrokerConfig.IsUnknown() || brokers > 1<<20 {
		m.EstimatedMonthlyCostUSD, m.MSKEquivalentMonthlyCostUSD = types.Float64Unknown(), types.Float64Unknown()
		return
	}
	st, d := m.storageSettings(ctx)
	if d.HasError() {
		return
	}
	write := defaultEstimatedWriteMiBps
	if !m.EstimatedWriteMiBps.IsNull() {
		write = m.EstimatedWriteMiBps.ValueFloat64()
	}
	// Each partition's replicas as the cluster places them: the cluster's
	// default replication factor (MSK's 3 on three brokers or more).
	rf := min(3, brokers)
	if cfg, known := knownBrokerConfig(m.BrokerConfig); known {
		if v, err := strconv.Atoi(cfg["default.replication.factor"]); err == nil && v > 0 {
			rf = v
		}
	}
	iops, throughput := int(st.IOPS), int(st.ThroughputMiBps)
	if iops == 0 {
		iops = 3000
	}
	if throughput == 0 {
		throughput = 125
	}
	c := pricing.Cluster{
		Region: region, InstanceType: m.InstanceType.ValueString(), Brokers: brokers,
		VolumeType: st.VolumeType, VolumeGiB: int(st.SizeGiB), IOPS: iops, ThroughputMiBps: throughput,
		ReplicationFactor: rf, WriteMiBps: write, OwnKMSKey: st.KMSKeyARN == "",
	}
	if e, err := pricing.Tributary(c); err == nil {
		m.EstimatedMonthlyCostUSD = types.Float64Value(e.Total())
	} else {
		tflog.Info(ctx, "no cost estimate", map[string]any{"reason": err.Error()})
	}
	if e, err := pricing.MSK(c); err == nil {
		m.MSKEquivalentMonthlyCostUSD = types.Float64Value(e.Total())
	} else {
		tflog.Info(ctx, "no Amazon MSK cost estimate", map[string]any{"reason": err.Error()})
	}
}
