# A service that writes orders-* topics and reads payments in the billing-*
# consumer groups, through IAM authentication (client_authentication.sasl.iam).
data "tributary_iam_policy_document" "billing" {
  cluster_arn     = tributary_cluster.orders.arn
  write_topics    = ["orders-*"]
  read_topics     = ["payments"]
  consumer_groups = ["billing-*"]
}

resource "aws_iam_role_policy" "billing_kafka" {
  role   = aws_iam_role.billing.id
  policy = data.tributary_iam_policy_document.billing.json
}
