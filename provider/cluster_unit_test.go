package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
)

func TestResourceAndDataSourceSchemas(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	for _, newRes := range p.Resources(ctx) {
		r := newRes()
		var resp resource.SchemaResponse
		r.Schema(ctx, resource.SchemaRequest{}, &resp)
		if resp.Diagnostics.HasError() {
			t.Fatalf("%T schema: %v", r, resp.Diagnostics)
		}
		if d := resp.Schema.ValidateImplementation(ctx); d.HasError() {
			t.Fatalf("%T schema: %v", r, d)
		}
		for name, a := range resp.Schema.Attributes {
			if a.GetMarkdownDescription() == "" {
				t.Errorf("%T: attribute %s has no MarkdownDescription", r, name)
			}
		}
		for name, b := range resp.Schema.Blocks {
			if name != "timeouts" && b.GetMarkdownDescription() == "" {
				t.Errorf("%T: block %s has no MarkdownDescription", r, name)
			}
		}
	}
	for _, newDS := range p.DataSources(ctx) {
		d := newDS()
		var resp datasource.SchemaResponse
		d.Schema(ctx, datasource.SchemaRequest{}, &resp)
		if resp.Diagnostics.HasError() {
			t.Fatalf("%T schema: %v", d, resp.Diagnostics)
		}
		if diags := resp.Schema.ValidateImplementation(ctx); diags.HasError() {
			t.Fatalf("%T schema: %v", d, diags)
		}
		for name, a := range resp.Schema.Attributes {
			if a.GetMarkdownDescription() == "" {
				t.Errorf("%T: attribute %s has no MarkdownDescription", d, name)
			}
		}
	}
}

func TestInstanceArchitecture(t *testing.T) {
	for typ, want := range map[string]string{
		"m7g.large": "arm64", "c7gn.xlarge": "arm64", "t4g.micro": "arm64", "r8gd.2xlarge": "arm64",
		"m7i.large": "x86_64", "m5dn.large": "x86_64", "g5.xlarge": "x86_64", "t3.medium": "x86_64", "c6a.large": "x86_64",
	} {
		if got := instanceArchitecture(typ); got != want {
			t.Errorf("instanceArchitecture(%q) = %s, want %s", typ, got, want)
		}
	}
}

func TestBootDocumentRoundTrip(t *testing.T) {
	cs := &clusterSpec{EnhancedMonitoring: "DEFAULT"}
	cs.StaticConfig, cs.DynamicConfig = splitBrokerConfig(map[string]string{"num.partitions": "6", "min.insync.replicas": "3"})
	cs.ClusterID, cs.Name, cs.MetricsNamespace = "tc-0123456789abcdef", "orders", "Tributary/Kafka"
	cs.Listeners = []bootconfig.Listener{{Name: "PLAINTEXT", Port: plaintextPort, SecurityProtocol: "PLAINTEXT"}}
	nodes := []fleet.Node{
		{NodeID: 1, AvailabilityZone: "a", PrivateIP: "127.1.0.10", VolumeID: "vol-00000000000000001"},
		{NodeID: 2, AvailabilityZone: "b", PrivateIP: "127.1.1.10", VolumeID: "vol-00000000000000002"},
		{NodeID: 3, AvailabilityZone: "c", PrivateIP: "127.1.2.10", VolumeID: "vol-00000000000000003"},
	}
	raw, err := cs.userData(nodes[1], nodes)
	if err != nil {
		t.Fatalf("userData: %v", err)
	}
	doc, err := bootconfig.Decode(raw)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if doc.NodeID != 2 || doc.Rack != "b" || doc.DataVolume.VolumeID != "vol-00000000000000002" || len(doc.Controllers) != 3 ||
		doc.Controllers[2].Host != "127.1.2.10" || doc.BrokerConfig["num.partitions"] != "6" {
		t.Errorf("decoded document = %+v", doc)
	}
	// Open monitoring rides in the document with the host metrics port.
	cs.OpenMonitoring = &bootconfig.OpenMonitoring{JMXExporter: true, NodeExporter: true, AllowedCIDRs: []string{"10.0.0.0/16"}}
	raw, err = cs.userData(nodes[0], nodes)
	if err != nil {
		t.Fatalf("userData: %v", err)
	}
	om, err := bootconfig.Decode(raw)
	if err != nil {
		t.Fatalf("Decode with open monitoring: %v", err)
	}
	if om.OpenMonitoring == nil || !om.OpenMonitoring.NodeExporter || om.Ports.NodeMetrics != bootconfig.DefaultNodeMetricsPort ||
		len(om.OpenMonitoring.AllowedCIDRs) != 1 {
		t.Errorf("open monitoring decoded as %+v, ports %+v", om.OpenMonitoring, om.Ports)
	}
	// S3 log delivery rides in the document beside CloudWatch Logs.
	cs.Logging = &bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "tributary/orders"},
		S3: &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs", Prefix: "prod"}}
	raw, err = cs.userData(nodes[0], nodes)
	if err != nil {
		t.Fatalf("userData with logging: %v", err)
	}
	lg, err := bootconfig.Decode(raw)
	if err != nil {
		t.Fatalf("Decode with logging: %v", err)
	}
	if lg.Logging == nil || lg.Logging.S3 == nil || *lg.Logging.S3 != *cs.Logging.S3 || lg.Logging.CloudWatchLogs.LogGroup != "tributary/orders" {
		t.Errorf("logging decoded as %+v", lg.Logging)
	}
	// Dynamic settings are applied live, never launched with: removing one
	// must restore the default, not a value in the brokers' user data.
	if _, ok := doc.BrokerConfig["min.insync.replicas"]; ok {
		t.Errorf("the boot document carries the dynamic min.insync.replicas: %v", doc.BrokerConfig)
	}
}

