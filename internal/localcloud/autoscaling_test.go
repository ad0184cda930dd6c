package localcloud_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/internal/localcloud"
)

// startScalingCloud is startCloud with Auto Scaling checking its groups every 100 ms.
func startScalingCloud(t *testing.T) *localcloud.Cloud {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: t.TempDir(), StopGracePeriod: 5 * time.Second, TransitionDelay: 20 * time.Millisecond, Logger: testLogger(),
		AutoScalingInterval: 100 * time.Millisecond, RestartDelay: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the local cloud: %v", err)
		}
	})
	return c
}

func TestLaunchTemplates(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	ami := registerImage(t, c, "virtual", "")
	small, large := localTypes()
	sn := defaultSubnet(t, client, "us-east-1b")
	ud := base64.StdEncoding.EncodeToString([]byte(`{"node":1}`))
	created, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("broker-1"), VersionDescription: aws.String("first"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			ImageId: aws.String(ami), InstanceType: small, UserData: aws.String(ud),
			MetadataOptions:   &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: ec2types.LaunchTemplateHttpTokensStateRequired},
			TagSpecifications: []ec2types.LaunchTemplateTagSpecificationRequest{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("tributary:node"), Value: aws.String("1")}, {Key: aws.String("Name"), Value: aws.String("broker-1")}}}},
		},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeLaunchTemplate, Tags: []ec2types.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String("c1")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	lt := created.LaunchTemplate
	if !strings.HasPrefix(aws.ToString(lt.LaunchTemplateId), "lt-") || aws.ToInt64(lt.DefaultVersionNumber) != 1 || aws.ToInt64(lt.LatestVersionNumber) != 1 || len(lt.Tags) != 1 {
		t.Fatalf("created %+v", lt)
	}
	_, err = client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("broker-1"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{}})
	wantCode(t, err, "InvalidLaunchTemplateName.AlreadyExistsException")
	_, err = client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("bad"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{UserData: aws.String("not base64!")}})
	wantCode(t, err, "InvalidParameterValue")

	v2, err := client.CreateLaunchTemplateVersion(ctx, &ec2.CreateLaunchTemplateVersionInput{LaunchTemplateId: lt.LaunchTemplateId, SourceVersion: aws.String("1"),
		VersionDescription: aws.String("bigger"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{InstanceType: large}})
	if err != nil {
		t.Fatal(err)
	}
	if d := v2.LaunchTemplateVersion.LaunchTemplateData; aws.ToInt64(v2.LaunchTemplateVersion.VersionNumber) != 2 || d.InstanceType != large ||
		aws.ToString(d.ImageId) != ami || aws.ToString(d.UserData) != ud || d.MetadataOptions.HttpTokens != ec2types.LaunchTemplateHttpTokensStateRequired {
		t.Fatalf("version 2 (from version 1, a new type): %+v", v2.LaunchTemplateVersion)
	}
	versions, err := client.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: aws.String("broker-1"), Versions: []string{"$Latest", "$Default"}})
	if err != nil || len(versions.LaunchTemplateVersions) != 2 || aws.ToInt64(versions.LaunchTemplateVersions[0].VersionNumber) != 2 || !aws.ToBool(versions.LaunchTemplateVersions[1].DefaultVersion) {
		t.Fatalf("versions $Latest and $Default: %+v %v", versions, err)
	}
	found, err := client.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:tributary:cluster"), Values: []string{"c1"}}}})
	if err != nil || len(found.LaunchTemplates) != 1 || aws.ToInt64(found.LaunchTemplates[0].LatestVersionNumber) != 2 {
		t.Fatalf("templates by tag: %+v %v", found, err)
	}
	_, err = client.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{LaunchTemplateNames: []string{"nope"}})
	wantCode(t, err, "InvalidLaunchTemplateName.NotFoundException")

	// RunInstances from the default version, the request's own parameters over the template's.
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: sn.SubnetId,
		LaunchTemplate:    &ec2types.LaunchTemplateSpecification{LaunchTemplateName: aws.String("broker-1")},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String("override")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	inst := run.Instances[0]
	tagOf := func(tags []ec2types.Tag, key string) string {
		for _, t := range tags {
			if aws.ToString(t.Key) == key {
				return aws.ToString(t.Value)
			}
		}
		return ""
	}
	if inst.InstanceType != small || aws.ToString(inst.ImageId) != ami || inst.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired ||
		tagOf(inst.Tags, "tributary:node") != "1" || tagOf(inst.Tags, "Name") != "override" || aws.ToString(inst.SubnetId) != aws.ToString(sn.SubnetId) {
		t.Fatalf("launched from the template: %+v", inst)
	}
	attr, err := client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: inst.InstanceId, Attribute: ec2types.InstanceAttributeNameUserData})
	if err != nil || aws.ToString(attr.UserData.Value) != ud {
		t.Fatalf("user data from the template: %+v %v", attr, err)
	}
	// $Latest, then a new default.
	run, err = client.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &ec2types.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplateId, Version: aws.String("$Latest")}})
	if err != nil || run.Instances[0].InstanceType != large {
		t.Fatalf("from $Latest: %+v %v", run, err)
	}
	if _, err := client.ModifyLaunchTemplate(ctx, &ec2.ModifyLaunchTemplateInput{LaunchTemplateId: lt.LaunchTemplateId, DefaultVersion: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	del, err := client.DeleteLaunchTemplateVersions(ctx, &ec2.DeleteLaunchTemplateVersionsInput{LaunchTemplateId: lt.LaunchTemplateId, Versions: []string{"1", "2"}})
	if err != nil || len(del.SuccessfullyDeletedLaunchTemplateVersions) != 1 || len(del.UnsuccessfullyDeletedLaunchTemplateVersions) != 1 ||
		del.UnsuccessfullyDeletedLaunchTemplateVersions[0].ResponseError.Code != ec2types.LaunchTemplateErrorCodeUnexpectedError {
		t.Fatalf("deleting versions 1 and the default 2: %+v %v", del, err)
	}
	_, err = client.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		LaunchTemplate: &ec2types.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplateId, Version: aws.String("1")}})
	wantCode(t, err, "InvalidLaunchTemplateId.VersionNotFound")
	if _, err := client.DeleteLaunchTemplate(ctx, &ec2.DeleteLaunchTemplateInput{LaunchTemplateName: aws.String("broker-1")}); err != nil {
		t.Fatal(err)
	}
	_, err = client.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), LaunchTemplate: &ec2types.LaunchTemplateSpecification{LaunchTemplateId: lt.LaunchTemplateId}})
	wantCode(t, err, "InvalidLaunchTemplateId.NotFound")
}

