# The cluster and its topics in one configuration and one apply: the topic
# finds the brokers from the cluster id, with no connection settings.
resource "tributary_cluster" "orders" {
  name               = "orders"
  broker_version     = "0.1.0"
  instance_type      = "m7g.large"
  subnet_ids         = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
  client_cidr_blocks = ["10.0.0.0/16"]
}

resource "tributary_topic" "orders" {
  cluster_id         = tributary_cluster.orders.cluster_id
  name               = "orders"
  partitions         = 12 # may grow later, never shrink
  replication_factor = 3  # one copy in each Availability Zone

  # Only what differs from the brokers' settings; removing a key restores them.
  config = {
    "retention.ms"        = "604800000"
    "min.insync.replicas" = "2"
  }
}

resource "tributary_topic" "customers" {
  cluster_id         = tributary_cluster.orders.cluster_id
  name               = "customers"
  partitions         = 6
  replication_factor = 3

  config = {
    "cleanup.policy" = "compact"
  }

  timeouts {
    update = "2h" # a replication factor change copies every partition
  }
}
