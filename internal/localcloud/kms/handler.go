package kms

import (
	"context"
	"encoding/json"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// operation decodes a request body into its input, runs the operation and returns its output.
type operation struct {
	run     func(s *Service, c *call, body []byte) (any, error)
	mutates bool // the operation changes state that must be saved
}

func op[I, O any](mutates bool, f func(*Service, *call, *I) (*O, error)) operation {
	return operation{mutates: mutates, run: func(s *Service, c *call, body []byte) (any, error) {
		var in I
		if len(body) > 0 {
			if err := json.Unmarshal(body, &in); err != nil {
				return nil, awsapi.Errorf("SerializationException", "Could not decode the request body: %v", err)
			}
		}
		return f(s, c, &in)
	}}
}

// operations is every KMS operation the local cloud serves, by X-Amz-Target operation name.
var operations = map[string]operation{
	"CreateKey":            op(true, (*Service).createKey),
	"DescribeKey":          op(true, (*Service).describeKey), // may create an AWS managed key
	"ListKeys":             op(false, (*Service).listKeys),
	"UpdateKeyDescription": op(true, (*Service).updateKeyDescription),
	"EnableKey": op(true, func(s *Service, c *call, in *keyIDInput) (*struct{}, error) {
		return s.setState(c, in, "EnableKey", stateEnabled)
	}),
	"DisableKey": op(true, func(s *Service, c *call, in *keyIDInput) (*struct{}, error) {
		return s.setState(c, in, "DisableKey", stateDisabled)
	}),
	"ScheduleKeyDeletion":  op(true, (*Service).scheduleKeyDeletion),
	"CancelKeyDeletion":    op(true, (*Service).cancelKeyDeletion),
	"CreateAlias":          op(true, (*Service).createAlias),
	"UpdateAlias":          op(true, (*Service).updateAlias),
	"DeleteAlias":          op(true, (*Service).deleteAlias),
	"ListAliases":          op(false, (*Service).listAliases),
	"Encrypt":              op(false, (*Service).encrypt),
	"Decrypt":              op(false, (*Service).decrypt),
	"ReEncrypt":            op(false, (*Service).reEncrypt),
	"GenerateRandom":       op(false, (*Service).generateRandom),
	"EnableKeyRotation":    op(true, (*Service).enableKeyRotation),
	"DisableKeyRotation":   op(true, (*Service).disableKeyRotation),
	"GetKeyRotationStatus": op(false, (*Service).getKeyRotationStatus),
	"RotateKeyOnDemand":    op(true, (*Service).rotateKeyOnDemand),
	"ListKeyRotations":     op(false, (*Service).listKeyRotations),
	"CreateGrant":          op(true, (*Service).createGrant),
	"ListGrants":           op(false, (*Service).listGrants),
	"RetireGrant":          op(true, (*Service).retireGrant),
	"ListRetirableGrants":  op(false, (*Service).listRetirableGrants),
	"RevokeGrant":          op(true, (*Service).revokeGrant),
	"TagResource":          op(true, (*Service).tagResource),
	"UntagResource":        op(true, (*Service).untagResource),
	"ListResourceTags":     op(false, (*Service).listResourceTags),
	"GetKeyPolicy":         op(false, (*Service).getKeyPolicy),
	"PutKeyPolicy":         op(true, (*Service).putKeyPolicy),
	"ListKeyPolicies":      op(false, (*Service).listKeyPolicies),
	"GenerateDataKey": op(false, func(s *Service, c *call, in *generateDataKeyInput) (*generateDataKeyOutput, error) {
		return s.generateDataKey(c, in, "GenerateDataKey")
	}),
	"GenerateDataKeyWithoutPlaintext": op(false, func(s *Service, c *call, in *generateDataKeyInput) (*generateDataKeyOutput, error) {
		return s.generateDataKey(c, in, "GenerateDataKeyWithoutPlaintext")
	}),
}

// Handle serves one KMS request (awsJson1_1, X-Amz-Target: TrentService.<Operation>).
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	if req.Protocol != awsapi.ProtocolJSON {
		return nil, awsapi.Errorf("UnknownOperationException", "KMS speaks the awsJson1_1 protocol only")
	}
	o, ok := operations[req.Action]
	if !ok {
		return nil, awsapi.Errorf("UnknownOperationException", "The local cloud does not implement KMS operation %s", req.Action)
	}
	region := req.Region
	if region == "" {
		region = s.region
	}
	c := &call{ctx: ctx, req: req, identity: req.Caller, region: region}
	out, err := o.run(s, c, req.Body)
	s.mu.Lock()
	if err == nil && o.mutates {
		s.dirty = true
	}
	saveErr := s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if saveErr != nil {
		return nil, saveErr
	}
	return awsapi.JSONResponse(req, out)
}
