package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkacheck"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// errNoBrokers says a cluster id names no brokers in this account and
// region: the cluster was deleted, or never existed.
var errNoBrokers = errors.New("no brokers")

// kafkaConn returns how to reach the brokers of a cluster through Kafka,
// knowing only its id: the brokers come from the tags of their network
// interfaces (the lookup the cluster resource's Observe starts with), so a
// topic needs no connection settings and works in the same apply that
// creates its cluster. errNoBrokers when the cluster has none.
func (d *providerData) kafkaConn(ctx context.Context, clusterID string) (*kafkaconn.Conn, error) {
	f := &fleet.Fleet{EC2: d.aws.EC2}
	brokers, err := f.FindBrokers(ctx, clusterID)
	if err != nil {
		return nil, fmt.Errorf("finding the brokers of cluster %s: %w", clusterID, err)
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("cluster %s: %w in this account and region (tagged %s=%s)", clusterID, errNoBrokers, fleet.TagClusterID, clusterID)
	}
	return d.kafkaConnTo(clusterID, brokers), nil
}

// kafkaConnTo is the one place that decides how the provider connects to a
// cluster's brokers, for the cluster resource (which has just observed its
// brokers) and for everything that knows only the cluster id (kafkaConn):
// the plaintext listener of each broker's private address. An
// authenticated listener (TLS, SASL/SCRAM, IAM) and the provider's
// credentials for it are chosen here.
func (d *providerData) kafkaConnTo(clusterID string, brokers []fleet.Broker) *kafkaconn.Conn {
	kb := make([]kafkaconn.Broker, 0, len(brokers))
	for _, b := range brokers {
		kb = append(kb, kafkaconn.Broker{NodeID: b.NodeID, Addr: endpoint(b.PrivateIP, plaintextPort)})
	}
	return kafkaconn.New(clusterID, kb)
}

// checker returns the Kafka health checks of a cluster's brokers, logging
// their progress to Terraform's log.
func (d *providerData) checker(clusterID string, brokers []fleet.Broker) *kafkacheck.Checker {
	return &kafkacheck.Checker{
		Conn: d.kafkaConnTo(clusterID, brokers),
		Log:  func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}
}