// groupInstances waits until the group has want InService, Healthy instances and returns them.
func groupInstances(t *testing.T, client *autoscaling.Client, name string, want int) []astypes.Instance {
	t.Helper()
	var out []astypes.Instance
	eventually(t, fmt.Sprintf("%d healthy instances in %s", want, name), 30*time.Second, func() error {
		g, err := client.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
		if err != nil {
			return err
		}
		if len(g.AutoScalingGroups) != 1 {
			return fmt.Errorf("%d groups", len(g.AutoScalingGroups))
		}
		out = g.AutoScalingGroups[0].Instances
		n := 0
		for _, i := range out {
			if i.LifecycleState == astypes.LifecycleStateInService && aws.ToString(i.HealthStatus) == "Healthy" {
				n++
			}
		}
		if n != want || len(out) != want {
			return fmt.Errorf("%d in service of %d: %+v", n, len(out), out)
		}
		return nil
	})
	return out
}

func ids(instances []astypes.Instance) []string {
	var out []string
	for _, i := range instances {
		out = append(out, aws.ToString(i.InstanceId))
	}
	slices.Sort(out)
	return out
}

// TestAutoScalingGroupHealsAndScales is a broker as an Auto Scaling group of one: its instance
// is replaced when stopped, terminated or failing its status check, with nobody calling
// anything; then the group scales out and in.
func TestAutoScalingGroupHealsAndScales(t *testing.T) {
	c := startScalingCloud(t)
	ctx := context.Background()
	client := ec2Client(c)
	asg := autoscaling.NewFromConfig(sdkConfig(c))
	ami := registerImage(t, c, "probe", bootProbe(t))
	small, _ := localTypes()
	sn := defaultSubnet(t, client, "us-east-1b")
	if _, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("broker-1"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami), InstanceType: small}}); err != nil {
		t.Fatal(err)
	}
	tmpl := &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("broker-1"), Version: aws.String("$Latest")}
	bad := []struct {
		name string
		in   autoscaling.CreateAutoScalingGroupInput
	}{
		{"min over max", autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), LaunchTemplate: tmpl, MinSize: aws.Int32(2), MaxSize: aws.Int32(1), VPCZoneIdentifier: sn.SubnetId}},
		{"no zones", autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), LaunchTemplate: tmpl, MinSize: aws.Int32(1), MaxSize: aws.Int32(1)}},
		{"missing template", autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), MinSize: aws.Int32(1), MaxSize: aws.Int32(1), VPCZoneIdentifier: sn.SubnetId,
			LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("nope")}}},
		{"bad subnet", autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("x"), LaunchTemplate: tmpl, MinSize: aws.Int32(1), MaxSize: aws.Int32(1), VPCZoneIdentifier: aws.String("subnet-0123456789abcdef0")}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := asg.CreateAutoScalingGroup(ctx, &tt.in)
			wantCode(t, err, "ValidationError")
		})
	}
	if _, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1"), LaunchTemplate: tmpl,
		MinSize: aws.Int32(1), MaxSize: aws.Int32(1), DesiredCapacity: aws.Int32(1), VPCZoneIdentifier: sn.SubnetId, HealthCheckGracePeriod: aws.Int32(0),
		Tags: []astypes.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String("c1"), PropagateAtLaunch: aws.Bool(true)}, {Key: aws.String("team"), Value: aws.String("data"), PropagateAtLaunch: aws.Bool(false)}}}); err != nil {
		t.Fatal(err)
	}
	_, err := asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1"), LaunchTemplate: tmpl,
		MinSize: aws.Int32(1), MaxSize: aws.Int32(1), VPCZoneIdentifier: sn.SubnetId})
	wantCode(t, err, "AlreadyExists")
	if strings.Contains(err.Error(), "pending delete") {
		t.Fatalf("a live group's name refused as pending delete: %v", err)
	}

	first := groupInstances(t, asg, "c1-broker-1", 1)[0]
	inst := describeInstance(t, client, aws.ToString(first.InstanceId))
	tags := map[string]string{}
	for _, tg := range inst.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["tributary:cluster"] != "c1" || tags["aws:autoscaling:groupName"] != "c1-broker-1" || tags["team"] != "" || aws.ToString(inst.SubnetId) != aws.ToString(sn.SubnetId) {
		t.Fatalf("the group's instance: tags %v, subnet %s", tags, aws.ToString(inst.SubnetId))
	}

	// Three kinds of failure, each healed by a new instance.
	replaced := func(what string, old string, fail func(id string)) string {
		t.Helper()
		fail(old)
		var now string
		eventually(t, what+" healed", 30*time.Second, func() error {
			got := ids(groupInstances(t, asg, "c1-broker-1", 1))
			if got[0] == old {
				return errors.New("still the old instance")
			}
			now = got[0]
			return nil
		})
		waitInstanceState(t, client, old, ec2types.InstanceStateNameTerminated)
		return now
	}
	id := aws.ToString(first.InstanceId)
	id = replaced("a killed instance (stopped)", id, func(id string) {
		if err := c.KillInstance(id); err != nil {
			t.Fatal(err)
		}
	})
	id = replaced("a terminated instance", id, func(id string) {
		if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
			t.Fatal(err)
		}
	})
	id = replaced("a crashed program (failing status check)", id, func(id string) {
		if err := c.CrashInstance(id); err != nil {
			t.Fatal(err)
		}
	})

	// With ReplaceUnhealthy suspended, a failed instance stays, marked Unhealthy.
	if _, err := asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("c1-broker-1"), ScalingProcesses: []string{"ReplaceUnhealthy"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stopped instance marked unhealthy", 30*time.Second, func() error {
		out, err := asg.DescribeAutoScalingInstances(ctx, &autoscaling.DescribeAutoScalingInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return err
		}
		if len(out.AutoScalingInstances) != 1 || aws.ToString(out.AutoScalingInstances[0].HealthStatus) != "UNHEALTHY" {
			return fmt.Errorf("%+v", out.AutoScalingInstances)
		}
		return nil
	})
	if got := ids(groupInstancesNow(t, asg, "c1-broker-1")); !slices.Equal(got, []string{id}) {
		t.Fatalf("replaced while ReplaceUnhealthy is suspended: %v", got)
	}
	if _, err := asg.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String("c1-broker-1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replaced once resumed", 30*time.Second, func() error {
		if got := ids(groupInstancesNow(t, asg, "c1-broker-1")); len(got) == 1 && got[0] != id {
			return nil
		}
		return errors.New("not yet")
	})
	groupInstances(t, asg, "c1-broker-1", 1)

	// Capacity: bounds, scale out across zones, scale in.
	_, err = asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("c1-broker-1"), DesiredCapacity: aws.Int32(2)})
	wantCode(t, err, "ValidationError")
	if _, err := asg.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1"), MaxSize: aws.Int32(3), DesiredCapacity: aws.Int32(3),
		VPCZoneIdentifier: aws.String(aws.ToString(sn.SubnetId) + "," + aws.ToString(defaultSubnet(t, client, "us-east-1c").SubnetId))}); err != nil {
		t.Fatal(err)
	}
	three := groupInstances(t, asg, "c1-broker-1", 3)
	zones := map[string]int{}
	for _, i := range three {
		zones[aws.ToString(i.AvailabilityZone)]++
	}
	if zones["us-east-1b"] == 0 || zones["us-east-1c"] == 0 {
		t.Fatalf("not spread over the group's zones: %v", zones)
	}
	if _, err := asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("c1-broker-1"), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	groupInstances(t, asg, "c1-broker-1", 1)
	one := groupInstancesNow(t, asg, "c1-broker-1")
	_, err = asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: one[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(true)})
	wantCode(t, err, "ValidationError") // desired would fall below min
	act, err := asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{InstanceId: one[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(false)})
	if err != nil || !strings.Contains(aws.ToString(act.Activity.Description), aws.ToString(one[0].InstanceId)) {
		t.Fatalf("TerminateInstanceInAutoScalingGroup: %+v %v", act, err)
	}
	eventually(t, "a replacement for the terminated instance", 30*time.Second, func() error {
		if got := ids(groupInstancesNow(t, asg, "c1-broker-1")); len(got) == 1 && got[0] != aws.ToString(one[0].InstanceId) {
			return nil
		}
		return errors.New("not yet")
	})

	activities, err := asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("c1-broker-1"), MaxRecords: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	var launches, stops int
	for _, a := range activities.Activities {
		switch {
		case strings.HasPrefix(aws.ToString(a.Description), "Launching a new EC2 instance: "):
			launches++
		case strings.Contains(aws.ToString(a.Cause), "EC2 health check indicating it has been terminated or stopped"):
			stops++
		}
	}
	if launches < 8 || stops < 2 {
		t.Fatalf("activities: %d launches, %d terminations for stopped or terminated instances: %+v", launches, stops, activities.Activities)
	}

	_, err = asg.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1")})
	wantCode(t, err, "ResourceInUse")
	last := groupInstancesNow(t, asg, "c1-broker-1")
	if _, err := asg.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1"), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	// Until its instances are terminated the group keeps its name, as in AWS,
	// which says so: a new group of that name must wait.
	again := &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1"), LaunchTemplate: tmpl,
		MinSize: aws.Int32(0), MaxSize: aws.Int32(1), VPCZoneIdentifier: sn.SubnetId}
	_, err = asg.CreateAutoScalingGroup(ctx, again)
	wantCode(t, err, "AlreadyExists")
	if !strings.Contains(err.Error(), "is pending delete") {
		t.Fatalf("creating a group whose name a group pending delete holds: %v, want AWS's \"is pending delete\"", err)
	}
	eventually(t, "the group gone", 30*time.Second, func() error {
		g, err := asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"c1-broker-1"}})
		if err != nil {
			return err
		}
		if len(g.AutoScalingGroups) != 0 {
			return fmt.Errorf("status %q", aws.ToString(g.AutoScalingGroups[0].Status))
		}
		return nil
	})
	for _, i := range last {
		waitInstanceState(t, client, aws.ToString(i.InstanceId), ec2types.InstanceStateNameTerminated)
	}
	if _, err := asg.CreateAutoScalingGroup(ctx, again); err != nil {
		t.Fatalf("creating a group of a deleted group's name: %v", err)
	}
	if _, err := asg.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String("c1-broker-1")}); err != nil {
		t.Fatal(err)
	}
}

