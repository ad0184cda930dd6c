package iam

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// user is an IAM user. Its access keys are registered in the server's credential store, so
// requests signed with them carry the user's identity and its policies apply: this is how to
// test a least-privilege policy with static keys.
type user struct {
	Name    string      `json:"name"`
	Path    string      `json:"path"`
	ID      string      `json:"id"` // AIDA...
	Created time.Time   `json:"created"`
	Tags    []tag       `json:"tags,omitempty"`
	Keys    []accessKey `json:"keys,omitempty"`
	policySet
}

// accessKey is a user's access key. The secret is kept (in the state file, like KMS key
// material) so that a key deactivated and activated again works.
type accessKey struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	Active  bool      `json:"active"`
	Created time.Time `json:"created"`
}

// maxAccessKeys is IAM's limit of access keys per user.
const maxAccessKeys = 2

func (s *Service) userARN(u *user) string {
	return "arn:aws:iam::" + s.account + ":user" + u.Path + u.Name
}

func (s *Service) userIdentity(u *user) awsapi.Identity {
	arn := s.userARN(u)
	return awsapi.Identity{Account: s.account, ARN: arn, UserID: u.ID, Type: awsapi.PrincipalUser, PrincipalARN: arn}
}

func keySource(keyID string) string { return "iam:access-key:" + keyID }

// activateKey registers an active key in the credential store (again, after a restart).
func (s *Service) activateKey(u *user, k accessKey) error {
	if s.creds == nil {
		return fmt.Errorf("IAM has no credential store to register access keys in")
	}
	return s.creds.Put(awsapi.Credential{AccessKeyID: k.ID, SecretAccessKey: k.Secret, Identity: s.userIdentity(u), Source: keySource(k.ID)})
}

func (s *Service) deactivateKey(k accessKey) error {
	if s.creds == nil {
		return nil
	}
	return s.creds.RevokeSource(keySource(k.ID))
}

func (s *Service) userByARNLocked(arn string) *user {
	i := strings.LastIndex(arn, "/")
	if i < 0 {
		return nil
	}
	u, ok := s.users[strings.ToLower(arn[i+1:])]
	if !ok || s.userARN(u) != arn {
		return nil
	}
	return u
}

type userXML struct {
	Path       string   `xml:"Path,omitempty"`     // empty only for the root
	UserName   string   `xml:"UserName,omitempty"` // empty only for the root
	UserID     string   `xml:"UserId"`
	Arn        string   `xml:"Arn"`
	CreateDate string   `xml:"CreateDate"`
	Tags       *tagList `xml:"Tags,omitempty"`
}

func (s *Service) userXML(u *user) userXML {
	return userXML{Path: u.Path, UserName: u.Name, UserID: u.ID, Arn: s.userARN(u), CreateDate: isoTime(u.Created), Tags: tagsXML(u.Tags)}
}

type userResult struct {
	User userXML `xml:"User"`
}

func (s *Service) userLocked(name string) (*user, error) {
	return lookupByName(s.users, "UserName", name, "The user with name %s cannot be found.")
}

func (s *Service) createUser(p params) (any, error) {
	name, path, err := nameAndPath(p, "UserName", 64)
	if err != nil {
		return nil, err
	}
	tags, err := p.tags("Tags")
	if err != nil {
		return nil, err
	}
	if _, ok := s.users[strings.ToLower(name)]; ok {
		return nil, alreadyExists("User with name %s already exists.", name)
	}
	u := &user{Name: name, Path: path, ID: newID("AIDA"), Created: s.now().UTC(), Tags: tags, policySet: newPolicySet()}
	s.users[strings.ToLower(name)] = u
	return userResult{User: s.userXML(u)}, nil
}

// getUser answers for the named user; without a name, for the caller (see Handle).
func (s *Service) getUser(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return userResult{User: s.userXML(u)}, nil
}

// callerAsUser answers GetUser without a UserName: the calling user, or the account root.
func (s *Service) callerAsUser(caller awsapi.Identity) (any, error) {
	switch caller.Type {
	case awsapi.PrincipalRoot:
		// As IAM answers for the root: no name and no path.
		return userResult{User: userXML{UserID: caller.Account, Arn: caller.ARN, CreateDate: isoTime(time.Unix(0, 0))}}, nil
	case awsapi.PrincipalUser:
		if u := s.userByARNLocked(caller.ARN); u != nil {
			return userResult{User: s.userXML(u)}, nil
		}
		return nil, noSuchEntity("The user %s cannot be found.", caller.ARN)
	default:
		return nil, validationError("Must specify userName when calling with non-User credentials")
	}
}

func (s *Service) deleteUser(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	switch {
	case len(u.Keys) > 0:
		return nil, deleteConflict("Cannot delete entity, must delete access keys first.")
	case len(s.groupsOfLocked(u)) > 0:
		return nil, deleteConflict("Cannot delete entity, must remove user from all groups first.")
	case len(u.Inline) > 0:
		return nil, deleteConflict("Cannot delete entity, must delete policies first.")
	case len(u.Attached) > 0:
		return nil, deleteConflict("Cannot delete entity, must detach all policies first.")
	}
	delete(s.users, strings.ToLower(u.Name))
	return nil, nil
}

type listUsersResult struct {
	Users       []userXML `xml:"Users>member"`
	IsTruncated bool      `xml:"IsTruncated"`
	Marker      string    `xml:"Marker,omitempty"`
}

