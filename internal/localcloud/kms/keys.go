package kms

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/policy"
)

// timeJSON is a timestamp in the awsJson protocols' form: fractional epoch seconds.
type timeJSON time.Time

func (t timeJSON) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Time(t).UnixMilli())/1000, 'f', -1, 64), nil
}

func (t *timeJSON) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*t = timeJSON(time.UnixMilli(int64(f * 1000)).UTC())
	return nil
}

func ptime(t time.Time) *timeJSON {
	if t.IsZero() {
		return nil
	}
	v := timeJSON(t)
	return &v
}

type tag struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

type keyMetadata struct {
	AWSAccountID                string    `json:"AWSAccountId"`
	Arn                         string    `json:"Arn"`
	CreationDate                timeJSON  `json:"CreationDate"`
	CustomerMasterKeySpec       string    `json:"CustomerMasterKeySpec"`
	DeletionDate                *timeJSON `json:"DeletionDate,omitempty"`
	Description                 string    `json:"Description"`
	Enabled                     bool      `json:"Enabled"`
	EncryptionAlgorithms        []string  `json:"EncryptionAlgorithms"`
	KeyID                       string    `json:"KeyId"`
	KeyManager                  string    `json:"KeyManager"`
	KeySpec                     string    `json:"KeySpec"`
	KeyState                    string    `json:"KeyState"`
	KeyUsage                    string    `json:"KeyUsage"`
	MultiRegion                 bool      `json:"MultiRegion"`
	Origin                      string    `json:"Origin"`
	PendingDeletionWindowInDays int32     `json:"PendingDeletionWindowInDays,omitempty"`
}

func (s *Service) metadata(k *key) keyMetadata {
	m := keyMetadata{
		AWSAccountID:          s.account,
		Arn:                   s.keyARN(k),
		CreationDate:          timeJSON(k.Created),
		CustomerMasterKeySpec: k.KeySpec,
		Description:           k.Description,
		Enabled:               k.State == stateEnabled,
		EncryptionAlgorithms:  []string{"SYMMETRIC_DEFAULT"},
		KeyID:                 k.ID,
		KeyManager:            k.Manager,
		KeySpec:               k.KeySpec,
		KeyState:              k.State,
		KeyUsage:              k.KeyUsage,
		Origin:                k.Origin,
	}
	if k.State == statePendingDeletion {
		m.DeletionDate = ptime(k.DeletionDate)
		m.PendingDeletionWindowInDays = k.PendingWindowInDays
	}
	return m
}

type createKeyInput struct {
	Policy                         string
	Description                    string
	KeyUsage                       string
	KeySpec                        string
	CustomerMasterKeySpec          string
	Origin                         string
	Tags                           []tag
	MultiRegion                    bool
	BypassPolicyLockoutSafetyCheck bool
}

type keyMetadataOutput struct {
	KeyMetadata keyMetadata
}

func (s *Service) createKey(c *call, in *createKeyInput) (*keyMetadataOutput, error) {
	usage := valueOr(in.KeyUsage, "ENCRYPT_DECRYPT")
	spec := valueOr(in.KeySpec, valueOr(in.CustomerMasterKeySpec, "SYMMETRIC_DEFAULT"))
	if usage != "ENCRYPT_DECRYPT" || spec != "SYMMETRIC_DEFAULT" {
		return nil, awsapi.Errorf("UnsupportedOperationException", "the local cloud supports only symmetric encryption keys (KeyUsage ENCRYPT_DECRYPT, KeySpec SYMMETRIC_DEFAULT), got %s/%s", usage, spec)
	}
	if origin := valueOr(in.Origin, "AWS_KMS"); origin != "AWS_KMS" {
		return nil, awsapi.Errorf("UnsupportedOperationException", "the local cloud supports only Origin AWS_KMS, got %s", origin)
	}
	if in.MultiRegion {
		return nil, awsapi.Errorf("UnsupportedOperationException", "the local cloud does not support multi-Region keys")
	}
	if len(in.Description) > 8192 {
		return nil, validationError("description", "Member must have length less than or equal to 8192")
	}
	policyText := in.Policy
	if policyText == "" {
		policyText = defaultKeyPolicy(s.account)
	}
	doc, err := parseKeyPolicy(policyText)
	if err != nil {
		return nil, err
	}
	if !in.BypassPolicyLockoutSafetyCheck {
		if err := s.checkLockout(c, doc); err != nil {
			return nil, err
		}
	}
	tags, err := tagMap(nil, in.Tags)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorizeLocked(c, "CreateKey", nil, nil); err != nil {
		return nil, err
	}
	k := s.newKeyLocked(c.region, in.Description, policyText, doc, tags)
	return &keyMetadataOutput{KeyMetadata: s.metadata(k)}, nil
}

