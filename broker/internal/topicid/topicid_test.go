package topicid

import "testing"

// TestText: an id written as text (partition.metadata, the metadata log) reads back; a damaged one
// is an error, not a zero id taken for "unknown".
func TestText(t *testing.T) {
	id := ID{0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xfe}
	b, err := id.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back ID
	if err := back.UnmarshalText(b); err != nil || back != id {
		t.Fatalf("round trip: %s, %v", back, err)
	}
	for _, bad := range []string{"", "AAAA", "not base64!", id.String() + "AA"} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
}
