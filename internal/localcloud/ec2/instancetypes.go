package ec2

import (
	"context"
	"regexp"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// instanceType is one entry of the emulated instance type catalog: the families a Kafka
// cluster plausibly runs on (general purpose, memory and compute optimized, burstable), on both
// architectures, listed by DescribeInstanceTypes; other well-formed names are derived (see
// lookupInstanceType). The emulator does not limit CPU or memory; the catalog exists so that
// DescribeInstanceTypes answers and RunInstances refuses unknown types and an image whose
// architecture does not match the type, as EC2 does.
type instanceType struct {
	Name         string
	Architecture string // x86_64 | arm64
	VCPUs        int
	MemoryMiB    int
	Burstable    bool
	Current      bool
}

var instanceTypes = buildInstanceTypes()

func buildInstanceTypes() map[string]instanceType {
	out := map[string]instanceType{}
	sizes := []struct {
		name  string
		vcpus int
	}{{"large", 2}, {"xlarge", 4}, {"2xlarge", 8}, {"4xlarge", 16}, {"8xlarge", 32}, {"12xlarge", 48}, {"16xlarge", 64}}
	families := []struct {
		name         string
		arch         string
		gibPerVCPU   int
		largestVCPUs int
	}{
		{"m5", "x86_64", 4, 48}, {"m6i", "x86_64", 4, 64}, {"m7i", "x86_64", 4, 64}, {"m6g", "arm64", 4, 64}, {"m7g", "arm64", 4, 64},
		{"r5", "x86_64", 8, 48}, {"r6i", "x86_64", 8, 64}, {"r7i", "x86_64", 8, 64}, {"r6g", "arm64", 8, 64}, {"r7g", "arm64", 8, 64},
		{"c5", "x86_64", 2, 48}, {"c6i", "x86_64", 2, 64}, {"c7i", "x86_64", 2, 64}, {"c6g", "arm64", 2, 64}, {"c7g", "arm64", 2, 64},
	}
	for _, f := range families {
		for _, s := range sizes {
			if s.vcpus > f.largestVCPUs {
				continue
			}
			name := f.name + "." + s.name
			out[name] = instanceType{Name: name, Architecture: f.arch, VCPUs: s.vcpus, MemoryMiB: s.vcpus * f.gibPerVCPU * 1024, Current: true}
		}
	}
	burstable := []struct {
		size      string
		vcpus     int
		memoryMiB int
	}{{"nano", 2, 512}, {"micro", 2, 1024}, {"small", 2, 2048}, {"medium", 2, 4096}, {"large", 2, 8192}, {"xlarge", 4, 16384}, {"2xlarge", 8, 32768}}
	for _, fam := range []struct{ name, arch string }{{"t3", "x86_64"}, {"t3a", "x86_64"}, {"t4g", "arm64"}} {
		for _, b := range burstable {
			name := fam.name + "." + b.size
			out[name] = instanceType{Name: name, Architecture: fam.arch, VCPUs: b.vcpus, MemoryMiB: b.memoryMiB, Burstable: true, Current: true}
		}
	}
	// EC2's default when RunInstances names no type.
	out["m1.small"] = instanceType{Name: "m1.small", Architecture: "x86_64", VCPUs: 1, MemoryMiB: 1740}
	return out
}

var (
	familyPattern = regexp.MustCompile(`^([a-z]+)([0-9]+)([a-z]*)(-flex)?$`)
	sizeVCPUs     = map[string]int{"nano": 2, "micro": 2, "small": 2, "medium": 2, "large": 2, "xlarge": 4, "2xlarge": 8, "3xlarge": 12,
		"4xlarge": 16, "6xlarge": 24, "8xlarge": 32, "9xlarge": 36, "12xlarge": 48, "16xlarge": 64, "18xlarge": 72,
		"24xlarge": 96, "32xlarge": 128, "48xlarge": 192, "metal": 64}
)

// lookupInstanceType finds a type in the catalog or, for the many families it does not list,
// derives one from the name as EC2 names them: a Graviton family has a "g" among the letters
// after its generation (m7g, c7gn, r8gd, t4g), memory per vCPU follows the family letter.
func lookupInstanceType(name string) (instanceType, bool) {
	if it, ok := instanceTypes[name]; ok {
		return it, true
	}
	family, size, ok := strings.Cut(name, ".")
	if !ok {
		return instanceType{}, false
	}
	m := familyPattern.FindStringSubmatch(family)
	vcpus, known := sizeVCPUs[size]
	if m == nil || !known {
		return instanceType{}, false
	}
	arch := "x86_64"
	if strings.Contains(m[3], "g") {
		arch = "arm64"
	}
	gib := map[string]int{"c": 2, "m": 4, "t": 4, "r": 8, "x": 16, "z": 8}[m[1]]
	if gib == 0 {
		gib = 4
	}
	return instanceType{Name: name, Architecture: arch, VCPUs: vcpus, MemoryMiB: vcpus * gib * 1024, Burstable: m[1] == "t", Current: true}, true
}

// checkInstanceType validates a type for an image of arch.
func checkInstanceType(name, arch string) error {
	it, ok := lookupInstanceType(name)
	if !ok {
		return awsapi.Errorf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", name)
	}
	if arch != "" && it.Architecture != arch {
		return awsapi.Errorf("InvalidParameterValue", "The architecture '%s' of the specified instance type does not match the architecture '%s' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again. You can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type or AMI.", it.Architecture, arch)
	}
	return nil
}

type xInstanceTypeInfo struct {
	InstanceType      string   `xml:"instanceType"`
	CurrentGeneration bool     `xml:"currentGeneration"`
	FreeTierEligible  bool     `xml:"freeTierEligible"`
	UsageClasses      []string `xml:"supportedUsageClasses>item"`
	RootDeviceTypes   []string `xml:"supportedRootDeviceTypes>item"`
	Virtualization    []string `xml:"supportedVirtualizationTypes>item"`
	BareMetal         bool     `xml:"bareMetal"`
	Hypervisor        string   `xml:"hypervisor"`
	Processor         struct {
		Architectures []string `xml:"supportedArchitectures>item"`
	} `xml:"processorInfo"`
	VCPU struct {
		DefaultVCPUs int `xml:"defaultVCpus"`
	} `xml:"vCpuInfo"`
	Memory struct {
		SizeInMiB int `xml:"sizeInMiB"`
	} `xml:"memoryInfo"`
	InstanceStorageSupported bool `xml:"instanceStorageSupported"`
	EBS                      struct {
		EBSOptimizedSupport string `xml:"ebsOptimizedSupport"`
		EncryptionSupport   string `xml:"encryptionSupport"`
		NVMeSupport         string `xml:"nvmeSupport"`
	} `xml:"ebsInfo"`
	Network struct {
		NetworkPerformance       string `xml:"networkPerformance"`
		MaximumNetworkInterfaces int    `xml:"maximumNetworkInterfaces"`
		IPv4PerInterface         int    `xml:"ipv4AddressesPerInterface"`
		EnaSupport               string `xml:"enaSupport"`
	} `xml:"networkInfo"`
	Burstable bool `xml:"burstablePerformanceSupported"`
}

func (s *Service) describeInstanceTypes(ctx context.Context, req *awsapi.Request, p params) (*awsapi.Response, error) {
	names := p.list("InstanceType")
	catalog := instanceTypes
	if len(names) > 0 {
		catalog = map[string]instanceType{}
		for _, n := range names {
			it, ok := lookupInstanceType(n)
			if !ok {
				return nil, awsapi.Errorf("InvalidInstanceType", "The following supplied instance types do not exist: [%s]", n)
			}
			catalog[n] = it
		}
	}
	filters := parseFilters(p)
	keep, err := selectMatching(catalog, nil, filters, func(it instanceType) (tags, fieldFunc) {
		return nil, func(f string) ([]string, bool) {
			switch f {
			case "instance-type":
				return []string{it.Name}, true
			case "processor-info.supported-architecture":
				return []string{it.Architecture}, true
			case "vcpu-info.default-vcpus":
				return []string{strconv.Itoa(it.VCPUs)}, true
			case "memory-info.size-in-mib":
				return []string{strconv.Itoa(it.MemoryMiB)}, true
			case "current-generation":
				return []string{boolString(it.Current)}, true
			case "burstable-performance-supported":
				return []string{boolString(it.Burstable)}, true
			}
			return nil, false
		}
	})
	if err != nil {
		return nil, err
	}
	pg, next, err := page(keep, p, 5, 100)
	if err != nil {
		return nil, err
	}
	out := &struct {
		meta
		Types     items[xInstanceTypeInfo] `xml:"instanceTypeSet"`
		NextToken string                   `xml:"nextToken,omitempty"`
	}{NextToken: next}
	for _, name := range pg {
		it := catalog[name]
		x := xInstanceTypeInfo{InstanceType: it.Name, CurrentGeneration: it.Current, UsageClasses: []string{"on-demand", "spot"},
			RootDeviceTypes: []string{"ebs"}, Virtualization: []string{"hvm"}, Hypervisor: "nitro", Burstable: it.Burstable}
		x.Processor.Architectures = []string{it.Architecture}
		x.VCPU.DefaultVCPUs = it.VCPUs
		x.Memory.SizeInMiB = it.MemoryMiB
		x.EBS.EBSOptimizedSupport, x.EBS.EncryptionSupport, x.EBS.NVMeSupport = "default", "supported", "required"
		x.Network.NetworkPerformance, x.Network.MaximumNetworkInterfaces, x.Network.IPv4PerInterface, x.Network.EnaSupport = "Up to 12.5 Gigabit", 4, 15, "required"
		if strings.HasPrefix(it.Name, "m1.") {
			x.Hypervisor, x.EBS.NVMeSupport, x.EBS.EBSOptimizedSupport, x.Network.EnaSupport = "xen", "unsupported", "unsupported", "unsupported"
		}
		out.Types = append(out.Types, x)
	}
	return respond(req, out)
}