func parseKeyPolicy(text string) (*policy.Document, error) {
	if len(text) > 32768 {
		return nil, awsapi.Errorf("MalformedPolicyDocumentException", "policy is larger than 32768 characters")
	}
	doc, err := policy.Parse(text)
	if err == nil {
		err = doc.Validate(policy.Resource)
	}
	if err != nil {
		return nil, awsapi.Errorf("MalformedPolicyDocumentException", "%v", err)
	}
	return doc, nil
}

// checkLockout is KMS's policy lockout safety check: a key policy must still let the caller
// change the key policy, or the key could become unmanageable.
func (s *Service) checkLockout(c *call, doc *policy.Document) error {
	if c.req == nil {
		return nil
	}
	id := c.identity
	req := policy.Request{
		Caller:   policy.Caller{Account: id.Account, ARNs: callerARNs(id)},
		Action:   "kms:PutKeyPolicy",
		Resource: "*",
		Context:  conditionContext(id, nil, s.now()),
	}
	if policy.Evaluate(req, doc) != policy.Allowed {
		return awsapi.Errorf("MalformedPolicyDocumentException", "The new key policy will not allow you to update the key policy in the future.")
	}
	return nil
}

func tagMap(existing map[string]string, tags []tag) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range existing {
		out[k] = v
	}
	for _, t := range tags {
		if t.TagKey == "" || len(t.TagKey) > 128 || len(t.TagValue) > 256 {
			return nil, awsapi.Errorf("TagException", "tag keys must be 1-128 characters and values at most 256 characters")
		}
		if strings.HasPrefix(t.TagKey, "aws:") {
			return nil, awsapi.Errorf("TagException", "tag keys may not begin with aws:")
		}
		out[t.TagKey] = t.TagValue
	}
	if len(out) > 50 {
		return nil, awsapi.Errorf("LimitExceededException", "a key may have at most 50 tags")
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

type keyIDInput struct {
	KeyId       string
	GrantTokens []string
}

func (s *Service) describeKey(c *call, in *keyIDInput) (*keyMetadataOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var k *key
	var err error
	if managedAliasPattern.MatchString(in.KeyId) {
		// As in KMS, describing a predefined AWS alias creates its AWS managed key.
		k, err = s.managedKeyLocked(in.KeyId, c.region)
	} else {
		k, err = s.lookupLocked(in.KeyId)
	}
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "DescribeKey", k, nil); err != nil {
		return nil, err
	}
	return &keyMetadataOutput{KeyMetadata: s.metadata(k)}, nil
}

type pageInput struct {
	Limit  int32
	Marker string
}