func groupInstancesNow(t *testing.T, client *autoscaling.Client, name string) []astypes.Instance {
	t.Helper()
	g, err := client.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(g.AutoScalingGroups) != 1 {
		t.Fatalf("describing %s: %+v %v", name, g, err)
	}
	var out []astypes.Instance
	for _, i := range g.AutoScalingGroups[0].Instances {
		if i.LifecycleState != astypes.LifecycleStateTerminating {
			out = append(out, i)
		}
	}
	return out
}

// TestAutoScalingCLI drives launch templates and a group through Debian's aws CLI.
func TestAutoScalingCLI(t *testing.T) {
	c := startScalingCloud(t)
	ami := registerImage(t, c, "virtual", "")
	small, _ := localTypes()
	client := ec2Client(c)
	sn := aws.ToString(defaultSubnet(t, client, "us-east-1a").SubnetId)
	cli := func(args ...string) map[string]json.RawMessage {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), args...)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]json.RawMessage{}
		if len(out) > 0 {
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("decoding %s: %v", out, err)
			}
		}
		return m
	}
	var lt struct{ LaunchTemplateId string }
	if err := json.Unmarshal(cli("ec2", "create-launch-template", "--launch-template-name", "cli-broker",
		"--launch-template-data", fmt.Sprintf(`{"ImageId":%q,"InstanceType":%q,"MetadataOptions":{"HttpTokens":"required"}}`, ami, small))["LaunchTemplate"], &lt); err != nil || lt.LaunchTemplateId == "" {
		t.Fatalf("create-launch-template: %+v %v", lt, err)
	}
	var versions []struct {
		VersionNumber      int
		LaunchTemplateData struct{ ImageId, InstanceType string }
	}
	if err := json.Unmarshal(cli("ec2", "describe-launch-template-versions", "--launch-template-id", lt.LaunchTemplateId)["LaunchTemplateVersions"], &versions); err != nil ||
		len(versions) != 1 || versions[0].LaunchTemplateData.ImageId != ami {
		t.Fatalf("describe-launch-template-versions: %+v %v", versions, err)
	}
	cli("autoscaling", "create-auto-scaling-group", "--auto-scaling-group-name", "cli-group", "--launch-template", "LaunchTemplateId="+lt.LaunchTemplateId+",Version=$Latest",
		"--min-size", "1", "--max-size", "2", "--vpc-zone-identifier", sn, "--tags", "Key=tributary:cluster,Value=cli,PropagateAtLaunch=true")
	asg := autoscaling.NewFromConfig(sdkConfig(c))
	groupInstances(t, asg, "cli-group", 1)
	cli("autoscaling", "set-desired-capacity", "--auto-scaling-group-name", "cli-group", "--desired-capacity", "2")
	groupInstances(t, asg, "cli-group", 2)
	var groups []struct {
		AutoScalingGroupName string
		DesiredCapacity      int
		Instances            []struct{ InstanceId, LifecycleState, HealthStatus string }
		LaunchTemplate       struct{ LaunchTemplateId, Version string }
		Tags                 []struct{ Key, Value string }
	}
	if err := json.Unmarshal(cli("autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", "cli-group")["AutoScalingGroups"], &groups); err != nil ||
		len(groups) != 1 || groups[0].DesiredCapacity != 2 || len(groups[0].Instances) != 2 || groups[0].LaunchTemplate.LaunchTemplateId != lt.LaunchTemplateId || len(groups[0].Tags) != 1 {
		t.Fatalf("describe-auto-scaling-groups: %+v %v", groups, err)
	}
	var activities []struct{ Description, StatusCode string }
	if err := json.Unmarshal(cli("autoscaling", "describe-scaling-activities", "--auto-scaling-group-name", "cli-group")["Activities"], &activities); err != nil || len(activities) < 2 {
		t.Fatalf("describe-scaling-activities: %+v %v", activities, err)
	}
	if _, err := awsCLI(t, c.Endpoint(), "autoscaling", "set-desired-capacity", "--auto-scaling-group-name", "cli-group", "--desired-capacity", "5"); err == nil || !strings.Contains(err.Error(), "ValidationError") {
		t.Fatalf("set-desired-capacity above the maximum: %v", err)
	}
	cli("autoscaling", "delete-auto-scaling-group", "--auto-scaling-group-name", "cli-group", "--force-delete")
}

