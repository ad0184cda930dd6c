package metadata

import (
	"errors"
	"slices"
	"testing"

	"github.com/tributary/tributary/broker/security/scram"
)

func scramRecord(t *testing.T, m scram.Mechanism, password string) ScramRecord {
	t.Helper()
	c, err := scram.NewCredential(m, password, scram.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return ScramRecord{Mechanism: m.String(), Record: b}
}

func TestAlterScramCredentials(t *testing.T) {
	m := newMachine(t)
	m.cluster(1)
	alice512, alice256, bob512 := scramRecord(t, scram.SHA512, "a"), scramRecord(t, scram.SHA256, "a"), scramRecord(t, scram.SHA512, "b")
	res := m.must(AlterScramCredentials{Users: []ScramUserAlteration{
		{User: "alice", Upsertions: []ScramRecord{alice512, alice256}},
		{User: "bob", Upsertions: []ScramRecord{bob512}},
	}}).([]error)
	if res[0] != nil || res[1] != nil {
		t.Fatalf("results %v", res)
	}
	st := m.f.Current()
	if got := st.ScramUsers(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("users %v", got)
	}
	if r, ok := st.ScramCredential("alice", "SCRAM-SHA-256"); !ok || !slices.Equal(r, alice256.Record) {
		t.Fatal("alice's SHA-256 record is not stored as given")
	}
	before := m.f.Current()

	// Per user all or nothing: bob's deletion of a credential he does not
	// have refuses his upsertion too; alice's changes apply.
	newBob := scramRecord(t, scram.SHA512, "b2")
	res = m.must(AlterScramCredentials{Users: []ScramUserAlteration{
		{User: "alice", Deletions: []string{"SCRAM-SHA-256"}},
		{User: "bob", Deletions: []string{"SCRAM-SHA-256"}, Upsertions: []ScramRecord{newBob}},
		{User: "", Upsertions: []ScramRecord{newBob}},
		{User: "carol", Upsertions: []ScramRecord{{Mechanism: "SCRAM-SHA-256", Record: newBob.Record}}},
		{User: "dave", Upsertions: []ScramRecord{{Mechanism: "SCRAM-SHA-1", Record: newBob.Record}}},
	}}).([]error)
	if res[0] != nil || !errors.Is(res[1], ErrResourceNotFound) || !errors.Is(res[2], ErrInvalidRequest) ||
		!errors.Is(res[3], ErrInvalidRequest) || !errors.Is(res[4], ErrInvalidRequest) {
		t.Fatalf("results %v", res)
	}
	st = m.f.Current()
	if _, ok := st.ScramCredential("alice", "SCRAM-SHA-256"); ok {
		t.Error("alice's SHA-256 credential was not deleted")
	}
	if r, _ := st.ScramCredential("bob", "SCRAM-SHA-512"); !slices.Equal(r, bob512.Record) {
		t.Error("bob's refused changes applied")
	}
	if _, ok := st.Scram["carol"]; ok {
		t.Error("a record of another mechanism was stored")
	}
	// The published state before the command did not change.
	if _, ok := before.ScramCredential("alice", "SCRAM-SHA-256"); !ok {
		t.Error("the command changed an earlier state")
	}

	// IfAbsent (the bootstrap import) keeps what exists and adds the rest.
	res = m.must(AlterScramCredentials{IfAbsent: true, Users: []ScramUserAlteration{
		{User: "bob", Upsertions: []ScramRecord{newBob}},
		{User: "admin", Upsertions: []ScramRecord{scramRecord(t, scram.SHA512, "x")}},
	}}).([]error)
	if res[0] != nil || res[1] != nil {
		t.Fatalf("results %v", res)
	}
	st = m.f.Current()
	if r, _ := st.ScramCredential("bob", "SCRAM-SHA-512"); !slices.Equal(r, bob512.Record) {
		t.Error("the import replaced an existing credential")
	}
	if _, ok := st.ScramCredential("admin", "SCRAM-SHA-512"); !ok {
		t.Error("the import did not add a missing user")
	}

	// Deleting a user's last credential removes the user; a snapshot
	// round trip keeps the credentials byte for byte.
	m.must(AlterScramCredentials{Users: []ScramUserAlteration{{User: "alice", Deletions: []string{"SCRAM-SHA-512"}}}})
	if slices.Contains(m.f.Current().ScramUsers(), "alice") {
		t.Error("a user without credentials is still listed")
	}
	b := m.bytes()
	restored, err := UnmarshalState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !sameScram(restored.Scram, m.f.Current().Scram) {
		t.Error("a snapshot does not keep the credentials")
	}
}
