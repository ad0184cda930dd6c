package config

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/broker/security/tlsconf"
)

// Security protocols, as Kafka names them.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLSSL       = "SASL_SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
)

// SASL mechanisms a SASL_SSL listener may offer.
var saslMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"}

// ListenerRole says what a listener is for.
type ListenerRole int

const (
	// RoleClient listeners serve the Kafka protocol to clients.
	RoleClient ListenerRole = iota
	// RoleInterBroker is inter.broker.listener.name: followers fetch there.
	RoleInterBroker
	// RoleController is controller.listener.names: the Raft metadata quorum.
	RoleController
)

// Listener is one entry of listeners, resolved against
// listener.security.protocol.map, advertised.listeners,
// inter.broker.listener.name and controller.listener.names.
type Listener struct {
	// Name is the listener name, upper-case (CLIENT_SECURE).
	Name string
	// Protocol is PLAINTEXT, SSL or SASL_SSL.
	Protocol string
	// Addr is where it binds (host:port; port 0 picks one).
	Addr string
	// Advertised is the host:port clients and peers are given: the
	// advertised.listeners entry of the same name, else Addr.
	Advertised string
	Role       ListenerRole
}

// TLS reports whether the listener's protocol runs over TLS.
func (l Listener) TLS() bool { return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL }

// SASL reports whether clients authenticate with SASL on the listener.
func (l Listener) SASL() bool { return l.Protocol == ProtocolSASLSSL }

// Listeners resolves the configured listeners, in the order of
// listeners. It fails when the listener settings are inconsistent; Validate
// reports the same problems, each naming its setting.
func (c *Config) Listeners() ([]Listener, error) {
	ls, errs := c.resolveListeners()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return ls, nil
}

// ClientListeners are the listeners that serve clients.
func (c *Config) ClientListeners() []Listener {
	ls, _ := c.resolveListeners()
	return slices.DeleteFunc(ls, func(l Listener) bool { return l.Role != RoleClient })
}

// RoleListener returns the inter-broker or controller listener, when
// inter.broker.listener.name or controller.listener.names names one.
func (c *Config) RoleListener(role ListenerRole) (Listener, bool) {
	ls, _ := c.resolveListeners()
	for _, l := range ls {
		if l.Role == role {
			return l, true
		}
	}
	return Listener{}, false
}

// SASLMechanisms lists the mechanisms a listener offers:
// listener.name.<name>.sasl.enabled.mechanisms, else sasl.enabled.mechanisms.
func (c *Config) SASLMechanisms(listener string) []string {
	v, ok := c.Configured("listener.name." + strings.ToLower(listener) + ".sasl.enabled.mechanisms")
	if !ok {
		v, _ = c.Configured("sasl.enabled.mechanisms")
	}
	return splitList(v)
}

// Configured returns the value of a setting kept by name (the TLS, SASL
// and authorizer settings: ssl.*, listener.name.<listener>.*, super.users)
// when it was set, and false when it was not. TLS settings are read through
// it (package tlsconf's Getter), so that a listener's own
// listener.name.<name>.ssl.* setting wins over the broker-wide one only when
// it is set.
func (c *Config) Configured(name string) (string, bool) {
	v, ok := c.Kept[name]
	return v, ok
}

// Authenticates reports whether clients of the listener can be someone
// other than User:ANONYMOUS: SASL_SSL listeners, and SSL listeners that ask
// for client certificates.
func (c *Config) Authenticates(l Listener) bool {
	if l.SASL() {
		return true
	}
	if l.Protocol != ProtocolSSL || l.Role != RoleClient {
		return false
	}
	auth := c.clientAuth(l.Name)
	return auth == "required" || auth == "requested"
}

// clientAuth is a listener's ssl.client.auth, "" when unset.
func (c *Config) clientAuth(listener string) string {
	auth, ok := c.Configured("listener.name." + strings.ToLower(listener) + ".ssl.client.auth")
	if !ok {
		auth, _ = c.Configured("ssl.client.auth")
	}
	return auth
}

// AllowEveryoneIfNoACLFound is allow.everyone.if.no.acl.found: the value
// set, else true only while no client listener authenticates (a broker
// whose every client is User:ANONYMOUS has nobody to write ACLs for).
func (c *Config) AllowEveryoneIfNoACLFound() bool {
	if c.allowEveryone != nil {
		return *c.allowEveryone
	}
	for _, l := range c.ClientListeners() {
		if c.Authenticates(l) {
			return false
		}
	}
	return true
}

func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// listenerEntry is one entry of a Kafka listener list.
type listenerEntry struct {
	name string
	addr string // host:port
}

