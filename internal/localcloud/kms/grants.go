package kms

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"slices"
	"sort"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

type createGrantInput struct {
	KeyId             string
	GranteePrincipal  string
	RetiringPrincipal string
	Operations        []string
	Constraints       *grantConstraints
	GrantTokens       []string
	Name              string
}

type createGrantOutput struct {
	GrantId    string
	GrantToken string
}

func (s *Service) createGrant(c *call, in *createGrantInput) (*createGrantOutput, error) {
	if in.GranteePrincipal == "" {
		return nil, validationError("granteePrincipal", "Member must not be null")
	}
	if len(in.Operations) == 0 {
		return nil, validationError("operations", "Member must not be empty")
	}
	for _, op := range in.Operations {
		if !slices.Contains(grantOperations, op) {
			return nil, validationError("operations", "Member must satisfy enum value set: "+joinComma(grantOperations))
		}
		if in.Constraints != nil && !contextOperations[op] {
			return nil, awsapi.Errorf("ValidationException", "grant constraints are not allowed with operation %s", op)
		}
	}
	if c := in.Constraints; c != nil && c.EncryptionContextEquals != nil && c.EncryptionContextSubset != nil {
		return nil, awsapi.Errorf("ValidationException", "specify EncryptionContextEquals or EncryptionContextSubset, not both")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "CreateGrant", k, nil); err != nil {
		return nil, err
	}
	if err := s.notPendingDeletionLocked(k); err != nil {
		return nil, err
	}
	// CreateGrant with the same name and the same parameters returns the existing grant,
	// which makes retries idempotent as in KMS.
	if in.Name != "" {
		for _, g := range k.Grants {
			if g.Name == in.Name && g.GranteePrincipal == in.GranteePrincipal && g.RetiringPrincipal == in.RetiringPrincipal &&
				slices.Equal(sortedCopy(g.Operations), sortedCopy(in.Operations)) && sameConstraints(g.Constraints, in.Constraints) {
				return &createGrantOutput{GrantId: g.ID, GrantToken: g.Token}, nil
			}
		}
	}
	if len(k.Grants) >= 50000 {
		return nil, awsapi.Errorf("LimitExceededException", "too many grants on key %s", s.keyARN(k))
	}
	g := &grant{
		ID:                randomHex(32),
		Token:             randomToken(),
		Name:              in.Name,
		GranteePrincipal:  in.GranteePrincipal,
		RetiringPrincipal: in.RetiringPrincipal,
		Operations:        slices.Clone(in.Operations),
		Constraints:       in.Constraints,
		IssuingAccount:    "arn:aws:iam::" + s.account + ":root",
		Created:           timeJSON(s.now().UTC()),
	}
	k.Grants = append(k.Grants, g)
	return &createGrantOutput{GrantId: g.ID, GrantToken: g.Token}, nil
}

func sameConstraints(a, b *grantConstraints) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.Equal(a.EncryptionContextEquals, b.EncryptionContextEquals) && maps.Equal(a.EncryptionContextSubset, b.EncryptionContextSubset)
}

type listGrantsInput struct {
	KeyId            string
	GrantId          string
	GranteePrincipal string
	Limit            int32
	Marker           string
}

type grantEntry struct {
	KeyId             string
	GrantId           string
	Name              string `json:",omitempty"`
	CreationDate      timeJSON
	GranteePrincipal  string
	RetiringPrincipal string `json:",omitempty"`
	IssuingAccount    string
	Operations        []string
	Constraints       *grantConstraints `json:",omitempty"`
}