func TestBootstrapStringIsDeterministic(t *testing.T) {
	brokers := []fleet.Broker{{NodeID: 1, PrivateIP: "10.0.2.9"}, {NodeID: 2, PrivateIP: "10.0.1.5"}, {NodeID: 3, PrivateIP: "fd00::1"}}
	want := "10.0.2.9:9092,10.0.1.5:9092,[fd00::1]:9092"
	for range 3 {
		if got := bootstrapString(brokers, 9092); got != want {
			t.Fatalf("bootstrapString = %q, want %q", got, want)
		}
	}
}

func TestBootSettingsHashSeesEveryBootSetting(t *testing.T) {
	base := func() *clusterSpec {
		cs := &clusterSpec{StaticConfig: map[string]string{"num.partitions": "1"}, EnhancedMonitoring: "DEFAULT"}
		cs.Name, cs.MetricsNamespace = "n", "ns"
		return cs
	}
	h := base().bootSettingsHash()
	for name, change := range map[string]func(*clusterSpec){
		"broker config": func(c *clusterSpec) { c.StaticConfig["num.partitions"] = "2" },
		"monitoring":    func(c *clusterSpec) { c.EnhancedMonitoring = "PER_BROKER" },
		"namespace":     func(c *clusterSpec) { c.MetricsNamespace = "other" },
		"open monitoring": func(c *clusterSpec) {
			c.OpenMonitoring = &bootconfig.OpenMonitoring{NodeExporter: true, AllowedCIDRs: []string{"10.0.0.0/16"}}
		},
		"log group": func(c *clusterSpec) {
			c.Logging = &bootconfig.Logging{CloudWatchLogs: &bootconfig.CloudWatchLogs{Enabled: true, LogGroup: "g"}}
		},
		"s3 logs": func(c *clusterSpec) {
			c.Logging = &bootconfig.Logging{S3: &bootconfig.S3Logs{Enabled: true, Bucket: "kafka-logs", Prefix: "p"}}
		},
	} {
		cs := base()
		change(cs)
		if cs.bootSettingsHash() == h {
			t.Errorf("a %s change does not change the boot settings hash", name)
		}
	}
	dyn := base()
	dyn.DynamicConfig = map[string]string{"log.retention.ms": "1000"}
	if dyn.bootSettingsHash() != h {
		t.Error("a dynamic setting changes the boot settings hash (it would roll the brokers)")
	}
}
