package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkacheck"
	"github.com/tributary/tributary/provider/internal/kafkatopic"
)

var (
	_ resource.ResourceWithConfigure      = &clusterResource{}
	_ resource.ResourceWithImportState    = &clusterResource{}
	_ resource.ResourceWithModifyPlan     = &clusterResource{}
	_ resource.ResourceWithValidateConfig = &clusterResource{}
)

// Default operation timeouts. Creates take seconds in the local cloud and a
// few minutes on AWS (instance boot); rolling a large cluster takes longer.
const (
	defaultCreateTimeout = 30 * time.Minute
	defaultUpdateTimeout = 90 * time.Minute
	defaultDeleteTimeout = 30 * time.Minute
	// reachWindow is how long the provider tries to reach any broker
	// before concluding it runs outside the brokers' network.
	reachWindow = 90 * time.Second
	// stopPatience is how long a roll waits for stopping the next broker to
	// become safe (ISR membership settles after each restart) before it
	// stops with the reason.
	stopPatience = 3 * time.Minute
)

// NewClusterResource is the tributary_cluster resource.
func NewClusterResource() resource.Resource { return &clusterResource{} }

type clusterResource struct {
	data *providerData
}

func (r *clusterResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster"
}

func (r *clusterResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if data := providerDataFrom(req.ProviderData, &resp.Diagnostics); data != nil {
		r.data = data
	}
}

// configured reports an error when the provider has no AWS clients (its
// Configure failed or has not run); every CRUD method checks it first.
func (r *clusterResource) configured(diags *diag.Diagnostics) bool {
	return r.data.ready(diags)
}

func (r *clusterResource) fleet() *fleet.Fleet {
	return &fleet.Fleet{
		EC2: r.data.aws.EC2, KMS: r.data.aws.KMS, IAM: r.data.aws.IAM, AutoScaling: r.data.aws.AutoScaling,
		Log: func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}
}

// fieldsOf turns slog-style key/value pairs into tflog fields.
func fieldsOf(attrs []any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(attrs); i += 2 {
		out[fmt.Sprint(attrs[i])] = attrs[i+1]
	}
	return out
}

func newClusterID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a cluster id: %w", err)
	}
	return "tc-" + hex.EncodeToString(b), nil
}