// parseListeners parses "NAME://host:port,...".
func parseListeners(v string) ([]listenerEntry, error) {
	var out []listenerEntry
	for _, l := range strings.Split(v, ",") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		name, addr, ok := strings.Cut(l, "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("listener %q: want NAME://host:port", l)
		}
		if !listenerNamePattern.MatchString(strings.ToLower(name)) {
			return nil, fmt.Errorf("listener %q: a name is a letter then letters, digits or _, at most 32", l)
		}
		if _, _, err := splitHostPort(addr); err != nil {
			return nil, fmt.Errorf("listener %q: %w", l, err)
		}
		out = append(out, listenerEntry{name: strings.ToUpper(name), addr: addr})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no listener in %q", v)
	}
	return out, nil
}

// parseProtocolMap parses "NAME:PROTOCOL,...".
func parseProtocolMap(v string) (map[string]string, error) {
	m := map[string]string{}
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		name, proto, ok := strings.Cut(e, ":")
		if !ok || name == "" || proto == "" {
			return nil, fmt.Errorf("protocol map entry %q: want NAME:PROTOCOL", e)
		}
		m[strings.ToUpper(strings.TrimSpace(name))] = strings.ToUpper(strings.TrimSpace(proto))
	}
	return m, nil
}

// checkProtocol refuses what the broker cannot serve.
func checkProtocol(proto string) error {
	switch proto {
	case ProtocolPlaintext, ProtocolSSL, ProtocolSASLSSL:
		return nil
	case ProtocolSASLPlaintext:
		return fmt.Errorf("SASL_PLAINTEXT is not served: SASL exchanges and OAUTHBEARER tokens would cross the network in clear and the session would be unencrypted; use SASL_SSL")
	default:
		return fmt.Errorf("unknown security protocol %q: want PLAINTEXT, SSL or SASL_SSL", proto)
	}
}

