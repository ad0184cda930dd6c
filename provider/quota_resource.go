package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/provider/internal/kafkaquota"
)

var (
	_ resource.ResourceWithConfigure      = &quotaResource{}
	_ resource.ResourceWithImportState    = &quotaResource{}
	_ resource.ResourceWithValidateConfig = &quotaResource{}
)

// quotaTimeout bounds each quota operation: one metadata-log write and its
// arrival at every broker.
const quotaTimeout = 2 * time.Minute

// NewQuotaResource is the tributary_quota resource.
func NewQuotaResource() resource.Resource { return &quotaResource{} }

type quotaResource struct {
	data *providerData
}

// quotaModel is tributary_quota's state, attributes in schema order.
type quotaModel struct {
	ClientID               types.String  `tfsdk:"client_id"`
	ClusterID              types.String  `tfsdk:"cluster_id"`
	ConnectionCreationRate types.Int64   `tfsdk:"connection_creation_rate"`
	ConsumerByteRate       types.Int64   `tfsdk:"consumer_byte_rate"`
	ID                     types.String  `tfsdk:"id"`
	IP                     types.String  `tfsdk:"ip"`
	ProducerByteRate       types.Int64   `tfsdk:"producer_byte_rate"`
	RequestPercentage      types.Float64 `tfsdk:"request_percentage"`
	User                   types.String  `tfsdk:"user"`
}

func (m *quotaModel) entity() kafkaquota.Entity {
	return kafkaquota.Entity{User: m.User.ValueString(), ClientID: m.ClientID.ValueString(), IP: m.IP.ValueString()}
}

// values are the quota keys the model sets.
func (m *quotaModel) values() map[string]float64 {
	out := map[string]float64{}
	for key, v := range map[string]types.Int64{
		metadata.QuotaProducerByteRate: m.ProducerByteRate, metadata.QuotaConsumerByteRate: m.ConsumerByteRate,
		metadata.QuotaConnectionCreationRate: m.ConnectionCreationRate,
	} {
		if !v.IsNull() && !v.IsUnknown() {
			out[key] = float64(v.ValueInt64())
		}
	}
	if v := m.RequestPercentage; !v.IsNull() && !v.IsUnknown() {
		out[metadata.QuotaRequestPercentage] = v.ValueFloat64()
	}
	return out
}

// setValues puts what the brokers hold in the model; a key they do not
// hold is null.
func (m *quotaModel) setValues(v map[string]float64) {
	i64 := func(key string) types.Int64 {
		if x, ok := v[key]; ok {
			return types.Int64Value(int64(x))
		}
		return types.Int64Null()
	}
	m.ProducerByteRate = i64(metadata.QuotaProducerByteRate)
	m.ConsumerByteRate = i64(metadata.QuotaConsumerByteRate)
	m.ConnectionCreationRate = i64(metadata.QuotaConnectionCreationRate)
	m.RequestPercentage = types.Float64Null()
	if x, ok := v[metadata.QuotaRequestPercentage]; ok {
		m.RequestPercentage = types.Float64Value(x)
	}
}

func (r *quotaResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_quota"
}

func (r *quotaResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if data := providerDataFrom(req.ProviderData, &resp.Diagnostics); data != nil {
		r.data = data
	}
}

