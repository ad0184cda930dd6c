package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestEstimateCostFromTheModel(t *testing.T) {
	ctx := context.Background()
	model := func(instanceType string) clusterModel {
		return clusterModel{
			InstanceType: types.StringValue(instanceType), BrokersPerAZ: types.Int64Value(1), SubnetIDs: types.ListNull(types.StringType),
			Storage: types.ObjectNull(map[string]attr.Type{}), BrokerConfig: types.MapNull(types.StringType),
			EstimatedWriteMiBps: types.Float64Value(1),
		}
	}
	// Three m7g.large with the default 100 GiB gp3 volumes (no IOPS or
	// throughput above the included), RF 3 at 1 MiB/s and their own key:
	// the first case of pricing's pinned test, 306.36 and MSK 476.76.
	m := model("m7g.large")
	estimateCost(ctx, &m, "us-east-1")
	if got := m.EstimatedMonthlyCostUSD; got.IsNull() || got.IsUnknown() || got.ValueFloat64() != 306.36 {
		t.Errorf("estimated_monthly_cost_usd = %v, want 306.36", got)
	}
	if got := m.MSKEquivalentMonthlyCostUSD; got.IsNull() || got.ValueFloat64() != 476.76 {
		t.Errorf("msk_equivalent_monthly_cost_usd = %v, want 476.76", got)
	}

	// MSK has no t3.medium brokers; the table has no eu-west-3.
	m = model("t3.medium")
	estimateCost(ctx, &m, "us-east-1")
	if m.EstimatedMonthlyCostUSD.IsNull() || !m.MSKEquivalentMonthlyCostUSD.IsNull() {
		t.Errorf("t3.medium: %v and %v, want a figure and null", m.EstimatedMonthlyCostUSD, m.MSKEquivalentMonthlyCostUSD)
	}
	m = model("m7g.large")
	estimateCost(ctx, &m, "eu-west-3")
	if !m.EstimatedMonthlyCostUSD.IsNull() || !m.MSKEquivalentMonthlyCostUSD.IsNull() {
		t.Errorf("a region the table lacks: %v and %v, want null", m.EstimatedMonthlyCostUSD, m.MSKEquivalentMonthlyCostUSD)
	}

	// Known only at apply: unknown in the plan.
	m = model("m7g.large")
	m.InstanceType = types.StringUnknown()
	estimateCost(ctx, &m, "us-east-1")
	if !m.EstimatedMonthlyCostUSD.IsUnknown() {
		t.Errorf("unknown instance type: %v, want unknown", m.EstimatedMonthlyCostUSD)
	}
}
