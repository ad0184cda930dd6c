package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Instance is what the agent learns about its instance from IMDSv2.
type Instance struct {
	ID               string // i-0123...
	Region           string
	AccountID        string // the identity document's accountId: S3 log keys name it, as MSK's do
	AvailabilityZone string
	PrivateIP        string // local-ipv4: the primary ENI's address, which brokers listen and advertise on
	InstanceType     string
	UserData         []byte // the boot document
}

// newIMDSClient returns an IMDSv2-only client. The SDK reads the endpoint
// from AWS_EC2_METADATA_SERVICE_ENDPOINT (the local cloud's per-instance
// IMDS) and otherwise uses 169.254.169.254. Falling back to IMDSv1 is off: the
// image requires tokens, so a v1 answer would mean something is wrong.
// The SDK's own retries are off: fetchInstance retries with a deadline, and
// one retry policy is easier to reason about than two nested ones.
func newIMDSClient() *imds.Client {
	return imds.New(imds.Options{EnableFallback: aws.FalseTernary, Retryer: aws.NopRetryer{}})
}

// imdsRetryDelay bounds the pause between IMDS attempts; the first attempts
// come quickly because IMDS is normally there from the first instant.
const imdsRetryDelay = 5 * time.Second

// fetchInstance reads the instance's identity, AZ, private IP and user data,
// retrying transient failures (IMDS not reachable yet, 5xx, throttling)
// until wait elapses. A missing user data document is not transient and
// fails at once.
func fetchInstance(ctx context.Context, client *imds.Client, wait time.Duration, logger *slog.Logger) (*Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	delay := 250 * time.Millisecond
	var lastErr error
	for attempt := 1; ; attempt++ {
		inst, err := fetchInstanceOnce(ctx, client)
		if err == nil {
			return inst, nil
		}
		if permanent(err) {
			return nil, err
		}
		// An attempt cut short by the deadline says only "canceled"; the
		// attempt before it says why IMDS did not answer.
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err
		}
		logger.Warn("instance metadata not available yet; retrying", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("instance metadata (IMDSv2 at %s) did not answer within %s: %w", imdsEndpoint(), wait, lastErr)
		case <-time.After(delay):
		}
		delay = min(2*delay, imdsRetryDelay)
	}
}

func fetchInstanceOnce(ctx context.Context, client *imds.Client) (*Instance, error) {
	doc, err := client.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		return nil, fmt.Errorf("reading the instance identity document: %w", err)
	}
	inst := &Instance{
		ID:               doc.InstanceID,
		Region:           doc.Region,
		AccountID:        doc.AccountID,
		AvailabilityZone: doc.AvailabilityZone,
		PrivateIP:        doc.PrivateIP,
		InstanceType:     doc.InstanceType,
	}
	// placement/availability-zone and local-ipv4 are the authoritative
	// sources; the identity document repeats them (and is used when the
	// category is missing, as in minimal emulators).
	if az, err := getMetadata(ctx, client, "placement/availability-zone"); err == nil {
		inst.AvailabilityZone = az
	} else if !notFound(err) {
		return nil, fmt.Errorf("reading placement/availability-zone: %w", err)
	}
	if ip, err := getMetadata(ctx, client, "local-ipv4"); err == nil {
		inst.PrivateIP = ip
	} else if !notFound(err) {
		return nil, fmt.Errorf("reading local-ipv4: %w", err)
	}
	switch {
	case inst.ID == "":
		return nil, errors.New("the instance identity document has no instanceId")
	case inst.AvailabilityZone == "":
		return nil, errors.New("instance metadata names no availability zone")
	case net.ParseIP(inst.PrivateIP) == nil:
		return nil, fmt.Errorf("instance metadata local-ipv4 %q is not an IP address", inst.PrivateIP)
	}

	ud, err := client.GetUserData(ctx, &imds.GetUserDataInput{})
	if err != nil {
		if notFound(err) {
			return nil, permanentError{fmt.Errorf("instance %s has no user data: it must be launched with a Tributary boot document as user data (the Terraform provider does this)", inst.ID)}
		}
		return nil, fmt.Errorf("reading user data: %w", err)
	}
	defer ud.Content.Close()
	// EC2 caps user data at 16 KiB; read a little more so Decode can say
	// "too large" instead of failing on a truncated document.
	inst.UserData, err = io.ReadAll(io.LimitReader(ud.Content, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading user data: %w", err)
	}
	return inst, nil
}

func getMetadata(ctx context.Context, client *imds.Client, path string) (string, error) {
	out, err := client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, 4096))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// notFound reports whether IMDS answered 404 (the category does not exist).
func notFound(err error) bool {
	var status interface{ HTTPStatusCode() int }
	return errors.As(err, &status) && status.HTTPStatusCode() == 404
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// imdsEndpoint is the IMDS endpoint the SDK uses, for error messages.
func imdsEndpoint() string {
	if v := strings.TrimSpace(os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")); v != "" {
		return v
	}
	return "http://169.254.169.254"
}

// subnetCIDR reads the IPv4 CIDR of the subnet of the interface with mac from
// IMDS, waiting a little for IMDS to list an interface attached a moment ago.
func subnetCIDR(ctx context.Context, client *imds.Client, mac string, wait time.Duration) (string, error) {
	if client == nil {
		client = newIMDSClient()
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	path := "network/interfaces/macs/" + strings.ToLower(mac) + "/subnet-ipv4-cidr-block"
	for {
		cidr, err := getMetadata(ctx, client, path)
		if err == nil && cidr != "" {
			return cidr, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("instance metadata did not give %s within %s: %v", path, wait, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
