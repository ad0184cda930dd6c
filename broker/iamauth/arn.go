package iamauth

import (
	"fmt"
	"strings"
)

// NormalizeARN turns the ARN STS reports for a caller into the principal a
// broker authorizes:
//
//   - a role session, arn:<partition>:sts::<account>:assumed-role/<role>/<session>,
//     becomes its role, arn:<partition>:iam::<account>:role/<role>, so that
//     every session of a role is one principal, as in IAM policies;
//   - IAM users (arn:...:iam::<account>:user/<path>/<name>), the account root
//     and federated users keep the ARN STS returned.
//
// Role paths: STS names a session by the role's name only, so the
// principal of a session of arn:aws:iam::123456789012:role/team/app is
// arn:aws:iam::123456789012:role/app. Role names are unique in an account
// whatever their path, so the name still identifies one role; ACLs must be
// written with the path-less ARN, and the IAM-policy authorizer resolves the
// path when it asks IAM (see broker/security/authz).
func NormalizeARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[4] == "" || parts[5] == "" {
		return "", fmt.Errorf("%q is not an ARN", clip(arn))
	}
	partition, service, account, resource := parts[1], parts[2], parts[4], parts[5]
	if service != "sts" || !strings.HasPrefix(resource, "assumed-role/") {
		return arn, nil
	}
	role, session, ok := strings.Cut(strings.TrimPrefix(resource, "assumed-role/"), "/")
	if !ok || role == "" || session == "" || strings.Contains(session, "/") {
		return "", fmt.Errorf("%q is not an assumed-role/<role>/<session> ARN", clip(arn))
	}
	return "arn:" + partition + ":iam::" + account + ":role/" + role, nil
}
