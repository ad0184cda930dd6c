package server

// DeleteGroups: v0-2 (broker/groups does the work)
//
// Behaviour:
//   - Deletes empty groups and their offsets; NON_EMPTY_GROUP otherwise.
//
// Version notes:
//   - v2: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var deleteGroupsAPI = api{key: 42, min: 0, max: 2,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.DeleteGroupsRequest)
		return s.coordinator().DeleteGroups(ctx, req), nil
	}}
