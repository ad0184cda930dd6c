package provider

import (
	"context"
	"slices"
	"testing"

	"github.com/tributary/tributary/provider/internal/fleet"
)

// TestBrokerNodeEndpointsFollowTheListeners: a broker's endpoint is on its
// client listener of the lowest port and its endpoints list every client
// listener by port; a cluster without plaintext has no 9092 endpoint (it
// had one, always, before).
func TestBrokerNodeEndpointsFollowTheListeners(t *testing.T) {
	for _, tt := range []struct {
		name      string
		s         securitySettings
		endpoint  string
		endpoints []string
	}{
		{"plaintext", securitySettings{ClientBroker: clientBrokerPlaintext, Unauthenticated: true}, "127.1.0.10:9092", []string{"127.1.0.10:9092"}},
		{"TLS and IAM", securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, Unauthenticated: true, IAM: true}, "127.1.0.10:9094",
			[]string{"127.1.0.10:9094", "127.1.0.10:9098"}},
		{"IAM only", securitySettings{ClientBroker: clientBrokerTLS, InCluster: true, IAM: true}, "127.1.0.10:9098", []string{"127.1.0.10:9098"}},
		{"every listener", securitySettings{ClientBroker: clientBrokerTLSPlaintext, InCluster: true, Unauthenticated: true, IAM: true, SCRAM: true}, "127.1.0.10:9092",
			[]string{"127.1.0.10:9092", "127.1.0.10:9094", "127.1.0.10:9096", "127.1.0.10:9098"}},
		{"no listener known", securitySettings{}, "", []string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, d := brokerNodesValue([]fleet.Broker{{NodeID: 1, PrivateIP: "127.1.0.10"}}, tt.s.listeners())
			if d.HasError() {
				t.Fatal(d)
			}
			var nodes []brokerNodeModel
			if d := l.ElementsAs(context.Background(), &nodes, false); d.HasError() || len(nodes) != 1 {
				t.Fatalf("%v: %d nodes", d, len(nodes))
			}
			var endpoints []string
			if d := nodes[0].Endpoints.ElementsAs(context.Background(), &endpoints, false); d.HasError() {
				t.Fatal(d)
			}
			if got := nodes[0].Endpoint.ValueString(); got != tt.endpoint || !slices.Equal(endpoints, tt.endpoints) && len(endpoints)+len(tt.endpoints) > 0 {
				t.Errorf("endpoint %q, endpoints %q; want %q, %q", got, endpoints, tt.endpoint, tt.endpoints)
			}
		})
	}
}
