package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
)

// notServedYet explains why a security setting is refused today.
const notServedYet = "The Tributary broker does not serve TLS, SASL/SCRAM or IAM authentication yet (that comes with the broker's " +
	"security work); today it serves only PLAINTEXT on port 9092. The setting is accepted by the schema so configurations can " +
	"be written in MSK's shape, but applying it now would build brokers that cannot honour it."

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

	clientBroker := "PLAINTEXT"
	if !m.EncryptionInTransit.IsNull() && !m.EncryptionInTransit.IsUnknown() {
		var e encryptionInTransitModel
		resp.Diagnostics.Append(m.EncryptionInTransit.As(ctx, &e, objectAsOptions)...)
		if v := e.ClientBroker.ValueString(); v != "" {
			clientBroker = v
		}
		if clientBroker != "PLAINTEXT" {
			resp.Diagnostics.AddAttributeError(path.Root("encryption_in_transit").AtName("client_broker"),
				"TLS between clients and brokers is not served yet", notServedYet)
		}
		if e.InCluster.ValueBool() {
			resp.Diagnostics.AddAttributeError(path.Root("encryption_in_transit").AtName("in_cluster"),
				"TLS between brokers is not served yet", notServedYet)
		}
	}

	if !m.ClientAuthentication.IsNull() && !m.ClientAuthentication.IsUnknown() {
		var ca clientAuthenticationModel
		resp.Diagnostics.Append(m.ClientAuthentication.As(ctx, &ca, objectAsOptions)...)
		var sasl saslModel
		if !ca.SASL.IsNull() && !ca.SASL.IsUnknown() {
			resp.Diagnostics.Append(ca.SASL.As(ctx, &sasl, objectAsOptions)...)
		}
		tls := false
		if !ca.TLS.IsNull() && !ca.TLS.IsUnknown() {
			var t tlsAuthModel
			resp.Diagnostics.Append(ca.TLS.As(ctx, &t, objectAsOptions)...)
			tls = !t.CertificateAuthorityARNs.IsNull() && len(t.CertificateAuthorityARNs.Elements()) > 0
		}
		authenticated := sasl.IAM.ValueBool() || sasl.SCRAM.ValueBool() || tls
		// MSK's rules first, so the configuration is right once the
		// brokers catch up: authentication needs TLS to the clients.
		if authenticated && clientBroker == "PLAINTEXT" {
			resp.Diagnostics.AddAttributeError(path.Root("client_authentication"), "Authentication needs TLS",
				"SASL/IAM, SASL/SCRAM and mutual TLS authenticate over TLS: set encryption_in_transit.client_broker to TLS or TLS_PLAINTEXT (as with MSK).")
		}
		if !ca.Unauthenticated.IsNull() && !ca.Unauthenticated.ValueBool() && !authenticated {
			resp.Diagnostics.AddAttributeError(path.Root("client_authentication").AtName("unauthenticated"), "No way for clients to connect",
				"unauthenticated = false with no SASL or TLS authentication leaves clients no way in.")
		}
		switch {
		case sasl.IAM.ValueBool():
			resp.Diagnostics.AddAttributeError(path.Root("client_authentication").AtName("sasl").AtName("iam"), "IAM authentication is not served yet", notServedYet)
		case sasl.SCRAM.ValueBool():
			resp.Diagnostics.AddAttributeError(path.Root("client_authentication").AtName("sasl").AtName("scram"), "SCRAM authentication is not served yet", notServedYet)
		case tls:
			resp.Diagnostics.AddAttributeError(path.Root("client_authentication").AtName("tls"), "Mutual TLS is not served yet", notServedYet)
		case !ca.Unauthenticated.IsNull() && !ca.Unauthenticated.ValueBool():
			resp.Diagnostics.AddAttributeError(path.Root("client_authentication").AtName("unauthenticated"), "Authentication is not served yet", notServedYet)
		}
	}

	// broker_config: the boot document's own rules decide (reserved keys,
	// line breaks, sizes), so the provider and the boot agent never disagree.
	if cfg, d := m.brokerConfig(ctx); !d.HasError() && len(cfg) > 0 && !m.BrokerConfig.IsUnknown() {
		for _, msg := range brokerConfigProblems(cfg) {
			resp.Diagnostics.AddAttributeError(path.Root("broker_config"), "Invalid broker setting", msg)
		}
	}
}

