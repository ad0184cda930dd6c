package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

func (r *clusterResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m clusterModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}

	if ns := m.MetricsNamespace.ValueString(); strings.HasPrefix(ns, "AWS/") {
		resp.Diagnostics.AddAttributeError(path.Root("metrics_namespace"), "Reserved namespace",
			fmt.Sprintf("%q starts with AWS/, which CloudWatch reserves for AWS services.", ns))
	}

	sec, d := m.security(ctx)
	resp.Diagnostics.Append(d...)
	resp.Diagnostics.Append(sec.validate(time.Now())...)
	if _, err := m.certificateValidity(); err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("certificate_validity"), "Invalid certificate validity", err.Error())
	}

	resp.Diagnostics.Append(validateBrokerConfig(m)...)
	resp.Diagnostics.Append(validateAutoscaling(ctx, m)...)
	resp.Diagnostics.Append(validateOpenMonitoring(ctx, m)...)
	// The logging block's rules (a destination's name when enabled) at
	// plan, not halfway through an apply.
	_, d = m.logging(ctx)
	resp.Diagnostics.Append(d...)
}

// validateAutoscaling requires both settings of a storage.autoscaling block
// (MSK's target-tracking policy has no default for either).
func validateAutoscaling(ctx context.Context, m clusterModel) diag.Diagnostics {
	var diags diag.Diagnostics
	if m.Storage.IsNull() || m.Storage.IsUnknown() {
		return nil
	}
	var sm storageModel
	if d := m.Storage.As(ctx, &sm, objectAsOptions); d.HasError() || sm.Autoscaling.IsNull() || sm.Autoscaling.IsUnknown() {
		return d
	}
	var am storageAutoscalingModel
	if d := sm.Autoscaling.As(ctx, &am, objectAsOptions); d.HasError() {
		return d
	}
	at := path.Root("storage").AtName("autoscaling")
	if am.TargetUtilization.IsNull() {
		diags.AddAttributeError(at.AtName("target_utilization"), "Missing target utilization",
			"storage.autoscaling needs target_utilization: the used share of a volume, in percent (10-80), at which it grows.")
	}
	if am.MaxVolumeSize.IsNull() {
		diags.AddAttributeError(at.AtName("max_volume_size"), "Missing maximum volume size",
			"storage.autoscaling needs max_volume_size: the largest size in GiB a volume may grow to.")
	}
	if !am.MaxVolumeSize.IsNull() && !am.MaxVolumeSize.IsUnknown() && !sm.VolumeSize.IsNull() && !sm.VolumeSize.IsUnknown() &&
		am.MaxVolumeSize.ValueInt64() < sm.VolumeSize.ValueInt64() {
		diags.AddAttributeError(at.AtName("max_volume_size"), "Autoscaling maximum below the volume size",
			fmt.Sprintf("max_volume_size (%d GiB) must be at least volume_size (%d GiB).", am.MaxVolumeSize.ValueInt64(), sm.VolumeSize.ValueInt64()))
	}
	return diags
}

// validateBrokerConfig checks broker_config at plan time with the broker's
// own settings table (through the boot document's rules, which add the
// document's limits): each name, each value as the broker would check it
// when applying it, the checks between settings the broker makes when it
// starts, and the rules between settings and the cluster's size. Each
// problem names its attribute path, broker_config["<name>"].
func validateBrokerConfig(m clusterModel) diag.Diagnostics {
	var diags diag.Diagnostics
	cfg, complete := knownBrokerConfig(m.BrokerConfig)
	if len(cfg) == 0 {
		return nil
	}
	at := func(key string) path.Path { return path.Root("broker_config").AtMapKey(key) }
	for _, e := range bootconfig.ValidateBrokerConfig(cfg) {
		diags.AddAttributeError(at(e.Key), "Invalid broker setting", e.Field+" "+e.Problem+".")
	}
	if diags.HasError() || !complete {
		return diags
	}
	for _, e := range config.ClusterRules(cfg, plannedBrokers(m)) {
		diags.AddAttributeError(at(e.Name), "Broker settings the cluster cannot satisfy", fmt.Sprintf("broker_config[%q] %s.", e.Name, e.Problem))
	}
	return diags
}

