package provider

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/awsconfig"
	"github.com/tributary/tributary/internal/localcloud"
)

func TestProviderSchemaIsValid(t *testing.T) {
	ctx := context.Background()
	var resp provider.SchemaResponse
	New("test")().Schema(ctx, provider.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatalf("schema diagnostics: %v", resp.Diagnostics)
	}
	if diags := resp.Schema.ValidateImplementation(ctx); diags.HasError() {
		t.Fatalf("schema implementation: %v", diags)
	}
	for name, a := range resp.Schema.Attributes {
		if a.GetMarkdownDescription() == "" {
			t.Errorf("attribute %s has no MarkdownDescription", name)
		}
	}
}

func TestProviderModelToAWSConfig(t *testing.T) {
	ctx := context.Background()
	files, _ := types.ListValueFrom(ctx, types.StringType, []string{"/tmp/config"})
	tests := []struct {
		name    string
		model   providerModel
		check   func(t *testing.T, c awsconfig.Config)
		wantErr string
	}{
		{
			name: "endpoints and switches",
			model: providerModel{
				Region:                    types.StringValue("eu-west-1"),
				Profile:                   types.StringValue("dev"),
				SkipCredentialsValidation: types.BoolValue(true),
				SkipRegionValidation:      types.BoolValue(true),
				SharedConfigFiles:         files,
				SharedCredentialsFiles:    types.ListNull(types.StringType),
				Endpoints: []endpointsModel{{
					EC2:        types.StringValue("http://127.0.0.1:4566"),
					KMS:        types.StringValue("http://127.0.0.1:4567"),
					IAM:        types.StringNull(),
					STS:        types.StringNull(),
					CloudWatch: types.StringValue("http://127.0.0.1:4568"),
				}},
			},
			check: func(t *testing.T, c awsconfig.Config) {
				if c.Region != "eu-west-1" || c.Profile != "dev" || !c.SkipCredentialsValidation || !c.SkipRegionValidation || c.SkipMetadataAPICheck {
					t.Errorf("basic settings wrong: %+v", c)
				}
				if c.Endpoints[awsconfig.EC2] != "http://127.0.0.1:4566" || c.Endpoints[awsconfig.KMS] != "http://127.0.0.1:4567" ||
					c.Endpoints[awsconfig.CloudWatch] != "http://127.0.0.1:4568" || c.Endpoints[awsconfig.IAM] != "" {
					t.Errorf("endpoints = %v", c.Endpoints)
				}
				if len(c.SharedConfigFiles) != 1 || c.SharedConfigFiles[0] != "/tmp/config" {
					t.Errorf("shared config files = %v", c.SharedConfigFiles)
				}
			},
		},
		{
			name: "assume role",
			model: providerModel{
				SharedConfigFiles:      types.ListNull(types.StringType),
				SharedCredentialsFiles: types.ListNull(types.StringType),
				AssumeRole: []assumeRoleModel{{
					RoleARN:     types.StringValue("arn:aws:iam::123456789012:role/x"),
					Duration:    types.StringValue("1h"),
					ExternalID:  types.StringValue("e"),
					SessionName: types.StringNull(),
					Policy:      types.StringNull(),
				}},
			},
			check: func(t *testing.T, c awsconfig.Config) {
				if c.AssumeRole == nil || c.AssumeRole.RoleARN != "arn:aws:iam::123456789012:role/x" ||
					c.AssumeRole.Duration.Hours() != 1 || c.AssumeRole.ExternalID != "e" {
					t.Errorf("assume role = %+v", c.AssumeRole)
				}
			},
		},
		{
			name: "bad duration",
			model: providerModel{
				SharedConfigFiles:      types.ListNull(types.StringType),
				SharedCredentialsFiles: types.ListNull(types.StringType),
				AssumeRole:             []assumeRoleModel{{RoleARN: types.StringValue("arn:x"), Duration: types.StringValue("forever")}},
			},
			wantErr: "not a duration",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, diags := tt.model.awsConfig(ctx)
			if tt.wantErr != "" {
				if !diags.HasError() || !strings.Contains(diags.Errors()[0].Detail(), tt.wantErr) {
					t.Fatalf("diags = %v, want error containing %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasError() {
				t.Fatalf("diags: %v", diags)
			}
			tt.check(t, c)
		})
	}
}

// TestConfigureAgainstLocalCloud checks the whole configuration path against
// an in-process local cloud: SigV4-signed STS call, credential validation,
// account id and partition.
func TestConfigureAgainstLocalCloud(t *testing.T) {
	cloud, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("starting the local cloud: %v", err)
	}
	t.Cleanup(func() { cloud.Close() })
	endpoints := map[awsconfig.Service]string{}
	for _, s := range awsconfig.Services {
		endpoints[s] = cloud.Endpoint()
	}
	tests := []struct {
		name    string
		key     string
		wantErr string
	}{
		{name: "the emulator's default credentials", key: "test"},
		{name: "unknown credentials are refused", key: "AKIAUNKNOWN", wantErr: "sts:GetCallerIdentity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := awsconfig.New(context.Background(), awsconfig.Config{
				Region: cloud.Region(), AccessKey: tt.key, SecretKey: "test", Endpoints: endpoints,
				SkipMetadataAPICheck: true, MaxRetries: 1,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("awsconfig.New: %v", err)
			}
			if cl.AccountID != "000000000000" || cl.Partition != "aws" {
				t.Errorf("account %q partition %q", cl.AccountID, cl.Partition)
			}
		})
	}
}
