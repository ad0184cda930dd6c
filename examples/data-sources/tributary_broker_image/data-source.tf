data "tributary_broker_image" "current" {
  version      = "0.1.0"
  architecture = "arm64"
}

output "broker_ami" {
  value = data.tributary_broker_image.current.id
}
