package chaos

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortsBelowTheEphemeralRange: the ports are distinct, below the
// range the kernel hands to port-0 binds and outgoing connections, and
// bindable on the host they were found on.
func TestFreePortsBelowTheEphemeralRange(t *testing.T) {
	ports, err := FreePorts("127.0.0.10", 5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] || p >= ephemeralStart() || p < 1024 {
			t.Fatalf("ports %v: %d repeated or outside [1024, %d)", ports, p, ephemeralStart())
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.10", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		ln.Close()
	}
}
