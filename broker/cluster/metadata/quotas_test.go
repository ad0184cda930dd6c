package metadata

import (
	"errors"
	"strings"
	"testing"
)

func TestAlterClientQuotas(t *testing.T) {
	m := newMachine(t)
	m.cluster(1)
	alice, app := "alice", "app"
	userAlice := QuotaEntity{{Type: QuotaEntityUser, Name: &alice}}
	// Parts in either order name the same entity.
	aliceApp := QuotaEntity{{Type: QuotaEntityUser, Name: &alice}, {Type: QuotaEntityClientID, Name: &app}}
	appAlice := QuotaEntity{{Type: QuotaEntityClientID, Name: &app}, {Type: QuotaEntityUser, Name: &alice}}
	defaultUser := QuotaEntity{{Type: QuotaEntityUser}}
	res := m.must(AlterClientQuotas{Entries: []QuotaAlteration{
		{Entity: userAlice, Set: map[string]float64{QuotaProducerByteRate: 1000, QuotaConsumerByteRate: 2000}},
		{Entity: aliceApp, Set: map[string]float64{QuotaRequestPercentage: 12.5}},
		{Entity: defaultUser, Set: map[string]float64{QuotaProducerByteRate: 1}},
		{Entity: defaultUser, Set: map[string]float64{"producer_rate": 1}},
		{Entity: defaultUser, Set: map[string]float64{QuotaConnectionCreationRate: 1}},
	}}).([]error)
	if res[0] != nil || res[1] != nil || res[2] != nil || !errors.Is(res[3], ErrInvalidRequest) || !errors.Is(res[4], ErrInvalidRequest) {
		t.Fatalf("results %v", res)
	}
	before := m.f.Current()
	if v, ok := before.ClientQuota(appAlice); !ok || v[QuotaRequestPercentage] != 12.5 {
		t.Fatalf("alice/app: %v %v", v, ok)
	}
	if len(before.ClientQuotas) != 3 {
		t.Fatalf("%d entities, want 3", len(before.ClientQuotas))
	}
	// Remove one key, then the last: the entity goes.
	m.must(AlterClientQuotas{Entries: []QuotaAlteration{{Entity: userAlice, Remove: []string{QuotaProducerByteRate}}}})
	if v, _ := m.f.Current().ClientQuota(userAlice); len(v) != 1 || v[QuotaConsumerByteRate] != 2000 {
		t.Fatalf("alice after removing producer_byte_rate: %v", v)
	}
	m.must(AlterClientQuotas{Entries: []QuotaAlteration{{Entity: userAlice, Remove: []string{QuotaConsumerByteRate}}}})
	if _, ok := m.f.Current().ClientQuota(userAlice); ok {
		t.Fatal("an entity without keys is still stored")
	}
	// The published state before did not change; a snapshot keeps the
	// quotas.
	if v, _ := before.ClientQuota(userAlice); v[QuotaProducerByteRate] != 1000 {
		t.Fatal("a command changed an earlier state")
	}
	restored, err := UnmarshalState(m.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !sameClientQuotas(restored.ClientQuotas, m.f.Current().ClientQuotas) {
		t.Error("a snapshot does not keep the quotas")
	}
	if m.f.Current().OnlyLeasesDiffer(before) {
		t.Error("a quota change looks like a lease change to the state's followers")
	}
}

func TestCanonicalQuotaEntity(t *testing.T) {
	n := func(s string) *string { return &s }
	for _, tc := range []struct {
		in   QuotaEntity
		want string
	}{
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("::0001")}}, "::1"},
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("0:0:0:0:0:0:0:1")}}, "::1"},
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("2001:DB8::A")}}, "2001:db8::a"},
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("::ffff:10.0.0.1")}}, "10.0.0.1"},
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("10.0.0.1")}}, "10.0.0.1"},
		// Not addresses: left as written (ValidateQuotaEntity refuses them).
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("10.0.0.01")}}, "10.0.0.01"},
		{QuotaEntity{{Type: QuotaEntityIP, Name: n("broker-1")}}, "broker-1"},
		// Other types are names, not addresses.
		{QuotaEntity{{Type: QuotaEntityUser, Name: n("::0001")}}, "::0001"},
	} {
		written := *tc.in[0].Name
		got := CanonicalQuotaEntity(tc.in)
		if *got[0].Name != tc.want {
			t.Errorf("%s: canonical name %q, want %q", written, *got[0].Name, tc.want)
		}
		if *tc.in[0].Name != written {
			t.Errorf("%s: the argument was changed to %s", written, *tc.in[0].Name)
		}
	}
	def := CanonicalQuotaEntity(QuotaEntity{{Type: QuotaEntityIP}})
	if len(def) != 1 || def[0].Name != nil {
		t.Errorf("the default ip entity became %s", def)
	}
	if err := ValidateQuotaEntity(QuotaEntity{{Type: QuotaEntityIP, Name: n("10.0.0.01")}}); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "leading zero") {
		t.Errorf("10.0.0.01: %v, want an invalid request naming the leading zero", err)
	}
}