// resolveListeners resolves the listener settings, collecting every
// problem, each naming the setting to change. The settings arrive one at a
// time in any order, so nothing is checked when one of them is set: only
// this resolution of the final state is.
func (c *Config) resolveListeners() ([]Listener, []*SettingError) {
	var errs []*SettingError
	bad := func(name, format string, args ...any) {
		errs = append(errs, &SettingError{Name: name, Problem: fmt.Sprintf(format, args...)})
	}
	entries, err := parseListeners(c.ListenersSpec)
	if err != nil {
		bad("listeners", "%v", err)
		return nil, errs
	}
	protos, err := parseProtocolMap(c.ProtocolMap)
	if err != nil {
		bad("listener.security.protocol.map", "%v", err)
		return nil, errs
	}
	var adv []listenerEntry
	if c.AdvertisedListeners != "" {
		if adv, err = parseListeners(c.AdvertisedListeners); err != nil {
			bad("advertised.listeners", "%v", err)
		}
	}
	interBroker := strings.ToUpper(strings.TrimSpace(c.InterBrokerListenerName))
	var controller string
	if names := splitList(c.ControllerListenerNames); len(names) > 1 {
		bad("controller.listener.names", "names %d listeners; the metadata quorum listens on one", len(names))
	} else if len(names) == 1 {
		controller = strings.ToUpper(names[0])
	}
	if interBroker != "" && interBroker == controller {
		bad("inter.broker.listener.name", "%s is also controller.listener.names: replication and the metadata quorum need a port each", interBroker)
	}

	var out []Listener
	seenAddr := map[string]string{}
	for _, e := range entries {
		l := Listener{Name: e.name, Addr: e.addr, Advertised: e.addr}
		if slices.ContainsFunc(out, func(o Listener) bool { return o.Name == e.name }) {
			bad("listeners", "names %s twice", e.name)
			continue
		}
		if _, port, _ := net.SplitHostPort(e.addr); port != "0" {
			if other, ok := seenAddr[e.addr]; ok {
				bad("listeners", "%s and %s both bind %s", other, e.name, e.addr)
			}
			seenAddr[e.addr] = e.name
		}
		l.Protocol = e.name
		if p, ok := protos[e.name]; ok {
			l.Protocol = p
		}
		if err := checkProtocol(l.Protocol); err != nil {
			if _, mapped := protos[e.name]; mapped || e.name == ProtocolSASLPlaintext {
				bad("listener.security.protocol.map", "listener %s: %v", e.name, err)
			} else {
				bad("listener.security.protocol.map", "listener %s has no security protocol: add %s:PROTOCOL (PLAINTEXT, SSL or SASL_SSL)", e.name, e.name)
			}
			continue
		}
		switch e.name {
		case interBroker:
			l.Role = RoleInterBroker
		case controller:
			l.Role = RoleController
		}
		for _, a := range adv {
			if a.name == e.name {
				l.Advertised = a.addr
			}
		}
		out = append(out, l)
	}
	for name, proto := range protos {
		if err := checkProtocol(proto); err != nil && !slices.ContainsFunc(entries, func(e listenerEntry) bool { return e.name == name }) {
			bad("listener.security.protocol.map", "%s:%s: %v", name, proto, err)
		}
	}
	for _, a := range adv {
		if !slices.ContainsFunc(entries, func(e listenerEntry) bool { return e.name == a.name }) {
			bad("advertised.listeners", "names %s, which is not in listeners", a.name)
			continue
		}
		if host, _, _ := net.SplitHostPort(a.addr); isWildcard(host) {
			bad("advertised.listeners", "%s://%s: clients cannot connect to a wildcard address; advertise a host name or an IP", a.name, a.addr)
		}
	}
	for _, role := range []struct {
		setting, name string
	}{{"inter.broker.listener.name", interBroker}, {"controller.listener.names", controller}} {
		if role.name == "" {
			continue
		}
		i := slices.IndexFunc(out, func(l Listener) bool { return l.Name == role.name })
		if i < 0 {
			if !slices.ContainsFunc(entries, func(e listenerEntry) bool { return e.name == role.name }) {
				bad(role.setting, "names %s, which is not in listeners", role.name)
			}
			continue
		}
		if out[i].Protocol != ProtocolPlaintext && out[i].Protocol != ProtocolSSL {
			bad("listener.security.protocol.map", "%s (%s) is %s; brokers authenticate each other with their certificates: use SSL (or PLAINTEXT)", role.name, role.setting, out[i].Protocol)
		}
		if out[i].Protocol == ProtocolSSL && c.clientAuth(out[i].Name) != "required" {
			bad("listener.name."+strings.ToLower(role.name)+".ssl.client.auth", "must be required: over SSL, brokers present their certificates both ways on the %s listener (%s)", role.name, role.setting)
		}
	}
	if interBroker != "" && c.Explicit["inter.broker.listener.port"] {
		if i := slices.IndexFunc(out, func(l Listener) bool { return l.Role == RoleInterBroker }); i >= 0 {
			if _, port, _ := net.SplitHostPort(out[i].Addr); port != strconv.Itoa(c.InterBrokerPort) {
				bad("inter.broker.listener.port", "is %d but inter.broker.listener.name %s binds %s: set one of them", c.InterBrokerPort, interBroker, out[i].Addr)
			}
		}
	}
	if len(errs) == 0 && !slices.ContainsFunc(out, func(l Listener) bool { return l.Role == RoleClient }) {
		bad("listeners", "%q has no client listener (every one is the inter-broker or controller listener)", c.ListenersSpec)
	}

	// SASL mechanisms go with SASL listeners, and a SASL listener needs one.
	for _, l := range out {
		key := "listener.name." + strings.ToLower(l.Name) + ".sasl.enabled.mechanisms"
		mechs := c.SASLMechanisms(l.Name)
		_, own := c.Configured(key)
		switch {
		case l.SASL() && len(mechs) == 0:
			bad(key, "is empty: the SASL_SSL listener %s needs a mechanism (SCRAM-SHA-512, SCRAM-SHA-256, OAUTHBEARER), here or in sasl.enabled.mechanisms", l.Name)
		case !l.SASL() && own:
			bad(key, "is set but %s is a %s listener, which carries no SASL: use SASL_SSL", l.Name, l.Protocol)
		}
		for _, m := range mechs {
			if !slices.Contains(saslMechanisms, m) {
				bad(key, "%q is not a mechanism this broker serves (%s)", m, strings.Join(saslMechanisms, ", "))
			}
		}
	}
	// TLS listeners need their key material; the settings are read by
	// package tlsconf, the one reader of ssl.*.
	for _, l := range out {
		if !l.TLS() {
			continue
		}
		if _, err := tlsconf.Load(c.Configured, l.Name); err != nil {
			problem := strings.TrimPrefix(err.Error(), "TLS settings of listener "+l.Name+": ")
			errs = append(errs, &SettingError{Name: "listener " + l.Name, Problem: "(" + l.Protocol + "): " + problem})
		}
	}
	return out, errs
}

