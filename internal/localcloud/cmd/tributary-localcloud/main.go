// Command tributary-localcloud runs the Tributary local cloud (an AWS emulator for EC2, EC2
// Auto Scaling, KMS, STS, IAM, CloudWatch and CloudWatch Logs whose instances really run) and
// drives its fault-injection API.
//
//	tributary-localcloud serve [--listen 127.0.0.1:4566] --state-dir DIR [--region us-east-1]
//	                           [--broker-binary PATH --broker-version V] [--loopback-octet N]
//	                           [--stop-grace 30s] [--log-level info]
//	                           [--sized-volumes] [--volume-modification-cooldown 6h]
//	tributary-localcloud register-image --binary PATH (--version V | --name NAME) [--arch x86_64|arm64]
//	                                    [--endpoint URL | --state-dir DIR]
//	tributary-localcloud fault kill-instance i-... [--endpoint URL]
//	tributary-localcloud fault crash-instance i-... [--endpoint URL]
//	tributary-localcloud fault az-down us-east-1a [--endpoint URL]
//	tributary-localcloud fault az-up us-east-1a [--endpoint URL]
//	tributary-localcloud instances [--endpoint URL]
//
// The endpoint of the client subcommands defaults to $AWS_ENDPOINT_URL, then
// http://127.0.0.1:4566.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/ec2"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tributary-localcloud:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

const usage = `usage:
  tributary-localcloud serve --state-dir DIR [--listen 127.0.0.1:4566] [--region us-east-1]
                             [--broker-binary PATH --broker-version V] [--loopback-octet N]
                             [--stop-grace 30s] [--log-level debug|info|warn|error]
                             [--sized-volumes] [--volume-modification-cooldown 6h]
  tributary-localcloud register-image --binary PATH (--version V | --name NAME) [--arch x86_64|arm64]
                                      [--endpoint URL | --state-dir DIR]
  tributary-localcloud fault kill-instance INSTANCE_ID [--endpoint URL]
  tributary-localcloud fault crash-instance INSTANCE_ID [--endpoint URL]
  tributary-localcloud fault az-down ZONE [--endpoint URL]
  tributary-localcloud fault az-up ZONE [--endpoint URL]
  tributary-localcloud instances [--endpoint URL]`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "register-image":
		return registerImage(ctx, args[1:], stdout)
	case "fault":
		return fault(ctx, args[1:], stdout)
	case "instances":
		fs := flag.NewFlagSet("instances", flag.ContinueOnError)
		endpoint := endpointFlag(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		return call(ctx, http.MethodGet, *endpoint, "/_localcloud/instances", nil, stdout)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", args[0], usage)}
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", localcloud.DefaultListen, "address of the AWS endpoint")
	stateDir := fs.String("state-dir", "", "directory holding all state (required)")
	region := fs.String("region", "us-east-1", "the emulated region")
	brokerBinary := fs.String("broker-binary", "", "register this tributary-broker binary as the broker image at start")
	brokerVersion := fs.String("broker-version", "", "version of --broker-binary (AMI name tributary-broker-<version>-<arch>)")
	octet := fs.Int("loopback-octet", 0, "instance private IPs are 127.<octet>.x.y (0: a free block, kept in the state directory)")
	grace := fs.Duration("stop-grace", 30*time.Second, "time between SIGTERM and SIGKILL when instances stop")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	sized := fs.Bool("sized-volumes", false, "make volumes XFS filesystems of their size on loop devices, so they fill up and grow as EBS volumes do (root only)")
	cooldown := fs.Duration("volume-modification-cooldown", 6*time.Hour, "least time between two modifications of one volume (EBS: 6h)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *stateDir == "" {
		return usageError{"serve needs --state-dir"}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Sprintf("bad --log-level %q", *level)}
	}
	if *brokerBinary != "" {
		abs, err := filepath.Abs(*brokerBinary)
		if err != nil {
			return err
		}
		*brokerBinary = abs
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cloud, err := localcloud.Start(ctx, localcloud.Options{
		Listen: *listen, StateDir: *stateDir, Region: *region, BrokerBinary: *brokerBinary, BrokerVersion: *brokerVersion,
		LoopbackOctet: *octet, StopGracePeriod: *grace, Logger: logger, SizedVolumes: *sized, VolumeModificationCooldown: *cooldown,
	})
	if err != nil {
		return err
	}
	logger.Info("ready", "endpoint", cloud.Endpoint(), "accessKeyId", localcloud.AccessKeyID, "secretAccessKey", localcloud.SecretAccessKey)
	<-ctx.Done() // SIGTERM or SIGINT
	logger.Info("stopping: shutting instances down")
	return cloud.Close()
}

func endpointFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("AWS_ENDPOINT_URL")
	if def == "" {
		def = "http://" + localcloud.DefaultListen
	}
	return fs.String("endpoint", def, "URL of the running local cloud")
}

// parseInterspersed parses flags that may come before or after the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func registerImage(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("register-image", flag.ContinueOnError)
	binary := fs.String("binary", "", "the program instances of the image run (required)")
	version := fs.String("version", "", "broker version: registers tributary-broker-<version>-<arch> with S4's tags")
	name := fs.String("name", "", "AMI name of a non-broker image")
	arch := fs.String("arch", "", "x86_64 or arm64 (default: this machine's)")
	stateDir := fs.String("state-dir", "", "register into this state directory of a local cloud that is not running, instead of through --endpoint")
	endpoint := endpointFlag(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *binary == "" || (*version == "") == (*name == "") {
		return usageError{"register-image needs --binary and exactly one of --version or --name"}
	}
	abs, err := filepath.Abs(*binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("image binary: %w", err)
	}
	if *stateDir != "" {
		spec := ec2.ImageSpec{Name: *name, Architecture: *arch, Binary: abs}
		if *version != "" {
			spec = ec2.BrokerImageSpec(abs, *version, *arch)
		}
		id, err := localcloud.RegisterImageOffline(*stateDir, spec, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if errors.Is(err, localcloud.ErrStateDirInUse) {
			return fmt.Errorf("%w: the local cloud is running; register through its endpoint (drop --state-dir)", err)
		}
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string]string{"imageId": id, "name": spec.Name})
	}
	body := map[string]string{"binary": abs, "version": *version, "name": *name, "architecture": *arch}
	return call(ctx, http.MethodPost, *endpoint, "/_localcloud/images", body, stdout)
}

func fault(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fault", flag.ContinueOnError)
	endpoint := endpointFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{"fault needs an action and its target\n" + usage}
	}
	switch pos[0] {
	case "kill-instance":
		return call(ctx, http.MethodPost, *endpoint, "/_localcloud/instances/"+pos[1]+"/kill", nil, stdout)
	case "crash-instance":
		return call(ctx, http.MethodPost, *endpoint, "/_localcloud/instances/"+pos[1]+"/crash", nil, stdout)
	case "az-down":
		return call(ctx, http.MethodPost, *endpoint, "/_localcloud/az/"+pos[1]+"/down", nil, stdout)
	case "az-up":
		return call(ctx, http.MethodPost, *endpoint, "/_localcloud/az/"+pos[1]+"/up", nil, stdout)
	}
	return usageError{fmt.Sprintf("unknown fault %q (kill-instance, crash-instance, az-down, az-up)", pos[0])}
}

// call sends one request to the emulator's own API and prints the JSON answer.
func call(ctx context.Context, method, endpoint, path string, body any, stdout io.Writer) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(endpoint, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is the local cloud running at %s? %w", endpoint, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	_, err = stdout.Write(out)
	return err
}
