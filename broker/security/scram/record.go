package scram

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// recordVersion is the version byte of Credential's binary encoding.
const recordVersion = 1

// MarshalBinary encodes c for the metadata log:
//
//	version     uint8  (1)
//	mechanism   int8   (1 SCRAM-SHA-256, 2 SCRAM-SHA-512)
//	iterations  uint32 big-endian
//	salt        uint16 length, bytes
//	stored key  uint8 length, bytes
//	server key  uint8 length, bytes
//
// A record holds no password and nothing from which one can log in.
func (c Credential) MarshalBinary() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+1+4+2+len(c.Salt)+1+len(c.StoredKey)+1+len(c.ServerKey))
	b = append(b, recordVersion, byte(c.Mechanism))
	b = binary.BigEndian.AppendUint32(b, uint32(c.Iterations))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Salt)))
	b = append(b, c.Salt...)
	b = append(b, byte(len(c.StoredKey)))
	b = append(b, c.StoredKey...)
	b = append(b, byte(len(c.ServerKey)))
	b = append(b, c.ServerKey...)
	return b, nil
}

var errShortRecord = errors.New("SCRAM credential record: truncated")

// UnmarshalBinary decodes a record MarshalBinary made. It refuses unknown
// versions, trailing bytes and any credential Validate refuses.
func (c *Credential) UnmarshalBinary(b []byte) error {
	if len(b) < 1+1+4+2 {
		return errShortRecord
	}
	if b[0] != recordVersion {
		return fmt.Errorf("SCRAM credential record: unknown version %d", b[0])
	}
	out := Credential{Mechanism: Mechanism(int8(b[1])), Iterations: int(binary.BigEndian.Uint32(b[2:6]))}
	rest := b[6:]
	saltLen := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < saltLen {
		return errShortRecord
	}
	out.Salt, rest = append([]byte(nil), rest[:saltLen]...), rest[saltLen:]
	for _, dst := range []*[]byte{&out.StoredKey, &out.ServerKey} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return errShortRecord
		}
		n := int(rest[0])
		*dst, rest = append([]byte(nil), rest[1:1+n]...), rest[1+n:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("SCRAM credential record: %d trailing bytes", len(rest))
	}
	if err := out.Validate(); err != nil {
		return fmt.Errorf("SCRAM credential record: %w", err)
	}
	*c = out
	return nil
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
