// Package kafkaquota manages the client quotas of one entity of a cluster
// through the Kafka protocol (DescribeClientQuotas, AlterClientQuotas),
// for the tributary_quota resource: an entity and its values are checked
// with the brokers' own rules before they are sent, and a change returns
// once every live broker enforces it.
package kafkaquota

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// Default names a type's default entity, as kafka-configs prints it.
const Default = "<default>"

// Entity is a quota entity: a user, a client id, both, or an IP address,
// each a name or Default; "" leaves the type out.
type Entity struct {
	User     string
	ClientID string
	IP       string
}

// Parts is the entity as the brokers name it.
func (e Entity) Parts() metadata.QuotaEntity {
	var out metadata.QuotaEntity
	add := func(typ, name string) {
		if name == "" {
			return
		}
		p := metadata.QuotaEntityPart{Type: typ}
		if name != Default {
			n := name
			p.Name = &n
		}
		out = append(out, p)
	}
	add(metadata.QuotaEntityClientID, e.ClientID)
	add(metadata.QuotaEntityIP, e.IP)
	add(metadata.QuotaEntityUser, e.User)
	return out
}

// String is the entity as kafka-configs shows it: user=alice,client-id=app.
func (e Entity) String() string {
	var parts []string
	for _, p := range []struct{ typ, name string }{{"user", e.User}, {"client-id", e.ClientID}, {"ip", e.IP}} {
		if p.name != "" {
			parts = append(parts, p.typ+"="+p.name)
		}
	}
	return strings.Join(parts, ",")
}

// Validate checks the entity with the brokers' rules.
func (e Entity) Validate() error {
	return trim(metadata.ValidateQuotaEntity(e.Parts()))
}

// Problem is one thing wrong with a quota, naming the tributary_quota
// argument it is in, so a plan can point at it.
type Problem struct {
	Field string // user, client_id, ip, or a quota key (producer_byte_rate, ...)
	Err   error
}

func (p Problem) Error() string { return p.Err.Error() }
func (p Problem) Unwrap() error { return p.Err }

// Problems returns every mistake in the entity and values that can be
// tied to one argument, all at once: the brokers' checks (Validate,
// ValidateValues) plus names the brokers accept but never match. Validate
// and ValidateValues still apply after these (an entity with no part,
// values with no key).
func (e Entity) Problems(values map[string]float64) []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Err: fmt.Errorf(format, args...)})
	}
	// The brokers find a client's quotas by its principal's name, without
	// the principal type: user = "User:alice" would throttle no client.
	if typ, name, ok := strings.Cut(e.User, ":"); ok && strings.EqualFold(typ, "User") && name != "" {
		add("user", "user %q: the user is the principal's name without User:, %q (the brokers match quotas on the name, so this quota would apply to no client)", e.User, name)
	}
	if e.IP != "" && e.IP != Default {
		addr, err := netip.ParseAddr(e.IP)
		switch {
		case err != nil:
			add("ip", "quota entity ip %q is not an IP address", e.IP)
		case addr.Unmap().String() != e.IP:
			// The brokers look a connection's quota up by its address
			// as Go prints it (lower case, zeros compressed, an
			// IPv4-mapped address as IPv4): any other spelling is
			// stored and matches no connection.
			add("ip", "ip %q is written %s: the brokers match a connection's address in that form, so this quota would apply to no connection", e.IP, addr.Unmap())
		}
		if e.User != "" || e.ClientID != "" {
			add("ip", "an ip quota entity cannot be combined with user or client-id")
		}
	}
	parts := e.Parts()
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if err := metadata.ValidateQuotaValue(parts, k, values[k]); err != nil {
			add(k, "%s", trim(err))
		}
	}
	return ps
}

// Keys are the quota keys the entity takes.
func (e Entity) Keys() []string { return metadata.QuotaKeys(e.Parts()) }