func (r *quotaResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	// An empty name is no entity: the default is spelled <default>.
	named := []validator.String{stringvalidator.LengthAtLeast(1)}
	name := func(what string) string {
		return what + " `" + kafkaquota.Default + "` is the default entity of the type: it applies to every " +
			"one that has no quota of its own (Kafka's `--entity-default`)."
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Client quotas (KIP-546) of a `tributary_cluster` for one entity, as `kafka-configs --alter " +
			"--entity-type users|clients|ips` sets them: a user, a client id, a user and a client id, or an IP address, each " +
			"named or the default. Every broker enforces them on its own traffic as Kafka does: a client over a rate gets " +
			"`throttle_time_ms` in its responses and its connection is muted for that time; a client resolves to the most " +
			"specific entity that sets a key (`user` + `client_id`, then `user` with the default client, `user`, the " +
			"default user with `client_id`, ..., the default `client_id`).\n\n" +
			"Like `tributary_topic`, the resource finds the brokers from the cluster's id, so a cluster and its quotas are " +
			"created in one `terraform apply`. The quotas are stored in the cluster's metadata log; create, update and " +
			"destroy return once every live broker holds the change. Values are changed in place; changing the entity " +
			"replaces the resource. A refresh notices values changed outside Terraform, and a quota deleted outside " +
			"Terraform is created again.",
		Attributes: map[string]schema.Attribute{
			"client_id": schema.StringAttribute{
				MarkdownDescription: "The client id (`client.id` of the client's configuration) the quotas apply to. " + name("`client_id =`"),
				Optional:            true,
				PlanModifiers:       replace,
				Validators:          named,
			},
			"cluster_id": schema.StringAttribute{
				MarkdownDescription: "The cluster the quotas belong to: `tributary_cluster.<name>.cluster_id`.",
				Required:            true,
				PlanModifiers:       replace,
				Validators:          []validator.String{stringvalidator.RegexMatches(clusterIDPattern, "must be a Tributary cluster id, tc- and 16 hex digits")},
			},
			"connection_creation_rate": schema.Int64Attribute{
				MarkdownDescription: "New connections per second a broker accepts from the IP address (`ip` entities only); " +
					"connections over it are held unserved for their throttle time, then closed.",
				Optional: true,
			},
			"consumer_byte_rate": schema.Int64Attribute{
				MarkdownDescription: "Bytes per second each broker sends the entity's clients in Fetch responses (`user` and " +
					"`client_id` entities).",
				Optional: true,
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "The import id: `cluster_id|user=NAME|client-id=NAME` (the parts the entity has; `ip=ADDRESS` " +
					"alone), `<default>` for a default part.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"ip": schema.StringAttribute{
				MarkdownDescription: "The client IP address the quota applies to (only `connection_creation_rate`; not combined with " +
					"`user` or `client_id`). " + name("`ip =`"),
				Optional:      true,
				PlanModifiers: replace,
				Validators:    named,
			},
			"producer_byte_rate": schema.Int64Attribute{
				MarkdownDescription: "Bytes per second each broker takes from the entity's clients in Produce requests (`user` and " +
					"`client_id` entities).",
				Optional: true,
			},
			"request_percentage": schema.Float64Attribute{
				MarkdownDescription: "Share of one request-handling thread's time each broker gives the entity's clients, in " +
					"percent (may be fractional; `user` and `client_id` entities).",
				Optional: true,
			},
			"user": schema.StringAttribute{
				MarkdownDescription: "The user the quotas apply to: the principal's name without `User:` (`alice` for a SCRAM " +
					"user, `CN=app,OU=payments` for a client certificate, the role ARN for IAM, `ANONYMOUS` for unauthenticated " +
					"clients). " + name("`user =`"),
				Optional:      true,
				PlanModifiers: replace,
				Validators:    named,
			},
		},
	}
}

// ValidateConfig applies the brokers' own checks at plan time, once the
// entity and values are known, so a mistake fails the plan instead of an
// apply halfway through.
func (r *quotaResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m quotaModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for _, v := range []types.String{m.User, m.ClientID, m.IP} {
		if v.IsUnknown() {
			return
		}
	}
	e := m.entity()
	// Values not known yet are left to the apply; the entity is checked
	// with the known ones.
	valuesKnown := true
	for _, v := range []interface{ IsUnknown() bool }{m.ProducerByteRate, m.ConsumerByteRate, m.ConnectionCreationRate, m.RequestPercentage} {
		valuesKnown = valuesKnown && !v.IsUnknown()
	}
	// Every mistake tied to an argument at once, each at its argument;
	// then the brokers' whole-entity checks, which name no one argument.
	ps := e.Problems(m.values())
	for _, p := range ps {
		resp.Diagnostics.AddAttributeError(path.Root(p.Field), "Invalid quota", p.Error())
	}
	if len(ps) > 0 {
		return
	}
	if err := e.Validate(); err != nil {
		resp.Diagnostics.AddError("Invalid quota entity", err.Error()+". Set user, client_id (each a name or <default>), both, or ip alone.")
		return
	}
	if !valuesKnown {
		return
	}
	if err := e.ValidateValues(m.values()); err != nil {
		resp.Diagnostics.AddError("Invalid quota", err.Error())
	}
}

