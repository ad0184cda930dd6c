package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/localcloud"
)

func TestRegisterImageOffline(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"register-image", "--binary", self, "--version", "1.2.3", "--state-dir", dir}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var img struct{ ImageID, Name string }
	if err := json.Unmarshal(out.Bytes(), &img); err != nil || !strings.HasPrefix(img.ImageID, "ami-") {
		t.Fatalf("register-image --state-dir: %s (%v)", out.String(), err)
	}
	// The next serve sees it; while one runs, offline registration is refused.
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	var list bytes.Buffer
	if err := run(context.Background(), []string{"register-image", "--binary", self, "--version", "1.2.3", "--endpoint", cloud.Endpoint()}, &list, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list.String(), img.ImageID) {
		t.Fatalf("re-registering through the endpoint gave %s, want the same image %s", list.String(), img.ImageID)
	}
	err = run(context.Background(), []string{"register-image", "--binary", self, "--version", "1.2.3", "--state-dir", dir}, io.Discard, io.Discard)
	if !errors.Is(err, localcloud.ErrStateDirInUse) {
		t.Fatalf("offline registration while the cloud runs: %v", err)
	}
}

func TestClientSubcommands(t *testing.T) {
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StopGracePeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	ctx := context.Background()
	ep := cloud.Endpoint()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"register-image", "--binary", self, "--version", "9.9.9", "--endpoint", ep}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var img struct{ ImageID, Name string }
	if err := json.Unmarshal(out.Bytes(), &img); err != nil || !strings.HasPrefix(img.ImageID, "ami-") || !strings.HasPrefix(img.Name, "tributary-broker-9.9.9-") {
		t.Fatalf("register-image: %s (%v)", out.String(), err)
	}

	out.Reset()
	if err := run(ctx, []string{"fault", "az-down", "us-east-1b", "--endpoint", ep}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"availabilityZone":"us-east-1b"`) {
		t.Fatalf("az-down: %s", out.String())
	}
	if err := run(ctx, []string{"fault", "--endpoint", ep, "az-up", "us-east-1b"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	err = run(ctx, []string{"fault", "kill-instance", "i-0123456789abcdef0", "--endpoint", ep}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("kill-instance of a missing instance: %v", err)
	}
	err = run(ctx, []string{"fault", "crash-instance", "i-0123456789abcdef0", "--endpoint", ep}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("crash-instance of a missing instance: %v", err)
	}
	err = run(ctx, []string{"fault", "az-down", "us-east-1z", "--endpoint", ep}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "Unknown Availability Zone") {
		t.Fatalf("az-down of an unknown zone: %v", err)
	}

	var u usageError
	if err := run(ctx, []string{"fault", "explode", "x"}, io.Discard, io.Discard); !errors.As(err, &u) {
		t.Fatalf("unknown fault: %v", err)
	}
	if err := run(ctx, []string{"serve"}, io.Discard, io.Discard); !errors.As(err, &u) {
		t.Fatalf("serve without a state dir: %v", err)
	}
}
