// Package quota enforces client quotas (KIP-546) as a Kafka broker does:
// each broker measures, over its own rate windows, the bytes each client
// produces and fetches, the request-handling time its requests take and
// the connections each IP address opens, against the quotas of the
// metadata log (metadata.ClientQuotas), and says how long a client that
// went over must be throttled: the time after which its rate is back at
// the quota. The server puts that time in the response's throttle_time_ms
// and stops reading from the connection meanwhile (package
// broker/server).
package quota

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// Config is the rate windows: Kafka's quota.window.num samples of
// quota.window.size.seconds each.
type Config struct {
	Samples int
	Window  time.Duration
}

// span is the time every sample covers together: the longest throttle.
func (c Config) span() time.Duration { return time.Duration(c.Samples) * c.Window }

// Kind is what a client quota measures.
type Kind int

// The client quota kinds and the key each is set by.
const (
	Produce Kind = iota // producer_byte_rate: bytes of Produce requests
	Fetch               // consumer_byte_rate: bytes of Fetch responses
	Request             // request_percentage: request-handling time
	numKinds
)

// Key is the quota key of k.
func (k Kind) Key() string {
	switch k {
	case Produce:
		return metadata.QuotaProducerByteRate
	case Fetch:
		return metadata.QuotaConsumerByteRate
	}
	return metadata.QuotaRequestPercentage
}

// maxSensors bounds the rates kept: past it, those idle for a whole quota
// window (which measure 0 anyway) are dropped.
const maxSensors = 4096

// Manager measures clients against the quotas in force. It is safe for
// concurrent use.
type Manager struct {
	cfg Config
	now func() time.Time

	table atomic.Pointer[table]

	mu      sync.Mutex
	sensors map[sensorKey]*rate
	conns   map[netip.Addr]*rate
}

type sensorKey struct {
	kind           Kind
	user, clientID string // the client's, where the matched entity names that type
}

// table is the quotas in force, by entity key.
type table struct {
	byKey map[string]map[string]float64
	kinds [numKinds]bool // whether any entity sets the kind's key
	ips   bool           // whether any ip entity sets a rate
}

// NewManager returns a manager with no quotas. now is the clock (nil:
// time.Now).
func NewManager(cfg Config, now func() time.Time) *Manager {
	if now == nil {
		now = time.Now
	}
	m := &Manager{cfg: cfg, now: now, sensors: map[sensorKey]*rate{}, conns: map[netip.Addr]*rate{}}
	m.table.Store(&table{})
	return m
}

// Update puts the quotas of a metadata state in force. Rates measured so
// far are kept: a changed quota applies to the traffic already measured,
// as in Kafka.
func (m *Manager) Update(qs metadata.ClientQuotas) {
	t := &table{byKey: make(map[string]map[string]float64, len(qs))}
	for _, q := range qs {
		// An ip entity stored before AlterClientQuotas canonicalized
		// its name ("::0001") throttles the address it names, unless
		// the canonical entity has quotas of its own.
		key := metadata.CanonicalQuotaEntity(q.Entity).Key()
		if _, taken := t.byKey[key]; taken && key != q.Entity.Key() {
			continue
		}
		t.byKey[key] = q.Values
		for k := range numKinds {
			if _, ok := q.Values[k.Key()]; ok {
				t.kinds[k] = true
			}
		}
		if _, ok := q.Values[metadata.QuotaConnectionCreationRate]; ok {
			t.ips = true
		}
	}
	m.table.Store(t)
}

// Limited reports whether any quota of kind is set: when none is, nothing
// needs measuring.
func (m *Manager) Limited(kind Kind) bool { return m.table.Load().kinds[kind] }

// Record counts value (bytes, or for Request the handling time as
// percent-seconds: Percent) for a client and returns how long it must be
// throttled: 0 while its entity's rate is within the quota.
func (m *Manager) Record(kind Kind, user, clientID string, value float64) time.Duration {
	d, _ := m.record(kind, user, clientID, value, false)
	return d
}

// RecordUnlessThrottled is Record for what is only sent within the quota
// (a Fetch response, as in Kafka): when value puts the client over, it is
// taken back out of the rate, since the client is not sent it, and the
// throttle time it would have caused is returned with sent false.
func (m *Manager) RecordUnlessThrottled(kind Kind, user, clientID string, value float64) (throttle time.Duration, sent bool) {
	return m.record(kind, user, clientID, value, true)
}

