package awsconfig

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/acmpca"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// recordingHTTPClient records the URL of every request and fails it, so a
// test sees which endpoint a client resolved without any server.
type recordingHTTPClient struct {
	mu   sync.Mutex
	urls []string
}

var errRecorded = errors.New("request recorded, not sent")

func (c *recordingHTTPClient) Do(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.urls = append(c.urls, req.URL.Scheme+"://"+req.URL.Host)
	return nil, errRecorded
}

func (c *recordingHTTPClient) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.urls) == 0 {
		return ""
	}
	return c.urls[len(c.urls)-1]
}

// isolateEnv clears every variable that could leak the developer's AWS setup
// into a test and points the shared files at empty temporary files.
func isolateEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	configFile := filepath.Join(dir, "config")
	credsFile := filepath.Join(dir, "credentials")
	for _, f := range []string{configFile, credsFile} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", configFile)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credsFile)
	return configFile
}

// callService makes one cheap call with the client for s and returns the
// scheme and host it was sent to.
func callService(t *testing.T, cl *Clients, rec *recordingHTTPClient, s Service) string {
	t.Helper()
	ctx := context.Background()
	var err error
	switch s {
	case EC2:
		_, err = cl.EC2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	case KMS:
		_, err = cl.KMS.ListKeys(ctx, &kms.ListKeysInput{})
	case IAM:
		_, err = cl.IAM.ListRoles(ctx, &iam.ListRolesInput{})
	case STS:
		_, err = cl.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	case CloudWatch:
		_, err = cl.CloudWatch.ListMetrics(ctx, &cloudwatch.ListMetricsInput{})
	case AutoScaling:
		_, err = cl.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	case SecretsManager:
		_, err = cl.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: new(string)})
	case ACMPCA:
		_, err = cl.ACMPCA.ListCertificateAuthorities(ctx, &acmpca.ListCertificateAuthoritiesInput{})
	case S3:
		_, err = cl.S3.ListBuckets(ctx, &s3.ListBucketsInput{})
	case Firehose:
		_, err = cl.Firehose.ListDeliveryStreams(ctx, &firehose.ListDeliveryStreamsInput{})
	default:
		t.Fatalf("unknown service %q", s)
	}
	if !errors.Is(err, errRecorded) {
		t.Fatalf("%s call: want the recorded-request error, got %v", s, err)
	}
	return rec.last()
}

func TestEndpointPrecedence(t *testing.T) {
	const (
		block      = "http://block.example:1"
		envService = "http://env-service.example:2"
		envGlobal  = "http://env-global.example:3"
		sharedSvc  = "http://shared-service.example:4"
		sharedAll  = "http://shared-global.example:5"
	)
	defaults := map[Service]string{
		EC2:            "https://ec2.us-east-1.amazonaws.com",
		KMS:            "https://kms.us-east-1.amazonaws.com",
		IAM:            "https://iam.amazonaws.com",
		STS:            "https://sts.us-east-1.amazonaws.com",
		CloudWatch:     "https://monitoring.us-east-1.amazonaws.com",
		AutoScaling:    "https://autoscaling.us-east-1.amazonaws.com",
		SecretsManager: "https://secretsmanager.us-east-1.amazonaws.com",
		ACMPCA:         "https://acm-pca.us-east-1.amazonaws.com",
		S3:             "https://s3.us-east-1.amazonaws.com",
		Firehose:       "https://firehose.us-east-1.amazonaws.com",
	}
	tests := []struct {
		name       string
		block      bool
		envService bool
		envGlobal  bool
		sharedSvc  bool
		sharedAll  bool
		want       string // "" means the SDK's AWS default for the service
	}{
		{name: "nothing set: AWS default"},
		{name: "shared config global", sharedAll: true, want: sharedAll},
		{name: "shared config service beats shared global", sharedSvc: true, sharedAll: true, want: sharedSvc},
		{name: "AWS_ENDPOINT_URL beats shared config", envGlobal: true, sharedSvc: true, sharedAll: true, want: envGlobal},
		{name: "AWS_ENDPOINT_URL_<SERVICE> beats AWS_ENDPOINT_URL", envService: true, envGlobal: true, sharedSvc: true, want: envService},
		{name: "endpoints block beats everything", block: true, envService: true, envGlobal: true, sharedSvc: true, sharedAll: true, want: block},
		{name: "endpoints block alone", block: true, want: block},
	}
	for _, svc := range Services {
		for _, tt := range tests {
			t.Run(string(svc)+"/"+tt.name, func(t *testing.T) {
				configFile := isolateEnv(t)
				var shared strings.Builder
				shared.WriteString("[default]\n")
				if tt.sharedAll {
					shared.WriteString("endpoint_url = " + sharedAll + "\n")
				}
				if tt.sharedSvc {
					// The section's key is the service's SDK id in snake case.
					key := strings.TrimPrefix(strings.ToLower(EnvVarName(svc)), "aws_endpoint_url_")
					shared.WriteString("services = local\n\n[services local]\n" + key + " =\n  endpoint_url = " + sharedSvc + "\n")
				}
				if err := os.WriteFile(configFile, []byte(shared.String()), 0o600); err != nil {
					t.Fatal(err)
				}
				if tt.envService {
					t.Setenv(EnvVarName(svc), envService)
				}
				if tt.envGlobal {
					t.Setenv("AWS_ENDPOINT_URL", envGlobal)
				}
				cfg := Config{
					Region:                    "us-east-1",
					AccessKey:                 "AKIDEXAMPLE",
					SecretKey:                 "secret",
					SkipCredentialsValidation: true,
					SkipRequestingAccountID:   true,
					SkipMetadataAPICheck:      true,
					MaxRetries:                1,
				}
				if tt.block {
					cfg.Endpoints = map[Service]string{svc: block}
				}
				rec := &recordingHTTPClient{}
				cfg.HTTPClient = rec
				cl, err := New(context.Background(), cfg)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				want := tt.want
				if want == "" {
					want = defaults[svc]
				}
				if got := callService(t, cl, rec, svc); got != want {
					t.Errorf("endpoint = %q, want %q", got, want)
				}
			})
		}
	}
}

