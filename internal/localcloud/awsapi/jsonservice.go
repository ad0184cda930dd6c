package awsapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// JSONOperation finds the operation an awsJson1_1 request names in ops,
// the table of a service that speaks only that protocol. A request in
// another protocol, or whose X-Amz-Target is not the service's (requests
// reach a service by their signing scope, not their target), is refused
// with UnrecognizedClientException, an action the table lacks with
// UnknownOperationException, both naming the service (e.g. "Secrets
// Manager") and its X-Amz-Target prefix (e.g. "secretsmanager."), as the
// services' own errors do.
func JSONOperation[Op any](req *Request, service, target string, ops map[string]Op) (Op, error) {
	var none Op
	if req.Protocol != ProtocolJSON || !strings.HasPrefix(req.HTTP.Header.Get("X-Amz-Target"), target) {
		return none, Errorf("UnrecognizedClientException", "%s speaks awsJson1_1 (X-Amz-Target: %s<Operation>)", service, target)
	}
	op, ok := ops[req.Action]
	if !ok {
		return none, ErrorfStatus(http.StatusBadRequest, "UnknownOperationException", "The local cloud does not implement %s operation %s", service, req.Action)
	}
	return op, nil
}

// JSONResult answers an awsJson1_1 operation: its error as it is, else its
// output, an empty object when it has none.
func JSONResult(req *Request, out any, err error) (*Response, error) {
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = struct{}{}
	}
	return JSONResponse(req, out)
}

// SaveJSONState writes a service's state as JSON to path, atomically and
// readable by the owner only; service names it in errors.
func SaveJSONState(path, service string, state any) error {
	data, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encoding %s state: %w", service, err)
	}
	if err := WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving %s state: %w", service, err)
	}
	return nil
}

// SortedValues returns m's values in the order of their keys (never nil),
// as a service's saved state lists them.
func SortedValues[V any](m map[string]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}
