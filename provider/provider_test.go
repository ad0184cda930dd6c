package provider

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/tributary/tributary/internal/awsconfig"
	"github.com/tributary/tributary/internal/localcloud"
)

// Acceptance tests run with TF_ACC=1 and the Terraform CLI on PATH (or
// TF_ACC_TERRAFORM_PATH). Where they run:
//
//   - default: a local cloud started in this test process (temporary state
//     directory, a free loopback port), with broker images registered from a
//     tributary-broker binary built by `go build` into a temporary directory;
//   - TRIBUTARY_ACC_ENDPOINT=moto: a moto_server the test binary starts on a
//     free loopback port and stops at the end. moto runs no instances, so the
//     tests about running brokers skip, saying so, and the others copy a
//     public image of the emulator into the account as the broker images;
//   - TRIBUTARY_ACC_ENDPOINT=http://127.0.0.1:4566: an emulator already running
//     there (LocalStack, or `tributary-localcloud serve`), with test/test
//     credentials unless AWS_ACCESS_KEY_ID is set. The broker images must be
//     registered there: versions TRIBUTARY_ACC_BROKER_VERSION (default
//     acc-1) and TRIBUTARY_ACC_BROKER_VERSION_NEXT (default acc-2, for the
//     rolling test). If that emulator runs no instances (LocalStack's free
//     edition), say so in TRIBUTARY_ACC_NO_INSTANCES (its name and version):
//     the tests then behave as against moto. Without it, a broker that does
//     not serve Kafka fails the test;
//   - TRIBUTARY_ACC_ENDPOINT=aws: real AWS through the SDK's default chain
//     (AWS_PROFILE / AWS_REGION ...), with images built by `make ami` named by
//     the same two variables. Run it from inside the VPC: the tests produce
//     and consume through the brokers' private addresses.
const (
	envAccEndpoint          = "TRIBUTARY_ACC_ENDPOINT"
	envAccBrokerVersion     = "TRIBUTARY_ACC_BROKER_VERSION"
	envAccBrokerVersionNext = "TRIBUTARY_ACC_BROKER_VERSION_NEXT"
	envAccNoInstances       = "TRIBUTARY_ACC_NO_INSTANCES"
)

// testAccProtoV6ProviderFactories serves the provider in-process to the
// Terraform CLI the tests drive.
var testAccProtoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"tributary": providerserver.NewProtocol6WithError(New("test")()),
}

