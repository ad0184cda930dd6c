package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is what a policy document is for; IAM checks each kind's grammar differently.
type Kind int

// The kinds of policy documents.
const (
	// Identity policies (inline and managed) name no principal and must name resources.
	Identity Kind = iota
	// Trust policies (a role's AssumeRolePolicyDocument) must name a principal and no resource.
	Trust
	// Resource policies (KMS key policies) must name a principal.
	Resource
)

// conditionOperators is every condition operator AWS accepts, before the IfExists suffix and
// the ForAnyValue/ForAllValues qualifiers. Some are accepted but not evaluated by the local
// cloud (see the package comment).
var conditionOperators = map[string]bool{
	"StringEquals": true, "StringNotEquals": true, "StringEqualsIgnoreCase": true, "StringNotEqualsIgnoreCase": true,
	"StringLike": true, "StringNotLike": true,
	"NumericEquals": true, "NumericNotEquals": true, "NumericLessThan": true, "NumericLessThanEquals": true,
	"NumericGreaterThan": true, "NumericGreaterThanEquals": true,
	"DateEquals": true, "DateNotEquals": true, "DateLessThan": true, "DateLessThanEquals": true,
	"DateGreaterThan": true, "DateGreaterThanEquals": true,
	"Bool": true, "BinaryEquals": true, "IpAddress": true, "NotIpAddress": true,
	"ArnEquals": true, "ArnLike": true, "ArnNotEquals": true, "ArnNotLike": true, "Null": true,
}

// Validate checks a parsed document against the grammar IAM enforces for its kind; the error
// is the message of a MalformedPolicyDocument error.
func (d *Document) Validate(kind Kind) error {
	if d.Version != "" && d.Version != "2012-10-17" && d.Version != "2008-10-17" {
		return fmt.Errorf("the policy Version %q is not valid (use 2012-10-17)", d.Version)
	}
	for i := range d.Statements {
		st := &d.Statements[i]
		hasPrincipal := st.Principal != nil || st.NotPrincipal != nil
		hasResource := len(st.Resource) > 0 || len(st.NotResource) > 0
		switch kind {
		case Identity:
			if hasPrincipal {
				return errors.New("policy document should not specify a principal")
			}
			if !hasResource {
				return errors.New("policy statement must contain resources")
			}
		case Trust:
			if !hasPrincipal {
				return errors.New("a trust policy statement must specify a Principal")
			}
			if hasResource {
				return errors.New("a trust policy statement has the prohibited field Resource")
			}
		case Resource:
			if !hasPrincipal {
				return errors.New("policy contains a statement with no principal")
			}
		}
		for _, a := range append(append([]string{}, st.Action...), st.NotAction...) {
			if a != "*" && !strings.Contains(a, ":") {
				return fmt.Errorf("actions must be prefaced by a vendor, e.g., iam, kms, ec2: %q", a)
			}
		}
		for op := range st.Condition {
			base := op
			if q, rest, ok := strings.Cut(op, ":"); ok {
				if q != "ForAnyValue" && q != "ForAllValues" {
					return fmt.Errorf("invalid Condition type: %s", op)
				}
				base = rest
			}
			base = strings.TrimSuffix(base, "IfExists")
			if !conditionOperators[base] {
				return fmt.Errorf("invalid Condition type: %s", op)
			}
		}
	}
	return nil
}
