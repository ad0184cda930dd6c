// Package provider implements the Tributary Terraform provider: a self-hosted
// alternative to Amazon MSK that builds Kafka-compatible clusters on plain EC2.
package provider

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/internal/awsconfig"
)

var _ provider.Provider = &tributaryProvider{}

// urlPattern accepts the endpoint URLs the SDK can use.
var urlPattern = regexp.MustCompile(`^https?://[^\s/]+(/.*)?$`)

type tributaryProvider struct {
	version string
}

// New returns a constructor for the provider at the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &tributaryProvider{version: version}
	}
}

// providerData is what Configure hands to every resource and data source.
type providerData struct {
	aws         *awsconfig.Clients
	defaultTags map[string]string
	version     string
	creates     createClaims
}

// providerDataFrom is the Configure step shared by resources and data
// sources: the provider's data, or nil (with an error when it has the wrong
// type; nil data just means Terraform has not configured the provider yet).
func providerDataFrom(raw any, diags *diag.Diagnostics) *providerData {
	if raw == nil {
		return nil
	}
	data, ok := raw.(*providerData)
	if !ok {
		diags.AddError("Unexpected provider data", fmt.Sprintf("got %T", raw))
		return nil
	}
	return data
}

// ready reports an error when the provider has no AWS clients (its
// Configure failed or has not run); every CRUD and Read method checks it first.
func (d *providerData) ready(diags *diag.Diagnostics) bool {
	if d == nil || d.aws == nil {
		diags.AddError("Provider not configured", "The tributary provider has no AWS configuration; see the provider block's errors.")
		return false
	}
	return true
}

type providerModel struct {
	AccessKey                 types.String       `tfsdk:"access_key"`
	AssumeRole                []assumeRoleModel  `tfsdk:"assume_role"`
	DefaultTags               []defaultTagsModel `tfsdk:"default_tags"`
	Endpoints                 []endpointsModel   `tfsdk:"endpoints"`
	MaxRetries                types.Int64        `tfsdk:"max_retries"`
	Profile                   types.String       `tfsdk:"profile"`
	Region                    types.String       `tfsdk:"region"`
	SecretKey                 types.String       `tfsdk:"secret_key"`
	SharedConfigFiles         types.List         `tfsdk:"shared_config_files"`
	SharedCredentialsFiles    types.List         `tfsdk:"shared_credentials_files"`
	SkipCredentialsValidation types.Bool         `tfsdk:"skip_credentials_validation"`
	SkipMetadataAPICheck      types.Bool         `tfsdk:"skip_metadata_api_check"`
	SkipRegionValidation      types.Bool         `tfsdk:"skip_region_validation"`
	SkipRequestingAccountID   types.Bool         `tfsdk:"skip_requesting_account_id"`
	Token                     types.String       `tfsdk:"token"`
}

type assumeRoleModel struct {
	Duration    types.String `tfsdk:"duration"`
	ExternalID  types.String `tfsdk:"external_id"`
	Policy      types.String `tfsdk:"policy"`
	RoleARN     types.String `tfsdk:"role_arn"`
	SessionName types.String `tfsdk:"session_name"`
}

type defaultTagsModel struct {
	Tags types.Map `tfsdk:"tags"`
}

type endpointsModel struct {
	ACMPCA         types.String `tfsdk:"acmpca"`
	AutoScaling    types.String `tfsdk:"autoscaling"`
	CloudWatch     types.String `tfsdk:"cloudwatch"`
	EC2            types.String `tfsdk:"ec2"`
	Firehose       types.String `tfsdk:"firehose"`
	IAM            types.String `tfsdk:"iam"`
	KMS            types.String `tfsdk:"kms"`
	S3             types.String `tfsdk:"s3"`
	STS            types.String `tfsdk:"sts"`
	SecretsManager types.String `tfsdk:"secretsmanager"`
}

func (p *tributaryProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "tributary"
	resp.Version = p.version
}

