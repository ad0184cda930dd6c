// Package localcloud runs the Tributary local cloud: an AWS API emulator for EC2, EC2 Auto
// Scaling, KMS, STS, IAM, CloudWatch, CloudWatch Logs, S3, SNS, Secrets Manager and Private CA on
// one loopback endpoint, whose EC2 instances really run (as child processes with their own
// instance metadata service), with its state in a directory that survives restarts. Start it
// in-process (tests, the provider's acceptance tests) or with the tributary-localcloud command.
package localcloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/tributary/tributary/internal/localcloud/acmpca"
	"github.com/tributary/tributary/internal/localcloud/autoscaling"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsmetrics"
	"github.com/tributary/tributary/internal/localcloud/cloudwatch"
	"github.com/tributary/tributary/internal/localcloud/ec2"
	"github.com/tributary/tributary/internal/localcloud/firehose"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/kms"
	"github.com/tributary/tributary/internal/localcloud/logs"
	"github.com/tributary/tributary/internal/localcloud/s3"
	"github.com/tributary/tributary/internal/localcloud/secretsmanager"
	"github.com/tributary/tributary/internal/localcloud/sns"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

// DefaultListen is where the command listens, as LocalStack does.
const DefaultListen = "127.0.0.1:4566"

// alarmEvaluationInterval is how often CloudWatch alarms are evaluated (and
// their SNS actions run) without anyone describing them.
const alarmEvaluationInterval = 10 * time.Second

// Options configures a local cloud.
type Options struct {
	// Listen is the address of the AWS endpoint; default "127.0.0.1:0" (a free port).
	Listen string
	// StateDir holds all state; required. Only one local cloud may use a directory at a time.
	StateDir string
	// Region is the region (default us-east-1); its zones are <region>a, b and c.
	Region string
	// Account is the account id of the default credentials (default 000000000000).
	Account string
	// BrokerBinary, when set, is registered at start as the broker image of BrokerVersion
	// (AMI name tributary-broker-<version>-<arch>, tags tributary:version and tributary:component).
	BrokerBinary  string
	BrokerVersion string
	// LoopbackOctet fixes instance private IPs to 127.<octet>.x.y; 0 picks a free block
	// (kept in the state directory afterwards).
	LoopbackOctet int
	// StopGracePeriod is the time between SIGTERM and SIGKILL for instance processes (default 30s).
	StopGracePeriod time.Duration
	// TransitionDelay is how long transitional states last (volume creating, attaching,
	// modifying); default 200ms.
	TransitionDelay time.Duration
	// InstanceEnv is added to every instance process's environment (KEY=VALUE).
	InstanceEnv []string
	// RestartDelay is the first delay before a crashed instance program is restarted (doubling
	// up to 32 times; default 1s).
	RestartDelay time.Duration
	// AutoScalingInterval is how often Auto Scaling groups are checked (health, capacity);
	// default 10s.
	AutoScalingInterval time.Duration
	// AWSMetricsInterval is how often the metrics AWS keeps about instances
	// and volumes (CPUCreditBalance, BurstBalance: package awsmetrics) are
	// measured and put in CloudWatch; default one minute.
	AWSMetricsInterval time.Duration
	// VolumeModificationCooldown is the least time between two ModifyVolume calls on one
	// volume (EBS: 6 hours, the default); tests shorten it.
	VolumeModificationCooldown time.Duration
	// SizedVolumes makes volumes XFS filesystems of their size on loop devices, mounted at
	// their directories, so they fill up and grow as EBS volumes do (root only; see
	// docs/localcloud.md).
	SizedVolumes bool
	// Logger receives the emulator's logs; default slog.Default().
	Logger *slog.Logger
}