func (r *clusterResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var plan clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	started := time.Now()

	clusterID, err := newClusterID()
	if err != nil {
		resp.Diagnostics.AddError("Creating Tributary cluster", err.Error())
		return
	}
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	tflog.Info(ctx, "creating Tributary cluster", map[string]any{"name": plan.Name.ValueString()})

	spec, diags := r.specFromModel(ctx, &plan, clusterID)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.secure(ctx, spec, nil, resp.Private)...)
	if resp.Diagnostics.HasError() {
		return
	}
	f := r.fleet()
	observed := &fleet.Observed{ClusterID: clusterID}
	resolved, ensureErr := f.Ensure(ctx, &spec.Spec, observed)

	// Whatever happened, record the cluster id and what exists: a failed
	// create leaves state that `destroy` removes (everything is found by
	// tag), and that the next apply replaces.
	plan.ClusterID = types.StringValue(clusterID)
	plan.ID = types.StringValue(clusterID)
	if ensureErr != nil {
		resp.Diagnostics.AddError("Creating Tributary cluster "+clusterID,
			ensureErr.Error()+"\n\nEverything created so far is tagged tributary:cluster-id="+clusterID+
				"; `terraform destroy` removes it, `terraform apply` replaces it.")
		r.saveAfterFailure(ctx, &plan, &resp.State, &resp.Diagnostics)
		return
	}
	resp.Diagnostics.Append(r.setObserved(ctx, &plan, spec, observed, resolved)...)
	if resp.Diagnostics.HasError() {
		return
	}
	tflog.Info(ctx, "brokers running", map[string]any{"elapsed": time.Since(started).Round(time.Millisecond).String()})
	resp.Diagnostics.Append(r.ensureMonitoring(ctx, &plan, false, clusterID, spec.BrokerCount())...)
	if resp.Diagnostics.HasError() {
		r.saveAfterFailure(ctx, &plan, &resp.State, &resp.Diagnostics)
		return
	}
	if plan.WaitForBrokers.ValueBool() {
		resp.Diagnostics.Append(r.waitReady(ctx, spec, observed, r.data.checker(clusterID, observed.Brokers, spec.Access, nil))...)
	}
	if !resp.Diagnostics.HasError() {
		reachable := plan.WaitForBrokers.ValueBool() && !hasWarning(resp.Diagnostics, warnUnreachable)
		resp.Diagnostics.Append(applyClusterConfig(ctx, r.data.checker(clusterID, observed.Brokers, spec.Access, nil), reachable, spec, nil)...)
	}
	if resp.Diagnostics.HasError() {
		r.saveAfterFailure(ctx, &plan, &resp.State, &resp.Diagnostics)
		return
	}
	tflog.Info(ctx, "Tributary cluster created", map[string]any{"elapsed": time.Since(started).Round(time.Millisecond).String()})
	estimateCost(ctx, &plan, r.data.aws.Region) // what the plan could not know yet is known now
	reachable := plan.WaitForBrokers.ValueBool() && !hasWarning(resp.Diagnostics, warnUnreachable)
	plan.BrokerLoad, diags = r.brokerLoad(ctx, r.kafkaConnIf(reachable, clusterID, observed.Brokers, spec.Access))
	resp.Diagnostics.Append(diags...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// saveAfterFailure stores a partial state with every unknown resolved, so
// Terraform keeps the cluster id (and marks the resource tainted).
func (r *clusterResource) saveAfterFailure(ctx context.Context, m *clusterModel, state stateSetter, diags *diag.Diagnostics) {
	if o, err := r.fleet().Observe(ctx, m.ClusterID.ValueString()); err == nil {
		r.fillComputed(ctx, m, o, "")
	}
	nullUnknowns(m)
	diags.Append(state.Set(ctx, m)...)
}

type stateSetter interface {
	Set(ctx context.Context, val any) diag.Diagnostics
}

// nullUnknowns replaces values still unknown after a failed create.
func nullUnknowns(m *clusterModel) {
	for _, s := range []*types.String{&m.ARN, &m.BootstrapBrokers, &m.BootstrapBrokersTLS, &m.BootstrapBrokersSASLSCRAM, &m.BootstrapBrokersSASLIAM, &m.CertificateAuthorityPEM,
		&m.SecurityGroupID, &m.KMSKeyARN, &m.InstanceProfile, &m.ImageID, &m.BrokerVersion} {
		if s.IsUnknown() {
			*s = types.StringNull()
		}
	}
	if m.BrokerNodes.IsUnknown() {
		m.BrokerNodes = types.ListNull(brokerNodeObjectType)
	}
	if m.BrokerLoad.IsUnknown() {
		m.BrokerLoad = types.ListNull(brokerLoadObjectType)
	}
	if m.SubnetIDs.IsUnknown() {
		m.SubnetIDs = types.ListNull(types.StringType)
	}
	if m.TagsAll.IsUnknown() {
		m.TagsAll = types.MapNull(types.StringType)
	}
}

// fillComputed sets the computed attributes from what exists in AWS.
func (r *clusterResource) fillComputed(ctx context.Context, m *clusterModel, o *fleet.Observed, keyARN string) diag.Diagnostics {
	var diags diag.Diagnostics
	sec, d := m.security(ctx)
	diags.Append(d...)
	nodes, d := brokerNodesValue(o.Brokers, sec.listeners())
	diags.Append(d...)
	m.BrokerNodes = nodes
	m.setBootstrap(sec.listeners(), o.Brokers)
	m.ARN = types.StringValue(r.clusterARN(m.Name.ValueString(), o.ClusterID))
	if o.SecurityGroupID != "" {
		m.SecurityGroupID = types.StringValue(o.SecurityGroupID)
	}
	switch {
	case keyARN != "":
		m.KMSKeyARN = types.StringValue(keyARN)
	case o.KeyARN != "":
		m.KMSKeyARN = types.StringValue(o.KeyARN)
	}
	if m.InstanceProfile.IsUnknown() && len(o.ProfileNames) > 0 {
		m.InstanceProfile = types.StringValue(fleet.ProfileStem(o.ClusterID))
	}
	return diags
}

// setObserved fills the computed attributes after a successful Ensure.
func (r *clusterResource) setObserved(ctx context.Context, m *clusterModel, spec *clusterSpec, o *fleet.Observed, res *fleet.Resolved) diag.Diagnostics {
	var diags diag.Diagnostics
	diags.Append(r.fillComputed(ctx, m, o, res.KeyARN)...)
	m.CertificateAuthorityPEM = types.StringValue("")
	if spec.CA != nil {
		m.CertificateAuthorityPEM = types.StringValue(spec.CA.CertPEM)
	}
	m.InstanceProfile = types.StringValue(spec.InstanceProfile)
	if spec.InstanceProfile == "" {
		m.InstanceProfile = types.StringValue(fleet.ProfileStem(spec.ClusterID))
	}
	ids := make([]attr.Value, 0, len(spec.Subnets))
	for _, s := range spec.Subnets {
		ids = append(ids, types.StringValue(s.ID))
	}
	subnets, d := types.ListValue(types.StringType, ids)
	diags.Append(d...)
	m.SubnetIDs = subnets
	tagsAll, d := types.MapValueFrom(ctx, types.StringType, spec.Tags)
	diags.Append(d...)
	m.TagsAll = tagsAll
	return diags
}

// warnUnreachable is the summary of the warning that the brokers could not
// be reached from where Terraform runs.
const warnUnreachable = "Brokers not verified"

// waitReady waits until every broker serves Kafka metadata that lists every
// broker and a controller; brokers unreachable from here become a warning.
func (r *clusterResource) waitReady(ctx context.Context, spec *clusterSpec, o *fleet.Observed, checker *kafkacheck.Checker) diag.Diagnostics {
	var diags diag.Diagnostics
	tflog.Info(ctx, "waiting for the brokers to form one cluster", map[string]any{"brokers": len(o.Brokers)})
	err := checker.WaitReady(ctx, reachWindow)
	switch {
	case errors.Is(err, kafkacheck.ErrUnreachable):
		diags.AddWarning(warnUnreachable,
			"The instances run, but no broker address was reachable from where Terraform runs, so the provider could not check that "+
				"the brokers serve Kafka: "+err.Error()+". Run Terraform from inside the VPC (or set wait_for_brokers = false to skip the check).")
	case err != nil:
		diags.AddError("Waiting for the brokers of cluster "+spec.ClusterID, err.Error()+"\n\n"+r.consoleHints(ctx, o))
	}
	return diags
}

// consoleHints returns the tail of each broker's console output, which shows
// why a boot failed.
func (r *clusterResource) consoleHints(ctx context.Context, o *fleet.Observed) string {
	var sb strings.Builder
	for _, b := range o.Brokers {
		if b.InstanceID == "" {
			continue
		}
		out, err := r.data.aws.EC2.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(b.InstanceID), Latest: aws.Bool(true)})
		if err != nil || out.Output == nil {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		fmt.Fprintf(&sb, "Console of broker %d (%s), last lines:\n  %s\n", b.NodeID, b.InstanceID, strings.Join(lines, "\n  "))
	}
	return sb.String()
}

