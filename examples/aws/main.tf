# A three-AZ Tributary cluster on real AWS, in its own VPC, with a KMS key
# managed by the AWS provider.
#
#   make ami                      # build and register the broker image
#   terraform init && terraform apply -var broker_version=0.1.0
#
# The provider checks Kafka readiness by connecting to the brokers' private
# addresses: run Terraform from inside the VPC (a bastion, CI runner or VPN)
# for that check and for gated rolling upgrades; from outside, it warns and
# trusts EC2 alone.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
    tributary = {
      source = "tributary/tributary"
    }
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "broker_version" {
  type        = string
  description = "Version of the broker AMI built by `make ami`."
}

variable "client_cidr" {
  type        = string
  description = "Who may connect to the brokers."
  default     = "10.42.0.0/16"
}

provider "aws" {
  region = var.region
}

provider "tributary" {
  region = var.region

  default_tags {
    tags = {
      project = "tributary-example"
    }
  }
}

data "aws_availability_zones" "available" {
  state = "available"
}

resource "aws_vpc" "kafka" {
  cidr_block           = "10.42.0.0/16"
  enable_dns_hostnames = true
  tags = {
    Name = "tributary-example"
  }
}

resource "aws_subnet" "brokers" {
  count             = 3
  vpc_id            = aws_vpc.kafka.id
  availability_zone = data.aws_availability_zones.available.names[count.index]
  cidr_block        = cidrsubnet(aws_vpc.kafka.cidr_block, 8, count.index)
  tags = {
    Name = "tributary-example-${count.index}"
  }
}

resource "aws_kms_key" "kafka" {
  description         = "Tributary example: broker volumes and secrets"
  enable_key_rotation = true
}

resource "tributary_cluster" "example" {
  name           = "example"
  broker_version = var.broker_version
  instance_type  = "m7g.large"
  brokers_per_az = 1

  subnet_ids         = aws_subnet.brokers[*].id
  client_cidr_blocks = [var.client_cidr]

  storage {
    volume_size = 100
    volume_type = "gp3"
    kms_key_arn = aws_kms_key.kafka.arn
  }

  # Unset broker_config settings take Amazon MSK's defaults:
  # default.replication.factor = 3, min.insync.replicas = 2,
  # auto.create.topics.enable = false.
  broker_config = {
    "num.partitions" = "6"
  }

  timeouts {
    create = "30m"
    update = "2h"
  }
}

# TLS to clients (MSK's default; plaintext bootstrap_brokers stays empty):
# clients trust certificate_authority_pem.
output "bootstrap_brokers_tls" {
  value = tributary_cluster.example.bootstrap_brokers_tls
}

output "certificate_authority_pem" {
  value = tributary_cluster.example.certificate_authority_pem
}

output "broker_nodes" {
  value = tributary_cluster.example.broker_nodes
}
