package iam

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/policy"
)

const xmlns = "https://iam.amazonaws.com/doc/2010-05-08/"

// handler runs one IAM action on parsed parameters and returns the Result element's content
// (nil for actions that answer only with ResponseMetadata).
type handler func(s *Service, p params) (any, error)

type action struct {
	run     handler
	mutates bool
	// resource names the ARN checked with iam:<Action> for non-root callers.
	resource func(s *Service, p params) string
}

func roleResource(s *Service, p params) string {
	return "arn:aws:iam::" + s.account + ":role/" + p.get("RoleName")
}

func policyResource(s *Service, p params) string {
	if arn := p.get("PolicyArn"); arn != "" {
		return arn
	}
	return s.policyARN(pathOr(p.get("Path")), p.get("PolicyName"))
}

func profileResource(s *Service, p params) string {
	return "arn:aws:iam::" + s.account + ":instance-profile/" + p.get("InstanceProfileName")
}

func userResource(s *Service, p params) string {
	return "arn:aws:iam::" + s.account + ":user/" + p.get("UserName")
}

func anyResource(*Service, params) string { return "*" }

// policySourceResource is the entity whose policies SimulatePrincipalPolicy discloses: IAM
// checks iam:SimulatePrincipalPolicy on it.
func policySourceResource(_ *Service, p params) string { return p.get("PolicySourceArn") }

var actions = map[string]action{
	"CreateGroup":                   {(*Service).createGroup, true, groupResource},
	"GetGroup":                      {(*Service).getGroup, false, groupResource},
	"DeleteGroup":                   {(*Service).deleteGroup, true, groupResource},
	"ListGroups":                    {(*Service).listGroups, false, anyResource},
	"ListGroupsForUser":             {(*Service).listGroupsForUser, false, userResource},
	"AddUserToGroup":                {(*Service).addUserToGroup, true, groupResource},
	"RemoveUserFromGroup":           {(*Service).removeUserFromGroup, true, groupResource},
	"PutGroupPolicy":                {(*Service).putGroupPolicy, true, groupResource},
	"GetGroupPolicy":                {(*Service).getGroupPolicy, false, groupResource},
	"DeleteGroupPolicy":             {(*Service).deleteGroupPolicy, true, groupResource},
	"ListGroupPolicies":             {(*Service).listGroupPolicies, false, groupResource},
	"AttachGroupPolicy":             {(*Service).attachGroupPolicy, true, groupResource},
	"DetachGroupPolicy":             {(*Service).detachGroupPolicy, true, groupResource},
	"ListAttachedGroupPolicies":     {(*Service).listAttachedGroupPolicies, false, groupResource},
	"CreateUser":                    {(*Service).createUser, true, userResource},
	"GetUser":                       {(*Service).getUser, false, userResource},
	"DeleteUser":                    {(*Service).deleteUser, true, userResource},
	"ListUsers":                     {(*Service).listUsers, false, anyResource},
	"TagUser":                       {(*Service).tagUser, true, userResource},
	"UntagUser":                     {(*Service).untagUser, true, userResource},
	"ListUserTags":                  {(*Service).listUserTags, false, userResource},
	"PutUserPolicy":                 {(*Service).putUserPolicy, true, userResource},
	"GetUserPolicy":                 {(*Service).getUserPolicy, false, userResource},
	"DeleteUserPolicy":              {(*Service).deleteUserPolicy, true, userResource},
	"ListUserPolicies":              {(*Service).listUserPolicies, false, userResource},
	"AttachUserPolicy":              {(*Service).attachUserPolicy, true, userResource},
	"DetachUserPolicy":              {(*Service).detachUserPolicy, true, userResource},
	"ListAttachedUserPolicies":      {(*Service).listAttachedUserPolicies, false, userResource},
	"CreateAccessKey":               {(*Service).createAccessKey, true, userResource},
	"ListAccessKeys":                {(*Service).listAccessKeys, false, userResource},
	"UpdateAccessKey":               {(*Service).updateAccessKey, true, userResource},
	"DeleteAccessKey":               {(*Service).deleteAccessKey, true, userResource},
	"CreateRole":                    {(*Service).createRole, true, roleResource},
	"GetRole":                       {(*Service).getRole, false, roleResource},
	"DeleteRole":                    {(*Service).deleteRole, true, roleResource},
	"ListRoles":                     {(*Service).listRoles, false, anyResource},
	"UpdateRole":                    {(*Service).updateRole, true, roleResource},
	"UpdateRoleDescription":         {(*Service).updateRoleDescription, true, roleResource},
	"UpdateAssumeRolePolicy":        {(*Service).updateAssumeRolePolicy, true, roleResource},
	"TagRole":                       {(*Service).tagRole, true, roleResource},
	"UntagRole":                     {(*Service).untagRole, true, roleResource},
	"ListRoleTags":                  {(*Service).listRoleTags, false, roleResource},
	"PutRolePolicy":                 {(*Service).putRolePolicy, true, roleResource},
	"GetRolePolicy":                 {(*Service).getRolePolicy, false, roleResource},
	"DeleteRolePolicy":              {(*Service).deleteRolePolicy, true, roleResource},
	"ListRolePolicies":              {(*Service).listRolePolicies, false, roleResource},
	"AttachRolePolicy":              {(*Service).attachRolePolicy, true, roleResource},
	"DetachRolePolicy":              {(*Service).detachRolePolicy, true, roleResource},
	"ListAttachedRolePolicies":      {(*Service).listAttachedRolePolicies, false, roleResource},
	"CreatePolicy":                  {(*Service).createPolicy, true, policyResource},
	"GetPolicy":                     {(*Service).getPolicy, false, policyResource},
	"DeletePolicy":                  {(*Service).deletePolicy, true, policyResource},
	"ListPolicies":                  {(*Service).listPolicies, false, anyResource},
	"GetPolicyVersion":              {(*Service).getPolicyVersion, false, policyResource},
	"CreatePolicyVersion":           {(*Service).createPolicyVersion, true, policyResource},
	"DeletePolicyVersion":           {(*Service).deletePolicyVersion, true, policyResource},
	"ListPolicyVersions":            {(*Service).listPolicyVersions, false, policyResource},
	"ListEntitiesForPolicy":         {(*Service).listEntitiesForPolicy, false, policyResource},
	"CreateInstanceProfile":         {(*Service).createInstanceProfile, true, profileResource},
	"GetInstanceProfile":            {(*Service).getInstanceProfile, false, profileResource},
	"DeleteInstanceProfile":         {(*Service).deleteInstanceProfile, true, profileResource},
	"ListInstanceProfiles":          {(*Service).listInstanceProfiles, false, anyResource},
	"AddRoleToInstanceProfile":      {(*Service).addRoleToInstanceProfile, true, profileResource},
	"RemoveRoleFromInstanceProfile": {(*Service).removeRoleFromInstanceProfile, true, profileResource},
	"ListInstanceProfilesForRole":   {(*Service).listInstanceProfilesForRole, false, roleResource},
	"TagInstanceProfile":            {(*Service).tagInstanceProfile, true, profileResource},
	"UntagInstanceProfile":          {(*Service).untagInstanceProfile, true, profileResource},
	"ListInstanceProfileTags":       {(*Service).listInstanceProfileTags, false, profileResource},
	"SimulatePrincipalPolicy":       {(*Service).simulatePrincipalPolicy, false, policySourceResource},
	"SimulateCustomPolicy":          {(*Service).simulateCustomPolicy, false, anyResource},
}

