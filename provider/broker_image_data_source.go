package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ datasource.DataSourceWithConfigure = &brokerImageDataSource{}

// NewBrokerImageDataSource is the tributary_broker_image data source.
func NewBrokerImageDataSource() datasource.DataSource { return &brokerImageDataSource{} }

type brokerImageDataSource struct{ dataSourceBase }

type brokerImageModel struct {
	Architecture types.String `tfsdk:"architecture"`
	CreationDate types.String `tfsdk:"creation_date"`
	ID           types.String `tfsdk:"id"`
	Name         types.String `tfsdk:"name"`
	Version      types.String `tfsdk:"version"`
}

func (d *brokerImageDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_broker_image"
}

func (d *brokerImageDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Finds the newest broker image (AMI) of a version owned by the account: images tagged " +
			"`tributary:component = broker` and `tributary:version = <version>`, as `make ami` (Packer) and " +
			"`tributary-localcloud register-image` create them.",
		Attributes: map[string]schema.Attribute{
			"architecture": schema.StringAttribute{
				MarkdownDescription: "CPU architecture, `x86_64` or `arm64`. Omitted: any (the newest image wins).",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{stringvalidator.OneOf("x86_64", "arm64")},
			},
			"creation_date": schema.StringAttribute{MarkdownDescription: "When the image was created.", Computed: true},
			"id":            schema.StringAttribute{MarkdownDescription: "Image (AMI) id.", Computed: true},
			"name":          schema.StringAttribute{MarkdownDescription: "Image name, `tributary-broker-<version>-<arch>`.", Computed: true},
			"version": schema.StringAttribute{
				MarkdownDescription: "Broker version to find.",
				Required:            true,
				Validators:          []validator.String{stringvalidator.LengthBetween(1, 64)},
			},
		},
	}
}

func (d *brokerImageDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !d.configured(&resp.Diagnostics) {
		return
	}
	var m brokerImageModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	imgs, err := findBrokerImages(ctx, d.data.aws.EC2, m.Version.ValueString(), m.Architecture.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("Finding the broker image", err.Error())
		return
	}
	if len(imgs) == 0 {
		resp.Diagnostics.AddError("No broker image",
			"No image tagged tributary:version="+m.Version.ValueString()+" (and the architecture asked for) is owned by this account in this region. "+
				"Build one with `make ami` (AWS) or register one with `tributary-localcloud register-image` (local cloud).")
		return
	}
	img := imgs[0]
	m.ID, m.Name, m.Architecture, m.CreationDate = types.StringValue(img.ID), types.StringValue(img.Name),
		types.StringValue(img.Architecture), types.StringValue(img.CreationDate)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