// ValidateValues checks values for the entity with the brokers' rules.
func (e Entity) ValidateValues(values map[string]float64) error {
	if len(values) == 0 {
		return fmt.Errorf("a quota needs at least one of %s", strings.Join(e.Keys(), ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if err := metadata.ValidateQuotaValue(e.Parts(), k, values[k]); err != nil {
			return trim(err)
		}
	}
	return nil
}

// trim drops the "invalid request: " of the brokers' errors.
func trim(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(strings.TrimPrefix(err.Error(), metadata.ErrInvalidRequest.Error()+": "))
}

// idSeparator joins an entity's parts into the import id. A user name
// holding it (rare: SCRAM names and certificate subjects do not) cannot
// be imported.
const idSeparator = "|"

// ID is the import id: the cluster id, then type=name for each part
// (user, client-id, ip), joined by "|": tc-...|user=alice|client-id=app.
func (e Entity) ID(clusterID string) string {
	parts := []string{clusterID}
	for _, p := range []struct{ typ, name string }{{"user", e.User}, {"client-id", e.ClientID}, {"ip", e.IP}} {
		if p.name != "" {
			parts = append(parts, p.typ+"="+p.name)
		}
	}
	return strings.Join(parts, idSeparator)
}

// ParseID reads an import id made by ID.
func ParseID(id string) (clusterID string, e Entity, err error) {
	parts := strings.Split(id, idSeparator)
	usage := fmt.Errorf("a quota id is cluster_id|user=NAME|client-id=NAME (or ip=ADDRESS), each part optional but one, " +
		"NAME <default> for the default entity, e.g. tc-0123456789abcdef|user=alice or tc-0123456789abcdef|client-id=<default>")
	if len(parts) < 2 {
		return "", e, usage
	}
	for _, p := range parts[1:] {
		typ, name, ok := strings.Cut(p, "=")
		var field *string
		switch typ {
		case "user":
			field = &e.User
		case "client-id":
			field = &e.ClientID
		case "ip":
			field = &e.IP
		}
		if !ok || field == nil || name == "" {
			return "", Entity{}, fmt.Errorf("quota id %q: part %q: %w", id, p, usage)
		}
		if *field != "" {
			return "", Entity{}, fmt.Errorf("quota id %q names %s twice", id, typ)
		}
		*field = name
	}
	if err := e.Validate(); err != nil {
		return "", Entity{}, fmt.Errorf("quota id %q: %w", id, err)
	}
	return parts[0], e, nil
}

// ErrNotFound says the cluster holds no quota for the entity.
var ErrNotFound = errors.New("no quota for the entity")

// Admin manages the client quotas of one cluster.
type Admin struct {
	Conn *kafkaconn.Conn
	Log  kafkaconn.LogFunc
	// PollInterval is the delay between two checks of a wait.
	PollInterval time.Duration
}

// agreeWait bounds Describe's wait for the brokers to agree: the metadata
// log reaches a live broker within a second or so, and one that lags
// longer is named in the error.
const agreeWait = 30 * time.Second

// Describe returns the entity's quotas (ErrNotFound when it has none).
// One broker answers first; when it holds quotas for the entity, every
// live broker is asked until they agree, so that a broker that has not
// applied their removal yet (outside Terraform a moment ago, or by the
// apply before) does not refuse their creation ("already holds") or keep
// removed quotas in the state.
func (ad *Admin) Describe(ctx context.Context, e Entity) (map[string]float64, error) {
	cl, err := ad.Conn.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	values, err := describe(ctx, cl, e)
	if err != nil {
		return nil, err
	}
	agreed, err := ad.agreedQuotas(ctx, cl, e)
	switch {
	case err != nil:
		return nil, err
	case agreed == nil:
		return nil, fmt.Errorf("%w: %s (removed; a broker still held %v)", ErrNotFound, e, values)
	}
	return agreed, nil
}

// agreedQuotas asks every live broker for the entity's quotas until they
// agree (agreeWait at most); nil when none holds any.
func (ad *Admin) agreedQuotas(ctx context.Context, cl *kgo.Client, e Entity) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, agreeWait)
	defer cancel()
	return kafkaconn.AgreedAnswer(ctx, cl, "the quotas of "+e.String(), ad.PollInterval, ad.Log,
		func(ctx context.Context, br *kgo.Broker, _ int32) (map[string]float64, error) {
			v, err := describe(ctx, br, e)
			if errors.Is(err, ErrNotFound) {
				return nil, nil
			}
			return v, err
		},
		func(a, b map[string]float64) bool { return (a == nil) == (b == nil) && maps.Equal(a, b) })
}

