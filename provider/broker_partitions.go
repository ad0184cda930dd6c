package provider

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A cluster's max.broker.partitions (the partition replicas one broker may
// hold) follows its instance type, as Amazon MSK's partitions-per-broker
// limit does, unless broker_config names the setting. A broker holds a
// few buffers, a file handle set and replication state per partition
// replica: a t3.small cluster allowed the brokers' default of 10,000 took
// topics until its brokers ran out of memory.

// maxBrokerPartitionsSetting is the brokers' cluster-wide dynamic setting.
const maxBrokerPartitionsSetting = "max.broker.partitions"

// mskBrokerPartitions is Amazon MSK's limit for the broker types it
// offers (kafka.<type>; its quota page), Standard brokers.
var mskBrokerPartitions = func() map[string]int {
	out := map[string]int{"t3.small": 300}
	for _, family := range []string{"m5", "m7g"} {
		for size, limit := range map[string]int{"large": 1000, "xlarge": 1000, "2xlarge": 2000, "4xlarge": 4000, "8xlarge": 4000,
			"12xlarge": 4000, "16xlarge": 4000, "24xlarge": 4000} {
			if family == "m7g" && size == "24xlarge" {
				continue // MSK's m7g stops at 16xlarge
			}
			out[family+"."+size] = limit
		}
	}
	return out
}()

// partitionsForMemory is the rule for the instance types MSK does not
// offer, by the instance's memory: 150 partition replicas per GiB below
// 8 GiB (t3.small's 300 on 2 GiB), then MSK's steps: 1,000 from 8 GiB
// (m5.large, m5.xlarge), 2,000 from 32 GiB (m5.2xlarge), 4,000 from 64
// GiB (m5.4xlarge and larger). It gives every type of MSK's table its
// value (TestPartitionRuleMatchesMSK); memory, not vCPUs, because MSK's
// m5.large and m5.xlarge share a limit with twice the vCPUs.
func partitionsForMemory(gib float64) int {
	switch {
	case gib >= 64:
		return 4000
	case gib >= 32:
		return 2000
	case gib >= 8:
		return 1000
	default:
		return max(1, int(150*gib))
	}
}

// burstableGiB is the memory of the burstable families' sizes (t2, t3,
// t3a, t4g), which do not follow a memory-per-vCPU ratio.
var burstableGiB = map[string]float64{"nano": 0.5, "micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32}

// gibPerVCPU is the memory per vCPU of the current EC2 families by their
// class letters: general purpose (m) 4, compute (c) 2, memory (r) 8,
// high memory (x) 16 (x2iedn has 32: counted low), z1d 8, storage (i, d)
// 8, a1 2. A class not here counts as 2, the least of them, so that an
// unknown family gets the smaller limit rather than running out of
// memory.
var gibPerVCPU = map[string]float64{"m": 4, "c": 2, "r": 8, "x": 16, "z": 8, "i": 8, "d": 8, "a": 2}

// instanceTypeName splits an EC2 instance type: class letters, generation
// and attributes, size.
var instanceTypeName = regexp.MustCompile(`^([a-z]+)([0-9]+)([a-z-]*)\.([a-z0-9-]+)$`)

// brokerPartitionsFor returns max.broker.partitions for brokers of
// instanceType and how it was found, for documentation and messages.
func brokerPartitionsFor(instanceType string) (int, string) {
	if n, ok := mskBrokerPartitions[instanceType]; ok {
		return n, "Amazon MSK's limit for kafka." + instanceType
	}
	gib, ok := instanceMemoryGiB(instanceType)
	if !ok {
		// A size the provider cannot read: the smallest MSK limit
		// rather than a guess that could exhaust the broker's memory.
		return mskBrokerPartitions["t3.small"], "the smallest MSK limit: the size of " + instanceType + " is not known to the provider"
	}
	return partitionsForMemory(gib), fmt.Sprintf("%s has about %s GiB of memory", instanceType, strconv.FormatFloat(gib, 'f', -1, 64))
}

// instanceMemoryGiB estimates an instance type's memory from its name:
// the burstable families' sizes, else vCPUs of the size (medium 1, large
// 2, xlarge 4, Nxlarge 4N) times the family's memory per vCPU. Bare-metal
// sizes count as 64 GiB: every current family's metal has at least that.
func instanceMemoryGiB(instanceType string) (float64, bool) {
	if _, size, ok := strings.Cut(instanceType, "."); ok && strings.HasPrefix(size, "metal") {
		return 64, true
	}
	m := instanceTypeName.FindStringSubmatch(instanceType)
	if m == nil {
		return 0, false
	}
	class, size := m[1], m[4]
	if class == "t" {
		gib, ok := burstableGiB[size]
		return gib, ok
	}
	var vcpus float64
	switch {
	case size == "medium":
		vcpus = 1
	case size == "large":
		vcpus = 2
	case size == "xlarge":
		vcpus = 4
	case strings.HasSuffix(size, "xlarge"):
		n, err := strconv.Atoi(strings.TrimSuffix(size, "xlarge"))
		if err != nil || n < 1 {
			return 0, false
		}
		vcpus = 4 * float64(n)
	default:
		return 0, false
	}
	ratio, ok := gibPerVCPU[class]
	if !ok {
		ratio = 2
	}
	return vcpus * ratio, true
}

// clusterBrokerPartitions is the cluster's max.broker.partitions: the
// value broker_config names, else brokerPartitionsFor(instanceType); 0
// (not checked) for a value the brokers would not take, which
// broker_config's own validation reports. from says where it came from.
func clusterBrokerPartitions(brokerConfig map[string]string, instanceType string) (limit int, from string) {
	if v, ok := brokerConfig[maxBrokerPartitionsSetting]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return 0, ""
		}
		return n, "max.broker.partitions from the cluster's broker_config"
	}
	n, why := brokerPartitionsFor(instanceType)
	return n, fmt.Sprintf("max.broker.partitions unset in broker_config: %d for instance type %s, %s", n, instanceType, why)
}

