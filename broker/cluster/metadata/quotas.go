package metadata

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Client quotas (KIP-546): rates by client entity, which every broker
// enforces on its own traffic (package broker/quota). Their command is
// numbered apart from the others.
const (
	TypeAlterClientQuotas CommandType = 41
)

// The entity types of a client quota, as Kafka names them.
const (
	QuotaEntityUser     = "user"
	QuotaEntityClientID = "client-id"
	QuotaEntityIP       = "ip"
)

// The quota keys, as Kafka names them. Byte rates are bytes per second a
// broker takes from (producer) or sends to (consumer) the entity;
// request_percentage is the share of one request-handling thread's time
// (100 = one thread); connection_creation_rate is new connections per
// second from one IP address.
const (
	QuotaProducerByteRate       = "producer_byte_rate"
	QuotaConsumerByteRate       = "consumer_byte_rate"
	QuotaRequestPercentage      = "request_percentage"
	QuotaConnectionCreationRate = "connection_creation_rate"
)

// clientQuotaKeys are the keys of user and client-id entities; an ip
// entity takes connection_creation_rate only, as in Kafka.
var clientQuotaKeys = []string{QuotaConsumerByteRate, QuotaProducerByteRate, QuotaRequestPercentage}

// QuotaEntityPart is one component of a quota entity: a type and a name,
// nil Name being the type's default entity (Kafka's <default>).
type QuotaEntityPart struct {
	Type string  `json:"type"`
	Name *string `json:"name,omitempty"`
}

// QuotaEntity is a quota entity: user, client-id, user and client-id, or
// ip, each named or default. Its parts are sorted by type.
type QuotaEntity []QuotaEntityPart

// Key is a string naming the entity, equal for equal entities (parts in
// any order), for sorting and lookups.
func (e QuotaEntity) Key() string {
	parts := make([]string, len(e))
	for i, p := range e {
		if p.Name == nil {
			parts[i] = p.Type + "\x00d"
		} else {
			parts[i] = p.Type + "\x00n" + *p.Name
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "\x01")
}

// String formats the entity as kafka-configs shows it:
// user=alice,client-id=<default>.
func (e QuotaEntity) String() string {
	parts := make([]string, len(e))
	for i, p := range e {
		name := "<default>"
		if p.Name != nil {
			name = *p.Name
		}
		parts[i] = p.Type + "=" + name
	}
	return strings.Join(parts, ",")
}

// Part returns the entity's component of type typ.
func (e QuotaEntity) Part(typ string) (QuotaEntityPart, bool) {
	for _, p := range e {
		if p.Type == typ {
			return p, true
		}
	}
	return QuotaEntityPart{}, false
}

// sorted returns a copy of e with its parts sorted by type.
func (e QuotaEntity) sorted() QuotaEntity {
	c := slices.Clone(e)
	slices.SortFunc(c, func(a, b QuotaEntityPart) int { return strings.Compare(a.Type, b.Type) })
	return c
}

// ClientQuota is one entity's quotas.
type ClientQuota struct {
	Entity QuotaEntity        `json:"entity"`
	Values map[string]float64 `json:"values"`
}

// ClientQuotas are the cluster's client quotas, sorted by entity key. Like
// the rest of a State the slice is never changed once published.
type ClientQuotas []ClientQuota

// QuotaAlteration is one entity's changes: keys set to values, keys
// removed.
type QuotaAlteration struct {
	Entity QuotaEntity        `json:"entity"`
	Set    map[string]float64 `json:"set,omitempty"`
	Remove []string           `json:"remove,omitempty"`
}

// AlterClientQuotas changes client quotas, each entity's changes all or
// nothing. The result is []error, one per entry in order, nil where the
// entry applied, ErrInvalidRequest (with the reason) otherwise. An entity
// left without a key is removed.
type AlterClientQuotas struct {
	Entries []QuotaAlteration `json:"entries"`
}

// Type implements Command.
func (AlterClientQuotas) Type() CommandType { return TypeAlterClientQuotas }

func init() {
	handlers[TypeAlterClientQuotas] = decodeAnd(applyAlterClientQuotas)
}

func applyAlterClientQuotas(c *applyCtx, cmd AlterClientQuotas) (any, error) {
	byKey := map[string]ClientQuota{}
	for _, q := range c.st.ClientQuotas {
		byKey[q.Entity.Key()] = q
	}
	results := make([]error, len(cmd.Entries))
	for i, a := range cmd.Entries {
		if err := ValidateQuotaAlteration(a); err != nil {
			results[i] = err
			continue
		}
		key := a.Entity.Key()
		values := maps.Clone(byKey[key].Values)
		if values == nil {
			values = map[string]float64{}
		}
		for _, k := range a.Remove {
			delete(values, k)
		}
		maps.Copy(values, a.Set)
		if len(values) == 0 {
			delete(byKey, key)
			continue
		}
		byKey[key] = ClientQuota{Entity: a.Entity.sorted(), Values: values}
	}
	var next ClientQuotas
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		next = append(next, byKey[k])
	}
	c.st.ClientQuotas = next
	return results, nil
}