// accEnv is where the acceptance tests run, set up once by TestMain.
var accEnv struct {
	endpoint      string // "" for real AWS
	region        string
	version       string
	versionNext   string
	cloud         *localcloud.Cloud
	cloudLog      string
	setupErr      error
	clients       *awsconfig.Clients
	brokerBinary  string
	localCloudDir string
	// noInstances names the emulator when it runs no instances (moto,
	// LocalStack's free edition); empty where brokers really run.
	noInstances string
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if err := raiseAccParallelism(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if os.Getenv("TF_ACC") == "" {
		return m.Run()
	}
	cliDir, err := os.MkdirTemp("", "tributary-acc-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(cliDir)
	if err := quietCLIConfig(cliDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	accEnv.version = envOr(envAccBrokerVersion, "acc-1")
	accEnv.versionNext = envOr(envAccBrokerVersionNext, "acc-2")
	accEnv.region = envOr("AWS_REGION", "us-east-1")
	switch ep := os.Getenv(envAccEndpoint); ep {
	case "aws":
	case "":
		cleanup, err := startAccLocalCloud()
		if err != nil {
			accEnv.setupErr = err
			return m.Run()
		}
		defer cleanup()
	case "moto":
		dir, err := os.MkdirTemp("", "tributary-acc-moto-")
		if err != nil {
			accEnv.setupErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		moto, err := startMoto(dir)
		if err != nil {
			accEnv.setupErr = err
			return m.Run()
		}
		defer moto.Stop()
		accEnv.endpoint = moto.endpoint
		accEnv.noInstances = fmt.Sprintf("moto %s (moto_server at %s)", moto.version, moto.endpoint)
		fmt.Fprintf(os.Stderr, "acceptance tests against %s, which runs no instances\n", accEnv.noInstances)
	default:
		accEnv.endpoint = ep
		if name := os.Getenv(envAccNoInstances); name != "" {
			accEnv.noInstances = fmt.Sprintf("%s (at %s)", name, ep)
		}
	}
	accEnv.clients, accEnv.setupErr = accClients()
	if accEnv.setupErr == nil && accEnv.noInstances != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		accEnv.setupErr = copyBrokerImages(ctx, accEnv.version, accEnv.versionNext)
		cancel()
	}
	return m.Run()
}

// envCLIConfig is the Terraform CLI's configuration file variable.
const envCLIConfig = "TF_CLI_CONFIG_FILE"

// quietCLIConfig points TF_CLI_CONFIG_FILE at an empty file it writes in dir
// when the variable names a file that does not exist (CI's environment sets
// /root/.terraformrc, which is not there): Terraform otherwise warns "Unable
// to open CLI configuration file" in every step of every acceptance test, a
// dozen lines of noise around each real error. An empty file configures what
// a missing one does. A file that exists is the user's configuration and is
// kept; without the variable Terraform looks for ~/.terraformrc itself and
// says nothing when it is missing.
func quietCLIConfig(dir string) error {
	path := os.Getenv(envCLIConfig)
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	empty := filepath.Join(dir, "terraformrc")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return fmt.Errorf("writing an empty Terraform CLI configuration for %s=%s, which does not exist: %w", envCLIConfig, path, err)
	}
	return os.Setenv(envCLIConfig, empty)
}

// envAccParallel bounds how many acceptance tests run at once.
const envAccParallel = "TRIBUTARY_ACC_PARALLEL"

// defaultAccParallel is how many acceptance tests run at once unless
// -parallel or TRIBUTARY_ACC_PARALLEL says otherwise. Each test spends
// most of its time waiting: on the brokers' polls, Auto Scaling's passes,
// alarm periods, certificate lifetimes. Run one after another they kept a
// 2-core machine at a load of 1 to 3 for about 21 minutes; go test's own
// default, GOMAXPROCS (2 here), leaves most of that idle. Four at once is
// at most four clusters (a dozen broker processes beside the one local
// cloud, under 1 GiB of memory) and four Terraform CLIs, which two cores
// carry without stretching the tests' bounds (docs/terraform-provider.md
// has the timings).
const defaultAccParallel = 4

// accSlowFirst names the acceptance tests that take minutes however
// little else runs (a certificate's lifetime, an alarm's periods, six
// rolls): they start first, so the run is not left waiting on one of them
// after the others finished. Longest first.
var accSlowFirst = []string{
	"TestAccCluster_certRotation",
	"TestAccCluster_alarmFires",
	"TestAccCluster_authChangeInPlace",
}

// accSlots admits the parallel acceptance tests, limit at a time, the
// slow ones first, then in the order the tests are declared. go test
// resumes its parallel tests in no particular order; this does.
var accSlots = newAccScheduler(defaultAccParallel, accSlowFirst)

type accScheduler struct {
	mu      sync.Mutex
	cond    *sync.Cond
	limit   int
	running int
	waiting []*testing.T // registered, not yet admitted, in declaration order
	rank    map[string]int
}

func newAccScheduler(limit int, first []string) *accScheduler {
	s := &accScheduler{limit: limit, rank: map[string]int{}}
	s.cond = sync.NewCond(&s.mu)
	for i, name := range first {
		s.rank[name] = len(first) - i
	}
	return s
}

// accParallel makes an acceptance test parallel and holds it until it
// has one of the slots. It is the first thing each TestAcc test does
// (TestEveryAccTestRunsInParallel checks): the registration happens while
// go test runs its tests one by one, so every test is known before the
// first one is admitted.
func accParallel(t *testing.T) {
	t.Helper()
	accSlots.register(t)
	t.Parallel()
	accSlots.admit(t)
}

func (s *accScheduler) register(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiting = append(s.waiting, t)
}

// admit blocks until t is the next test to run and a slot is free, and
// frees the slot when t ends.
func (s *accScheduler) admit(t *testing.T) {
	s.mu.Lock()
	for s.running >= s.limit || s.next() != t {
		s.cond.Wait()
	}
	s.waiting = slices.DeleteFunc(s.waiting, func(w *testing.T) bool { return w == t })
	s.running++
	s.mu.Unlock()
	s.cond.Broadcast()
	t.Cleanup(func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
		s.cond.Broadcast()
	})
}

// next is the waiting test to admit next: the slowest named in
// accSlowFirst, else the first declared. Called with mu held.
func (s *accScheduler) next() *testing.T {
	var best *testing.T
	for _, w := range s.waiting {
		if best == nil || s.rank[w.Name()] > s.rank[best.Name()] {
			best = w
		}
	}
	return best
}

// raiseAccParallelism sets the number of acceptance tests that run at once
// to -parallel when given on the command line, else to
// TRIBUTARY_ACC_PARALLEL or defaultAccParallel, and lifts go test's own
// bound for this package above it so that accSlots decides the order.
// Only this package's bound changes: a -parallel for `go test ./...` would
// also apply to the CPU-bound tests of other packages.
func raiseAccParallelism() error {
	if !flag.Parsed() {
		flag.Parse()
	}
	n := defaultAccParallel
	given := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			given = true
		}
	})
	if given {
		p, err := strconv.Atoi(flag.Lookup("test.parallel").Value.String())
		if err != nil || p < 1 {
			return fmt.Errorf("-parallel %s: want a whole number of tests, 1 or more", flag.Lookup("test.parallel").Value)
		}
		n = p
	} else if v := os.Getenv(envAccParallel); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 {
			return fmt.Errorf("%s=%q: want a whole number of tests, 1 or more", envAccParallel, v)
		}
		n = p
	}
	accSlots.limit = n
	// Every test may be resumed at once; accSlots admits n of them. go
	// test's bound must not be lower: a test accSlots waits for that go
	// test does not resume would hold the others forever. So it is raised
	// also without TF_ACC, when the acceptance tests skip after accParallel.
	if err := flag.Set("test.parallel", "1000"); err != nil {
		return fmt.Errorf("setting -test.parallel: %w", err)
	}
	return nil
}