// Cloud is a running local cloud.
type Cloud struct {
	opts     Options
	log      *slog.Logger
	ln       net.Listener
	http     *http.Server
	server   *awsapi.Server
	creds    *awsapi.CredentialStore
	ec2      *ec2.Service
	kms      *kms.Service
	iam      *iam.Service
	sts      *sts.Service
	cw       *cloudwatch.Service
	logs     *logs.Service
	s3       *s3.Service
	firehose *firehose.Service
	sns      *sns.Service
	secrets  *secretsmanager.Service
	pca      *acmpca.Service
	asg      *autoscaling.Service
	lockFile *os.File

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Start starts a local cloud. Cancelling ctx closes it (as Close does); call Close in any case.
func Start(ctx context.Context, opts Options) (*Cloud, error) {
	if opts.StateDir == "" {
		return nil, errors.New("localcloud: a state directory is required")
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = awsapi.DefaultAccount
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BrokerBinary != "" && opts.BrokerVersion == "" {
		return nil, errors.New("localcloud: BrokerVersion is required with BrokerBinary")
	}
	c := &Cloud{opts: opts, log: opts.Logger, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			c.shutdown()
		}
	}()
	if err := c.lockStateDir(); err != nil {
		return nil, err
	}
	var err error
	if c.creds, err = awsapi.NewCredentialStore(filepath.Join(opts.StateDir, "credentials.json")); err != nil {
		return nil, fmt.Errorf("localcloud: %w", err)
	}
	if c.server, err = awsapi.NewServer(awsapi.ServerOptions{Credentials: c.creds, Logger: opts.Logger}); err != nil {
		return nil, fmt.Errorf("localcloud: %w", err)
	}
	if c.ln, err = net.Listen("tcp", opts.Listen); err != nil {
		return nil, fmt.Errorf("localcloud: listening on %s: %w", opts.Listen, err)
	}
	if addr, ok := c.ln.Addr().(*net.TCPAddr); ok && !addr.IP.IsLoopback() {
		// The fault API (/_localcloud/) is unauthenticated and registers programs to run.
		c.log.Warn("the local cloud listens beyond loopback: anyone who reaches it can kill instances and run programs through /_localcloud/", "listen", c.ln.Addr().String())
	}
	env := func(name string) (awsapi.Env, error) {
		dir := filepath.Join(opts.StateDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return awsapi.Env{}, fmt.Errorf("localcloud: creating %s: %w", dir, err)
		}
		return awsapi.Env{Account: opts.Account, Region: opts.Region, StateDir: dir, Credentials: c.creds, Logger: opts.Logger.With("service", name), Now: time.Now}, nil
	}
	e, err := env("kms")
	if err != nil {
		return nil, err
	}
	if c.kms, err = kms.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting KMS: %w", err)
	}
	if e, err = env("iam"); err != nil {
		return nil, err
	}
	if c.iam, err = iam.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting IAM: %w", err)
	}
	if e, err = env("sts"); err != nil {
		return nil, err
	}
	if c.sts, err = sts.New(e, c.iam); err != nil {
		return nil, fmt.Errorf("localcloud: starting STS: %w", err)
	}
	if e, err = env("cloudwatch"); err != nil {
		return nil, err
	}
	if c.cw, err = cloudwatch.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting CloudWatch: %w", err)
	}
	if e, err = env("logs"); err != nil {
		return nil, err
	}
	if c.logs, err = logs.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting CloudWatch Logs: %w", err)
	}
	if e, err = env("s3"); err != nil {
		return nil, err
	}
	if c.s3, err = s3.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting S3: %w", err)
	}
	if e, err = env("firehose"); err != nil {
		return nil, err
	}
	if c.firehose, err = firehose.New(firehose.Options{Env: e, Objects: c.s3, Authorizer: c.iam}); err != nil {
		return nil, fmt.Errorf("localcloud: starting Firehose: %w", err)
	}
	if e, err = env("sns"); err != nil {
		return nil, err
	}
	if c.sns, err = sns.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting SNS: %w", err)
	}
	c.cw.SetNotifier(c.sns, alarmEvaluationInterval)
	if e, err = env("secretsmanager"); err != nil {
		return nil, err
	}
	if c.secrets, err = secretsmanager.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting Secrets Manager: %w", err)
	}
	if e, err = env("acm-pca"); err != nil {
		return nil, err
	}
	if c.pca, err = acmpca.New(e); err != nil {
		return nil, fmt.Errorf("localcloud: starting Private CA: %w", err)
	}
	if e, err = env("ec2"); err != nil {
		return nil, err
	}
	c.ec2, err = ec2.New(ec2.Options{
		Env: e, Keys: c.kms, Profiles: c.iam, Endpoint: c.Endpoint, LoopbackOctet: opts.LoopbackOctet,
		StopGracePeriod: opts.StopGracePeriod, TransitionDelay: opts.TransitionDelay, InstanceEnv: opts.InstanceEnv,
		RestartDelay: opts.RestartDelay, VolumeModificationCooldown: opts.VolumeModificationCooldown, SizedVolumes: opts.SizedVolumes,
	})
	if err != nil {
		return nil, fmt.Errorf("localcloud: starting EC2: %w", err)
	}
	if e, err = env("autoscaling"); err != nil {
		return nil, err
	}
	if c.asg, err = autoscaling.New(autoscaling.Options{Env: e, Fleet: c.ec2, Interval: opts.AutoScalingInterval}); err != nil {
		return nil, fmt.Errorf("localcloud: starting Auto Scaling: %w", err)
	}
	c.server.Register("ec2", c.ec2)
	c.server.Register("autoscaling", c.asg)
	c.server.Register("kms", c.kms)
	c.server.Register("iam", c.iam)
	c.server.Register("sts", c.sts)
	c.server.Register("monitoring", c.cw)
	c.server.Register("logs", c.logs)
	c.server.Register("s3", c.s3)
	c.server.Register("firehose", c.firehose)
	c.server.Register("sns", c.sns)
	c.server.Register("secretsmanager", c.secrets)
	c.server.Register("acm-pca", c.pca)
	c.server.SetAuthorizer(c.iam)
	c.server.HandleNonAWS(faultPrefix, c.faultAPI())
	if opts.BrokerBinary != "" {
		id, err := c.ec2.RegisterImage(ec2.BrokerImageSpec(opts.BrokerBinary, opts.BrokerVersion, ""))
		if err != nil {
			return nil, fmt.Errorf("localcloud: registering the broker image: %w", err)
		}
		c.log.Info("broker image registered", "image", id, "version", opts.BrokerVersion)
	}

	c.http = &http.Server{Handler: c.server, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := c.http.Serve(c.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("local cloud endpoint failed", "err", err)
		}
	}()
	c.ec2.Start() // boots the instances that were running before a restart
	c.asg.Start()
	interval := opts.AWSMetricsInterval
	if interval <= 0 {
		interval = time.Minute
	}
	go awsmetrics.New(awsmetrics.Options{Source: c.ec2, Sink: c.cw, Logger: c.log}).Run(interval, c.done)
	go func() {
		select {
		case <-ctx.Done():
			_ = c.Close()
		case <-c.done:
		}
	}()
	ok = true
	c.log.Info("local cloud started", "endpoint", c.Endpoint(), "stateDir", opts.StateDir, "region", opts.Region)
	return c, nil
}

