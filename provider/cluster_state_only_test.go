package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// TestUpdatesOnlyState plans on the real schema: an imported TLS cluster's
// state (security blocks null where they are the defaults, no timeouts)
// against plans that change it.
func TestUpdatesOnlyState(t *testing.T) {
	ctx := context.Background()
	var sr resource.SchemaResponse
	(&clusterResource{}).Schema(ctx, resource.SchemaRequest{}, &sr)
	if sr.Diagnostics.HasError() {
		t.Fatal(sr.Diagnostics)
	}
	s := sr.Schema
	typ := s.Type().TerraformType(ctx)
	storage := func(volumeType string) attr.Value {
		vt := types.StringNull()
		if volumeType != "" {
			vt = types.StringValue(volumeType)
		}
		return types.ObjectValueMust(storageAttrTypes, map[string]attr.Value{
			"autoscaling": types.ObjectNull(storageAutoscalingAttrTypes), "iops": types.Int64Null(), "kms_key_arn": types.StringNull(),
			"throughput": types.Int64Null(), "volume_size": types.Int64Value(10), "volume_type": vt,
		})
	}
	// build is an object of the schema with the given attributes set; a
	// nil value sets the attribute unknown.
	build := func(t *testing.T, set map[string]any) (tftypes.Value, *clusterModel) {
		t.Helper()
		st := tfsdk.State{Schema: s, Raw: tftypes.NewValue(typ, nil)}
		base := map[string]any{
			"id": "tc-0123456789abcdef", "cluster_id": "tc-0123456789abcdef", "name": "imported", "storage": storage(""),
			"broker_version": "1.0.0", "instance_type": "t3.medium", "brokers_per_az": int64(1),
			"tags": map[string]string{"team": "a"}, "estimated_monthly_cost_usd": 197.16,
		}
		for k, v := range set {
			base[k] = v
		}
		for k, v := range base {
			var d = st.SetAttribute(ctx, pathOf(k), v)
			if d.HasError() {
				t.Fatalf("setting %s: %v", k, d)
			}
		}
		var m clusterModel
		if d := st.Get(ctx, &m); d.HasError() {
			t.Fatal(d)
		}
		return st.Raw, &m
	}
	timeouts := struct {
		Create *string `tfsdk:"create"`
		Update *string `tfsdk:"update"`
		Delete *string `tfsdk:"delete"`
	}{Create: ptr("10m"), Update: ptr("20m")}
	encryption := func(inCluster bool) attr.Value {
		return types.ObjectValueMust(encryptionInTransitAttrTypes, map[string]attr.Value{
			"client_broker": types.StringNull(), "in_cluster": types.BoolValue(inCluster),
		})
	}
	authentication := func(unauthenticated, scram bool) attr.Value {
		sasl := types.ObjectNull(saslAttrTypes)
		if scram {
			sasl = types.ObjectValueMust(saslAttrTypes, map[string]attr.Value{"iam": types.BoolNull(), "scram": types.BoolValue(true)})
		}
		return types.ObjectValueMust(clientAuthenticationAttrTypes, map[string]attr.Value{
			"sasl": sasl, "tls": types.ObjectNull(tlsAuthAttrTypes), "unauthenticated": types.BoolValue(unauthenticated),
		})
	}
	stateRaw, state := build(t, map[string]any{"storage": storage("")})
	for _, tc := range []struct {
		name    string
		plan    map[string]any
		unknown []string
		want    bool
	}{
		{"no change", nil, nil, false},
		{"timeouts set after an import", map[string]any{"timeouts": timeouts}, nil, true},
		{"timeouts set, broker_load planned unknown", map[string]any{"timeouts": timeouts}, []string{"broker_load"}, true},
		{"timeouts set, the same cost", map[string]any{"timeouts": timeouts, "estimated_monthly_cost_usd": 197.160}, nil, true},
		{"in_cluster = true spelled out", map[string]any{"encryption_in_transit": encryption(true)}, []string{"broker_load"}, true},
		{"unauthenticated = true spelled out", map[string]any{"client_authentication": authentication(true, false)}, nil, true},
		{"volume_type = gp3 spelled out", map[string]any{"storage": storage("gp3"), "timeouts": timeouts}, nil, true},
		{"volume_type = io2", map[string]any{"storage": storage("io2")}, nil, false},
		{"in_cluster = false", map[string]any{"encryption_in_transit": encryption(false)}, nil, false},
		{"SCRAM on", map[string]any{"client_authentication": authentication(false, true)}, nil, false},
		{"timeouts and a tag", map[string]any{"timeouts": timeouts, "tags": map[string]string{"team": "b"}}, nil, false},
		{"timeouts and a pending roll", map[string]any{"timeouts": timeouts}, []string{"broker_load", "broker_nodes"}, false},
		{"timeouts and an instance type", map[string]any{"timeouts": timeouts, "instance_type": "m5.large"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			planRaw, plan := build(t, tc.plan)
			if len(tc.unknown) > 0 {
				var err error
				planRaw, err = tftypes.Transform(planRaw, func(p *tftypes.AttributePath, v tftypes.Value) (tftypes.Value, error) {
					for _, u := range tc.unknown {
						if p.Equal(tftypes.NewAttributePath().WithAttributeName(u)) {
							return tftypes.NewValue(v.Type(), tftypes.UnknownValue), nil
						}
					}
					return v, nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := updatesOnlyState(ctx, stateRaw, planRaw, state, plan); got != tc.want {
				t.Errorf("updatesOnlyState = %v, want %v", got, tc.want)
			}
		})
	}
	createRaw, create := build(t, map[string]any{"timeouts": timeouts})
	if updatesOnlyState(ctx, tftypes.NewValue(typ, nil), createRaw, &clusterModel{}, create) {
		t.Error("a create (null state) is not an update of the state only")
	}
}

func pathOf(name string) path.Path { return path.Root(name) }

func ptr[T any](v T) *T { return &v }
