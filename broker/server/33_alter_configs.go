package server

// AlterConfigs: v0-2
//
// Behaviour:
//   - The legacy, non-incremental form: the configs given REPLACE every
//     explicit config of the resource; anything not named returns to its
//     default (this is Kafka's behaviour, and why IncrementalAlterConfigs
//     exists).
//   - Topic configs are stored in the metadata and applied to the logs at
//     once; broker configs only where dynamic (see the settings table):
//     resource "" for the cluster-wide default, this node's id for its own
//     value, which wins; stored and applied at once.
//   - ValidateOnly checks and changes nothing.
//   - Needs ALTER_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED) or,
//     for broker resources, on the cluster (else
//     CLUSTER_AUTHORIZATION_FAILED), resource by resource.
//
// Version notes:
//   - v1: same as v0; v2: flexible.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var alterConfigsAPI = api{key: 33, min: 0, max: 2,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleAlterConfigs(ctx, s.authFor(c, 33), r.(*kmsg.AlterConfigsRequest)), nil
	}}

func (s *Server) handleAlterConfigs(ctx context.Context, az reqAuth, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
	// The request carries no timeout: its changes share the broker's
	// bound for such requests (untimedAdminTimeout).
	cctx, cancel := context.WithTimeout(ctx, requestTimeout(0))
	defer cancel()
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		if code, ok := az.configResourceAllowed(ctx, kmsg.ACLOperationAlterConfigs, rr.ResourceType, rr.ResourceName); !ok {
			sr.ErrorCode = code
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		changes := make([]configChange, 0, len(rr.Configs))
		for _, c := range rr.Configs {
			changes = append(changes, configChange{name: c.Name, op: kmsg.IncrementalAlterConfigOpSet, value: c.Value})
		}
		code, msg := s.alterResource(cctx, rr.ResourceType, rr.ResourceName, changes, true, req.ValidateOnly)
		if code != 0 {
			sr.ErrorCode = code
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}
