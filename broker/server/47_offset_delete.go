package server

// OffsetDelete: v0 (broker/groups does the work)
//
// Behaviour:
//   - Deletes a group's committed offsets for partitions its members do not
//     consume (KIP-496).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetDeleteAPI = api{key: 47, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.OffsetDeleteRequest)
		return s.coordinator().OffsetDelete(ctx, req), nil
	}}
