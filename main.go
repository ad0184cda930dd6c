// Command terraform-provider-tributary serves the Tributary Terraform provider.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/tributary/tributary/provider"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// providerAddress is the registry address Terraform uses for this provider.
const providerAddress = "registry.terraform.io/tributary/tributary"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         providerAddress,
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
