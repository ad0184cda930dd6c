resource "tributary_cluster" "orders" {
  name           = "orders"
  broker_version = "0.1.0"
  instance_type  = "m7g.large"
  brokers_per_az = 1

  # One subnet in each of three Availability Zones.
  subnet_ids         = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
  client_cidr_blocks = ["10.0.0.0/16"]

  storage {
    volume_size = 500
    volume_type = "gp3"
    throughput  = 250
  }

  # Unset settings take Amazon MSK's defaults: default.replication.factor = 3,
  # min.insync.replicas = 2, auto.create.topics.enable = false.
  broker_config = {
    "log.retention.ms" = "259200000" # dynamic: changed on the running brokers
    "num.partitions"   = "6"         # static: a change rolls the brokers
  }

  tags = {
    service = "orders"
  }
}

# Omitted encryption_in_transit and client_authentication: clients connect
# with TLS (port 9094), trusting certificate_authority_pem, as with MSK's
# defaults; bootstrap_brokers (plaintext) stays empty.
output "bootstrap_brokers_tls" {
  value = tributary_cluster.orders.bootstrap_brokers_tls
}
