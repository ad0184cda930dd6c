package server

// UnregisterBroker: v0
//
// Behaviour:
//   - The active controller forgets the broker for good: its registration
//     (fenced first, so it leads nothing and leaves every ISR) and its
//     dynamic configs, and it leaves the Raft configuration it joined as a
//     non-voter. For a broker that was removed from the cluster (scale-in)
//     after its replicas were reassigned away: nothing moves its replicas.
//     A broker still running registers again at its next heartbeat, as in
//     Kafka.
//   - BROKER_ID_NOT_REGISTERED for an id neither registered nor in the Raft
//     configuration (so a repeated request says the broker is gone);
//     INVALID_REQUEST for a voter of the metadata quorum
//     (controller.quorum.voters names the voters in every broker's
//     configuration, so removing one is a change of those, not of the
//     registrations).
//   - Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED), as
//     Kafka.
//
// Version notes:
//   - v0 is flexible (KIP-631).

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

var unregisterBrokerAPI = api{key: 64, min: 0, max: 0,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleUnregisterBroker(ctx, s.authFor(c, 64), r.(*kmsg.UnregisterBrokerRequest)), nil
	}}

func (s *Server) handleUnregisterBroker(ctx context.Context, az reqAuth, req *kmsg.UnregisterBrokerRequest) *kmsg.UnregisterBrokerResponse {
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	fail := func(code int16, msg string) *kmsg.UnregisterBrokerResponse {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return resp
	}
	if !az.cluster(ctx, kmsg.ACLOperationAlter) {
		return fail(kerr.ClusterAuthorizationFailed.Code, "unregistering a broker needs ALTER on the cluster")
	}
	cctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	err := s.node.Controller.UnregisterBroker(cctx, req.BrokerID)
	switch {
	case err == nil:
		s.log.Info("broker unregistered", "broker", req.BrokerID)
		return resp
	case errors.Is(err, metadata.ErrUnknownBroker):
		return fail(kerr.BrokerIDNotRegistered.Code, err.Error())
	}
	s.log.Warn("unregistering a broker failed", "broker", req.BrokerID, "err", err)
	return fail(clusterErrorCode(err), err.Error())
}