// knownBrokerConfig returns broker_config's known entries, and whether
// every entry is known.
func knownBrokerConfig(v types.Map) (map[string]string, bool) {
	if v.IsNull() {
		return nil, true
	}
	if v.IsUnknown() {
		return nil, false
	}
	out := map[string]string{}
	complete := true
	for k, e := range v.Elements() {
		sv, ok := e.(types.String)
		if !ok || sv.IsUnknown() || sv.IsNull() {
			complete = false
			continue
		}
		out[k] = sv.ValueString()
	}
	return out, complete
}

// plannedBrokers is how many brokers the configuration asks for:
// brokers_per_az in each subnet's AZ (three without subnet_ids). Unknown
// counts give a number larger than any cluster, so that only the rules
// that do not depend on the count apply (every cluster has at least three
// brokers, which the cluster defaults assume).
func plannedBrokers(m clusterModel) int {
	const unknown = math.MaxInt32
	perAZ := 1
	switch {
	case m.BrokersPerAZ.IsUnknown():
		return unknown
	case !m.BrokersPerAZ.IsNull():
		perAZ = int(m.BrokersPerAZ.ValueInt64())
	}
	azs := defaultAZCount
	switch {
	case m.SubnetIDs.IsUnknown():
		return unknown
	case !m.SubnetIDs.IsNull():
		azs = len(m.SubnetIDs.Elements())
	}
	return perAZ * azs
}

