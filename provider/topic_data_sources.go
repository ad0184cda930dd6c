package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

var (
	_ datasource.DataSourceWithConfigure = &topicDataSource{}
	_ datasource.DataSourceWithConfigure = &topicsDataSource{}
)

// topicDataTimeout bounds a topic data source's read.
const topicDataTimeout = 2 * time.Minute

// topicAdmin returns the topic operations on a cluster's brokers.
func (d *dataSourceBase) topicAdmin(ctx context.Context, clusterID string) (*kafkatopic.Admin, error) {
	conn, err := d.data.kafkaConn(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	return &kafkatopic.Admin{
		Conn: conn,
		Log:  func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}, nil
}

var clusterIDDataAttr = schema.StringAttribute{
	MarkdownDescription: "Cluster id (`tc-...`).",
	Required:            true,
	Validators:          []validator.String{stringvalidator.RegexMatches(clusterIDPattern, "must be a Tributary cluster id, tc- and 16 hex digits")},
}

// replicationFactorOf is a topic's replica count as the data sources
// report it: partition 0's, or another partition's where they differ.
func replicationFactorOf(t *kafkatopic.Topic) int64 {
	if len(t.Partitions) == 0 {
		return 0
	}
	return int64(t.ReplicationFactor(len(t.Partitions[0].Replicas)))
}

// --- tributary_topic ---

// NewTopicDataSource is the tributary_topic data source.
func NewTopicDataSource() datasource.DataSource { return &topicDataSource{} }

type topicDataSource struct{ dataSourceBase }

type topicDataModel struct {
	ClusterID         types.String `tfsdk:"cluster_id"`
	Config            types.Map    `tfsdk:"config"`
	EffectiveConfig   types.Map    `tfsdk:"effective_config"`
	ID                types.String `tfsdk:"id"`
	Name              types.String `tfsdk:"name"`
	Partitions        types.Int64  `tfsdk:"partitions"`
	ReplicationFactor types.Int64  `tfsdk:"replication_factor"`
}

func (d *topicDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_topic"
}

func (d *topicDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "One topic of a Tributary cluster, read from the brokers through the Kafka protocol (Terraform must reach " +
			"their private addresses).",
		Attributes: map[string]schema.Attribute{
			"cluster_id": clusterIDDataAttr,
			"config": schema.MapAttribute{
				MarkdownDescription: "The topic's own configs (set on the topic, as `tributary_topic`'s `config`).",
				Computed:            true, ElementType: types.StringType,
			},
			"effective_config": schema.MapAttribute{
				MarkdownDescription: "Every topic config in force, with the values inherited from the brokers.",
				Computed:            true, ElementType: types.StringType,
			},
			"id":                 schema.StringAttribute{MarkdownDescription: "`<cluster_id>/<name>`.", Computed: true},
			"name":               schema.StringAttribute{MarkdownDescription: "Topic name.", Required: true},
			"partitions":         schema.Int64Attribute{MarkdownDescription: "Number of partitions.", Computed: true},
			"replication_factor": schema.Int64Attribute{MarkdownDescription: "Copies of each partition.", Computed: true},
		},
	}
}

func (d *topicDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !d.configured(&resp.Diagnostics) {
		return
	}
	var m topicDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, topicDataTimeout)
	defer cancel()
	clusterID, name := m.ClusterID.ValueString(), m.Name.ValueString()
	summary := fmt.Sprintf("Reading topic %s of cluster %s", name, clusterID)
	a, err := d.topicAdmin(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	t, err := a.Describe(ctx, name)
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error()+reachHint(a))
		return
	}
	m.ID = types.StringValue(topicID(clusterID, name))
	m.Partitions = types.Int64Value(int64(len(t.Partitions)))
	m.ReplicationFactor = types.Int64Value(replicationFactorOf(t))
	var diags diag.Diagnostics
	m.Config, diags = types.MapValueFrom(ctx, types.StringType, t.Config)
	resp.Diagnostics.Append(diags...)
	m.EffectiveConfig, diags = types.MapValueFrom(ctx, types.StringType, t.Effective)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// --- tributary_topics ---