func (p *tributaryProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	endpointAttr := func(service, env string) schema.StringAttribute {
		return schema.StringAttribute{
			MarkdownDescription: fmt.Sprintf("Endpoint URL for %s. Beats `AWS_ENDPOINT_URL_%s`, `AWS_ENDPOINT_URL` and the shared config file.", service, env),
			Optional:            true,
			Validators:          []validator.String{stringvalidator.RegexMatches(urlPattern, "must be an http:// or https:// URL")},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The Tributary provider builds Kafka-compatible clusters on plain EC2 across three Availability Zones, " +
			"a self-hosted alternative to Amazon MSK. It talks to AWS (or LocalStack, or Tributary's local cloud) with the AWS SDK's " +
			"default credential chain, and to the brokers with the Kafka protocol.",
		Attributes: map[string]schema.Attribute{
			"access_key": schema.StringAttribute{
				MarkdownDescription: "Static AWS access key id. Prefer the default credential chain (environment, `profile`, instance role); " +
					"this exists for emulators, which accept `test`/`test`.",
				Optional: true,
			},
			"max_retries": schema.Int64Attribute{
				MarkdownDescription: "Maximum attempts of an AWS API call, retries included. Defaults to the SDK's standard retryer (3).",
				Optional:            true,
			},
			"profile": schema.StringAttribute{
				MarkdownDescription: "Shared config profile to use. Defaults to `AWS_PROFILE`, then `default`.",
				Optional:            true,
			},
			"region": schema.StringAttribute{
				MarkdownDescription: "AWS region. Defaults to the SDK's default chain (`AWS_REGION`, shared config).",
				Optional:            true,
			},
			"secret_key": schema.StringAttribute{
				MarkdownDescription: "Static AWS secret access key, with `access_key`.",
				Optional:            true,
				Sensitive:           true,
			},
			"shared_config_files": schema.ListAttribute{
				MarkdownDescription: "Shared config files to read instead of `~/.aws/config`.",
				Optional:            true,
				ElementType:         types.StringType,
			},
			"shared_credentials_files": schema.ListAttribute{
				MarkdownDescription: "Shared credentials files to read instead of `~/.aws/credentials`.",
				Optional:            true,
				ElementType:         types.StringType,
			},
			"skip_credentials_validation": schema.BoolAttribute{
				MarkdownDescription: "Do not check the credentials with `sts:GetCallerIdentity` when the provider starts. " +
					"Useful with emulators that have no STS.",
				Optional: true,
			},
			"skip_metadata_api_check": schema.BoolAttribute{
				MarkdownDescription: "Do not ask the EC2 instance metadata service for credentials or region " +
					"(saves its timeout off EC2).",
				Optional: true,
			},
			"skip_region_validation": schema.BoolAttribute{
				MarkdownDescription: "Accept a region this provider does not know (a new AWS region, or an emulator's made-up one).",
				Optional:            true,
			},
			"skip_requesting_account_id": schema.BoolAttribute{
				MarkdownDescription: "Do not ask STS for the account id. Resources then build no ARNs from it.",
				Optional:            true,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "Session token for temporary static credentials, with `access_key` and `secret_key`.",
				Optional:            true,
				Sensitive:           true,
			},
		},
		Blocks: map[string]schema.Block{
			"assume_role": schema.ListNestedBlock{
				MarkdownDescription: "Assume this IAM role with the base credentials before calling AWS.",
				Validators:          []validator.List{listvalidator.SizeAtMost(1)},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"duration": schema.StringAttribute{
							MarkdownDescription: "Session duration, a Go duration such as `1h`. Defaults to 15 minutes.",
							Optional:            true,
						},
						"external_id": schema.StringAttribute{
							MarkdownDescription: "External id the role's trust policy requires.",
							Optional:            true,
						},
						"policy": schema.StringAttribute{
							MarkdownDescription: "Inline session policy (JSON) that further limits the role's permissions.",
							Optional:            true,
						},
						"role_arn": schema.StringAttribute{
							MarkdownDescription: "ARN of the role to assume.",
							Required:            true,
						},
						"session_name": schema.StringAttribute{
							MarkdownDescription: "Session name. Defaults to `tributary-terraform`.",
							Optional:            true,
						},
					},
				},
			},
			"default_tags": schema.ListNestedBlock{
				MarkdownDescription: "Tags added to every AWS object the provider creates, below each resource's own `tags`.",
				Validators:          []validator.List{listvalidator.SizeAtMost(1)},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"tags": schema.MapAttribute{
							MarkdownDescription: "The tags.",
							Optional:            true,
							ElementType:         types.StringType,
						},
					},
				},
			},
			"endpoints": schema.ListNestedBlock{
				MarkdownDescription: "Per-service endpoint URLs, for LocalStack, Tributary's local cloud or VPC endpoints. " +
					"Precedence: this block, then `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then the shared config file.",
				Validators: []validator.List{listvalidator.SizeAtMost(1)},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"acmpca":         endpointAttr("AWS Private CA", "ACM_PCA"),
						"autoscaling":    endpointAttr("EC2 Auto Scaling", "AUTO_SCALING"),
						"cloudwatch":     endpointAttr("CloudWatch", "CLOUDWATCH"),
						"ec2":            endpointAttr("EC2", "EC2"),
						"firehose":       endpointAttr("Firehose (the delivery stream of logging.firehose)", "FIREHOSE"),
						"iam":            endpointAttr("IAM", "IAM"),
						"kms":            endpointAttr("KMS", "KMS"),
						"s3":             endpointAttr("S3 (the bucket of logging.s3)", "S3"),
						"sts":            endpointAttr("STS", "STS"),
						"secretsmanager": endpointAttr("Secrets Manager", "SECRETS_MANAGER"),
					},
				},
			},
		},
	}
}

