// Package secretsmanager emulates AWS Secrets Manager (awsJson1_1, X-Amz-Target:
// secretsmanager.<Operation>) for the local cloud: secrets by name or ARN with their current
// and previous versions (CreateSecret, PutSecretValue, GetSecretValue, DescribeSecret,
// DeleteSecret with a recovery window or at once, RestoreSecret), each call authorized by IAM as
// secretsmanager:<Operation> on the secret's ARN. The provider reads a SCRAM user's password
// from it as Amazon MSK does. Secret values are kept sealed (AES-256-GCM) under a key of the
// service's own state directory, never in clear in its state file.
package secretsmanager

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Service is the emulated Secrets Manager of one account. It is safe for concurrent use.
type Service struct {
	account   string
	region    string
	statePath string
	log       *slog.Logger
	now       func() time.Time
	aead      cipher.AEAD

	mu      sync.Mutex
	secrets map[string]*secret // by name
}

var _ awsapi.Service = (*Service)(nil)

// secret is one secret and its versions (the current one, and the previous one).
type secret struct {
	Name        string            `json:"name"`
	ARN         string            `json:"arn"`
	Description string            `json:"description,omitempty"`
	KMSKeyID    string            `json:"kmsKeyId,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Created     float64           `json:"created"`
	Changed     float64           `json:"changed"`
	Deleted     float64           `json:"deleted,omitempty"` // when marked for deletion
	DeleteAt    float64           `json:"deleteAt,omitempty"`
	Versions    []*version        `json:"versions"` // the current first, then the previous
}

type version struct {
	ID      string  `json:"id"`
	Created float64 `json:"created"`
	Binary  bool    `json:"binary,omitempty"`
	Sealed  []byte  `json:"sealed"` // nonce || AES-GCM(value)
}

// New returns the Secrets Manager service, restoring its state from env.StateDir: the sealing
// key (key.hex, made at the first start) and secrets.json.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, log: env.Logger, now: env.Now, secrets: map[string]*secret{}}
	key := make([]byte, 32)
	if env.StateDir == "" {
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	} else {
		var err error
		if key, err = loadKey(filepath.Join(env.StateDir, "key.hex")); err != nil {
			return nil, err
		}
		s.statePath = filepath.Join(env.StateDir, "secrets.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			var list []*secret
			if err := json.Unmarshal(data, &list); err != nil {
				return nil, fmt.Errorf("reading Secrets Manager state %s: %w", s.statePath, err)
			}
			for _, sec := range list {
				s.secrets[sec.Name] = sec
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading Secrets Manager state: %w", err)
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return s, nil
}

// loadKey reads the sealing key, making it (readable by the owner only) when there is none.
func loadKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("the Secrets Manager key %s is not 32 hex-encoded bytes", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the Secrets Manager key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := awsapi.WriteFileAtomic(path, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		return nil, fmt.Errorf("writing the Secrets Manager key: %w", err)
	}
	return key, nil
}

// Close has nothing to flush: every change is written when it is made.
func (s *Service) Close() error { return nil }

func (s *Service) saveLocked() error {
	if s.statePath == "" {
		return nil
	}
	return awsapi.SaveJSONState(s.statePath, "Secrets Manager", awsapi.SortedValues(s.secrets))
}

// operation serves one action; it runs with s.mu held.
type operation func(s *Service, c *call) (any, error)

var operations = map[string]operation{
	"CreateSecret":   (*Service).createSecret,
	"PutSecretValue": (*Service).putSecretValue,
	"GetSecretValue": (*Service).getSecretValue,
	"DescribeSecret": (*Service).describeSecret,
	"DeleteSecret":   (*Service).deleteSecret,
	"RestoreSecret":  (*Service).restoreSecret,
}

type call struct {
	ctx context.Context
	req *awsapi.Request
}

// Handle serves one Secrets Manager request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	op, err := awsapi.JSONOperation(req, "Secrets Manager", "secretsmanager.", operations)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.purgeLocked()
	out, err := op(s, &call{ctx: ctx, req: req})
	s.mu.Unlock()
	return awsapi.JSONResult(req, out, err)
}

func (c *call) authorize(sec string) error {
	return c.req.Authorize(c.ctx, "secretsmanager:"+c.req.Action, sec, nil)
}

// Errors, as Secrets Manager names them.
func notFound() error {
	return awsapi.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
}

func invalidParameter(format string, args ...any) error {
	return awsapi.Errorf("InvalidParameterException", format, args...)
}

func invalidRequest(format string, args ...any) error {
	return awsapi.Errorf("InvalidRequestException", format, args...)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

// findLocked resolves a SecretId: a name, a full ARN, or an ARN without its random suffix.
func (s *Service) findLocked(id string) (*secret, error) {
	if id == "" {
		return nil, invalidParameter("You must provide a SecretId.")
	}
	if sec, ok := s.secrets[id]; ok {
		return sec, nil
	}
	for _, sec := range s.secrets {
		if sec.ARN == id || strings.HasPrefix(sec.ARN, id+"-") && len(sec.ARN) == len(id)+7 {
			return sec, nil
		}
	}
	return nil, notFound()
}

// purgeLocked removes the secrets whose recovery window ended.
func (s *Service) purgeLocked() {
	now := s.seconds()
	changed := false
	for name, sec := range s.secrets {
		if sec.Deleted != 0 && sec.DeleteAt <= now {
			delete(s.secrets, name)
			changed = true
		}
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			s.log.Error("secretsmanager: saving after purging deleted secrets", "err", err)
		}
	}
}

func (s *Service) seconds() float64 { return float64(s.now().UnixMilli()) / 1000 }

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func newVersionID(token string) string {
	if token != "" {
		return token
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// value is a request's secret value: exactly one of SecretString and SecretBinary.
type value struct {
	SecretString *string `json:"SecretString"`
	SecretBinary []byte  `json:"SecretBinary"`
}

func (v value) plain() ([]byte, bool, error) {
	switch {
	case v.SecretString != nil && v.SecretBinary != nil:
		return nil, false, invalidParameter("You can't specify both a binary secret value and a string secret value in the same secret.")
	case v.SecretString != nil:
		if len(*v.SecretString) > 65536 {
			return nil, false, invalidParameter("SecretString is longer than 65536 characters.")
		}
		return []byte(*v.SecretString), false, nil
	case v.SecretBinary != nil:
		return v.SecretBinary, true, nil
	}
	return nil, false, nil
}

func (s *Service) seal(plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, nil)
}

func (s *Service) open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], nil)
}

// addVersionLocked makes plain the secret's current version, the current one its previous.
func (s *Service) addVersionLocked(sec *secret, plain []byte, binary bool, token string) *version {
	v := &version{ID: newVersionID(token), Created: s.seconds(), Binary: binary, Sealed: s.seal(plain)}
	sec.Versions = append([]*version{v}, sec.Versions...)
	if len(sec.Versions) > 2 {
		sec.Versions = sec.Versions[:2]
	}
	sec.Changed = v.Created
	return v
}

func (s *Service) createSecret(c *call) (any, error) {
	var in struct {
		value
		Name               string
		Description        string
		KmsKeyId           string
		ClientRequestToken string
		Tags               []struct{ Key, Value string }
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	if !namePattern.MatchString(in.Name) {
		return nil, invalidParameter("Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	arn := "arn:aws:secretsmanager:" + s.region + ":" + s.account + ":secret:" + in.Name + "-" + randomSuffix()
	if err := c.authorize(arn); err != nil {
		return nil, err
	}
	if old, ok := s.secrets[in.Name]; ok {
		if old.Deleted != 0 {
			return nil, invalidRequest("You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		return nil, awsapi.Errorf("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	plain, binary, err := in.plain()
	if err != nil {
		return nil, err
	}
	now := s.seconds()
	sec := &secret{Name: in.Name, ARN: arn, Description: in.Description, KMSKeyID: in.KmsKeyId, Created: now, Changed: now}
	for _, t := range in.Tags {
		if sec.Tags == nil {
			sec.Tags = map[string]string{}
		}
		sec.Tags[t.Key] = t.Value
	}
	out := map[string]any{"ARN": arn, "Name": in.Name}
	if in.SecretString != nil || in.SecretBinary != nil {
		out["VersionId"] = s.addVersionLocked(sec, plain, binary, in.ClientRequestToken).ID
	}
	s.secrets[in.Name] = sec
	return out, s.saveLocked()
}

// usableLocked finds a secret that is not marked for deletion, authorized.
func (s *Service) usableLocked(c *call, id string) (*secret, error) {
	sec, err := s.findLocked(id)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(sec.ARN); err != nil {
		return nil, err
	}
	if sec.Deleted != 0 {
		return nil, invalidRequest("You can't perform this operation on the secret because it was marked for deletion.")
	}
	return sec, nil
}

func (s *Service) putSecretValue(c *call) (any, error) {
	var in struct {
		value
		SecretId           string
		ClientRequestToken string
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	sec, err := s.usableLocked(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	plain, binary, err := in.plain()
	if err != nil {
		return nil, err
	}
	if plain == nil {
		return nil, invalidParameter("You must provide either SecretString or SecretBinary.")
	}
	v := s.addVersionLocked(sec, plain, binary, in.ClientRequestToken)
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name, "VersionId": v.ID, "VersionStages": []string{"AWSCURRENT"}}, s.saveLocked()
}

func (s *Service) getSecretValue(c *call) (any, error) {
	var in struct{ SecretId, VersionId, VersionStage string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	sec, err := s.usableLocked(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	// By version id, or by staging label (AWSCURRENT unless named); both must agree.
	var v *version
	stage := ""
	for i, cand := range sec.Versions {
		st := stageOf(i)
		if in.VersionId != "" && cand.ID != in.VersionId || in.VersionStage != "" && st != in.VersionStage ||
			in.VersionId == "" && in.VersionStage == "" && st != "AWSCURRENT" {
			continue
		}
		v, stage = cand, st
		break
	}
	if v == nil {
		return nil, awsapi.Errorf("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", cmpOr(in.VersionStage, "AWSCURRENT"))
	}
	plain, err := s.open(v.Sealed)
	if err != nil {
		return nil, fmt.Errorf("secretsmanager: opening a version of %s: %w", sec.Name, err)
	}
	out := map[string]any{"ARN": sec.ARN, "Name": sec.Name, "VersionId": v.ID, "VersionStages": []string{stage}, "CreatedDate": v.Created}
	if v.Binary {
		out["SecretBinary"] = plain
	} else {
		out["SecretString"] = string(plain)
	}
	return out, nil
}

// stageOf is the staging label of the i-th version kept: the current, then the previous.
func stageOf(i int) string { return []string{"AWSCURRENT", "AWSPREVIOUS"}[i] }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Service) describeSecret(c *call) (any, error) {
	var in struct{ SecretId string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	sec, err := s.findLocked(in.SecretId)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(sec.ARN); err != nil {
		return nil, err
	}
	stages := map[string][]string{}
	for i, v := range sec.Versions {
		stages[v.ID] = []string{stageOf(i)}
	}
	out := map[string]any{"ARN": sec.ARN, "Name": sec.Name, "CreatedDate": sec.Created, "LastChangedDate": sec.Changed, "VersionIdsToStages": stages}
	if sec.Description != "" {
		out["Description"] = sec.Description
	}
	if sec.KMSKeyID != "" {
		out["KmsKeyId"] = sec.KMSKeyID
	}
	if sec.Deleted != 0 {
		out["DeletedDate"] = sec.Deleted
	}
	var tags []map[string]string
	for _, k := range slices.Sorted(maps.Keys(sec.Tags)) {
		tags = append(tags, map[string]string{"Key": k, "Value": sec.Tags[k]})
	}
	if tags != nil {
		out["Tags"] = tags
	}
	return out, nil
}

func (s *Service) deleteSecret(c *call) (any, error) {
	var in struct {
		SecretId                   string
		RecoveryWindowInDays       *int64
		ForceDeleteWithoutRecovery bool
	}
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	sec, err := s.findLocked(in.SecretId)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(sec.ARN); err != nil {
		return nil, err
	}
	days := int64(30)
	switch {
	case in.ForceDeleteWithoutRecovery && in.RecoveryWindowInDays != nil:
		return nil, invalidParameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	case in.RecoveryWindowInDays != nil:
		days = *in.RecoveryWindowInDays
		if days < 7 || days > 30 {
			return nil, invalidParameter("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	now := s.seconds()
	out := map[string]any{"ARN": sec.ARN, "Name": sec.Name, "DeletionDate": now}
	if in.ForceDeleteWithoutRecovery {
		delete(s.secrets, sec.Name)
		return out, s.saveLocked()
	}
	if sec.Deleted == 0 {
		sec.Deleted, sec.DeleteAt = now, now+float64(days*86400)
	}
	out["DeletionDate"] = sec.DeleteAt
	return out, s.saveLocked()
}

func (s *Service) restoreSecret(c *call) (any, error) {
	var in struct{ SecretId string }
	if err := c.req.DecodeJSON(&in); err != nil {
		return nil, err
	}
	sec, err := s.findLocked(in.SecretId)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(sec.ARN); err != nil {
		return nil, err
	}
	sec.Deleted, sec.DeleteAt = 0, 0
	return map[string]any{"ARN": sec.ARN, "Name": sec.Name}, s.saveLocked()
}
