package provider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// fakeSimulator answers as IAM would for a role whose policy allows
// kms:Decrypt for the node ids in decrypt and GetSecretValue when secrets.
type fakeSimulator struct {
	profiles map[string]string // profile -> role ARN ("" = no role)
	decrypt  map[string]bool   // node id -> allowed
	secrets  bool
	logs     bool // s3:PutObject
	err      error
}

func (f *fakeSimulator) GetInstanceProfile(_ context.Context, in *iam.GetInstanceProfileInput, _ ...func(*iam.Options)) (*iam.GetInstanceProfileOutput, error) {
	role, ok := f.profiles[aws.ToString(in.InstanceProfileName)]
	if !ok {
		return nil, &iamtypes.NoSuchEntityException{Message: aws.String("not found")}
	}
	p := &iamtypes.InstanceProfile{}
	if role != "" {
		p.Roles = []iamtypes.Role{{Arn: aws.String(role)}}
	}
	return &iam.GetInstanceProfileOutput{InstanceProfile: p}, nil
}

func (f *fakeSimulator) SimulatePrincipalPolicy(_ context.Context, in *iam.SimulatePrincipalPolicyInput, _ ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	allowed := false
	switch in.ActionNames[0] {
	case "kms:Decrypt":
		for _, c := range in.ContextEntries {
			if aws.ToString(c.ContextKeyName) == "kms:EncryptionContext:tributary:node-id" {
				allowed = f.decrypt[c.ContextKeyValues[0]]
			}
		}
	case "secretsmanager:GetSecretValue":
		allowed = f.secrets
	case "s3:PutObject":
		allowed = f.logs && strings.HasPrefix(in.ResourceArns[0], "arn:aws:s3:::kafka-logs/prod/")
	}
	d := iamtypes.PolicyEvaluationDecisionTypeImplicitDeny
	if allowed {
		d = iamtypes.PolicyEvaluationDecisionTypeAllowed
	}
	return &iam.SimulatePrincipalPolicyOutput{EvaluationResults: []iamtypes.EvaluationResult{{EvalActionName: aws.String(in.ActionNames[0]), EvalDecision: d}}}, nil
}

func TestCheckUserProfile(t *testing.T) {
	all := map[string]bool{"1": true, "2": true, "3": true}
	tests := []struct {
		name        string
		sim         *fakeSimulator
		wantErr     string
		wantWarning string
		wantNoDiags bool
		logObjects  string
	}{
		{name: "allowed everything", sim: &fakeSimulator{profiles: map[string]string{"p": "arn:aws:iam::1:role/r"}, decrypt: all, secrets: true}, wantNoDiags: true},
		{name: "a profile IAM does not know is the apply's to report", sim: &fakeSimulator{}, wantNoDiags: true},
		{name: "a profile without a role", sim: &fakeSimulator{profiles: map[string]string{"p": ""}}, wantErr: "Instance profile without a role"},
		{name: "brokers 2 and 3 may not decrypt", sim: &fakeSimulator{profiles: map[string]string{"p": "arn:aws:iam::1:role/r"}, decrypt: map[string]bool{"1": true}, secrets: true},
			wantErr: "brokers 2, 3"},
		{name: "no certificate secrets", sim: &fakeSimulator{profiles: map[string]string{"p": "arn:aws:iam::1:role/r"}, decrypt: all},
			wantWarning: "renewed by replacement"},
		{name: "no S3 log delivery", sim: &fakeSimulator{profiles: map[string]string{"p": "arn:aws:iam::1:role/r"}, decrypt: all, secrets: true},
			logObjects: "arn:aws:s3:::kafka-logs/prod/*", wantWarning: "The brokers' logs will not reach S3"},
		{name: "S3 log delivery allowed", sim: &fakeSimulator{profiles: map[string]string{"p": "arn:aws:iam::1:role/r"}, decrypt: all, secrets: true, logs: true},
			logObjects: "arn:aws:s3:::kafka-logs/prod/*", wantNoDiags: true},
		{name: "IAM cannot simulate", sim: &fakeSimulator{profiles: map[string]string{"p": "arn:aws:iam::1:role/r"}, err: errors.New("NotImplemented")},
			wantWarning: "Instance profile not checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := checkUserProfile(context.Background(), tt.sim, userProfileTarget{Profile: "p", KeyARN: "*", ClusterID: placeholderClusterID,
				NodeIDs: []int32{1, 2, 3}, Region: "us-east-1", Account: "000000000000", LogObjects: tt.logObjects})
			var errs, warns []string
			for _, d := range diags.Errors() {
				errs = append(errs, d.Summary()+": "+d.Detail())
			}
			for _, d := range diags.Warnings() {
				warns = append(warns, d.Summary()+": "+d.Detail())
			}
			switch {
			case tt.wantNoDiags && len(diags) > 0:
				t.Fatalf("diagnostics %v %v, want none", errs, warns)
			case tt.wantErr != "" && !strings.Contains(strings.Join(errs, "\n"), tt.wantErr):
				t.Fatalf("errors %v, want one with %q", errs, tt.wantErr)
			case tt.wantErr == "" && len(errs) > 0:
				t.Fatalf("errors %v, want none", errs)
			case tt.wantWarning != "" && !strings.Contains(strings.Join(warns, "\n"), tt.wantWarning):
				t.Fatalf("warnings %v, want one with %q", warns, tt.wantWarning)
			}
		})
	}
}
