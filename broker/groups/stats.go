package groups

import "sync/atomic"

// counters are the coordinator's running totals since start.
type counters struct {
	rebalances       atomic.Int64
	membersExpired   atomic.Int64
	offsetsCommitted atomic.Int64
	offsetsExpired   atomic.Int64
}

// Stats are totals since the coordinator started plus current gauges, for
// the broker's metrics.
type Stats struct {
	// Rebalances counts join phases that ended with members (each starts a
	// new generation).
	Rebalances int64
	// MembersExpired counts members removed because their session timed
	// out, or because they did not rejoin or sync within the rebalance
	// timeout.
	MembersExpired int64
	// OffsetsCommitted counts partition offsets written by OffsetCommit.
	OffsetsCommitted int64
	// OffsetsExpired counts offsets removed by offsets.retention.minutes.
	OffsetsExpired int64
	// GroupsByState counts the groups in each state (Kafka's state names).
	GroupsByState map[string]int
	// Members counts the members of every group.
	Members int
}

// Stats returns the coordinator's counters and gauges.
func (c *Coordinator) Stats() Stats {
	s := Stats{
		Rebalances:       c.stats.rebalances.Load(),
		MembersExpired:   c.stats.membersExpired.Load(),
		OffsetsCommitted: c.stats.offsetsCommitted.Load(),
		OffsetsExpired:   c.stats.offsetsExpired.Load(),
		GroupsByState:    make(map[string]int),
	}
	for _, g := range c.Groups() {
		s.GroupsByState[g.State]++
		s.Members += g.Members
	}
	return s
}