// skipWithoutRunningBrokers skips a test about running brokers, naming the
// reason, when the endpoint is an emulator that runs no instances. Against
// the local cloud or AWS such a test always runs, and a broker that does not
// serve Kafka fails it.
func skipWithoutRunningBrokers(t *testing.T) {
	t.Helper()
	if accEnv.noInstances != "" {
		t.Skipf("this test needs brokers that serve Kafka, and %s runs no instances", accEnv.noInstances)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// startAccLocalCloud builds the broker, starts a local cloud in-process and
// registers the broker image twice (two versions, for the rolling test).
func startAccLocalCloud() (func(), error) {
	dir, err := os.MkdirTemp("", "tributary-acc-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	root, err := moduleRoot()
	if err != nil {
		cleanup()
		return nil, err
	}
	accEnv.brokerBinary = filepath.Join(dir, "bin", "tributary-broker")
	build := exec.Command("go", "build", "-o", accEnv.brokerBinary, "./broker/cmd/tributary-broker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("building tributary-broker for the broker image: %v\n%s", err, out)
	}
	accEnv.cloudLog = filepath.Join(dir, "localcloud.log")
	logFile, err := os.Create(accEnv.cloudLog)
	if err != nil {
		cleanup()
		return nil, err
	}
	accEnv.localCloudDir = filepath.Join(dir, "cloud")
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir:        accEnv.localCloudDir,
		BrokerBinary:    accEnv.brokerBinary,
		BrokerVersion:   accEnv.version,
		StopGracePeriod: 10 * time.Second,
		// EC2 Auto Scaling checks its groups about every minute; the
		// tests' groups are checked more often so heals and rolls are quick.
		AutoScalingInterval: 3 * time.Second,
		Logger:              slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		logFile.Close()
		cleanup()
		return nil, fmt.Errorf("starting the local cloud: %w", err)
	}
	if _, err := cloud.RegisterBrokerImage(accEnv.brokerBinary, accEnv.versionNext); err != nil {
		cloud.Close()
		logFile.Close()
		cleanup()
		return nil, fmt.Errorf("registering broker image %s: %w", accEnv.versionNext, err)
	}
	accEnv.cloud = cloud
	accEnv.endpoint = cloud.Endpoint()
	accEnv.region = cloud.Region()
	return func() {
		if err := cloud.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the local cloud:", err)
		}
		logFile.Close()
		if os.Getenv("TRIBUTARY_ACC_KEEP") != "" {
			fmt.Fprintln(os.Stderr, "kept the acceptance test directory", dir)
			return
		}
		cleanup()
	}, nil
}

// moduleRoot finds the directory of go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the Go module")
	}
	return filepath.Dir(gomod), nil
}

