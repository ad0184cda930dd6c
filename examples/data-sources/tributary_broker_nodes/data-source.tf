data "tributary_broker_nodes" "orders" {
  cluster_id = "tc-0123456789abcdef"
}

# One DNS record per broker, stable across broker replacements.
output "broker_ips" {
  value = { for n in data.tributary_broker_nodes.orders.node_info_list : n.node_id => n.private_ip }
}
