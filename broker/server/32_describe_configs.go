package server

// DescribeConfigs: v1-4
//
// Behaviour:
//   - Topic resources: every topic config we serve with its effective
//     value and source (DYNAMIC_TOPIC_CONFIG for the topic's own value,
//     else the broker setting it inherits: DYNAMIC_DEFAULT_BROKER_CONFIG,
//     STATIC_BROKER_CONFIG or DEFAULT_CONFIG), synonyms on request.
//   - Broker resources: this node's id describes every broker setting,
//     ReadOnly unless it can be changed at run time, with its source
//     (DYNAMIC_BROKER_CONFIG for this node's own dynamic value,
//     DYNAMIC_DEFAULT_BROKER_CONFIG for the cluster-wide default,
//     STATIC_BROKER_CONFIG from the file or flags, DEFAULT_CONFIG); the
//     cluster-default resource ("") lists the dynamic defaults that are set,
//     as Kafka does.
//   - ConfigNames limits the answer; unknown names are left out, as Kafka does.
//   - Other resource types answer INVALID_REQUEST, and so does a resource
//     named again in the same request (answered the first time only: a
//     few bytes of request asked for a few KB of answer each time).
//   - Needs DESCRIBE_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED)
//     or, for broker resources, on the cluster (else
//     CLUSTER_AUTHORIZATION_FAILED), resource by resource.
//
// Version notes:
//   - v1: synonyms, source (floor in Kafka 4, KIP-896); v3: types and
//     documentation (KIP-569); v4: flexible.

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeConfigsAPI = api{key: 32, min: 1, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeConfigs(ctx, s.authFor(c, 32), r.(*kmsg.DescribeConfigsRequest)), nil
	}}

func (s *Server) handleDescribeConfigs(ctx context.Context, az reqAuth, req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	type resource struct {
		typ  kmsg.ConfigResourceType
		name string
	}
	seen := make(map[resource]bool, len(req.Resources))
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		fail := func(code int16, msg string) {
			sr.ErrorCode = code
			sr.ErrorMessage = &msg
		}
		// A few bytes of request name a resource whose answer is a few
		// KB (every config, synonyms, documentation): answered once per
		// request, a response is bounded by the resources that exist.
		k := resource{rr.ResourceType, rr.ResourceName}
		if seen[k] {
			fail(kerr.InvalidRequest.Code, "resource named more than once in the request")
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		seen[k] = true
		if code, ok := az.configResourceAllowed(ctx, kmsg.ACLOperationDescribeConfigs, rr.ResourceType, rr.ResourceName); !ok {
			fail(code, "not authorized to describe the configs of this resource")
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := s.lookupTopic(rr.ResourceName)
			if !ok {
				fail(kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %s does not exist", rr.ResourceName))
				break
			}
			sr.Configs = s.describeTopicConfigs(t.configs, rr.ConfigNames)
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.nodeID)) {
				fail(kerr.InvalidRequest.Code, fmt.Sprintf("broker %s is not this broker (%d)", rr.ResourceName, s.nodeID))
				break
			}
			sr.Configs = s.describeBrokerConfigs(rr.ResourceName != "", rr.ConfigNames)
		default:
			fail(kerr.InvalidRequest.Code, fmt.Sprintf("config resource type %v is not supported", rr.ResourceType))
		}
		for i := range sr.Configs {
			if !req.IncludeSynonyms {
				sr.Configs[i].ConfigSynonyms = nil
			}
			if !req.IncludeDocumentation {
				sr.Configs[i].Documentation = nil
			}
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}
