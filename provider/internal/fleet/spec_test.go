package fleet

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func threeAZSpec() *Spec {
	return &Spec{
		ClusterID:    "tc-1",
		Name:         "demo",
		ImageID:      "ami-1",
		InstanceType: "m7g.large",
		BrokersPerAZ: 2,
		Subnets: []Subnet{
			{ID: "subnet-a", AvailabilityZone: "us-east-1a", VPCID: "vpc-1"},
			{ID: "subnet-b", AvailabilityZone: "us-east-1b", VPCID: "vpc-1"},
			{ID: "subnet-c", AvailabilityZone: "us-east-1c", VPCID: "vpc-1"},
		},
		UserData: func(Node, []Node) ([]byte, error) { return []byte("{}"), nil },
	}
}

func TestPlacement(t *testing.T) {
	s := threeAZSpec()
	if got := s.BrokerCount(); got != 6 {
		t.Fatalf("BrokerCount = %d, want 6", got)
	}
	want := map[int32]string{1: "subnet-a", 2: "subnet-b", 3: "subnet-c", 4: "subnet-a", 5: "subnet-b", 6: "subnet-c"}
	for id, sn := range want {
		if got := s.Placement(id).ID; got != sn {
			t.Errorf("Placement(%d) = %s, want %s", id, got, sn)
		}
	}
	if got := s.ControllerCount(); got != 3 {
		t.Errorf("ControllerCount = %d, want 3 (one per AZ)", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Spec)
		ok     bool
	}{
		{"valid", func(*Spec) {}, true},
		{"two subnets in one AZ", func(s *Spec) { s.Subnets[1].AvailabilityZone = "us-east-1a" }, false},
		{"subnets in two VPCs", func(s *Spec) { s.Subnets[2].VPCID = "vpc-2" }, false},
		{"no brokers", func(s *Spec) { s.BrokersPerAZ = 0 }, false},
		{"no image", func(s *Spec) { s.ImageID = "" }, false},
	}
	for _, tt := range tests {
		s := threeAZSpec()
		tt.mutate(s)
		if err := s.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestLaunchHash(t *testing.T) {
	s := threeAZSpec()
	base := s.instanceLaunchHash("p")
	if s.instanceLaunchHash("p") != base {
		t.Fatal("the launch hash is not deterministic")
	}
	for name, change := range map[string]func(*Spec){
		"image":         func(s *Spec) { s.ImageID = "ami-2" },
		"instance type": func(s *Spec) { s.InstanceType = "m7g.xlarge" },
		"boot settings": func(s *Spec) { s.BootSettingsHash = "other" },
	} {
		s2 := threeAZSpec()
		change(s2)
		if s2.instanceLaunchHash("p") == base {
			t.Errorf("a %s change does not change the launch hash: no new template version, no roll", name)
		}
	}
	if s.instanceLaunchHash("other-profile") == base {
		t.Error("a profile change does not change the launch hash")
	}
	s.Storage.SizeGiB, s.Tags = 500, map[string]string{"x": "y"}
	s.Storage.Autoscaling = &StorageAutoscaling{TargetUtilization: 60, MaxSizeGiB: 1000}
	if s.instanceLaunchHash("p") != base {
		t.Error("storage or tag changes (in place) change the launch hash")
	}
}

func TestNeedsRoll(t *testing.T) {
	tests := []struct {
		name string
		b    Broker
		want bool
	}{
		{"launched from the group's version", Broker{InstanceID: "i-1", InstanceState: "running", GroupName: "g", GroupVersion: "2", InstanceVersion: "2"}, false},
		{"launched from an older version", Broker{InstanceID: "i-1", InstanceState: "running", GroupName: "g", GroupVersion: "3", InstanceVersion: "2"}, true},
		{"an earlier provider's instance", Broker{InstanceID: "i-1", InstanceState: "running"}, true},
		{"no instance: its group launches one", Broker{GroupName: "g", GroupVersion: "3"}, false},
		{"terminated", Broker{InstanceID: "i-1", InstanceState: "terminated", GroupName: "g", GroupVersion: "3", InstanceVersion: "2"}, false},
	}
	for _, tt := range tests {
		if got := tt.b.NeedsRoll(); got != tt.want {
			t.Errorf("%s: NeedsRoll() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIngressRulesDiff(t *testing.T) {
	s := threeAZSpec()
	s.ClientPorts = []int32{9092}
	s.ClientCIDRs = []string{"10.0.0.0/16", "2001:db8::/32"}
	s.MonitoringPorts = []int32{MetricsPort, NodeMetricsPort}
	s.MonitoringCIDRs = []string{"192.168.7.0/24"}
	want := s.desiredRules("sg-1")
	if !want[rule{port: MetricsPort, cidr: "192.168.7.0/24"}] || !want[rule{port: NodeMetricsPort, cidr: "192.168.7.0/24"}] ||
		want[rule{port: MetricsPort, cidr: "10.0.0.0/16"}] || want[rule{port: 9092, cidr: "192.168.7.0/24"}] {
		t.Fatalf("monitoring rules must open only the monitoring ports to only the monitoring CIDRs: %v", want)
	}
	if !want[rule{port: 9092, cidr: "10.0.0.0/16"}] || !want[rule{port: 9092, cidr: "2001:db8::/32"}] ||
		!want[rule{port: InterBrokerPort, source: "sg-1"}] || !want[rule{port: ControllerPort, source: "sg-1"}] ||
		!want[rule{port: 9092, source: "sg-1"}] {
		t.Fatalf("desired rules missing entries: %v", want)
	}
	// Round trip: the permissions the rules render to read back as the same rules.
	var perms []ec2types.IpPermission
	for r := range want {
		perms = append(perms, r.permission())
	}
	have := currentRules(perms)
	if len(have) != len(want) {
		t.Fatalf("round trip: %d rules, want %d", len(have), len(want))
	}
	for r := range want {
		if !have[r] {
			t.Errorf("rule %+v lost in the round trip", r)
		}
	}
	// Client and monitoring CIDRs read back apart, each from its own ports.
	if got := cidrsOf(perms, func(p int32) bool { return !isMonitoringPort(p) }); len(got) != 2 || got[0] != "10.0.0.0/16" {
		t.Errorf("client CIDRs = %v", got)
	}
	if got := cidrsOf(perms, isMonitoringPort); len(got) != 1 || got[0] != "192.168.7.0/24" {
		t.Errorf("monitoring CIDRs = %v", got)
	}
	// A rule this provider never writes (a port range) is reported for revocation.
	odd := currentRules([]ec2types.IpPermission{{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(1), ToPort: aws.Int32(100),
		IpRanges: []ec2types.IpRange{{CidrIp: aws.String("0.0.0.0/0")}}}})
	for r := range odd {
		if r.port != -1 {
			t.Errorf("a port range must not be taken for a provider rule: %+v", r)
		}
	}
}

func TestRolePolicyPinsEncryptionContext(t *testing.T) {
	for _, iam := range []bool{false, true} {
		p, err := RolePolicy("tc-1", 2, "arn:aws:kms:us-east-1:000000000000:key/k", "Tributary/Kafka", "", "", "", iam)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"kms:EncryptionContext:tributary:cluster-id":"tc-1"`, `"Resource":"arn:aws:kms:us-east-1:000000000000:key/k"`,
			`"kms:EncryptionContext:tributary:node-id":"2"`, `"cloudwatch:namespace":"Tributary/Kafka"`, `"Action":"kms:Decrypt"`} {
			if !strings.Contains(p, want) {
				t.Errorf("policy lacks %s: %s", want, p)
			}
		}
		if got := strings.Contains(p, "iam:SimulatePrincipalPolicy"); got != iam {
			t.Errorf("IAM authorization %v: policy allows iam:SimulatePrincipalPolicy = %v: %s", iam, got, p)
		}
	}
}

func TestRolePolicyLogGroup(t *testing.T) {
	without, err := RolePolicy("tc-1", 1, "arn:aws:kms:us-east-1:000000000000:key/k", "Tributary/Kafka", "", "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(without, "logs:") || strings.Contains(without, "s3:") {
		t.Errorf("a cluster that ships no logs must not be allowed logs:*: %s", without)
	}
	with, err := RolePolicy("tc-1", 1, "arn:aws:kms:us-east-1:000000000000:key/k", "Tributary/Kafka", "tributary/orders", "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"logs:PutLogEvents"`, `"arn:aws:logs:*:*:log-group:tributary/orders"`, `"arn:aws:logs:*:*:log-group:tributary/orders:*"`} {
		if !strings.Contains(with, want) {
			t.Errorf("policy lacks %s: %s", want, with)
		}
	}
	if strings.Contains(with, `log-group:*`) || strings.Contains(with, `"logs:*"`) {
		t.Errorf("policy reaches beyond the cluster's group: %s", with)
	}
}

func TestRolePolicyLogObjects(t *testing.T) {
	p, err := RolePolicy("tc-1", 1, "arn:aws:kms:us-east-1:000000000000:key/k", "Tributary/Kafka", "", "arn:aws:s3:::kafka-logs/prod/*", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, `{"Action":"s3:PutObject","Effect":"Allow","Resource":"arn:aws:s3:::kafka-logs/prod/*","Sid":"DeliverClusterLogs"}`) {
		t.Errorf("policy does not allow s3:PutObject under the prefix only: %s", p)
	}
	if strings.Contains(p, "logs:") || strings.Contains(p, "s3:GetObject") || strings.Contains(p, "s3:*") {
		t.Errorf("policy allows more than putting log objects: %s", p)
	}
}

func TestRolePolicyLogStream(t *testing.T) {
	const stream = "arn:aws:firehose:us-east-1:000000000000:deliverystream/orders-logs"
	p, err := RolePolicy("tc-1", 1, "arn:aws:kms:us-east-1:000000000000:key/k", "Tributary/Kafka", "", "", stream, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, `{"Action":["firehose:PutRecord","firehose:PutRecordBatch"],"Effect":"Allow","Resource":"`+stream+`","Sid":"SendClusterLogs"}`) {
		t.Errorf("policy does not allow putting records to the stream only: %s", p)
	}
	if strings.Contains(p, "firehose:*") || strings.Contains(p, "firehose:Describe") || strings.Contains(p, "deliverystream/*") {
		t.Errorf("policy allows more than putting records to the stream: %s", p)
	}
	without, err := RolePolicy("tc-1", 1, "arn:aws:kms:us-east-1:000000000000:key/k", "Tributary/Kafka", "", "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(without, "firehose") {
		t.Errorf("policy without a stream mentions Firehose: %s", without)
	}
}
