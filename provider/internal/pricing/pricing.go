// Package pricing estimates what a Tributary cluster costs a month on AWS,
// and what Amazon MSK charges for the same brokers and storage, from a
// table of published on-demand list prices kept in the repository. It
// answers at plan time, without calling AWS's Price List API (which needs
// credentials and a network path a plan may not have); docs/cost.md gives
// the table's date and every assumption.
package pricing

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// TableDate is when the prices below were read from AWS's pricing pages.
const TableDate = "2026-12-01"

// HoursPerMonth is AWS's billing month (365 days * 24 hours / 12).
const HoursPerMonth = 730

// secondsPerMonth goes with HoursPerMonth.
const secondsPerMonth = HoursPerMonth * 3600

// regionPrices are one region's list prices in USD.
type regionPrices struct {
	ec2Hourly map[string]float64 // on-demand Linux, by EC2 instance type
	mskHourly map[string]float64 // MSK provisioned broker-hour, by EC2 instance type (kafka.<type>)

	gp3GBMonth, gp3IOPSMonth, gp3MiBpsMonth float64 // IOPS above 3000 and MiB/s above 125 are charged
	gp2GBMonth                              float64
	mskStorageGBMonth                       float64
	crossAZPerGB                            float64 // charged in each direction
	kmsKeyMonth                             float64 // a customer-managed key
}

// us is the price list of us-east-1, us-east-2 and us-west-2, which
// publish the same prices for every item here.
var us = regionPrices{
	ec2Hourly: map[string]float64{
		"t3.small": 0.0208, "t3.medium": 0.0416, "t3.large": 0.0832,
		"t4g.small": 0.0168, "t4g.medium": 0.0336, "t4g.large": 0.0672,
		"m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "m5.4xlarge": 0.768, "m5.8xlarge": 1.536, "m5.12xlarge": 2.304,
		"m7g.large": 0.0816, "m7g.xlarge": 0.1632, "m7g.2xlarge": 0.3264, "m7g.4xlarge": 0.6528, "m7g.8xlarge": 1.3056, "m7g.12xlarge": 1.9584,
	},
	mskHourly: map[string]float64{
		"t3.small": 0.0456,
		"m5.large": 0.21, "m5.xlarge": 0.42, "m5.2xlarge": 0.84, "m5.4xlarge": 1.68, "m5.8xlarge": 3.36, "m5.12xlarge": 5.04,
		"m7g.large": 0.204, "m7g.xlarge": 0.408, "m7g.2xlarge": 0.816, "m7g.4xlarge": 1.632, "m7g.8xlarge": 3.264, "m7g.12xlarge": 4.896,
	},
	gp3GBMonth: 0.08, gp3IOPSMonth: 0.005, gp3MiBpsMonth: 0.04,
	gp2GBMonth:        0.10,
	mskStorageGBMonth: 0.10,
	crossAZPerGB:      0.01,
	kmsKeyMonth:       1,
}

var regions = map[string]*regionPrices{"us-east-1": &us, "us-east-2": &us, "us-west-2": &us}

