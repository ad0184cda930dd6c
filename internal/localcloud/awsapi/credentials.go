package awsapi

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultAccount is the account id of the default credentials, as LocalStack uses.
const DefaultAccount = "000000000000"

// PrincipalType says what kind of IAM principal signed a request.
type PrincipalType string

// The principal types a credential can belong to.
const (
	PrincipalRoot        PrincipalType = "Root"
	PrincipalUser        PrincipalType = "User"
	PrincipalAssumedRole PrincipalType = "AssumedRole"
)

// Identity is who signed a request: what sts:GetCallerIdentity returns, plus what policy
// evaluation needs.
type Identity struct {
	Account string        `json:"account"`
	ARN     string        `json:"arn"`    // arn:aws:iam::000000000000:root, arn:aws:sts::<acct>:assumed-role/<role>/<session>
	UserID  string        `json:"userId"` // the account id for root, AIDA... for users, AROA...:<session> for roles
	Type    PrincipalType `json:"type"`
	// PrincipalARN is the IAM entity whose identity policies apply: the user ARN, or the role
	// ARN (arn:aws:iam::<acct>:role/<path><name>) of an assumed-role session.
	PrincipalARN string `json:"principalArn"`
	SessionName  string `json:"sessionName,omitempty"`
}

// IsRoot reports whether the identity is an account root, which IAM policies do not restrict.
func (i Identity) IsRoot() bool { return i.Type == PrincipalRoot }

// RootIdentity is the root identity of an account.
func RootIdentity(account string) Identity {
	arn := "arn:aws:iam::" + account + ":root"
	return Identity{Account: account, ARN: arn, UserID: account, Type: PrincipalRoot, PrincipalARN: arn}
}

// AssumedRoleIdentity is the identity of a session of a role. roleARN is the role's IAM ARN
// (with its path), roleID its unique id (AROA...).
func AssumedRoleIdentity(account, roleARN, roleID, sessionName string) Identity {
	name := roleARN[strings.LastIndex(roleARN, "/")+1:]
	return Identity{
		Account:      account,
		ARN:          "arn:aws:sts::" + account + ":assumed-role/" + name + "/" + sessionName,
		UserID:       roleID + ":" + sessionName,
		Type:         PrincipalAssumedRole,
		PrincipalARN: roleARN,
		SessionName:  sessionName,
	}
}

// Credential is an access key the emulator accepts, and whose it is.
type Credential struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	SessionToken    string    `json:"sessionToken,omitempty"`
	Expiration      time.Time `json:"expiration,omitzero"` // zero: never expires
	Identity        Identity  `json:"identity"`
	// Source says who issued it, so a group can be revoked together: "static",
	// "sts:AssumeRole", "instance:i-0123...".
	Source string `json:"source"`
}

// Expired reports whether the credential has expired at now.
func (c Credential) Expired(now time.Time) bool {
	return !c.Expiration.IsZero() && !now.Before(c.Expiration)
}

// CredentialStore holds every credential the emulator accepts. It is safe for concurrent use.
// With a path it persists itself (atomically) on every change, so sessions issued before a
// restart of the emulator stay valid.
type CredentialStore struct {
	mu    sync.RWMutex
	path  string
	byKey map[string]Credential
	now   func() time.Time
}

// NewCredentialStore opens the store persisted at path ("" keeps it in memory only) and makes
// sure the default static credentials test/test (root of DefaultAccount) exist.
func NewCredentialStore(path string) (*CredentialStore, error) {
	s := &CredentialStore{path: path, byKey: map[string]Credential{}, now: time.Now}
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			var list []Credential
			if err := json.Unmarshal(data, &list); err != nil {
				return nil, fmt.Errorf("reading credential store %s: %w", path, err)
			}
			for _, c := range list {
				s.byKey[c.AccessKeyID] = c
			}
		case !os.IsNotExist(err):
			return nil, fmt.Errorf("reading credential store: %w", err)
		}
	}
	if _, ok := s.byKey["test"]; !ok {
		if err := s.Put(Credential{AccessKeyID: "test", SecretAccessKey: "test", Identity: RootIdentity(DefaultAccount), Source: "static"}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Put adds or replaces a credential.
func (s *CredentialStore) Put(c Credential) error {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return fmt.Errorf("credential needs an access key id and a secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byKey[c.AccessKeyID] = c
	return s.saveLocked()
}

// Lookup finds a credential by access key id. Expired credentials are still returned (the
// caller reports ExpiredToken rather than an unknown key).
func (s *CredentialStore) Lookup(accessKeyID string) (Credential, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byKey[accessKeyID]
	return c, ok
}

// IssueSession creates temporary credentials (ASIA... key, secret, session token) for identity,
// valid for ttl, as STS AssumeRole and the instance metadata service hand out.
func (s *CredentialStore) IssueSession(identity Identity, ttl time.Duration, source string) (Credential, error) {
	if ttl <= 0 {
		return Credential{}, fmt.Errorf("session duration must be positive, got %s", ttl)
	}
	c := Credential{
		AccessKeyID:     "ASIA" + randomBase32(16),
		SecretAccessKey: randomBase64(30), // 40 characters, as AWS secrets
		SessionToken:    randomBase64(120),
		Expiration:      s.now().Add(ttl).UTC().Truncate(time.Second),
		Identity:        identity,
		Source:          source,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked()
	s.byKey[c.AccessKeyID] = c
	if err := s.saveLocked(); err != nil {
		return Credential{}, err
	}
	return c, nil
}

// RevokeSource removes every credential issued by source (for example a terminated instance).
func (s *CredentialStore) RevokeSource(source string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.byKey {
		if c.Source == source {
			delete(s.byKey, k)
		}
	}
	return s.saveLocked()
}

// pruneLocked forgets sessions that expired over an hour ago; keeping recently expired ones lets
// a late request get ExpiredToken instead of an unknown-key error.
func (s *CredentialStore) pruneLocked() {
	cutoff := s.now().Add(-time.Hour)
	for k, c := range s.byKey {
		if !c.Expiration.IsZero() && c.Expiration.Before(cutoff) {
			delete(s.byKey, k)
		}
	}
}

func (s *CredentialStore) saveLocked() error {
	if s.path == "" {
		return nil
	}
	list := make([]Credential, 0, len(s.byKey))
	for _, c := range s.byKey {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].AccessKeyID < list[j].AccessKeyID })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding credential store: %w", err)
	}
	return WriteFileAtomic(s.path, data, 0o600)
}

// WriteFileAtomic writes data to path through a temporary file in the same directory, fsynced
// and renamed over path, so a crash leaves either the old or the new content, never a torn file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func randomBase32(n int) string {
	return base32.StdEncoding.EncodeToString(randomBytes(n))[:n]
}

func randomBase64(n int) string {
	return base64.StdEncoding.EncodeToString(randomBytes(n))
}

// NewID returns a random lower-case hex id of n characters, for resource ids such as
// "i-" + NewID(17).
func NewID(n int) string {
	const hex = "0123456789abcdef"
	b := randomBytes(n)
	for i := range b {
		b[i] = hex[b[i]&0xf]
	}
	return string(b)
}
