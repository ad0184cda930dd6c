package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/provider/internal/kafkascram"
)

var (
	_ resource.ResourceWithConfigure        = &scramUserResource{}
	_ resource.ResourceWithImportState      = &scramUserResource{}
	_ resource.ResourceWithConfigValidators = &scramUserResource{}
	_ resource.ResourceWithModifyPlan       = &scramUserResource{}
)

// scramUserTimeout bounds each operation: one metadata-log write and its
// arrival at every broker.
const scramUserTimeout = 2 * time.Minute

// NewScramUserResource is the tributary_scram_user resource.
func NewScramUserResource() resource.Resource { return &scramUserResource{} }

type scramUserResource struct {
	data *providerData
}

// scramUserModel is tributary_scram_user's state, attributes in schema
// order. PasswordWO is write-only: Terraform never stores it, so it is
// null in plan and state and read from the configuration.
type scramUserModel struct {
	ClusterID         types.String `tfsdk:"cluster_id"`
	ID                types.String `tfsdk:"id"`
	Iterations        types.Int64  `tfsdk:"iterations"`
	Mechanism         types.String `tfsdk:"mechanism"`
	Name              types.String `tfsdk:"name"`
	PasswordSecretARN types.String `tfsdk:"password_secret_arn"`
	PasswordSecretVer types.String `tfsdk:"password_secret_version_id"`
	PasswordWO        types.String `tfsdk:"password_wo"`
	PasswordWOVersion types.Int64  `tfsdk:"password_wo_version"`
}

func scramUserID(clusterID, name, mechanism string) string {
	return clusterID + "/" + name + "/" + mechanism
}

func (r *scramUserResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_scram_user"
}

func (r *scramUserResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if data := providerDataFrom(req.ProviderData, &resp.Diagnostics); data != nil {
		r.data = data
	}
}

func (r *scramUserResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A SCRAM user of a `tributary_cluster`: the credential a client presents on the SASL/SCRAM listener " +
			"(9096), as `User:<name>` for ACLs. The password is a **write-only** argument (Terraform 1.11 or later): Terraform " +
			"never writes it to the plan or the state. The provider salts it (PBKDF2 with a fresh random salt and `iterations`) " +
			"and sends only the salt and the salted password to the brokers (`AlterUserScramCredentials`, KIP-554), which keep " +
			"them in the cluster's metadata log; no broker, log or state ever holds the password.\n\n" +
			"Because Terraform cannot compare a password it does not store, a new password is applied when " +
			"`password_wo_version` changes. Like `tributary_topic`, the user is found from `cluster_id` alone, so it is " +
			"created in the same apply as its cluster. On a cluster that serves no SASL/SCRAM listener " +
			"(`client_authentication.sasl.scram` off) the credential is stored all the same, so that SCRAM can be turned on later, and " +
			"the apply warns that no client can log in with it yet.",
		Attributes: map[string]schema.Attribute{
			"cluster_id": schema.StringAttribute{
				MarkdownDescription: "The cluster: `tributary_cluster.<name>.cluster_id`.",
				Required:            true,
				PlanModifiers:       replace,
				Validators:          []validator.String{stringvalidator.RegexMatches(clusterIDPattern, "must be a Tributary cluster id, tc- and 16 hex digits")},
			},
			"id": schema.StringAttribute{
				MarkdownDescription: "`<cluster_id>/<name>/<mechanism>`, the import id.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"iterations": schema.Int64Attribute{
				MarkdownDescription: fmt.Sprintf("PBKDF2 iterations of the salted password, %d to %d (Kafka's bounds); default %d. "+
					"Changed in place, which salts the password from the configuration again.",
					kafkascram.MinIterations, kafkascram.MaxIterations, kafkascram.DefaultIterations),
				Optional:   true,
				Computed:   true,
				Default:    int64default.StaticInt64(kafkascram.DefaultIterations),
				Validators: []validator.Int64{int64validator.Between(kafkascram.MinIterations, kafkascram.MaxIterations)},
			},
			"mechanism": schema.StringAttribute{
				MarkdownDescription: "`SCRAM-SHA-512` (the default, as Amazon MSK) or `SCRAM-SHA-256`. A user with both is two resources.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(kafkascram.SHA512),
				PlanModifiers:       replace,
				Validators:          []validator.String{stringvalidator.OneOf(kafkascram.SHA512, kafkascram.SHA256)},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "The user name clients log in with.",
				Required:            true,
				PlanModifiers:       replace,
				Validators:          []validator.String{scramNameValidator{}},
			},
			"password_secret_arn": schema.StringAttribute{
				MarkdownDescription: "Instead of `password_wo`: the ARN of a Secrets Manager secret holding the password, as Amazon " +
					"MSK reads SCRAM secrets: a `SecretString` of JSON `{\"username\": \"<name>\", \"password\": \"...\"}`. " +
					"The provider reads it with its own credentials (`secretsmanager:GetSecretValue`, and `DescribeSecret` at plan " +
					"time), salts it as it salts `password_wo`, and keeps only the version it applied " +
					"(`password_secret_version_id`): a new version of the secret (a rotation) shows in the next plan as an update.",
				Optional: true,
			},
			"password_secret_version_id": schema.StringAttribute{
				MarkdownDescription: "The version of `password_secret_arn` whose password the brokers hold (never the password).",
				Computed:            true,
			},
			"password_wo": schema.StringAttribute{
				MarkdownDescription: "The password, write-only: never in plan or state. Read from the configuration on create and " +
					"whenever `password_wo_version` or `iterations` changes (use an ephemeral resource or a variable, not a literal). " +
					"Exactly one of `password_wo` and `password_secret_arn` is set.",
				Optional:   true,
				WriteOnly:  true,
				Sensitive:  true,
				Validators: []validator.String{stringvalidator.LengthAtLeast(8)},
			},
			"password_wo_version": schema.Int64Attribute{
				MarkdownDescription: "Any number, with `password_wo`; change it to apply a new `password_wo` (Terraform cannot see a change of a value it does not store).",
				Optional:            true,
			},
		},
	}
}

