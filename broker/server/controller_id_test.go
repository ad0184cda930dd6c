package server

import "testing"

// TestListedControllerID: Metadata and DescribeCluster name as controller
// only a broker their own broker list has (a client cannot reach one it
// has no endpoint for), and -1 otherwise.
func TestListedControllerID(t *testing.T) {
	listed := []brokerInfo{{id: 1, host: "127.0.0.1", port: 9092}, {id: 2, host: "127.0.0.2", port: 9092}}
	tests := []struct {
		name    string
		active  int32
		brokers []brokerInfo
		want    int32
	}{
		{"listed", 2, listed, 2},
		{"fenced, or restarted and not registered yet", 3, listed, -1},
		{"no endpoint for the client's listener", 1, listed[1:], -1},
		{"election in progress", -1, listed, -1},
		{"no broker listed", 1, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listedControllerID(tt.active, tt.brokers); got != tt.want {
				t.Fatalf("listedControllerID(%d, %v) = %d, want %d", tt.active, tt.brokers, got, tt.want)
			}
		})
	}
}
