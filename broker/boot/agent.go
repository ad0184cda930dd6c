// Package boot is the boot agent, `tributary-broker boot`: the program the
// broker image runs at every boot. It turns the instance's user data (the
// boot document, internal/bootconfig) into a running broker:
//
//  1. imds:     IMDSv2 session; instance id, AZ, private IP and user data.
//  2. document: decode and validate the boot document.
//  3. attach:   on an Auto Scaling group's instance, attach the broker's own
//     network interface (its address) and data volume, found by their tags,
//     and route the interface's traffic through it.
//  4. secrets:  decrypt the secrets envelope with KMS under its encryption context;
//     take a renewed certificate from the broker's certificate secret when it
//     outlives the document's (preferDelivered).
//  5. volume:   find the data volume, format it on first boot only, mount, grow.
//  6. config:   write the broker config and the secret files.
//  7. exec:     replace itself with `tributary-broker run --config <file>`.
//
// Every step is logged to stderr (the instance console) and recorded in a
// status file (package bootstatus) that the broker's health endpoint serves.
// Every step is idempotent, so the agent runs the same way on every boot and
// on every service restart. In the local cloud the same agent runs; only the
// volume is a directory (volume.Directory instead of volume.Block).
package boot

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/broker/boot/netif"
	"github.com/tributary/tributary/broker/boot/volume"
	"github.com/tributary/tributary/internal/awsbody"
	"github.com/tributary/tributary/internal/bootconfig"
)

// Environment variables the agent reads.
const (
	// EnvVolumeDir switches the agent to the local cloud's volumes: the data
	// volume is the directory $TRIBUTARY_VOLUME_DIR/<volume id>, which the
	// local cloud gives each instance in place of an EBS volume.
	EnvVolumeDir = "TRIBUTARY_VOLUME_DIR"
	// EnvRuntimeDir overrides where the config, secrets and status go.
	EnvRuntimeDir = "TRIBUTARY_RUNTIME_DIR"
	// envSystemdRuntimeDir is set by systemd for RuntimeDirectory=.
	envSystemdRuntimeDir = "RUNTIME_DIRECTORY"
)

// DefaultRuntimeDir holds the rendered config, the secret files and the
// status file on an instance: a tmpfs, so secrets never reach a disk and
// nothing stale survives a reboot.
const DefaultRuntimeDir = "/run/tributary"

// Default waits. IMDS answers at once on a healthy instance; KMS may deny for
// a while after launch while a new instance role propagates through IAM; an
// EBS attachment can take minutes when the volume is still detaching from a
// replaced instance.
const (
	DefaultIMDSWait = 2 * time.Minute
	DefaultKMSWait  = 2 * time.Minute
)

// Options configure a boot. Zero values mean the image's defaults.
type Options struct {
	// RuntimeDir receives broker.properties, secrets/ and boot-status.json.
	RuntimeDir string
	// MountPath overrides the document's data_volume.mount_path (tests).
	MountPath string
	// VolumeDir is $TRIBUTARY_VOLUME_DIR: when set, the volume is a directory.
	VolumeDir string
	// VolumeOnly stops after the volume step: the image's privileged
	// ExecStartPre step, which needs root for mkfs and mount.
	VolumeOnly bool
	// DataOwner is the user that must own the data directory (the image's
	// "tributary"); the privileged step hands the volume to it.
	DataOwner string

	IMDSWait   time.Duration
	KMSWait    time.Duration
	VolumeWait time.Duration
	AttachWait time.Duration

	// Executable is the broker binary to exec; os.Executable() when empty.
	Executable string
	// Exec replaces the process; syscall.Exec when nil. Tests record the call.
	Exec func(argv0 string, argv []string, envv []string) error

	IMDS *imds.Client // nil: from the environment (AWS_EC2_METADATA_SERVICE_ENDPOINT)
	KMS  KMSDecrypter // nil: the SDK's default chain (AWS_ENDPOINT_URL, role credentials from IMDS)
	// Secrets reads the broker's certificate secret, where a renewal in
	// place puts its renewed certificate. nil: the SDK's default chain, as KMS.
	Secrets SecretsReader
	EC2     EC2API // nil: the SDK's default chain, as KMS
	// ConfigureNetwork makes the attached interface carry the broker's
	// address in the operating system. nil: on EC2 the privileged step runs
	// netif (iproute2); in the local cloud (VolumeDir set) nothing, since
	// every private address is on loopback there.
	ConfigureNetwork func(ctx context.Context, ifc netif.Interface) error
	Logger           *slog.Logger // nil: slog.Default()
}

// Result is what a successful boot produced; Run returns it when VolumeOnly
// is set or when Exec returned without error (only in tests).
type Result struct {
	Instance   *Instance
	Document   *bootconfig.Document
	MountPath  string
	ConfigPath string
	StatusPath string
}

