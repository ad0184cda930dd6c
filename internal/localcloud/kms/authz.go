package kms

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/policy"
)

// call is one request as the operations see it.
type call struct {
	ctx      context.Context
	req      *awsapi.Request // nil for in-process calls, which are trusted
	identity awsapi.Identity
	region   string
}

// authorizeLocked decides whether the caller may call operation (e.g. "Decrypt") on k,
// following KMS's model: the key policy is the root of trust. A key policy statement naming
// the caller allows directly; one naming the account (as the default key policy does)
// delegates to the caller's IAM identity policies (the server's Authorizer, through
// Request.Authorize); a grant on the key allows its grantee the grant's operations within its
// encryption-context constraints; an explicit Deny in the key policy wins. k is nil for
// operations without a key resource (CreateKey, ListKeys, ListAliases, GenerateRandom), which
// only identity policies govern. Account roots (the default test credentials) may do anything.
//
// An explicit Deny in the caller's identity policies refuses even what the key policy or a
// grant allows, as in AWS.
func (s *Service) authorizeLocked(c *call, operation string, k *key, encCtx map[string]string) error {
	if c.req == nil || c.identity.IsRoot() {
		return nil
	}
	action := "kms:" + operation
	conditions := conditionContext(c.identity, encCtx, s.now())
	if k == nil {
		return c.req.Authorize(c.ctx, action, "*", conditions)
	}
	resource := s.keyARN(k)
	req := policy.Request{
		Caller:   policy.Caller{Account: c.identity.Account, ARNs: callerARNs(c.identity)},
		Action:   action,
		Resource: resource,
		Context:  conditions,
	}
	if policy.Evaluate(req, k.policyDoc) == policy.ExplicitDeny {
		return s.accessDenied(c.identity, action, resource, "with an explicit deny in a resource-based policy")
	}
	direct := req
	direct.Caller = policy.Caller{ARNs: req.Caller.ARNs}
	if policy.Evaluate(direct, k.policyDoc) == policy.Allowed {
		return c.req.CheckExplicitDeny(c.ctx, action, resource, conditions)
	}
	for _, g := range k.Grants {
		if g.allows(req.Caller.ARNs, operation, encCtx) {
			return c.req.CheckExplicitDeny(c.ctx, action, resource, conditions)
		}
	}
	account := req
	account.Caller = policy.Caller{Account: c.identity.Account}
	if policy.Evaluate(account, k.policyDoc) == policy.Allowed {
		return c.req.Authorize(c.ctx, action, resource, conditions)
	}
	return s.accessDenied(c.identity, action, resource, "because no resource-based policy allows the "+action+" action")
}

func (s *Service) accessDenied(id awsapi.Identity, action, resource, why string) error {
	return awsapi.Errorf("AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s %s", id.ARN, action, resource, why)
}

// callerARNs is every ARN a principal is known by: a role session matches both its session ARN
// and its role ARN in key policies and grants.
func callerARNs(id awsapi.Identity) []string {
	arns := []string{id.ARN}
	if id.PrincipalARN != "" && id.PrincipalARN != id.ARN {
		arns = append(arns, id.PrincipalARN)
	}
	return arns
}

// conditionContext holds the condition keys KMS and IAM define for a request at now.
func conditionContext(id awsapi.Identity, encCtx map[string]string, now time.Time) map[string][]string {
	ctx := map[string][]string{
		"aws:PrincipalArn":     {id.PrincipalARN},
		"aws:PrincipalAccount": {id.Account},
		"aws:CurrentTime":      {now.UTC().Format(time.RFC3339)},
		"aws:EpochTime":        {strconv.FormatInt(now.Unix(), 10)},
		"kms:CallerAccount":    {id.Account},
	}
	if len(encCtx) > 0 {
		keys := slices.Sorted(maps.Keys(encCtx))
		ctx["kms:EncryptionContextKeys"] = keys
		for k, v := range encCtx {
			ctx["kms:EncryptionContext:"+k] = []string{v}
		}
	}
	return ctx
}

// grant is a KMS grant: permission for a grantee principal to use one key for some operations.
type grant struct {
	ID                string            `json:"id"`
	Token             string            `json:"token"`
	Name              string            `json:"name,omitempty"`
	GranteePrincipal  string            `json:"granteePrincipal"`
	RetiringPrincipal string            `json:"retiringPrincipal,omitempty"`
	Operations        []string          `json:"operations"`
	Constraints       *grantConstraints `json:"constraints,omitempty"`
	IssuingAccount    string            `json:"issuingAccount"`
	Created           timeJSON          `json:"created"`
}

type grantConstraints struct {
	EncryptionContextSubset map[string]string `json:"EncryptionContextSubset,omitempty"`
	EncryptionContextEquals map[string]string `json:"EncryptionContextEquals,omitempty"`
}

// grantOperations are the operations a grant may allow.
var grantOperations = []string{
	"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
	"ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
	"GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
	"DeriveSharedSecret",
}

// contextOperations are the operations whose grants may carry encryption-context constraints.
var contextOperations = map[string]bool{
	"Decrypt": true, "Encrypt": true, "GenerateDataKey": true, "GenerateDataKeyWithoutPlaintext": true,
	"ReEncryptFrom": true, "ReEncryptTo": true, "CreateGrant": true, "RetireGrant": true,
	"GenerateDataKeyPair": true, "GenerateDataKeyPairWithoutPlaintext": true,
}

func (g *grant) allows(callerARNs []string, operation string, encCtx map[string]string) bool {
	if !slices.Contains(callerARNs, g.GranteePrincipal) || !slices.Contains(g.Operations, operation) {
		return false
	}
	if c := g.Constraints; c != nil {
		if c.EncryptionContextEquals != nil && !maps.Equal(c.EncryptionContextEquals, encCtx) {
			return false
		}
		for k, v := range c.EncryptionContextSubset {
			if got, ok := encCtx[k]; !ok || got != v {
				return false
			}
		}
	}
	return true
}
