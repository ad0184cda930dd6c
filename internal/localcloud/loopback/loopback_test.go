package loopback

import (
	"errors"
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
