package provider

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/tributary/tributary/internal/bootconfig"
)

// A user's instance_profile replaces the per-broker roles the provider
// makes, so what those roles are allowed is the user's to grant. The one
// permission without which a broker cannot start is kms:Decrypt of its own
// secrets, under its node's encryption context: the plan asks IAM
// (iam:SimulatePrincipalPolicy) about the profile's role for every broker
// and refuses a role that may not, rather than let the apply launch brokers
// that fail at boot. Without secretsmanager:GetSecretValue on a broker's
// certificate secret, certificates are renewed by replacement: the plan
// warns. One profile for every broker cannot keep a broker from opening
// another's secrets (docs/terraform-provider.md). Without s3:PutObject under
// logging.s3's prefix, the brokers' log objects are refused: the plan warns.

// profileSimulator is what the check needs of IAM; *iam.Client has it.
type profileSimulator interface {
	GetInstanceProfile(ctx context.Context, in *iam.GetInstanceProfileInput, optFns ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error)
	SimulatePrincipalPolicy(ctx context.Context, in *iam.SimulatePrincipalPolicyInput, optFns ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error)
}

// placeholderClusterID stands for the cluster id at a create's plan, when
// the id is not made yet: a policy can only match it by a pattern.
const placeholderClusterID = "tc-0000000000000000"

// userProfileTarget is what the check simulates: the key (an ARN, or "*"
// while the provider has yet to make it), the cluster, the brokers, and
// the account and region of the certificate secrets' ARNs.
type userProfileTarget struct {
	Profile, KeyARN, ClusterID string
	NodeIDs                    []int32
	Partition, Region, Account string
	// LogObjects is the object ARN pattern of logging.s3 ("" when off).
	LogObjects string
	// LogStream is the ARN of logging.firehose's delivery stream ("" when
	// off).
	LogStream string
}

// checkUserProfile returns an error at instance_profile for each broker
// whose secrets the profile's role may not decrypt, a warning when it may
// not read certificate secrets, and a warning when IAM cannot answer (the
// apply then finds out). A profile IAM does not know is left to the apply,
// which reports it.
func checkUserProfile(ctx context.Context, client profileSimulator, t userProfileTarget) diag.Diagnostics {
	var diags diag.Diagnostics
	at := path.Root("instance_profile")
	prof, err := client.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(t.Profile)})
	var missing *iamtypes.NoSuchEntityException
	switch {
	case errors.As(err, &missing):
		return diags
	case err != nil:
		diags.AddAttributeWarning(at, "Instance profile not checked", fmt.Sprintf("Reading instance profile %s: %v", t.Profile, err))
		return diags
	case len(prof.InstanceProfile.Roles) == 0:
		diags.AddAttributeError(at, "Instance profile without a role", fmt.Sprintf("Instance profile %s has no role: the brokers would have no credentials to decrypt their secrets with.", t.Profile))
		return diags
	}
	role := aws.ToString(prof.InstanceProfile.Roles[0].Arn)
	partition := t.Partition
	if partition == "" {
		partition = "aws"
	}
	var denied, noSecret []string
	for _, id := range t.NodeIDs {
		node := strconv.Itoa(int(id))
		allowed, err := simulateAllowed(ctx, client, role, "kms:Decrypt", t.KeyARN, map[string]string{
			"kms:EncryptionContext:" + bootconfig.ContextKeyClusterID: t.ClusterID,
			"kms:EncryptionContext:" + bootconfig.ContextKeyNodeID:    node,
		})
		if err != nil {
			diags.AddAttributeWarning(at, "Instance profile not checked", fmt.Sprintf("Asking IAM about role %s (iam:SimulatePrincipalPolicy): %v", role, err))
			return diags
		}
		if !allowed {
			denied = append(denied, node)
		}
		secret := fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-AbCdEf", partition, t.Region, t.Account, bootconfig.CertificateSecretName(t.ClusterID, id))
		if ok, err := simulateAllowed(ctx, client, role, "secretsmanager:GetSecretValue", secret, nil); err == nil && !ok {
			noSecret = append(noSecret, node)
		}
	}
	if t.LogObjects != "" {
		object := strings.TrimSuffix(t.LogObjects, "*") + "AWSLogs/" + t.Account + "/KafkaBrokerLogs/Broker-1.log.gz"
		if ok, err := simulateAllowed(ctx, client, role, "s3:PutObject", object, nil); err == nil && !ok {
			diags.AddAttributeWarning(at, "The brokers' logs will not reach S3",
				fmt.Sprintf("Role %s may not s3:PutObject on %s, where logging.s3 delivers the brokers' logs: every delivery would be "+
					"refused (and its lines dropped once the brokers' buffers fill). Allow it, or leave instance_profile out.", role, t.LogObjects))
		}
	}
	if t.LogStream != "" {
		if ok, err := simulateAllowed(ctx, client, role, "firehose:PutRecordBatch", t.LogStream, nil); err == nil && !ok {
			diags.AddAttributeWarning(at, "The brokers' logs will not reach Firehose",
				fmt.Sprintf("Role %s may not firehose:PutRecordBatch on %s, where logging.firehose sends the brokers' logs: every batch would be "+
					"refused (and its lines dropped once the brokers' buffers fill). Allow it, or leave instance_profile out.", role, t.LogStream))
		}
	}
	if len(denied) > 0 {
		diags.AddAttributeError(at, "The instance profile's role cannot open the brokers' secrets",
			fmt.Sprintf("Role %s (of instance profile %s) may not kms:Decrypt with key %s under the encryption context of brokers %s "+
				"(%s = the cluster id, %s = the broker's node id), so those brokers could not start. Allow it, for example with a "+
				"condition StringLike on kms:EncryptionContext:%s = \"tc-*\", or leave instance_profile out: the provider's own roles "+
				"may each decrypt only their own broker's secrets.",
				role, t.Profile, t.KeyARN, strings.Join(denied, ", "), bootconfig.ContextKeyClusterID, bootconfig.ContextKeyNodeID, bootconfig.ContextKeyClusterID))
	}
	if len(noSecret) > 0 {
		diags.AddAttributeWarning(at, "Certificates of these brokers will be renewed by replacement",
			fmt.Sprintf("Role %s may not secretsmanager:GetSecretValue the certificate secrets of brokers %s (tributary/<cluster_id>/broker-<id>/tls-*), "+
				"so their certificates cannot be renewed in place: the apply that renews them replaces them, one at a time.", role, strings.Join(noSecret, ", ")))
	}
	return diags
}

// simulateAllowed asks IAM whether role may perform action on resource
// with the given condition keys (string values).
func simulateAllowed(ctx context.Context, client profileSimulator, role, action, resource string, keys map[string]string) (bool, error) {
	in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(role), ActionNames: []string{action}, ResourceArns: []string{resource}}
	for k, v := range keys {
		in.ContextEntries = append(in.ContextEntries, iamtypes.ContextEntry{ContextKeyName: aws.String(k), ContextKeyValues: []string{v}, ContextKeyType: iamtypes.ContextKeyTypeEnumString})
	}
	out, err := client.SimulatePrincipalPolicy(ctx, in)
	if err != nil {
		return false, err
	}
	for _, r := range out.EvaluationResults {
		if r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed {
			return false, nil
		}
	}
	return len(out.EvaluationResults) > 0, nil
}
