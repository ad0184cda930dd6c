# Example variables for `packer build -var-file=packer/example.pkrvars.hcl packer/`.
# Copy it, adjust, and keep your copy out of version control if it names
# account-specific resources.

region         = "us-east-1"
architecture   = "arm64" # or "x86_64"
instance_type  = "t4g.small"
broker_version = "0.1.0"
# Built with: GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -trimpath \
#   -ldflags "-X main.version=0.1.0" -o bin/tributary-broker-linux-arm64 ./broker/cmd/tributary-broker
binary_path = "bin/tributary-broker-linux-arm64"

# Optional:
# kms_key_id       = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# subnet_id        = "subnet-0123456789abcdef0"
# ami_regions      = ["eu-west-1"]
# ami_users        = ["210987654321"]
# force_deregister = false
# require_imdsv2   = true
