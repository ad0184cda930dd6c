// Command tributary-broker is the Tributary broker: a Kafka-wire-compatible
// broker (`run`) and the boot agent that starts it on an instance (`boot`).
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version":
		fmt.Println(version)
	default:
		fmt.Fprintf(os.Stderr, "tributary-broker: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tributary-broker <command>\n\ncommands:\n  version   print the version")
}
