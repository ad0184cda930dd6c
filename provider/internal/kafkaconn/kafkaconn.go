// Package kafkaconn is how the provider reaches a cluster's brokers through
// the Kafka protocol: the brokers' addresses and the client options
// (listener, and the TLS and SASL settings of an authenticated one) of every
// Kafka client the provider makes. The cluster's health checks, its dynamic
// broker settings and the topic resource and data sources all get their
// clients from a Conn, so how the provider connects and authenticates to a
// cluster is decided in one place.
package kafkaconn

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is one broker's Kafka address.
type Broker struct {
	NodeID int32
	Addr   string // host:port of the listener the provider uses
	// Listener and Opts, when Listener is set, say how to reach this
	// broker instead of the Conn's own options: while a roll changes the
	// listeners, a broker still on its old launch serves other listeners
	// (and authorizes other principals) than one already replaced.
	Listener string
	Opts     []kgo.Opt
}

// Conn reaches one cluster's brokers.
type Conn struct {
	ClusterID string
	Brokers   []Broker
	// opts say how to connect: TLS, SASL.
	opts []kgo.Opt
	// listener names the listener of opts ("" when unnamed).
	listener string
}

// New returns a Conn to the brokers of a cluster; opts add to the client
// options every client gets (TLS and SASL for an authenticated listener).
func New(clusterID string, brokers []Broker, opts ...kgo.Opt) *Conn {
	sorted := slices.Clone(brokers)
	slices.SortFunc(sorted, func(a, b Broker) int { return int(a.NodeID - b.NodeID) })
	return &Conn{ClusterID: clusterID, Brokers: sorted, opts: opts}
}

// WithListener names the listener of the Conn's own options, so that a
// broker reached through the same listener (Broker.Listener) is seeded
// with the others.
func (c *Conn) WithListener(name string) *Conn {
	c.listener = name
	return c
}

// SetBroker replaces how a broker is reached (matched by node id), for a
// broker whose listeners changed under a Conn in use: a roll replaced it.
// A broker the Conn does not know is added.
func (c *Conn) SetBroker(b Broker) {
	for i := range c.Brokers {
		if c.Brokers[i].NodeID == b.NodeID {
			c.Brokers[i] = b
			return
		}
	}
	c.Brokers = append(c.Brokers, b)
	slices.SortFunc(c.Brokers, func(a, b Broker) int { return int(a.NodeID - b.NodeID) })
}

// listenerOf is the listener a broker is reached through.
func (c *Conn) listenerOf(b Broker) string {
	if b.Listener == "" {
		return c.listener
	}
	return b.Listener
}

// SameListener lists the node ids of the brokers reached through the same
// listener as the broker at addr (itself included). A broker lists in its
// metadata only the brokers serving the listener it was asked on: these
// are the ones it must list, which are all the brokers unless a roll is
// changing the listeners.
func (c *Conn) SameListener(addr string) []int32 {
	listener, found := "", false
	for _, b := range c.Brokers {
		if b.Addr == addr {
			listener, found = c.listenerOf(b), true
			break
		}
	}
	var out []int32
	for _, b := range c.Brokers {
		if !found || c.listenerOf(b) == listener {
			out = append(out, b.NodeID)
		}
	}
	return out
}

// optsFor are the client options of the broker at addr: its own, else the
// Conn's.
func (c *Conn) optsFor(addr string) []kgo.Opt {
	for _, b := range c.Brokers {
		if b.Addr == addr && b.Listener != "" {
			return b.Opts
		}
	}
	return c.opts
}

// defaultSeeds are the brokers a client of the whole cluster starts from:
// those reached through the Conn's own listener, else those reached like
// the first broker. One client speaks one listener, and a broker lists in
// its metadata only the brokers that serve the listener it was asked on,
// so seeds of two listeners would give the client two partial clusters.
func (c *Conn) defaultSeeds() []string {
	pick := func(listener string) []string {
		var out []string
		for _, b := range c.Brokers {
			if c.listenerOf(b) == listener {
				out = append(out, b.Addr)
			}
		}
		return out
	}
	if seeds := pick(c.listener); len(seeds) > 0 {
		return seeds
	}
	if len(c.Brokers) == 0 {
		return nil
	}
	return pick(c.listenerOf(c.Brokers[0]))
}

// Bootstrap lists every broker's address, in node-id order.
func (c *Conn) Bootstrap() []string {
	out := make([]string, 0, len(c.Brokers))
	for _, b := range c.Brokers {
		out = append(out, b.Addr)
	}
	return out
}

// NodeIDs lists the brokers' node ids, in order.
func (c *Conn) NodeIDs() []int32 {
	out := make([]int32, 0, len(c.Brokers))
	for _, b := range c.Brokers {
		out = append(out, b.NodeID)
	}
	return out
}

// Broker returns the broker with a node id.
func (c *Conn) Broker(nodeID int32) (Broker, bool) {
	for _, b := range c.Brokers {
		if b.NodeID == nodeID {
			return b, true
		}
	}
	return Broker{}, false
}

// Client returns a franz-go client seeded with seeds, or with every broker
// reached through one listener (defaultSeeds) when none are given, with the
// options of the first seed's broker. Short timeouts: the provider polls,
// and a broker that does not answer in seconds is reported, not waited for.
// The caller closes it.
func (c *Conn) Client(seeds ...string) (*kgo.Client, error) {
	if len(seeds) == 0 {
		seeds = c.defaultSeeds()
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("cluster %s has no brokers to connect to", c.ClusterID)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(3 * time.Second),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(5 * time.Second),
		kgo.MetadataMinAge(250 * time.Millisecond),
	}, c.optsFor(seeds[0])...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("making a Kafka client for cluster %s: %w", c.ClusterID, err)
	}
	return cl, nil
}

// Admin returns an admin client of the whole cluster; closing it closes
// its connections.
func (c *Conn) Admin() (*kadm.Client, error) {
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// ErrMessage is a broker's error message for appending to an error after
// its code: ": message", or nothing when the broker sent none.
func ErrMessage(m *string) string {
	if m == nil || *m == "" {
		return ""
	}
	return ": " + *m
}