// Run boots the broker: it runs every step, then execs the broker and so
// returns only on failure (or in VolumeOnly mode, or when a test's Exec
// returns). The error names the step and says what went wrong.
func Run(ctx context.Context, opts Options) (*Result, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	runtimeDir := opts.RuntimeDir
	if runtimeDir == "" {
		runtimeDir = DefaultRuntimeDir
	}
	res := &Result{StatusPath: filepath.Join(runtimeDir, bootstatus.FileName)}
	rec := &bootstatus.Recorder{Path: res.StatusPath}
	if err := os.MkdirAll(runtimeDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the runtime directory %s: %w", runtimeDir, err)
	}
	logger.Info("boot agent starting", "runtime_dir", runtimeDir, "status_file", res.StatusPath,
		"volume_only", opts.VolumeOnly, "local_volume_dir", opts.VolumeDir)

	step := func(name string, fn func() (string, error)) error {
		log := logger.With("step", name)
		log.Info("step starting")
		if err := rec.Start(name); err != nil {
			log.Warn("could not write the status file", "error", err)
		}
		detail, err := fn()
		if err != nil {
			log.Error("step failed", "error", err)
			if werr := rec.Fail(err); werr != nil {
				log.Warn("could not write the status file", "error", werr)
			}
			return fmt.Errorf("boot step %s: %w", name, err)
		}
		log.Info("step done", "detail", detail)
		if err := rec.Done(detail); err != nil {
			log.Warn("could not write the status file", "error", err)
		}
		return nil
	}

	// 1. Instance metadata.
	err := step(bootstatus.StepIMDS, func() (string, error) {
		client := opts.IMDS
		if client == nil {
			client = newIMDSClient()
		}
		inst, err := fetchInstance(ctx, client, orDefault(opts.IMDSWait, DefaultIMDSWait), logger)
		if err != nil {
			return "", err
		}
		res.Instance = inst
		_ = rec.Identify(inst.ID, "", nil)
		return fmt.Sprintf("instance %s (%s) in %s, private IP %s, %d bytes of user data",
			inst.ID, inst.InstanceType, inst.AvailabilityZone, inst.PrivateIP, len(inst.UserData)), nil
	})
	if err != nil {
		return nil, err
	}
	inst := res.Instance

	// 2. The boot document.
	err = step(bootstatus.StepDocument, func() (string, error) {
		doc, err := decodeUserData(inst.UserData)
		if err != nil {
			return "", err
		}
		res.Document = doc
		_ = rec.Identify("", doc.ClusterID, &doc.NodeID)
		if doc.Rack != inst.AvailabilityZone {
			logger.Warn("the document's rack differs from the instance's Availability Zone; using the AZ as broker.rack",
				"rack", doc.Rack, "availability_zone", inst.AvailabilityZone)
		}
		return fmt.Sprintf("document v%d for cluster %s (%s), node %d, volume %s",
			doc.Version, doc.ClusterName, doc.ClusterID, doc.NodeID, doc.DataVolume.VolumeID), nil
	})
	if err != nil {
		return nil, err
	}
	doc := res.Document

	// 3. The broker's own interface and volume, on an Auto Scaling group's
	// instance (both steps of the image's unit run it: the privileged one
	// attaches, the other finds them attached and learns the address).
	if doc.Attachments != nil {
		err = step(bootstatus.StepAttach, func() (string, error) {
			client := opts.EC2
			if client == nil {
				c, err := newEC2Client(ctx, inst.Region)
				if err != nil {
					return "", err
				}
				client = c
			}
			a, err := attachOwn(ctx, client, inst.ID, doc, orDefault(opts.AttachWait, DefaultAttachWait), logger)
			if err != nil {
				return "", err
			}
			detail := fmt.Sprintf("network interface %s (%s) at device %d and volume %s attached to %s; the broker's address is %s, not the instance's own %s",
				a.ENIID, a.PrivateIP, a.DeviceIndex, a.VolumeID, inst.ID, a.PrivateIP, inst.PrivateIP)
			inst.PrivateIP = a.PrivateIP
			configure := opts.ConfigureNetwork
			if configure == nil && opts.VolumeDir == "" && os.Geteuid() == 0 {
				configure = func(ctx context.Context, ifc netif.Interface) error {
					_, err := (&netif.Configurator{Logger: logger}).Configure(ctx, ifc)
					return err
				}
			}
			if configure != nil {
				cidr, err := subnetCIDR(ctx, opts.IMDS, a.MAC, orDefault(opts.IMDSWait, DefaultIMDSWait))
				if err != nil {
					return "", err
				}
				if err := configure(ctx, netif.Interface{MAC: a.MAC, PrivateIP: a.PrivateIP, SubnetCIDR: cidr, DeviceIndex: a.DeviceIndex}); err != nil {
					return "", fmt.Errorf("configuring the broker's network interface %s: %w", a.ENIID, err)
				}
				detail += "; traffic from it routed through it"
			}
			return detail, nil
		})
		if err != nil {
			return nil, err
		}
	}

	// 4. Secrets (not in the privileged volume-only step: it has no use for them).
	var secrets *bootconfig.Secrets
	if !opts.VolumeOnly {
		err = step(bootstatus.StepSecrets, func() (string, error) {
			if doc.Secrets == nil {
				return "the document carries no secrets", nil
			}
			client := opts.KMS
			if client == nil {
				c, err := newKMSClient(ctx, inst.Region)
				if err != nil {
					return "", err
				}
				client = c
			}
			s, err := decryptWithRetry(ctx, client, doc.Secrets, orDefault(opts.KMSWait, DefaultKMSWait), logger)
			if err != nil {
				return "", err
			}
			secrets = s
			detail := fmt.Sprintf("decrypted with KMS key %s under context %s: TLS key %t, %d bootstrap SCRAM users",
				doc.Secrets.KeyID, formatContext(doc.Secrets.EncryptionContext), s.TLSPrivateKeyPEM != "", len(s.SCRAMCredentials))
			if s.TLSCertificatePEM != "" && doc.TLS != nil {
				sm := opts.Secrets
				if sm == nil {
					c, err := newSecretsClient(ctx, inst.Region)
					if err != nil {
						return "", err
					}
					sm = c
				}
				if used := preferDelivered(ctx, sm, client, doc, s, time.Now()); used != "" {
					detail += "; TLS: " + used
				}
			}
			return detail, nil
		})
		if err != nil {
			return nil, err
		}
	}

	// 5. The data volume.
	err = step(bootstatus.StepVolume, func() (string, error) {
		mountPath := opts.MountPath
		if mountPath == "" {
			mountPath = doc.DataVolume.MountPath
		}
		var vol volume.Volume
		if opts.VolumeDir != "" {
			vol = &volume.Directory{Root: opts.VolumeDir, VolumeID: doc.DataVolume.VolumeID, Wait: opts.VolumeWait, Logger: logger}
		} else {
			vol = &volume.Block{VolumeID: doc.DataVolume.VolumeID, DeviceName: doc.DataVolume.DeviceName,
				MountPath: mountPath, Wait: opts.VolumeWait, Logger: logger}
		}
		mounted, err := vol.Prepare(ctx)
		if err != nil {
			return "", err
		}
		res.MountPath = mounted
		dataDir := filepath.Join(mounted, DataDirName)
		if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return "", fmt.Errorf("creating the data directory: %w", err)
		}
		if opts.DataOwner != "" {
			if err := handOver(mounted, dataDir, opts.DataOwner, logger); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("volume %s ready at %s, data in %s", doc.DataVolume.VolumeID, mounted, dataDir), nil
	})
	if err != nil {
		return nil, err
	}
	if opts.VolumeOnly {
		return res, nil
	}

	// 6. The broker config.
	err = step(bootstatus.StepConfig, func() (string, error) {
		files, err := writeSecretFiles(filepath.Join(runtimeDir, SecretsDirName), doc, secrets)
		if err != nil {
			return "", err
		}
		res.ConfigPath = filepath.Join(runtimeDir, ConfigFileName)
		cfg := renderConfig(doc, inst, filepath.Join(res.MountPath, DataDirName), files)
		// 0640: the config names where the keys are, not the keys themselves.
		if err := writeFileAtomic(res.ConfigPath, cfg, 0o640); err != nil {
			return "", err
		}
		return "wrote " + res.ConfigPath, nil
	})
	if err != nil {
		return nil, err
	}

	// 7. Become the broker.
	err = step(bootstatus.StepExec, func() (string, error) {
		exe := opts.Executable
		if exe == "" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return "", fmt.Errorf("finding the broker binary: %w", err)
			}
		}
		argv := []string{exe, "run", "--config", res.ConfigPath}
		env := append(os.Environ(), bootstatus.EnvPath+"="+res.StatusPath)
		do := opts.Exec
		if do == nil {
			do = execKeepingDeathSignal
			if opts.VolumeDir != "" {
				// The local cloud runs one process per instance: the
				// volume companion, a unit of its own in the image, is
				// started here and lives in the instance's process group.
				startCompanion(exe, logger, "volume-watch", "--exit-with-parent")
			}
			if secrets != nil && secrets.TLSPrivateKeyPEM != "" {
				// The certificate companion runs as the broker's user
				// (it writes only the broker's keystore), in the
				// broker's service: started here on every host.
				startCompanion(exe, logger, certWatchArgs(doc, runtimeDir, inst.Region)...)
			}
		}
		// Record success first: after a successful exec nothing of the agent
		// runs any more. A failed exec overwrites it below.
		detail := "exec " + strings.Join(argv, " ")
		_ = rec.Done(detail)
		logger.Info("starting the broker", "argv", argv)
		if err := do(exe, argv, env); err != nil {
			return "", fmt.Errorf("exec %s: %w", exe, err)
		}
		return detail, nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// decodeUserData decodes the boot document, with a precise error for the
// mistakes a launcher can make.
func decodeUserData(userData []byte) (*bootconfig.Document, error) {
	trimmed := strings.TrimSpace(string(userData))
	if trimmed == "" {
		return nil, errors.New("the instance's user data is empty: it must be a Tributary boot document")
	}
	if !strings.HasPrefix(trimmed, "{") {
		// EC2 takes user data base64-encoded and IMDS returns it decoded; a
		// launcher that encodes twice leaves base64 text here.
		if decoded, err := base64.StdEncoding.DecodeString(trimmed); err == nil && strings.HasPrefix(strings.TrimSpace(string(decoded)), "{") {
			return nil, errors.New("the user data is base64 text, not the boot document: it was base64-encoded twice by whatever launched the instance")
		}
	}
	doc, err := bootconfig.Decode(userData)
	if err != nil {
		return nil, fmt.Errorf("the boot document in user data is not usable: %w", err)
	}
	return doc, nil
}

// newKMSClient builds a KMS client from the SDK's default chain: the
// endpoint from AWS_ENDPOINT_URL(_KMS) when set, credentials from the
// instance role through IMDS, the region from AWS_REGION or else the
// instance's own.
func newKMSClient(ctx context.Context, region string) (*kms.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	return kms.NewFromConfig(cfg), nil
}

// newSecretsClient builds a Secrets Manager client the way newKMSClient
// builds KMS's.
func newSecretsClient(ctx context.Context, region string) (*secretsmanager.Client, error) {
	cfg, err := awsbody.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS SDK configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = region
	}
	return secretsmanager.NewFromConfig(cfg), nil
}

