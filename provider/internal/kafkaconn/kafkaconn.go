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
}

// Conn reaches one cluster's brokers.
type Conn struct {
	ClusterID string
	Brokers   []Broker
	// opts say how to connect: TLS, SASL.
	opts []kgo.Opt
}

// New returns a Conn to the brokers of a cluster; opts add to the client
// options every client gets (TLS and SASL for an authenticated listener).
func New(clusterID string, brokers []Broker, opts ...kgo.Opt) *Conn {
	sorted := slices.Clone(brokers)
	slices.SortFunc(sorted, func(a, b Broker) int { return int(a.NodeID - b.NodeID) })
	return &Conn{ClusterID: clusterID, Brokers: sorted, opts: opts}
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
// when none are given. Short timeouts: the provider polls, and a broker
// that does not answer in seconds is reported, not waited for. The caller
// closes it.
func (c *Conn) Client(seeds ...string) (*kgo.Client, error) {
	if len(seeds) == 0 {
		seeds = c.Bootstrap()
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
	}, c.opts...)
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
