package kms

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/policy"
)

// Key states, as KMS names them.
const (
	stateEnabled         = "Enabled"
	stateDisabled        = "Disabled"
	statePendingDeletion = "PendingDeletion"
)

// Service is the emulated KMS of one account. It is safe for concurrent use. Keys remember the
// region they were created in (it is part of their ARN); key ids are unique across regions, so
// one key namespace serves every region.
type Service struct {
	account, region string // region: the default, for keys created in-process
	statePath       string // "" keeps the state in memory
	log             *slog.Logger
	now             func() time.Time

	mu      sync.Mutex
	dirty   bool              // state changed since the last save
	keys    map[string]*key   // by key id (UUID)
	aliases map[string]*alias // by alias name ("alias/...")
}

var (
	_ awsapi.Service     = (*Service)(nil)
	_ awsapi.KeyResolver = (*Service)(nil)
)

// New returns the KMS service, restoring its keys (with their key material), aliases and grants
// from env.StateDir/kms.json when present.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{
		account: env.Account,
		region:  env.Region,
		log:     env.Logger,
		now:     env.Now,
		keys:    map[string]*key{},
		aliases: map[string]*alias{},
	}
	if env.StateDir != "" {
		s.statePath = filepath.Join(env.StateDir, "kms.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			if err := s.restore(data); err != nil {
				return nil, err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading KMS state: %w", err)
		}
	}
	return s, nil
}

// Close saves the state.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

// saveLocked writes the state file when something changed.
func (s *Service) saveLocked() error {
	if !s.dirty || s.statePath == "" {
		return nil
	}
	data, err := s.stateLocked()
	if err != nil {
		return err
	}
	if err := awsapi.WriteFileAtomic(s.statePath, data, 0o600); err != nil {
		return fmt.Errorf("saving KMS state: %w", err)
	}
	s.dirty = false
	return nil
}

type key struct {
	ID                   string            `json:"id"`
	Region               string            `json:"region"`
	Manager              string            `json:"manager"` // CUSTOMER, or AWS for aws/ebs
	Description          string            `json:"description"`
	KeyUsage             string            `json:"keyUsage"`
	KeySpec              string            `json:"keySpec"`
	Origin               string            `json:"origin"`
	State                string            `json:"state"`
	Created              time.Time         `json:"created"`
	DeletionDate         time.Time         `json:"deletionDate,omitzero"`
	PendingWindowInDays  int32             `json:"pendingWindowInDays,omitempty"`
	Policy               string            `json:"policy"`
	Tags                 map[string]string `json:"tags,omitempty"`
	RotationEnabled      bool              `json:"rotationEnabled"`
	RotationPeriodInDays int32             `json:"rotationPeriodInDays,omitempty"`
	NextRotation         time.Time         `json:"nextRotation,omitzero"`
	// Material holds every version of the key material, oldest first; the last encrypts.
	// A local emulator keeps it in its state directory: never use it for real secrets.
	Material  [][]byte   `json:"material"`
	Rotations []rotation `json:"rotations,omitempty"`
	Grants    []*grant   `json:"grants,omitempty"`

	policyDoc *policy.Document
}

type rotation struct {
	Date time.Time `json:"date"`
	Type string    `json:"type"` // AUTOMATIC | ON_DEMAND
}

