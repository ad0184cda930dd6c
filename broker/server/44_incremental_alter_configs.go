package server

// IncrementalAlterConfigs: v0-1
//
// Behaviour:
//   - SET, DELETE (back to the inherited value), APPEND and SUBTRACT (list
//     configs such as cleanup.policy only) per config; configs not named
//     keep their values (KIP-339).
//   - Topic configs are stored in the metadata and applied to the logs at
//     once; broker configs only where dynamic: resource "" for the
//     cluster-wide default, this node's id for its own value, which wins;
//     stored and applied at once, and topics that inherit them follow.
//   - A resource's changes apply all or nothing; ValidateOnly changes nothing.
//   - The request carries no timeout: the wait for this broker's previous
//     topic change and for the metadata quorum ends after 8 s, the
//     resources not yet changed answering REQUEST_TIMED_OUT (retriable;
//     a change may still be made), before franz-go's 10 s read deadline.
//   - Needs ALTER_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED) or,
//     for broker resources, on the cluster (else
//     CLUSTER_AUTHORIZATION_FAILED), resource by resource.
//
// Version notes:
//   - v1: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var incrementalAlterConfigsAPI = api{key: 44, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleIncrementalAlterConfigs(ctx, s.authFor(c, 44), r.(*kmsg.IncrementalAlterConfigsRequest)), nil
	}}

func (s *Server) handleIncrementalAlterConfigs(ctx context.Context, az reqAuth, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	// The request carries no timeout: its changes share the broker's
	// bound for such requests (untimedAdminTimeout).
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if code, ok := az.configResourceAllowed(ctx, kmsg.ACLOperationAlterConfigs, rr.ResourceType, rr.ResourceName); !ok {
			sr.ErrorCode = code
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		changes := make([]configChange, 0, len(rr.Configs))
		for _, c := range rr.Configs {
			changes = append(changes, configChange{name: c.Name, op: c.Op, value: c.Value})
		}
		code, msg := s.alterResource(cctx, rr.ResourceType, rr.ResourceName, changes, false, req.ValidateOnly)
		if code != 0 {
			sr.ErrorCode = code
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}
