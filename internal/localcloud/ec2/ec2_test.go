package ec2

import (
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"net/url"
	"reflect"
	"testing"
)

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"tributary-broker-*", "tributary-broker-1.2.0-x86_64", true},
		{"tributary-broker-*-arm64", "tributary-broker-1.2.0-x86_64", false},
		{"c?", "c1", true},
		{"c?", "c12", false},
		{"*", "", true},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestParamsFlattenedLists(t *testing.T) {
	v := url.Values{
		"InstanceId.2":                         {"i-2"},
		"InstanceId.1":                         {"i-1"},
		"InstanceId.10":                        {"i-10"},
		"Filter.1.Name":                        {"tag:k"},
		"Filter.1.Value.1":                     {"a"},
		"Filter.1.Value.2":                     {"b"},
		"Filter.2.Name":                        {"vpc-id"},
		"Filter.2.Value.1":                     {"vpc-1"},
		"NetworkInterface.1.SecurityGroupId.1": {"sg-1"},
		"NetworkInterface.1.DeviceIndex":       {"0"},
		"TagSpecification.1.ResourceType":      {"volume"},
		"TagSpecification.1.Tag.1.Key":         {"k"},
		"TagSpecification.1.Tag.1.Value":       {"v"},
	}
	p := newParams(v)
	if got := p.list("InstanceId"); !reflect.DeepEqual(got, []string{"i-1", "i-2", "i-10"}) {
		t.Errorf("list: %v", got)
	}
	want := []filter{{"tag:k", []string{"a", "b"}}, {"vpc-id", []string{"vpc-1"}}}
	if got := parseFilters(p); !reflect.DeepEqual(got, want) {
		t.Errorf("filters: %+v", got)
	}
	nis := p.structs("NetworkInterface")
	if len(nis) != 1 || nis[0].str("DeviceIndex") != "0" || !reflect.DeepEqual(nis[0].list("SecurityGroupId"), []string{"sg-1"}) {
		t.Errorf("network interfaces: %+v", nis)
	}
	tg, err := p.tagSpecs("volume")
	if err != nil || tg["k"] != "v" {
		t.Errorf("tag specs: %v %v", tg, err)
	}
	if tg, _ := p.tagSpecs("instance"); len(tg) != 0 {
		t.Errorf("tags for another resource type: %v", tg)
	}
}

func TestVolumeSpecValidation(t *testing.T) {
	tests := []struct {
		name     string
		spec     volumeSpec
		wantCode string
		wantIOPS int
		wantTput int
	}{
		{"gp3 defaults", volumeSpec{Size: 100, Type: "gp3"}, "", 3000, 125},
		{"gp3 max", volumeSpec{Size: 1000, Type: "gp3", IOPS: 16000, Throughput: 1000}, "", 16000, 1000},
		{"gp3 iops too high", volumeSpec{Size: 1000, Type: "gp3", IOPS: 16001}, "InvalidParameterValue", 0, 0},
		{"gp3 iops below baseline", volumeSpec{Size: 100, Type: "gp3", IOPS: 2000}, "InvalidParameterValue", 0, 0},
		{"gp3 iops per GiB", volumeSpec{Size: 8, Type: "gp3", IOPS: 5000}, "InvalidParameterValue", 0, 0},
		{"gp3 throughput per iops", volumeSpec{Size: 100, Type: "gp3", IOPS: 3000, Throughput: 800}, "InvalidParameterValue", 0, 0},
		{"gp3 throughput too high", volumeSpec{Size: 1000, Type: "gp3", IOPS: 16000, Throughput: 1001}, "InvalidParameterValue", 0, 0},
		{"gp3 too big", volumeSpec{Size: 16385, Type: "gp3"}, "InvalidParameterValue", 0, 0},
		{"gp2 with iops", volumeSpec{Size: 100, Type: "gp2", IOPS: 3000}, "InvalidParameterCombination", 0, 0},
		{"gp2 with throughput", volumeSpec{Size: 100, Type: "gp2", Throughput: 200}, "InvalidParameterCombination", 0, 0},
		{"io2 needs iops", volumeSpec{Size: 100, Type: "io2"}, "MissingParameter", 0, 0},
		{"io2", volumeSpec{Size: 100, Type: "io2", IOPS: 50000}, "", 50000, 0},
		{"st1 too small", volumeSpec{Size: 100, Type: "st1"}, "InvalidParameterValue", 0, 0},
		{"unknown type", volumeSpec{Size: 100, Type: "gp9"}, "InvalidParameterValue", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			err := spec.validate()
			code := ""
			if err != nil {
				code = codeOf(err)
			}
			if code != tt.wantCode {
				t.Fatalf("error %v, want code %q", err, tt.wantCode)
			}
			if err == nil && (spec.IOPS != tt.wantIOPS || spec.Throughput != tt.wantTput) {
				t.Fatalf("defaults: iops %d throughput %d", spec.IOPS, spec.Throughput)
			}
		})
	}
}

func TestRegionCode(t *testing.T) {
	for region, want := range map[string]string{"us-east-1": "use1", "eu-west-2": "euw2", "ap-southeast-1": "apse1", "ca-central-1": "cac1"} {
		if got := regionCode(region); got != want {
			t.Errorf("regionCode(%s) = %s, want %s", region, got, want)
		}
	}
}

// codeOf returns the AWS error code of err.
func codeOf(err error) string { return awsapi.AsError(err).Code }

func TestLookupInstanceType(t *testing.T) {
	tests := []struct {
		name, arch string
		vcpus      int
		ok         bool
	}{
		{"m7g.large", "arm64", 2, true},
		{"c7gn.xlarge", "arm64", 4, true},
		{"r8gd.2xlarge", "arm64", 8, true},
		{"t4g.micro", "arm64", 2, true},
		{"m5dn.large", "x86_64", 2, true},
		{"g5.xlarge", "x86_64", 4, true},
		{"t3.medium", "x86_64", 2, true},
		{"m7i-flex.large", "x86_64", 2, true},
		{"m99.huge", "", 0, false},
		{"large", "", 0, false},
	}
	for _, tt := range tests {
		it, ok := lookupInstanceType(tt.name)
		if ok != tt.ok || ok && (it.Architecture != tt.arch || it.VCPUs != tt.vcpus) {
			t.Errorf("lookupInstanceType(%s) = %+v %v, want %s/%d %v", tt.name, it, ok, tt.arch, tt.vcpus, tt.ok)
		}
	}
}
