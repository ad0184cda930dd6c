package cluster_test

import (
	"github.com/tributary/tributary/broker/cluster"
	"github.com/tributary/tributary/broker/server"
)

// MetadataStore must stay a drop-in for the server's Metadata interface;
// this fails to compile when the two drift apart.
var _ server.Metadata = (*cluster.MetadataStore)(nil)