func (s *Service) listUsers(p params) (any, error) {
	prefix := pathOr(p.get("PathPrefix"))
	names := sortedKeysWhere(s.users, func(u *user) bool { return strings.HasPrefix(u.Path, prefix) })
	items, next, err := page(names, p)
	if err != nil {
		return nil, err
	}
	out := listUsersResult{Users: []userXML{}, IsTruncated: next != "", Marker: next}
	for _, key := range items {
		x := s.userXML(s.users[key])
		x.Tags = nil // ListUsers does not return tags, as in IAM
		out.Users = append(out.Users, x)
	}
	return out, nil
}

func (s *Service) tagUser(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return nil, tagResource(&u.Tags, p)
}

func (s *Service) untagUser(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	untagResource(&u.Tags, p)
	return nil, nil
}

func (s *Service) listUserTags(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return listTags(u.Tags), nil
}

func (s *Service) putUserPolicy(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return nil, putInlinePolicy(&u.policySet, p)
}

type userPolicyResult struct {
	UserName       string `xml:"UserName"`
	PolicyName     string `xml:"PolicyName"`
	PolicyDocument string `xml:"PolicyDocument"`
}

func (s *Service) getUserPolicy(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	name, text, err := inlinePolicy(&u.policySet, "user", p)
	if err != nil {
		return nil, err
	}
	return userPolicyResult{UserName: u.Name, PolicyName: name, PolicyDocument: encodePolicy(text)}, nil
}

func (s *Service) deleteUserPolicy(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return nil, deleteInlinePolicy(&u.policySet, "user", p)
}

func (s *Service) listUserPolicies(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return listInlinePolicies(&u.policySet, p)
}

func (s *Service) attachUserPolicy(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return nil, s.attachPolicy(&u.policySet, "PoliciesPerUser", p)
}

func (s *Service) detachUserPolicy(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return nil, detachPolicy(&u.policySet, p)
}

func (s *Service) listAttachedUserPolicies(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	return s.listAttached(&u.policySet, p)
}

type accessKeyXML struct {
	UserName        string `xml:"UserName"`
	AccessKeyID     string `xml:"AccessKeyId"`
	Status          string `xml:"Status"`
	SecretAccessKey string `xml:"SecretAccessKey,omitempty"`
	CreateDate      string `xml:"CreateDate"`
}

func keyStatus(k accessKey) string {
	if k.Active {
		return "Active"
	}
	return "Inactive"
}

type createAccessKeyResult struct {
	AccessKey accessKeyXML `xml:"AccessKey"`
}

func (s *Service) createAccessKey(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	if len(u.Keys) >= maxAccessKeys {
		return nil, limitExceeded("Cannot exceed quota for AccessKeysPerUser: %d", maxAccessKeys)
	}
	secret := make([]byte, 30)
	_, _ = rand.Read(secret)
	k := accessKey{ID: newID("AKIA")[:20], Secret: base64.StdEncoding.EncodeToString(secret), Active: true, Created: s.now().UTC()}
	if err := s.activateKey(u, k); err != nil {
		return nil, err
	}
	u.Keys = append(u.Keys, k)
	return createAccessKeyResult{AccessKey: accessKeyXML{UserName: u.Name, AccessKeyID: k.ID, Status: keyStatus(k), SecretAccessKey: k.Secret, CreateDate: isoTime(k.Created)}}, nil
}

type listAccessKeysResult struct {
	AccessKeyMetadata []accessKeyXML `xml:"AccessKeyMetadata>member"`
	IsTruncated       bool           `xml:"IsTruncated"`
}

func (s *Service) listAccessKeys(p params) (any, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, err
	}
	out := listAccessKeysResult{AccessKeyMetadata: []accessKeyXML{}}
	for _, k := range u.Keys {
		out.AccessKeyMetadata = append(out.AccessKeyMetadata, accessKeyXML{UserName: u.Name, AccessKeyID: k.ID, Status: keyStatus(k), CreateDate: isoTime(k.Created)})
	}
	return out, nil
}

func (s *Service) userKeyLocked(p params) (*user, int, error) {
	u, err := s.userLocked(p.get("UserName"))
	if err != nil {
		return nil, 0, err
	}
	id := p.get("AccessKeyId")
	i := slices.IndexFunc(u.Keys, func(k accessKey) bool { return k.ID == id })
	if i < 0 {
		return nil, 0, noSuchEntity("The Access Key with id %s cannot be found.", id)
	}
	return u, i, nil
}

func (s *Service) updateAccessKey(p params) (any, error) {
	u, i, err := s.userKeyLocked(p)
	if err != nil {
		return nil, err
	}
	switch p.get("Status") {
	case "Active":
		u.Keys[i].Active = true
		err = s.activateKey(u, u.Keys[i])
	case "Inactive":
		u.Keys[i].Active = false
		err = s.deactivateKey(u.Keys[i])
	default:
		return nil, validationError("Status must be Active or Inactive")
	}
	return nil, err
}

func (s *Service) deleteAccessKey(p params) (any, error) {
	u, i, err := s.userKeyLocked(p)
	if err != nil {
		return nil, err
	}
	if err := s.deactivateKey(u.Keys[i]); err != nil {
		return nil, err
	}
	u.Keys = slices.Delete(u.Keys, i, i+1)
	return nil, nil
}
