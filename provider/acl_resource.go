package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/provider/internal/kafkaacl"
)

var (
	_ resource.ResourceWithConfigure      = &aclResource{}
	_ resource.ResourceWithImportState    = &aclResource{}
	_ resource.ResourceWithValidateConfig = &aclResource{}
)

// aclTimeout bounds each ACL operation: one metadata-log write and its
// arrival at every broker.
const aclTimeout = 2 * time.Minute

// NewACLResource is the tributary_acl resource.
func NewACLResource() resource.Resource { return &aclResource{} }

type aclResource struct {
	data *providerData
}

// aclModel is tributary_acl's state, attributes in schema order.
type aclModel struct {
	ClusterID    types.String `tfsdk:"cluster_id"`
	Host         types.String `tfsdk:"host"`
	ID           types.String `tfsdk:"id"`
	Operation    types.String `tfsdk:"operation"`
	PatternType  types.String `tfsdk:"pattern_type"`
	Permission   types.String `tfsdk:"permission"`
	Principal    types.String `tfsdk:"principal"`
	ResourceName types.String `tfsdk:"resource_name"`
	ResourceType types.String `tfsdk:"resource_type"`
}

func (m *aclModel) acl() kafkaacl.ACL {
	return kafkaacl.ACL{
		ResourceType: m.ResourceType.ValueString(), ResourceName: m.ResourceName.ValueString(), PatternType: m.PatternType.ValueString(),
		Principal: m.Principal.ValueString(), Host: m.Host.ValueString(), Operation: m.Operation.ValueString(), Permission: m.Permission.ValueString(),
	}
}

func (r *aclResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_acl"
}

func (r *aclResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if data := providerDataFrom(req.ProviderData, &resp.Diagnostics); data != nil {
		r.data = data
	}
}

func (r *aclResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "One Kafka ACL of a `tributary_cluster`, in Kafka's own names (as `kafka-acls` prints them), so existing ACLs " +
			"carry over as they are. The brokers authorize every request with Kafka's semantics: DENY wins over ALLOW; READ, WRITE, " +
			"DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; `super.users` pass every check.\n\n" +
			"Like `tributary_topic`, the resource finds the brokers from the cluster's id, so there is no connection block and a " +
			"cluster, its topics and their ACLs are created in one `terraform apply`. The ACL is stored in the cluster's metadata " +
			"log; create and destroy return once every live broker enforces the change. An ACL has no update: changing any " +
			"argument replaces it (the new ACL is created before the old is deleted only with `create_before_destroy`). " +
			"A refresh notices an ACL deleted outside Terraform and plans to create it again.",
		Attributes: map[string]schema.Attribute{
			"cluster_id": schema.StringAttribute{
				MarkdownDescription: "The cluster the ACL belongs to: `tributary_cluster.<name>.cluster_id`.",
				Required:            true,
				PlanModifiers:       replace,
				Validators:          []validator.String{stringvalidator.RegexMatches(clusterIDPattern, "must be a Tributary cluster id, tc- and 16 hex digits")},
			},
			"host": schema.StringAttribute{
				MarkdownDescription: "The client address the ACL applies to: an IP address, or `*` (the default) for every address.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString("*"),
				PlanModifiers:       replace,
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The import id: `cluster_id|resource_type|pattern_type|resource_name|principal|host|operation|permission`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"operation": schema.StringAttribute{
				MarkdownDescription: "What the principal may (or may not) do: one of `" + strings.Join(kafkaacl.OperationNames(), "`, `") + "`, " +
					"among those the resource type supports (TOPIC: READ, WRITE, CREATE, DESCRIBE, DELETE, ALTER, DESCRIBE_CONFIGS, " +
					"ALTER_CONFIGS; GROUP: READ, DESCRIBE, DELETE; CLUSTER: CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, " +
					"IDEMPOTENT_WRITE, ALTER, DESCRIBE; TRANSACTIONAL_ID: DESCRIBE, WRITE; ALL for each).",
				Required:      true,
				PlanModifiers: replace,
			},
			"pattern_type": schema.StringAttribute{
				MarkdownDescription: "`LITERAL` (the default): `resource_name` is the resource's name, or `*` for every resource of the type. " +
					"`PREFIXED`: every resource whose name starts with `resource_name`.",
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString("LITERAL"),
				PlanModifiers: replace,
			},
			"permission": schema.StringAttribute{
				MarkdownDescription: "`ALLOW` (the default) or `DENY`. A DENY wins over any ALLOW that matches the same request.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString("ALLOW"),
				PlanModifiers:       replace,
			},
			"principal": schema.StringAttribute{
				MarkdownDescription: "Who the ACL applies to, `Type:name` as the brokers name authenticated clients: `User:alice` (a SCRAM " +
					"user), `User:CN=app,OU=payments` (a client certificate's subject, after `ssl.principal.mapping.rules`), " +
					"`User:arn:aws:iam::123456789012:role/app` (an IAM role, when the IAM listener authorizes by ACLs), `User:ANONYMOUS` " +
					"(plaintext clients) or `User:*` (everyone).",
				Required:      true,
				PlanModifiers: replace,
			},
			"resource_name": schema.StringAttribute{
				MarkdownDescription: "The topic, group or transactional id the ACL covers (with `pattern_type`), `*` for every one, or " +
					"`kafka-cluster` for the CLUSTER resource.",
				Required:      true,
				PlanModifiers: replace,
			},
			"resource_type": schema.StringAttribute{
				MarkdownDescription: "`" + strings.Join(kafkaacl.ResourceTypeNames(), "`, `") + "`.",
				Required:            true,
				PlanModifiers:       replace,
			},
		},
	}
}

