package server

// Heartbeat: v0-4 (broker/groups does the work)
//
// Behaviour:
//   - Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.
//
// Version notes:
//   - v0 is kafka-go's version: no floor. v3: group.instance.id; v4: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var heartbeatAPI = api{key: 12, min: 0, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.HeartbeatRequest)
		return s.coordinator().Heartbeat(req), nil
	}}
