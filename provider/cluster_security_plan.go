package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// planSecurityChange says what a change of the security blocks does to an
// existing cluster: whether the brokers roll (their listeners, client CAs or
// CA change: every broker gets a new boot document, one at a time), and the
// planned bootstrap strings and CA certificate, which the update fills in.
// in_cluster cannot change in place: a broker rolled to the other setting
// could not replicate from the brokers not yet rolled.
func planSecurityChange(ctx context.Context, plan, state *clusterModel) (rolls bool, diags diag.Diagnostics) {
	if plan.EncryptionInTransit.IsUnknown() || plan.ClientAuthentication.IsUnknown() || plan.TLSCertificateAuthority.IsUnknown() {
		for _, s := range []*types.String{&plan.BootstrapBrokers, &plan.BootstrapBrokersTLS, &plan.BootstrapBrokersSASLSCRAM, &plan.BootstrapBrokersSASLIAM, &plan.CertificateAuthorityPEM} {
			*s = types.StringUnknown()
		}
		return true, nil
	}
	want, d := plan.security(ctx)
	diags.Append(d...)
	had, d := state.security(ctx)
	diags.Append(d...)
	if diags.HasError() {
		return false, diags
	}
	if want.InCluster != had.InCluster {
		diags.AddAttributeError(path.Root("encryption_in_transit").AtName("in_cluster"), "in_cluster cannot change in place",
			fmt.Sprintf("The brokers replicate and run their metadata quorum with in_cluster = %v. A rolling change would leave brokers "+
				"speaking TLS and brokers speaking plaintext to each other on the same ports, which cannot replicate: keep in_cluster = %v, "+
				"or create a new cluster with the other setting and move the data (as with MSK, which cannot change it after create).",
				had.InCluster, had.InCluster))
		return false, diags
	}
	listeners, before := want.listeners(), had.listeners()
	rolls = !slices.EqualFunc(listeners, before, listenerEqual) ||
		want.clientCABundle() != had.clientCABundle() || !sameARNs(want.ClientCAARNs, had.ClientCAARNs) ||
		want.UserCACert != had.UserCACert || want.usesTLS() != had.usesTLS()
	if !rolls {
		return false, diags
	}
	if !slices.ContainsFunc(before, func(l bootconfig.Listener) bool {
		return slices.ContainsFunc(listeners, func(n bootconfig.Listener) bool { return listenerEqual(l, n) })
	}) {
		diags.AddWarning("No client listener is kept",
			fmt.Sprintf("The brokers serve %s now and will serve %s: no listener is on both before and after, so every client loses "+
				"its listener while the brokers roll. To change without downtime, go through a step that serves both (for example "+
				"client_broker = \"TLS_PLAINTEXT\" between PLAINTEXT and TLS) and move the clients in between.",
				listenerNames(before), listenerNames(listeners)))
	}
	// The bootstrap strings of the planned listeners, on the brokers the
	// state knows (a change of broker count makes them unknown anyway).
	var nodes []brokerNodeModel
	if !state.BrokerNodes.IsNull() && !state.BrokerNodes.IsUnknown() {
		diags.Append(state.BrokerNodes.ElementsAs(ctx, &nodes, false)...)
	}
	brokers := make([]fleet.Broker, 0, len(nodes))
	for _, n := range nodes {
		brokers = append(brokers, fleet.Broker{NodeID: int32(n.NodeID.ValueInt64()), PrivateIP: n.PrivateIP.ValueString()})
	}
	plan.setBootstrap(listeners, brokers)
	switch {
	case !want.usesTLS():
		plan.CertificateAuthorityPEM = types.StringValue("")
	case want.UserCACert != had.UserCACert || !had.usesTLS():
		plan.CertificateAuthorityPEM = types.StringUnknown()
	}
	return true, diags
}

// listenerEqual compares two listeners by every setting the brokers render.
func listenerEqual(a, b bootconfig.Listener) bool {
	return a.Name == b.Name && a.Port == b.Port && a.SecurityProtocol == b.SecurityProtocol &&
		a.ClientAuth == b.ClientAuth && slices.Equal(a.SASLMechanisms, b.SASLMechanisms)
}

func listenerNames(ls []bootconfig.Listener) string {
	names := make([]string, 0, len(ls))
	for _, l := range ls {
		names = append(names, fmt.Sprintf("%s (%d)", l.Name, l.Port))
	}
	if len(names) == 0 {
		return "no client listener"
	}
	return strings.Join(names, ", ")
}
