package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// clusterModel is tributary_cluster's state, attributes in schema order.
type clusterModel struct {
	ARN                         types.String   `tfsdk:"arn"`
	BootstrapBrokers            types.String   `tfsdk:"bootstrap_brokers"`
	BootstrapBrokersSASLIAM     types.String   `tfsdk:"bootstrap_brokers_sasl_iam"`
	BootstrapBrokersSASLSCRAM   types.String   `tfsdk:"bootstrap_brokers_sasl_scram"`
	BootstrapBrokersTLS         types.String   `tfsdk:"bootstrap_brokers_tls"`
	BrokerConfig                types.Map      `tfsdk:"broker_config"`
	BrokerLoad                  types.List     `tfsdk:"broker_load"`
	BrokerNodes                 types.List     `tfsdk:"broker_nodes"`
	BrokerVersion               types.String   `tfsdk:"broker_version"`
	BrokersPerAZ                types.Int64    `tfsdk:"brokers_per_az"`
	CertificateAuthorityPEM     types.String   `tfsdk:"certificate_authority_pem"`
	CertificateValidity         types.String   `tfsdk:"certificate_validity"`
	ClientAuthentication        types.Object   `tfsdk:"client_authentication"`
	ClientCIDRBlocks            types.Set      `tfsdk:"client_cidr_blocks"`
	ClusterID                   types.String   `tfsdk:"cluster_id"`
	EncryptionInTransit         types.Object   `tfsdk:"encryption_in_transit"`
	EnhancedMonitoring          types.String   `tfsdk:"enhanced_monitoring"`
	EstimatedMonthlyCostUSD     types.Float64  `tfsdk:"estimated_monthly_cost_usd"`
	EstimatedWriteMiBps         types.Float64  `tfsdk:"estimated_write_mibps"`
	ID                          types.String   `tfsdk:"id"`
	ImageID                     types.String   `tfsdk:"image_id"`
	InstanceProfile             types.String   `tfsdk:"instance_profile"`
	InstanceType                types.String   `tfsdk:"instance_type"`
	KMSKeyARN                   types.String   `tfsdk:"kms_key_arn"`
	Logging                     types.Object   `tfsdk:"logging"`
	MetricsNamespace            types.String   `tfsdk:"metrics_namespace"`
	Monitoring                  types.Object   `tfsdk:"monitoring"`
	MonitoringCIDRBlocks        types.Set      `tfsdk:"monitoring_cidr_blocks"`
	MSKEquivalentMonthlyCostUSD types.Float64  `tfsdk:"msk_equivalent_monthly_cost_usd"`
	Name                        types.String   `tfsdk:"name"`
	OpenMonitoring              types.Object   `tfsdk:"open_monitoring"`
	Rebalance                   types.String   `tfsdk:"rebalance"`
	ReplicationThrottleBPS      types.Int64    `tfsdk:"replication_throttle_bytes_per_second"`
	SecurityGroupID             types.String   `tfsdk:"security_group_id"`
	SecurityGroupIDs            types.Set      `tfsdk:"security_group_ids"`
	Storage                     types.Object   `tfsdk:"storage"`
	SubnetIDs                   types.List     `tfsdk:"subnet_ids"`
	Tags                        types.Map      `tfsdk:"tags"`
	TagsAll                     types.Map      `tfsdk:"tags_all"`
	TLSCertificateAuthority     types.Object   `tfsdk:"tls_certificate_authority"`
	Timeouts                    timeouts.Value `tfsdk:"timeouts"`
	WaitForBrokers              types.Bool     `tfsdk:"wait_for_brokers"`
}

type storageModel struct {
	Autoscaling types.Object `tfsdk:"autoscaling"`
	IOPS        types.Int64  `tfsdk:"iops"`
	KMSKeyARN   types.String `tfsdk:"kms_key_arn"`
	Throughput  types.Int64  `tfsdk:"throughput"`
	VolumeSize  types.Int64  `tfsdk:"volume_size"`
	VolumeType  types.String `tfsdk:"volume_type"`
}

type storageAutoscalingModel struct {
	MaxVolumeSize     types.Int64 `tfsdk:"max_volume_size"`
	TargetUtilization types.Int64 `tfsdk:"target_utilization"`
}