// admin returns the SCRAM operations on a cluster's brokers.
func (r *scramUserResource) admin(ctx context.Context, clusterID string) (*kafkascram.Admin, error) {
	conn, err := r.data.kafkaConn(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	return &kafkascram.Admin{Conn: conn, Log: func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) }}, nil
}

// ConfigValidators: the password comes from exactly one place.
func (r *scramUserResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	return []resource.ConfigValidator{
		resourcevalidator.ExactlyOneOf(path.MatchRoot("password_wo"), path.MatchRoot("password_secret_arn")),
		resourcevalidator.RequiredTogether(path.MatchRoot("password_wo"), path.MatchRoot("password_wo_version")),
	}
}

// ModifyPlan plans an update when password_secret_arn's current version
// is not the one applied (the secret was rotated): Terraform cannot see
// that in the configuration.
func (r *scramUserResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	var plan, state scramUserModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.PasswordSecretARN.IsNull() {
		// A password_wo user has no secret version, before and after an
		// update (set writes null): not "(known after apply)" in every
		// password or iterations change.
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("password_secret_version_id"), types.StringNull())...)
		return
	}
	if plan.PasswordSecretARN.IsUnknown() || r.data == nil || r.data.aws == nil {
		return
	}
	if !plan.PasswordSecretARN.Equal(state.PasswordSecretARN) {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("password_secret_version_id"), types.StringUnknown())...)
		return
	}
	current, err := r.secretVersion(ctx, plan.PasswordSecretARN.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("password_secret_arn"), "Reading the password secret", err.Error())
		return
	}
	if current != state.PasswordSecretVer.ValueString() {
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("password_secret_version_id"), types.StringUnknown())...)
	}
}

// secretVersion is the AWSCURRENT version of a secret, asked without
// reading its value.
func (r *scramUserResource) secretVersion(ctx context.Context, arn string) (string, error) {
	out, err := r.data.aws.SecretsManager.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("describing secret %s: %w", arn, err)
	}
	for id, stages := range out.VersionIdsToStages {
		if slices.Contains(stages, "AWSCURRENT") {
			return id, nil
		}
	}
	return "", fmt.Errorf("secret %s has no current version (AWSCURRENT)", arn)
}

