package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/tributary/tributary/provider/internal/fleet"
)

// motoServer is a moto_server process the acceptance tests started: moto is
// the AWS emulator under LocalStack's free edition. It serves EC2, KMS, IAM,
// STS and CloudWatch on one endpoint and runs no instances.
type motoServer struct {
	cmd      *exec.Cmd
	endpoint string
	version  string
	exited   chan struct{}
}

// motoStartWait bounds the wait for moto_server to answer (it imports most
// of botocore first: a few seconds, more on a busy machine).
const motoStartWait = 90 * time.Second

// startMoto starts moto_server on a free loopback port, logging into dir.
// A port taken between choosing and binding makes moto exit at once; the
// start is then retried on another port, a bounded number of times.
func startMoto(dir string) (*motoServer, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("%s=moto needs moto_server on PATH (pip install 'moto[server]==5.2.*'): %w", envAccEndpoint, err)
	}
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		m, err := startMotoOnce(bin, filepath.Join(dir, fmt.Sprintf("moto-%d.log", attempt)))
		if err == nil {
			m.version = motoVersion()
			return m, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func startMotoOnce(bin, logPath string) (*motoServer, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so Stop ends whatever it spawned; and killed
	// with the test binary when that dies without running its cleanup (a
	// test timeout panics).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	m := &motoServer{cmd: cmd, endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.exited) }()
	deadline := time.Now().Add(motoStartWait)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(m.endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case <-m.exited:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("moto_server on port %d exited before answering: %s", port, lastLines(string(out), 5))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("moto_server on port %d did not answer within %s (log: %s)", port, motoStartWait, logPath)
		}
	}
}

// Stop ends moto_server and everything in its process group: SIGTERM, then
// SIGKILL after 5 s.
func (m *motoServer) Stop() {
	pgid := m.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-m.exited
	}
}

func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// motoVersion asks the Python on PATH for moto's version: moto_server has
// no version flag, and the moto_server on PATH is a console script of that
// Python's moto (with pyenv, both are shims of the same interpreter).
func motoVersion() string {
	out, err := exec.Command("python3", "-c", "import moto; print(moto.__version__)").Output()
	if err != nil {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(out))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// copyBrokerImages makes sure the account of an emulator that runs no
// instances has a broker image of each acceptance version, for the
// architecture of the acceptance instance type: such an emulator cannot
// boot a broker anyway, so any image of the right architecture copied into
// the account (CopyImage of one of the emulator's public images) and tagged
// as the broker image data source expects stands in for it.
func copyBrokerImages(ctx context.Context, versions ...string) error {
	client := accEnv.clients.EC2
	arch := instanceArchitecture(accInstanceType())
	for _, version := range versions {
		have, err := findBrokerImages(ctx, client, version, arch)
		if err != nil {
			return err
		}
		if len(have) > 0 {
			continue
		}
		src, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{
			Owners:  []string{"amazon"},
			Filters: []ec2types.Filter{{Name: aws.String("architecture"), Values: []string{arch}}, {Name: aws.String("state"), Values: []string{"available"}}},
		})
		if err != nil {
			return fmt.Errorf("listing the emulator's public %s images: %w", arch, err)
		}
		if len(src.Images) == 0 {
			return fmt.Errorf("the emulator has no public %s image to copy as broker image %s", arch, version)
		}
		name := fmt.Sprintf("tributary-broker-%s-%s", version, arch)
		out, err := client.CopyImage(ctx, &ec2.CopyImageInput{
			Name: aws.String(name), SourceImageId: src.Images[0].ImageId, SourceRegion: aws.String(accEnv.region),
			Description: aws.String("stands in for broker " + version + " in an emulator that runs no instances"),
		})
		if err != nil {
			return fmt.Errorf("copying image %s as %s: %w", aws.ToString(src.Images[0].ImageId), name, err)
		}
		// Tagged with CreateTags, which every emulator honours (moto 5.2
		// drops the TagSpecifications of RegisterImage, for one).
		if _, err := client.CreateTags(ctx, &ec2.CreateTagsInput{
			Resources: []string{aws.ToString(out.ImageId)},
			Tags: []ec2types.Tag{
				{Key: aws.String(fleet.TagVersion), Value: aws.String(version)},
				{Key: aws.String(fleet.TagComponent), Value: aws.String("broker")},
			},
		}); err != nil {
			return fmt.Errorf("tagging image %s: %w", aws.ToString(out.ImageId), err)
		}
	}
	return nil
}