func (r *clusterResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var state clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	clusterID := state.ClusterID.ValueString()
	if clusterID == "" {
		clusterID = state.ID.ValueString()
	}
	o, err := r.fleet().Observe(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError("Reading Tributary cluster "+clusterID, err.Error())
		return
	}
	if o.Empty() {
		tflog.Warn(ctx, "Tributary cluster not found, removing it from state", map[string]any{"cluster_id": clusterID})
		resp.State.RemoveResource(ctx)
		return
	}
	importing := state.Name.IsNull()
	resp.Diagnostics.Append(r.readInto(ctx, &state, o)...)
	if resp.Diagnostics.HasError() {
		return
	}
	state.CertificateValidity = certificateValidityValue(state.CertificateValidity)
	// Not on import: whether the brokers are reachable from here is the
	// configuration's to say (wait_for_brokers), which an import lacks.
	state.BrokerLoad = types.ListNull(brokerLoadObjectType)
	running := getMoving(ctx, req.Private)
	if !importing && state.WaitForBrokers.ValueBool() {
		if conn, err := r.data.kafkaConn(ctx, clusterID); err == nil {
			load, d := r.brokerLoad(ctx, conn)
			resp.Diagnostics.Append(d...)
			state.BrokerLoad = load
			// Dynamic settings changed with kafka-configs outside
			// Terraform show in the plan (static ones are in the boot
			// documents, which only the provider writes).
			if live, err := (&kafkacheck.Checker{Conn: conn}).DynamicClusterConfig(ctx); err != nil {
				tflog.Warn(ctx, "could not read the brokers' dynamic settings; broker_config keeps its last known values", map[string]any{"error": err.Error()})
			} else {
				resp.Diagnostics.Append(readDynamicConfig(ctx, &state, live)...)
			}
			if running != nil {
				admin := &kafkatopic.Admin{Conn: conn}
				resp.Diagnostics.Append(setMoving(ctx, resp.Private, followMoving(ctx, admin, running))...)
			}
		}
	}
	if importing {
		resp.Diagnostics.Append(r.importMonitoring(ctx, &state, clusterID)...)
	} else {
		resp.Diagnostics.Append(r.readMonitoring(ctx, &state, clusterID, len(o.Brokers))...)
	}
	if state.EstimatedWriteMiBps.IsNull() {
		state.EstimatedWriteMiBps = types.Float64Value(defaultEstimatedWriteMiBps) // an imported cluster
	}
	estimateCost(ctx, &state, r.data.aws.Region)
	// What the next apply must do although the state's settings may match
	// the configuration (a roll that stopped halfway, brokers of an earlier
	// provider, groups changed outside Terraform) is remembered privately,
	// so the next plan is not empty.
	resp.Diagnostics.Append(restoreProviderSecrets(ctx, r.data.aws.KMS, &state, o, resp.Private)...)
	p := pendingWork(o)
	if state.WaitForBrokers.ValueBool() {
		p.Renew = r.certificatesDue(ctx, o)
	}
	if sec, d := state.security(ctx); !d.HasError() && (sec.SCRAM || sec.mutualTLS()) {
		p.Login = lacksLogin(o)
	}
	var mark []byte
	if !p.empty() {
		mark, _ = json.Marshal(p)
	}
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateRollKey, mark)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// privateRollKey is the private-state key of pending.
const privateRollKey = "roll"

// pending is work the next apply has to do that the settings do not show.
type pending struct {
	// Incomplete: brokers run instances launched from an older version of
	// their launch template (a rolling replacement stopped halfway).
	Incomplete bool `json:"incomplete,omitempty"`
	// Legacy: brokers run on instances of no Auto Scaling group, launched
	// by an earlier provider; the apply moves them into their groups.
	Legacy bool `json:"legacy,omitempty"`
	// Repair: a broker's group is missing or no longer a group of one.
	Repair bool `json:"repair,omitempty"`
	// Renew: the brokers whose certificates have passed two thirds of
	// their validity; the apply gives them new ones.
	Renew []int32 `json:"renew,omitempty"`
	// SharedRole: brokers launch with the one role all brokers of an older
	// cluster shared, which may decrypt every broker's secrets; the apply
	// gives each broker its own.
	SharedRole bool `json:"shared_role,omitempty"`
	// Login: the brokers' boot documents lack the provider's own login
	// (SCRAM or client certificate) that the settings call for (a cluster
	// of an earlier provider); the apply rolls them with it.
	Login bool `json:"login,omitempty"`
}

func (p pending) empty() bool {
	return !p.Incomplete && !p.Legacy && !p.Repair && len(p.Renew) == 0 && !p.SharedRole && !p.Login
}

func pendingWork(o *fleet.Observed) pending {
	var p pending
	for _, b := range o.Brokers {
		switch {
		case b.Legacy():
			p.Legacy = true
		case b.GroupName == "":
			p.Repair = true
		case b.GroupMin != 1 || b.GroupMax != 1 || b.GroupDesired != 1 || b.GroupSubnets != b.SubnetID:
			p.Repair = true
		case b.NeedsRoll():
			p.Incomplete = true
		}
		if b.Launch != nil && fleet.SharedProfile(o.ClusterID, b.Launch.InstanceProfile) {
			p.SharedRole = true
		}
	}
	return p
}

// launchedFrom returns the image and instance type a broker runs, or would
// run once its group replaced its instance.
func launchedFrom(b *fleet.Broker) (image, instanceType string, ok bool) {
	switch {
	case b.GroupName != "" && b.Launch != nil:
		return b.Launch.ImageID, b.Launch.InstanceType, true
	case b.HasLiveInstance():
		return b.ImageID, b.InstanceType, true
	}
	return "", "", false
}