// secretPassword reads the password of user name from a secret in Amazon
// MSK's format, and the version it came from.
func (r *scramUserResource) secretPassword(ctx context.Context, arn, name string) (string, string, error) {
	out, err := r.data.aws.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", "", fmt.Errorf("reading secret %s: %w", arn, err)
	}
	var v struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if out.SecretString == nil || json.Unmarshal([]byte(*out.SecretString), &v) != nil || v.Username == nil || v.Password == nil {
		return "", "", fmt.Errorf(`secret %s is not a SCRAM secret: its SecretString must be JSON {"username": %q, "password": "..."}`, arn, name)
	}
	switch {
	case *v.Username != name:
		return "", "", fmt.Errorf("secret %s is for user %q, not %q", arn, *v.Username, name)
	case len(*v.Password) < 8:
		return "", "", fmt.Errorf("the password in secret %s is shorter than 8 characters", arn)
	}
	return *v.Password, aws.ToString(out.VersionId), nil
}

// password reads the password: the write-only one from the
// configuration, or the secret's (then m records the secret's version).
func (r *scramUserResource) password(ctx context.Context, config tfsdk.Config, m *scramUserModel) (string, diag.Diagnostics) {
	var diags diag.Diagnostics
	if arn := m.PasswordSecretARN; !arn.IsNull() && !arn.IsUnknown() {
		pw, version, err := r.secretPassword(ctx, arn.ValueString(), m.Name.ValueString())
		if err != nil {
			diags.AddAttributeError(path.Root("password_secret_arn"), "Reading the password secret", err.Error())
			return "", diags
		}
		m.PasswordSecretVer = types.StringValue(version)
		return pw, diags
	}
	var pw types.String
	diags = config.GetAttribute(ctx, path.Root("password_wo"), &pw)
	if !diags.HasError() && (pw.IsNull() || pw.IsUnknown()) {
		diags.AddAttributeError(path.Root("password_wo"), "Missing password", "password_wo must be known when the credential is set.")
	}
	m.PasswordSecretVer = types.StringNull()
	return pw.ValueString(), diags
}

// set salts the configured password into the user's credential.
func (r *scramUserResource) set(ctx context.Context, config tfsdk.Config, m *scramUserModel, summary string, diags *diag.Diagnostics) {
	pw, d := r.password(ctx, config, m)
	diags.Append(d...)
	if diags.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, scramUserTimeout)
	defer cancel()
	clusterID := m.ClusterID.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "user", m.Name.ValueString())
	a, err := r.admin(ctx, clusterID)
	if err == nil {
		err = a.Set(ctx, m.Name.ValueString(), m.Mechanism.ValueString(), int(m.Iterations.ValueInt64()), pw)
	}
	if err != nil {
		diags.AddError(summary, err.Error())
		return
	}
	m.ID = types.StringValue(scramUserID(clusterID, m.Name.ValueString(), m.Mechanism.ValueString()))
	m.PasswordWO = types.StringNull()
	if w := r.unservedMechanism(ctx, clusterID, m.Mechanism.ValueString()); w != "" {
		diags.AddAttributeWarning(path.Root("mechanism"), "No listener accepts this credential", w)
	}
}

// unservedMechanism explains, when no broker of the cluster serves a
// listener that accepts mechanism, that the credential is stored but
// nobody can log in with it (MSK refuses SCRAM secrets on a cluster
// without SASL/SCRAM; the brokers keep credentials whatever their
// listeners, so the cluster may turn SCRAM on later). Empty when one
// does, or when the listeners cannot be read (the stored credential is
// not in doubt then).
func (r *scramUserResource) unservedMechanism(ctx context.Context, clusterID, mechanism string) string {
	_, docs, err := r.data.clusterDocuments(ctx, clusterID)
	if err != nil {
		tflog.Warn(ctx, "could not read the brokers' listeners to check the SCRAM mechanism is served", map[string]any{"error": err.Error()})
		return ""
	}
	for _, doc := range docs {
		for _, l := range doc.Listeners {
			if slices.Contains(l.SASLMechanisms, mechanism) {
				return ""
			}
		}
	}
	return fmt.Sprintf("The %s credential is stored in cluster %s, but no broker serves a listener that accepts %s, so no client can "+
		"authenticate with it. Set client_authentication { sasl { scram = true } } on the cluster (TLS to clients) to serve SASL/SCRAM on port 9096.",
		mechanism, clusterID, mechanism)
}