// plaintextInClusterErrors refuses a plaintext replication or controller
// listener that other brokers dial when a client listener is SSL or
// SASL_SSL, unless tributary.allow.plaintext.inter.broker says so
// (finding 8 of docs/broker-security.md). A plaintext in-cluster listener
// authenticates nobody: anyone reaching 9093 reads every partition and,
// fetching as a follower, makes the leader acknowledge acks=all writes one
// broker holds; anyone reaching 9095 proposes metadata (ACLs, SCRAM
// credentials) or reads it. Kafka allows it, but an operator who made the
// client listeners secure expects no such back door. The listeners
// checked are the ones named as PLAINTEXT, and, in a cluster
// (controller.quorum.voters set), the plaintext ones the broker opens when
// none is named. A cluster of one with no in-cluster listener named binds
// them on loopback (cluster.LocalHost) on a port the kernel picks, dialed
// only by its own process.
func (c *Config) plaintextInClusterErrors(ls []Listener) []*SettingError {
	if c.AllowPlaintextInCluster {
		return nil
	}
	i := slices.IndexFunc(ls, func(l Listener) bool { return l.Role == RoleClient && l.TLS() })
	if i < 0 {
		return nil
	}
	secure := ls[i]
	const fix = "tributary.allow.plaintext.inter.broker=true"
	var errs []*SettingError
	for _, r := range []struct {
		role     ListenerRole
		setting  string
		what     string
		implicit string
		exposure string
	}{
		{RoleInterBroker, "inter.broker.listener.name", "replication", fmt.Sprintf("inter.broker.listener.port %d", c.InterBrokerPort),
			"anyone reaching it reads every partition and, fetching as a follower, makes leaders acknowledge acks=all writes one broker holds"},
		{RoleController, "controller.listener.names", "the metadata quorum", "its controller.quorum.voters port",
			"anyone reaching it proposes metadata (ACLs, SCRAM credentials, topics) and reads it"},
	} {
		j := slices.IndexFunc(ls, func(l Listener) bool { return l.Role == r.role })
		switch {
		case j >= 0 && ls[j].Protocol == ProtocolPlaintext:
			errs = append(errs, &SettingError{Name: "listener.security.protocol.map", Problem: fmt.Sprintf(
				"%s (%s, %s) is PLAINTEXT while the client listener %s is %s: it authenticates nobody, so %s; map %s to SSL (with listener.name.%s.ssl.client.auth=required), or set %s to accept it",
				ls[j].Name, r.setting, r.what, secure.Name, secure.Protocol, r.exposure, ls[j].Name, strings.ToLower(ls[j].Name), fix)})
		case j < 0 && c.ControllerQuorumVoters != "":
			errs = append(errs, &SettingError{Name: r.setting, Problem: fmt.Sprintf(
				"is not set, so %s listens in plaintext on %s while the client listener %s is %s: it authenticates nobody, so %s; name an SSL listener here (with ssl.client.auth=required), or set %s to accept it",
				r.what, r.implicit, secure.Name, secure.Protocol, r.exposure, fix)})
		}
	}
	return errs
}

// isWildcard reports an unspecified listen host ("", 0.0.0.0, ::).
func isWildcard(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// ClientHost is the host of the first client listener's advertised address,
// the broker's address as peers know it; an unspecified host is replaced by
// this machine's host name, as Kafka does.
func (c *Config) ClientHost() (string, error) {
	ls := c.ClientListeners()
	if len(ls) == 0 {
		return "", fmt.Errorf("no client listener")
	}
	host, _, err := AdvertisedHostPort(ls[0])
	return host, err
}

// AdvertisedHostPort is the address given to clients for a listener: its
// advertised address, an unspecified host ("", "0.0.0.0") being replaced by
// this machine's host name, as Kafka does, because clients cannot connect
// to a wildcard.
func AdvertisedHostPort(l Listener) (string, int32, error) {
	host, port, err := splitHostPort(l.Advertised)
	if err != nil {
		return "", 0, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if isWildcard(host) {
		name, err := os.Hostname()
		if err != nil {
			return "", 0, fmt.Errorf("advertised address: listener %s (%s) has no host and the host name is unknown: %w", l.Name, l.Advertised, err)
		}
		host = name
	}
	return host, port, nil
}

// WithBoundPorts returns a copy of c in which every listener that binds
// port 0 carries the port it was given (ports, by listener name), in
// listeners and, where its entry has port 0, advertised.listeners: what a
// broker registers and advertises must be where it really listens.
func (c *Config) WithBoundPorts(ports map[string]int) (*Config, error) {
	out := c.Clone()
	rewrite := func(spec string) (string, error) {
		entries, err := parseListeners(spec)
		if err != nil {
			return "", err
		}
		parts := make([]string, len(entries))
		for i, e := range entries {
			host, port, _ := net.SplitHostPort(e.addr)
			if p, ok := ports[e.name]; ok && port == "0" {
				port = strconv.Itoa(p)
			}
			parts[i] = e.name + "://" + net.JoinHostPort(host, port)
		}
		return strings.Join(parts, ","), nil
	}
	var err error
	if out.ListenersSpec, err = rewrite(c.ListenersSpec); err != nil {
		return nil, fmt.Errorf("listeners: %w", err)
	}
	if c.AdvertisedListeners != "" {
		if out.AdvertisedListeners, err = rewrite(c.AdvertisedListeners); err != nil {
			return nil, fmt.Errorf("advertised.listeners: %w", err)
		}
	}
	return out, nil
}