// admin returns the quota operations on a cluster's brokers.
func (r *quotaResource) admin(ctx context.Context, clusterID string) (*kafkaquota.Admin, error) {
	conn, err := r.data.kafkaConn(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	return &kafkaquota.Admin{Conn: conn, Log: func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) }}, nil
}

func (r *quotaResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan quotaModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, quotaTimeout)
	defer cancel()
	clusterID, e := plan.ClusterID.ValueString(), plan.entity()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	summary := fmt.Sprintf("Creating the quotas of %s in cluster %s", e, clusterID)
	release, ok := r.data.creates.claim(e.ID(clusterID))
	if !ok {
		resp.Diagnostics.AddError(summary, duplicateDeclaration("quota entity", e.ID(clusterID)))
		return
	}
	created := false
	defer func() {
		if !created {
			release()
		}
	}()
	a, err := r.admin(ctx, clusterID)
	if err == nil {
		_, err = a.Describe(ctx, e)
		switch {
		case err == nil:
			// Two resources owning one entity would undo each other.
			resp.Diagnostics.AddError(summary, fmt.Sprintf("The cluster already holds quotas for %s. To manage them with "+
				"Terraform, import them: terraform import <resource address> '%s'", e, e.ID(clusterID)))
			return
		case errors.Is(err, kafkaquota.ErrNotFound):
			err = a.Set(ctx, e, plan.values())
		}
	}
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	created = true
	plan.ID = types.StringValue(e.ID(clusterID))
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *quotaResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state quotaModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, quotaTimeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the quota's cluster no longer exists, removing the quota from state")
		resp.State.RemoveResource(ctx)
		return
	}
	var values map[string]float64
	if err == nil {
		values, err = a.Describe(ctx, state.entity())
	}
	if errors.Is(err, kafkaquota.ErrNotFound) {
		tflog.Warn(ctx, "quota not found, removing it from state", map[string]any{"id": state.ID.ValueString()})
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Reading the quotas of %s in cluster %s", state.entity(), clusterID), err.Error())
		return
	}
	state.setValues(values)
	state.ID = types.StringValue(state.entity().ID(clusterID))
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *quotaResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan quotaModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, quotaTimeout)
	defer cancel()
	clusterID, e := plan.ClusterID.ValueString(), plan.entity()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	a, err := r.admin(ctx, clusterID)
	if err == nil {
		err = a.Set(ctx, e, plan.values())
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Updating the quotas of %s in cluster %s", e, clusterID), err.Error())
		return
	}
	plan.ID = types.StringValue(e.ID(clusterID))
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *quotaResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state quotaModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, quotaTimeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the quota's cluster no longer exists: nothing to delete")
		return
	}
	if err == nil {
		err = a.Set(ctx, state.entity(), nil)
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Deleting the quotas of %s in cluster %s", state.entity(), clusterID), err.Error())
	}
}

func (r *quotaResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	clusterID, e, err := kafkaquota.ParseID(req.ID)
	if err == nil && !clusterIDPattern.MatchString(clusterID) {
		err = fmt.Errorf("%q is not a Tributary cluster id (tc- and 16 hex digits)", clusterID)
	}
	if err != nil {
		resp.Diagnostics.AddError("Invalid import id", err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), e.ID(clusterID))...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cluster_id"), clusterID)...)
	for attr, v := range map[string]string{"user": e.User, "client_id": e.ClientID, "ip": e.IP} {
		if v != "" {
			resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(attr), v)...)
		}
	}
}
