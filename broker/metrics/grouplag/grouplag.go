// Package grouplag feeds consumer-group lag from broker/groups' coordinator
// to broker/metrics, with Amazon MSK's rules for which groups are reported.
// It is apart from broker/metrics so that the metrics core does not depend
// on the group coordinator and the log beneath it.
package grouplag

import (
	"strings"

	"github.com/tributary/tributary/broker/groups"
	"github.com/tributary/tributary/broker/metrics"
)

// Coordinator is what Source needs of *groups.Coordinator.
type Coordinator interface {
	Groups() []groups.GroupSummary
	GroupLag(group string, end func(topic string, partition int32) (int64, bool)) ([]groups.PartitionLag, []groups.TopicLag, bool)
}

var _ Coordinator = (*groups.Coordinator)(nil)

// Source measures lag from the coordinator when metrics are read. end
// returns a partition's high watermark, false when the partition does not
// exist (its committed offsets are then skipped).
func Source(c Coordinator, end func(topic string, partition int32) (int64, bool)) metrics.LagSource {
	return func() []metrics.GroupLag {
		var out []metrics.GroupLag
		for _, g := range c.Groups() {
			if !Reported(g) {
				continue
			}
			parts, _, ok := c.GroupLag(g.Name, end)
			if !ok || len(parts) == 0 {
				continue
			}
			gl := metrics.GroupLag{Group: g.Name, Partitions: make([]metrics.PartitionLag, len(parts))}
			for i, p := range parts {
				gl.Partitions[i] = metrics.PartitionLag(p)
			}
			out = append(out, gl)
		}
		return out
	}
}

// Reported applies MSK's consumer-lag rules (consumer-lag.md): lag is
// emitted for groups in the Stable or Empty state only, and never for a
// group whose name contains a colon.
func Reported(g groups.GroupSummary) bool {
	return (g.State == "Stable" || g.State == "Empty") && !strings.Contains(g.Name, ":")
}