// TestEndpointBlockIsPerService checks that overriding one service leaves the
// others on their own resolution.
func TestEndpointBlockIsPerService(t *testing.T) {
	isolateEnv(t)
	t.Setenv("AWS_ENDPOINT_URL", "http://env-global.example:3")
	rec := &recordingHTTPClient{}
	cl, err := New(context.Background(), Config{
		Region:                    "us-east-1",
		AccessKey:                 "AKIDEXAMPLE",
		SecretKey:                 "secret",
		Endpoints:                 map[Service]string{KMS: "http://kms-block.example:9"},
		SkipCredentialsValidation: true,
		SkipRequestingAccountID:   true,
		SkipMetadataAPICheck:      true,
		MaxRetries:                1,
		HTTPClient:                rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := callService(t, cl, rec, KMS); got != "http://kms-block.example:9" {
		t.Errorf("kms endpoint = %q", got)
	}
	if got := callService(t, cl, rec, EC2); got != "http://env-global.example:3" {
		t.Errorf("ec2 endpoint = %q", got)
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{
			name:    "unknown region",
			cfg:     Config{Region: "us-moon-1", AccessKey: "a", SecretKey: "b", SkipCredentialsValidation: true, SkipRequestingAccountID: true},
			wantErr: "invalid AWS region",
		},
		{
			name: "unknown region allowed by skip_region_validation",
			cfg: Config{Region: "us-moon-1", AccessKey: "a", SecretKey: "b", SkipRegionValidation: true,
				SkipCredentialsValidation: true, SkipRequestingAccountID: true},
		},
		{
			name:    "no region",
			cfg:     Config{AccessKey: "a", SecretKey: "b", SkipCredentialsValidation: true, SkipRequestingAccountID: true},
			wantErr: "no AWS region",
		},
		{
			name:    "half static credentials",
			cfg:     Config{Region: "us-east-1", AccessKey: "a"},
			wantErr: "access_key and secret_key must be set together",
		},
		{
			name:    "credential validation calls STS",
			cfg:     Config{Region: "us-east-1", AccessKey: "a", SecretKey: "b", MaxRetries: 1},
			wantErr: "sts:GetCallerIdentity",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			tt.cfg.SkipMetadataAPICheck = true
			tt.cfg.HTTPClient = &recordingHTTPClient{}
			_, err := New(context.Background(), tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestPartitionForRegion(t *testing.T) {
	for region, want := range map[string]string{
		"us-east-1":     "aws",
		"cn-north-1":    "aws-cn",
		"us-gov-west-1": "aws-us-gov",
		"local-1":       "aws",
	} {
		if got := PartitionForRegion(region); got != want {
			t.Errorf("PartitionForRegion(%q) = %q, want %q", region, got, want)
		}
	}
}
