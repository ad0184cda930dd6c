package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

// A scale-in (brokers_per_az lowered) removes the brokers whose node ids
// are above the new count: the last broker of each Availability Zone, never
// the first, which are the metadata quorum's voters. They are drained
// through Kafka before anything is deleted, so it needs the brokers
// reachable from where Terraform runs.

// planCheckPatience bounds the plan's look at the cluster's topics: a plan
// that cannot reach the brokers leaves the check to the apply.
const planCheckPatience = 20 * time.Second

// checkScaleInPlan refuses at plan time a scale-in the apply could not do:
// with wait_for_brokers = false (the provider then does not speak Kafka to
// the brokers, and a broker is drained through Kafka), or when the brokers
// left could not hold the replicas of some topic, which it asks the
// cluster when it can reach it. It warns which brokers go.
func (r *clusterResource) checkScaleInPlan(ctx context.Context, plan, state *clusterModel) diag.Diagnostics {
	var diags diag.Diagnostics
	if plan.BrokersPerAZ.IsUnknown() || plan.BrokersPerAZ.ValueInt64() >= state.BrokersPerAZ.ValueInt64() {
		return nil
	}
	at := path.Root("brokers_per_az")
	if !plan.WaitForBrokers.IsUnknown() && !plan.WaitForBrokers.ValueBool() {
		diags.AddAttributeError(at, "Removing brokers needs the brokers reachable",
			fmt.Sprintf("Lowering brokers_per_az from %d to %d removes brokers, which are drained first: their partitions are moved to the others "+
				"through the Kafka protocol, and wait_for_brokers = false says the brokers are not reachable from here. Set wait_for_brokers = true "+
				"and run Terraform where it reaches the brokers.", state.BrokersPerAZ.ValueInt64(), plan.BrokersPerAZ.ValueInt64()))
		return diags
	}
	keep := plannedBrokers(*plan)
	var removed []int32
	for id := int32(keep + 1); id <= int32(plannedBrokers(*state)); id++ {
		removed = append(removed, id)
	}
	if len(removed) == 0 {
		return nil
	}
	clusterID := state.ClusterID.ValueString()
	// The plan's broker_config is what the drain meets: the apply sets
	// the cluster-wide dynamic value before it drains.
	limit, from, known := 0, "", !plan.BrokerConfig.IsUnknown() && !plan.InstanceType.IsUnknown()
	if known {
		cfg, d := plan.brokerConfig(ctx)
		diags.Append(d...)
		limit, from = clusterBrokerPartitions(cfg, plan.InstanceType.ValueString())
	}
	cctx, cancel := context.WithTimeout(ctx, planCheckPatience)
	defer cancel()
	conn, err := r.data.kafkaConn(cctx, clusterID)
	if err == nil {
		admin := &kafkatopic.Admin{Conn: conn}
		err = admin.CheckDrain(cctx, removed, limit)
		if err != nil && cctx.Err() == nil {
			diags.AddAttributeError(at, "The brokers left cannot hold the topics", fmt.Sprintf("Removing brokers %v: %v%s.", removed, err, limitSource(err, from)))
			return diags
		}
	}
	if err != nil {
		tflog.Info(ctx, "could not read the cluster's topics at plan time; the apply checks them before removing anything", map[string]any{"error": err.Error()})
	}
	diags.AddWarning("Brokers will be drained and removed",
		fmt.Sprintf("Brokers %v are removed: their partitions' replicas move to the %d brokers left (rack-aware, each partition keeps its "+
			"Availability Zones), leaders move off them and every partition's ISR is full again before their Auto Scaling groups, instances, "+
			"volumes and network interfaces are deleted and they are unregistered from the cluster metadata. Their data is copied, which takes "+
			"time in proportion to what they hold.", removed, keep))
	return diags
}

