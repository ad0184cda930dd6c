package provider

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// clusterARNPattern is Amazon MSK's cluster ARN, which a Tributary cluster
// has too (its arn attribute): the brokers authorize IAM clients against
// ARNs of this shape.
var clusterARNPattern = regexp.MustCompile(`^arn:[a-z-]+:kafka:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9-]+/[A-Za-z0-9-]+$`)

// kafkaResourceNamePattern is a topic, group or transactional id name, or a
// prefix of one ending in *, as IAM matches them.
var kafkaResourceNamePattern = regexp.MustCompile(`^[A-Za-z0-9._*-]+$`)

// NewIAMPolicyDocumentDataSource is the tributary_iam_policy_document data
// source.
func NewIAMPolicyDocumentDataSource() datasource.DataSource { return &iamPolicyDocumentDataSource{} }

type iamPolicyDocumentDataSource struct{}

type iamPolicyDocumentModel struct {
	ClusterARN       types.String `tfsdk:"cluster_arn"`
	ConsumerGroups   types.Set    `tfsdk:"consumer_groups"`
	CreateTopics     types.Bool   `tfsdk:"create_topics"`
	ID               types.String `tfsdk:"id"`
	JSON             types.String `tfsdk:"json"`
	ReadTopics       types.Set    `tfsdk:"read_topics"`
	TransactionalIDs types.Set    `tfsdk:"transactional_ids"`
	WriteTopics      types.Set    `tfsdk:"write_topics"`
}

func (d *iamPolicyDocumentDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_iam_policy_document"
}

func (d *iamPolicyDocumentDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	names := func(desc string) schema.SetAttribute {
		return schema.SetAttribute{
			MarkdownDescription: desc + " Names, or prefixes ending in `*`.",
			Optional:            true,
			ElementType:         types.StringType,
			Validators: []validator.Set{setvalidator.ValueStringsAre(
				stringvalidator.RegexMatches(kafkaResourceNamePattern, "must be a Kafka name or a prefix ending in *"))},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "An IAM identity policy (JSON) that lets a role or user use a cluster through IAM authentication " +
			"(`client_authentication.sasl.iam`): the `kafka-cluster:*` actions and ARNs of Amazon MSK, so an MSK policy carries over " +
			"and this one works on MSK too. Attach `json` with `aws_iam_role_policy`. Computed locally; no AWS call.",
		Attributes: map[string]schema.Attribute{
			"cluster_arn": schema.StringAttribute{
				MarkdownDescription: "The cluster's ARN: `tributary_cluster.<name>.arn` (or an MSK cluster's).",
				Required:            true,
				Validators:          []validator.String{stringvalidator.RegexMatches(clusterARNPattern, "must be a cluster ARN, arn:<partition>:kafka:<region>:<account>:cluster/<name>/<id>")},
			},
			"consumer_groups":   names("Consumer groups the principal may join and commit offsets in (`AlterGroup`, `DescribeGroup`)."),
			"create_topics":     schema.BoolAttribute{MarkdownDescription: "Also allow creating the `write_topics` (`CreateTopic`).", Optional: true},
			"id":                schema.StringAttribute{MarkdownDescription: "Same as `json`.", Computed: true},
			"json":              schema.StringAttribute{MarkdownDescription: "The policy document.", Computed: true},
			"read_topics":       names("Topics the principal may read (`ReadData`, `DescribeTopic`)."),
			"transactional_ids": names("Transactional ids the principal may use (`AlterTransactionalId`, `DescribeTransactionalId`, and `WriteDataIdempotently` on the cluster)."),
			"write_topics": names("Topics the principal may write (`WriteData`, `DescribeTopic`), idempotently " +
				"(`WriteDataIdempotently` on the cluster, which idempotent producers, the default of most clients, need)."),
		},
	}
}

func (d *iamPolicyDocumentDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m iamPolicyDocumentModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in := iamPolicyInput{ClusterARN: m.ClusterARN.ValueString(), CreateTopics: m.CreateTopics.ValueBool()}
	for _, f := range []struct {
		set types.Set
		dst *[]string
	}{{m.WriteTopics, &in.WriteTopics}, {m.ReadTopics, &in.ReadTopics}, {m.ConsumerGroups, &in.Groups}, {m.TransactionalIDs, &in.TransactionalIDs}} {
		v, d := stringSet(ctx, f.set)
		resp.Diagnostics.Append(d...)
		*f.dst = v
	}
	if resp.Diagnostics.HasError() {
		return
	}
	doc, err := iamPolicyJSON(in)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("cluster_arn"), "Cannot write the policy", err.Error())
		return
	}
	m.JSON = types.StringValue(doc)
	m.ID = m.JSON
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// iamPolicyInput is what a policy document allows.
type iamPolicyInput struct {
	ClusterARN                                        string
	WriteTopics, ReadTopics, Groups, TransactionalIDs []string
	CreateTopics                                      bool
}