// Regions lists the regions the table covers.
func Regions() []string {
	var out []string
	for r := range regions {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Cluster is what the estimate is of.
type Cluster struct {
	Region          string
	InstanceType    string // EC2's name, e.g. m7g.large
	Brokers         int
	VolumeType      string // gp3 or gp2
	VolumeGiB       int    // per broker
	IOPS            int    // gp3 provisioned IOPS (3000 included)
	ThroughputMiBps int    // gp3 provisioned throughput (125 included)
	// ReplicationFactor of the data written; each copy past the leader's
	// goes to another Availability Zone.
	ReplicationFactor int
	// WriteMiBps is the average rate producers write, before replication.
	WriteMiBps float64
	// OwnKMSKey is true when the cluster has a customer-managed key of its
	// own (the provider made one).
	OwnKMSKey bool
}

// Line is one item of an estimate.
type Line struct {
	Item       string
	MonthlyUSD float64
}

// Estimate is a month of one cluster, item by item.
type Estimate struct {
	Lines []Line
}

// Total is the sum of the lines, rounded to cents.
func (e Estimate) Total() float64 {
	var t float64
	for _, l := range e.Lines {
		t += l.MonthlyUSD
	}
	return math.Round(t*100) / 100
}

func (e *Estimate) add(item string, usd float64) {
	e.Lines = append(e.Lines, Line{Item: item, MonthlyUSD: usd})
}

func (c Cluster) prices() (*regionPrices, error) {
	p, ok := regions[c.Region]
	if !ok {
		return nil, fmt.Errorf("the price table (%s) has no prices for region %q, only %s", TableDate, c.Region, strings.Join(Regions(), ", "))
	}
	if c.Brokers < 1 || c.VolumeGiB < 1 || c.WriteMiBps < 0 || c.ReplicationFactor < 1 {
		return nil, fmt.Errorf("brokers %d, volume %d GiB, write rate %g MiB/s, replication factor %d: nothing to estimate",
			c.Brokers, c.VolumeGiB, c.WriteMiBps, c.ReplicationFactor)
	}
	return p, nil
}

// Tributary estimates the cluster on plain EC2: instances, EBS volumes,
// the replication traffic that crosses Availability Zones, and the KMS key.
// Client traffic and CloudWatch are left out (docs/cost.md says why).
func Tributary(c Cluster) (Estimate, error) {
	var e Estimate
	p, err := c.prices()
	if err != nil {
		return e, err
	}
	hourly, ok := p.ec2Hourly[c.InstanceType]
	if !ok {
		return e, fmt.Errorf("the price table (%s) has no EC2 price for instance type %q in %s", TableDate, c.InstanceType, c.Region)
	}
	n := float64(c.Brokers)
	e.add(fmt.Sprintf("EC2 %d x %s", c.Brokers, c.InstanceType), n*hourly*HoursPerMonth)
	switch c.VolumeType {
	case "gp3":
		e.add(fmt.Sprintf("EBS gp3 %d x %d GiB", c.Brokers, c.VolumeGiB), n*float64(c.VolumeGiB)*p.gp3GBMonth)
		if c.IOPS > 3000 {
			e.add(fmt.Sprintf("EBS gp3 IOPS above 3000, %d x %d", c.Brokers, c.IOPS-3000), n*float64(c.IOPS-3000)*p.gp3IOPSMonth)
		}
		if c.ThroughputMiBps > 125 {
			e.add(fmt.Sprintf("EBS gp3 throughput above 125 MiB/s, %d x %d MiB/s", c.Brokers, c.ThroughputMiBps-125), n*float64(c.ThroughputMiBps-125)*p.gp3MiBpsMonth)
		}
	case "gp2":
		e.add(fmt.Sprintf("EBS gp2 %d x %d GiB", c.Brokers, c.VolumeGiB), n*float64(c.VolumeGiB)*p.gp2GBMonth)
	default:
		return Estimate{}, fmt.Errorf("the price table (%s) has no price for volume type %q", TableDate, c.VolumeType)
	}
	copies := min(c.ReplicationFactor, c.Brokers) - 1
	if copies > 0 && c.WriteMiBps > 0 {
		// AWS bills a volume's size as entered (100 GiB is 100 GB-month)
		// and transfer in GB of 2^30 bytes: GiB here.
		crossGB := c.WriteMiBps * float64(copies) * secondsPerMonth / 1024
		e.add(fmt.Sprintf("cross-AZ replication, %g MiB/s x %d copies, both directions", c.WriteMiBps, copies), crossGB*2*p.crossAZPerGB)
	}
	if c.OwnKMSKey {
		e.add("KMS customer-managed key", p.kmsKeyMonth)
	}
	return e, nil
}

// MSK estimates Amazon MSK provisioned for the same brokers and storage:
// broker-hours of kafka.<instance type> and MSK storage. MSK does not
// charge for replication between its brokers.
func MSK(c Cluster) (Estimate, error) {
	var e Estimate
	p, err := c.prices()
	if err != nil {
		return e, err
	}
	hourly, ok := p.mskHourly[c.InstanceType]
	if !ok {
		return e, fmt.Errorf("no broker size kafka.%s in Amazon MSK's part of the price table (%s); MSK offers kafka.t3.small and the m5 and m7g sizes", c.InstanceType, TableDate)
	}
	n := float64(c.Brokers)
	e.add(fmt.Sprintf("MSK %d x kafka.%s", c.Brokers, c.InstanceType), n*hourly*HoursPerMonth)
	e.add(fmt.Sprintf("MSK storage %d x %d GiB", c.Brokers, c.VolumeGiB), n*float64(c.VolumeGiB)*p.mskStorageGBMonth)
	return e, nil
}