var storageAutoscalingAttrTypes = map[string]attr.Type{
	"max_volume_size":    types.Int64Type,
	"target_utilization": types.Int64Type,
}

var storageAttrTypes = map[string]attr.Type{
	"autoscaling": types.ObjectType{AttrTypes: storageAutoscalingAttrTypes},
	"iops":        types.Int64Type,
	"kms_key_arn": types.StringType,
	"throughput":  types.Int64Type,
	"volume_size": types.Int64Type,
	"volume_type": types.StringType,
}

type encryptionInTransitModel struct {
	ClientBroker types.String `tfsdk:"client_broker"`
	InCluster    types.Bool   `tfsdk:"in_cluster"`
}

type clientAuthenticationModel struct {
	SASL            types.Object `tfsdk:"sasl"`
	TLS             types.Object `tfsdk:"tls"`
	Unauthenticated types.Bool   `tfsdk:"unauthenticated"`
}

type saslModel struct {
	IAM   types.Bool `tfsdk:"iam"`
	SCRAM types.Bool `tfsdk:"scram"`
}

type tlsAuthModel struct {
	CertificateAuthorityARNs types.Set `tfsdk:"certificate_authority_arns"`
	CertificateAuthorityPEMs types.Set `tfsdk:"certificate_authority_pems"`
}

type tlsCertificateAuthorityModel struct {
	CertificatePEM types.String `tfsdk:"certificate_pem"`
	PrivateKeyPEM  types.String `tfsdk:"private_key_pem"`
}

// brokerNodeModel is one element of broker_nodes.
type brokerNodeModel struct {
	AutoScalingGroup types.String `tfsdk:"auto_scaling_group"`
	AvailabilityZone types.String `tfsdk:"availability_zone"`
	Endpoint         types.String `tfsdk:"endpoint"`
	Endpoints        types.List   `tfsdk:"endpoints"`
	ENIID            types.String `tfsdk:"eni_id"`
	InstanceID       types.String `tfsdk:"instance_id"`
	InstanceState    types.String `tfsdk:"instance_state"`
	NodeID           types.Int64  `tfsdk:"node_id"`
	PrivateIP        types.String `tfsdk:"private_ip"`
	SubnetID         types.String `tfsdk:"subnet_id"`
	VolumeID         types.String `tfsdk:"volume_id"`
	VolumeSize       types.Int64  `tfsdk:"volume_size"`
}

var brokerNodeAttrTypes = map[string]attr.Type{
	"auto_scaling_group": types.StringType,
	"availability_zone":  types.StringType,
	"endpoint":           types.StringType,
	"endpoints":          types.ListType{ElemType: types.StringType},
	"eni_id":             types.StringType,
	"instance_id":        types.StringType,
	"instance_state":     types.StringType,
	"node_id":            types.Int64Type,
	"private_ip":         types.StringType,
	"subnet_id":          types.StringType,
	"volume_id":          types.StringType,
	"volume_size":        types.Int64Type,
}

var brokerNodeObjectType = types.ObjectType{AttrTypes: brokerNodeAttrTypes}

// Defaults of optional settings.
const (
	defaultVolumeSizeGiB      = 100
	defaultVolumeType         = "gp3"
	defaultMetricsNamespace   = "Tributary/Kafka"
	defaultEnhancedMonitoring = "DEFAULT"
	plaintextPort             = 9092
)

// storageSettings reads the storage block, applying defaults for an absent block.
func (m *clusterModel) storageSettings(ctx context.Context) (fleet.Storage, diag.Diagnostics) {
	st := fleet.Storage{SizeGiB: defaultVolumeSizeGiB, VolumeType: defaultVolumeType}
	if m.Storage.IsNull() || m.Storage.IsUnknown() {
		return st, nil
	}
	var sm storageModel
	diags := m.Storage.As(ctx, &sm, objectAsOptions)
	if !sm.VolumeSize.IsNull() && !sm.VolumeSize.IsUnknown() {
		st.SizeGiB = int32(sm.VolumeSize.ValueInt64())
	}
	if v := sm.VolumeType.ValueString(); v != "" {
		st.VolumeType = v
	}
	st.IOPS = int32(sm.IOPS.ValueInt64())
	st.ThroughputMiBps = int32(sm.Throughput.ValueInt64())
	st.KMSKeyARN = sm.KMSKeyARN.ValueString()
	if !sm.Autoscaling.IsNull() && !sm.Autoscaling.IsUnknown() {
		var am storageAutoscalingModel
		diags.Append(sm.Autoscaling.As(ctx, &am, objectAsOptions)...)
		st.Autoscaling = &fleet.StorageAutoscaling{
			TargetUtilization: int32(am.TargetUtilization.ValueInt64()),
			MaxSizeGiB:        int32(am.MaxVolumeSize.ValueInt64()),
		}
	}
	return st, diags
}

