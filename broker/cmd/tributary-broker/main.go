// Command tributary-broker is the Tributary broker: a Kafka-wire-compatible
// broker (`run`) and the boot agent that starts it on an instance (`boot`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/logship"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// shutdownGrace bounds a clean shutdown: in-flight requests get this long
// to finish before their connections are closed; the log is flushed and
// closed either way.
const shutdownGrace = 30 * time.Second

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		os.Exit(runMain(os.Args[2:]))
	case "boot":
		os.Exit(bootMain(os.Args[2:]))
	case "volume-watch":
		os.Exit(volumeWatchMain(os.Args[2:]))
	case "cert-watch":
		os.Exit(certWatchMain(os.Args[2:]))
	case "iam-token":
		os.Exit(iamTokenMain(os.Args[2:]))
	case "version", "--version", "-version":
		fmt.Println(version)
	case "help", "--help", "-h", "-help":
		usage(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "tributary-broker: unknown command %q\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: tributary-broker <command> [flags]

commands:
  run           serve the Kafka protocol (flags: --listen --advertise --data-dir --node-id --config)
  boot          boot agent: read the instance's boot document, prepare the volume, exec run
  volume-watch  the data volume's companion: grow its filesystem online, storage autoscaling
  cert-watch    the certificate companion: apply a renewed TLS certificate the provider delivered
  iam-token     print an IAM OAUTHBEARER token for a cluster (flags: --cluster-id --region --json)
  version       print the version`)
}

// runMain is `tributary-broker run`. SIGTERM or SIGINT shut it down
// cleanly: stop accepting, finish in-flight requests, flush, close.
func runMain(args []string) int {
	stderr := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})
	// Lines are queued for CloudWatch Logs from the first one, so the
	// start line is shipped; the config says below whether they are.
	ship := logship.NewHandler(stderr, logship.HandlerOptions{})
	log := slog.New(ship)
	cfg, err := config.FromArgs(args, os.Stderr, log)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "tributary-broker run: %v\n", err)
		return 2
	}
	gcPercent, gcFromEnv := configureGC()
	memLimit, memLimitFrom := configureMemoryLimit("/proc", "/sys/fs/cgroup")
	log.Info("starting tributary broker", "version", version, "node_id", cfg.NodeID, "data_dir", cfg.DataDir,
		"gogc", gcPercent, "gogc_from_env", gcFromEnv, "gomemlimit", memLimit, "gomemlimit_from", memLimitFrom)

	cw, err := metrics.ParseCloudWatchSettings(cfg.Get)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 2
	}
	logs, err := logship.ParseSettings(cfg.Get)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 2
	}
	clusterName := cw.ClusterName
	if clusterName == "" {
		clusterName = cfg.ClusterID
	}
	reg := metrics.New(metrics.Options{ClusterName: clusterName, BrokerID: cfg.NodeID, DataDir: cfg.DataDir, Logger: log})
	if cfg.MetricsListen != "" {
		// Up before the log is recovered: /healthz answers and /readyz
		// says 503 while the broker starts.
		hs, err := metrics.ListenHTTPFrom(cfg.MetricsListen, cfg.MetricsAllowedCIDRs, reg.Handler(os.Getenv(bootstatus.EnvPath)), log)
		if err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		defer hs.Shutdown(context.Background())
	}
	if cfg.MetricsNodeListen != "" {
		fs := []string{"/"}
		if cfg.DataDir != "" {
			fs = append(fs, cfg.DataDir)
		}
		ns, err := metrics.ListenHTTPFrom(cfg.MetricsNodeListen, cfg.MetricsNodeAllowedCIDRs,
			metrics.NodeHandler(metrics.NodeOptions{FileSystems: fs, Logger: log}), log)
		if err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		defer ns.Shutdown(context.Background())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	shippers := startLogShipping(ctx, ship, logs, cfg.NodeID, slog.New(stderr))
	if len(shippers) > 0 {
		reg.SetLogDroppedSource(ship.Dropped)
		// The last lines (the shutdown's) go out before the process ends,
		// unless a destination takes longer than this to take them.
		defer func() {
			fctx, cancel := context.WithTimeout(context.Background(), logFlushGrace)
			defer cancel()
			var wg sync.WaitGroup
			for _, sh := range shippers {
				wg.Add(1)
				go func() { defer wg.Done(); _ = sh.Flush(fctx) }()
			}
			wg.Wait()
		}()
	}

	// New returns once the broker is part of its cluster (a cluster of one
	// when no controller.quorum.voters are set): registered, its metadata
	// caught up, so topics are never loaded from a half-replayed log.
	srv, err := server.New(ctx, server.Options{Config: cfg, Logger: log, Metrics: reg})
	if err != nil {
		if ctx.Err() != nil {
			// A signal while starting (joining the cluster, recovering
			// the log) is a clean stop, not a failure: New undid what it
			// had started.
			log.Info("signal received while starting, stopped", "err", err)
			return 0
		}
		log.Error("cannot start", "err", err)
		return 1
	}
	if cw.Enabled {
		// Never fatal: the broker serves without CloudWatch metrics.
		client, err := metrics.NewCloudWatchClient(ctx) // default chain: IMDS role credentials, AWS_ENDPOINT_URL
		if err != nil {
			log.Error("CloudWatch metrics are off", "err", err)
		} else if sh, err := metrics.NewShipper(metrics.ShipperOptions{Registry: reg, Client: client,
			Namespace: cw.Namespace, Level: cw.Level, Interval: cw.Interval, Logger: log}); err != nil {
			log.Error("CloudWatch metrics are off", "err", err)
		} else {
			go sh.Run(ctx)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()

	code := 0
	select {
	case <-ctx.Done():
		log.Info("signal received, shutting down")
	case err := <-serveErr:
		log.Error("serving failed", "err", err)
		code = 1
	}
	stop() // a second signal kills the process the default way
	// Shutdown starts with the controlled shutdown: leaderships move to
	// other brokers while this one still answers clients, which then find
	// the new leaders (a rolling restart fails no acks=all produce).
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	return code
}

// logFlushGrace bounds the last flush of the log to its destinations.
const logFlushGrace = 5 * time.Second

// flusher is a log shipper: its last flush runs at shutdown.
type flusher interface{ Flush(context.Context) error }

// startLogShipping starts shipping the log to CloudWatch Logs, S3 and Firehose as the
// settings say, and stops queueing for the destinations that are off.
// Never fatal: the broker serves without shipped logs, and says so on its
// own log (own, the broker's handler without the queue, so the shippers'
// failures are never queued).
func startLogShipping(ctx context.Context, ship *logship.Handler, s logship.Settings, nodeID int32, own *slog.Logger) []flusher {
	var shippers []flusher
	var kept []logship.Destination
	if s.Enabled {
		if sh, err := startCloudWatchLogs(ctx, ship, s, nodeID, own); err != nil {
			own.Error("shipping logs to CloudWatch Logs is off", "err", err)
		} else {
			shippers, kept = append(shippers, sh), append(kept, logship.DestCloudWatchLogs)
		}
	}
	if s.S3.Enabled {
		if sh, err := startS3Logs(ctx, ship, s.S3, nodeID, own); err != nil {
			own.Error("delivering logs to S3 is off", "err", err)
		} else {
			shippers, kept = append(shippers, sh), append(kept, logship.DestS3)
		}
	}
	if s.Firehose.Enabled {
		if sh, err := startFirehoseLogs(ctx, ship, s.Firehose, own); err != nil {
			own.Error("sending logs to Firehose is off", "err", err)
		} else {
			shippers, kept = append(shippers, sh), append(kept, logship.DestFirehose)
		}
	}
	ship.Keep(kept...)
	return shippers
}

func startFirehoseLogs(ctx context.Context, ship *logship.Handler, s logship.FirehoseSettings, own *slog.Logger) (*logship.FirehoseShipper, error) {
	client, err := logship.NewFirehoseClient(ctx) // default chain: IMDS role credentials, AWS_ENDPOINT_URL
	if err != nil {
		return nil, err
	}
	sh, err := logship.NewFirehoseShipper(logship.FirehoseShipperOptions{Handler: ship, Client: client, DeliveryStream: s.DeliveryStream, Logger: own})
	if err != nil {
		return nil, err
	}
	own.Info("sending logs to Firehose", "delivery_stream", s.DeliveryStream)
	go sh.Run(ctx)
	return sh, nil
}

func startCloudWatchLogs(ctx context.Context, ship *logship.Handler, s logship.Settings, nodeID int32, own *slog.Logger) (*logship.Shipper, error) {
	client, err := logship.NewClient(ctx) // default chain: IMDS role credentials, AWS_ENDPOINT_URL
	if err != nil {
		return nil, err
	}
	sh, err := logship.NewShipper(logship.ShipperOptions{Handler: ship, Client: client, LogGroup: s.LogGroup, NodeID: nodeID, Logger: own})
	if err != nil {
		return nil, err
	}
	own.Info("shipping logs to CloudWatch Logs", "log_group", s.LogGroup, "stream", logship.StreamName(nodeID), "audit_stream", logship.AuditStreamName(nodeID))
	go sh.Run(ctx)
	return sh, nil
}

func startS3Logs(ctx context.Context, ship *logship.Handler, s logship.S3Settings, nodeID int32, own *slog.Logger) (*logship.S3Shipper, error) {
	client, err := logship.NewS3Client(ctx) // default chain: IMDS role credentials, AWS_ENDPOINT_URL
	if err != nil {
		return nil, err
	}
	sh, err := logship.NewS3Shipper(logship.S3ShipperOptions{Handler: ship, Client: client, Bucket: s.Bucket, KeyPrefix: s.KeyPrefix, NodeID: nodeID, Logger: own})
	if err != nil {
		return nil, err
	}
	own.Info("delivering logs to S3", "bucket", s.Bucket, "key_prefix", s.KeyPrefix)
	go sh.Run(ctx)
	return sh, nil
}

// logLevel reads TRIBUTARY_LOG_LEVEL (debug, info, warn, error); default info.
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("TRIBUTARY_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
