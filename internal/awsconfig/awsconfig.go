// Package awsconfig turns the provider's AWS settings (region, profile,
// credentials, assume_role, endpoint overrides and the skip_* switches) into
// ready AWS SDK v2 clients for the services Tributary uses.
//
// Endpoint precedence matches terraform-provider-aws:
//
//  1. the provider's `endpoints {}` block,
//  2. AWS_ENDPOINT_URL_<SERVICE> (for example AWS_ENDPOINT_URL_EC2),
//  3. AWS_ENDPOINT_URL,
//  4. the shared config file (a `services` section, then `endpoint_url` in the profile),
//  5. the SDK's default AWS endpoint for the region.
//
// Steps 2-5 are the SDK's own resolution; this package adds step 1 by setting
// the client's BaseEndpoint, which the SDK ranks above everything else. The
// order is pinned by a table test that observes the URL each client really calls.
package awsconfig

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
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

// Service names a service that accepts an endpoint override. The values are
// the attribute names of the provider's `endpoints {}` block.
type Service string

// The services Tributary calls.
const (
	EC2        Service = "ec2"
	KMS        Service = "kms"
	IAM        Service = "iam"
	STS        Service = "sts"
	CloudWatch Service = "cloudwatch"
	// AutoScaling is EC2 Auto Scaling: each broker is a group of one.
	AutoScaling Service = "autoscaling"
	// SecretsManager holds SCRAM passwords a tributary_scram_user reads.
	SecretsManager Service = "secretsmanager"
	// ACMPCA gives the certificates of the client CAs that
	// certificate_authority_arns names (AWS Private CA).
	ACMPCA Service = "acmpca"
	// S3 holds the bucket of logging.s3, which a plan checks exists.
	S3 Service = "s3"
	// Firehose holds the delivery stream of logging.firehose, which a plan
	// checks exists.
	Firehose Service = "firehose"
)

// Services lists every service that accepts an endpoint override, in the
// order the provider documents them.
var Services = []Service{EC2, KMS, IAM, STS, CloudWatch, AutoScaling, SecretsManager, ACMPCA, S3, Firehose}

// AssumeRole describes a role to assume with the base credentials.
type AssumeRole struct {
	RoleARN     string
	SessionName string
	ExternalID  string
	Duration    time.Duration
	Policy      string
}

// Config is the provider-level AWS configuration. Zero values mean "use the
// SDK default chain".
type Config struct {
	Region                 string
	Profile                string
	AccessKey              string
	SecretKey              string
	Token                  string
	SharedConfigFiles      []string
	SharedCredentialsFiles []string
	AssumeRole             *AssumeRole
	// Endpoints holds the `endpoints {}` block; empty values are ignored.
	Endpoints map[Service]string
	// MaxRetries caps SDK retries (0: the SDK default).
	MaxRetries int

	SkipCredentialsValidation bool
	SkipRequestingAccountID   bool
	SkipMetadataAPICheck      bool
	SkipRegionValidation      bool

	// HTTPClient replaces the SDK's HTTP client (tests).
	HTTPClient config.HTTPClient
}

// Clients bundles the configured service clients and what was learned about
// the caller while building them.
type Clients struct {
	Config      aws.Config
	EC2         *ec2.Client
	KMS         *kms.Client
	IAM         *iam.Client
	STS         *sts.Client
	CloudWatch  *cloudwatch.Client
	AutoScaling *autoscaling.Client
	// SecretsManager reads the passwords of tributary_scram_user's
	// password_secret_arn.
	SecretsManager *secretsmanager.Client
	// ACMPCA reads the certificates of client_authentication.tls's
	// certificate_authority_arns.
	ACMPCA *acmpca.Client
	// S3 checks that the bucket of logging.s3 exists. With an endpoint
	// override (the block, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL: an
	// emulator) it addresses buckets path-style, as emulators serve them.
	S3 *s3.Client
	// Firehose checks that the delivery stream of logging.firehose exists.
	Firehose *firehose.Client

	Region string
	// STSConfig is Config with the STS endpoint of the `endpoints {}`
	// block as its BaseEndpoint: what signs IAM identity tokens
	// (broker/iamauth), which must name the STS endpoint the brokers ask.
	STSConfig aws.Config
	// AccountID and Partition are empty when skip_requesting_account_id is set.
	AccountID string
	Partition string
}

