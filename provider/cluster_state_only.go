package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// updatesOnlyState reports whether an update of the cluster changes what
// Terraform has stored and nothing on the brokers, so that Update only
// writes the state. Such are the first plans after a terraform import:
//
//   - A timeouts block in the configuration. ImportResourceState has no
//     configuration, so the imported state's timeouts are null, as with
//     every resource built on terraform-plugin-framework-timeouts, and
//     Terraform plans an update in place that sets them.
//   - encryption_in_transit, client_authentication or storage written
//     with their defaults (in_cluster = true, unauthenticated = true,
//     volume_type = "gp3"). An import sets only what differs from the
//     defaults (securityFromDocument), so that a configuration that leaves
//     them out plans nothing; one that spells the defaults out plans an
//     update to the same settings.
//
// broker_load is planned as the refresh measured it when the update
// touches no broker (plannedBrokerLoad), so in these plans it is known and
// unchanged; planned unknown it is still accepted here, since what decides
// is the rest of the plan: a roll, heal or rebalance that is pending makes
// broker_nodes unknown too. Anything else that differs, or is unknown,
// makes it a real update.
//
// Running the whole update for these would not be harmless: for an
// imported TLS cluster it makes a new CA (the old one's key is only in the
// creating state's private state) and rolls the brokers onto it, so such a
// plan is refused (refuseUpdateWithoutCA) and the imported cluster could
// never be applied with the configuration it was imported for.
func updatesOnlyState(ctx context.Context, stateRaw, planRaw tftypes.Value, state, plan *clusterModel) bool {
	if stateRaw.IsNull() || planRaw.IsNull() || !stateRaw.IsKnown() || !planRaw.IsKnown() || !planChanges(stateRaw, planRaw) {
		return false
	}
	var stateAttrs, planAttrs map[string]tftypes.Value
	if stateRaw.As(&stateAttrs) != nil || planRaw.As(&planAttrs) != nil {
		return false
	}
	sameSecurity := sameSecuritySettings(ctx, state, plan) &&
		planAttrs["encryption_in_transit"].IsFullyKnown() && planAttrs["client_authentication"].IsFullyKnown()
	sameStorage := false
	if planAttrs["storage"].IsFullyKnown() {
		a, da := state.storageSettings(ctx)
		b, db := plan.storageSettings(ctx)
		sameStorage = !da.HasError() && !db.HasError() && storageEqual(a, b)
	}
	kept, err := tftypes.Transform(planRaw, func(p *tftypes.AttributePath, v tftypes.Value) (tftypes.Value, error) {
		steps := p.Steps()
		if len(steps) != 1 {
			return v, nil
		}
		name, ok := steps[0].(tftypes.AttributeName)
		if !ok {
			return v, nil
		}
		prior, ok := stateAttrs[string(name)]
		if !ok {
			return v, nil
		}
		switch {
		case name == "timeouts",
			name == "broker_load" && !v.IsKnown(),
			sameSecurity && (name == "encryption_in_transit" || name == "client_authentication"),
			sameStorage && name == "storage":
			return prior, nil
		}
		return v, nil
	})
	if err != nil {
		return false
	}
	return !planChanges(stateRaw, kept)
}

// sameSecuritySettings reports whether two models' security blocks ask for
// the same listeners, authentication and CAs, defaults filled in.
func sameSecuritySettings(ctx context.Context, a, b *clusterModel) bool {
	sa, d := a.security(ctx)
	if d.HasError() {
		return false
	}
	sb, d := b.security(ctx)
	if d.HasError() {
		return false
	}
	return sa.equal(sb)
}
