package server

// OffsetCommit: v2-9 (broker/groups does the work)
//
// Behaviour:
//   - Commits offsets to the durable offsets log (__consumer_offsets)
//     before answering; generation checks for group members, "simple"
//     commits (generation -1) for clients that assign partitions themselves.
//   - Commits for partitions this broker does not have answer
//     UNKNOWN_TOPIC_OR_PARTITION.
//
// Version notes:
//   - v2 is kafka-go's version and Kafka 4's floor (KIP-896).
//   - v8: flexible; v9: KIP-848 member epochs. v10 (topic ids) not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var offsetCommitAPI = api{key: 8, min: 2, max: 9,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		req := r.(*kmsg.OffsetCommitRequest)
		return s.coordinator().OffsetCommit(ctx, req), nil
	}}
