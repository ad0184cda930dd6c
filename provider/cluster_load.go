package provider

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

var brokerLoadAttrTypes = map[string]attr.Type{
	"availability_zone": types.StringType,
	"disk_used_bytes":   types.Int64Type,
	"endpoint":          types.StringType,
	"leaders":           types.Int64Type,
	"node_id":           types.Int64Type,
	"partitions":        types.Int64Type,
}

var brokerLoadObjectType = types.ObjectType{AttrTypes: brokerLoadAttrTypes}

// loadPatience bounds the read of broker_load: a refresh that cannot reach
// the brokers goes on without it.
const loadPatience = 15 * time.Second

// brokerLoad reads broker_load from the brokers through conn, or null
// when the provider does not speak Kafka to them (conn nil:
// wait_for_brokers = false, unreachable) or none answers within
// loadPatience.
func (r *clusterResource) brokerLoad(ctx context.Context, conn *kafkaconn.Conn) (types.List, diag.Diagnostics) {
	null := types.ListNull(brokerLoadObjectType)
	if conn == nil {
		return null, nil
	}
	admin := &kafkatopic.Admin{
		Conn: conn,
		Log:  func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}
	cctx, cancel := context.WithTimeout(ctx, loadPatience)
	defer cancel()
	load, err := admin.Load(cctx)
	if err != nil {
		tflog.Warn(ctx, "could not read the brokers' load; broker_load is null", map[string]any{"error": err.Error()})
		return null, nil
	}
	return brokerLoadValue(load)
}

// kafkaConnIf is the Conn of a cluster's brokers through an access, or nil
// when they are not reachable from here.
func (r *clusterResource) kafkaConnIf(reachable bool, clusterID string, brokers []fleet.Broker, a kafkaAccess) *kafkaconn.Conn {
	if !reachable || len(brokers) == 0 {
		return nil
	}
	return r.data.kafkaConnTo(clusterID, brokers, a, nil)
}

func brokerLoadValue(load []kafkatopic.BrokerLoad) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	elems := make([]attr.Value, 0, len(load))
	for _, l := range load {
		obj, d := types.ObjectValue(brokerLoadAttrTypes, map[string]attr.Value{
			"availability_zone": types.StringValue(l.Rack),
			"disk_used_bytes":   types.Int64Value(l.DiskUsedBytes),
			"endpoint":          types.StringValue(l.Endpoint),
			"leaders":           types.Int64Value(int64(l.Leaders)),
			"node_id":           types.Int64Value(int64(l.NodeID)),
			"partitions":        types.Int64Value(int64(l.Partitions)),
		})
		diags.Append(d...)
		elems = append(elems, obj)
	}
	l, d := types.ListValue(brokerLoadObjectType, elems)
	diags.Append(d...)
	return l, diags
}

// privateRebalanceKey is the private-state key of a rebalance an apply
// could not finish: the node ids it was moving partitions onto.
const privateRebalanceKey = "rebalance"

type privateGetter interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
}

type privateSetter interface {
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

// pendingRebalance returns the brokers an unfinished rebalance was moving
// partitions onto, if any.
func pendingRebalance(ctx context.Context, p privateGetter) []int32 {
	raw, d := p.GetKey(ctx, privateRebalanceKey)
	if d.HasError() || len(raw) == 0 {
		return nil
	}
	var mark struct {
		Onto []int32 `json:"onto"`
	}
	if err := json.Unmarshal(raw, &mark); err != nil {
		return nil
	}
	return mark.Onto
}

// setPendingRebalance records (or, with no ids, clears) an unfinished
// rebalance for the next plan and apply.
func setPendingRebalance(ctx context.Context, p privateSetter, onto []int32) diag.Diagnostics {
	if len(onto) == 0 {
		return p.SetKey(ctx, privateRebalanceKey, nil)
	}
	raw, err := json.Marshal(struct {
		Onto []int32 `json:"onto"`
	}{onto})
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Recording the unfinished rebalance", err.Error())
		return diags
	}
	return p.SetKey(ctx, privateRebalanceKey, raw)
}