// TestAutoScalingAuthorization: autoscaling:* actions are checked on the group's ARN, and a
// group that launches from a template needs ec2:RunInstances, as on AWS.
func TestAutoScalingAuthorization(t *testing.T) {
	c := startScalingCloud(t)
	ctx := context.Background()
	ami := registerImage(t, c, "virtual", "")
	client := ec2Client(c)
	sn := defaultSubnet(t, client, "us-east-1a").SubnetId
	if _, err := client.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{LaunchTemplateName: aws.String("tmpl"), LaunchTemplateData: &ec2types.RequestLaunchTemplateData{ImageId: aws.String(ami)}}); err != nil {
		t.Fatal(err)
	}
	root := iam.NewFromConfig(sdkConfig(c))
	if _, err := root.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("operator")}); err != nil {
		t.Fatal(err)
	}
	policy := func(doc string) {
		t.Helper()
		if _, err := root.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("operator"), PolicyName: aws.String("p"), PolicyDocument: aws.String(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	policy(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"autoscaling:*","Resource":"arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/c1-*"}]}`)
	key, err := root.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("operator")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sdkConfig(c)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), "")
	operator := autoscaling.NewFromConfig(cfg)
	create := func(name string) error {
		_, err := operator.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{AutoScalingGroupName: aws.String(name),
			LaunchTemplate: &astypes.LaunchTemplateSpecification{LaunchTemplateName: aws.String("tmpl")}, MinSize: aws.Int32(0), MaxSize: aws.Int32(1), VPCZoneIdentifier: sn})
		return err
	}
	if err := create("c1-broker-1"); errorCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "ec2:RunInstances") {
		t.Fatalf("without ec2:RunInstances: %v", err)
	}
	policy(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"autoscaling:*","Resource":"arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/c1-*"},
	  {"Effect":"Allow","Action":"ec2:RunInstances","Resource":"*"}]}`)
	if err := create("c1-broker-1"); err != nil {
		t.Fatalf("a group the policy names: %v", err)
	}
	if err := create("c2-broker-1"); errorCode(err) != "AccessDenied" || !strings.Contains(err.Error(), "autoscaling:CreateAutoScalingGroup") {
		t.Fatalf("a group outside the policy: %v", err)
	}
	if _, err := operator.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("c1-broker-1"), DesiredCapacity: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
}