func (r *clusterResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return // destroy, or the provider is not configured yet
	}
	var plan, config clusterModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var state *clusterModel
	if !req.State.Raw.IsNull() {
		state = &clusterModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, state)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}

	// tags_all = default_tags + tags.
	if plan.Tags.IsUnknown() {
		plan.TagsAll = types.MapUnknown(types.StringType)
	} else {
		own, d := stringMap(ctx, plan.Tags)
		resp.Diagnostics.Append(d...)
		all, d := types.MapValueFrom(ctx, types.StringType, mergeTags(r.data.defaultTags, own))
		resp.Diagnostics.Append(d...)
		plan.TagsAll = all
	}

	// The bucket of logging.s3 must exist, as MSK checks at create:
	// brokers would otherwise retry into a missing bucket for ever.
	if lg, d := plan.logging(ctx); !d.HasError() && lg != nil && lg.S3 != nil && (state == nil || loggingChanges(&plan, state)) {
		resp.Diagnostics.Append(checkLogBucket(ctx, r.data.aws.S3, lg.S3.Bucket, r.data.aws.Region)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}

	// So must the delivery stream of logging.firehose, as MSK checks.
	if lg, d := plan.logging(ctx); !d.HasError() && lg != nil && lg.Firehose != nil && (state == nil || loggingChanges(&plan, state)) {
		resp.Diagnostics.Append(checkDeliveryStream(ctx, r.data.aws.Firehose, lg.Firehose.DeliveryStream, r.data.aws.Region)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}

	// A mistyped instance type or subnet fails the plan, before the create
	// makes anything.
	if !plan.InstanceType.IsUnknown() && (state == nil || !state.InstanceType.Equal(plan.InstanceType)) {
		resp.Diagnostics.Append(checkInstanceType(ctx, r.data.aws.EC2, plan.InstanceType.ValueString(), r.data.aws.Region)...)
	}
	if !config.SubnetIDs.IsUnknown() && (state == nil || !config.SubnetIDs.IsNull() && !state.SubnetIDs.Equal(config.SubnetIDs)) {
		ids, d := stringList(ctx, config.SubnetIDs)
		resp.Diagnostics.Append(d...)
		if !d.HasError() {
			resp.Diagnostics.Append(checkSubnets(ctx, r.data.aws.EC2, ids, r.data.aws.Region)...)
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	// The image: resolved from the version at plan time, so the plan shows
	// which image the brokers will run (and a new image of the same version
	// is a visible roll). Both are taken when they name the same image: a
	// configuration terraform plan -generate-config-out writes for an
	// imported cluster sets both (they are optional and computed).
	both := !config.BrokerVersion.IsNull() && !config.ImageID.IsNull()
	if both && (config.BrokerVersion.IsUnknown() || config.ImageID.IsUnknown()) {
		resp.Diagnostics.AddAttributeError(path.Root("image_id"), "Both broker_version and image_id",
			"With broker_version and image_id both set, both must be known at plan time, to check that they name the same image. Set one of them.")
		return
	}
	switch {
	case !config.BrokerVersion.IsNull() && !config.BrokerVersion.IsUnknown() && !plan.InstanceType.IsUnknown():
		img, err := resolveImage(ctx, r.data.aws.EC2, config.BrokerVersion.ValueString(), plan.InstanceType.ValueString())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("broker_version"), "Finding the broker image", err.Error())
			return
		}
		if both && config.ImageID.ValueString() != img.ID {
			resp.Diagnostics.AddAttributeError(path.Root("image_id"), "broker_version and image_id name different images",
				fmt.Sprintf("broker_version %q is image %s (the newest of that version for %s), not %s. Set one of them.",
					config.BrokerVersion.ValueString(), img.ID, plan.InstanceType.ValueString(), config.ImageID.ValueString()))
			return
		}
		plan.ImageID = types.StringValue(img.ID)
	case both:
		plan.ImageID = config.ImageID // the instance type is not known yet
	case !config.BrokerVersion.IsNull():
		plan.ImageID = types.StringUnknown()
	case !config.ImageID.IsNull() && !config.ImageID.IsUnknown():
		if state != nil && state.ImageID.Equal(config.ImageID) && state.InstanceType.Equal(plan.InstanceType) {
			plan.BrokerVersion = state.BrokerVersion
			break
		}
		img, err := describeImage(ctx, r.data.aws.EC2, config.ImageID.ValueString())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("image_id"), "Finding the broker image", err.Error())
			return
		}
		// Refused now rather than halfway through a roll, after the first
		// broker was already stopped.
		if want := instanceArchitecture(plan.InstanceType.ValueString()); !plan.InstanceType.IsUnknown() && img.Architecture != "" && img.Architecture != want {
			resp.Diagnostics.AddAttributeError(path.Root("image_id"), "Image and instance type do not match",
				fmt.Sprintf("%s is an %s image but %s is an %s instance type.", img.ID, img.Architecture, plan.InstanceType.ValueString(), want))
			return
		}
		plan.BrokerVersion = types.StringValue(img.Version)
		if img.Version == "" {
			plan.BrokerVersion = types.StringNull()
		}
	}

	// A given key must exist and be usable now; EBS would otherwise create
	// the volumes and silently delete them again.
	if st, d := plan.storageSettings(ctx); !d.HasError() && st.KMSKeyARN != "" {
		var prior string
		if state != nil {
			if ps, d := state.storageSettings(ctx); !d.HasError() {
				prior = ps.KMSKeyARN
			}
		}
		if st.KMSKeyARN != prior {
			resp.Diagnostics.Append(checkKey(ctx, r.data.aws.KMS, st.KMSKeyARN)...)
			if resp.Diagnostics.HasError() {
				return
			}
		}
	}

	// A user's instance profile must let each broker open its own secrets.
	if !config.InstanceProfile.IsNull() && !config.InstanceProfile.IsUnknown() &&
		(state == nil || !config.InstanceProfile.Equal(state.InstanceProfile) || !plan.BrokersPerAZ.Equal(state.BrokersPerAZ) || loggingChanges(&plan, state)) {
		// The configuration's count: subnets the provider picks are
		// unknown in the plan until apply, but always three AZs.
		if n := plannedBrokers(config); n < math.MaxInt32 {
			t := userProfileTarget{Profile: config.InstanceProfile.ValueString(), KeyARN: "*", ClusterID: placeholderClusterID,
				Partition: r.data.aws.Partition, Region: r.data.aws.Region, Account: r.data.aws.AccountID}
			if st, d := plan.storageSettings(ctx); !d.HasError() && st.KMSKeyARN != "" {
				t.KeyARN = st.KMSKeyARN
			}
			if lg, d := plan.logging(ctx); !d.HasError() {
				t.LogObjects = logObjectsOf(lg)
				t.LogStream = deliveryStreamARN(lg, r.data.aws.Partition, r.data.aws.Region, r.data.aws.AccountID)
			}
			if state != nil {
				t.ClusterID = state.ClusterID.ValueString()
				if k := state.KMSKeyARN.ValueString(); t.KeyARN == "*" && k != "" {
					t.KeyARN = k
				}
			}
			for id := 1; id <= n; id++ {
				t.NodeIDs = append(t.NodeIDs, int32(id))
			}
			resp.Diagnostics.Append(checkUserProfile(ctx, r.data.aws.IAM, t)...)
			if resp.Diagnostics.HasError() {
				return
			}
		}
	}

	// The client CAs of AWS Private CA must give their certificates now,
	// rather than fail the apply halfway through a roll.
	if sec, d := plan.security(ctx); !d.HasError() && len(sec.ClientCAARNs) > 0 {
		var prior []string
		if state != nil {
			if ps, d := state.security(ctx); !d.HasError() {
				prior = ps.ClientCAARNs
			}
		}
		if !sameARNs(sec.ClientCAARNs, prior) {
			if _, err := privateCACertificates(ctx, r.data.aws.ACMPCA, sec.ClientCAARNs, time.Now()); err != nil {
				resp.Diagnostics.AddAttributeError(path.Root("client_authentication").AtName("tls").AtName("certificate_authority_arns"),
					"Reading the client CAs from AWS Private CA", err.Error())
				return
			}
		}
	}

	resp.Diagnostics.Append(checkDynamicApplicable(&plan, state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// Subnets left to the provider are unknown until apply but always one
	// per Availability Zone of three: the estimate need not wait for them.
	priced := plan
	if config.SubnetIDs.IsNull() {
		priced.SubnetIDs = types.ListNull(types.StringType)
	}
	estimateCost(ctx, &priced, r.data.aws.Region)
	plan.EstimatedMonthlyCostUSD, plan.MSKEquivalentMonthlyCostUSD = priced.EstimatedMonthlyCostUSD, priced.MSKEquivalentMonthlyCostUSD

	if state == nil {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}

	// Refuse what cannot be done in place, before anything is touched.
	resp.Diagnostics.Append(r.checkScaleInPlan(ctx, &plan, state)...)
	planStorage, d := plan.storageSettings(ctx)
	resp.Diagnostics.Append(d...)
	stateStorage, d := state.storageSettings(ctx)
	resp.Diagnostics.Append(d...)
	if planStorage.SizeGiB < stateStorage.SizeGiB && !plan.Storage.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("storage").AtName("volume_size"), "Storage cannot shrink",
			fmt.Sprintf("The volumes are %d GiB; EBS volumes only grow, so %d GiB would need the data copied to new, smaller volumes, "+
				"which the provider does not do yet. Keep volume_size at %d or more.", stateStorage.SizeGiB, planStorage.SizeGiB, stateStorage.SizeGiB))
	}
	securityRolls, d := planSecurityChange(ctx, &plan, state)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}

	// What the update will change among the computed attributes.
	countChanges := !plan.BrokersPerAZ.Equal(state.BrokersPerAZ)
	rolls := securityRolls || !plan.ImageID.Equal(state.ImageID) || !plan.InstanceType.Equal(state.InstanceType) ||
		staticConfigChanges(&plan, state) || !plan.EnhancedMonitoring.Equal(state.EnhancedMonitoring) ||
		!plan.MetricsNamespace.Equal(state.MetricsNamespace) || loggingChanges(&plan, state) ||
		openMonitoringChanges(&plan, state) ||
		(!config.InstanceProfile.IsNull() && !config.InstanceProfile.Equal(state.InstanceProfile))
	heals := r.brokersMissing(ctx, state)
	if mark, d := req.Private.GetKey(ctx, privateRollKey); !d.HasError() && len(mark) > 0 {
		var p pending
		if err := json.Unmarshal(mark, &p); err != nil {
			p.Incomplete = true // an older provider's mark
		}
		if p.Incomplete {
			rolls = true
			resp.Diagnostics.AddWarning("An earlier rolling replacement did not finish",
				"Some brokers run instances launched from an older version of their launch template. This apply replaces them, one at a time, "+
					"through their Auto Scaling groups.")
		}
		if p.Legacy {
			rolls = true
			resp.Diagnostics.AddWarning("Brokers will move into Auto Scaling groups",
				"Some brokers run on instances launched by an earlier version of the provider, which only an apply heals. This apply moves them, "+
					"one at a time and gated on the cluster's health like a rolling replacement, into Auto Scaling groups of one that replace a "+
					"failed instance by themselves: each keeps its network interface (address) and volume (data).")
		}
		if p.Repair {
			heals = true
		}
		if p.Login {
			rolls = true
			resp.Diagnostics.AddWarning("Brokers will learn the provider's own login",
				"With SASL/SCRAM or mutual TLS on, the provider authenticates to the brokers with a SCRAM login or client certificate of its "+
					"own, a super user, which the brokers of this cluster were not launched with. This apply rolls them, one at a time, "+
					"gated on the cluster's health, with boot documents that carry it.")
		}
		if p.SharedRole {
			rolls = true
			resp.Diagnostics.AddWarning("Brokers will get roles of their own",
				"The brokers share one IAM role, which may decrypt every broker's secrets. This apply gives each broker a role and instance "+
					"profile of its own, which may decrypt only its own node's secrets, replaces the brokers one at a time through their Auto "+
					"Scaling groups, gated on the cluster's health, and then deletes the shared role.")
		}
		if len(p.Renew) > 0 {
			rolls = true
			resp.Diagnostics.AddWarning(renewalWarning(p.Renew))
		}
	}
	if m := getMoving(ctx, req.Private); m != nil {
		resp.Diagnostics.AddWarning(movingWarning(m))
	}
	onto := pendingRebalance(ctx, req.Private)
	if len(onto) > 0 {
		resp.Diagnostics.AddWarning("A rebalance is pending",
			fmt.Sprintf("An earlier apply added brokers %v but did not finish moving existing partitions onto them. This apply resumes the "+
				"rebalance: it waits for the moves still running, then moves what is left until each broker holds its share.", onto))
	}
	if heals {
		resp.Diagnostics.AddWarning("Brokers will be healed",
			"At least one broker has no Auto Scaling group, or its group was changed outside Terraform (no longer a group of one in the broker's subnet). "+
				"This apply makes it a group of one again, which launches an instance on the broker's old network interface and volume: same address, same data.")
	}
	// A pending rebalance must show as an update, whose apply resumes it.
	changesBrokers := countChanges || rolls || heals || len(onto) > 0 || !storageEqual(planStorage, stateStorage)
	if changesBrokers {
		plan.BrokerNodes = types.ListUnknown(brokerNodeObjectType)
	}
	plan.BrokerLoad = plannedBrokerLoad(&plan, state, changesBrokers)
	if countChanges {
		for _, s := range []*types.String{&plan.BootstrapBrokers, &plan.BootstrapBrokersTLS, &plan.BootstrapBrokersSASLSCRAM, &plan.BootstrapBrokersSASLIAM} {
			*s = types.StringUnknown()
		}
	}
	if len(resp.RequiresReplace) > 0 {
		resp.Diagnostics.AddWarning("The cluster will be replaced",
			fmt.Sprintf("Changing %v replaces the whole cluster: new brokers, new volumes and a new cluster id. The data on the old brokers is destroyed with them.", resp.RequiresReplace))
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	if state != nil && len(resp.RequiresReplace) == 0 && !resp.Diagnostics.HasError() && planChanges(req.State.Raw, resp.Plan.Raw) &&
		!updatesOnlyState(ctx, req.State.Raw, resp.Plan.Raw, state, &plan) {
		resp.Diagnostics.Append(refuseUpdateWithoutCA(ctx, &plan, state, req.Private)...)
	}
}