func (r *scramUserResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan scramUserModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	summary := fmt.Sprintf("Creating SCRAM user %s in cluster %s", plan.Name.ValueString(), plan.ClusterID.ValueString())
	id := scramUserID(plan.ClusterID.ValueString(), plan.Name.ValueString(), plan.Mechanism.ValueString())
	release, ok := r.data.creates.claim(id)
	if !ok {
		resp.Diagnostics.AddError(summary, duplicateDeclaration("SCRAM credential", id))
		return
	}
	// A credential already there belongs to someone else: refuse rather
	// than replace its password.
	if a, err := r.admin(ctx, plan.ClusterID.ValueString()); err == nil {
		if _, err := a.Iterations(ctx, plan.Name.ValueString(), plan.Mechanism.ValueString()); err == nil {
			resp.Diagnostics.AddError(summary, fmt.Sprintf("The user already has a %s credential. To manage it with Terraform, import it: "+
				"terraform import <resource address> %s", plan.Mechanism.ValueString(), id))
			release()
			return
		}
	}
	r.set(ctx, req.Config, &plan, summary, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		release()
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *scramUserResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state scramUserModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, scramUserTimeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "user", state.Name.ValueString())
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the user's cluster no longer exists, removing the user from state")
		resp.State.RemoveResource(ctx)
		return
	}
	var n int
	if err == nil {
		n, err = a.Iterations(ctx, state.Name.ValueString(), state.Mechanism.ValueString())
	}
	if errors.Is(err, kafkascram.ErrNotFound) {
		tflog.Warn(ctx, "SCRAM credential not found, removing the user from state")
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Reading SCRAM user %s of cluster %s", state.Name.ValueString(), clusterID), err.Error())
		return
	}
	state.Iterations = types.Int64Value(int64(n))
	state.ID = types.StringValue(scramUserID(clusterID, state.Name.ValueString(), state.Mechanism.ValueString()))
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update salts the configured password again: only password_wo_version
// and iterations change in place.
func (r *scramUserResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var plan scramUserModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	r.set(ctx, req.Config, &plan, fmt.Sprintf("Updating SCRAM user %s of cluster %s", plan.Name.ValueString(), plan.ClusterID.ValueString()), &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *scramUserResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !r.data.ready(&resp.Diagnostics) {
		return
	}
	var state scramUserModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, scramUserTimeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(tflog.SetField(ctx, "cluster_id", clusterID), "user", state.Name.ValueString())
	a, err := r.admin(ctx, clusterID)
	if errors.Is(err, errNoBrokers) {
		tflog.Warn(ctx, "the user's cluster no longer exists: nothing to delete")
		return
	}
	if err == nil {
		err = a.Delete(ctx, state.Name.ValueString(), state.Mechanism.ValueString())
	}
	if errors.Is(err, kafkascram.ErrNotFound) {
		tflog.Warn(ctx, "the SCRAM credential was already deleted")
		return
	}
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Deleting SCRAM user %s of cluster %s", state.Name.ValueString(), clusterID), err.Error())
	}
}

// ImportState takes <cluster_id>/<name>/<mechanism>. The password is not
// readable: the next apply salts the configured one (password_wo_version
// is unknown to the imported state, so the plan shows an update).
func (r *scramUserResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	first, mech, ok := cutLast(req.ID, "/")
	clusterID, name, ok2 := strings.Cut(first, "/")
	if !ok || !ok2 || !clusterIDPattern.MatchString(clusterID) || name == "" || (mech != kafkascram.SHA512 && mech != kafkascram.SHA256) {
		resp.Diagnostics.AddError("Invalid import id",
			fmt.Sprintf("A SCRAM user is imported as <cluster_id>/<name>/<mechanism>, e.g. tc-0123456789abcdef/alice/SCRAM-SHA-512; got %q.", req.ID))
		return
	}
	for attr, v := range map[string]string{"id": req.ID, "cluster_id": clusterID, "name": name, "mechanism": mech} {
		resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root(attr), v)...)
	}
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// scramNameValidator applies the brokers' own check of a SCRAM user name
// at plan time.
type scramNameValidator struct{}

func (scramNameValidator) Description(context.Context) string {
	return "a SCRAM user name the brokers accept: not empty, valid UTF-8, no control characters"
}

func (v scramNameValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (scramNameValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := scram.ValidateUsername(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid SCRAM user name", err.Error())
	}
}
