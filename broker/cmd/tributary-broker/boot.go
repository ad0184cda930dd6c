package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tributary/tributary/broker/boot"
)

// bootMain is `tributary-broker boot`: the boot agent (package broker/boot).
// On success it does not return: the process becomes `tributary-broker run`.
func bootMain(args []string) int {
	// SIGTERM while booting (systemd stop, instance shutdown) cancels the
	// waits instead of killing the agent between two steps.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := boot.Main(ctx, args); err != nil {
		fmt.Fprintf(os.Stderr, "tributary-broker boot: %v\n", err)
		return 1
	}
	return 0
}

// volumeWatchMain is `tributary-broker volume-watch`: the data volume's
// companion (boot.Watch), which runs until SIGTERM.
func volumeWatchMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := boot.WatchMain(ctx, args, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "tributary-broker volume-watch: %v\n", err)
		return 1
	}
	return 0
}

// certWatchMain is `tributary-broker cert-watch`: the certificate companion
// (boot.CertWatch), which the boot agent starts and runs until SIGTERM or
// the broker's end.
func certWatchMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := boot.CertWatchMain(ctx, args, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "tributary-broker cert-watch: %v\n", err)
		return 1
	}
	return 0
}
