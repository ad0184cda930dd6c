package localcloud_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/tributary/tributary/internal/localcloud"
	lcec2 "github.com/tributary/tributary/internal/localcloud/ec2"
)

// TestAWSMetricsOfInstancesAndVolumes: a running T instance has
// CPUCreditBalance and CPUCreditUsage in AWS/EC2 by InstanceId, its gp2
// volume BurstBalance in AWS/EBS by VolumeId, read back with the SDK's
// ListMetrics and GetMetricData; a gp3 volume and an m-type instance have
// none; the gp3 volume, its instance's only one, has VolumeReadBytes and
// VolumeWriteBytes.
func TestAWSMetricsOfInstancesAndVolumes(t *testing.T) {
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: t.TempDir(), StopGracePeriod: 5 * time.Second, TransitionDelay: 20 * time.Millisecond, Logger: testLogger(),
		AWSMetricsInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	client := ec2Client(c)
	ami := registerImage(t, c, "probe", bootProbe(t))
	burstable, other := ec2types.InstanceType("t3.micro"), ec2types.InstanceTypeM7iLarge
	if lcec2.LocalArchitecture() == "arm64" {
		burstable, other = "t4g.micro", ec2types.InstanceTypeM7gLarge
	}
	launch := func(typ ec2types.InstanceType, vt ec2types.VolumeType) (instance, volume string) {
		t.Helper()
		out, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			InstanceType: typ,
			BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &ec2types.EbsBlockDevice{
				VolumeSize: aws.Int32(20), VolumeType: vt}}}})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		inst := waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
		for _, m := range inst.BlockDeviceMappings {
			if aws.ToString(m.DeviceName) == "/dev/sdf" {
				volume = aws.ToString(m.Ebs.VolumeId)
			}
		}
		return id, volume
	}
	tInst, gp2 := launch(burstable, ec2types.VolumeTypeGp2)
	mInst, gp3 := launch(other, ec2types.VolumeTypeGp3)

	cw := cloudwatch.NewFromConfig(sdkConfig(c))
	query := func(id, ns, name, dim, value string) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(ns), MetricName: aws.String(name),
				Dimensions: []cwtypes.Dimension{{Name: aws.String(dim), Value: aws.String(value)}}},
			Period: aws.Int32(60), Stat: aws.String("Minimum"),
		}}
	}
	eventually(t, "the instance's and volume's AWS metrics", 30*time.Second, func() error {
		now := time.Now()
		out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(now.Add(-5 * time.Minute)), EndTime: aws.Time(now.Add(time.Minute)),
			MetricDataQueries: []cwtypes.MetricDataQuery{
				query("credits", "AWS/EC2", "CPUCreditBalance", "InstanceId", tInst),
				query("usage", "AWS/EC2", "CPUCreditUsage", "InstanceId", tInst),
				query("burst", "AWS/EBS", "BurstBalance", "VolumeId", gp2),
				query("mcredits", "AWS/EC2", "CPUCreditBalance", "InstanceId", mInst),
				query("gp3burst", "AWS/EBS", "BurstBalance", "VolumeId", gp3),
				query("gp3read", "AWS/EBS", "VolumeReadBytes", "VolumeId", gp3),
				query("gp3write", "AWS/EBS", "VolumeWriteBytes", "VolumeId", gp3),
			},
		})
		if err != nil {
			return err
		}
		got := map[string][]float64{}
		for _, r := range out.MetricDataResults {
			got[aws.ToString(r.Id)] = r.Values
		}
		if v := got["credits"]; len(v) != 1 || v[0] < 0 || v[0] > 24*12 {
			return fmt.Errorf("CPUCreditBalance of %s: %v, want one value within 0-288 (a micro's day of credits)", tInst, v)
		}
		if v := got["usage"]; len(v) != 1 || v[0] < 0 {
			return fmt.Errorf("CPUCreditUsage of %s: %v", tInst, v)
		}
		// A probe writes next to nothing: the bucket is (nearly) full.
		if v := got["burst"]; len(v) != 1 || v[0] < 99 || v[0] > 100 {
			return fmt.Errorf("BurstBalance of %s: %v, want one value of 99-100 %%", gp2, v)
		}
		if v := got["mcredits"]; len(v) != 0 {
			return fmt.Errorf("an %s instance has CPUCreditBalance %v", other, v)
		}
		if v := got["gp3burst"]; len(v) != 0 {
			return fmt.Errorf("a gp3 volume has BurstBalance %v", v)
		}
		// Every volume type has its bytes (the instance has one volume).
		for _, k := range []string{"gp3read", "gp3write"} {
			if v := got[k]; len(v) != 1 || v[0] < 0 {
				return fmt.Errorf("%s of %s: %v, want one value", k, gp3, v)
			}
		}
		return nil
	})

	// ListMetrics names them with AWS's dimensions, as the CLI and
	// dashboards find them.
	for _, tt := range []struct{ ns, name, dim, value string }{
		{"AWS/EC2", "CPUCreditBalance", "InstanceId", tInst},
		{"AWS/EBS", "BurstBalance", "VolumeId", gp2},
	} {
		out, err := cw.ListMetrics(ctx, &cloudwatch.ListMetricsInput{Namespace: aws.String(tt.ns), MetricName: aws.String(tt.name)})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range out.Metrics {
			if len(m.Dimensions) == 1 && aws.ToString(m.Dimensions[0].Name) == tt.dim && aws.ToString(m.Dimensions[0].Value) == tt.value {
				found = true
			}
		}
		if !found {
			t.Errorf("ListMetrics %s %s lacks %s=%s: %+v", tt.ns, tt.name, tt.dim, tt.value, out.Metrics)
		}
	}
	// Clients still may not put data in AWS's namespaces.
	_, err = cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String("AWS/EBS"),
		MetricData: []cwtypes.MetricDatum{{MetricName: aws.String("BurstBalance"), Value: aws.Float64(1)}}})
	if err == nil {
		t.Error("a client put data into AWS/EBS")
	}
}
