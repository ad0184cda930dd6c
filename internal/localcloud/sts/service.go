// Package sts emulates AWS STS (awsQuery protocol) for the local cloud: GetCallerIdentity
// (signed or presigned: the server verifies presigned query signatures, including session
// tokens and X-Amz-Expires, before the call gets here) and AssumeRole, whose temporary
// credentials go into the server's credential store and expire as AWS's do.
package sts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/iam"
)

const xmlns = "https://sts.amazonaws.com/doc/2011-06-15/"

// Roles is what STS needs from IAM: whether a caller may assume a role. *iam.Service
// implements it.
type Roles interface {
	CheckAssumeRole(caller awsapi.Identity, roleARN string, conditions map[string][]string) (iam.AssumableRole, error)
}

// Service is the emulated STS.
type Service struct {
	creds *awsapi.CredentialStore
	roles Roles
	now   func() time.Time
}

var _ awsapi.Service = (*Service)(nil)

// New returns the STS service. roles is usually the IAM service.
func New(env awsapi.Env, roles Roles) (*Service, error) {
	if env.Credentials == nil {
		return nil, fmt.Errorf("sts: awsapi.Env.Credentials is required")
	}
	if roles == nil {
		return nil, fmt.Errorf("sts: a role source (the IAM service) is required")
	}
	return &Service{creds: env.Credentials, roles: roles, now: env.WithDefaults().Now}, nil
}

// Handle serves one STS request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	if req.Protocol != awsapi.ProtocolQuery {
		return nil, awsapi.Errorf("InvalidAction", "STS speaks the awsQuery protocol only")
	}
	switch req.Action {
	case "GetCallerIdentity":
		// Always allowed, as in AWS: no policy can deny it.
		return respond(req, callerIdentityResult{Arn: req.Caller.ARN, UserID: req.Caller.UserID, Account: req.Caller.Account})
	case "AssumeRole":
		result, err := s.assumeRole(ctx, req)
		if err != nil {
			return nil, err
		}
		return respond(req, result)
	case "GetSessionToken":
		result, err := s.getSessionToken(req)
		if err != nil {
			return nil, err
		}
		return respond(req, result)
	default:
		return nil, awsapi.Errorf("InvalidAction", "The local cloud does not implement STS action %s", req.Action)
	}
}

// respond answers in awsQuery XML, or in JSON when the client asks for it with
// "Accept: application/json", as STS does (aws-iam-authenticator and Vault's AWS auth verify
// presigned GetCallerIdentity calls that way):
//
//	{"<Action>Response": {"<Action>Result": {...}, "ResponseMetadata": {"RequestId": "..."}}}
func respond(req *awsapi.Request, result any) (*awsapi.Response, error) {
	if !strings.Contains(req.HTTP.Header.Get("Accept"), "application/json") {
		return awsapi.QueryResponse(req, xmlns, result)
	}
	body, err := json.Marshal(map[string]any{req.Action + "Response": map[string]any{
		req.Action + "Result": result,
		"ResponseMetadata":    map[string]string{"RequestId": req.RequestID},
	}})
	if err != nil {
		return nil, fmt.Errorf("encoding %s response: %w", req.Action, err)
	}
	return &awsapi.Response{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}, nil
}

type callerIdentityResult struct {
	Arn     string `xml:"Arn" json:"Arn"`
	UserID  string `xml:"UserId" json:"UserId"`
	Account string `xml:"Account" json:"Account"`
}

type credentialsXML struct {
	AccessKeyID     string `xml:"AccessKeyId" json:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey" json:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken" json:"SessionToken"`
	Expiration      string `xml:"Expiration" json:"Expiration"`
}

type assumedRoleUser struct {
	AssumedRoleID string `xml:"AssumedRoleId" json:"AssumedRoleId"`
	Arn           string `xml:"Arn" json:"Arn"`
}

type assumeRoleResult struct {
	Credentials      credentialsXML  `xml:"Credentials" json:"Credentials"`
	AssumedRoleUser  assumedRoleUser `xml:"AssumedRoleUser" json:"AssumedRoleUser"`
	PackedPolicySize int             `xml:"PackedPolicySize" json:"PackedPolicySize"`
}

var sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// roleChainingMax is AWS's limit for a session assumed with another role session's
// credentials.
const roleChainingMax = time.Hour

