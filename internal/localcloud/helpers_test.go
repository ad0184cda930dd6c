package localcloud_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/localcloud"
	lcec2 "github.com/tributary/tributary/internal/localcloud/ec2"
)

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
	probeDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "localcloud-test-")
	if err != nil {
		panic(err)
	}
	probeDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bootProbe builds testdata/bootprobe once per test run: the program emulated instances run.
func bootProbe(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		probePath = filepath.Join(probeDir, "bootprobe")
		// go test puts the go command of its toolchain first on PATH.
		cmd := exec.Command("go", "build", "-o", probePath, "./testdata/bootprobe")
		out, err := cmd.CombinedOutput()
		if err != nil {
			probeErr = errors.New("building bootprobe: " + err.Error() + "\n" + string(out))
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probePath
}

// testLogger discards the emulator's logs unless the test runs with -v.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startCloud starts a local cloud on a random loopback port with a temporary state directory.
func startCloud(t *testing.T, dir string) *localcloud.Cloud {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: dir, StopGracePeriod: 5 * time.Second, TransitionDelay: 20 * time.Millisecond, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the local cloud: %v", err)
		}
	})
	return c
}

func sdkConfig(c *localcloud.Cloud) aws.Config {
	return aws.Config{
		Region:       c.Region(),
		BaseEndpoint: aws.String(c.Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, ""),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
		HTTPClient:   &http.Client{Transport: drainSafeTransport{http.DefaultTransport.(*http.Transport).Clone()}},
	}
}

func ec2Client(c *localcloud.Cloud) *ec2.Client { return ec2.NewFromConfig(sdkConfig(c)) }

// registerImage registers an image; with program "" its instances run without a process.
func registerImage(t *testing.T, c *localcloud.Cloud, name, program string) string {
	t.Helper()
	id, err := c.EC2().RegisterImage(lcec2.ImageSpec{Name: name, Binary: program, Tags: map[string]string{"purpose": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := errorCode(err); got != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describeInstance(t *testing.T, client *ec2.Client, id string) ec2types.Instance {
	t.Helper()
	out, err := client.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0]
}

func waitInstanceState(t *testing.T, client *ec2.Client, id string, state ec2types.InstanceStateName) ec2types.Instance {
	t.Helper()
	var inst ec2types.Instance
	eventually(t, "instance "+id+" "+string(state), 20*time.Second, func() error {
		inst = describeInstance(t, client, id)
		if inst.State.Name != state {
			return errors.New("state " + string(inst.State.Name))
		}
		return nil
	})
	return inst
}

func waitVolumeState(t *testing.T, client *ec2.Client, id string, state ec2types.VolumeState) ec2types.Volume {
	t.Helper()
	var v ec2types.Volume
	eventually(t, "volume "+id+" "+string(state), 10*time.Second, func() error {
		out, err := client.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err != nil {
			return err
		}
		v = out.Volumes[0]
		if v.State != state {
			return errors.New("state " + string(v.State))
		}
		if len(v.Attachments) > 0 && v.Attachments[0].State != ec2types.VolumeAttachmentStateAttached {
			return errors.New("attachment " + string(v.Attachments[0].State))
		}
		return nil
	})
	return v
}

func defaultSubnet(t *testing.T, client *ec2.Client, az string) ec2types.Subnet {
	t.Helper()
	out, err := client.DescribeSubnets(context.Background(), &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("availability-zone"), Values: []string{az}},
		{Name: aws.String("default-for-az"), Values: []string{"true"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Subnets) != 1 {
		t.Fatalf("default subnets in %s: %d", az, len(out.Subnets))
	}
	return out.Subnets[0]
}

func imageID(t *testing.T, c *localcloud.Cloud, name string) string {
	t.Helper()
	out, err := ec2Client(c).DescribeImages(context.Background(), &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{name}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 1 {
		t.Fatalf("%d images named %s", len(out.Images), name)
	}
	return aws.ToString(out.Images[0].ImageId)
}

// localTypes are instance types of this machine's architecture (local images default to it).
func localTypes() (small, large ec2types.InstanceType) {
	if lcec2.LocalArchitecture() == "arm64" {
		return ec2types.InstanceTypeM7gLarge, ec2types.InstanceTypeM7gXlarge
	}
	return ec2types.InstanceTypeM7iLarge, ec2types.InstanceTypeM7iXlarge
}

// drainSafeTransport hides io.WriterTo on request bodies. smithy-go closes a request body once
// the response headers arrive, and its WriteTo then returns io.EOF as an error; net/http's
// final drain of the body can run after that (a loopback server answers fast enough), fails,
// and tears the connection down under the response ("use of closed network connection"). The
// SDK's default retryer retries such errors; these tests use no retries, so they avoid the race.
type drainSafeTransport struct{ base http.RoundTripper }

func (t drainSafeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return t.base.RoundTrip(r)
}