// Handle serves one IAM request (awsQuery protocol).
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	if req.Protocol != awsapi.ProtocolQuery {
		return nil, awsapi.Errorf("InvalidAction", "IAM speaks the awsQuery protocol only")
	}
	a, ok := actions[req.Action]
	if !ok {
		return nil, awsapi.Errorf("InvalidAction", "The local cloud does not implement IAM action %s", req.Action)
	}
	p := params(req.Params)
	if req.Action == "GetUser" && p.get("UserName") == "" {
		// Without a name, GetUser describes the caller, which needs no permission.
		s.mu.RLock()
		result, err := s.callerAsUser(req.Caller)
		s.mu.RUnlock()
		if err != nil {
			return nil, err
		}
		return awsapi.QueryResponse(req, xmlns, result)
	}
	if err := req.Authorize(ctx, "iam:"+req.Action, a.resource(s, p), nil); err != nil {
		return nil, err
	}
	var (
		result any
		err    error
	)
	if a.mutates {
		s.mu.Lock()
		result, err = a.run(s, p)
		if err == nil {
			err = s.saveLocked()
		}
		s.mu.Unlock()
	} else {
		s.mu.RLock()
		result, err = a.run(s, p)
		s.mu.RUnlock()
	}
	if err != nil {
		return nil, err
	}
	return awsapi.QueryResponse(req, xmlns, result)
}

// params reads awsQuery parameters.
type params url.Values

func (p params) get(name string) string { return url.Values(p).Get(name) }

func (p params) has(name string) bool { _, ok := p[name]; return ok }

// list reads name.member.1, name.member.2, ... up to the first gap.
func (p params) list(name string) []string {
	var out []string
	for i := 1; ; i++ {
		k := name + ".member." + strconv.Itoa(i)
		if !p.has(k) {
			return out
		}
		out = append(out, p.get(k))
	}
}

func (p params) tags(name string) ([]tag, error) {
	var out []tag
	for i := 1; ; i++ {
		prefix := name + ".member." + strconv.Itoa(i)
		if !p.has(prefix + ".Key") {
			break
		}
		t := tag{Key: p.get(prefix + ".Key"), Value: p.get(prefix + ".Value")}
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return nil, invalidInput("tag keys must be 1-128 characters and values at most 256 characters")
		}
		out = append(out, t)
	}
	if len(out) > 50 {
		return nil, limitExceeded("at most 50 tags may be attached to an IAM resource")
	}
	return out, nil
}

