package awsapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestJSONOperation(t *testing.T) {
	ops := map[string]int{"CreateThing": 1}
	request := func(p Protocol, target string) *Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("X-Amz-Target", target)
		return &Request{Protocol: p, HTTP: r, Action: target[strings.LastIndex(target, ".")+1:]}
	}
	if op, err := JSONOperation(request(ProtocolJSON, "Things_1.CreateThing"), "Things", "Things_1.", ops); err != nil || op != 1 {
		t.Fatalf("a known action: %d, %v", op, err)
	}
	for _, tc := range []struct {
		req  *Request
		code string
	}{
		{request(ProtocolJSON, "Things_1.DeleteThing"), "UnknownOperationException"},
		{request(ProtocolQuery, "Things_1.CreateThing"), "UnrecognizedClientException"},
		{request(ProtocolJSON, "Other_2.CreateThing"), "UnrecognizedClientException"},
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