type listKeysOutput struct {
	Keys       []keyListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

type keyListEntry struct {
	KeyId  string
	KeyArn string
}

func (s *Service) listKeys(c *call, in *pageInput) (*listKeysOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorizeLocked(c, "ListKeys", nil, nil); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(s.keys))
	for id := range s.keys {
		if _, err := s.lookupLocked(id); err == nil { // drops keys whose deletion is due
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	page, next, err := paginate(ids, in.Limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &listKeysOutput{Keys: []keyListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, id := range page {
		out.Keys = append(out.Keys, keyListEntry{KeyId: id, KeyArn: s.keyARN(s.keys[id])})
	}
	return out, nil
}

// paginate returns the page of sorted items after marker (an item of the previous page's
// end), and the marker of the next page ("" when this page is the last).
func paginate(items []string, limit int32, marker string) ([]string, string, error) {
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 1000 {
		return nil, "", validationError("limit", "Member must have value between 1 and 1000")
	}
	start := 0
	if marker != "" {
		// The marker is the first item of the page; if it has gone meanwhile, the page
		// starts at the next item after it.
		start, _ = slices.BinarySearch(items, marker)
	}
	end := min(start+int(limit), len(items))
	next := ""
	if end < len(items) {
		next = items[end]
	}
	return items[start:end], next, nil
}

var aliasNamePattern = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

type aliasInput struct {
	AliasName   string
	TargetKeyId string
}

func (s *Service) validAliasName(name string) error {
	if !aliasNamePattern.MatchString(name) || len(name) > 256 {
		return validationError("aliasName", "Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$")
	}
	if strings.HasPrefix(name, "alias/aws/") {
		return awsapi.Errorf("NotAuthorizedException", "alias names beginning with alias/aws/ are reserved for AWS managed keys")
	}
	return nil
}

// aliasTargetLocked resolves the target of an alias, which must be a key id or key ARN.
func (s *Service) aliasTargetLocked(target string) (*key, error) {
	if strings.HasPrefix(target, "alias/") || strings.Contains(target, ":alias/") {
		return nil, validationError("targetKeyId", "an alias cannot point to another alias; use a key id or key ARN")
	}
	k, err := s.lookupLocked(target)
	if err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	return k, nil
}

func (s *Service) createAlias(c *call, in *aliasInput) (*struct{}, error) {
	if err := s.validAliasName(in.AliasName); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.aliasTargetLocked(in.TargetKeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "CreateAlias", k, nil); err != nil {
		return nil, err
	}
	if _, ok := s.aliases[in.AliasName]; ok {
		return nil, awsapi.Errorf("AlreadyExistsException", "An alias with the name %s already exists", s.aliasARN(in.AliasName))
	}
	now := s.now().UTC()
	s.aliases[in.AliasName] = &alias{Name: in.AliasName, TargetKeyID: k.ID, Created: now, Updated: now}
	return &struct{}{}, nil
}

func (s *Service) updateAlias(c *call, in *aliasInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.aliases[in.AliasName]
	if !ok {
		return nil, awsapi.Errorf("NotFoundException", "Alias %s is not found.", s.aliasARN(in.AliasName))
	}
	k, err := s.aliasTargetLocked(in.TargetKeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "UpdateAlias", k, nil); err != nil {
		return nil, err
	}
	a.TargetKeyID = k.ID
	a.Updated = s.now().UTC()
	return &struct{}{}, nil
}

func (s *Service) deleteAlias(c *call, in *aliasInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.aliases[in.AliasName]
	if !ok {
		return nil, awsapi.Errorf("NotFoundException", "Alias %s is not found.", s.aliasARN(in.AliasName))
	}
	if k, ok := s.keys[a.TargetKeyID]; ok {
		if err := s.authorizeLocked(c, "DeleteAlias", k, nil); err != nil {
			return nil, err
		}
	}
	delete(s.aliases, in.AliasName)
	return &struct{}{}, nil
}

type listAliasesInput struct {
	KeyId  string
	Limit  int32
	Marker string
}

type aliasEntry struct {
	AliasName       string
	AliasArn        string
	TargetKeyId     string
	CreationDate    timeJSON
	LastUpdatedDate timeJSON
}

type listAliasesOutput struct {
	Aliases    []aliasEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (s *Service) listAliases(c *call, in *listAliasesInput) (*listAliasesOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	filter := ""
	if in.KeyId != "" {
		k, err := s.lookupLocked(in.KeyId)
		if err != nil {
			return nil, err
		}
		filter = k.ID
		if err := s.authorizeLocked(c, "ListAliases", k, nil); err != nil {
			return nil, err
		}
	} else if err := s.authorizeLocked(c, "ListAliases", nil, nil); err != nil {
		return nil, err
	}
	var names []string
	for name, a := range s.aliases {
		if filter == "" || a.TargetKeyID == filter {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	page, next, err := paginate(names, in.Limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &listAliasesOutput{Aliases: []aliasEntry{}, NextMarker: next, Truncated: next != ""}
	for _, name := range page {
		a := s.aliases[name]
		out.Aliases = append(out.Aliases, aliasEntry{
			AliasName: a.Name, AliasArn: s.aliasARNOf(a), TargetKeyId: a.TargetKeyID,
			CreationDate: timeJSON(a.Created), LastUpdatedDate: timeJSON(a.Updated),
		})
	}
	return out, nil
}

type updateKeyDescriptionInput struct {
	KeyId       string
	Description string
}

func (s *Service) updateKeyDescription(c *call, in *updateKeyDescriptionInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "UpdateKeyDescription", k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	k.Description = in.Description
	return &struct{}{}, nil
}

// setState implements EnableKey and DisableKey.
func (s *Service) setState(c *call, in *keyIDInput, operation, state string) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, operation, k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	k.State = state
	return &struct{}{}, nil
}

type scheduleKeyDeletionInput struct {
	KeyId               string
	PendingWindowInDays int32
}

type scheduleKeyDeletionOutput struct {
	KeyId               string
	DeletionDate        timeJSON
	KeyState            string
	PendingWindowInDays int32
}

func (s *Service) scheduleKeyDeletion(c *call, in *scheduleKeyDeletionInput) (*scheduleKeyDeletionOutput, error) {
	days := in.PendingWindowInDays
	if days == 0 {
		days = 30
	}
	if days < 7 || days > 30 {
		return nil, validationError("pendingWindowInDays", "Member must have value between 7 and 30")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "ScheduleKeyDeletion", k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	k.State = statePendingDeletion
	k.PendingWindowInDays = days
	k.DeletionDate = s.now().UTC().Add(time.Duration(days) * 24 * time.Hour)
	return &scheduleKeyDeletionOutput{KeyId: s.keyARN(k), DeletionDate: timeJSON(k.DeletionDate), KeyState: k.State, PendingWindowInDays: days}, nil
}

type keyIDOutput struct {
	KeyId string
}

func (s *Service) cancelKeyDeletion(c *call, in *keyIDInput) (*keyIDOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "CancelKeyDeletion", k, nil); err != nil {
		return nil, err
	}
	if k.State != statePendingDeletion {
		return nil, awsapi.Errorf("KMSInvalidStateException", "%s is not pending deletion.", s.keyARN(k))
	}
	// As in KMS, a key whose deletion is cancelled comes back disabled.
	k.State = stateDisabled
	k.DeletionDate = time.Time{}
	k.PendingWindowInDays = 0
	return &keyIDOutput{KeyId: s.keyARN(k)}, nil
}

type enableKeyRotationInput struct {
	KeyId                string
	RotationPeriodInDays int32
}

func (s *Service) enableKeyRotation(c *call, in *enableKeyRotationInput) (*struct{}, error) {
	period := in.RotationPeriodInDays
	if period == 0 {
		period = 365
	}
	if period < 90 || period > 2560 {
		return nil, validationError("rotationPeriodInDays", "Member must have value between 90 and 2560")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "EnableKeyRotation", k, nil); err != nil {
		return nil, err
	}
	if err := s.usableLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	k.RotationEnabled = true
	k.RotationPeriodInDays = period
	k.NextRotation = s.now().UTC().Add(time.Duration(period) * 24 * time.Hour)
	return &struct{}{}, nil
}

func (s *Service) disableKeyRotation(c *call, in *keyIDInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "DisableKeyRotation", k, nil); err != nil {
		return nil, err
	}
	if err := s.usableLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	k.RotationEnabled = false
	k.NextRotation = time.Time{}
	return &struct{}{}, nil
}

type keyRotationStatusOutput struct {
	KeyId                string
	KeyRotationEnabled   bool
	RotationPeriodInDays int32     `json:",omitempty"`
	NextRotationDate     *timeJSON `json:",omitempty"`
}

func (s *Service) getKeyRotationStatus(c *call, in *keyIDInput) (*keyRotationStatusOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "GetKeyRotationStatus", k, nil); err != nil {
		return nil, err
	}
	out := &keyRotationStatusOutput{KeyId: s.keyARN(k), KeyRotationEnabled: k.RotationEnabled}
	if k.RotationEnabled {
		out.RotationPeriodInDays = k.RotationPeriodInDays
		out.NextRotationDate = ptime(k.NextRotation)
	}
	return out, nil
}

// maxOnDemandRotations is KMS's lifetime limit of on-demand rotations per key.
const maxOnDemandRotations = 10

func (s *Service) rotateKeyOnDemand(c *call, in *keyIDInput) (*keyIDOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "RotateKeyOnDemand", k, nil); err != nil {
		return nil, err
	}
	if err := s.usableLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	onDemand := 0
	for _, r := range k.Rotations {
		if r.Type == "ON_DEMAND" {
			onDemand++
		}
	}
	if onDemand >= maxOnDemandRotations {
		return nil, awsapi.Errorf("LimitExceededException", "key %s has reached the limit of %d on-demand rotations", s.keyARN(k), maxOnDemandRotations)
	}
	k.rotate(s.now(), "ON_DEMAND")
	return &keyIDOutput{KeyId: s.keyARN(k)}, nil
}

type listKeyRotationsInput struct {
	KeyId  string
	Limit  int32
	Marker string
}

type rotationEntry struct {
	KeyId        string
	RotationDate timeJSON
	RotationType string
}

type listKeyRotationsOutput struct {
	Rotations  []rotationEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (s *Service) listKeyRotations(c *call, in *listKeyRotationsInput) (*listKeyRotationsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "ListKeyRotations", k, nil); err != nil {
		return nil, err
	}
	idx := make([]string, len(k.Rotations))
	for i := range k.Rotations {
		idx[i] = strconv.Itoa(1000000 + i) // fixed width, so the markers sort as numbers
	}
	page, next, err := paginate(idx, in.Limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &listKeyRotationsOutput{Rotations: []rotationEntry{}, NextMarker: next, Truncated: next != ""}
	for _, p := range page {
		i, _ := strconv.Atoi(p)
		r := k.Rotations[i-1000000]
		out.Rotations = append(out.Rotations, rotationEntry{KeyId: s.keyARN(k), RotationDate: timeJSON(r.Date), RotationType: r.Type})
	}
	return out, nil
}

type tagResourceInput struct {
	KeyId   string
	Tags    []tag
	TagKeys []string
}

func (s *Service) tagResource(c *call, in *tagResourceInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "TagResource", k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	tags, err := tagMap(k.Tags, in.Tags)
	if err != nil {
		return nil, err
	}
	k.Tags = tags
	return &struct{}{}, nil
}

func (s *Service) untagResource(c *call, in *tagResourceInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "UntagResource", k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	for _, name := range in.TagKeys {
		delete(k.Tags, name)
	}
	return &struct{}{}, nil
}

type listResourceTagsOutput struct {
	Tags       []tag
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (s *Service) listResourceTags(c *call, in *listKeyRotationsInput) (*listResourceTagsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "ListResourceTags", k, nil); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(k.Tags))
	for name := range k.Tags {
		names = append(names, name)
	}
	sort.Strings(names)
	page, next, err := paginate(names, in.Limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &listResourceTagsOutput{Tags: []tag{}, NextMarker: next, Truncated: next != ""}
	for _, name := range page {
		out.Tags = append(out.Tags, tag{TagKey: name, TagValue: k.Tags[name]})
	}
	return out, nil
}

type keyPolicyInput struct {
	KeyId                          string
	PolicyName                     string
	Policy                         string
	BypassPolicyLockoutSafetyCheck bool
}

type keyPolicyOutput struct {
	Policy     string
	PolicyName string
}

func (s *Service) getKeyPolicy(c *call, in *keyPolicyInput) (*keyPolicyOutput, error) {
	if name := valueOr(in.PolicyName, "default"); name != "default" {
		return nil, awsapi.Errorf("NotFoundException", "the only key policy name is default")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "GetKeyPolicy", k, nil); err != nil {
		return nil, err
	}
	return &keyPolicyOutput{Policy: k.Policy, PolicyName: "default"}, nil
}

func (s *Service) putKeyPolicy(c *call, in *keyPolicyInput) (*struct{}, error) {
	if name := valueOr(in.PolicyName, "default"); name != "default" {
		return nil, validationError("policyName", "Member must be default")
	}
	doc, err := parseKeyPolicy(in.Policy)
	if err != nil {
		return nil, err
	}
	if !in.BypassPolicyLockoutSafetyCheck {
		if err := s.checkLockout(c, doc); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "PutKeyPolicy", k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	if err := s.customerManagedLocked(k); err != nil {
		return nil, err
	}
	k.Policy, k.policyDoc = in.Policy, doc
	return &struct{}{}, nil
}

type listKeyPoliciesOutput struct {
	PolicyNames []string
	Truncated   bool
}

func (s *Service) listKeyPolicies(c *call, in *keyIDInput) (*listKeyPoliciesOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "ListKeyPolicies", k, nil); err != nil {
		return nil, err
	}
	return &listKeyPoliciesOutput{PolicyNames: []string{"default"}}, nil
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func validationError(field, constraint string) error {
	return awsapi.Errorf("ValidationException", "1 validation error detected: Value at '%s' failed to satisfy constraint: %s", field, constraint)
}