// plannedBrokerLoad is broker_load in the plan of an update. An update that
// adds, removes, replaces, heals or resizes no broker and moves no
// partition (tags, dynamic settings, monitoring, client CIDRs) leaves the
// load as the refresh just measured it: the plan keeps that value and the
// apply keeps it too (Update measures only when it is unknown), so the
// plan does not show every broker's load as "known after apply". Any other
// update measures it again once done; so does one that turns
// wait_for_brokers on or off, which decides whether it is measured at all.
// The framework plans it unknown in any update that changes a setting;
// this function also makes it unknown in one that only it makes an update
// (a roll, heal or rebalance that is pending).
func plannedBrokerLoad(plan, state *clusterModel, changesBrokers bool) types.List {
	if changesBrokers || !plan.WaitForBrokers.Equal(state.WaitForBrokers) {
		return types.ListUnknown(brokerLoadObjectType)
	}
	return state.BrokerLoad
}

// refuseUpdateWithoutCA refuses at plan an update of a cluster whose
// brokers hold certificates of the CA the provider made, when this state
// lacks that CA: an imported cluster whose boot documents do not carry the
// CA sealed for the provider (brokers launched by a provider older than
// that, until an update from the creating state reseals their templates:
// lackingSealedCA; restoreProviderSecrets reads it where they do), or
// whose sealed CA could not be opened. The update would
// make a new CA and roll the brokers one at a time onto it; the first one
// rolled would trust only the new CA and the others only the old, so it
// could not rejoin the cluster's quorum and the roll would wait for it
// until the update timeout, with a broker out of the cluster.
func refuseUpdateWithoutCA(ctx context.Context, plan, state *clusterModel, private privateState) diag.Diagnostics {
	sec, diags := plan.security(ctx)
	if diags.HasError() || !sec.usesTLS() || sec.UserCACert != "" || state.CertificateAuthorityPEM.ValueString() == "" {
		return diags
	}
	raw, d := private.GetKey(ctx, privateCAKey)
	diags.Append(d...)
	if len(raw) > 0 || diags.HasError() {
		return diags
	}
	diags.AddError("The cluster's CA is not in this state",
		fmt.Sprintf("The certificates of cluster %s's brokers are signed by a CA the provider made when it created the cluster, and the "+
			"CA's private key is kept only in the Terraform state the cluster was created in; this state has none (the cluster was "+
			"imported). This change would make a new CA and roll the brokers onto it one at a time, and a rolled broker could not "+
			"rejoin the brokers that trust the old CA. Apply from the state the cluster was created in (terraform state pull there, "+
			"terraform state push here), or set tls_certificate_authority to that CA (certificate_authority_pem) and its private key. "+
			"Brokers launched by this provider carry the CA sealed for it with the cluster's KMS key, which a refresh reads; these were "+
			"launched earlier, or the provider may not kms:Decrypt it (see the refresh's warning). An apply from the state the cluster "+
			"was created in (any change, a tag will do) seals it into their launch templates without replacing them.",
			state.ClusterID.ValueString()))
	return diags
}