// New loads the SDK configuration and builds the clients. It validates the
// region and credentials and asks STS for the account id, unless the
// corresponding skip switches are set.
func New(ctx context.Context, c Config) (*Clients, error) {
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if len(c.SharedConfigFiles) > 0 {
		opts = append(opts, config.WithSharedConfigFiles(c.SharedConfigFiles))
	}
	if len(c.SharedCredentialsFiles) > 0 {
		opts = append(opts, config.WithSharedCredentialsFiles(c.SharedCredentialsFiles))
	}
	if c.AccessKey != "" || c.SecretKey != "" {
		if c.AccessKey == "" || c.SecretKey == "" {
			return nil, errors.New("access_key and secret_key must be set together")
		}
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, c.Token)))
	}
	if c.SkipMetadataAPICheck {
		// Keeps the default chain from waiting on an instance metadata
		// service that is not there (laptops, CI, LocalStack).
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if c.MaxRetries > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(c.MaxRetries))
	}
	if c.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(c.HTTPClient))
	}

	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS SDK configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set `region` in the provider block, AWS_REGION, or a region in the shared config profile")
	}
	if !c.SkipRegionValidation {
		if err := ValidateRegion(cfg.Region); err != nil {
			return nil, err
		}
	}

	if ar := c.AssumeRole; ar != nil && ar.RoleARN != "" {
		base := sts.NewFromConfig(cfg, stsOptions(c.Endpoints[STS]))
		provider := stscreds.NewAssumeRoleProvider(base, ar.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = ar.SessionName
			if o.RoleSessionName == "" {
				o.RoleSessionName = "tributary-terraform"
			}
			if ar.ExternalID != "" {
				o.ExternalID = aws.String(ar.ExternalID)
			}
			if ar.Duration > 0 {
				o.Duration = ar.Duration
			}
			if ar.Policy != "" {
				o.Policy = aws.String(ar.Policy)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(provider)
	}

	cl := &Clients{
		Config:      cfg,
		EC2:         ec2.NewFromConfig(cfg, ec2Options(c.Endpoints[EC2])),
		KMS:         kms.NewFromConfig(cfg, kmsOptions(c.Endpoints[KMS])),
		IAM:         iam.NewFromConfig(cfg, iamOptions(c.Endpoints[IAM])),
		STS:         sts.NewFromConfig(cfg, stsOptions(c.Endpoints[STS])),
		CloudWatch:  cloudwatch.NewFromConfig(cfg, cloudwatchOptions(c.Endpoints[CloudWatch])),
		AutoScaling: autoscaling.NewFromConfig(cfg, autoscalingOptions(c.Endpoints[AutoScaling])),
		SecretsManager: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
			setBase(&o.BaseEndpoint, c.Endpoints[SecretsManager])
			o.HTTPClient = plainBodies(o.HTTPClient)
		}),
		ACMPCA: acmpca.NewFromConfig(cfg, func(o *acmpca.Options) {
			setBase(&o.BaseEndpoint, c.Endpoints[ACMPCA])
			o.HTTPClient = plainBodies(o.HTTPClient)
		}),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			setBase(&o.BaseEndpoint, c.Endpoints[S3])
			o.UsePathStyle = o.BaseEndpoint != nil
			o.HTTPClient = plainBodies(o.HTTPClient)
		}),
		Firehose: firehose.NewFromConfig(cfg, func(o *firehose.Options) {
			setBase(&o.BaseEndpoint, c.Endpoints[Firehose])
			o.HTTPClient = plainBodies(o.HTTPClient)
		}),
		Region:    cfg.Region,
		STSConfig: cfg.Copy(),
	}
	setBase(&cl.STSConfig.BaseEndpoint, c.Endpoints[STS])

	if !c.SkipCredentialsValidation {
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			return nil, fmt.Errorf("no valid AWS credentials found (set credentials through the environment, a profile, or the provider block; "+
				"skip_credentials_validation only skips this check): %w", err)
		}
	}
	// The account id comes from STS; asking for it also proves the credentials
	// are accepted, which is what skip_credentials_validation turns off.
	if !c.SkipRequestingAccountID || !c.SkipCredentialsValidation {
		out, err := cl.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return nil, fmt.Errorf("validating AWS credentials with sts:GetCallerIdentity (set skip_credentials_validation and skip_requesting_account_id to skip): %w", err)
		}
		cl.AccountID = aws.ToString(out.Account)
		if parsed, err := arn.Parse(aws.ToString(out.Arn)); err == nil {
			cl.Partition = parsed.Partition
		}
	}
	if cl.Partition == "" {
		cl.Partition = PartitionForRegion(cfg.Region)
	}
	return cl, nil
}

// Each client gets BaseEndpoint from the `endpoints {}` block when set.
// BaseEndpoint outranks every environment and shared-config setting in the
// SDK, which is what gives the block its priority. Each also sends its
// request bodies as plain readers (plainBodies).

func ec2Options(url string) func(*ec2.Options) {
	return func(o *ec2.Options) {
		setBase(&o.BaseEndpoint, url)
		o.HTTPClient = plainBodies(o.HTTPClient)
	}
}

func kmsOptions(url string) func(*kms.Options) {
	return func(o *kms.Options) {
		setBase(&o.BaseEndpoint, url)
		o.HTTPClient = plainBodies(o.HTTPClient)
	}
}

func iamOptions(url string) func(*iam.Options) {
	return func(o *iam.Options) {
		setBase(&o.BaseEndpoint, url)
		o.HTTPClient = plainBodies(o.HTTPClient)
	}
}

func stsOptions(url string) func(*sts.Options) {
	return func(o *sts.Options) {
		setBase(&o.BaseEndpoint, url)
		o.HTTPClient = plainBodies(o.HTTPClient)
	}
}

func cloudwatchOptions(url string) func(*cloudwatch.Options) {
	return func(o *cloudwatch.Options) {
		setBase(&o.BaseEndpoint, url)
		o.HTTPClient = plainBodies(o.HTTPClient)
	}
}

func autoscalingOptions(url string) func(*autoscaling.Options) {
	return func(o *autoscaling.Options) {
		setBase(&o.BaseEndpoint, url)
		o.HTTPClient = plainBodies(o.HTTPClient)
	}
}

func setBase(dst **string, url string) {
	if url != "" {
		*dst = aws.String(url)
	}
}

// EnvVarName returns the service-specific endpoint environment variable the
// SDK reads for s, for example AWS_ENDPOINT_URL_EC2: the service's SDK id in
// upper case with spaces as underscores ("Auto Scaling": _AUTO_SCALING).
func EnvVarName(s Service) string {
	switch s {
	case AutoScaling:
		return "AWS_ENDPOINT_URL_AUTO_SCALING"
	case SecretsManager:
		return "AWS_ENDPOINT_URL_SECRETS_MANAGER"
	case ACMPCA:
		return "AWS_ENDPOINT_URL_ACM_PCA"
	}
	return "AWS_ENDPOINT_URL_" + strings.ToUpper(string(s))
}