// readInto refreshes the model from what exists. Settings the user gave keep
// their configured form where AWS has the same meaning (storage size is a
// floor); an imported cluster gets every setting from AWS.
func (r *clusterResource) readInto(ctx context.Context, m *clusterModel, o *fleet.Observed) diag.Diagnostics {
	var diags diag.Diagnostics
	importing := m.Name.IsNull() // an import sets only the id
	clusterID := o.ClusterID
	m.ClusterID = types.StringValue(clusterID)
	m.ID = types.StringValue(clusterID)
	if o.Name != "" {
		m.Name = types.StringValue(o.Name)
	}
	diags.Append(r.fillComputed(ctx, m, o, "")...)
	if m.KMSKeyARN.IsNull() || m.KMSKeyARN.IsUnknown() {
		for _, b := range o.Brokers {
			if b.VolumeKMSKeyID != "" {
				m.KMSKeyARN = types.StringValue(b.VolumeKMSKeyID)
				break
			}
		}
	}

	// Launch settings from a broker's launch template version (what its
	// group launches) or, for an earlier provider's broker, its instance:
	// the first that differs from the state (a change made outside
	// Terraform shows as a diff), else the first. A half-finished roll is
	// caught by pendingWork instead.
	var live *fleet.Broker
	for i := range o.Brokers {
		b := &o.Brokers[i]
		image, instanceType, ok := launchedFrom(b)
		if !ok {
			continue
		}
		if live == nil {
			live = b
		}
		if instanceType != m.InstanceType.ValueString() || image != m.ImageID.ValueString() {
			live = b
			break
		}
	}
	if live != nil {
		image, instanceType, _ := launchedFrom(live)
		profile := live.InstanceProfile
		if live.GroupName != "" && live.Launch != nil {
			profile = live.Launch.InstanceProfile
		}
		m.InstanceType = types.StringValue(instanceType)
		if m.ImageID.ValueString() != image {
			m.ImageID = types.StringValue(image)
			if img, err := describeImage(ctx, r.data.aws.EC2, image); err == nil && img.Version != "" {
				m.BrokerVersion = types.StringValue(img.Version)
			}
		}
		switch name := profile[strings.LastIndex(profile, "/")+1:]; {
		case name == "":
		case fleet.OwnsProfile(clusterID, name):
			// The brokers' own profiles (or an older cluster's shared one).
			m.InstanceProfile = types.StringValue(fleet.ProfileStem(clusterID))
		default:
			m.InstanceProfile = types.StringValue(name)
		}
		var userData []byte
		if live.GroupName != "" && live.Launch != nil {
			userData = live.Launch.UserData
		} else {
			userData = r.instanceUserData(ctx, live.InstanceID)
		}
		if userData != nil {
			diags.Append(r.readBootDocument(ctx, m, live.NodeID, userData, o.Brokers, importing)...)
		}
	}

	// Broker count and subnets.
	azs := map[string]bool{}
	var subnetOrder []string
	for _, b := range o.Brokers {
		azs[b.AvailabilityZone] = true
		if int(b.NodeID) <= len(o.Brokers) && !slices.Contains(subnetOrder, b.SubnetID) && b.SubnetID != "" {
			subnetOrder = append(subnetOrder, b.SubnetID)
		}
	}
	if len(azs) > 0 && len(o.Brokers)%len(azs) == 0 {
		m.BrokersPerAZ = types.Int64Value(int64(len(o.Brokers) / len(azs)))
	}
	if len(subnetOrder) > 0 && (m.SubnetIDs.IsNull() || m.SubnetIDs.IsUnknown()) {
		l, d := types.ListValueFrom(ctx, types.StringType, subnetOrder)
		diags.Append(d...)
		m.SubnetIDs = l
	}

	// Security groups on the ENIs besides the cluster's own.
	if len(o.Brokers) > 0 {
		var extra []string
		for _, g := range o.Brokers[0].SecurityGroupIDs {
			if g != o.SecurityGroupID {
				extra = append(extra, g)
			}
		}
		if len(extra) > 0 || !m.SecurityGroupIDs.IsNull() {
			s, d := types.SetValueFrom(ctx, types.StringType, extra)
			diags.Append(d...)
			m.SecurityGroupIDs = s
		}
	}
	// Client CIDRs from the security group's rules.
	if len(o.ClientCIDRs) > 0 || !m.ClientCIDRBlocks.IsNull() {
		s, d := types.SetValueFrom(ctx, types.StringType, o.ClientCIDRs)
		diags.Append(d...)
		m.ClientCIDRBlocks = s
	}

	// Monitoring CIDRs from the rules of the open monitoring ports.
	if len(o.MonitoringCIDRs) > 0 || !m.MonitoringCIDRBlocks.IsNull() {
		s, d := types.SetValueFrom(ctx, types.StringType, o.MonitoringCIDRs)
		diags.Append(d...)
		m.MonitoringCIDRBlocks = s
	}

	diags.Append(r.readStorage(ctx, m, o)...)

	// Tags: the provider's default tags are not the resource's own.
	own := map[string]string{}
	for k, v := range o.Tags {
		if dv, ok := r.data.defaultTags[k]; !ok || dv != v {
			own[k] = v
		}
	}
	if len(own) > 0 || !m.Tags.IsNull() {
		t, d := types.MapValueFrom(ctx, types.StringType, own)
		diags.Append(d...)
		m.Tags = t
	}
	all, d := types.MapValueFrom(ctx, types.StringType, o.Tags)
	diags.Append(d...)
	m.TagsAll = all
	if m.WaitForBrokers.IsNull() {
		m.WaitForBrokers = types.BoolValue(true)
	}
	if m.Rebalance.IsNull() {
		m.Rebalance = types.StringValue(rebalanceWait)
	}
	return diags
}

// readStorage treats storage.volume_size as a floor: volumes grown outside
// Terraform are not a diff.
func (r *clusterResource) readStorage(ctx context.Context, m *clusterModel, o *fleet.Observed) diag.Diagnostics {
	if len(o.Brokers) == 0 {
		return nil
	}
	minSize := o.Brokers[0].VolumeSizeGiB
	for _, b := range o.Brokers {
		minSize = min(minSize, b.VolumeSizeGiB)
	}
	b0 := o.Brokers[0]
	var sm storageModel
	if m.Storage.IsNull() || m.Storage.IsUnknown() {
		// Imported, or never configured: only record what differs from the defaults.
		if minSize == defaultVolumeSizeGiB && b0.VolumeType == defaultVolumeType && (o.KeyARN != "" || b0.VolumeKMSKeyID == "") && len(b0.VolumeTags) == 0 {
			return nil
		}
		sm = storageModel{
			VolumeSize: types.Int64Value(int64(minSize)), VolumeType: types.StringNull(),
			IOPS: types.Int64Null(), Throughput: types.Int64Null(), KMSKeyARN: types.StringNull(),
			Autoscaling: types.ObjectNull(storageAutoscalingAttrTypes),
		}
		if b0.VolumeType != defaultVolumeType {
			sm.VolumeType = types.StringValue(b0.VolumeType)
		}
		if o.KeyARN == "" && b0.VolumeKMSKeyID != "" {
			sm.KMSKeyARN = types.StringValue(b0.VolumeKMSKeyID)
		}
	} else {
		diags := m.Storage.As(ctx, &sm, objectAsOptions)
		if diags.HasError() {
			return diags
		}
		if sm.VolumeSize.IsNull() {
			if minSize < defaultVolumeSizeGiB {
				sm.VolumeSize = types.Int64Value(int64(minSize))
			}
		} else if int64(minSize) < sm.VolumeSize.ValueInt64() {
			sm.VolumeSize = types.Int64Value(int64(minSize))
		}
		if !sm.VolumeType.IsNull() || b0.VolumeType != defaultVolumeType {
			sm.VolumeType = types.StringValue(b0.VolumeType)
		}
		if !sm.IOPS.IsNull() {
			sm.IOPS = types.Int64Value(int64(b0.VolumeIOPS))
		}
		if !sm.Throughput.IsNull() {
			sm.Throughput = types.Int64Value(int64(b0.VolumeThroughput))
		}
	}
	// Storage autoscaling is what the volumes' tags say (the brokers read
	// them): tags changed outside Terraform show as a diff.
	auto, diags := autoscalingFromTags(b0.VolumeTags)
	if diags.HasError() {
		return diags
	}
	sm.Autoscaling = auto
	obj, d := types.ObjectValueFrom(ctx, storageAttrTypes, sm)
	diags.Append(d...)
	m.Storage = obj
	return diags
}

