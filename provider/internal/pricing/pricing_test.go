package pricing

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 0.005 }

// TestEstimatesPinned pins the arithmetic on clusters worked out by hand.
func TestEstimatesPinned(t *testing.T) {
	tests := []struct {
		name     string
		c        Cluster
		trib     float64
		lines    int
		msk      float64
		mskError string
	}{
		{
			// EC2 3 x 0.0816 x 730 = 178.704; gp3 3 x 100 x 0.08 = 24;
			// 1 MiB/s x 2 copies x 2,628,000 s / 1024 = 5132.8125 GB
			// crossing, charged 0.01 out and 0.01 in = 102.65625; key 1.
			// MSK: 3 x 0.204 x 730 = 446.76; storage 3 x 100 x 0.10 = 30.
			name: "three m7g.large, gp3 100 GiB, 1 MiB/s, RF 3",
			c: Cluster{Region: "us-east-1", InstanceType: "m7g.large", Brokers: 3, VolumeType: "gp3", VolumeGiB: 100, IOPS: 3000,
				ThroughputMiBps: 125, ReplicationFactor: 3, WriteMiBps: 1, OwnKMSKey: true},
			trib: 306.36, lines: 4, msk: 476.76,
		},
		{
			// EC2 6 x 0.192 x 730 = 840.96; gp3 6 x 1000 x 0.08 = 480;
			// IOPS 6 x 3000 x 0.005 = 90; throughput 6 x 125 x 0.04 = 30;
			// 10 MiB/s x 2 x 2,628,000 / 1024 x 0.02 = 1026.5625; no key.
			// MSK: 6 x 0.42 x 730 = 1839.6; storage 6 x 1000 x 0.10 = 600.
			name: "six m5.xlarge, gp3 1000 GiB with IOPS and throughput, 10 MiB/s",
			c: Cluster{Region: "us-west-2", InstanceType: "m5.xlarge", Brokers: 6, VolumeType: "gp3", VolumeGiB: 1000, IOPS: 6000,
				ThroughputMiBps: 250, ReplicationFactor: 3, WriteMiBps: 10},
			trib: 2467.52, lines: 5, msk: 2439.6,
		},
		{
			// One broker: no copy crosses a zone. EC2 0.0416 x 730 =
			// 30.368; gp2 10 x 0.10 = 1. MSK has no kafka.t3.medium.
			name: "one t3.medium, gp2",
			c: Cluster{Region: "us-east-2", InstanceType: "t3.medium", Brokers: 1, VolumeType: "gp2", VolumeGiB: 10,
				ReplicationFactor: 3, WriteMiBps: 5},
			trib: 31.37, lines: 2, mskError: "no broker size kafka.t3.medium",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Tributary(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if !near(e.Total(), tt.trib) || len(e.Lines) != tt.lines {
				t.Errorf("Tributary = %.4f in %d lines %+v, want %.2f in %d", e.Total(), len(e.Lines), e.Lines, tt.trib, tt.lines)
			}
			m, err := MSK(tt.c)
			if tt.mskError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.mskError) {
					t.Fatalf("MSK error = %v, want %q", err, tt.mskError)
				}
				return
			}
			if err != nil || !near(m.Total(), tt.msk) {
				t.Errorf("MSK = %.4f, %v; want %.2f", m.Total(), err, tt.msk)
			}
		})
	}
}

func TestEstimateRefusesWhatTheTableLacks(t *testing.T) {
	base := Cluster{Region: "us-east-1", InstanceType: "m5.large", Brokers: 3, VolumeType: "gp3", VolumeGiB: 100, ReplicationFactor: 3}
	for _, tt := range []struct {
		edit func(*Cluster)
		want string
	}{
		{func(c *Cluster) { c.Region = "ap-south-2" }, `no prices for region "ap-south-2", only us-east-1, us-east-2, us-west-2`},
		{func(c *Cluster) { c.InstanceType = "x2iedn.metal" }, `no EC2 price for instance type "x2iedn.metal"`},
		{func(c *Cluster) { c.VolumeType = "io2" }, `no price for volume type "io2"`},
		{func(c *Cluster) { c.Brokers = 0 }, `nothing to estimate`},
	} {
		c := base
		tt.edit(&c)
		if _, err := Tributary(c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Tributary(%+v) = %v, want %q", c, err, tt.want)
		}
	}
}