// ValidateQuotaEntity checks an entity as Kafka does: user, client-id,
// user and client-id, or ip alone; each type once; names not empty; an ip
// name an IP address. The error wraps ErrInvalidRequest and says why.
func ValidateQuotaEntity(e QuotaEntity) error {
	if len(e) == 0 {
		return fmt.Errorf("%w: a quota entity needs at least one of user, client-id or ip", ErrInvalidRequest)
	}
	seen := map[string]bool{}
	for _, p := range e {
		switch p.Type {
		case QuotaEntityUser, QuotaEntityClientID, QuotaEntityIP:
		default:
			return fmt.Errorf("%w: unknown quota entity type %q (user, client-id or ip)", ErrInvalidRequest, p.Type)
		}
		if seen[p.Type] {
			return fmt.Errorf("%w: quota entity type %q named twice", ErrInvalidRequest, p.Type)
		}
		seen[p.Type] = true
		if p.Name == nil {
			continue
		}
		if *p.Name == "" {
			return fmt.Errorf("%w: the %s name of a quota entity must not be empty (a null name is the default entity)", ErrInvalidRequest, p.Type)
		}
		if p.Type == QuotaEntityIP {
			if _, err := netip.ParseAddr(*p.Name); err != nil {
				return fmt.Errorf("%w: quota entity ip %q is not an IP address (%v)", ErrInvalidRequest, *p.Name, err)
			}
		}
	}
	if seen[QuotaEntityIP] && len(e) > 1 {
		return fmt.Errorf("%w: an ip quota entity cannot be combined with user or client-id", ErrInvalidRequest)
	}
	return nil
}

// CanonicalQuotaEntity is e with its ip name, if any, in the one form the
// brokers look a client's address up by (netip's, IPv4-mapped addresses as
// IPv4): "::0001" is "::1", "2001:DB8::1" is "2001:db8::1",
// "::ffff:10.0.0.1" is "10.0.0.1". Kafka compares ip quota entities as
// InetAddress values, so each of these spellings throttles the client it
// names; stored as written they matched no client here. A name that is not
// an address (which ValidateQuotaEntity refuses) is left as it is. e is
// not changed.
func CanonicalQuotaEntity(e QuotaEntity) QuotaEntity {
	out := slices.Clone(e)
	for i, p := range out {
		if p.Type != QuotaEntityIP || p.Name == nil {
			continue
		}
		if name, ok := CanonicalQuotaIP(*p.Name); ok {
			out[i].Name = &name
		}
	}
	return out
}

// CanonicalQuotaIP is the canonical form of an ip entity name (see
// CanonicalQuotaEntity), ok false when name is not an IP address.
func CanonicalQuotaIP(name string) (string, bool) {
	a, err := netip.ParseAddr(name)
	if err != nil {
		return "", false
	}
	return a.Unmap().String(), true
}

// QuotaKeys are the keys an entity takes.
func QuotaKeys(e QuotaEntity) []string {
	if _, ok := e.Part(QuotaEntityIP); ok {
		return []string{QuotaConnectionCreationRate}
	}
	return clientQuotaKeys
}

// ValidateQuotaValue checks one key and value for entity e: a key of the
// entity's kind, and a positive finite value, a whole number for the
// rates Kafka types as integers (everything but request_percentage).
func ValidateQuotaValue(e QuotaEntity, key string, value float64) error {
	if err := validateQuotaKey(e, key); err != nil {
		return err
	}
	switch {
	case math.IsNaN(value) || math.IsInf(value, 0):
		return fmt.Errorf("%w: quota %s must be a finite number", ErrInvalidRequest, key)
	case value <= 0:
		return fmt.Errorf("%w: quota %s must be greater than 0, got %v (remove the key to lift the quota)", ErrInvalidRequest, key, value)
	case key != QuotaRequestPercentage && (value != math.Trunc(value) || value > math.MaxInt64/2):
		return fmt.Errorf("%w: quota %s must be a whole number, got %v", ErrInvalidRequest, key, value)
	}
	return nil
}

func validateQuotaKey(e QuotaEntity, key string) error {
	keys := QuotaKeys(e)
	if slices.Contains(keys, key) {
		return nil
	}
	all := append(slices.Clone(clientQuotaKeys), QuotaConnectionCreationRate)
	if slices.Contains(all, key) {
		return fmt.Errorf("%w: quota key %s does not apply to entity %s (it takes %s)", ErrInvalidRequest, key, e, strings.Join(keys, ", "))
	}
	return fmt.Errorf("%w: unknown quota key %q (known: %s)", ErrInvalidRequest, key, strings.Join(all, ", "))
}

// ValidateQuotaAlteration checks an alteration: the entity, each key once,
// each value.
func ValidateQuotaAlteration(a QuotaAlteration) error {
	if err := ValidateQuotaEntity(a.Entity); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(a.Set)) {
		if err := ValidateQuotaValue(a.Entity, k, a.Set[k]); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, k := range a.Remove {
		if err := validateQuotaKey(a.Entity, k); err != nil {
			return err
		}
		if _, set := a.Set[k]; set || seen[k] {
			return fmt.Errorf("%w: quota key %s is named twice for entity %s", ErrInvalidRequest, k, a.Entity)
		}
		seen[k] = true
	}
	return nil
}

// ClientQuota returns the quotas of entity e (parts in any order).
func (s *State) ClientQuota(e QuotaEntity) (map[string]float64, bool) {
	key := e.Key()
	for _, q := range s.ClientQuotas {
		if q.Entity.Key() == key {
			return q.Values, true
		}
	}
	return nil, false
}

// sameClientQuotas reports whether a and b hold the same quotas. A command
// that does not touch them passes the same slice on, the quick case.
func sameClientQuotas(a, b ClientQuotas) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if a[i].Entity.Key() != b[i].Entity.Key() || !maps.Equal(a[i].Values, b[i].Values) {
			return false
		}
	}
	return true
}