// Set makes the entity's quotas exactly values: keys in values are set,
// the entity's other keys removed. It waits until every live broker holds
// them. Empty values removes every quota of the entity.
func (ad *Admin) Set(ctx context.Context, e Entity, values map[string]float64) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if len(values) > 0 {
		if err := e.ValidateValues(values); err != nil {
			return err
		}
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	// What to remove is read from every live broker, once they agree: a
	// key one broker has not applied yet (set a moment ago outside
	// Terraform) would be left, and the wait below never end.
	current, err := ad.agreedQuotas(ctx, cl, e)
	if err != nil {
		return err
	}
	entry := kmsg.NewAlterClientQuotasRequestEntry()
	for _, p := range e.Parts() {
		pe := kmsg.NewAlterClientQuotasRequestEntryEntity()
		pe.Type, pe.Name = p.Type, p.Name
		entry.Entity = append(entry.Entity, pe)
	}
	for _, k := range slices.Sorted(maps.Keys(values)) {
		op := kmsg.NewAlterClientQuotasRequestEntryOp()
		op.Key, op.Value = k, values[k]
		entry.Ops = append(entry.Ops, op)
	}
	for _, k := range slices.Sorted(maps.Keys(current)) {
		if _, keep := values[k]; !keep {
			op := kmsg.NewAlterClientQuotasRequestEntryOp()
			op.Key, op.Remove = k, true
			entry.Ops = append(entry.Ops, op)
		}
	}
	if len(entry.Ops) == 0 {
		return nil
	}
	req := kmsg.NewPtrAlterClientQuotasRequest()
	req.Entries = append(req.Entries, entry)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("altering the quotas of %s: %w", e, err)
	}
	if len(resp.Entries) != 1 {
		return fmt.Errorf("altering the quotas of %s: the broker answered %d results for one entity", e, len(resp.Entries))
	}
	if err := kerr.ErrorForCode(resp.Entries[0].ErrorCode); err != nil {
		return fmt.Errorf("altering the quotas of %s: %w%s", e, err, kafkaconn.ErrMessage(resp.Entries[0].ErrorMessage))
	}
	what := "the quotas of " + e.String() + " on every broker"
	if len(values) == 0 {
		what = "the quotas of " + e.String() + " to be gone from every broker"
	}
	return ad.Conn.WaitEachBroker(ctx, what, ad.PollInterval, ad.Log, func(ctx context.Context, br *kgo.Broker, id int32) (string, bool) {
		got, err := describe(ctx, br, e)
		switch {
		case errors.Is(err, ErrNotFound) && len(values) == 0:
			return "", true
		case errors.Is(err, ErrNotFound):
			return fmt.Sprintf("broker %d does not hold them yet", id), false
		case err != nil:
			return fmt.Sprintf("broker %d: %v", id, err), false
		case !maps.Equal(got, values):
			return fmt.Sprintf("broker %d holds %v", id, got), false
		}
		return "", true
	})
}

// describe asks one broker (or the cluster) for the entity's quotas,
// matching it exactly (strict, each part by name or as the default).
func describe(ctx context.Context, r kmsg.Requestor, e Entity) (map[string]float64, error) {
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.Strict = true
	for _, p := range e.Parts() {
		c := kmsg.NewDescribeClientQuotasRequestComponent()
		c.EntityType = p.Type
		if p.Name == nil {
			c.MatchType = kmsg.QuotasMatchTypeDefault
		} else {
			c.MatchType, c.Match = kmsg.QuotasMatchTypeExact, p.Name
		}
		req.Components = append(req.Components, c)
	}
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("describing the quotas of %s: %w", e, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("describing the quotas of %s: %w%s", e, err, kafkaconn.ErrMessage(resp.ErrorMessage))
	}
	want := e.Parts().Key()
	for _, entry := range resp.Entries {
		var got metadata.QuotaEntity
		for _, p := range entry.Entity {
			got = append(got, metadata.QuotaEntityPart{Type: p.Type, Name: p.Name})
		}
		if got.Key() != want {
			continue
		}
		out := map[string]float64{}
		for _, v := range entry.Values {
			out[v.Key] = v.Value
		}
		return out, nil
	}
	return nil, ErrNotFound
}