func (m *Manager) record(kind Kind, user, clientID string, value float64, unlessThrottled bool) (time.Duration, bool) {
	t := m.table.Load()
	if !t.kinds[kind] {
		return 0, true
	}
	bound, hasUser, hasClient, ok := t.resolve(kind.Key(), user, clientID)
	if !ok {
		return 0, true
	}
	key := sensorKey{kind: kind}
	if hasUser {
		key.user = user
	}
	if hasClient {
		key.clientID = clientID
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.sensors[key]
	if r == nil {
		if len(m.sensors) >= maxSensors {
			prune(m.sensors, m.cfg, now)
		}
		r = newRate(m.cfg.Samples, now)
		m.sensors[key] = r
	}
	r.record(m.cfg, value, now)
	d := m.throttle(r, bound, now)
	if d > 0 && unlessThrottled {
		r.record(m.cfg, -value, now)
		return d, false
	}
	return d, true
}

// MaxInWindow is the most a client may be sent at once under its quota of
// kind (Kafka's getMaxValueInQuotaWindow: the bound over all samples but
// the current one), or ok false when no quota of kind applies to it. A
// response larger than that would be throttled however long the client
// waited.
func (m *Manager) MaxInWindow(kind Kind, user, clientID string) (bytes float64, ok bool) {
	t := m.table.Load()
	if !t.kinds[kind] {
		return 0, false
	}
	bound, _, _, ok := t.resolve(kind.Key(), user, clientID)
	if !ok {
		return 0, false
	}
	return bound * (m.cfg.Window * time.Duration(max(m.cfg.Samples-1, 1))).Seconds(), true
}

// throttle is Kafka's QuotaUtils.throttleTime: how long until the rate
// measured over the same span is back at bound, at most the whole quota
// window.
func (m *Manager) throttle(r *rate, bound float64, now time.Time) time.Duration {
	v, span := r.measure(m.cfg, now)
	if v <= bound {
		return 0
	}
	d := time.Duration((v - bound) / bound * float64(span))
	return min(d, m.cfg.span()).Round(time.Millisecond)
}

// Percent converts request-handling time into the unit of
// request_percentage's rate: percent of one thread, times seconds.
func Percent(d time.Duration) float64 { return d.Seconds() * 100 }

// RecordConnection counts a new connection from ip against its
// connection_creation_rate (the ip's own, else the default ip's) and
// returns 0 when it may be served, or how long to hold it before it is
// closed unserved (Kafka's connection throttling). A refused connection
// is not counted.
func (m *Manager) RecordConnection(ip netip.Addr) time.Duration {
	t := m.table.Load()
	if !t.ips {
		return 0
	}
	ip = ip.Unmap()
	name := ip.String()
	bound, ok := t.byKey[metadata.QuotaEntity{{Type: metadata.QuotaEntityIP, Name: &name}}.Key()][metadata.QuotaConnectionCreationRate]
	if !ok {
		bound, ok = t.byKey[metadata.QuotaEntity{{Type: metadata.QuotaEntityIP}}.Key()][metadata.QuotaConnectionCreationRate]
	}
	if !ok {
		return 0
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.conns[ip]
	if r == nil {
		if len(m.conns) >= maxSensors {
			prune(m.conns, m.cfg, now)
		}
		r = newRate(m.cfg.Samples, now)
		m.conns[ip] = r
	}
	r.record(m.cfg, 1, now)
	d := m.throttle(r, bound, now)
	if d > 0 {
		r.record(m.cfg, -1, now)
	}
	return d
}

func prune[K comparable](rates map[K]*rate, cfg Config, now time.Time) {
	for k, r := range rates {
		if now.Sub(r.last) >= cfg.span() {
			delete(rates, k)
		}
	}
}

// resolve finds the quota of key for a client by Kafka's precedence, the
// most specific entity first:
//
//	user=U,client-id=C   user=U,client-id=<default>   user=U
//	user=<default>,client-id=C   user=<default>,client-id=<default>   user=<default>
//	client-id=C   client-id=<default>
//
// It returns the bound and which types the matched entity has: the rate
// is shared by every client that agrees on those (a quota on user=U is
// one rate for all of U's client ids; one on user=<default> a rate per
// user).
func (t *table) resolve(key, user, clientID string) (bound float64, hasUser, hasClient, ok bool) {
	u, c := &user, &clientID
	for _, e := range []metadata.QuotaEntity{
		{{Type: metadata.QuotaEntityClientID, Name: c}, {Type: metadata.QuotaEntityUser, Name: u}},
		{{Type: metadata.QuotaEntityClientID}, {Type: metadata.QuotaEntityUser, Name: u}},
		{{Type: metadata.QuotaEntityUser, Name: u}},
		{{Type: metadata.QuotaEntityClientID, Name: c}, {Type: metadata.QuotaEntityUser}},
		{{Type: metadata.QuotaEntityClientID}, {Type: metadata.QuotaEntityUser}},
		{{Type: metadata.QuotaEntityUser}},
		{{Type: metadata.QuotaEntityClientID, Name: c}},
		{{Type: metadata.QuotaEntityClientID}},
	} {
		v, found := t.byKey[e.Key()][key]
		if !found || math.IsNaN(v) {
			continue
		}
		_, hasUser = e.Part(metadata.QuotaEntityUser)
		_, hasClient = e.Part(metadata.QuotaEntityClientID)
		return v, hasUser, hasClient, true
	}
	return 0, false, false, false
}
