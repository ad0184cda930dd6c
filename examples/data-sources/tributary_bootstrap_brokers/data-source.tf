data "tributary_bootstrap_brokers" "orders" {
  cluster_id = "tc-0123456789abcdef"
}

output "bootstrap_brokers" {
  value = data.tributary_bootstrap_brokers.orders.bootstrap_brokers
}
