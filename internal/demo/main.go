// Command demo drives `make demo` and `make demo-down`: a three-AZ Tributary
// cluster and a topic in the local cloud, built by Terraform in one apply with
// the provider from ./bin, then 1,000 records produced to the topic and
// consumed through the cluster's IAM bootstrap brokers (TLS and an IAM
// token of the local cloud's test credentials), and read once more with the
// kcat command it prints.
//
//	go run ./internal/demo up     # start the local cloud, apply examples/local, produce and consume
//	go run ./internal/demo down   # destroy the cluster and stop the local cloud
//
// It runs from the repository root after `make build`. Everything it keeps
// (the local cloud's state, its pid file and log, the Terraform working copy
// and state, the CLI config with the dev override) lives in .cache/demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: demo up|down")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDemo()
	if err == nil {
		if os.Args[1] == "up" {
			err = d.up(ctx)
		} else {
			err = d.down(ctx)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// Fixed places and settings of the demo.
const (
	listenAddr    = "127.0.0.1:4566"
	endpoint      = "http://" + listenAddr
	brokerVersion = "dev"
	topic         = "demo"
	records       = 1000
	providerAddr  = "registry.terraform.io/tributary/tributary"
	// The local cloud's region and test credentials (examples/local's
	// provider block): the account's root user.
	region    = "us-east-1"
	accessKey = "test"
	secretKey = "test"
)

type demo struct {
	root     string // repository root
	cache    string // .cache/demo
	bin      string
	tfDir    string // working copy of examples/local
	cloudDir string
	pidFile  string
	cloudLog string
	tfLog    string
	cliRC    string
	log      *slog.Logger
}

func newDemo() (*demo, error) {
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "examples", "local", "main.tf")); err != nil {
		return nil, errors.New("run the demo from the repository root (examples/local/main.tf not found)")
	}
	cache := filepath.Join(root, ".cache", "demo")
	return &demo{
		root:     root,
		cache:    cache,
		bin:      filepath.Join(root, "bin"),
		tfDir:    filepath.Join(cache, "terraform"),
		cloudDir: filepath.Join(cache, "cloud"),
		pidFile:  filepath.Join(cache, "localcloud.pid"),
		cloudLog: filepath.Join(cache, "localcloud.log"),
		tfLog:    filepath.Join(cache, "terraform-provider.log"),
		cliRC:    filepath.Join(cache, "terraformrc"),
		log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, nil
}

func (d *demo) say(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
