data "tributary_cluster" "orders" {
  name = "orders"
}

output "orders_bootstrap_brokers_tls" {
  value = data.tributary_cluster.orders.bootstrap_brokers_tls
}