// iamPolicyJSON writes the policy: Connect and DescribeCluster on the
// cluster, then one statement per kind of resource, on MSK's ARNs
// (topic/, group/, transactional-id/ then <cluster name>/<cluster id>/<name>).
func iamPolicyJSON(in iamPolicyInput) (string, error) {
	base, rest, ok := strings.Cut(in.ClusterARN, ":cluster/")
	if !ok || !clusterARNPattern.MatchString(in.ClusterARN) {
		return "", errInvalidClusterARN(in.ClusterARN)
	}
	arns := func(kind string, names []string) []string {
		out := make([]string, 0, len(names))
		for _, n := range names {
			out = append(out, base+":"+kind+"/"+rest+"/"+n)
		}
		return out
	}
	type statement struct {
		Sid      string   `json:"Sid"`
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	clusterActions := []string{"kafka-cluster:Connect", "kafka-cluster:DescribeCluster"}
	if len(in.WriteTopics) > 0 || len(in.TransactionalIDs) > 0 {
		clusterActions = append(clusterActions, "kafka-cluster:WriteDataIdempotently")
	}
	st := []statement{{Sid: "Connect", Effect: "Allow", Action: clusterActions, Resource: []string{in.ClusterARN}}}
	if len(in.WriteTopics) > 0 {
		actions := []string{"kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"}
		if in.CreateTopics {
			actions = append(actions, "kafka-cluster:CreateTopic")
		}
		st = append(st, statement{Sid: "WriteTopics", Effect: "Allow", Action: actions, Resource: arns("topic", in.WriteTopics)})
	}
	if len(in.ReadTopics) > 0 {
		st = append(st, statement{Sid: "ReadTopics", Effect: "Allow", Action: []string{"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"}, Resource: arns("topic", in.ReadTopics)})
	}
	if len(in.Groups) > 0 {
		st = append(st, statement{Sid: "ConsumerGroups", Effect: "Allow", Action: []string{"kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"}, Resource: arns("group", in.Groups)})
	}
	if len(in.TransactionalIDs) > 0 {
		st = append(st, statement{Sid: "TransactionalIds", Effect: "Allow", Action: []string{"kafka-cluster:AlterTransactionalId", "kafka-cluster:DescribeTransactionalId"}, Resource: arns("transactional-id", in.TransactionalIDs)})
	}
	b, err := json.Marshal(struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{"2012-10-17", st})
	return string(b), err
}

type errInvalidClusterARN string

func (e errInvalidClusterARN) Error() string {
	return "not a cluster ARN (arn:<partition>:kafka:<region>:<account>:cluster/<name>/<id>): " + string(e)
}

// clusterARN is a cluster's ARN in MSK's format, which the brokers' IAM
// authorization uses (tributary.cluster.name, the cluster id as its uuid);
// empty without the account id.
func (r *clusterResource) clusterARN(name, clusterID string) string {
	a := r.data.aws
	if a == nil || a.AccountID == "" || name == "" || clusterID == "" {
		return ""
	}
	partition := a.Partition
	if partition == "" {
		partition = "aws"
	}
	return "arn:" + partition + ":kafka:" + a.Region + ":" + a.AccountID + ":cluster/" + name + "/" + clusterID
}