// NewTopicsDataSource is the tributary_topics data source.
func NewTopicsDataSource() datasource.DataSource { return &topicsDataSource{} }

type topicsDataSource struct{ dataSourceBase }

type topicsDataModel struct {
	ClusterID       types.String `tfsdk:"cluster_id"`
	ID              types.String `tfsdk:"id"`
	IncludeInternal types.Bool   `tfsdk:"include_internal"`
	Names           types.List   `tfsdk:"names"`
	Topics          types.List   `tfsdk:"topics"`
}

var topicObjectType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"config":             types.MapType{ElemType: types.StringType},
	"internal":           types.BoolType,
	"name":               types.StringType,
	"partitions":         types.Int64Type,
	"replication_factor": types.Int64Type,
}}

func (d *topicsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_topics"
}

func (d *topicsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Every topic of a Tributary cluster, read from the brokers through the Kafka protocol (Terraform must reach " +
			"their private addresses).",
		Attributes: map[string]schema.Attribute{
			"cluster_id": clusterIDDataAttr,
			"id":         schema.StringAttribute{MarkdownDescription: "The cluster id.", Computed: true},
			"include_internal": schema.BoolAttribute{
				MarkdownDescription: "Also list the brokers' internal topics (`__consumer_offsets`). Default `false`.",
				Optional:            true,
			},
			"names": schema.ListAttribute{MarkdownDescription: "Topic names, sorted.", Computed: true, ElementType: types.StringType},
			"topics": schema.ListNestedAttribute{
				MarkdownDescription: "Every topic, in name order.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"config":             schema.MapAttribute{MarkdownDescription: "The topic's own configs.", Computed: true, ElementType: types.StringType},
						"internal":           schema.BoolAttribute{MarkdownDescription: "Whether the topic is one of the brokers' internal topics.", Computed: true},
						"name":               schema.StringAttribute{MarkdownDescription: "Topic name.", Computed: true},
						"partitions":         schema.Int64Attribute{MarkdownDescription: "Number of partitions.", Computed: true},
						"replication_factor": schema.Int64Attribute{MarkdownDescription: "Copies of each partition.", Computed: true},
					},
				},
			},
		},
	}
}

func (d *topicsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !d.configured(&resp.Diagnostics) {
		return
	}
	var m topicsDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, topicDataTimeout)
	defer cancel()
	clusterID := m.ClusterID.ValueString()
	summary := "Listing the topics of cluster " + clusterID
	a, err := d.topicAdmin(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	topics, err := a.List(ctx, m.IncludeInternal.ValueBool())
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error()+reachHint(a))
		return
	}
	names := make([]string, 0, len(topics))
	objects := make([]attr.Value, 0, len(topics))
	for i := range topics {
		t := &topics[i]
		names = append(names, t.Name)
		cfg, diags := types.MapValueFrom(ctx, types.StringType, t.Config)
		resp.Diagnostics.Append(diags...)
		obj, diags := types.ObjectValue(topicObjectType.AttrTypes, map[string]attr.Value{
			"config":             cfg,
			"internal":           types.BoolValue(t.Internal),
			"name":               types.StringValue(t.Name),
			"partitions":         types.Int64Value(int64(len(t.Partitions))),
			"replication_factor": types.Int64Value(replicationFactorOf(t)),
		})
		resp.Diagnostics.Append(diags...)
		objects = append(objects, obj)
	}
	m.ID = types.StringValue(clusterID)
	var diags diag.Diagnostics
	m.Names, diags = types.ListValueFrom(ctx, types.StringType, names)
	resp.Diagnostics.Append(diags...)
	m.Topics, diags = types.ListValue(topicObjectType, objects)
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