func (p *tributaryProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !req.Config.Raw.IsFullyKnown() {
		resp.Diagnostics.AddError("Provider configuration is not known yet",
			"The tributary provider needs its settings (region, endpoints, credentials) before it can plan; "+
				"one of them depends on a value only known after apply. Apply the resources it depends on first (-target).")
		return
	}

	cfg, diags := m.awsConfig(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	clients, err := awsconfig.New(ctx, cfg)
	if err != nil {
		resp.Diagnostics.AddError("Configuring the AWS SDK", err.Error())
		return
	}
	tflog.Debug(ctx, "configured AWS clients", map[string]any{"region": clients.Region, "account_id": clients.AccountID})

	data := &providerData{aws: clients, version: p.version, defaultTags: map[string]string{}}
	if len(m.DefaultTags) == 1 && !m.DefaultTags[0].Tags.IsNull() {
		resp.Diagnostics.Append(m.DefaultTags[0].Tags.ElementsAs(ctx, &data.defaultTags, false)...)
	}
	resp.ResourceData = data
	resp.DataSourceData = data
}

// awsConfig converts the provider block into an awsconfig.Config.
func (m providerModel) awsConfig(ctx context.Context) (awsconfig.Config, diag.Diagnostics) {
	var diags diag.Diagnostics
	cfg := awsconfig.Config{
		Region:                    m.Region.ValueString(),
		Profile:                   m.Profile.ValueString(),
		AccessKey:                 m.AccessKey.ValueString(),
		SecretKey:                 m.SecretKey.ValueString(),
		Token:                     m.Token.ValueString(),
		MaxRetries:                int(m.MaxRetries.ValueInt64()),
		SkipCredentialsValidation: m.SkipCredentialsValidation.ValueBool(),
		SkipRequestingAccountID:   m.SkipRequestingAccountID.ValueBool(),
		SkipMetadataAPICheck:      m.SkipMetadataAPICheck.ValueBool(),
		SkipRegionValidation:      m.SkipRegionValidation.ValueBool(),
		Endpoints:                 map[awsconfig.Service]string{},
	}
	diags.Append(m.SharedConfigFiles.ElementsAs(ctx, &cfg.SharedConfigFiles, true)...)
	diags.Append(m.SharedCredentialsFiles.ElementsAs(ctx, &cfg.SharedCredentialsFiles, true)...)
	if len(m.AssumeRole) == 1 {
		ar := m.AssumeRole[0]
		cfg.AssumeRole = &awsconfig.AssumeRole{
			RoleARN:     ar.RoleARN.ValueString(),
			SessionName: ar.SessionName.ValueString(),
			ExternalID:  ar.ExternalID.ValueString(),
			Policy:      ar.Policy.ValueString(),
		}
		if d := ar.Duration.ValueString(); d != "" {
			dur, err := time.ParseDuration(d)
			if err != nil {
				diags.AddAttributeError(path.Root("assume_role").AtListIndex(0).AtName("duration"),
					"Invalid duration", fmt.Sprintf("%q is not a duration such as 1h or 900s: %v", d, err))
			}
			cfg.AssumeRole.Duration = dur
		}
	}
	if len(m.Endpoints) == 1 {
		e := m.Endpoints[0]
		cfg.Endpoints[awsconfig.EC2] = e.EC2.ValueString()
		cfg.Endpoints[awsconfig.KMS] = e.KMS.ValueString()
		cfg.Endpoints[awsconfig.IAM] = e.IAM.ValueString()
		cfg.Endpoints[awsconfig.STS] = e.STS.ValueString()
		cfg.Endpoints[awsconfig.CloudWatch] = e.CloudWatch.ValueString()
		cfg.Endpoints[awsconfig.AutoScaling] = e.AutoScaling.ValueString()
		cfg.Endpoints[awsconfig.SecretsManager] = e.SecretsManager.ValueString()
		cfg.Endpoints[awsconfig.ACMPCA] = e.ACMPCA.ValueString()
		cfg.Endpoints[awsconfig.S3] = e.S3.ValueString()
		cfg.Endpoints[awsconfig.Firehose] = e.Firehose.ValueString()
	}
	return cfg, diags
}

func (p *tributaryProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{NewClusterResource, NewTopicResource, NewACLResource, NewScramUserResource, NewQuotaResource}
}

func (p *tributaryProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewClusterDataSource,
		NewBootstrapBrokersDataSource,
		NewBrokerNodesDataSource,
		NewBrokerImageDataSource,
		NewTopicDataSource,
		NewTopicsDataSource,
		NewIAMPolicyDocumentDataSource,
	}
}
