package loopback

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestClaimIsExclusiveUntilReleased(t *testing.T) {
	a, err := ClaimFree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ClaimOctet(a.Octet); !errors.Is(err, ErrTaken) {
		t.Fatalf("second claim of %d: got %v, want ErrTaken", a.Octet, err)
	}
	b, err := ClaimFree()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if b.Octet == a.Octet {
		t.Fatalf("ClaimFree returned the held octet %d", a.Octet)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	c, err := ClaimOctet(a.Octet)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	c.Release()
}

// TestOccupiedBlockIsNotHandedOut: a block nobody claims but where a
// process listens (here this test; in CI the broker processes of an
// emulator that was killed, which made a later emulator's brokers fail
// with "address already in use") is refused by ClaimOctet with
// ErrOccupied and skipped by ClaimFree; free again once the socket closes.
func TestOccupiedBlockIsNotHandedOut(t *testing.T) {
	a, err := ClaimFree()
	if err != nil {
		t.Fatal(err)
	}
	octet := a.Octet
	a.Release()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.%d.3.4:0", octet))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ClaimOctet(octet); !errors.Is(err, ErrOccupied) {
		t.Fatalf("claim of 127.%d with a socket bound in it: %v, want ErrOccupied", octet, err)
	}
	b, err := ClaimFree()
	if err != nil {
		t.Fatal(err)
	}
	if b.Octet == octet {
		t.Fatalf("ClaimFree handed out 127.%d, where a socket is bound", octet)
	}
	b.Release()
	ln.Close()
	c, err := ClaimOctet(octet)
	if err != nil {
		t.Fatalf("claim of 127.%d once its socket closed: %v", octet, err)
	}
	c.Release()
}
