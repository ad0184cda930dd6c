# The password comes from an ephemeral variable (TF_VAR_alice_password),
# so it is in neither the plan nor the state.
variable "alice_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

resource "tributary_scram_user" "alice" {
  cluster_id          = tributary_cluster.orders.cluster_id
  name                = "alice"
  password_wo         = var.alice_password
  password_wo_version = 1 # bump to apply a new password
}

# What alice may do: write the orders topic.
resource "tributary_acl" "alice_orders" {
  cluster_id    = tributary_cluster.orders.cluster_id
  resource_type = "TOPIC"
  resource_name = "orders"
  principal     = "User:${tributary_scram_user.alice.name}"
  operation     = "WRITE"
}
