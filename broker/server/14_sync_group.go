package server

// SyncGroup: v0-5 (broker/groups does the work)
//
// Behaviour:
//   - The leader's request carries the assignment; a follower's blocks until
//     the leader's arrives or the generation ends.
//
// Version notes:
//   - v0 is kafka-go's version: no floor.
//   - v3: group.instance.id; v4: flexible; v5: protocol type and name.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var syncGroupAPI = api{key: 14, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.SyncGroupRequest)
		return s.coordinator().SyncGroup(ctx, req), nil
	}}