// brokerConfig returns the broker_config map (empty when null).
func (m *clusterModel) brokerConfig(ctx context.Context) (map[string]string, diag.Diagnostics) {
	out := map[string]string{}
	if m.BrokerConfig.IsNull() || m.BrokerConfig.IsUnknown() {
		return out, nil
	}
	diags := m.BrokerConfig.ElementsAs(ctx, &out, false)
	return out, diags
}

func stringSet(ctx context.Context, s types.Set) ([]string, diag.Diagnostics) {
	var out []string
	if s.IsNull() || s.IsUnknown() {
		return nil, nil
	}
	diags := s.ElementsAs(ctx, &out, false)
	slices.Sort(out)
	return out, diags
}

func stringList(ctx context.Context, l types.List) ([]string, diag.Diagnostics) {
	var out []string
	if l.IsNull() || l.IsUnknown() {
		return nil, nil
	}
	diags := l.ElementsAs(ctx, &out, false)
	return out, diags
}

func stringMap(ctx context.Context, m types.Map) (map[string]string, diag.Diagnostics) {
	out := map[string]string{}
	if m.IsNull() || m.IsUnknown() {
		return out, nil
	}
	diags := m.ElementsAs(ctx, &out, false)
	return out, diags
}

// mergeTags returns default tags overlaid with the resource's tags.
func mergeTags(defaults, own map[string]string) map[string]string {
	out := maps.Clone(defaults)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, own)
	return out
}

// brokerNodesValue converts observed brokers to the broker_nodes list;
// listeners are the client listeners the brokers serve, which give each
// broker's endpoints.
func brokerNodesValue(brokers []fleet.Broker, listeners []bootconfig.Listener) (types.List, diag.Diagnostics) {
	elems := make([]attr.Value, 0, len(brokers))
	var diags diag.Diagnostics
	ports := make([]int, 0, len(listeners))
	for _, l := range listeners {
		ports = append(ports, l.Port)
	}
	slices.Sort(ports)
	for _, b := range brokers {
		var first string
		addrs := make([]attr.Value, 0, len(ports))
		for i, port := range ports {
			e := endpoint(b.PrivateIP, port)
			if i == 0 {
				first = e
			}
			addrs = append(addrs, types.StringValue(e))
		}
		endpoints, d := types.ListValue(types.StringType, addrs)
		diags.Append(d...)
		obj, d := types.ObjectValue(brokerNodeAttrTypes, map[string]attr.Value{
			"auto_scaling_group": types.StringValue(b.GroupName),
			"availability_zone":  types.StringValue(b.AvailabilityZone),
			"endpoint":           types.StringValue(first),
			"endpoints":          endpoints,
			"eni_id":             types.StringValue(b.ENIID),
			"instance_id":        types.StringValue(b.InstanceID),
			"instance_state":     types.StringValue(b.InstanceState),
			"node_id":            types.Int64Value(int64(b.NodeID)),
			"private_ip":         types.StringValue(b.PrivateIP),
			"subnet_id":          types.StringValue(b.SubnetID),
			"volume_id":          types.StringValue(b.VolumeID),
			"volume_size":        types.Int64Value(int64(b.VolumeSizeGiB)),
		})
		diags.Append(d...)
		elems = append(elems, obj)
	}
	l, d := types.ListValue(brokerNodeObjectType, elems)
	diags.Append(d...)
	return l, diags
}

func endpoint(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

// bootstrapString lists every broker's endpoint for a port, in node-id
// order, so it never changes unless the brokers do.
func bootstrapString(brokers []fleet.Broker, port int) string {
	var eps []string
	for _, b := range brokers {
		if b.PrivateIP != "" {
			eps = append(eps, endpoint(b.PrivateIP, port))
		}
	}
	return strings.Join(eps, ",")
}
