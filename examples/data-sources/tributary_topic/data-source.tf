data "tributary_topic" "orders" {
  cluster_id = "tc-0123456789abcdef"
  name       = "orders"
}

output "orders_retention_ms" {
  # The value in force, set on the topic or inherited from the brokers.
  value = data.tributary_topic.orders.effective_config["retention.ms"]
}
