package awsapi

import (
	"context"
	"log/slog"
	"time"
)

// AuthorizationRequest is one IAM decision to make: may Caller perform Action on Resource?
type AuthorizationRequest struct {
	Caller     Identity
	Action     string              // "kms:Decrypt", "cloudwatch:PutMetricData", "ec2:RunInstances"
	Resource   string              // an ARN, or "*" for actions without resource-level permissions
	Region     string              // the request's region (aws:RequestedRegion)
	Conditions map[string][]string // request condition keys, e.g. "kms:EncryptionContext:cluster"
}

// Decision is an Authorizer's answer.
type Decision struct {
	Allowed bool
	// ExplicitDeny is set when a Deny statement refused (never with Allowed): it overrides an
	// Allow of a resource policy too.
	ExplicitDeny bool
	// Reason completes AWS's message when denied, e.g. "because no identity-based policy allows
	// the kms:Decrypt action" or "with an explicit deny in an identity-based policy".
	Reason string
}

// Authorizer evaluates IAM identity policies. The IAM service implements it; the server asks
// it through Request.Authorize for every non-root caller. An error means the evaluation itself
// failed (not a denial).
type Authorizer interface {
	Authorize(ctx context.Context, req AuthorizationRequest) (Decision, error)
}

// KeyInfo describes a KMS key as other services need to know it.
type KeyInfo struct {
	KeyID   string // the key's id (a UUID)
	ARN     string // arn:aws:kms:<region>:<account>:key/<id>
	State   string // KMS KeyState: Enabled, Disabled, PendingDeletion, PendingImport, Unavailable
	Enabled bool   // State == "Enabled"
}

// KeyResolver finds KMS keys for other services (EC2 volume encryption). The KMS service
// implements it.
type KeyResolver interface {
	// ResolveKey resolves keyRef (key id, key ARN, alias name "alias/x" or alias ARN) in the
	// account and region. It returns ErrNotFound (wrapped or not) when no such key exists.
	ResolveKey(ctx context.Context, account, region, keyRef string) (KeyInfo, error)
	// DefaultEBSKey returns the key used when a volume is encrypted without a KmsKeyId (AWS:
	// the aws/ebs managed key), creating it on first use.
	DefaultEBSKey(ctx context.Context, account, region string) (KeyInfo, error)
}

// InstanceProfile is an IAM instance profile and the role it carries.
type InstanceProfile struct {
	Name     string
	ARN      string // arn:aws:iam::<acct>:instance-profile/<path><name>
	ID       string // AIPA...
	RoleName string // empty when the profile has no role
	RoleARN  string
	RoleID   string // AROA...
}

// InstanceProfileResolver finds instance profiles for EC2 (RunInstances IamInstanceProfile, and
// the role credentials the instance metadata service hands out). The IAM service implements it.
type InstanceProfileResolver interface {
	// ResolveInstanceProfile finds a profile by name or ARN. It returns ErrNotFound when none.
	ResolveInstanceProfile(ctx context.Context, account, nameOrARN string) (InstanceProfile, error)
}

// ObjectStore takes the objects another service delivers into a bucket on its own (Firehose
// writing a delivery stream's buffered records). The S3 service implements it; the delivering
// service authorizes the write for the identity it acts as before calling.
type ObjectStore interface {
	// DeliverObject stores body at key in bucket. It returns ErrNotFound (wrapped) when the
	// bucket does not exist.
	DeliverObject(ctx context.Context, bucket, key string, body []byte, contentType, contentEncoding string) error
}

// ErrNotFound is returned by resolvers when the thing asked for does not exist.
var ErrNotFound = errNotFound{}

type errNotFound struct{}

func (errNotFound) Error() string { return "not found" }

// Env is what every service package gets from the wiring (localcloud.Start) when it is built.
type Env struct {
	Account     string           // DefaultAccount unless configured
	Region      string           // the default region (us-east-1)
	StateDir    string           // the service's own directory for persistent state (exists)
	Credentials *CredentialStore // issue and look up credentials
	Logger      *slog.Logger
	Now         func() time.Time
}

// DefaultRegion is the region of a service whose Env names none.
const DefaultRegion = "us-east-1"

// WithDefaults returns env with its unset fields given their defaults: DefaultAccount,
// DefaultRegion, slog.Default() and time.Now. StateDir and Credentials have no default.
func (env Env) WithDefaults() Env {
	if env.Account == "" {
		env.Account = DefaultAccount
	}
	if env.Region == "" {
		env.Region = DefaultRegion
	}
	if env.Logger == nil {
		env.Logger = slog.Default()
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	return env
}
