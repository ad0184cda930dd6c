package server

// DescribeCluster: v0-1
//
// Behaviour:
//   - Every unfenced broker with an endpoint for the listener the request
//     came in on, at that endpoint, and the active controller (a single
//     broker is its own; -1 when none is known, this broker when the list
//     leaves the controller out, as in Metadata). The cluster id from the metadata. Open to every
//     principal, as in Kafka; the authorized operations, when asked for,
//     are the cluster operations the principal may do.
//   - Endpoint type 2 (controllers, v1): the metadata quorum's voters with
//     their controller (Raft) addresses: those of controller.quorum.voters,
//     or, for a single broker without voters, itself at the address its
//     controller listens on.
//
// Version notes:
//   - v1: EndpointType (KIP-919); v2 (fenced brokers) not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

var describeClusterAPI = api{key: 60, min: 0, max: 1,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeCluster(ctx, s.authFor(c, 60), r.(*kmsg.DescribeClusterRequest)), nil
	}}

func (s *Server) handleDescribeCluster(ctx context.Context, az reqAuth, req *kmsg.DescribeClusterRequest) *kmsg.DescribeClusterResponse {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 {
		if req.EndpointType != 1 && req.EndpointType != 2 {
			resp.ErrorCode = kerr.UnsupportedEndpointType.Code
			return resp
		}
		resp.EndpointType = req.EndpointType
	}
	resp.ClusterID = s.ClusterID()
	brokers := s.brokers(az.rc.Listener)
	if req.Version >= 1 && req.EndpointType == 2 {
		brokers = s.controllerEndpoints()
	}
	resp.ControllerID = listedControllerID(s.controllerID(), s.nodeID, brokers)
	for _, bi := range brokers {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port = bi.id, bi.host, bi.port
		if bi.rack != "" {
			rack := bi.rack
			b.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, b)
	}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = az.authorizedOperations(ctx, kmsg.ACLResourceTypeCluster, authz.ClusterName, clusterOperations)
	}
	return resp
}
