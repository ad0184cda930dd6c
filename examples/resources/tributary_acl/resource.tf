# The payments service (a SCRAM user, or a client certificate's subject)
# writes to every topic whose name starts with "payments.".
resource "tributary_acl" "payments_write" {
  cluster_id    = tributary_cluster.orders.cluster_id
  resource_type = "TOPIC"
  resource_name = "payments."
  pattern_type  = "PREFIXED"
  principal     = "User:payments"
  operation     = "WRITE"
}

# Its consumers read with their own group.
resource "tributary_acl" "payments_group" {
  cluster_id    = tributary_cluster.orders.cluster_id
  resource_type = "GROUP"
  resource_name = "payments-audit"
  principal     = "User:payments-audit"
  operation     = "READ"
}

# Nobody but super users deletes the ledger topic.
resource "tributary_acl" "ledger_no_delete" {
  cluster_id    = tributary_cluster.orders.cluster_id
  resource_type = "TOPIC"
  resource_name = "payments.ledger"
  principal     = "User:*"
  operation     = "DELETE"
  permission    = "DENY"
}