// lockStateDir makes sure only one local cloud uses the directory: two would overwrite each
// other's state and run the same instances twice.
func (c *Cloud) lockStateDir() error {
	f, err := lockStateDir(c.opts.StateDir)
	if err != nil {
		return err
	}
	c.lockFile = f
	return nil
}

// ErrStateDirInUse means a running local cloud holds the state directory.
var ErrStateDirInUse = errors.New("state directory in use by a running local cloud")

func lockStateDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localcloud: creating state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localcloud: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("localcloud: %s: %w (%v)", dir, ErrStateDirInUse, err)
	}
	return f, nil
}

// RegisterImageOffline registers an image directly in the state directory of a local cloud that
// is not running (a running one holds the directory: register through its endpoint instead,
// and ErrStateDirInUse says so). It returns the image id.
func RegisterImageOffline(stateDir string, spec ec2.ImageSpec, logger *slog.Logger) (string, error) {
	if logger == nil {
		logger = slog.Default()
	}
	lock, err := lockStateDir(stateDir)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	creds, err := awsapi.NewCredentialStore(filepath.Join(stateDir, "credentials.json"))
	if err != nil {
		return "", fmt.Errorf("localcloud: %w", err)
	}
	dir := filepath.Join(stateDir, "ec2")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("localcloud: %w", err)
	}
	svc, err := ec2.New(ec2.Options{Env: awsapi.Env{StateDir: dir, Credentials: creds, Logger: logger}})
	if err != nil {
		return "", fmt.Errorf("localcloud: %w", err)
	}
	id, err := svc.RegisterImage(spec)
	if cerr := svc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return id, err
}

