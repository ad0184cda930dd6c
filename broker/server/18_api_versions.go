package server

// ApiVersions: v0-4
//
// Behaviour:
//   - Lists every API key in the apis table with the versions served.
//     Produce is advertised from v0 although v0-2 are rejected (see
//     00_produce.go): librdkafka turns compression off against a broker whose
//     Produce range does not start at 0 (KAFKA-18659), and Kafka 4 does the same.
//   - A version newer than we serve is answered the KIP-511 way: a v0 body
//     with UNSUPPORTED_VERSION and our own ApiVersions range, so the client
//     retries at a version we speak. The request body is not parsed then.
//   - v3+: the client software name and version must match Kafka's pattern,
//     else INVALID_REQUEST, as Kafka answers.
//
// Version notes:
//   - v1: ThrottleMillis
//   - v3: flexible versions, ClientSoftwareName/Version (KIP-511), feature tags (KIP-584; we finalize none)
//   - v5 (KIP-1242, names the expected cluster and node) is not served yet.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

var apiVersionsAPI = api{key: apiVersionsKey, min: 0, max: 4,
	handle: func(_ context.Context, s *Server, _ *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleApiVersions(r.(*kmsg.ApiVersionsRequest)), nil
	}}

func (s *Server) handleApiVersions(req *kmsg.ApiVersionsRequest) *kmsg.ApiVersionsResponse {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 3 && (!validSoftwareField(req.ClientSoftwareName) || !validSoftwareField(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	resp.ApiKeys = SupportedAPIs()
	return resp
}

// apiVersionsTooNew answers an ApiVersions request newer than we serve.
func apiVersionsTooNew(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey, k.MinVersion, k.MaxVersion = apiVersionsKey, apiVersionsAPI.min, apiVersionsAPI.max
	resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{k}
	return resp
}

// validSoftwareField applies Kafka's pattern for client software names and
// versions: [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?
func validSoftwareField(s string) bool {
	alnum := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if s == "" || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