// ValidateConfig applies the brokers' own checks of a new ACL at plan time,
// once every part is known, so a mistake fails the plan instead of an
// apply halfway through.
func (r *aclResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m aclModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	defaults := map[string]*types.String{"host": &m.Host, "pattern_type": &m.PatternType, "permission": &m.Permission}
	fallback := map[string]string{"host": "*", "pattern_type": "LITERAL", "permission": "ALLOW"}
	for name, v := range defaults {
		if v.IsNull() {
			*v = types.StringValue(fallback[name])
		}
	}
	// Every mistake at once, each at its argument. An argument not known
	// yet (from another resource) is checked at apply; an unknown value
	// reads as "", which only its own checks see (an unknown resource_type
	// also leaves the operation's and the name's checks for it out).
	unknown := map[string]bool{
		"resource_type": m.ResourceType.IsUnknown(), "resource_name": m.ResourceName.IsUnknown(), "pattern_type": m.PatternType.IsUnknown(),
		"principal": m.Principal.IsUnknown(), "host": m.Host.IsUnknown(), "operation": m.Operation.IsUnknown(), "permission": m.Permission.IsUnknown(),
	}
	for _, p := range m.acl().Problems() {
		if !unknown[p.Field] {
			resp.Diagnostics.AddAttributeError(path.Root(p.Field), "Invalid ACL", p.Error())
		}
	}
}

// admin returns the ACL operations on a cluster's brokers.
func (r *aclResource) admin(ctx context.Context, clusterID string) (*kafkaacl.Admin, error) {
	conn, err := r.data.kafkaConn(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	return &kafkaacl.Admin{Conn: conn, Log: func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) }}, nil
}

func (r *aclResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan aclModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, aclTimeout)
	defer cancel()
	clusterID, acl := plan.ClusterID.ValueString(), plan.acl()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	summary := fmt.Sprintf("Creating an ACL in cluster %s", clusterID)
	release, ok := r.data.creates.claim(acl.ID(clusterID))
	if !ok {
		resp.Diagnostics.AddError(summary, duplicateDeclaration("ACL", acl.ID(clusterID)))
		return
	}
	created := false
	defer func() {
		if !created {
			release()
		}
	}()
	a, err := r.admin(ctx, clusterID)
	var exists bool
	if err == nil {
		exists, err = a.Exists(ctx, acl)
	}
	if err == nil && exists {
		// Kafka would accept it again without a change; two resources
		// owning one ACL would delete it for both when one goes.
		resp.Diagnostics.AddError(summary, fmt.Sprintf("The cluster already holds this ACL. To manage it with Terraform, import it: "+
			"terraform import <resource address> '%s'", acl.ID(clusterID)))
		return
	}
	if err == nil {
		err = a.Create(ctx, acl)
	}
	if errors.Is(err, kafkaacl.ErrUnconfirmed) {
		// The ACL exists, and the next apply would refuse to create it
		// again: say how to take it over.
		resp.Diagnostics.AddError(summary, fmt.Sprintf("%v. The ACL is on the cluster; once the provider may describe the "+
			"cluster's ACLs again, import it: terraform import <resource address> '%s'", err, acl.ID(clusterID)))
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	created = true
	plan.ID = types.StringValue(acl.ID(clusterID))
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *aclResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state aclModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, aclTimeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the ACL's cluster no longer exists, removing the ACL from state")
		resp.State.RemoveResource(ctx)
		return
	}
	var has bool
	if err == nil {
		has, err = a.Exists(ctx, state.acl())
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Reading an ACL of cluster %s", clusterID), err.Error())
		return
	}
	if !has {
		tflog.Warn(ctx, "ACL not found, removing it from state", map[string]any{"id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	state.ID = types.StringValue(state.acl().ID(clusterID))
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update is never called with a change: every argument replaces the ACL.
func (r *aclResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan aclModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *aclResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state aclModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, aclTimeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the ACL's cluster no longer exists: nothing to delete")
		return
	}
	if err == nil {
		err = a.Delete(ctx, state.acl())
	}
	if errors.Is(err, kafkaacl.ErrNotFound) {
		tflog.Warn(ctx, "the ACL was already deleted")
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Deleting an ACL of cluster %s", clusterID), err.Error())
	}
}

func (r *aclResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	clusterID, acl, err := kafkaacl.ParseID(req.ID)
	if err == nil && !clusterIDPattern.MatchString(clusterID) {
		err = fmt.Errorf("%q is not a Tributary cluster id (tc- and 16 hex digits)", clusterID)
	}
	if err != nil {
		resp.Diagnostics.AddError("Invalid import id", err.Error())
		return
	}
	for attr, v := range map[string]string{
		"id": acl.ID(clusterID), "cluster_id": clusterID, "resource_type": acl.ResourceType, "resource_name": acl.ResourceName,
		"pattern_type": acl.PatternType, "principal": acl.Principal, "host": acl.Host, "operation": acl.Operation, "permission": acl.Permission,
	} {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(attr), v)...)
	}
}
