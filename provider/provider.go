// Package provider implements the Tributary Terraform provider: a self-hosted
// alternative to Amazon MSK that builds Kafka-compatible clusters on plain EC2.
package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

var _ provider.Provider = &tributaryProvider{}

type tributaryProvider struct {
	version string
}

// New returns a constructor for the provider at the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &tributaryProvider{version: version}
	}
}

func (p *tributaryProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "tributary"
	resp.Version = p.version
}

func (p *tributaryProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The Tributary provider builds Kafka-compatible clusters on plain EC2 across three Availability Zones.",
		Attributes: map[string]schema.Attribute{
			"region": schema.StringAttribute{
				MarkdownDescription: "AWS region. Defaults to the SDK's default chain (`AWS_REGION`, shared config).",
				Optional:            true,
			},
		},
	}
}

func (p *tributaryProvider) Configure(_ context.Context, _ provider.ConfigureRequest, _ *provider.ConfigureResponse) {
}

func (p *tributaryProvider) Resources(_ context.Context) []func() resource.Resource {
	return nil
}

func (p *tributaryProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return nil
}