// decryptWithRetry retries the two failures that heal by themselves after
// launch: role credentials not yet available from IMDS, and AccessDenied
// while a just-created instance role propagates through IAM. Anything else
// (wrong context, wrong key, disabled key) fails at once.
func decryptWithRetry(ctx context.Context, client KMSDecrypter, env *bootconfig.Envelope, wait time.Duration, logger *slog.Logger) (*bootconfig.Secrets, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay := 500 * time.Millisecond
	var lastErr error
	for attempt := 1; ; attempt++ {
		s, err := decryptSecrets(ctx, client, env)
		if err == nil {
			return s, nil
		}
		// An attempt cut short by the deadline says only "canceled"; the
		// attempt before it says what KMS answered.
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		if !retryableDecrypt(lastErr) {
			return nil, lastErr
		}
		logger.Warn("KMS decrypt failed; retrying in case the instance role is still propagating", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (still failing after retrying for %s)", lastErr, wait)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func retryableDecrypt(err error) bool {
	if permanent(err) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode() == "AccessDeniedException"
	}
	// Not an answer from KMS: no credentials yet, or KMS unreachable.
	return true
}

// handOver makes owner the owner of the volume. Normally only the mount root
// and the data directory need it; when the volume is owned by another uid (it
// was written by an image whose tributary user had another uid) every file
// is handed over once.
func handOver(mountPath, dataDir, owner string, logger *slog.Logger) error {
	u, err := user.Lookup(owner)
	if err != nil {
		return fmt.Errorf("looking up the data owner: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("user %s has a non-numeric uid or gid: %w", owner, err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return fmt.Errorf("checking the data directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid && int(st.Uid) != 0 {
		logger.Warn("the data directory belongs to another uid; handing every file over", "owner", owner, "old_uid", st.Uid, "new_uid", uid)
		err := filepath.WalkDir(mountPath, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			return fmt.Errorf("handing the volume to %s: %w", owner, err)
		}
		return nil
	}
	for _, p := range []string{mountPath, dataDir} {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("handing %s to %s: %w", p, owner, err)
		}
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// startCompanion starts a companion subcommand of the broker binary
// (volume-watch, cert-watch) beside the broker, in the same process group
// and environment, its output on the same console. A companion that cannot
// start is logged: the broker serves without it, only the volume does not
// grow, or a delivered certificate is not applied, by itself.
func startCompanion(exe string, logger *slog.Logger, args ...string) {
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		logger.Error("could not start a companion of the broker", "companion", args[0], "error", err)
		return
	}
	logger.Info("started a companion of the broker", "companion", args[0], "pid", cmd.Process.Pid)
	// Reaped by nobody once the agent becomes the broker; the instance's
	// stop ends its process group, companion included.
	_ = cmd.Process.Release()
}
