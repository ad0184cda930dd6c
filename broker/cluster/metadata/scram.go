package metadata

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/tributary/tributary/broker/security/scram"
)

// SCRAM credentials: salted records (scram.Credential's MarshalBinary),
// never a password, by user and mechanism. Their commands are numbered
// apart from the others.
const (
	TypeAlterScramCredentials CommandType = 40
)

// ErrResourceNotFound: a deletion names a credential the user does not
// have (Kafka's RESOURCE_NOT_FOUND).
var ErrResourceNotFound = errors.New("no such SCRAM credential")

// ScramCredentials maps a user to its credentials by mechanism name
// (SCRAM-SHA-256, SCRAM-SHA-512). Like the rest of a State it is never
// changed once published: a command replaces the maps it changes.
type ScramCredentials map[string]map[string][]byte

// ScramRecord is one salted credential of an AlterScramCredentials.
type ScramRecord struct {
	Mechanism string `json:"mechanism"`
	Record    []byte `json:"record"`
}

// ScramUserAlteration is one user's changes.
type ScramUserAlteration struct {
	User       string        `json:"user"`
	Deletions  []string      `json:"deletions,omitempty"` // mechanism names
	Upsertions []ScramRecord `json:"upsertions,omitempty"`
}

// AlterScramCredentials changes SCRAM credentials, each user's changes all
// or nothing. The result is []error, one per user in order, nil for a user
// whose changes applied: ErrResourceNotFound when a deletion names a
// credential the user does not have, ErrInvalidRequest for a bad name,
// mechanism or record. With IfAbsent (the bootstrap import) an upsertion
// applies only where the user has no credential of its mechanism, so that a
// password changed since is kept; every broker proposes the same import at
// start and the first one wins.
type AlterScramCredentials struct {
	Users    []ScramUserAlteration `json:"users"`
	IfAbsent bool                  `json:"if_absent,omitempty"`
}

// Type implements Command.
func (AlterScramCredentials) Type() CommandType { return TypeAlterScramCredentials }

func init() {
	handlers[TypeAlterScramCredentials] = decodeAnd(applyAlterScramCredentials)
}

func applyAlterScramCredentials(c *applyCtx, cmd AlterScramCredentials) (any, error) {
	next := maps.Clone(c.st.Scram)
	if next == nil {
		next = ScramCredentials{}
	}
	results := make([]error, len(cmd.Users))
	for i, u := range cmd.Users {
		results[i] = alterScramUser(next, u, cmd.IfAbsent)
	}
	if len(next) == 0 {
		next = nil
	}
	c.st.Scram = next
	return results, nil
}

// alterScramUser applies one user's changes to creds, or none of them.
func alterScramUser(creds ScramCredentials, u ScramUserAlteration, ifAbsent bool) error {
	if err := scram.ValidateUsername(u.User); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	mine := maps.Clone(creds[u.User])
	if mine == nil {
		mine = map[string][]byte{}
	}
	for _, m := range u.Deletions {
		if _, err := scram.ParseMechanism(m); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		if _, ok := mine[m]; !ok {
			return fmt.Errorf("%w: user %q has no %s credential", ErrResourceNotFound, u.User, m)
		}
		delete(mine, m)
	}
	for _, r := range u.Upsertions {
		m, err := scram.ParseMechanism(r.Mechanism)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
		var cred scram.Credential
		if err := cred.UnmarshalBinary(r.Record); err != nil || cred.Mechanism != m {
			return fmt.Errorf("%w: user %q: the %s record is not a credential of that mechanism", ErrInvalidRequest, u.User, r.Mechanism)
		}
		if _, ok := mine[r.Mechanism]; ok && ifAbsent {
			continue
		}
		mine[r.Mechanism] = bytes.Clone(r.Record)
	}
	if len(mine) == 0 {
		delete(creds, u.User)
	} else {
		creds[u.User] = mine
	}
	return nil
}

// ScramCredential returns user's credential record for mechanism (its
// name, SCRAM-SHA-512).
func (s *State) ScramCredential(user, mechanism string) ([]byte, bool) {
	r, ok := s.Scram[user][mechanism]
	return r, ok
}

// ScramUsers lists the users with a SCRAM credential, sorted.
func (s *State) ScramUsers() []string {
	return slices.Sorted(maps.Keys(s.Scram))
}

// sameScram reports whether a and b hold the same credentials. A command
// that does not touch them passes the same map on, which is the quick case.
func sameScram(a, b ScramCredentials) bool {
	if reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() {
		return true
	}
	return maps.EqualFunc(a, b, func(x, y map[string][]byte) bool { return maps.EqualFunc(x, y, bytes.Equal) })
}