func (p params) int32(name string, def, lo, hi int32) (int32, error) {
	v := p.get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || int32(n) < lo || int32(n) > hi {
		return 0, validationError("%s must be an integer between %d and %d", name, lo, hi)
	}
	return int32(n), nil
}

func (p params) required(name string) (string, error) {
	v := p.get(name)
	if v == "" {
		return "", validationError("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(name))
	}
	return v, nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

var (
	namePattern = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	pathPattern = regexp.MustCompile(`^/([\x21-\x7E]*/)?$`)
)

func checkName(kind, name string, maxLen int) error {
	if !namePattern.MatchString(name) || len(name) > maxLen {
		return validationError("The specified value for %s is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_- and be at most %d characters", kind, maxLen)
	}
	return nil
}

func pathOr(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

func checkPath(path string) error {
	if len(path) > 512 || !pathPattern.MatchString(path) {
		return validationError("The specified value for path is invalid. It must begin and end with / and contain only printable ASCII characters")
	}
	return nil
}

// nameAndPath reads and checks what every Create* call starts with: the new entity's name,
// from the parameter param (at most maxLen characters), and its Path ("/" when not given).
func nameAndPath(p params, param string, maxLen int) (name, path string, err error) {
	name, err = p.required(param)
	if err != nil {
		return "", "", err
	}
	if err := checkName(lowerFirst(param), name, maxLen); err != nil {
		return "", "", err
	}
	path = pathOr(p.get("Path"))
	if err := checkPath(path); err != nil {
		return "", "", err
	}
	return name, path, nil
}

// lookupByName finds an entity in byName, which IAM keys by lower-cased name. An empty name is
// the ValidationError IAM gives for the missing parameter param; an unknown one is NoSuchEntity
// with the message notFound, whose %s is the name.
func lookupByName[T any](byName map[string]T, param, name, notFound string) (T, error) {
	var zero T
	if name == "" {
		return zero, validationError("1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", lowerFirst(param))
	}
	v, ok := byName[strings.ToLower(name)]
	if !ok {
		return zero, noSuchEntity(notFound, name)
	}
	return v, nil
}

// policyDocument reads the policy document in the parameter name and parses and checks it as
// parsePolicyDocument does.
func (p params) policyDocument(name string, kind policy.Kind) (string, *policy.Document, error) {
	text, err := p.required(name)
	if err != nil {
		return "", nil, err
	}
	doc, err := parsePolicyDocument(text, kind)
	if err != nil {
		return "", nil, err
	}
	return text, doc, nil
}

// parsePolicyDocument parses a policy and checks the grammar IAM enforces for its kind.
func parsePolicyDocument(text string, kind policy.Kind) (*policy.Document, error) {
	if len(text) > 131072 {
		return nil, limitExceeded("policy document is too large")
	}
	doc, err := policy.Parse(text)
	if err == nil {
		err = doc.Validate(kind)
	}
	if err != nil {
		return nil, &awsapi.Error{Code: "MalformedPolicyDocument", Message: err.Error(), Status: http.StatusBadRequest}
	}
	return doc, nil
}

// encodePolicy URL-encodes a policy document, as IAM returns documents.
func encodePolicy(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

// isoTime formats a timestamp as IAM's XML does.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// page returns the items after marker (the first item of the page) and the next marker.
func page(items []string, p params) ([]string, string, error) {
	limit, err := p.int32("MaxItems", 100, 1, 1000)
	if err != nil {
		return nil, "", err
	}
	start := 0
	if m := p.get("Marker"); m != "" {
		start = len(items)
		for i, it := range items {
			if it >= m {
				start = i
				break
			}
		}
	}
	end := min(start+int(limit), len(items))
	next := ""
	if end < len(items) {
		next = items[end]
	}
	return items[start:end], next, nil
}

func noSuchEntity(format string, args ...any) error {
	return &awsapi.Error{Code: "NoSuchEntity", Message: fmt.Sprintf(format, args...), Status: http.StatusNotFound}
}

func alreadyExists(format string, args ...any) error {
	return &awsapi.Error{Code: "EntityAlreadyExists", Message: fmt.Sprintf(format, args...), Status: http.StatusConflict}
}

func deleteConflict(format string, args ...any) error {
	return &awsapi.Error{Code: "DeleteConflict", Message: fmt.Sprintf(format, args...), Status: http.StatusConflict}
}

func limitExceeded(format string, args ...any) error {
	return &awsapi.Error{Code: "LimitExceeded", Message: fmt.Sprintf(format, args...), Status: http.StatusConflict}
}

func invalidInput(format string, args ...any) error {
	return &awsapi.Error{Code: "InvalidInput", Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

func validationError(format string, args ...any) error {
	return &awsapi.Error{Code: "ValidationError", Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}