type alias struct {
	Name        string    `json:"name"`
	TargetKeyID string    `json:"targetKeyId"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

func (s *Service) keyARN(k *key) string {
	return "arn:aws:kms:" + k.Region + ":" + s.account + ":key/" + k.ID
}

// aliasARN is the ARN of an alias name in the default region, for error messages.
func (s *Service) aliasARN(name string) string {
	return "arn:aws:kms:" + s.region + ":" + s.account + ":" + name
}

// aliasARNOf is an alias's ARN: an alias lives in the region of the key it points to.
func (s *Service) aliasARNOf(a *alias) string {
	region := s.region
	if k, ok := s.keys[a.TargetKeyID]; ok {
		region = k.Region
	}
	return "arn:aws:kms:" + region + ":" + s.account + ":" + a.Name
}

// lookupLocked resolves a KeyId as KMS accepts it: a key id, a key ARN, an alias name or an
// alias ARN. Keys whose deletion date has passed are deleted here, lazily; due automatic
// rotations happen here too.
func (s *Service) lookupLocked(keyID string) (*key, error) {
	if keyID == "" {
		return nil, awsapi.Errorf("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	id := keyID
	switch {
	case strings.HasPrefix(keyID, "alias/"), strings.HasPrefix(keyID, "arn:") && strings.Contains(keyID, ":alias/"):
		name := keyID
		if strings.HasPrefix(keyID, "arn:") {
			name = keyID[strings.Index(keyID, ":alias/")+1:]
		}
		a, ok := s.aliases[name]
		if !ok {
			return nil, awsapi.Errorf("NotFoundException", "Alias %s is not found.", s.aliasARN(name))
		}
		id = a.TargetKeyID
	case strings.HasPrefix(keyID, "arn:"):
		i := strings.Index(keyID, ":key/")
		if i < 0 {
			return nil, awsapi.Errorf("NotFoundException", "Invalid arn %s", keyID)
		}
		id = keyID[i+len(":key/"):]
		if k, ok := s.keys[id]; ok && !strings.HasPrefix(keyID, "arn:aws:kms:"+k.Region+":"+s.account+":") {
			return nil, awsapi.Errorf("NotFoundException", "Key '%s' does not exist", keyID)
		}
	}
	k, ok := s.keys[id]
	if !ok {
		return nil, awsapi.Errorf("NotFoundException", "Key '%s' does not exist", keyID)
	}
	now := s.now()
	if k.State == statePendingDeletion && !now.Before(k.DeletionDate) {
		s.deleteKeyLocked(k)
		return nil, awsapi.Errorf("NotFoundException", "Key '%s' does not exist", s.keyARN(k))
	}
	if k.RotationEnabled && k.State == stateEnabled && !k.NextRotation.IsZero() && !now.Before(k.NextRotation) {
		k.rotate(now, "AUTOMATIC")
		k.NextRotation = now.Add(time.Duration(k.RotationPeriodInDays) * 24 * time.Hour)
		s.dirty = true
	}
	return k, nil
}

func (s *Service) deleteKeyLocked(k *key) {
	s.dirty = true
	delete(s.keys, k.ID)
	for name, a := range s.aliases {
		if a.TargetKeyID == k.ID {
			delete(s.aliases, name)
		}
	}
}

func (k *key) rotate(now time.Time, kind string) {
	k.Material = append(k.Material, newMaterial())
	k.Rotations = append(k.Rotations, rotation{Date: now.UTC(), Type: kind})
}

// usableLocked returns the error KMS gives for a cryptographic operation on a key that is not
// enabled.
func (s *Service) usableLocked(k *key) error {
	switch k.State {
	case stateEnabled:
		return nil
	case stateDisabled:
		return awsapi.Errorf("DisabledException", "%s is disabled.", s.keyARN(k))
	default:
		return awsapi.Errorf("KMSInvalidStateException", "%s is pending deletion.", s.keyARN(k))
	}
}

// customerManagedLocked rejects changes to AWS managed keys (alias/aws/...), which only AWS
// manages.
func (s *Service) customerManagedLocked(k *key) error {
	if k.Manager == "AWS" {
		return awsapi.Errorf("UnsupportedOperationException", "%s is an AWS managed key, which cannot be changed.", s.keyARN(k))
	}
	return nil
}

// notPendingDeletionLocked rejects management calls on a key pending deletion, as KMS does.
func (s *Service) notPendingDeletionLocked(k *key) error {
	if k.State == statePendingDeletion {
		return awsapi.Errorf("KMSInvalidStateException", "%s is pending deletion.", s.keyARN(k))
	}
	return nil
}

// ResolveKey implements awsapi.KeyResolver for EC2 volume encryption: keyRef is a key id,
// key ARN, alias name or alias ARN. It returns awsapi.ErrNotFound when no such key exists.
func (s *Service) ResolveKey(ctx context.Context, account, region, keyRef string) (awsapi.KeyInfo, error) {
	if account != "" && account != s.account {
		return awsapi.KeyInfo{}, fmt.Errorf("key %s in account %s: %w", keyRef, account, awsapi.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.saveOrLogLocked()
	k, err := s.lookupLocked(keyRef)
	if err != nil {
		return awsapi.KeyInfo{}, fmt.Errorf("key %s: %w", keyRef, awsapi.ErrNotFound)
	}
	return s.keyInfo(k), nil
}

// DefaultEBSKey implements awsapi.KeyResolver: the AWS managed key aliased alias/aws/ebs,
// created on first use as AWS does.
func (s *Service) DefaultEBSKey(ctx context.Context, account, region string) (awsapi.KeyInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.saveOrLogLocked()
	k, err := s.managedKeyLocked("alias/aws/ebs", region)
	if err != nil {
		return awsapi.KeyInfo{}, err
	}
	return s.keyInfo(k), nil
}

// managedAliasPattern is a predefined AWS alias, alias/aws/<service>.
var managedAliasPattern = regexp.MustCompile(`^alias/aws/[a-z0-9-]+$`)

// managedKeyLocked returns the AWS managed key of a predefined alias (alias/aws/ebs,
// alias/aws/kafka, ...), creating it on first use: KMS creates these keys when a service first
// needs one, or when DescribeKey names the alias.
func (s *Service) managedKeyLocked(name, region string) (*key, error) {
	if a, ok := s.aliases[name]; ok {
		if k, err := s.lookupLocked(a.TargetKeyID); err == nil {
			return k, nil
		}
	}
	if region == "" {
		region = s.region
	}
	policyText := defaultKeyPolicy(s.account)
	doc, err := policy.Parse(policyText)
	if err != nil {
		return nil, fmt.Errorf("parsing the default key policy: %w", err)
	}
	service := strings.TrimPrefix(name, "alias/aws/")
	k := s.newKeyLocked(region, "Default key that protects my "+service+" resources when no other key is defined", policyText, doc, nil)
	k.Manager = "AWS"
	now := s.now().UTC()
	s.aliases[name] = &alias{Name: name, TargetKeyID: k.ID, Created: now, Updated: now}
	return k, nil
}

func (s *Service) keyInfo(k *key) awsapi.KeyInfo {
	return awsapi.KeyInfo{KeyID: k.ID, ARN: s.keyARN(k), State: k.State, Enabled: k.State == stateEnabled}
}

// newKeyLocked creates an enabled symmetric key with fresh key material.
func (s *Service) newKeyLocked(region, description, policyText string, doc *policy.Document, tags map[string]string) *key {
	k := &key{
		ID:          newUUID(),
		Region:      region,
		Manager:     "CUSTOMER",
		Description: description,
		KeyUsage:    "ENCRYPT_DECRYPT",
		KeySpec:     symmetricDefault,
		Origin:      "AWS_KMS",
		State:       stateEnabled,
		Created:     s.now().UTC(),
		Policy:      policyText,
		Tags:        tags,
		Material:    [][]byte{newMaterial()},
		policyDoc:   doc,
	}
	s.keys[k.ID] = k
	s.dirty = true
	return k
}

// saveOrLogLocked saves a changed state; a failure is logged, not returned, because the change
// it failed to persist has already been made and answered.
func (s *Service) saveOrLogLocked() {
	if err := s.saveLocked(); err != nil {
		s.log.Error("kms: saving state", "err", err)
	}
}

// snapshot is the persisted form of the service.
type snapshot struct {
	Keys    []*key   `json:"keys"`
	Aliases []*alias `json:"aliases"`
}

// stateLocked serialises every key (including its key material), alias and grant as JSON.
func (s *Service) stateLocked() ([]byte, error) {
	snap := snapshot{}
	for _, k := range s.keys {
		snap.Keys = append(snap.Keys, k)
	}
	for _, a := range s.aliases {
		snap.Aliases = append(snap.Aliases, a)
	}
	sort.Slice(snap.Keys, func(i, j int) bool { return snap.Keys[i].ID < snap.Keys[j].ID })
	sort.Slice(snap.Aliases, func(i, j int) bool { return snap.Aliases[i].Name < snap.Aliases[j].Name })
	data, err := json.Marshal(snap)
	if err != nil {
		return nil, fmt.Errorf("encoding KMS state: %w", err)
	}
	return data, nil
}

// restore replaces the service's state with one saved by saveLocked.
func (s *Service) restore(data []byte) error {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("decoding KMS state: %w", err)
	}
	keys := make(map[string]*key, len(snap.Keys))
	for _, k := range snap.Keys {
		if len(k.Material) == 0 {
			return fmt.Errorf("decoding KMS state: key %s has no key material", k.ID)
		}
		doc, err := policy.Parse(k.Policy)
		if err != nil {
			return fmt.Errorf("decoding KMS state: policy of key %s: %w", k.ID, err)
		}
		k.policyDoc = doc
		keys[k.ID] = k
	}
	aliases := make(map[string]*alias, len(snap.Aliases))
	for _, a := range snap.Aliases {
		aliases[a.Name] = a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.aliases = keys, aliases
	s.dirty = false // the state is what the file holds
	return nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func defaultKeyPolicy(account string) string {
	return `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::` + account + `:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`
}
