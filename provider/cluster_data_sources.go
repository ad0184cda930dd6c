package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

var (
	_ datasource.DataSourceWithConfigure = &clusterDataSource{}
	_ datasource.DataSourceWithConfigure = &bootstrapBrokersDataSource{}
	_ datasource.DataSourceWithConfigure = &brokerNodesDataSource{}
)

// dataSourceBase holds the provider data every data source needs.
type dataSourceBase struct {
	data *providerData
}

func (d *dataSourceBase) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	if data := providerDataFrom(req.ProviderData, &resp.Diagnostics); data != nil {
		d.data = data
	}
}

// configured reports an error when the provider has no AWS clients.
func (d *dataSourceBase) configured(diags *diag.Diagnostics) bool {
	return d.data.ready(diags)
}

func (d *dataSourceBase) fleet() *fleet.Fleet {
	return &fleet.Fleet{EC2: d.data.aws.EC2, KMS: d.data.aws.KMS, IAM: d.data.aws.IAM, AutoScaling: d.data.aws.AutoScaling}
}

// observeCluster finds a cluster by id and fails clearly when nothing of it exists.
func (d *dataSourceBase) observeCluster(ctx context.Context, clusterID string) (*fleet.Observed, error) {
	o, err := d.fleet().Observe(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	if o.Empty() {
		return nil, fmt.Errorf("no Tributary cluster with id %s in this account and region", clusterID)
	}
	return o, nil
}

// clusterIDByName finds the id of the cluster with a name, through the tags
// of its security group.
func clusterIDByName(ctx context.Context, client *ec2.Client, name string) (string, error) {
	out, err := client.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + fleet.TagClusterName), Values: []string{name}}},
	})
	if err != nil {
		return "", fmt.Errorf("looking for cluster %q: %w", name, err)
	}
	var ids []string
	for _, sg := range out.SecurityGroups {
		for _, t := range sg.Tags {
			if aws.ToString(t.Key) == fleet.TagClusterID && !slices.Contains(ids, aws.ToString(t.Value)) {
				ids = append(ids, aws.ToString(t.Value))
			}
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("no Tributary cluster named %q in this account and region", name)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%d Tributary clusters are named %q (%v): use cluster_id", len(ids), name, ids)
}

var brokerNodesDataAttr = schema.ListNestedAttribute{
	MarkdownDescription: "Every broker, in node-id order.",
	Computed:            true,
	NestedObject: schema.NestedAttributeObject{
		Attributes: map[string]schema.Attribute{
			"auto_scaling_group": schema.StringAttribute{MarkdownDescription: "The broker's Auto Scaling group of one, which replaces its instance when it fails; empty for a broker still on an instance of no group.", Computed: true},
			"availability_zone":  schema.StringAttribute{MarkdownDescription: "Availability Zone.", Computed: true},
			"endpoint":           schema.StringAttribute{MarkdownDescription: "The broker's `ip:port` on its client listener of the lowest port (9092 plaintext, 9094 TLS, 9096 SASL/SCRAM, 9098 SASL/IAM); empty when it serves none.", Computed: true},
			"endpoints":          schema.ListAttribute{MarkdownDescription: "The broker's `ip:port` on every client listener it serves, by port: the per-broker form of the bootstrap strings.", ElementType: types.StringType, Computed: true},
			"eni_id":             schema.StringAttribute{MarkdownDescription: "Persistent network interface.", Computed: true},
			"instance_id":        schema.StringAttribute{MarkdownDescription: "Current instance; empty while the broker has none.", Computed: true},
			"instance_state":     schema.StringAttribute{MarkdownDescription: "EC2 state of the instance (`running`, `stopped`, ...); empty without one.", Computed: true},
			"node_id":            schema.Int64Attribute{MarkdownDescription: "Kafka node id.", Computed: true},
			"private_ip":         schema.StringAttribute{MarkdownDescription: "Private IP address.", Computed: true},
			"subnet_id":          schema.StringAttribute{MarkdownDescription: "Subnet.", Computed: true},
			"volume_id":          schema.StringAttribute{MarkdownDescription: "Persistent EBS data volume.", Computed: true},
			"volume_size":        schema.Int64Attribute{MarkdownDescription: "Data volume size in GiB.", Computed: true},
		},
	},
}

func bootstrapAttrs() map[string]schema.Attribute {
	return map[string]schema.Attribute{
		"bootstrap_brokers": schema.StringAttribute{MarkdownDescription: "Plaintext (9092) endpoints of every broker, in node-id order; empty unless the brokers serve plaintext " +
			"(`encryption_in_transit.client_broker` `PLAINTEXT` or `TLS_PLAINTEXT`). Each bootstrap string is read from the brokers' boot documents, and is empty " +
			"unless every running broker serves its listener (during a roll that turns one on or off, the brokers differ).", Computed: true},
		"bootstrap_brokers_sasl_iam":   schema.StringAttribute{MarkdownDescription: "SASL/IAM (9098, over TLS) endpoints; empty while IAM is off.", Computed: true},
		"bootstrap_brokers_sasl_scram": schema.StringAttribute{MarkdownDescription: "SASL/SCRAM (9096, over TLS) endpoints; empty while SCRAM is off.", Computed: true},
		"bootstrap_brokers_tls": schema.StringAttribute{MarkdownDescription: "TLS (9094) endpoints; empty unless clients may use TLS without SASL: " +
			"unauthenticated, or with client certificates.", Computed: true},
	}
}

// bootstrapStrings are the bootstrap strings of the client listeners every
// running broker serves, in the resource's form (plaintext, TLS, SCRAM,
// IAM). What a broker serves is in its boot document; a bootstrap string
// lists every broker, so a listener some broker lacks gets an empty one, as
// does every listener of a cluster without a running broker.
func (d *dataSourceBase) bootstrapStrings(ctx context.Context, o *fleet.Observed) (plaintext, tls, scram, iam types.String) {
	return bootstrapOf(d.servedListeners(ctx, o), o.Brokers)
}

// bootstrapOf is setBootstrap's four strings, for the data sources.
func bootstrapOf(served []bootconfig.Listener, brokers []fleet.Broker) (plaintext, tls, scram, iam types.String) {
	var m clusterModel
	m.setBootstrap(served, brokers)
	return m.BootstrapBrokers, m.BootstrapBrokersTLS, m.BootstrapBrokersSASLSCRAM, m.BootstrapBrokersSASLIAM
}

// servedListeners are the client listeners every running broker serves,
// by their boot documents; none when no broker's document could be read.
func (d *dataSourceBase) servedListeners(ctx context.Context, o *fleet.Observed) []bootconfig.Listener {
	docs, err := d.data.liveDocuments(ctx, o.Brokers)
	if err != nil {
		tflog.Warn(ctx, "could not read every broker's boot document; its listeners are not counted", map[string]any{"error": err.Error()})
	}
	var served []bootconfig.Listener
	for _, id := range slices.Sorted(maps.Keys(docs)) {
		if served == nil {
			served = slices.Clone(docs[id].Listeners)
			continue
		}
		served = slices.DeleteFunc(served, func(l bootconfig.Listener) bool { return !hasListener(docs[id].Listeners, l.Name) })
	}
	return served
}

// --- tributary_cluster ---

// NewClusterDataSource is the tributary_cluster data source.
func NewClusterDataSource() datasource.DataSource { return &clusterDataSource{} }

type clusterDataSource struct{ dataSourceBase }

type clusterDataModel struct {
	BootstrapBrokers          types.String `tfsdk:"bootstrap_brokers"`
	BootstrapBrokersSASLIAM   types.String `tfsdk:"bootstrap_brokers_sasl_iam"`
	BootstrapBrokersSASLSCRAM types.String `tfsdk:"bootstrap_brokers_sasl_scram"`
	BootstrapBrokersTLS       types.String `tfsdk:"bootstrap_brokers_tls"`
	BrokerNodes               types.List   `tfsdk:"broker_nodes"`
	ClusterID                 types.String `tfsdk:"cluster_id"`
	ImageID                   types.String `tfsdk:"image_id"`
	InstanceType              types.String `tfsdk:"instance_type"`
	KMSKeyARN                 types.String `tfsdk:"kms_key_arn"`
	Name                      types.String `tfsdk:"name"`
	NumberOfBrokerNodes       types.Int64  `tfsdk:"number_of_broker_nodes"`
	SecurityGroupID           types.String `tfsdk:"security_group_id"`
	Tags                      types.Map    `tfsdk:"tags"`
}

func (d *clusterDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (d *clusterDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := bootstrapAttrs()
	attrs["broker_nodes"] = brokerNodesDataAttr
	attrs["cluster_id"] = schema.StringAttribute{
		MarkdownDescription: "Cluster id. Exactly one of `cluster_id` and `name`.",
		Optional:            true, Computed: true,
		Validators: []validator.String{stringvalidator.ExactlyOneOf(path.MatchRoot("cluster_id"), path.MatchRoot("name"))},
	}
	attrs["name"] = schema.StringAttribute{MarkdownDescription: "Cluster name; must be unique in the account and region.", Optional: true, Computed: true}
	attrs["image_id"] = schema.StringAttribute{MarkdownDescription: "Image the brokers run (of the first broker with an instance).", Computed: true}
	attrs["instance_type"] = schema.StringAttribute{MarkdownDescription: "Instance type of the brokers (of the first broker with an instance).", Computed: true}
	attrs["kms_key_arn"] = schema.StringAttribute{MarkdownDescription: "KMS key of the volumes.", Computed: true}
	attrs["number_of_broker_nodes"] = schema.Int64Attribute{MarkdownDescription: "Number of brokers.", Computed: true}
	attrs["security_group_id"] = schema.StringAttribute{MarkdownDescription: "The cluster's own security group.", Computed: true}
	attrs["tags"] = schema.MapAttribute{MarkdownDescription: "Tags of the cluster (without the provider's `tributary:*` tags).", Computed: true, ElementType: types.StringType}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Looks up a Tributary cluster by id or name: its bootstrap brokers, brokers and security group.",
		Attributes:          attrs,
	}
}

func (d *clusterDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !d.configured(&resp.Diagnostics) {
		return
	}
	var m clusterDataModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	clusterID := m.ClusterID.ValueString()
	if clusterID == "" {
		id, err := clusterIDByName(ctx, d.data.aws.EC2, m.Name.ValueString())
		if err != nil {
			resp.Diagnostics.AddError("Finding Tributary cluster", err.Error())
			return
		}
		clusterID = id
	}
	o, err := d.observeCluster(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError("Reading Tributary cluster", err.Error())
		return
	}
	m.ClusterID = types.StringValue(clusterID)
	m.Name = types.StringValue(o.Name)
	served := d.servedListeners(ctx, o)
	m.BootstrapBrokers, m.BootstrapBrokersTLS, m.BootstrapBrokersSASLSCRAM, m.BootstrapBrokersSASLIAM = bootstrapOf(served, o.Brokers)
	nodes, diags := brokerNodesValue(o.Brokers, served)
	resp.Diagnostics.Append(diags...)
	m.BrokerNodes = nodes
	m.NumberOfBrokerNodes = types.Int64Value(int64(len(o.Brokers)))
	m.SecurityGroupID = types.StringValue(o.SecurityGroupID)
	m.ImageID, m.InstanceType, m.KMSKeyARN = types.StringValue(""), types.StringValue(""), types.StringValue(o.KeyARN)
	for _, b := range o.Brokers {
		if image, instanceType, ok := launchedFrom(&b); ok {
			m.ImageID, m.InstanceType = types.StringValue(image), types.StringValue(instanceType)
			break
		}
	}
	if o.KeyARN == "" && len(o.Brokers) > 0 {
		m.KMSKeyARN = types.StringValue(o.Brokers[0].VolumeKMSKeyID)
	}
	tags, diags := types.MapValueFrom(ctx, types.StringType, o.Tags)
	resp.Diagnostics.Append(diags...)
	m.Tags = tags
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// --- tributary_bootstrap_brokers ---

// NewBootstrapBrokersDataSource is the tributary_bootstrap_brokers data source.
func NewBootstrapBrokersDataSource() datasource.DataSource { return &bootstrapBrokersDataSource{} }

type bootstrapBrokersDataSource struct{ dataSourceBase }

type bootstrapBrokersModel struct {
	BootstrapBrokers          types.String `tfsdk:"bootstrap_brokers"`
	BootstrapBrokersSASLIAM   types.String `tfsdk:"bootstrap_brokers_sasl_iam"`
	BootstrapBrokersSASLSCRAM types.String `tfsdk:"bootstrap_brokers_sasl_scram"`
	BootstrapBrokersTLS       types.String `tfsdk:"bootstrap_brokers_tls"`
	ClusterID                 types.String `tfsdk:"cluster_id"`
}

func (d *bootstrapBrokersDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bootstrap_brokers"
}

func (d *bootstrapBrokersDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	attrs := bootstrapAttrs()
	attrs["cluster_id"] = schema.StringAttribute{MarkdownDescription: "Cluster id.", Required: true}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The bootstrap broker strings of a Tributary cluster, like `aws_msk_bootstrap_brokers`, but complete and in a stable order.",
		Attributes:          attrs,
	}
}

func (d *bootstrapBrokersDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !d.configured(&resp.Diagnostics) {
		return
	}
	var m bootstrapBrokersModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, err := d.observeCluster(ctx, m.ClusterID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("Reading Tributary cluster", err.Error())
		return
	}
	m.BootstrapBrokers, m.BootstrapBrokersTLS, m.BootstrapBrokersSASLSCRAM, m.BootstrapBrokersSASLIAM = d.bootstrapStrings(ctx, o)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// --- tributary_broker_nodes ---

// NewBrokerNodesDataSource is the tributary_broker_nodes data source.
func NewBrokerNodesDataSource() datasource.DataSource { return &brokerNodesDataSource{} }

type brokerNodesDataSource struct{ dataSourceBase }

type brokerNodesModel struct {
	ClusterID types.String `tfsdk:"cluster_id"`
	NodeInfo  types.List   `tfsdk:"node_info_list"`
}

func (d *brokerNodesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_broker_nodes"
}

func (d *brokerNodesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The brokers of a Tributary cluster (node id, AZ, subnet, address, ENI, instance, volume), sorted by node id, like `aws_msk_broker_nodes`.",
		Attributes: map[string]schema.Attribute{
			"cluster_id":     schema.StringAttribute{MarkdownDescription: "Cluster id.", Required: true},
			"node_info_list": brokerNodesDataAttr,
		},
	}
}

func (d *brokerNodesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !d.configured(&resp.Diagnostics) {
		return
	}
	var m brokerNodesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	o, err := d.observeCluster(ctx, m.ClusterID.ValueString())
	if err != nil {
		resp.Diagnostics.AddError("Reading Tributary cluster", err.Error())
		return
	}
	nodes, diags := brokerNodesValue(o.Brokers, d.servedListeners(ctx, o))
	resp.Diagnostics.Append(diags...)
	m.NodeInfo = nodes
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