type listGrantsOutput struct {
	Grants     []grantEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

func (s *Service) listGrants(c *call, in *listGrantsInput) (*listGrantsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "ListGrants", k, nil); err != nil {
		return nil, err
	}
	byID := map[string]*grant{}
	var ids []string
	for _, g := range k.Grants {
		if (in.GrantId == "" || g.ID == in.GrantId) && (in.GranteePrincipal == "" || g.GranteePrincipal == in.GranteePrincipal) {
			byID[g.ID] = g
			ids = append(ids, g.ID)
		}
	}
	sort.Strings(ids)
	page, next, err := paginate(ids, in.Limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &listGrantsOutput{Grants: []grantEntry{}, NextMarker: next, Truncated: next != ""}
	for _, id := range page {
		out.Grants = append(out.Grants, s.grantEntry(k, byID[id]))
	}
	return out, nil
}

type listRetirableGrantsInput struct {
	RetiringPrincipal string
	Limit             int32
	Marker            string
}

// listRetirableGrants lists the grants, on every key, that a principal may retire.
func (s *Service) listRetirableGrants(c *call, in *listRetirableGrantsInput) (*listGrantsOutput, error) {
	if in.RetiringPrincipal == "" {
		return nil, validationError("retiringPrincipal", "Member must not be null")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorizeLocked(c, "ListRetirableGrants", nil, nil); err != nil {
		return nil, err
	}
	type found struct {
		k *key
		g *grant
	}
	byID := map[string]found{}
	var ids []string
	for _, k := range s.keys {
		for _, g := range k.Grants {
			if g.RetiringPrincipal == in.RetiringPrincipal {
				byID[g.ID] = found{k, g}
				ids = append(ids, g.ID)
			}
		}
	}
	sort.Strings(ids)
	page, next, err := paginate(ids, in.Limit, in.Marker)
	if err != nil {
		return nil, err
	}
	out := &listGrantsOutput{Grants: []grantEntry{}, NextMarker: next, Truncated: next != ""}
	for _, id := range page {
		f := byID[id]
		out.Grants = append(out.Grants, s.grantEntry(f.k, f.g))
	}
	return out, nil
}

func (s *Service) grantEntry(k *key, g *grant) grantEntry {
	return grantEntry{
		KeyId: s.keyARN(k), GrantId: g.ID, Name: g.Name, CreationDate: g.Created,
		GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal,
		IssuingAccount: g.IssuingAccount, Operations: g.Operations, Constraints: g.Constraints,
	}
}

type retireGrantInput struct {
	GrantToken string
	KeyId      string
	GrantId    string
}

// retireGrant removes a grant named by its token, or by key and grant id. The retiring
// principal, the grantee when the grant allows RetireGrant, and anyone the key policy or IAM
// allows kms:RetireGrant may retire it.
func (s *Service) retireGrant(c *call, in *retireGrantInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var k *key
	idx := -1
	switch {
	case in.GrantToken != "":
		for _, candidate := range s.keys {
			for i, g := range candidate.Grants {
				if g.Token == in.GrantToken {
					k, idx = candidate, i
				}
			}
		}
		if k == nil {
			return nil, awsapi.Errorf("InvalidGrantTokenException", "the grant token is not valid")
		}
	case in.KeyId != "" && in.GrantId != "":
		var err error
		if k, err = s.lookupLocked(in.KeyId); err != nil {
			return nil, err
		}
		idx = slices.IndexFunc(k.Grants, func(g *grant) bool { return g.ID == in.GrantId })
		if idx < 0 {
			return nil, awsapi.Errorf("NotFoundException", "Grant ID %s not found", in.GrantId)
		}
	default:
		return nil, awsapi.Errorf("ValidationException", "specify GrantToken, or KeyId and GrantId")
	}
	g := k.Grants[idx]
	arns := callerARNs(c.identity)
	mayRetire := slices.Contains(arns, g.RetiringPrincipal) ||
		(slices.Contains(arns, g.GranteePrincipal) && slices.Contains(g.Operations, "RetireGrant"))
	if !mayRetire {
		if err := s.authorizeLocked(c, "RetireGrant", k, nil); err != nil {
			return nil, err
		}
	}
	k.Grants = slices.Delete(k.Grants, idx, idx+1)
	return &struct{}{}, nil
}

type revokeGrantInput struct {
	KeyId   string
	GrantId string
}

func (s *Service) revokeGrant(c *call, in *revokeGrantInput) (*struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "RevokeGrant", k, nil); err != nil {
		return nil, err
	}
	idx := slices.IndexFunc(k.Grants, func(g *grant) bool { return g.ID == in.GrantId })
	if idx < 0 {
		return nil, awsapi.Errorf("NotFoundException", "Grant ID %s not found", in.GrantId)
	}
	k.Grants = slices.Delete(k.Grants, idx, idx+1)
	return &struct{}{}, nil
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func joinComma(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out + "]"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomToken() string {
	b := make([]byte, 96)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
