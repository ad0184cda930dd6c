package scram

import (
	"bytes"
	"testing"
)

func TestRecordRoundTripAndRefusals(t *testing.T) {
	c, err := NewCredential(SHA512, "pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Credential
	if err := back.UnmarshalBinary(rec); err != nil {
		t.Fatal(err)
	}
	if back.Mechanism != c.Mechanism || back.Iterations != c.Iterations || !bytes.Equal(back.Salt, c.Salt) ||
		!bytes.Equal(back.StoredKey, c.StoredKey) || !bytes.Equal(back.ServerKey, c.ServerKey) {
		t.Fatalf("round trip: %v != %v", back, c)
	}
	if rec[0] != 1 || rec[1] != 2 {
		t.Fatalf("version %d mechanism %d", rec[0], rec[1])
	}
	tests := []struct {
		name string
		rec  []byte
	}{
		{"empty", nil},
		{"truncated", rec[:len(rec)-1]},
		{"trailing", append(append([]byte(nil), rec...), 0)},
		{"version 2", append([]byte{2}, rec[1:]...)},
		{"mechanism 3", append([]byte{1, 3}, rec[2:]...)},
		{"iterations 1", append(append([]byte{1, 2}, 0, 0, 0, 1), rec[6:]...)},
	}
	for _, tt := range tests {
		var c Credential
		if err := c.UnmarshalBinary(tt.rec); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, err := (Credential{Mechanism: SHA256, Iterations: 4096}).MarshalBinary(); err == nil {
		t.Fatal("an invalid credential marshalled")
	}
}

// FuzzRecord: a record that decodes is a valid credential that encodes
// back to the same bytes, so replicas that re-encode agree byte for byte.
func FuzzRecord(f *testing.F) {
	c, err := NewCredential(SHA256, "pw", 4096)
	if err != nil {
		f.Fatal(err)
	}
	rec, _ := c.MarshalBinary()
	f.Add(rec)
	f.Add([]byte{1, 2, 0, 0, 16, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Credential
		if err := c.UnmarshalBinary(b); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded an invalid credential: %v", err)
		}
		again, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %x vs %x (%v)", again, b, err)
		}
	})
}
