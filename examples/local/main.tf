# A three-AZ Tributary cluster in the local cloud (`make demo`).
#
# The provider talks to the local cloud on 127.0.0.1:4566 as it would talk to
# AWS; the local cloud runs each broker as a real process on its own loopback
# address. `make demo` starts the local cloud, registers the broker image and
# runs Terraform with a dev override that points at ./bin.

terraform {
  required_providers {
    tributary = {
      source = "tributary/tributary"
    }
  }
}

variable "endpoint" {
  description = "The local cloud's endpoint."
  type        = string
  default     = "http://127.0.0.1:4566"
}

variable "broker_version" {
  description = "Version of the registered broker image."
  type        = string
  default     = "dev"
}

variable "instance_type" {
  description = "Instance type; its architecture must match the registered image (make demo picks this machine's)."
  type        = string
  default     = "m5.large"
}

variable "logs_delivery_stream" {
  description = "A Firehose delivery stream the brokers also send their logs to (make demo makes one); null: none."
  type        = string
  default     = null
}

provider "tributary" {
  region     = "us-east-1"
  access_key = "test"
  secret_key = "test"

  endpoints {
    ec2            = var.endpoint
    kms            = var.endpoint
    iam            = var.endpoint
    sts            = var.endpoint
    cloudwatch     = var.endpoint
    autoscaling    = var.endpoint
    secretsmanager = var.endpoint
    acmpca         = var.endpoint
    s3             = var.endpoint
    firehose       = var.endpoint
  }

  skip_metadata_api_check = true

  default_tags {
    tags = {
      environment = "demo"
    }
  }
}

resource "tributary_cluster" "demo" {
  name           = "demo"
  broker_version = var.broker_version
  instance_type  = var.instance_type

  # Omitted subnet_ids: the default VPC's subnets, one per AZ.
  client_cidr_blocks = ["127.0.0.0/8"]

  # Omitted encryption_in_transit: TLS to clients and between brokers, as
  # with MSK's default; clients trust certificate_authority_pem.

  # Clients authenticate with their AWS IAM identity (SASL/OAUTHBEARER on
  # port 9098) and are authorized by their IAM policies' kafka-cluster:*
  # actions, as with MSK's IAM access control; no unauthenticated access.
  # The provider reaches the brokers with its own IAM identity. The local
  # cloud's test/test credentials are the account's root user, which IAM
  # allows every action of its own account.
  client_authentication {
    unauthenticated = false
    sasl {
      iam = true
    }
  }

  storage {
    volume_size = 10
  }

  # Each broker ships its log to the stream broker-<id> and its audit trail
  # to broker-<id>/audit of this group (created when missing).
  # With logs_delivery_stream, each broker also sends every log line as a
  # record to that Firehose delivery stream, which must exist.
  logging {
    cloudwatch_logs {
      enabled   = true
      log_group = "tributary/demo"
    }
    firehose {
      enabled         = var.logs_delivery_stream != null
      delivery_stream = var.logs_delivery_stream
    }
  }

  # CloudWatch alarms on the brokers' metrics (offline partitions,
  # under-min-ISR, active controller, data disk) and a dashboard. Add
  # sns_topic_arns to be notified.
  monitoring {
    alarms {}
  }

  broker_config = {
    "auto.create.topics.enable" = "true"
    "num.partitions"            = "3"
  }
}

# Created in the same apply as the cluster: the topic finds the brokers from
# the cluster id. One copy in each of the three AZs.
resource "tributary_topic" "demo" {
  cluster_id         = tributary_cluster.demo.cluster_id
  name               = "demo"
  partitions         = 3
  replication_factor = 3

  config = {
    "retention.ms" = "86400000"
  }
}

output "bootstrap_brokers_sasl_iam" {
  value = tributary_cluster.demo.bootstrap_brokers_sasl_iam
}

output "certificate_authority_pem" {
  value = tributary_cluster.demo.certificate_authority_pem
}

output "cluster_id" {
  value = tributary_cluster.demo.cluster_id
}

output "topic" {
  value = tributary_topic.demo.name
}

# What this cluster would cost a month on AWS, and what Amazon MSK charges for
# the same brokers and storage (list prices; docs/cost.md).
output "estimated_monthly_cost_usd" {
  value = tributary_cluster.demo.estimated_monthly_cost_usd
}

output "msk_equivalent_monthly_cost_usd" {
  value = tributary_cluster.demo.msk_equivalent_monthly_cost_usd
}

output "broker_nodes" {
  value = tributary_cluster.demo.broker_nodes
}
