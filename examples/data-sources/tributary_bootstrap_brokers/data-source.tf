data "tributary_bootstrap_brokers" "orders" {
  cluster_id = "tc-0123456789abcdef"
}

# Each string lists the brokers of one listener, and is empty when the
# cluster does not serve it (plaintext is off by default, as on MSK).
output "bootstrap_brokers_tls" {
  value = data.tributary_bootstrap_brokers.orders.bootstrap_brokers_tls
}