// Endpoint is the URL of the AWS endpoint, e.g. http://127.0.0.1:4566.
func (c *Cloud) Endpoint() string {
	if c.ln == nil {
		return ""
	}
	return "http://" + c.ln.Addr().String()
}

// Region is the emulated region.
func (c *Cloud) Region() string { return c.opts.Region }

// StateDir is the state directory.
func (c *Cloud) StateDir() string { return c.opts.StateDir }

// AccessKeyID and SecretAccessKey are the default root credentials (test/test).
const (
	AccessKeyID     = "test"
	SecretAccessKey = "test"
)

// EC2 gives Go tests direct access to the EC2 emulator (images, fault injection, instances).
func (c *Cloud) EC2() *ec2.Service { return c.ec2 }

// Credentials is the store of every credential the emulator accepts.
func (c *Cloud) Credentials() *awsapi.CredentialStore { return c.creds }

// RegisterBrokerImage registers (or updates) the broker image of version, as S4 describes.
func (c *Cloud) RegisterBrokerImage(binary, version string) (string, error) {
	return c.ec2.RegisterImage(ec2.BrokerImageSpec(binary, version, ""))
}

// KeepInterfacesOnTerminate turns on or off the fault that leaves a terminated instance's network
// interfaces attached to it (see ec2.Service.KeepInterfacesOnTerminate).
func (c *Cloud) KeepInterfacesOnTerminate(on bool) { c.ec2.KeepInterfacesOnTerminate(on) }

// KillInstance kills an instance hard (fault injection); it ends stopped.
func (c *Cloud) KillInstance(id string) error { return c.ec2.KillInstance(id) }

// CrashInstance kills an instance's program (fault injection); the instance stays running and
// the program is restarted as a crashed systemd service is.
func (c *Cloud) CrashInstance(id string) error { return c.ec2.CrashInstance(id) }

// ZoneDown takes an Availability Zone down, killing its instances; it returns their ids.
func (c *Cloud) ZoneDown(az string) ([]string, error) { return c.ec2.ZoneDown(az) }

// ZoneUp brings a zone back and boots the instances its outage stopped.
func (c *Cloud) ZoneUp(az string) ([]string, error) { return c.ec2.ZoneUp(az) }

// Done is closed once the cloud has shut down.
func (c *Cloud) Done() <-chan struct{} { return c.done }

// Close stops every instance process (SIGTERM, then SIGKILL after the grace period), saves all
// state and stops the endpoint. Instances keep their recorded state: a new Start on the same
// directory boots the ones that were running.
func (c *Cloud) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.shutdown()
		close(c.done)
	})
	return c.closeErr
}

func (c *Cloud) shutdown() error {
	var errs []error
	// Auto Scaling stops first, so it does not replace the instances EC2 is about to stop.
	// Instances stop next, while the endpoint still serves: a broker shutting down gracefully
	// may still talk to AWS (a last PutMetricData).
	if c.asg != nil {
		errs = append(errs, c.asg.Close())
	}
	if c.ec2 != nil {
		errs = append(errs, c.ec2.Close())
	}
	if c.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	} else if c.ln != nil {
		c.ln.Close()
	}
	if c.kms != nil {
		errs = append(errs, c.kms.Close())
	}
	if c.cw != nil {
		errs = append(errs, c.cw.Close())
	}
	if c.logs != nil {
		errs = append(errs, c.logs.Close())
	}
	if c.firehose != nil {
		errs = append(errs, c.firehose.Close())
	}
	if c.pca != nil {
		errs = append(errs, c.pca.Close())
	}
	if c.secrets != nil {
		errs = append(errs, c.secrets.Close())
	}
	if c.lockFile != nil {
		errs = append(errs, c.lockFile.Close())
	}
	return errors.Join(errs...)
}
