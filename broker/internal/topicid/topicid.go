// Package topicid is Kafka's 16-byte topic id (KIP-516) as the broker
// writes it in text: in the metadata log and its snapshots, in a metadata
// file, and in a log's partition.metadata. One type for all three, so the
// text a layer writes is the text another reads.
package topicid

import (
	"encoding/base64"
	"fmt"
)

// ID is a topic id; the zero ID is "unknown" (a log created before ids were
// stored, or a file that names none).
type ID [16]byte

// IsZero reports whether the id is unknown.
func (id ID) IsZero() bool { return id == ID{} }

// String formats the id as Kafka prints topic ids (URL-safe base64).
func (id ID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// MarshalText writes the id as String does.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads an id written by MarshalText.
func (id *ID) UnmarshalText(b []byte) error {
	raw, err := base64.RawURLEncoding.DecodeString(string(b))
	if err != nil || len(raw) != len(id) {
		return fmt.Errorf("bad topic id %q", b)
	}
	copy(id[:], raw)
	return nil
}
