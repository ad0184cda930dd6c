data "tributary_cluster" "orders" {
  name = "orders"
}

output "orders_bootstrap_brokers" {
  value = data.tributary_cluster.orders.bootstrap_brokers
}