// accClients builds AWS clients the tests use to look behind Terraform's back.
func accClients() (*awsconfig.Clients, error) {
	cfg := awsconfig.Config{Region: accEnv.region, SkipMetadataAPICheck: accEnv.endpoint != ""}
	if accEnv.endpoint != "" {
		cfg.Endpoints = map[awsconfig.Service]string{}
		for _, s := range awsconfig.Services {
			cfg.Endpoints[s] = accEnv.endpoint
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			cfg.AccessKey, cfg.SecretKey = "test", "test"
		}
		cfg.SkipRegionValidation = true
	}
	cl, err := awsconfig.New(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("AWS clients for the acceptance tests: %w", err)
	}
	return cl, nil
}

// testAccPreCheck fails the test with the precise reason when the
// environment could not be set up.
func testAccPreCheck(t *testing.T) {
	t.Helper()
	if os.Getenv(resource.EnvTfAcc) == "" {
		// As resource.Test does: acceptance tests run only with TF_ACC
		// set (make test sets it), also those that call AWS first.
		t.Skipf("Acceptance tests skipped unless env '%s' set", resource.EnvTfAcc)
	}
	if accEnv.setupErr != nil {
		t.Fatalf("acceptance test environment: %v", accEnv.setupErr)
	}
	if accEnv.clients == nil {
		t.Fatal("acceptance test environment not set up (TestMain did not run with TF_ACC=1)")
	}
}

// testAccProviderConfig is the provider block for the environment.
func testAccProviderConfig() string {
	if accEnv.endpoint == "" {
		return fmt.Sprintf("provider \"tributary\" {\n  region = %q\n}\n", accEnv.region)
	}
	creds := ""
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		creds = "  access_key = \"test\"\n  secret_key = \"test\"\n"
	}
	return fmt.Sprintf(`provider "tributary" {
  region = %[1]q
%[3]s  skip_metadata_api_check = true
  skip_region_validation  = true
%[2]s}
`, accEnv.region, accEndpoints(accEnv.endpoint), creds)
}

// accEndpoints is the provider's endpoints block sending every service the
// provider calls to one emulator: a service left out would go to AWS.
func accEndpoints(endpoint string) string {
	var b strings.Builder
	b.WriteString("  endpoints {\n")
	for _, svc := range []string{"ec2", "kms", "iam", "sts", "cloudwatch", "autoscaling", "secretsmanager", "acmpca", "s3", "firehose"} {
		fmt.Fprintf(&b, "    %s = %q\n", svc, endpoint)
	}
	b.WriteString("  }\n")
	return b.String()
}
