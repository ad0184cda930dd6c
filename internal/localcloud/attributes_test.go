package localcloud_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestInstanceAttributes reads the common instance attributes through the SDK and Debian's aws
// CLI, and replaces the user data of a stopped instance, which its next boot sees.
func TestInstanceAttributes(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	ami := registerImage(t, c, "probe", bootProbe(t))
	small, _ := localTypes()
	sn := defaultSubnet(t, client, "us-east-1a")
	sg, err := client.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("brokers"), Description: aws.String("brokers")})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	volID := aws.ToString(vol.VolumeId)
	waitVolumeState(t, client, volID, ec2types.VolumeStateAvailable)
	first := map[string]string{"volume": volID, "marker": "first"}
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: small,
		SubnetId: sn.SubnetId, SecurityGroupIds: []string{aws.ToString(sg.GroupId)}, UserData: userData(t, first),
		DisableApiTermination: aws.Bool(true), InstanceInitiatedShutdownBehavior: ec2types.ShutdownBehaviorTerminate})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
	if _, err := client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volID), InstanceId: aws.String(id), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	waitVolumeState(t, client, volID, ec2types.VolumeStateInUse)
	if r := readReport(t, c, volID, id); !strings.Contains(r.UserData, `"marker":"first"`) {
		t.Fatalf("first boot saw user data %q", r.UserData)
	}

	attribute := func(name ec2types.InstanceAttributeName) *ec2.DescribeInstanceAttributeOutput {
		t.Helper()
		out, err := client.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(id), Attribute: name})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	if got := aws.ToString(attribute(ec2types.InstanceAttributeNameUserData).UserData.Value); got != aws.ToString(userData(t, first)) {
		t.Fatalf("userData %q", got)
	}
	if got := attribute(ec2types.InstanceAttributeNameInstanceType).InstanceType; aws.ToString(got.Value) != string(small) {
		t.Fatalf("instanceType %+v", got)
	}
	if got := attribute(ec2types.InstanceAttributeNameDisableApiTermination).DisableApiTermination; !aws.ToBool(got.Value) {
		t.Fatalf("disableApiTermination %+v", got)
	}
	if got := attribute(ec2types.InstanceAttributeNameInstanceInitiatedShutdownBehavior).InstanceInitiatedShutdownBehavior; aws.ToString(got.Value) != "terminate" {
		t.Fatalf("instanceInitiatedShutdownBehavior %+v", got)
	}
	if got := attribute(ec2types.InstanceAttributeNameGroupSet).Groups; len(got) != 1 || aws.ToString(got[0].GroupId) != aws.ToString(sg.GroupId) || aws.ToString(got[0].GroupName) != "brokers" {
		t.Fatalf("groupSet %+v", got)
	}
	if got := attribute(ec2types.InstanceAttributeNameKernel).KernelId; got == nil || got.Value != nil {
		t.Fatalf("kernel %+v, want present and empty", got)
	}

	// New user data only on a stopped instance; its next boot reads it.
	second := map[string]string{"volume": volID, "marker": "second"}
	raw, err := json.Marshal(second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), UserData: &ec2types.SecureBlobAttributeValue{Value: raw}})
	wantCode(t, err, "IncorrectInstanceState")
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, id, ec2types.InstanceStateNameStopped)
	// The SDK base64-encodes the blob; EC2 stores and answers the encoded form.
	if _, err := client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), UserData: &ec2types.SecureBlobAttributeValue{Value: raw}}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(attribute(ec2types.InstanceAttributeNameUserData).UserData.Value); got != base64.StdEncoding.EncodeToString(raw) {
		t.Fatalf("userData after the change: %q", got)
	}
	_, err = client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), Attribute: ec2types.InstanceAttributeNameUserData, Value: aws.String("not base64!")})
	wantCode(t, err, "InvalidParameterValue")
	_, err = client.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(id), UserData: &ec2types.SecureBlobAttributeValue{Value: make([]byte, 16385)}})
	wantCode(t, err, "InvalidParameterValue")
	report := filepath.Join(c.EC2().VolumeDir(volID), "report-"+id+".json")
	if err := os.Remove(report); err != nil {
		t.Fatal(err)
	}
	if _, err := client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
	eventually(t, "the second boot's report", 30*time.Second, func() error {
		data, err := os.ReadFile(report)
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), `\"marker\":\"second\"`) {
			return errors.New("report " + string(data))
		}
		return nil
	})

	// The same through Debian's aws CLI.
	cli := func(args ...string) map[string]json.RawMessage {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), append([]string{"ec2"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
		return m
	}
	var value struct{ Value string }
	if err := json.Unmarshal(cli("describe-instance-attribute", "--instance-id", id, "--attribute", "userData")["UserData"], &value); err != nil || value.Value != base64.StdEncoding.EncodeToString(raw) {
		t.Fatalf("CLI userData %+v %v", value, err)
	}
	if err := json.Unmarshal(cli("describe-instance-attribute", "--instance-id", id, "--attribute", "instanceType")["InstanceType"], &value); err != nil || value.Value != string(small) {
		t.Fatalf("CLI instanceType %+v %v", value, err)
	}
	var groups []struct{ GroupId, GroupName string }
	if err := json.Unmarshal(cli("describe-instance-attribute", "--instance-id", id, "--attribute", "groupSet")["Groups"], &groups); err != nil || len(groups) != 1 || groups[0].GroupName != "brokers" {
		t.Fatalf("CLI groupSet %+v %v", groups, err)
	}
	var flag struct{ Value bool }
	if err := json.Unmarshal(cli("describe-instance-attribute", "--instance-id", id, "--attribute", "disableApiTermination")["DisableApiTermination"], &flag); err != nil || !flag.Value {
		t.Fatalf("CLI disableApiTermination %+v %v", flag, err)
	}
	if err := json.Unmarshal(cli("describe-instance-attribute", "--instance-id", id, "--attribute", "instanceInitiatedShutdownBehavior")["InstanceInitiatedShutdownBehavior"], &value); err != nil || value.Value != "terminate" {
		t.Fatalf("CLI instanceInitiatedShutdownBehavior %+v %v", value, err)
	}
	third := base64.StdEncoding.EncodeToString([]byte(`{"marker":"third"}`))
	if _, err := awsCLI(t, c.Endpoint(), "ec2", "modify-instance-attribute", "--instance-id", id, "--attribute", "userData", "--value", third); err == nil || !strings.Contains(err.Error(), "IncorrectInstanceState") {
		t.Fatalf("CLI modify-instance-attribute on a running instance: %v", err)
	}
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, id, ec2types.InstanceStateNameStopped)
	if _, err := awsCLI(t, c.Endpoint(), "ec2", "modify-instance-attribute", "--instance-id", id, "--attribute", "userData", "--value", third); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cli("describe-instance-attribute", "--instance-id", id, "--attribute", "userData")["UserData"], &value); err != nil || value.Value != third {
		t.Fatalf("CLI userData after modify-instance-attribute: %+v %v", value, err)
	}
	if _, err := awsCLI(t, c.Endpoint(), "ec2", "modify-instance-attribute", "--instance-id", id, "--no-disable-api-termination"); err != nil {
		t.Fatal(err)
	}
	if got := attribute(ec2types.InstanceAttributeNameDisableApiTermination).DisableApiTermination; aws.ToBool(got.Value) {
		t.Fatalf("disableApiTermination after the CLI turned it off: %+v", got)
	}
}
