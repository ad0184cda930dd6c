package server

// OffsetFetch: v1-9 (broker/groups does the work)
//
// Behaviour:
//   - Committed offsets of a group (v8+: several groups); -1 for none.
//
// Version notes:
//   - v1 is kafka-go's version and Kafka 4's floor (KIP-896).
//   - v2: all partitions with a null list; v6: flexible; v7: require stable;
//     v8: batched groups (KIP-709). v10 (topic ids) not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetFetchAPI = api{key: 9, min: 1, max: 9,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.OffsetFetchRequest)
		return s.coordinator().OffsetFetch(req), nil
	}}
