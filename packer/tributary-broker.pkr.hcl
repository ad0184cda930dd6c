# The Tributary broker image: a minimal Debian 12 AMI with the broker binary,
# its boot agent under a hardened systemd unit, and the kernel settings a
# broker wants. See docs/broker-image.md.
#
# Build:  packer build -var-file=packer/example.pkrvars.hcl packer/
#
# The template is kept valid for Packer 1.6.6 (Debian's package, which CI
# uses to validate it). Packer 1.7+ loads the Amazon builder as a plugin; add
# this block at the top of the file there (docs/broker-image.md):
#
#   packer {
#     required_plugins {
#       amazon = {
#         source  = "github.com/hashicorp/amazon"
#         version = ">= 1.3.0"
#       }
#     }
#   }

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "AWS region the image is built (and registered) in."
}

variable "architecture" {
  type        = string
  default     = "arm64"
  description = "CPU architecture of the image: x86_64 or arm64 (Graviton)."

  validation {
    condition     = var.architecture == "x86_64" || var.architecture == "arm64"
    error_message = "The architecture must be x86_64 or arm64."
  }
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "Instance type of the temporary build instance; empty picks t4g.small (arm64) or t3.small (x86_64)."
}

variable "broker_version" {
  type        = string
  description = "Version of the broker binary (what `tributary-broker version` prints); names and tags the AMI."
}

variable "binary_path" {
  type        = string
  description = "Path of the tributary-broker binary built for linux/<architecture> (GOARCH amd64 or arm64)."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted root volume and AMI snapshot; empty uses the account's aws/ebs key."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (it needs outbound access to the Debian mirrors); empty uses the default VPC."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Other regions to copy the AMI to (publishing)."
}

variable "ami_users" {
  type        = list(string)
  default     = []
  description = "AWS account ids allowed to launch the AMI (publishing to other accounts)."
}

variable "force_deregister" {
  type        = bool
  default     = false
  description = "Replace an existing AMI of the same name (rebuilding a version). Running instances are not affected."
}

variable "require_imdsv2" {
  type        = bool
  default     = true
  description = "Mark the AMI IMDSv2-only (ImdsSupport v2.0) after the build, with the AWS CLI (see scripts/require-imdsv2.sh)."
}

locals {
  # Debian's official images: owner 136693071363, names debian-12-<arm64|amd64>-<date>-<build>.
  debian_arch   = var.architecture == "arm64" ? "arm64" : "amd64"
  instance_type = var.instance_type != "" ? var.instance_type : (var.architecture == "arm64" ? "t4g.small" : "t3.small")
  ami_name      = "tributary-broker-${var.broker_version}-${var.architecture}"
  tags = {
    "Name"                 = local.ami_name
    "tributary:version"    = var.broker_version
    "tributary:component"  = "broker"
    "tributary:arch"       = var.architecture
    "tributary:base-image" = "debian-12"
  }
}

source "amazon-ebs" "broker" {
  region        = var.region
  instance_type = local.instance_type
  subnet_id     = var.subnet_id
  ssh_username  = "admin"

  source_ami_filter {
    filters = {
      name                = "debian-12-${local.debian_arch}-*"
      architecture        = var.architecture
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["136693071363"]
    most_recent = true
  }

  ami_name         = local.ami_name
  ami_description  = "Tributary broker ${var.broker_version} (${var.architecture}) on Debian 12"
  ami_regions      = var.ami_regions
  ami_users        = var.ami_users
  force_deregister = var.force_deregister
  ena_support      = true

  # Encrypted root volume and AMI snapshots.
  encrypt_boot = true
  kms_key_id   = var.kms_key_id
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = 8
    volume_type           = "gp3"
    iops                  = 3000 # gp3's baseline, stated because Packer 1.6.6 insists
    throughput            = 125
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = merge(local.tags, { "Name" = "packer-${local.ami_name}" })
}

build {
  sources = ["source.amazon-ebs.broker"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/tributary-files"]
  }

  provisioner "file" {
    source      = var.binary_path
    destination = "/tmp/tributary-broker"
  }

  provisioner "file" {
    source      = "${path.root}/files/"
    destination = "/tmp/tributary-files"
  }

  provisioner "file" {
    source      = "${path.root}/../docs/broker-image.md"
    destination = "/tmp/tributary-files/broker-image.md"
  }

  provisioner "shell" {
    script           = "${path.root}/scripts/install.sh"
    environment_vars = ["BROKER_VERSION=${var.broker_version}", "FILES=/tmp/tributary-files"]
    execute_command  = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
  }

  post-processors {
    post-processor "manifest" {
      output     = "${path.root}/packer-manifest.json"
      strip_path = true
    }
    post-processor "shell-local" {
      script           = "${path.root}/scripts/require-imdsv2.sh"
      environment_vars = ["REQUIRE_IMDSV2=${var.require_imdsv2}", "MANIFEST=${path.root}/packer-manifest.json"]
    }
  }
}
