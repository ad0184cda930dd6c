package server

// ListGroups: v0-5 (broker/groups does the work)
//
// Version notes:
//   - v3: flexible; v4: state filter (KIP-518); v5: type filter (KIP-848).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var listGroupsAPI = api{key: 16, min: 0, max: 5,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.ListGroupsRequest)
		return s.coordinator().ListGroups(req), nil
	}}
