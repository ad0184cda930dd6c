package config

import (
	"strings"
	"testing"
)

// TestQueuedMaxRequestBytesFitsARequest: queued.max.request.bytes set
// below socket.request.max.bytes is refused, naming both (a request the
// broker accepts would never fit its request memory; Kafka refuses the
// same at start); -1, 0 and anything at least the request bound pass.
func TestQueuedMaxRequestBytesFitsARequest(t *testing.T) {
	for _, tc := range []struct {
		values map[string]string
		bad    bool
	}{
		{map[string]string{"queued.max.request.bytes": "2097152"}, true},
		{map[string]string{"queued.max.request.bytes": "2097152", "socket.request.max.bytes": "2097153"}, true},
		{map[string]string{"queued.max.request.bytes": "2097152", "socket.request.max.bytes": "2097152"}, false},
		{map[string]string{"queued.max.request.bytes": "104857600"}, false},
		{map[string]string{"queued.max.request.bytes": "-1"}, false},
		{map[string]string{"queued.max.request.bytes": "0"}, false},
	} {
		errs := ValidateOverrides(tc.values)
		if !tc.bad {
			if len(errs) != 0 {
				t.Errorf("%v: %v", tc.values, errs)
			}
			continue
		}
		if len(errs) != 1 || errs[0].Name != "queued.max.request.bytes" || !strings.Contains(errs[0].Error(), "socket.request.max.bytes") {
			t.Errorf("%v: %v, want one error on queued.max.request.bytes naming socket.request.max.bytes", tc.values, errs)
		}
	}
}