// instanceUserData reads the user data of an instance launched by an
// earlier provider; nil when it cannot.
func (r *clusterResource) instanceUserData(ctx context.Context, instanceID string) []byte {
	out, err := r.data.aws.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(instanceID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	if err != nil || out.UserData == nil {
		tflog.Warn(ctx, "could not read the user data of a broker", map[string]any{"instance_id": instanceID, "error": fmt.Sprint(err)})
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
	if err != nil {
		return nil
	}
	return raw
}

// autoscalingFromTags reads storage.autoscaling from a volume's tags (null
// when they do not turn it on).
func autoscalingFromTags(tags map[string]string) (types.Object, diag.Diagnostics) {
	target, err1 := strconv.Atoi(tags[fleet.TagAutoscalingTarget])
	maxSize, err2 := strconv.Atoi(tags[fleet.TagAutoscalingMaxSize])
	if err1 != nil || err2 != nil {
		return types.ObjectNull(storageAutoscalingAttrTypes), nil
	}
	return types.ObjectValue(storageAutoscalingAttrTypes, map[string]attr.Value{
		"max_volume_size":    types.Int64Value(int64(maxSize)),
		"target_utilization": types.Int64Value(int64(target)),
	})
}

// readDynamicConfig refreshes broker_config's dynamic settings from the
// cluster-wide values the brokers hold (live): one changed or removed
// outside Terraform takes the brokers' value, one set outside is added, so
// the plan shows the update that puts the configuration back. A value the
// brokers spell otherwise but that means the same keeps the configuration's
// spelling. The brokers hold every dynamic setting of broker_config as a
// cluster-wide value once an apply set it (applyDynamicConfig).
func readDynamicConfig(ctx context.Context, m *clusterModel, live map[string]string) diag.Diagnostics {
	cfg, diags := m.brokerConfig(ctx)
	if diags.HasError() || m.BrokerConfig.IsUnknown() {
		return diags
	}
	changed := false
	for k, v := range cfg {
		if s, ok := config.Lookup(k); !ok || !s.Dynamic {
			continue
		}
		switch lv, ok := live[k]; {
		case !ok:
			delete(cfg, k)
			changed = true
		case !sameBrokerValue(k, v, lv):
			cfg[k] = lv
			changed = true
		}
	}
	for k, v := range live {
		if _, ok := cfg[k]; ok || providerSized(k, v, m.InstanceType.ValueString()) {
			continue
		}
		if s, ok := config.Lookup(k); ok && s.Dynamic && s.Owner == config.OwnerUser {
			cfg[k] = v
			changed = true
		}
	}
	// Brokers without the value the provider sets (a cluster created
	// before it did, or by an apply that could not reach them) apply
	// their static default: shown so, the plan sets it.
	if _, named := cfg[maxBrokerPartitionsSetting]; !named {
		if _, set := live[maxBrokerPartitionsSetting]; !set {
			s, _ := config.Lookup(maxBrokerPartitionsSetting)
			cfg[maxBrokerPartitionsSetting] = s.Default
			changed = true
		}
	}
	if !changed {
		return diags
	}
	mv, d := types.MapValueFrom(ctx, types.StringType, cfg)
	diags.Append(d...)
	m.BrokerConfig = mv
	return diags
}

// sameBrokerValue reports whether two values of a broker setting mean the
// same to the broker.
func sameBrokerValue(name, a, b string) bool {
	ca, err1 := config.Canonical(name, a)
	cb, err2 := config.Canonical(name, b)
	return a == b || (err1 == nil && err2 == nil && ca == cb)
}

// readBootDocument refreshes broker_config, monitoring and the listener
// settings from a broker's boot document.
func (r *clusterResource) readBootDocument(ctx context.Context, m *clusterModel, nodeID int32, raw []byte, brokers []fleet.Broker, importing bool) diag.Diagnostics {
	var diags diag.Diagnostics
	doc, err := bootconfig.Decode(raw)
	if err != nil {
		diags.AddWarning("Unreadable boot document", fmt.Sprintf("broker %d: %v", nodeID, err))
		return diags
	}
	// broker_config on import: the static settings are in the boot
	// document the instance was launched with, the dynamic ones are the
	// cluster-wide dynamic values the brokers hold.
	if importing {
		cfg := maps.Clone(doc.BrokerConfig)
		a, err := r.data.accessFromDocument(ctx, doc)
		var live map[string]string
		if err == nil {
			live, err = r.data.checker(m.ClusterID.ValueString(), brokers, a, nil).DynamicClusterConfig(ctx)
		}
		if err != nil {
			diags.AddWarning("broker_config read from the boot document only",
				"The brokers' dynamic settings could not be read, so broker_config holds only the settings the brokers were launched with: "+err.Error())
		}
		for k, v := range live {
			if providerSized(k, v, m.InstanceType.ValueString()) {
				continue
			}
			if s, ok := config.Lookup(k); ok && s.Dynamic && s.Owner == config.OwnerUser {
				if cfg == nil {
					cfg = map[string]string{}
				}
				cfg[k] = v
			}
		}
		if len(cfg) > 0 {
			mv, d := types.MapValueFrom(ctx, types.StringType, cfg)
			diags.Append(d...)
			m.BrokerConfig = mv
		}
	}
	m.CertificateAuthorityPEM = types.StringValue("")
	if doc.TLS != nil {
		m.CertificateAuthorityPEM = types.StringValue(doc.TLS.CertificateAuthorityPEM)
	}
	if importing {
		diags.Append(securityFromDocument(doc, m)...)
		m.setBootstrap(doc.Listeners, brokers)
		// fillComputed ran before the security blocks were known.
		nodes, d := brokerNodesValue(brokers, doc.Listeners)
		diags.Append(d...)
		m.BrokerNodes = nodes
		lg, d := loggingFromDocument(doc)
		diags.Append(d...)
		m.Logging = lg
		om, d := openMonitoringFromDocument(doc)
		diags.Append(d...)
		m.OpenMonitoring = om
	}
	if doc.Metrics.Namespace != "" {
		m.MetricsNamespace = types.StringValue(doc.Metrics.Namespace)
	}
	if doc.Metrics.Level != "" {
		m.EnhancedMonitoring = types.StringValue(doc.Metrics.Level)
	}
	return diags
}

func (r *clusterResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var plan, state clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// The first apply after an import, when only Terraform's own record
	// changes (updatesOnlyState says which, and why nothing more may run).
	if updatesOnlyState(ctx, req.State.Raw, req.Plan.Raw, &state, &plan) {
		tflog.Info(ctx, "only the state changes (timeouts, or security or storage blocks that mean the same); the brokers are left alone",
			map[string]any{"cluster_id": state.ClusterID.ValueString()})
		state.Timeouts, state.EncryptionInTransit, state.ClientAuthentication = plan.Timeouts, plan.EncryptionInTransit, plan.ClientAuthentication
		state.Storage = plan.Storage
		resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
		return
	}
	timeout, diags := plan.Timeouts.Update(ctx, defaultUpdateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	plan.ClusterID, plan.ID = state.ClusterID, state.ID

	spec, diags := r.specFromModel(ctx, &plan, clusterID)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.secure(ctx, spec, req.Private, resp.Private)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Brokers whose certificates the refresh found due get new ones.
	if mark, d := req.Private.GetKey(ctx, privateRollKey); !d.HasError() && len(mark) > 0 {
		var p pending
		if json.Unmarshal(mark, &p) == nil && len(p.Renew) > 0 {
			spec.Reissue = map[int32]bool{}
			for _, id := range p.Renew {
				spec.Reissue[id] = true
			}
			tflog.Info(ctx, "renewing broker certificates", map[string]any{"node_ids": p.Renew})
		}
	}
	f := r.fleet()
	o, err := f.Observe(ctx, clusterID)
	if err != nil {
		resp.Diagnostics.AddError("Reading Tributary cluster "+clusterID, err.Error())
		return
	}
	// Brokers a scale-in removes: refused now, before anything changes, if
	// they cannot be drained. Ensure leaves them alone; they go last.
	removed := o.Removed(&spec.Spec)
	before := slices.Clone(o.Brokers)
	existed := map[int32]bool{}
	for _, b := range o.Brokers {
		existed[b.NodeID] = true
	}
	// What each running broker serves now, which a change of listeners
	// changes one broker at a time: the provider reaches each broker
	// through its own listeners until the roll replaces it, and the
	// security group keeps the client ports of both until every broker
	// serves the new ones.
	docs, err := r.data.liveDocuments(ctx, o.Brokers)
	if err != nil {
		tflog.Warn(ctx, "could not read every broker's boot document; those brokers are reached as planned", map[string]any{"error": err.Error()})
	}
	live := map[int32]kafkaAccess{}
	plannedPorts, plannedIAM := spec.ClientPorts, spec.IAMAuthorization
	for id, doc := range docs {
		if a, err := r.data.accessFromDocument(ctx, doc); err == nil {
			live[id] = a
		}
		spec.ClientPorts = unionPorts(spec.ClientPorts, clientPorts(doc.Listeners))
		spec.IAMAuthorization = spec.IAMAuthorization || hasListener(doc.Listeners, listenerIAM)
	}
	// Certificates due are renewed in place where the brokers take them;
	// the others stay in spec.Reissue, for the roll to replace.
	if len(spec.Reissue) > 0 && plan.WaitForBrokers.ValueBool() {
		resp.Diagnostics.Append(r.renewInPlace(ctx, spec, o, docs)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	resp.Diagnostics.Append(r.checkScaleIn(ctx, spec, o, removed, live, plan.WaitForBrokers.ValueBool())...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Brokers an earlier provider launched without the CA sealed for the
	// provider get it in their templates now, without a roll, so that an
	// import of the cluster can change it.
	if spec.Reseal = lackingSealedCA(ctx, r.data.aws.KMS, spec, o); len(spec.Reseal) > 0 {
		tflog.Info(ctx, "sealing the cluster CA for the provider into the brokers' launch templates", map[string]any{"node_ids": slices.Sorted(maps.Keys(spec.Reseal))})
	}
	// Brokers renewed in place run a certificate their templates do not
	// hold: an instance their groups launch again would boot on the older
	// one (an expired one too) unless its boot agent takes the secret's.
	// Their templates are resealed with the pair they serve, without a
	// roll, so the boot document is right by itself.
	if len(spec.renewed) > 0 {
		if spec.Reseal == nil {
			spec.Reseal = map[int32]bool{}
		}
		for id := range spec.renewed {
			spec.Reseal[id] = true
		}
		tflog.Info(ctx, "sealing the renewed certificates into the brokers' launch templates", map[string]any{"node_ids": slices.Sorted(maps.Keys(spec.renewed))})
	}
	resolved, err := f.Ensure(ctx, &spec.Spec, o)
	if err != nil {
		resp.Diagnostics.AddError("Updating Tributary cluster "+clusterID, err.Error())
		return
	}
	resp.Diagnostics.Append(r.ensureMonitoring(ctx, &plan, !state.Monitoring.IsNull(), clusterID, spec.BrokerCount())...)
	if resp.Diagnostics.HasError() {
		return
	}
	var added []int32
	for _, b := range o.Brokers {
		if !existed[b.NodeID] {
			added = append(added, b.NodeID)
		}
	}

	checker := r.data.checker(clusterID, o.Brokers, spec.Access, live)
	waitForKafka := plan.WaitForBrokers.ValueBool()
	if waitForKafka {
		resp.Diagnostics.Append(r.waitReady(ctx, spec, o, checker)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	kafkaReachable := waitForKafka && !hasWarning(resp.Diagnostics, warnUnreachable)

	// broker_config's dynamic settings go live on every broker, before any
	// roll: a broker launched by the roll finds them in the metadata, and a
	// cluster whose brokers were launched with them in their boot documents
	// (an older provider) keeps them when those documents are replaced.
	stateConfig, d := state.brokerConfig(ctx)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	changed, remove := clusterWideChange(stateConfig, state.InstanceType.ValueString(), spec)
	rolls := slices.ContainsFunc(o.Brokers, func(b fleet.Broker) bool { return b.NeedsRoll() })
	switch {
	case changed:
		resp.Diagnostics.Append(applyClusterConfig(ctx, checker, kafkaReachable, spec, remove)...)
	case rolls && kafkaReachable:
		resp.Diagnostics.Append(applyClusterConfig(ctx, checker, kafkaReachable, spec, nil)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}

	hooks := fleet.RollHooks{}
	if kafkaReachable {
		hooks.BeforeStop = func(ctx context.Context, nodeID int32) error {
			if err := checker.WaitCanStop(ctx, nodeID, stopPatience); err != nil {
				return err
			}
			tflog.Info(ctx, "stopping the broker keeps every partition at or above min.insync.replicas", map[string]any{"node_id": nodeID})
			return nil
		}
		hooks.AfterStart = func(ctx context.Context, nodeID int32) error {
			// The replaced broker serves the planned listeners now.
			if b, ok := o.Broker(nodeID); ok {
				checker.Conn.SetBroker(connBroker(nodeID, b.PrivateIP, spec.Access))
			}
			if err := checker.WaitBrokerReady(ctx, nodeID); err != nil {
				return err
			}
			if err := checker.WaitRejoined(ctx, nodeID); err != nil {
				return err
			}
			tflog.Info(ctx, "replaced broker is back in the ISR of all its partitions", map[string]any{"node_id": nodeID})
			return nil
		}
	} else {
		for _, b := range o.Brokers {
			if b.NeedsRoll() {
				resp.Diagnostics.AddWarning("Rolling without Kafka health checks",
					"The brokers are not reachable from here (or wait_for_brokers = false), so the rolling replacement waits only for EC2, "+
						"not for partitions to be back in sync. Run Terraform from inside the VPC for a safe roll.")
				break
			}
		}
	}
	if err := f.Roll(ctx, &spec.Spec, o, hooks); err != nil {
		resp.Diagnostics.AddError("Rolling the brokers of cluster "+clusterID, err.Error())
		return
	}
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateRollKey, nil)...)
	// The brokers that stay serve what the spec says now (the roll is
	// over); the removed ones, which do not roll, what they served.
	leaving := map[int32]kafkaAccess{}
	for _, b := range removed {
		if a, ok := live[b.NodeID]; ok {
			leaving[b.NodeID] = a
		}
	}
	resp.Diagnostics.Append(r.scaleIn(ctx, spec, before, removed, leaving)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if o, err = f.Observe(ctx, clusterID); err != nil {
		resp.Diagnostics.AddError("Reading Tributary cluster "+clusterID, err.Error())
		return
	}
	// Every broker serves the planned listeners: the ports of the old
	// ones close.
	if !slices.Equal(spec.ClientPorts, plannedPorts) {
		spec.ClientPorts = plannedPorts
		if err := f.SyncIngress(ctx, &spec.Spec, o); err != nil {
			resp.Diagnostics.AddError("Closing the client ports the brokers no longer serve", err.Error())
			return
		}
	}
	if spec.InstanceProfile == "" && slices.ContainsFunc(o.RoleNames, func(n string) bool { return fleet.SharedProfile(clusterID, n) }) {
		if err := f.DeleteSharedRole(ctx, o); err != nil {
			resp.Diagnostics.AddError("Deleting the role the brokers shared", err.Error())
			return
		}
	}
	if spec.IAMAuthorization != plannedIAM {
		spec.IAMAuthorization = plannedIAM
		if err := f.SyncRolePolicy(ctx, &spec.Spec, resolved.KeyARN); err != nil {
			resp.Diagnostics.AddError("Dropping the brokers' right to authorize IAM clients", err.Error())
			return
		}
	}
	resp.Diagnostics.Append(r.setObserved(ctx, &plan, spec, o, resolved)...)
	estimateCost(ctx, &plan, r.data.aws.Region) // what the plan could not know yet is known now
	// Known in the plan when the update touches no broker
	// (plannedBrokerLoad): the refresh's measure stands. Otherwise it is
	// measured once the partitions moved.
	measureLoad := plan.BrokerLoad.IsUnknown()
	if measureLoad {
		plan.BrokerLoad = types.ListNull(brokerLoadObjectType)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// A rebalance an earlier apply left unfinished is resumed, as is one
	// onto brokers this apply added; it runs once they are in state, so a
	// failure leaves them there, marked for the next apply.
	onto := append(added, pendingRebalance(ctx, req.Private)...)
	onto = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(onto))), func(id int32) bool { _, ok := o.Broker(id); return !ok })
	if len(onto) > 0 {
		rd, pending, started := r.rebalance(ctx, clusterID, o.Brokers, spec.Access, onto, kafkaReachable, plan.Rebalance.ValueString() == rebalanceAsync, spec.Throttle)
		resp.Diagnostics.Append(rd...)
		resp.Diagnostics.Append(setPendingRebalance(ctx, resp.Private, pending)...)
		resp.Diagnostics.Append(setMoving(ctx, resp.Private, started)...)
	}
	if measureLoad {
		load, d := r.brokerLoad(ctx, r.kafkaConnIf(kafkaReachable, clusterID, o.Brokers, spec.Access))
		resp.Diagnostics.Append(d...)
		plan.BrokerLoad = load
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// unionPorts adds the ports of more missing from ports, in order.
func unionPorts(ports, more []int32) []int32 {
	out := slices.Clone(ports)
	for _, p := range more {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func hasWarning(diags diag.Diagnostics, summary string) bool {
	for _, d := range diags.Warnings() {
		if d.Summary() == summary {
			return true
		}
	}
	return false
}

// clusterWideChange compares the cluster-wide settings the last apply
// left (the state's broker_config and instance type) with spec's: whether
// they changed, and the keys to delete. What the provider sets itself
// counts too, so a new instance_type changes max.broker.partitions where
// broker_config does not name it, and a name removed from broker_config
// gives the instance type's value back rather than deleting it.
func clusterWideChange(stateConfig map[string]string, stateInstanceType string, spec *clusterSpec) (changed bool, remove []string) {
	_, old := splitBrokerConfig(stateConfig)
	if old == nil {
		old = map[string]string{}
	}
	maps.Copy(old, sizedBrokerConfig(stateConfig, stateInstanceType))
	next := spec.clusterWideConfig()
	for k := range old {
		if _, ok := next[k]; !ok {
			remove = append(remove, k)
		}
	}
	slices.Sort(remove)
	return !maps.Equal(old, next), remove
}

// applyClusterConfig makes spec's cluster-wide settings (broker_config's
// dynamic ones and SizedConfig) the brokers' and deletes the removed ones.
// Unreachable brokers fail it when broker_config names dynamic settings,
// as before; when only the provider's own sizing is left to set, they get
// a warning: nothing the configuration asked for is missing, and the
// brokers keep their static value until an apply reaches them.
func applyClusterConfig(ctx context.Context, checker *kafkacheck.Checker, reachable bool, spec *clusterSpec, remove []string) diag.Diagnostics {
	if reachable || len(spec.DynamicConfig) > 0 || len(remove) > 0 {
		set := spec.DynamicConfig
		if reachable {
			set = spec.clusterWideConfig()
		}
		if len(set) == 0 && len(remove) == 0 {
			return nil
		}
		return applyDynamicConfig(ctx, checker, reachable, set, remove)
	}
	var diags diag.Diagnostics
	if v, ok := spec.SizedConfig[maxBrokerPartitionsSetting]; ok {
		diags.AddWarning("max.broker.partitions not set",
			fmt.Sprintf("The provider sets the cluster's max.broker.partitions to %s for instance type %s through the Kafka protocol, and no broker "+
				"is reachable from here (or wait_for_brokers = false): the brokers apply their static value (10000) until an apply that reaches them "+
				"sets it.", v, spec.InstanceType))
	}
	return diags
}

// applyDynamicConfig makes broker_config's dynamic settings (set) the
// cluster-wide values on every broker and deletes the removed ones, so the
// brokers fall back to their defaults. It needs the brokers reachable.
func applyDynamicConfig(ctx context.Context, checker *kafkacheck.Checker, reachable bool, set map[string]string, remove []string) diag.Diagnostics {
	var diags diag.Diagnostics
	keys := append(slices.Sorted(maps.Keys(set)), remove...)
	if !reachable {
		diags.AddAttributeError(path.Root("broker_config"), "Dynamic broker settings not applied",
			fmt.Sprintf("broker_config's dynamic settings (%s) are applied to the running brokers through the Kafka protocol, "+
				"and no broker is reachable from here (or wait_for_brokers = false). Run Terraform where it reaches the brokers, "+
				"or leave these settings out.", strings.Join(keys, ", ")))
		return diags
	}
	// Sent as the brokers spell the values (they report them so), which
	// the plan-time check guarantees exists.
	canonical := make(map[string]string, len(set))
	for k, v := range set {
		c, err := config.Canonical(k, v)
		if err != nil {
			diags.AddAttributeError(path.Root("broker_config").AtMapKey(k), "Invalid broker setting", err.Error())
			return diags
		}
		canonical[k] = c
	}
	if err := checker.SetClusterConfig(ctx, canonical, remove); err != nil {
		diags.AddAttributeError(path.Root("broker_config"), "Applying broker_config to the running brokers", err.Error())
		return diags
	}
	tflog.Info(ctx, "applied broker_config's dynamic settings on every broker", map[string]any{"set": slices.Sorted(maps.Keys(set)), "removed": remove})
	return diags
}

func (r *clusterResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	var state clusterModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	clusterID := state.ClusterID.ValueString()
	if clusterID == "" {
		clusterID = state.ID.ValueString()
	}
	ctx = tflog.SetField(ctx, "cluster_id", clusterID)
	tflog.Info(ctx, "deleting Tributary cluster")
	if !state.Monitoring.IsNull() {
		if err := r.deleteMonitoring(ctx, state.Name.ValueString(), clusterID); err != nil {
			resp.Diagnostics.AddError("Deleting the alarms and dashboard of Tributary cluster "+clusterID, err.Error())
			return
		}
	}
	if err := r.fleet().Delete(ctx, clusterID); err != nil {
		resp.Diagnostics.AddError("Deleting Tributary cluster "+clusterID, err.Error())
		return
	}
	var nodes []brokerNodeModel
	if !state.BrokerNodes.IsNull() && !state.BrokerNodes.IsUnknown() {
		resp.Diagnostics.Append(state.BrokerNodes.ElementsAs(ctx, &nodes, false)...)
	}
	ids := make([]int32, 0, len(nodes))
	for _, n := range nodes {
		ids = append(ids, int32(n.NodeID.ValueInt64()))
	}
	if err := deleteCertificateSecrets(ctx, r.data.aws.SecretsManager, clusterID, ids); err != nil {
		resp.Diagnostics.AddError("Deleting the certificate secrets of Tributary cluster "+clusterID, err.Error())
	}
}

func (r *clusterResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("cluster_id"), req.ID)...)
}
