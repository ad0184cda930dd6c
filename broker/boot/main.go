package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Main is `tributary-broker boot [flags]`. It returns only when the boot
// failed (the error is already logged and in the status file), after a
// --volume-only run, or on a usage error.
func Main(ctx context.Context, args []string) error {
	return runMain(ctx, args, os.Stderr)
}

func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	opts.VolumeDir = os.Getenv(EnvVolumeDir)
	opts.RuntimeDir = runtimeDir(opts.RuntimeDir, opts.VolumeDir)
	// Text logs: they end up on the instance console (GetConsoleOutput), read by people.
	opts.Logger = slog.New(slog.NewTextHandler(stderr, nil)).With("component", "boot")
	_, err = Run(ctx, opts)
	return err
}

// parseFlags reads the command line of `tributary-broker boot`.
func parseFlags(args []string, stderr io.Writer) (Options, error) {
	flags := flag.NewFlagSet("tributary-broker boot", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var opts Options
	flags.StringVar(&opts.RuntimeDir, "runtime-dir", "", "where the config, secret files and "+
		"boot-status.json go (default $"+EnvRuntimeDir+", else systemd's $"+envSystemdRuntimeDir+
		", else <$"+EnvVolumeDir+">/.tributary-run in the local cloud, else "+DefaultRuntimeDir+")")
	flags.StringVar(&opts.MountPath, "mount-path", "", "mount the data volume here instead of the document's data_volume.mount_path")
	flags.BoolVar(&opts.VolumeOnly, "volume-only", false, "stop after preparing the data volume (the image's privileged ExecStartPre step)")
	flags.StringVar(&opts.DataOwner, "data-owner", "", "hand the volume's data directory to this user (with --volume-only, as root)")
	flags.DurationVar(&opts.IMDSWait, "imds-wait", DefaultIMDSWait, "how long to retry instance metadata")
	flags.DurationVar(&opts.KMSWait, "kms-wait", DefaultKMSWait, "how long to retry KMS while the instance role propagates")
	flags.DurationVar(&opts.VolumeWait, "volume-wait", 0, "how long to wait for the data volume to be attached (default 5m)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: tributary-broker boot [flags]\n\n"+
			"Reads the boot document from EC2 user data (IMDSv2), decrypts its secrets with KMS, prepares\n"+
			"the data volume, writes the broker config and execs `tributary-broker run`. See docs/broker-image.md.\n\nflags:")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return opts, err
	}
	if flags.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments: %q", flags.Args())
	}
	return opts, nil
}

// runtimeDir picks the runtime directory: the flag, then
// $TRIBUTARY_RUNTIME_DIR, then systemd's $RUNTIME_DIRECTORY, then (local
// cloud) a directory beside the instance's volumes, then /run/tributary.
func runtimeDir(flagValue, volumeDir string) string {
	for _, v := range []string{flagValue, os.Getenv(EnvRuntimeDir), os.Getenv(envSystemdRuntimeDir)} {
		if v != "" {
			return v
		}
	}
	if volumeDir != "" {
		return volumeDir + "/.tributary-run"
	}
	return DefaultRuntimeDir
}