// sizedBrokerConfig is the cluster-wide dynamic settings the provider sets
// itself where broker_config does not name them: max.broker.partitions by
// instance type. nil when broker_config names it.
func sizedBrokerConfig(brokerConfig map[string]string, instanceType string) map[string]string {
	if _, ok := brokerConfig[maxBrokerPartitionsSetting]; ok {
		return nil
	}
	n, _ := brokerPartitionsFor(instanceType)
	return map[string]string{maxBrokerPartitionsSetting: strconv.Itoa(n)}
}

// providerSized reports whether the brokers' cluster-wide value v of name
// is the one the provider sets itself for instanceType (sizedBrokerConfig),
// which broker_config then does not show.
func providerSized(name, v, instanceType string) bool {
	sized, ok := sizedBrokerConfig(nil, instanceType)[name]
	return ok && sameBrokerValue(name, v, sized)
}

// partitionsPerBrokerDoc is the resource documentation's section on
// max.broker.partitions, its table read from mskBrokerPartitions.
func partitionsPerBrokerDoc() string {
	var b strings.Builder
	b.WriteString("## Partitions per broker\n\n" +
		"The brokers refuse (`POLICY_VIOLATION`, naming the broker, what it holds and the limit) a topic, new partitions or a reassignment " +
		"that would put more partition replicas on one broker than the cluster's `max.broker.partitions`, as Amazon MSK limits partitions " +
		"per broker by broker size. The provider sets it for the whole cluster from `instance_type`, unless `broker_config` names " +
		"`max.broker.partitions` (then that value applies); a change of `instance_type` sets the new type's value before the brokers roll. " +
		"Lowering it, by either, below what a broker holds already is allowed, as in Kafka: that broker keeps its partitions and refuses more. " +
		"It is set through the Kafka protocol, so with `wait_for_brokers = false` the provider cannot set it (a warning says so) and the " +
		"brokers apply their own default, 10000, until an apply reaches them.\n\n" +
		"Amazon MSK's limits, replicas counted:\n\n| instance type | partition replicas per broker |\n|---|---|\n")
	rows := []struct{ types, limit string }{{"`t3.small`", "300"}, {"`m5.large`, `m5.xlarge`, `m7g.large`, `m7g.xlarge`", "1000"},
		{"`m5.2xlarge`, `m7g.2xlarge`", "2000"}, {"`m5.4xlarge`, `m7g.4xlarge` and larger", "4000"}}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", r.types, r.limit)
	}
	b.WriteString("\nOther instance types (Tributary runs on any EC2 type: other families, other Graviton types) get a value by their memory, " +
		"which gives each type above its MSK value: 150 per GiB below 8 GiB (`t3.medium`, 4 GiB: 600; `t3.micro`: 150), 1000 from 8 GiB, " +
		"2000 from 32 GiB, 4000 from 64 GiB. The memory is read from the type's name: the burstable sizes (nano 0.5 GiB to 2xlarge 32 GiB), " +
		"else the size's vCPUs (medium 1, large 2, xlarge 4, Nxlarge 4N) times the family's memory per vCPU: 4 GiB for `m`, 2 for `c`, 8 for " +
		"`r`, `i`, `d` and `z`, 16 for `x`; a family not listed counts as 2 GiB per vCPU, a bare-metal size as 64 GiB, and a size the provider " +
		"cannot read gets 300. So `c7g.large` (4 GiB) gets 600, `r7g.large` (16 GiB) 1000, `m7i.8xlarge` 4000.")
	return b.String()
}
