package awsapi

import (
	"errors"
	"slices"
	"testing"
)

func TestJSONOperation(t *testing.T) {
	ops := map[string]int{"CreateThing": 1}
	if op, err := JSONOperation(&Request{Protocol: ProtocolJSON, Action: "CreateThing"}, "Things", "Things_1.", ops); err != nil || op != 1 {
		t.Fatalf("a known action: %d, %v", op, err)
	}
	for _, tc := range []struct {
		req  *Request
		code string
	}{
		{&Request{Protocol: ProtocolJSON, Action: "DeleteThing"}, "UnknownOperationException"},
		{&Request{Protocol: ProtocolQuery, Action: "CreateThing"}, "UnrecognizedClientException"},
	} {
		_, err := JSONOperation(tc.req, "Things", "Things_1.", ops)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code {
			t.Errorf("%+v: %v, want %s", tc.req, err, tc.code)
		}
	}
}

func TestSortedValues(t *testing.T) {
	if v := SortedValues(map[string]int{}); v == nil || len(v) != 0 {
		t.Errorf("no values: %#v, want an empty, non-nil slice (saved as [])", v)
	}
	if v := SortedValues(map[string]int{"b": 2, "c": 3, "a": 1}); !slices.Equal(v, []int{1, 2, 3}) {
		t.Errorf("values %v, want them in key order", v)
	}
}
