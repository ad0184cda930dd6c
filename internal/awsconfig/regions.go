package awsconfig

import (
	"fmt"
	"slices"
	"strings"
)

// knownRegions lists the AWS regions by partition. A typo in `region` would
// otherwise surface only as a DNS failure deep inside the first API call;
// skip_region_validation turns the check off for regions added after this
// list, as in terraform-provider-aws.
var knownRegions = map[string][]string{
	"aws": {
		"af-south-1",
		"ap-east-1", "ap-east-2",
		"ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
		"ap-south-1", "ap-south-2",
		"ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
		"ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
		"ca-central-1", "ca-west-1",
		"eu-central-1", "eu-central-2",
		"eu-north-1",
		"eu-south-1", "eu-south-2",
		"eu-west-1", "eu-west-2", "eu-west-3",
		"il-central-1",
		"me-central-1", "me-south-1",
		"mx-central-1",
		"sa-east-1",
		"us-east-1", "us-east-2",
		"us-west-1", "us-west-2",
	},
	"aws-cn":     {"cn-north-1", "cn-northwest-1"},
	"aws-us-gov": {"us-gov-east-1", "us-gov-west-1"},
	"aws-eusc":   {"eusc-de-east-1"},
	"aws-iso":    {"us-iso-east-1", "us-iso-west-1"},
	"aws-iso-b":  {"us-isob-east-1"},
	"aws-iso-e":  {"eu-isoe-west-1"},
	"aws-iso-f":  {"us-isof-east-1", "us-isof-south-1"},
}

// ValidateRegion reports whether region is a known AWS region.
func ValidateRegion(region string) error {
	for _, regions := range knownRegions {
		if slices.Contains(regions, region) {
			return nil
		}
	}
	return fmt.Errorf("invalid AWS region %q: not a known region (set skip_region_validation = true for a region newer than this provider, or for an emulator using a made-up region)", region)
}

// PartitionForRegion returns the partition of a region, "aws" when unknown.
func PartitionForRegion(region string) string {
	for partition, regions := range knownRegions {
		if slices.Contains(regions, region) {
			return partition
		}
	}
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}
