package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/broker/internal/ttlcache"
)

// IAMAPI is what SimulateEvaluator needs from an IAM client
// (*iam.Client).
type IAMAPI interface {
	iam.SimulatePrincipalPolicyAPIClient
	GetRole(ctx context.Context, in *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
}

// SimulateEvaluator is a PolicyEvaluator backed by
// iam:SimulatePrincipalPolicy. The broker's own credentials need
// iam:SimulatePrincipalPolicy and iam:GetRole; principals must be in the
// account those credentials belong to (IAM simulates its own principals
// only).
//
// A role principal arrives without its path (see iamauth.NormalizeARN);
// the evaluator asks iam:GetRole for the role's full ARN once and keeps it,
// since SimulatePrincipalPolicy names the role by its ARN. When GetRole
// cannot answer (no such role in this account, access denied), the
// path-less ARN is simulated as it is and IAM decides.
type SimulateEvaluator struct {
	client IAMAPI
	// roles maps path-less role ARNs to full ones. A role's path never
	// changes, but a role can be deleted and created again under another
	// path, hence the expiry.
	roles *ttlcache.Cache[string, string]
}

const roleARNTTL = 10 * time.Minute

var _ PolicyEvaluator = (*SimulateEvaluator)(nil)

// NewSimulateEvaluator returns an evaluator using client.
func NewSimulateEvaluator(client IAMAPI) *SimulateEvaluator {
	return &SimulateEvaluator{client: client, roles: ttlcache.New[string, string](10000)}
}

// Evaluate simulates principalARN's policies for actions on resourceARN.
// A principal IAM does not know (NoSuchEntity) is allowed nothing.
func (e *SimulateEvaluator) Evaluate(ctx context.Context, principalARN string, actions []string, resourceARN string) (map[string]bool, error) {
	source := e.fullRoleARN(ctx, principalARN)
	out := make(map[string]bool, len(actions))
	for _, a := range actions {
		out[a] = false
	}
	p := iam.NewSimulatePrincipalPolicyPaginator(e.client, &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(source),
		ActionNames:     actions,
		ResourceArns:    []string{resourceARN},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchEntity" {
				return out, nil
			}
			return nil, fmt.Errorf("iam:SimulatePrincipalPolicy for %s: %w", source, err)
		}
		for _, r := range page.EvaluationResults {
			name := aws.ToString(r.EvalActionName)
			if _, asked := out[name]; asked && r.EvalDecision == iamtypes.PolicyEvaluationDecisionTypeAllowed {
				out[name] = true
			}
		}
	}
	return out, nil
}

// fullRoleARN turns arn:<p>:iam::<acct>:role/<name> into the role's ARN
// with its path, asking iam:GetRole once per role.
func (e *SimulateEvaluator) fullRoleARN(ctx context.Context, principal string) string {
	parts := strings.SplitN(principal, ":", 6)
	if len(parts) != 6 || parts[2] != "iam" || !strings.HasPrefix(parts[5], "role/") || strings.Count(parts[5], "/") != 1 {
		return principal
	}
	if full, ok := e.roles.Get(principal, time.Now()); ok {
		return full
	}
	out, err := e.client.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(strings.TrimPrefix(parts[5], "role/"))})
	if err != nil || out.Role == nil || aws.ToString(out.Role.Arn) == "" {
		return principal
	}
	full := aws.ToString(out.Role.Arn)
	if fp := strings.SplitN(full, ":", 6); len(fp) != 6 || fp[4] != parts[4] || !strings.HasSuffix(fp[5], "/"+strings.TrimPrefix(parts[5], "role/")) {
		// Another account's role of the same name: not this principal.
		return principal
	}
	e.roles.Put(principal, full, time.Now().Add(roleARNTTL))
	return full
}
