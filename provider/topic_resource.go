package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

var (
	_ resource.ResourceWithConfigure      = &topicResource{}
	_ resource.ResourceWithImportState    = &topicResource{}
	_ resource.ResourceWithModifyPlan     = &topicResource{}
	_ resource.ResourceWithValidateConfig = &topicResource{}
)

// Default topic operation timeouts. Creating, growing and configuring a
// topic take seconds; a replication-factor change copies every partition to
// its new replicas, which takes as long as the data needs.
const (
	defaultTopicCreateTimeout = 5 * time.Minute
	defaultTopicUpdateTimeout = 60 * time.Minute
	defaultTopicDeleteTimeout = 5 * time.Minute
	// topicReadTimeout bounds a refresh: a Read that cannot reach the
	// brokers says so instead of hanging the plan.
	topicReadTimeout = 2 * time.Minute
)

var (
	// Kafka's legal topic names: at most 249 of these characters, not "." or "..".
	topicNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	clusterIDPattern = regexp.MustCompile(`^tc-[0-9a-f]{16}$`)
)

// NewTopicResource is the tributary_topic resource.
func NewTopicResource() resource.Resource { return &topicResource{} }

type topicResource struct {
	data *providerData
}

// topicModel is tributary_topic's state, attributes in schema order.
type topicModel struct {
	ClusterID         types.String   `tfsdk:"cluster_id"`
	Config            types.Map      `tfsdk:"config"`
	ID                types.String   `tfsdk:"id"`
	Name              types.String   `tfsdk:"name"`
	Partitions        types.Int64    `tfsdk:"partitions"`
	ReplicationFactor types.Int64    `tfsdk:"replication_factor"`
	ThrottleBPS       types.Int64    `tfsdk:"replication_throttle_bytes_per_second"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
}

func (r *topicResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_topic"
}

func (r *topicResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if data := providerDataFrom(req.ProviderData, &resp.Diagnostics); data != nil {
		r.data = data
	}
}

func (r *topicResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A Kafka topic of a `tributary_cluster`. The provider finds the cluster's brokers from its `cluster_id` " +
			"(the tags of its network interfaces) and talks to them with the Kafka protocol, so there is no connection block: a cluster " +
			"and its topics are created in one `terraform apply`.\n\n" +
			"Partitions grow in place (they cannot be removed; a smaller number fails the plan). The replication factor changes in place " +
			"by a partition reassignment that places new replicas in Availability Zones the partition does not use yet and waits until " +
			"they are in sync. `config` changes in place with `IncrementalAlterConfigs`; removing a key gives the topic back the " +
			"brokers' value. A refresh reports partitions, replication factor and configs changed outside Terraform. Terraform must run " +
			"where it reaches the brokers' private addresses.",
		Attributes: map[string]schema.Attribute{
			"cluster_id": schema.StringAttribute{
				MarkdownDescription: "The cluster the topic lives in: `tributary_cluster.<name>.cluster_id`. Changing it creates the topic in the other cluster.",
				Required:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{stringvalidator.RegexMatches(clusterIDPattern, "must be a Tributary cluster id, tc- and 16 hex digits")},
			},
			"config": schema.MapAttribute{
				MarkdownDescription: "The topic's own configs by their Kafka names (`retention.ms`, `cleanup.policy`, `min.insync.replicas`, ...), " +
					"checked at plan time against the broker's topic-config table (the Topic configs section of the broker's documentation): " +
					"an unknown name (with the closest one suggested, or the topic config a broker setting's name stands for) or a value the " +
					"broker would refuse fails the plan. A config not set here follows the brokers' setting, and is not a diff when the " +
					"brokers' setting changes. Removing a key restores the brokers' value. Values are compared as the brokers spell them " +
					"(`delete,compact` is `compact,delete`); an imported topic holds the brokers' spelling, so a configuration that spells a " +
					"value otherwise shows one update that changes nothing on the brokers.",
				Optional:    true,
				ElementType: types.StringType,
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "`<cluster_id>/<name>`, the import id.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Topic name: up to 249 letters, digits, `.`, `_` and `-`. Changing it replaces the topic (its records are deleted).",
				Required:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators: []validator.String{
					stringvalidator.LengthBetween(1, 249),
					stringvalidator.RegexMatches(topicNamePattern, "may hold only letters, digits, '.', '_' and '-'"),
					stringvalidator.NoneOf(".", ".."),
				},
			},
			"partitions": schema.Int64Attribute{
				MarkdownDescription: "Number of partitions. Grows in place (`CreatePartitions`; keys then map to other partitions than before). " +
					"Kafka cannot remove partitions, so a smaller number fails the plan. As in Kafka, one request creates a topic with at most " +
					"9999 partitions, one fewer per `config` key, and adds at most 10000 to a topic (10,000 metadata records per request): " +
					"the plan refuses more and lists the applies that get there in steps. The brokers also refuse partitions that would put " +
					"more replicas on a broker than the cluster's `max.broker.partitions` (`broker_config`, else by instance type, 300 on t3.small to 4000; replicas counted): " +
					"the create or update then fails with POLICY_VIOLATION naming the broker, what it holds and the limit, nothing created.",
				Required:   true,
				Validators: []validator.Int64{int64validator.Between(1, 1_000_000)},
			},
			"replication_factor": schema.Int64Attribute{
				MarkdownDescription: "Copies of each partition, at most the number of brokers. Changes in place by reassigning every " +
					"partition (`AlterPartitionReassignments`): replicas kept stay, new ones go to the Availability Zones the partition " +
					"does not use yet, then to the least loaded brokers; the apply waits until every new replica is in sync, logging " +
					"progress. New replicas copy under Kafka's replication throttle at `replication_throttle_bytes_per_second`.",
				Required:   true,
				Validators: []validator.Int64{int64validator.Between(1, 32767)},
			},
			"replication_throttle_bytes_per_second": schema.Int64Attribute{
				MarkdownDescription: "Kafka's replication throttle for the copy a `replication_factor` increase makes, in bytes per second, " +
					"as `kafka-reassign-partitions --throttle` sets it: for the apply's duration the brokers get it as " +
					"`leader.replication.throttled.rate` and `follower.replication.throttled.rate` and the topic lists the moving replicas in " +
					"`leader.replication.throttled.replicas` and `follower.replication.throttled.replicas`, so replicas already in sync and " +
					"other topics are not slowed; all four are removed when the new replicas are in sync (after a failed or interrupted " +
					"apply, by the next reassignment once nothing moves). Each broker's sending and receiving of the copy keeps to the rate " +
					"(measured over 10-11 s, so a copy may start with a burst of about 10 s worth). Unset: 52428800 (50 MiB/s); `0` copies " +
					"unthrottled. Changing it alone changes nothing on the brokers.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(0)},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *topicResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m topicModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cfg, _ := knownStrings(m.Config)
	for _, e := range config.ValidateTopicConfigs(cfg) {
		resp.Diagnostics.AddAttributeError(path.Root("config").AtMapKey(e.Name), "Invalid topic config", e.Error())
	}
	// The provider's reassignments set and remove these; a value here
	// would be removed by the next one, and drift after it.
	for _, k := range []string{config.LeaderThrottledReplicas, config.FollowerThrottledReplicas} {
		if _, ok := cfg[k]; ok {
			resp.Diagnostics.AddAttributeError(path.Root("config").AtMapKey(k), "Invalid topic config",
				k+" is set by the provider for the duration of a replication_factor change and removed after it; "+
					"set the copy's rate with replication_throttle_bytes_per_second.")
		}
	}
	// min.insync.replicas above the replica count makes every acks=all
	// write fail, which Kafka accepts silently.
	if v, ok := cfg["min.insync.replicas"]; ok && !m.ReplicationFactor.IsNull() && !m.ReplicationFactor.IsUnknown() {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > m.ReplicationFactor.ValueInt64() {
			resp.Diagnostics.AddAttributeError(path.Root("config").AtMapKey("min.insync.replicas"), "Invalid topic config",
				fmt.Sprintf("min.insync.replicas (%d) is above replication_factor (%d): every acks=all write to the topic would fail.", n, m.ReplicationFactor.ValueInt64()))
		}
	}
}

// knownStrings returns the known entries of a map of strings, and whether
// every entry is known.
func knownStrings(m types.Map) (map[string]string, bool) {
	out := map[string]string{}
	if m.IsNull() || m.IsUnknown() {
		return out, !m.IsUnknown()
	}
	all := true
	for k, v := range m.Elements() {
		s, ok := v.(types.String)
		if !ok || s.IsUnknown() || s.IsNull() {
			all = false
			continue
		}
		out[k] = s.ValueString()
	}
	return out, all
}

func (r *topicResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	var plan topicModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if !plan.ClusterID.IsUnknown() && !plan.Name.IsUnknown() {
		plan.ID = types.StringValue(topicID(plan.ClusterID.ValueString(), plan.Name.ValueString()))
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), plan.ID)...)
	}
	var state topicModel
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if !plan.Partitions.IsUnknown() && !plan.Partitions.IsNull() {
		created := req.State.Raw.IsNull() || !state.ClusterID.Equal(plan.ClusterID) || !state.Name.Equal(plan.Name)
		have := int64(0)
		if !created && !state.Partitions.IsNull() && !state.Partitions.IsUnknown() {
			have = state.Partitions.ValueInt64()
		}
		cfg, _ := knownStrings(plan.Config)
		if summary, detail := partitionStepRefusal(plan.Name.ValueString(), created, have, plan.Partitions.ValueInt64(), len(cfg)); summary != "" {
			resp.Diagnostics.AddAttributeError(path.Root("partitions"), summary, detail)
		}
	}
	if !req.State.Raw.IsNull() {
		if have, want := state.Partitions, plan.Partitions; !have.IsNull() && !have.IsUnknown() && !want.IsUnknown() && want.ValueInt64() < have.ValueInt64() &&
			state.ClusterID.Equal(plan.ClusterID) && state.Name.Equal(plan.Name) {
			resp.Diagnostics.AddAttributeError(path.Root("partitions"), "Partitions cannot be removed",
				fmt.Sprintf("Topic %s has %d partitions and the configuration asks for %d. Kafka cannot remove partitions: records are spread over "+
					"them by key and each partition's records would be lost. Keep %d (or more), or create a topic under a new name and move "+
					"producers and consumers to it; `terraform apply -replace` would delete this topic and its records.",
					state.Name.ValueString(), have.ValueInt64(), want.ValueInt64(), have.ValueInt64()))
		}
	}
	// With the cluster known, a replication factor it has no brokers for
	// fails now rather than halfway through an apply.
	if r.data == nil || r.data.aws == nil || plan.ClusterID.IsUnknown() || plan.ReplicationFactor.IsUnknown() {
		return
	}
	brokers, err := (&fleet.Fleet{EC2: r.data.aws.EC2}).FindBrokers(ctx, plan.ClusterID.ValueString())
	if err != nil {
		tflog.Warn(ctx, "could not count the cluster's brokers at plan time", map[string]any{"error": err.Error()})
		return
	}
	switch rf := plan.ReplicationFactor.ValueInt64(); {
	case len(brokers) == 0:
		resp.Diagnostics.AddAttributeError(path.Root("cluster_id"), "Cluster not found",
			fmt.Sprintf("No Tributary cluster %s in this account and region (nothing is tagged %s=%s).", plan.ClusterID.ValueString(), fleet.TagClusterID, plan.ClusterID.ValueString()))
	case rf > int64(len(brokers)):
		resp.Diagnostics.AddAttributeError(path.Root("replication_factor"), "Not enough brokers",
			fmt.Sprintf("replication_factor is %d but cluster %s has %d brokers: each replica needs a broker of its own.", rf, plan.ClusterID.ValueString(), len(brokers)))
	}
}

func topicID(clusterID, name string) string { return clusterID + "/" + name }

// maxRecordsPerRequest is the brokers' broker/cluster.MaxRecordsPerUserOp
// (Kafka's MAX_RECORDS_PER_USER_OP): the metadata records one request may
// make. A new topic is one record, one per partition and one per config;
// new partitions of a topic one each. Over it the brokers answer
// POLICY_VIOLATION ("unable to perform excessively large batch
// operation"), which the plan says first, with the way there.
// TestTopicLimitsAreTheBrokers keeps the two equal.
const maxRecordsPerRequest = 10000

// partitionStepRefusal returns the plan's refusal (summary and detail) of
// a topic created with more partitions than one CreateTopics may carry
// (configs count against it) or grown from have to want by more than one
// CreatePartitions may add; "" when the brokers would take it.
func partitionStepRefusal(name string, created bool, have, want int64, configs int) (string, string) {
	if created {
		first := int64(maxRecordsPerRequest - 1 - configs)
		if want <= first {
			return "", ""
		}
		return "Too many partitions for one request",
			fmt.Sprintf("Topic %s would be created with %d partitions, and one request creates at most %d partitions of a topic "+
				"(%d, less one per config key: %d here; Kafka's %d metadata records per request, one for the topic and one per partition "+
				"and config): the brokers would refuse it with POLICY_VIOLATION. Create it with %d partitions or fewer, then raise "+
				"partitions in later applies, at most %d more each: %s.",
				name, want, first, maxRecordsPerRequest-1, configs, maxRecordsPerRequest, first, maxRecordsPerRequest, partitionSteps(first, want))
	}
	if want-have <= maxRecordsPerRequest {
		return "", ""
	}
	return "Too many partitions added in one request",
		fmt.Sprintf("Topic %s has %d partitions and the configuration asks for %d: %d more, and one request adds at most %d partitions to "+
			"a topic (Kafka's %d metadata records per request): the brokers would refuse it with POLICY_VIOLATION. Grow it in steps of "+
			"at most %d, one apply each: %s.",
			name, have, want, want-have, maxRecordsPerRequest, maxRecordsPerRequest, maxRecordsPerRequest, partitionSteps(have, want))
}

// partitionSteps lists the partition counts of the applies that grow a
// topic from have to want, each at most maxRecordsPerRequest more: "10000,
// then 20000, then 25000".
func partitionSteps(have, want int64) string {
	var steps []string
	if have <= 0 {
		have = 0
	}
	for n := have; n < want; {
		n = min(n+maxRecordsPerRequest, want)
		steps = append(steps, strconv.FormatInt(n, 10))
	}
	return strings.Join(steps, ", then ")
}

// admin returns the topic operations on a cluster's brokers, logging to
// Terraform's log.
func (r *topicResource) admin(ctx context.Context, clusterID string) (*kafkatopic.Admin, error) {
	conn, err := r.data.kafkaConn(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	return &kafkatopic.Admin{
		Conn: conn,
		Log:  func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}, nil
}

// throttleOf is the replication throttle a configuration asks for.
func throttleOf(v types.Int64) int64 {
	if v.IsNull() || v.IsUnknown() {
		return kafkatopic.DefaultThrottle
	}
	return v.ValueInt64()
}

// reachHint explains what to check when the brokers did not answer.
func reachHint(a *kafkatopic.Admin) string {
	return fmt.Sprintf("\n\nThe provider talks to the brokers at their private addresses (%s): Terraform must run where it reaches them.",
		strings.Join(a.Conn.Bootstrap(), ", "))
}

// canonicalConfig returns the configured topic configs as the brokers
// spell them; a value the plan could not check (unknown then) and the
// broker's table refuses fails here, naming the key.
func canonicalConfig(m types.Map) (map[string]string, diag.Diagnostics) {
	var diags diag.Diagnostics
	cfg, _ := knownStrings(m)
	out := make(map[string]string, len(cfg))
	for k, v := range cfg {
		c, err := config.CanonicalTopic(k, v)
		if err != nil {
			diags.AddAttributeError(path.Root("config").AtMapKey(k), "Invalid topic config", err.Error())
			continue
		}
		out[k] = c
	}
	return out, diags
}

func (r *topicResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan topicModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultTopicCreateTimeout)
	resp.Diagnostics.Append(diags...)
	cfg, diags := canonicalConfig(plan.Config)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	clusterID, name := plan.ClusterID.ValueString(), plan.Name.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "topic", name)
	summary := fmt.Sprintf("Creating topic %s in cluster %s", name, clusterID)

	a, err := r.admin(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	tflog.Info(ctx, "creating topic", map[string]any{"partitions": plan.Partitions.ValueInt64(), "replication_factor": plan.ReplicationFactor.ValueInt64()})
	err = a.Create(ctx, kafkatopic.Spec{
		Name: name, Partitions: int(plan.Partitions.ValueInt64()), ReplicationFactor: int(plan.ReplicationFactor.ValueInt64()), Config: cfg,
	})
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		resp.Diagnostics.AddError(summary, fmt.Sprintf("The topic already exists. To manage it with Terraform, import it: "+
			"terraform import <resource address> %s", topicID(clusterID, name)))
		return
	case err != nil:
		resp.Diagnostics.AddError(summary, err.Error()+reachHint(a))
		return
	}
	plan.ID = types.StringValue(topicID(clusterID, name))
	tflog.Info(ctx, "topic created")
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *topicResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state topicModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, topicReadTimeout)
	defer cancel()
	clusterID, name := state.ClusterID.ValueString(), state.Name.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "topic", name)
	summary := fmt.Sprintf("Reading topic %s of cluster %s", name, clusterID)

	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the topic's cluster no longer exists, removing the topic from state")
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}
	t, err := a.Describe(ctx, name)
	if errors.Is(err, kafkatopic.ErrNotFound) {
		tflog.Warn(ctx, "topic not found, removing it from state")
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error()+reachHint(a))
		return
	}
	resp.Diagnostics.Append(readTopicInto(ctx, &state, t)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// readTopicInto refreshes the model from what the cluster says. A config
// value the brokers spell differently but that means the same keeps the
// configuration's spelling, so it is no diff.
func readTopicInto(ctx context.Context, m *topicModel, t *kafkatopic.Topic) diag.Diagnostics {
	m.ID = types.StringValue(topicID(m.ClusterID.ValueString(), t.Name))
	m.Partitions = types.Int64Value(int64(len(t.Partitions)))
	m.ReplicationFactor = types.Int64Value(int64(t.ReplicationFactor(int(m.ReplicationFactor.ValueInt64()))))
	prior, _ := knownStrings(m.Config)
	cfg := make(map[string]string, len(t.Config))
	for k, v := range t.Config {
		if k == config.LeaderThrottledReplicas || k == config.FollowerThrottledReplicas {
			// A reassignment's, while it runs (or until the next one
			// removes what an interrupted apply left): not the topic's
			// configuration.
			continue
		}
		if pv, ok := prior[k]; ok && sameTopicValue(k, pv, v) {
			v = pv
		}
		cfg[k] = v
	}
	if len(cfg) == 0 && m.Config.IsNull() {
		return nil
	}
	mv, diags := types.MapValueFrom(ctx, types.StringType, cfg)
	m.Config = mv
	return diags
}

// sameTopicValue reports whether two values of a topic config mean the
// same to the broker.
func sameTopicValue(name, a, b string) bool {
	ca, err1 := config.CanonicalTopic(name, a)
	cb, err2 := config.CanonicalTopic(name, b)
	return a == b || (err1 == nil && err2 == nil && ca == cb)
}

func (r *topicResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan, state topicModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultTopicUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	want, diags := canonicalConfig(plan.Config)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	clusterID, name := plan.ClusterID.ValueString(), plan.Name.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "topic", name)
	summary := fmt.Sprintf("Updating topic %s of cluster %s", name, clusterID)

	a, err := r.admin(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError(summary, err.Error())
		return
	}

	// Configs first: a change such as min.insync.replicas is in force
	// before partitions move.
	have, _ := knownStrings(state.Config)
	set := map[string]string{}
	for k, v := range want {
		if hv, ok := have[k]; !ok || !sameTopicValue(k, hv, v) {
			set[k] = v
		}
	}
	var remove []string
	for _, k := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[k]; !ok {
			remove = append(remove, k)
		}
	}
	if err := a.AlterConfig(ctx, name, set, remove); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("config"), summary, err.Error()+reachHint(a))
		return
	}

	if p := plan.Partitions.ValueInt64(); p > state.Partitions.ValueInt64() {
		tflog.Info(ctx, "adding partitions", map[string]any{"from": state.Partitions.ValueInt64(), "to": p})
		if err := a.AddPartitions(ctx, name, int(p)); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("partitions"), summary, err.Error()+reachHint(a))
			return
		}
	}

	if rf := plan.ReplicationFactor.ValueInt64(); rf != state.ReplicationFactor.ValueInt64() {
		tflog.Info(ctx, "changing the replication factor by reassignment", map[string]any{"from": state.ReplicationFactor.ValueInt64(), "to": rf})
		a.Throttle = throttleOf(plan.ThrottleBPS)
		if err := a.SetReplicationFactor(ctx, name, int(rf)); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("replication_factor"), summary, err.Error()+reachHint(a))
			return
		}
	}
	plan.ID = types.StringValue(topicID(clusterID, name))
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *topicResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state topicModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultTopicDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	clusterID, name := state.ClusterID.ValueString(), state.Name.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "topic", name)
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the topic's cluster no longer exists: nothing to delete")
		return
	}
	if err == nil {
		tflog.Info(ctx, "deleting topic")
		err = a.Delete(ctx, name)
		if err != nil {
			err = errors.New(err.Error() + reachHint(a))
		}
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Deleting topic %s of cluster %s", name, clusterID), err.Error())
	}
}

func (r *topicResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	clusterID, name, ok := strings.Cut(req.ID, "/")
	if !ok || !clusterIDPattern.MatchString(clusterID) || name == "" {
		resp.Diagnostics.AddError("Invalid import id",
			fmt.Sprintf("A topic is imported as <cluster_id>/<topic name>, e.g. tc-0123456789abcdef/orders; got %q.", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cluster_id"), clusterID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