// checkScaleIn runs at apply time before anything is touched: it refuses a
// scale-in whose brokers cannot be drained (unreachable brokers, or too few
// left for some topic's replicas).
func (r *clusterResource) checkScaleIn(ctx context.Context, spec *clusterSpec, o *fleet.Observed, removed []fleet.Broker, live map[int32]kafkaAccess, waitForBrokers bool) diag.Diagnostics {
	var diags diag.Diagnostics
	if len(removed) == 0 {
		return nil
	}
	ids := nodeIDs(removed)
	const summary = "Cannot remove brokers"
	if !waitForBrokers {
		diags.AddError(summary, fmt.Sprintf("Brokers %v would be removed, which needs them drained through the Kafka protocol first, and "+
			"wait_for_brokers = false. Nothing was changed.", ids))
		return diags
	}
	cctx, cancel := context.WithTimeout(ctx, reachWindow)
	defer cancel()
	limit, _ := clusterBrokerPartitions(spec.clusterWideConfig(), spec.InstanceType)
	if err := r.drainAdmin(o.Brokers, spec, live).CheckDrain(cctx, ids, limit); err != nil {
		diags.AddError(summary, fmt.Sprintf("Brokers %v would be removed, but: %v. Nothing was changed.", ids, err))
	}
	return diags
}

// limitSource names where a refusal's max.broker.partitions came from.
func limitSource(err error, from string) string {
	if !errors.Is(err, kafkatopic.ErrBrokerPartitions) || from == "" {
		return ""
	}
	return " (" + from + ")"
}

// scaleIn drains the removed brokers and then removes them: AWS objects
// and their registration in the cluster metadata. all is every broker
// before the scale-in; live, how the removed ones are reached (they do not
// roll with the others).
func (r *clusterResource) scaleIn(ctx context.Context, spec *clusterSpec, all, removed []fleet.Broker, live map[int32]kafkaAccess) diag.Diagnostics {
	var diags diag.Diagnostics
	if len(removed) == 0 {
		return nil
	}
	ids := nodeIDs(removed)
	admin := r.drainAdmin(all, spec, live)
	start := time.Now()
	res, err := admin.Drain(ctx, ids)
	if err != nil {
		diags.AddError("Draining brokers of cluster "+spec.ClusterID,
			fmt.Sprintf("Moving the partitions off brokers %v failed: %v. No broker was removed; the moves already accepted continue on the "+
				"brokers, and the next apply drains what is left and removes them.", ids, err))
		return diags
	}
	drained := time.Since(start)
	tflog.Info(ctx, "drained the brokers to remove", map[string]any{
		"brokers": ids, "replicas_moved": res.Moved, "partitions": res.Partitions, "leaders_moved": res.Leaders,
		"bytes_moved": res.Bytes, "seconds": drained.Seconds(),
	})
	// Asked of the brokers that stay: the removed ones have stopped.
	var kept []fleet.Broker
	for _, b := range all {
		if !slices.Contains(ids, b.NodeID) {
			kept = append(kept, b)
		}
	}
	unregister := func(ctx context.Context, ids []int32) error {
		return r.drainAdmin(kept, spec, nil).Unregister(ctx, ids)
	}
	if err := r.fleet().RemoveBrokers(ctx, removed, spec.ControllerCount(), unregister); err != nil {
		diags.AddError("Removing brokers of cluster "+spec.ClusterID,
			fmt.Sprintf("Brokers %v were drained (they hold no partition), but removing them failed: %v. The next apply finishes the removal.", ids, err))
		return diags
	}
	if spec.InstanceProfile == "" {
		if err := r.fleet().DeleteBrokerRoles(ctx, spec.ClusterID, ids); err != nil {
			diags.AddError("Removing brokers of cluster "+spec.ClusterID,
				fmt.Sprintf("Brokers %v were removed, but deleting their own IAM roles failed: %v. Deleting the cluster removes them.", ids, err))
			return diags
		}
	}
	tflog.Info(ctx, "removed brokers", map[string]any{"brokers": ids, "seconds": time.Since(start).Seconds()})
	return diags
}

// drainAdmin reaches the cluster through brokers (all of them: those
// leaving too), those of live as they serve now (kafkaConnTo).
func (r *clusterResource) drainAdmin(brokers []fleet.Broker, spec *clusterSpec, live map[int32]kafkaAccess) *kafkatopic.Admin {
	return &kafkatopic.Admin{
		Conn:     r.data.kafkaConnTo(spec.ClusterID, brokers, spec.Access, live),
		Log:      func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
		Throttle: spec.Throttle,
	}
}

func nodeIDs(brokers []fleet.Broker) []int32 {
	ids := make([]int32, len(brokers))
	for i, b := range brokers {
		ids[i] = b.NodeID
	}
	return ids
}
