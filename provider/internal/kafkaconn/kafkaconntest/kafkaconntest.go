// Package kafkaconntest gives the tests of the provider's Kafka packages a
// cluster to talk to: franz-go's kfake, reached through a kafkaconn.Conn
// as the provider reaches a real cluster. It is imported by tests only.
package kafkaconntest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// Kfake starts a kfake cluster of n brokers (node ids 0 to n-1), closed
// when the test ends, and returns it with a Conn to all of them.
func Kfake(t testing.TB, n int, opts ...kfake.Opt) (*kfake.Cluster, *kafkaconn.Conn) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(n)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var brokers []kafkaconn.Broker
	for i, addr := range c.ListenAddrs() {
		brokers = append(brokers, kafkaconn.Broker{NodeID: int32(i), Addr: addr})
	}
	return c, kafkaconn.New("test", brokers)
}
