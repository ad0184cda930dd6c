# Credentials and region come from the AWS SDK's default chain (environment,
# shared config profile, instance role), as with the AWS provider.
provider "tributary" {
  region = "us-east-1"

  default_tags {
    tags = {
      team = "streaming"
    }
  }
}

# Against LocalStack or Tributary's local cloud: point every service at the
# emulator and skip the checks that need real AWS.
provider "tributary" {
  alias      = "local"
  region     = "us-east-1"
  access_key = "test"
  secret_key = "test"

  endpoints {
    ec2            = "http://127.0.0.1:4566"
    kms            = "http://127.0.0.1:4566"
    iam            = "http://127.0.0.1:4566"
    sts            = "http://127.0.0.1:4566"
    cloudwatch     = "http://127.0.0.1:4566"
    autoscaling    = "http://127.0.0.1:4566"
    secretsmanager = "http://127.0.0.1:4566"
    acmpca         = "http://127.0.0.1:4566"
    s3             = "http://127.0.0.1:4566"
    firehose       = "http://127.0.0.1:4566"
  }

  skip_metadata_api_check = true
}
