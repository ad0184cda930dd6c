package provider

import (
	"context"
	"fmt"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/float64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/float64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	clusterNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)
	cidrPattern        = regexp.MustCompile(`^[0-9a-fA-F.:]+/[0-9]{1,3}$`)
)

func (r *clusterResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	computedString := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{
			MarkdownDescription: desc,
			Computed:            true,
			PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A Kafka-compatible cluster of Tributary brokers on EC2, spread over (at least) three Availability Zones: " +
			"the self-hosted counterpart of `aws_msk_cluster`.\n\n" +
			"Each broker is a persistent network interface (a stable private IP), a persistent KMS-encrypted EBS volume and an EC2 " +
			"instance that uses both; the instance is replaceable, the broker's address and data are not. Instance type, image and " +
			"broker version change by a rolling replacement, one broker at a time, gated on the brokers' own health; storage, " +
			"security groups, client CIDRs, broker count (upward) and broker settings change in place. Every AWS object carries the " +
			"tag `tributary:cluster-id`, so a failed create leaves nothing that `terraform destroy` cannot find.\n\n" +
			partitionsPerBrokerDoc(),
		Attributes: map[string]schema.Attribute{
			"arn": computedString("The cluster's ARN in Amazon MSK's format, `arn:<partition>:kafka:<region>:<account>:cluster/<name>/<cluster_id>`: " +
				"what IAM policies for clients name (see the `tributary_iam_policy_document` data source). Empty when the provider skips asking for the account id."),
			"bootstrap_brokers": computedString("Plaintext (port 9092) endpoints of every broker, `ip:port` joined with commas, in node-id order; " +
				"empty unless `encryption_in_transit.client_broker` is `PLAINTEXT` or `TLS_PLAINTEXT`. Stable: it changes only when brokers are added."),
			"certificate_validity": certificateValiditySchema(),
			"certificate_authority_pem": computedString("The cluster CA's certificate (PEM), which signed every broker certificate: what clients " +
				"trust (`ssl.truststore.location`, kcat's `ssl.ca.location`). The CA of `tls_certificate_authority`, or one the provider made " +
				"(ECDSA P-256, valid ten years), whose private key is kept in this resource's private Terraform state and, sealed with the cluster's KMS key for the provider " +
				"alone, in every broker's boot document, so that a state that imports the cluster signs with the same CA. Empty when nothing uses TLS."),
			"bootstrap_brokers_sasl_iam": computedString("SASL/IAM (port 9098, over TLS) endpoints of every broker, in node-id order; empty unless " +
				"`client_authentication.sasl.iam` is on."),
			"bootstrap_brokers_sasl_scram": computedString("SASL/SCRAM (port 9096, over TLS) endpoints of every broker, in node-id order; empty unless " +
				"`client_authentication.sasl.scram` is on."),
			"bootstrap_brokers_tls": computedString("TLS (port 9094) endpoints of every broker, in node-id order; empty unless clients may use TLS " +
				"without SASL: unauthenticated, or with client certificates (`client_authentication.tls`)."),
			"broker_config": schema.MapAttribute{
				MarkdownDescription: "Kafka broker settings by their `server.properties` names (e.g. `log.retention.ms`, `min.insync.replicas`, " +
					"`num.partitions`), checked at plan time against the broker's settings table (the Settings section of the broker's documentation): " +
					"unknown names (with the closest known one suggested), settings that fix a broker's identity (`node.id`, `listeners`, " +
					"`log.dirs`, ...), values the broker would refuse and combinations the cluster cannot satisfy fail the plan. " +
					"Dynamic settings are applied to the running brokers with `IncrementalAlterConfigs`, which needs the brokers reachable " +
					"(`wait_for_brokers`); removing one restores the broker's default at once. With `wait_for_brokers`, a refresh reads the dynamic " +
					"settings back from the brokers, so one changed, added or removed outside Terraform (`kafka-configs --entity-default`) shows " +
					"as an update that puts the configuration back. Any other change rolls the brokers one at a time. " +
					"Where nothing is set the cluster runs with Amazon MSK's defaults: `default.replication.factor = 3`, `min.insync.replicas = 2`, " +
					"`auto.create.topics.enable = false`, `unclean.leader.election.enable = false`, and `max.broker.partitions` by `instance_type` " +
					"(Partitions per broker, above); naming `max.broker.partitions` here sets the cluster's value instead.",
				Optional:    true,
				ElementType: types.StringType,
			},
			"broker_load": schema.ListNestedAttribute{
				MarkdownDescription: "What each live broker carries, as the cluster reports it, refreshed on every read: how a rebalance left the " +
					"partitions spread. Read through the Kafka protocol (metadata, `DescribeLogDirs`), so null with `wait_for_brokers = false` or " +
					"when no broker answers from where Terraform runs. An update that adds, removes, replaces, heals or resizes no broker keeps it in the " +
					"plan as the refresh measured it; any other update measures it again.",
				Computed: true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"availability_zone": schema.StringAttribute{MarkdownDescription: "Availability Zone (the broker's `broker.rack`).", Computed: true},
						"disk_used_bytes":   schema.Int64Attribute{MarkdownDescription: "Bytes of partition data on the broker's volume (`DescribeLogDirs`); -1 when the broker did not say.", Computed: true},
						"endpoint":          schema.StringAttribute{MarkdownDescription: "The broker's `host:port` on the listener the provider uses.", Computed: true},
						"leaders":           schema.Int64Attribute{MarkdownDescription: "Partitions the broker leads.", Computed: true},
						"node_id":           schema.Int64Attribute{MarkdownDescription: "Kafka node id.", Computed: true},
						"partitions":        schema.Int64Attribute{MarkdownDescription: "Partition replicas the broker holds, internal topics included.", Computed: true},
					},
				},
			},
			"broker_nodes": schema.ListNestedAttribute{
				MarkdownDescription: "Every broker, in node-id order: what `aws_msk_broker_nodes` gives for MSK.",
				Computed:            true,
				PlanModifiers:       []planmodifier.List{listplanmodifier.UseStateForUnknown()},
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"auto_scaling_group": schema.StringAttribute{MarkdownDescription: "The broker's Auto Scaling group of one, which replaces a terminated, stopped or failing instance by itself; empty for a broker still on an instance of no group (an earlier provider's), which the next apply moves into its group.", Computed: true},
						"availability_zone":  schema.StringAttribute{MarkdownDescription: "Availability Zone (the broker's `broker.rack`).", Computed: true},
						"endpoint":           schema.StringAttribute{MarkdownDescription: "The broker's `ip:port` on its client listener of the lowest port (9092 plaintext, 9094 TLS, 9096 SASL/SCRAM, 9098 SASL/IAM); empty when it serves none.", Computed: true},
						"endpoints":          schema.ListAttribute{MarkdownDescription: "The broker's `ip:port` on every client listener it serves, by port: the per-broker form of the bootstrap strings.", ElementType: types.StringType, Computed: true},
						"eni_id":             schema.StringAttribute{MarkdownDescription: "Persistent network interface; holds the broker's address across replacements (attached to each instance as its second interface).", Computed: true},
						"instance_id":        schema.StringAttribute{MarkdownDescription: "Current EC2 instance; empty while the broker's group replaces it.", Computed: true},
						"instance_state":     schema.StringAttribute{MarkdownDescription: "EC2 state of the instance.", Computed: true},
						"node_id":            schema.Int64Attribute{MarkdownDescription: "Kafka node id (`node.id`), from 1.", Computed: true},
						"private_ip":         schema.StringAttribute{MarkdownDescription: "Private IP address of the broker's network interface.", Computed: true},
						"subnet_id":          schema.StringAttribute{MarkdownDescription: "Subnet of the broker.", Computed: true},
						"volume_id":          schema.StringAttribute{MarkdownDescription: "Persistent EBS data volume.", Computed: true},
						"volume_size":        schema.Int64Attribute{MarkdownDescription: "Current size of the data volume in GiB (may exceed `storage.volume_size`).", Computed: true},
					},
				},
			},
			"broker_version": schema.StringAttribute{
				MarkdownDescription: "Broker image version: the provider uses the newest image tagged `tributary:version` = this version " +
					"(owned by the account, for the instance type's architecture). Set this or `image_id` (both only when they name the same image, as in a " +
					"configuration `terraform plan -generate-config-out` writes for an imported cluster); when only `image_id` is set, this shows the image's version. " +
					"Changing it rolls the brokers.",
				Optional: true,
				Computed: true,
				Validators: []validator.String{
					stringvalidator.AtLeastOneOf(path.MatchRoot("broker_version"), path.MatchRoot("image_id")),
					stringvalidator.LengthBetween(1, 64),
				},
			},
			"brokers_per_az": schema.Int64Attribute{
				MarkdownDescription: "Brokers in each Availability Zone (default 1). Changed in place. Growing adds brokers with the next node ids and moves " +
					"existing partitions onto them. Shrinking removes the brokers with the highest node ids (never the metadata quorum's voters, " +
					"the first broker of each AZ): their partitions are moved to the brokers left first (rack-aware; every ISR full again), then " +
					"their instances, volumes and network interfaces are deleted and they are unregistered. Shrinking needs the brokers reachable " +
					"(`wait_for_brokers = true`) and is refused (at plan time when the brokers are reachable) when the brokers left are fewer than " +
					"some topic's replication factor, or when the moves would put more partition replicas on one of them than `max.broker.partitions` " +
					"(`broker_config`, else by `instance_type`: Partitions per broker, above), naming each such broker with its count.",
				Optional:   true,
				Computed:   true,
				Default:    int64default.StaticInt64(1),
				Validators: []validator.Int64{int64validator.Between(1, 30)},
			},
			"client_cidr_blocks": schema.SetAttribute{
				MarkdownDescription: "CIDR blocks allowed to reach the client ports. Changed in place (security group rules).",
				Optional:            true,
				ElementType:         types.StringType,
				Validators: []validator.Set{
					setvalidator.ValueStringsAre(stringvalidator.RegexMatches(cidrPattern, "must be a CIDR block such as 10.0.0.0/16")),
				},
			},
			"monitoring_cidr_blocks": monitoringCIDRBlocksAttribute(),
			"cluster_id":             computedString("Stable id of the cluster; every AWS object of the cluster is tagged `tributary:cluster-id` with it. The import id."),
			"enhanced_monitoring": schema.StringAttribute{
				MarkdownDescription: "CloudWatch metrics level, as MSK: `DEFAULT`, `PER_BROKER`, `PER_TOPIC_PER_BROKER` or `PER_TOPIC_PER_PARTITION`. " +
					"Changing it rolls the brokers.",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(defaultEnhancedMonitoring),
				Validators: []validator.String{
					stringvalidator.OneOf("DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"),
				},
			},
			"estimated_monthly_cost_usd": schema.Float64Attribute{
				MarkdownDescription: "What the cluster costs a month on AWS's on-demand list prices, computed at plan time from the " +
					"price table in the provider (`docs/cost.md` gives its date, the regions it covers and every assumption): the brokers' " +
					"instances, their EBS volumes at `storage.volume_size` (with gp3 IOPS and throughput above the included), the " +
					"replication traffic that crosses Availability Zones at `estimated_write_mibps`, and the KMS key the cluster made. " +
					"Client traffic, CloudWatch and storage grown by autoscaling are not included. Null when the table has no price for " +
					"the region, instance type or volume type.",
				Computed: true,
			},
			"estimated_write_mibps": schema.Float64Attribute{
				MarkdownDescription: fmt.Sprintf("The average rate producers write to the cluster, in MiB/s before replication, that the cost "+
					"estimates assume (default %g). Only the estimates use it.", defaultEstimatedWriteMiBps),
				Optional:   true,
				Computed:   true,
				Default:    float64default.StaticFloat64(defaultEstimatedWriteMiBps),
				Validators: []validator.Float64{float64validator.Between(0, 100_000)},
			},
			"id": computedString("Same as `cluster_id`."),
			"image_id": schema.StringAttribute{
				MarkdownDescription: "Broker image (AMI) id, instead of `broker_version` (or beside it, naming the same image). Changing it rolls the brokers.",
				Optional:            true,
				Computed:            true,
				Validators:          []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^ami-[0-9a-f]+$`), "must be an AMI id")},
			},
			"instance_profile": schema.StringAttribute{
				MarkdownDescription: "Name of an existing instance profile for the brokers. Omitted: the provider creates, for each broker, a " +
					"least-privilege role and profile named `tributary-<cluster_id>-broker-<node id>` (`kms:Decrypt` on the cluster key only under " +
					"the cluster's and that broker's own encryption context, so a broker cannot read another's secrets; `cloudwatch:PutMetricData` " +
					"only into `metrics_namespace`), and this attribute shows their common stem `tributary-<cluster_id>`. Changing it rolls the brokers. " +
					"A given profile's role must allow what the created roles do (docs/terraform-provider.md); the plan asks IAM " +
					"(`iam:SimulatePrincipalPolicy`) whether it may `kms:Decrypt` every broker's secrets and refuses it if not.",
				Optional:      true,
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"instance_type": schema.StringAttribute{
				MarkdownDescription: "EC2 instance type of the brokers, e.g. `m7g.large` (Graviton images) or `m7i.large`. The plan asks EC2 (`ec2:DescribeInstanceTypes`) " +
					"and refuses a type the region does not offer. Changing it rolls the brokers, in place, and sets the cluster's `max.broker.partitions` for the " +
					"new type before the roll unless `broker_config` names it (Partitions per broker, above).",
				Required:   true,
				Validators: []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`), "must be an EC2 instance type such as m7g.large")},
			},
			"kms_key_arn": computedString("KMS key that encrypts the volumes and the brokers' secrets: `storage.kms_key_arn`, or the key the provider created."),
			"msk_equivalent_monthly_cost_usd": schema.Float64Attribute{
				MarkdownDescription: "What Amazon MSK (provisioned) charges a month for the same number of brokers of the same instance " +
					"type (`kafka.<instance_type>`) and the same storage, on the same price table: broker-hours and MSK storage (MSK " +
					"does not charge for replication between its brokers). Null when MSK offers no broker of that instance type " +
					"(it has `kafka.t3.small` and the m5 and m7g sizes) or the table lacks the region.",
				Computed: true,
			},
			"metrics_namespace": schema.StringAttribute{
				MarkdownDescription: "CloudWatch namespace the brokers publish their MSK-named metrics to (default `Tributary/Kafka`). Changing it rolls the brokers.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(defaultMetricsNamespace),
				Validators: []validator.String{
					stringvalidator.LengthBetween(1, 255),
				},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: "Cluster name: letters, digits and hyphens, starting with a letter. Changing it replaces the cluster " +
					"(a new cluster id, new brokers, new volumes: the data does not move).",
				Required:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{stringvalidator.RegexMatches(clusterNamePattern, "must be 1-64 letters, digits or hyphens, starting with a letter")},
			},
			"rebalance": schema.StringAttribute{
				MarkdownDescription: "How an apply that adds brokers moves existing partitions onto them: `wait` (default) returns once every " +
					"moved replica is in sync and leaders moved; `async` returns once the brokers accepted the moves, which then run in the " +
					"cluster; a later plan warns how many partitions are still moving, and says nothing once none is. An apply that removes " +
					"brokers always waits for their drain, which must end before they are deleted.",
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(rebalanceWait),
				Validators: []validator.String{stringvalidator.OneOf(rebalanceWait, rebalanceAsync)},
			},
			"replication_throttle_bytes_per_second": schema.Int64Attribute{
				MarkdownDescription: "Kafka's replication throttle for the partitions a `brokers_per_az` change moves (the rebalance onto " +
					"new brokers, the drain of brokers being removed), in bytes per second per broker, as `kafka-reassign-partitions " +
					"--throttle` sets it: the brokers get it as `leader.replication.throttled.rate` and `follower.replication.throttled.rate` " +
					"and each moved topic lists its moving replicas in `leader.replication.throttled.replicas` and " +
					"`follower.replication.throttled.replicas`, so in-sync replicas and partitions that do not move keep their speed; all " +
					"are removed once the moves are done (with `rebalance = \"async\"`, by the refresh that sees them done; after a " +
					"failed apply, by the next reassignment once nothing moves). Unset: 52428800 (50 MiB/s); `0` moves unthrottled. " +
					"Changing it alone changes nothing on the brokers.",
				Optional:   true,
				Validators: []validator.Int64{int64validator.AtLeast(0)},
			},
			"security_group_id": computedString("The cluster's own security group (client ports from `client_cidr_blocks`, replication and quorum ports between brokers)."),
			"security_group_ids": schema.SetAttribute{
				MarkdownDescription: "More security groups for the brokers' network interfaces. Changed in place.",
				Optional:            true,
				ElementType:         types.StringType,
				Validators:          []validator.Set{setvalidator.SizeAtMost(4)},
			},
			"subnet_ids": schema.ListAttribute{
				MarkdownDescription: "One subnet in each of at least three Availability Zones. Broker *i* (node id *i+1*) lives in subnet *i mod n*. " +
					"Omitted: the default VPC's default subnets of the first three Availability Zones (by name). The plan looks them up and refuses subnets that do not exist or span fewer than three zones. " +
					"Changing the list replaces the cluster, because a broker's volume cannot leave its AZ.",
				Optional:    true,
				Computed:    true,
				ElementType: types.StringType,
				PlanModifiers: []planmodifier.List{
					listplanmodifier.UseStateForUnknown(),
					listplanmodifier.RequiresReplaceIfConfigured(),
				},
			},
			"tags": schema.MapAttribute{
				MarkdownDescription: "Tags for every AWS object of the cluster, over the provider's `default_tags`.",
				Optional:            true,
				ElementType:         types.StringType,
			},
			"tags_all": schema.MapAttribute{
				MarkdownDescription: "`tags` merged over the provider's `default_tags`.",
				Computed:            true,
				ElementType:         types.StringType,
			},
			"wait_for_brokers": schema.BoolAttribute{
				MarkdownDescription: "Wait until every broker answers Kafka metadata with all brokers and a controller (default `true`). " +
					"When no broker address is reachable from where Terraform runs, the provider says so in a warning and does not wait.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(true),
			},
		},
		Blocks: map[string]schema.Block{
			"client_authentication": schema.SingleNestedBlock{
				MarkdownDescription: "Client authentication, in MSK's shape. Omitted: clients are unauthenticated. Each mechanism is its own " +
					"listener: SASL/SCRAM on 9096, SASL/IAM on 9098 (both over TLS), mutual TLS on 9094. The provider itself authenticates with IAM " +
					"(its own AWS credentials, which need `kafka-cluster:*` on the cluster) when IAM is on, else with an administrator SCRAM login " +
					"or client certificate it makes, named in `super.users`. Changing it rolls the brokers.",
				Attributes: map[string]schema.Attribute{
					"unauthenticated": schema.BoolAttribute{
						MarkdownDescription: "Allow clients without authentication: on 9094 over TLS, and on 9092 when plaintext is on. Default `true` " +
							"when no mechanism is configured, `false` otherwise.",
						Optional: true,
					},
				},
				Blocks: map[string]schema.Block{
					"sasl": schema.SingleNestedBlock{
						MarkdownDescription: "SASL mechanisms.",
						Attributes: map[string]schema.Attribute{
							"iam": schema.BoolAttribute{MarkdownDescription: "IAM identity (OAUTHBEARER, port 9098): clients sign with their AWS " +
								"credentials and are authorized by their IAM policies' `kafka-cluster:*` actions, as with MSK.", Optional: true},
							"scram": schema.BoolAttribute{MarkdownDescription: "SCRAM-SHA-512 and SCRAM-SHA-256 (port 9096).", Optional: true},
						},
					},
					"tls": schema.SingleNestedBlock{
						MarkdownDescription: "Mutual TLS on 9094: clients present certificates signed by one of these CAs; the principal is " +
							"the certificate's subject (`User:CN=app,OU=...`).",
						Attributes: map[string]schema.Attribute{
							"certificate_authority_arns": schema.SetAttribute{
								MarkdownDescription: "ARNs of AWS Private CA (ACM PCA) certificate authorities whose client certificates are accepted, as " +
									"with MSK. The provider reads each CA's certificate (`acm-pca:GetCertificateAuthorityCertificate`; the CA must be " +
									"`ACTIVE`) at plan and apply time and gives it to the brokers with `certificate_authority_pems`; the brokers never " +
									"call Private CA. Adding or removing an ARN rolls the brokers in place, one at a time. A CA whose own certificate " +
									"changes later (renewed in Private CA) is picked up by the next apply that rolls the brokers.",
								Optional:    true,
								ElementType: types.StringType,
							},
							"certificate_authority_pems": schema.SetAttribute{
								MarkdownDescription: "PEM certificates of the CAs whose client certificates are accepted, e.g. `[file(\"clients-ca.pem\")]`.",
								Optional:            true,
								ElementType:         types.StringType,
							},
						},
					},
				},
			},
			"encryption_in_transit": schema.SingleNestedBlock{
				MarkdownDescription: "Encryption in transit, in MSK's shape and with MSK's defaults: omitted, clients use TLS only and brokers " +
					"encrypt the traffic between themselves. Changing it rolls the brokers.",
				Attributes: map[string]schema.Attribute{
					"client_broker": schema.StringAttribute{
						MarkdownDescription: "`TLS` (default: 9094, 9096, 9098), `TLS_PLAINTEXT` (those and plaintext 9092) or `PLAINTEXT` (9092 only).",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.OneOf("TLS", "TLS_PLAINTEXT", "PLAINTEXT")},
					},
					"in_cluster": schema.BoolAttribute{
						MarkdownDescription: "Encrypt replication (9093) and the metadata quorum (9095) with TLS, brokers authenticating each " +
							"other with their certificates (default `true`); both ports are open only to the cluster's own brokers (security group).",
						Optional: true,
					},
				},
			},
			"logging":         loggingBlock(),
			"monitoring":      monitoringBlock(),
			"open_monitoring": openMonitoringBlock(),
			"storage": schema.SingleNestedBlock{
				MarkdownDescription: "Each broker's data volume. Size, IOPS, throughput and type change in place (`ModifyVolume`, one change per " +
					"volume every 6 hours on AWS); the brokers grow their filesystem online at once. `volume_size` is a floor: a volume grown " +
					"outside Terraform or by `autoscaling` is not a diff; shrinking is refused.",
				Blocks: map[string]schema.Block{
					"autoscaling": schema.SingleNestedBlock{
						MarkdownDescription: "Storage autoscaling, as MSK's: each broker grows its own volume when it is used at or past " +
							"`target_utilization` percent (df's Use%, the `KafkaDataLogsDiskUsed` metric), by the larger of 10 GiB and 10%, " +
							"up to `max_volume_size`; never shrinks; at most once per volume every 6 hours (EBS's limit). The settings are " +
							"tags on the volumes: changing them rolls nothing. Omitted: volumes grow only when `volume_size` does.",
						Attributes: map[string]schema.Attribute{
							"max_volume_size": schema.Int64Attribute{
								MarkdownDescription: "Largest size in GiB a volume may grow to (at least `volume_size`, at most 16384).",
								Optional:            true,
								Validators:          []validator.Int64{int64validator.Between(1, 16384)},
							},
							"target_utilization": schema.Int64Attribute{
								MarkdownDescription: "Used share of a volume, in percent (10-80; MSK recommends 50-60), at which it grows.",
								Optional:            true,
								Validators:          []validator.Int64{int64validator.Between(10, 80)},
							},
						},
					},
				},
				Attributes: map[string]schema.Attribute{
					"iops": schema.Int64Attribute{
						MarkdownDescription: "Provisioned IOPS (gp3, io1, io2).",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.Between(3000, 256000)},
					},
					"kms_key_arn": schema.StringAttribute{
						MarkdownDescription: "KMS key for the volumes and secrets. Omitted: a customer-managed key with rotation is created " +
							"(alias `alias/tributary/<cluster_id>`) and scheduled for deletion with the cluster. Changing it replaces the cluster.",
						Optional:      true,
						PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplaceIfConfigured()},
						Validators:    []validator.String{stringvalidator.RegexMatches(regexp.MustCompile(`^arn:[a-z-]+:kms:`), "must be a KMS key ARN")},
					},
					"throughput": schema.Int64Attribute{
						MarkdownDescription: "Provisioned throughput in MiB/s (gp3).",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.Between(125, 2000)},
					},
					"volume_size": schema.Int64Attribute{
						MarkdownDescription: "Size of each broker's volume in GiB (default 100).",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.Between(1, 16384)},
					},
					"volume_type": schema.StringAttribute{
						MarkdownDescription: "EBS volume type (default `gp3`).",
						Optional:            true,
						Validators:          []validator.String{stringvalidator.OneOf("gp3", "gp2", "io1", "io2", "st1")},
					},
				},
			},
			"tls_certificate_authority": schema.SingleNestedBlock{
				MarkdownDescription: "Your own CA to sign the broker certificates with, instead of one the provider makes. " +
					"Changing it rolls the brokers.",
				Attributes: map[string]schema.Attribute{
					"certificate_pem": schema.StringAttribute{
						MarkdownDescription: "The CA certificate (PEM); it must be a CA allowed to sign certificates.",
						Optional:            true,
					},
					"private_key_pem": schema.StringAttribute{
						MarkdownDescription: "The CA's private key (PEM, unencrypted); stored in state, sensitive.",
						Optional:            true,
						Sensitive:           true,
					},
				},
			},
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}
