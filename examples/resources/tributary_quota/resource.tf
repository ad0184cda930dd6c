# Every client without a quota of its own may produce 10 MiB/s and fetch
# 20 MiB/s on each broker.
resource "tributary_quota" "defaults" {
  cluster_id         = tributary_cluster.orders.cluster_id
  client_id          = "<default>"
  producer_byte_rate = 10485760
  consumer_byte_rate = 20971520
}

# The batch importer (SCRAM user "importer") gets less, whatever client id
# it uses, and at most half of one request-handling thread.
resource "tributary_quota" "importer" {
  cluster_id         = tributary_cluster.orders.cluster_id
  user               = "importer"
  producer_byte_rate = 2097152
  request_percentage = 50
}

# A client that reconnects in a loop is slowed down: 20 new connections a
# second from any one address.
resource "tributary_quota" "connections" {
  cluster_id               = tributary_cluster.orders.cluster_id
  ip                       = "<default>"
  connection_creation_rate = 20
}