// storageEqual compares two storage settings, autoscaling by value.
func storageEqual(a, b fleet.Storage) bool {
	aa, ba := a.Autoscaling, b.Autoscaling
	a.Autoscaling, b.Autoscaling = nil, nil
	if a != b || (aa == nil) != (ba == nil) {
		return false
	}
	return aa == nil || *aa == *ba
}

// staticConfigChanges reports whether broker_config's static settings (the
// boot document's, whose change rolls the brokers) may differ.
func staticConfigChanges(plan, state *clusterModel) bool {
	planCfg, known := knownBrokerConfig(plan.BrokerConfig)
	stateCfg, _ := knownBrokerConfig(state.BrokerConfig)
	planStatic, _ := splitBrokerConfig(planCfg)
	stateStatic, _ := splitBrokerConfig(stateCfg)
	return !known || !maps.Equal(planStatic, stateStatic)
}

// checkDynamicApplicable refuses a plan that sets or removes dynamic
// broker settings while wait_for_brokers = false: they are applied to the
// running brokers through the Kafka protocol, which the provider then does
// not speak, so the apply could not do what the plan says.
func checkDynamicApplicable(plan, state *clusterModel) diag.Diagnostics {
	var diags diag.Diagnostics
	if plan.WaitForBrokers.IsUnknown() || plan.WaitForBrokers.ValueBool() {
		return nil
	}
	planCfg, known := knownBrokerConfig(plan.BrokerConfig)
	if !known {
		return nil
	}
	_, planDynamic := splitBrokerConfig(planCfg)
	var stateDynamic map[string]string
	if state != nil {
		stateCfg, _ := knownBrokerConfig(state.BrokerConfig)
		_, stateDynamic = splitBrokerConfig(stateCfg)
	}
	const summary = "Dynamic broker setting with wait_for_brokers = false"
	const why = "is a dynamic setting: the provider applies it to the running brokers with IncrementalAlterConfigs, which needs the " +
		"brokers reachable from where Terraform runs, and wait_for_brokers = false says they are not. Set wait_for_brokers = true, or leave the setting out."
	for _, k := range slices.Sorted(maps.Keys(planDynamic)) {
		if old, ok := stateDynamic[k]; !ok || old != planDynamic[k] {
			diags.AddAttributeError(path.Root("broker_config").AtMapKey(k), summary, fmt.Sprintf("broker_config[%q] %s", k, why))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(stateDynamic)) {
		if _, ok := planDynamic[k]; !ok {
			diags.AddAttributeError(path.Root("broker_config"), summary,
				fmt.Sprintf("Removing broker_config[%q] restores its default on the running brokers: it %s", k, why))
		}
	}
	return diags
}

// brokersMissing reports whether the state shows fewer brokers than
// configured, or a broker with neither an Auto Scaling group (which heals
// it by itself) nor a live instance.
func (r *clusterResource) brokersMissing(ctx context.Context, state *clusterModel) bool {
	if state.BrokerNodes.IsNull() || state.BrokerNodes.IsUnknown() {
		return true
	}
	var nodes []brokerNodeModel
	if d := state.BrokerNodes.ElementsAs(ctx, &nodes, false); d.HasError() {
		return true
	}
	subnets := len(state.SubnetIDs.Elements())
	if subnets > 0 && len(nodes) < int(state.BrokersPerAZ.ValueInt64())*subnets {
		return true
	}
	for _, n := range nodes {
		if n.AutoScalingGroup.ValueString() != "" {
			continue // its group replaces a failed instance
		}
		switch n.InstanceState.ValueString() {
		case "running", "pending":
		default:
			return true // no group and no live instance: the apply gives it a group
		}
	}
	return false
}

// checkKey refuses a KMS key that does not exist or cannot encrypt. A caller
// without kms:DescribeKey is given the benefit of the doubt.
func checkKey(ctx context.Context, client *kms.Client, arn string) diag.Diagnostics {
	var diags diag.Diagnostics
	at := path.Root("storage").AtName("kms_key_arn")
	out, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)})
	var apiErr smithy.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotFoundException":
		diags.AddAttributeError(at, "KMS key not found", fmt.Sprintf("%s does not exist in this account and region.", arn))
	case errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException":
		tflog.Warn(ctx, "cannot describe the KMS key; assuming it is usable", map[string]any{"kms_key_arn": arn})
	case err != nil:
		diags.AddAttributeError(at, "Checking the KMS key", err.Error())
	case out.KeyMetadata.KeyState != kmstypes.KeyStateEnabled:
		diags.AddAttributeError(at, "KMS key not usable", fmt.Sprintf("%s is %s; EBS needs an enabled key.", arn, out.KeyMetadata.KeyState))
	case out.KeyMetadata.KeyUsage != kmstypes.KeyUsageTypeEncryptDecrypt || out.KeyMetadata.KeySpec != kmstypes.KeySpecSymmetricDefault:
		diags.AddAttributeError(at, "KMS key not usable", fmt.Sprintf("%s is a %s key for %s; EBS needs a symmetric ENCRYPT_DECRYPT key.", arn, out.KeyMetadata.KeySpec, out.KeyMetadata.KeyUsage))
	}
	return diags
}

// planChanges reports whether a plan changes the state, as Terraform sees
// it: numbers are compared by value (a computed float such as
// estimated_monthly_cost_usd may come back from the state with another
// precision and the same value).
func planChanges(state, plan tftypes.Value) bool {
	diffs, err := state.Diff(plan)
	if err != nil {
		return true
	}
	for _, d := range diffs {
		var a, b *big.Float
		if d.Value1 != nil && d.Value2 != nil && d.Value1.Type().Is(tftypes.Number) && d.Value2.Type().Is(tftypes.Number) &&
			d.Value1.As(&a) == nil && d.Value2.As(&b) == nil && a != nil && b != nil {
			fa, _ := a.Float64()
			fb, _ := b.Float64()
			if fa == fb {
				continue
			}
		}
		return true
	}
	return false
}