func (s *Service) assumeRole(ctx context.Context, req *awsapi.Request) (*assumeRoleResult, error) {
	p := req.Params
	roleARN := p.Get("RoleArn")
	if len(roleARN) < 20 {
		return nil, awsapi.Errorf("ValidationError", "1 validation error detected: Value '%s' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20", roleARN)
	}
	session := p.Get("RoleSessionName")
	if !sessionNamePattern.MatchString(session) {
		return nil, awsapi.Errorf("ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}", session)
	}
	duration := time.Hour
	if v := p.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 900 || n > 43200 {
			return nil, awsapi.Errorf("ValidationError", "1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", v)
		}
		duration = time.Duration(n) * time.Second
	}
	if p.Get("Policy") != "" || p.Get("PolicyArns.member.1.arn") != "" {
		// Ignoring a session policy would grant the session more than AWS would.
		return nil, awsapi.Errorf("ValidationError", "session policies (Policy, PolicyArns) are not supported by the local cloud")
	}
	conditions := map[string][]string{}
	if ext := p.Get("ExternalId"); ext != "" {
		conditions["sts:ExternalId"] = []string{ext}
	}
	if src := p.Get("SourceIdentity"); src != "" {
		conditions["sts:SourceIdentity"] = []string{src}
	}
	role, err := s.roles.CheckAssumeRole(req.Caller, roleARN, conditions)
	if err != nil {
		return nil, err
	}
	if role.ViaAccount {
		// The trust policy trusts the account: the caller's own policies must allow it too.
		if err := req.Authorize(ctx, "sts:AssumeRole", role.ARN, conditions); err != nil {
			return nil, err
		}
	}
	limit := role.MaxSessionDuration
	if req.Caller.Type == awsapi.PrincipalAssumedRole {
		limit = roleChainingMax
	}
	if duration > limit {
		return nil, awsapi.Errorf("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	identity := awsapi.AssumedRoleIdentity(req.Caller.Account, role.ARN, role.ID, session)
	cred, err := s.creds.IssueSession(identity, duration, "sts:AssumeRole")
	if err != nil {
		return nil, fmt.Errorf("issuing session credentials: %w", err)
	}
	out := &assumeRoleResult{Credentials: credentialsXML{
		AccessKeyID: cred.AccessKeyID, SecretAccessKey: cred.SecretAccessKey, SessionToken: cred.SessionToken,
		Expiration: cred.Expiration.UTC().Format("2006-01-02T15:04:05Z"),
	}}
	out.AssumedRoleUser = assumedRoleUser{AssumedRoleID: identity.UserID, Arn: identity.ARN}
	return out, nil
}

type sessionTokenResult struct {
	Credentials credentialsXML `xml:"Credentials" json:"Credentials"`
}

// getSessionToken issues temporary credentials with the caller's own identity. As in AWS, a
// role session may not call it, and an account root's sessions last at most an hour.
func (s *Service) getSessionToken(req *awsapi.Request) (*sessionTokenResult, error) {
	if req.Caller.Type == awsapi.PrincipalAssumedRole || req.Credential.SessionToken != "" {
		return nil, &awsapi.Error{Code: "AccessDenied", Status: 403, Message: "Cannot call GetSessionToken with session credentials"}
	}
	duration := 12 * time.Hour
	if req.Caller.IsRoot() {
		duration = time.Hour
	}
	if v := req.Params.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 900 || n > 129600 {
			return nil, awsapi.Errorf("ValidationError", "1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 129600", v)
		}
		duration = time.Duration(n) * time.Second
		if req.Caller.IsRoot() && duration > time.Hour {
			duration = time.Hour // AWS silently caps root sessions at one hour
		}
	}
	cred, err := s.creds.IssueSession(req.Caller, duration, "sts:GetSessionToken")
	if err != nil {
		return nil, fmt.Errorf("issuing session credentials: %w", err)
	}
	return &sessionTokenResult{Credentials: credentialsXML{
		AccessKeyID: cred.AccessKeyID, SecretAccessKey: cred.SecretAccessKey, SessionToken: cred.SessionToken,
		Expiration: cred.Expiration.UTC().Format("2006-01-02T15:04:05Z"),
	}}, nil
}