// brokerConfigProblems validates broker settings with the boot document's rules.
func brokerConfigProblems(cfg map[string]string) []string {
	doc := &bootconfig.Document{
		Version: bootconfig.CurrentVersion, ClusterID: "tc-check", ClusterName: "check", NodeID: 1, Rack: "az",
		Listeners:    []bootconfig.Listener{{Name: "PLAINTEXT", Port: plaintextPort, SecurityProtocol: "PLAINTEXT"}},
		Ports:        bootconfig.Ports{InterBroker: bootconfig.DefaultInterBrokerPort, Controller: bootconfig.DefaultControllerPort, Metrics: bootconfig.DefaultMetricsPort},
		Controllers:  []bootconfig.Peer{{NodeID: 1, Host: "127.0.0.1", Port: bootconfig.DefaultControllerPort}},
		DataVolume:   bootconfig.Volume{VolumeID: "vol-0123456789abcdef0", MountPath: bootconfig.DefaultMountPath, Filesystem: bootconfig.DefaultFilesystem},
		BrokerConfig: cfg,
	}
	err := doc.Validate()
	if err == nil {
		return nil
	}
	var out []string
	var joined interface{ Unwrap() []error }
	errs := []error{err}
	if errors.As(err, &joined) {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		var fe *bootconfig.FieldError
		if errors.As(e, &fe) && strings.HasPrefix(fe.Field, "broker_config") {
			out = append(out, fe.Field+" "+fe.Problem)
		}
	}
	return out
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

	// The image: resolved from the version at plan time, so the plan shows
	// which image the brokers will run (and a new image of the same version
	// is a visible roll).
	switch {
	case !config.BrokerVersion.IsNull() && !config.BrokerVersion.IsUnknown() && !plan.InstanceType.IsUnknown():
		img, err := resolveImage(ctx, r.data.aws.EC2, config.BrokerVersion.ValueString(), plan.InstanceType.ValueString())
		if err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("broker_version"), "Finding the broker image", err.Error())
			return
		}
		plan.ImageID = types.StringValue(img.ID)
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

	if state == nil {
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
		return
	}

	// Refuse what cannot be done in place, before anything is touched.
	if plan.BrokersPerAZ.ValueInt64() < state.BrokersPerAZ.ValueInt64() && !plan.BrokersPerAZ.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("brokers_per_az"), "Removing brokers is not supported yet",
			fmt.Sprintf("brokers_per_az can only grow (now %d, asked %d): removing a broker needs its partitions moved to the others first, "+
				"which the provider cannot do yet.", state.BrokersPerAZ.ValueInt64(), plan.BrokersPerAZ.ValueInt64()))
	}
	planStorage, d := plan.storageSettings(ctx)
	resp.Diagnostics.Append(d...)
	stateStorage, d := state.storageSettings(ctx)
	resp.Diagnostics.Append(d...)
	if planStorage.SizeGiB < stateStorage.SizeGiB && !plan.Storage.IsUnknown() {
		resp.Diagnostics.AddAttributeError(path.Root("storage").AtName("volume_size"), "Storage cannot shrink",
			fmt.Sprintf("The volumes are %d GiB; EBS volumes only grow, so %d GiB would need the data copied to new, smaller volumes, "+
				"which the provider does not do yet. Keep volume_size at %d or more.", stateStorage.SizeGiB, planStorage.SizeGiB, stateStorage.SizeGiB))
	}
	if resp.Diagnostics.HasError() {
		return
	}

	// What the update will change among the computed attributes.
	countChanges := !plan.BrokersPerAZ.Equal(state.BrokersPerAZ)
	rolls := !plan.ImageID.Equal(state.ImageID) || !plan.InstanceType.Equal(state.InstanceType) ||
		!plan.BrokerConfig.Equal(state.BrokerConfig) || !plan.EnhancedMonitoring.Equal(state.EnhancedMonitoring) ||
		!plan.MetricsNamespace.Equal(state.MetricsNamespace) ||
		(!config.InstanceProfile.IsNull() && !config.InstanceProfile.Equal(state.InstanceProfile))
	heals := r.brokersMissing(ctx, state)
	if mark, d := req.Private.GetKey(ctx, privateRollKey); !d.HasError() && len(mark) > 0 {
		rolls = true
		resp.Diagnostics.AddWarning("An earlier rolling replacement did not finish",
			"The brokers run from different images, instance types or settings. This apply replaces, one at a time, the ones that "+
				"do not match the configuration.")
	}
	if heals {
		resp.Diagnostics.AddWarning("Brokers will be healed",
			"At least one broker has no running instance (stopped or terminated outside Terraform?). This apply starts it again, or "+
				"launches a new instance on its old network interface and volume: same address, same data.")
	}
	if countChanges || rolls || heals || planStorage != stateStorage {
		plan.BrokerNodes = types.ListUnknown(brokerNodeObjectType)
	}
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
}

// brokersMissing reports whether the state shows a broker without an
// instance, or fewer brokers than configured.
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
		if n.InstanceID.ValueString() == "" {
			return true
		}
		switch n.InstanceState.ValueString() {
		case "running", "pending":
		default:
			return true // stopped, stopping or shutting down: the apply starts or replaces it
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
