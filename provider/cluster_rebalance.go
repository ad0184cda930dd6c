package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

// The values of rebalance.
const (
	rebalanceWait  = "wait"
	rebalanceAsync = "async"
)

// privateMovingKey is the private-state key of a rebalance an async apply
// started: what Read follows until the cluster has no partition moving.
const privateMovingKey = "moving"

// moving is a rebalance the brokers run on their own.
type moving struct {
	Onto []int32 `json:"onto"`
	// Started is when the apply started it (RFC 3339).
	Started string `json:"started"`
	// Partitions is how many partitions it moves; Left how many the
	// cluster was still moving when last read, and Next one of them.
	Partitions int    `json:"partitions"`
	Left       int    `json:"left"`
	Next       string `json:"next,omitempty"`
}

func getMoving(ctx context.Context, p privateGetter) *moving {
	raw, d := p.GetKey(ctx, privateMovingKey)
	if d.HasError() || len(raw) == 0 {
		return nil
	}
	var m moving
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	return &m
}

func setMoving(ctx context.Context, p privateSetter, m *moving) diag.Diagnostics {
	if m == nil {
		return p.SetKey(ctx, privateMovingKey, nil)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		var diags diag.Diagnostics
		diags.AddError("Recording the running rebalance", err.Error())
		return diags
	}
	return p.SetKey(ctx, privateMovingKey, raw)
}

// followMoving refreshes a running rebalance from the cluster: how many
// partitions are still moving, or, once none is, nothing (the mark goes).
// An unreachable cluster leaves the mark as it was.
func followMoving(ctx context.Context, admin *kafkatopic.Admin, m *moving) *moving {
	cctx, cancel := context.WithTimeout(ctx, loadPatience)
	defer cancel()
	left, err := admin.MovingPartitions(cctx)
	if err != nil {
		tflog.Warn(ctx, "could not read the running reassignments", map[string]any{"error": err.Error()})
		return m
	}
	if len(left) == 0 {
		tflog.Info(ctx, "the rebalance started by an earlier apply has finished", map[string]any{"brokers": m.Onto, "started": m.Started})
		// Its throttle stayed on while it copied; the next reassignment
		// would remove it too, but none may come.
		if err := admin.EndThrottle(cctx); err != nil {
			tflog.Warn(ctx, "could not remove the finished rebalance's replication throttle", map[string]any{"error": err.Error()})
		}
		return nil
	}
	next := *m
	next.Left, next.Next = len(left), left[0]
	return &next
}

// movingWarning is the plan's word on a rebalance still running.
func movingWarning(m *moving) (string, string) {
	among := ""
	if m.Next != "" {
		among = " (" + m.Next + " among them)"
	}
	return "A rebalance is running",
		fmt.Sprintf("An apply started at %s (rebalance = \"async\") moves %d partitions onto brokers %v; when last read, the cluster was "+
			"still reassigning %d partitions%s. Nothing is planned for them; once none is moving, a plan says nothing.",
			m.Started, m.Partitions, m.Onto, m.Left, among)
}

// rebalance moves existing partitions' replicas onto brokers onto (added
// by this apply, or by one whose rebalance failed), waiting for them or,
// with rebalance = "async", only starting them. It runs once the new
// brokers are in state, so a failure leaves them there; what it returns
// is what the private state should remember: a failed rebalance (pending)
// or a running one (started).
func (r *clusterResource) rebalance(ctx context.Context, clusterID string, brokers []fleet.Broker, access kafkaAccess, onto []int32, reachable, async bool, throttle int64) (diags diag.Diagnostics, pending []int32, started *moving) {
	if !reachable {
		diags.AddWarning("Partitions not rebalanced",
			fmt.Sprintf("Brokers %v joined, but no existing partition was moved onto them: the brokers are not reachable from here "+
				"(or wait_for_brokers = false). New topics use them; move existing partitions with a reassignment tool, or apply again "+
				"from where the brokers are reachable after adding more brokers.", onto))
		return diags, nil, nil
	}
	admin := &kafkatopic.Admin{
		Conn:     r.data.kafkaConnTo(clusterID, brokers, access, nil),
		Log:      func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
		Throttle: throttle,
	}
	start := time.Now()
	move := admin.RebalanceOnto
	if async {
		move = admin.StartRebalanceOnto
	}
	res, err := move(ctx, onto)
	if err != nil {
		diags.AddError("Rebalancing partitions onto the new brokers of cluster "+clusterID,
			fmt.Sprintf("Brokers %v joined the cluster and are in the state, but moving existing partitions onto them failed: %v. "+
				"The moves already accepted continue on the brokers; the next plan shows the rebalance as pending and the apply resumes it.", onto, err))
		return diags, onto, nil
	}
	fields := map[string]any{
		"brokers": onto, "replicas_moved": res.Moved, "partitions": res.Partitions, "leaders_moved": res.Leaders,
		"bytes_moved": res.Bytes, "seconds": time.Since(start).Seconds(),
	}
	if async {
		tflog.Info(ctx, "started moving partitions onto the new brokers (rebalance = \"async\")", fields)
		if res.Partitions == 0 {
			return diags, nil, nil
		}
		return diags, nil, &moving{Onto: onto, Started: start.UTC().Format(time.RFC3339), Partitions: res.Partitions, Left: res.Partitions}
	}
	tflog.Info(ctx, "rebalanced partitions onto the new brokers", fields)
	return diags, nil, nil
}
