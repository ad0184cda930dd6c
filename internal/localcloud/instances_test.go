package localcloud_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tributary/tributary/internal/localcloud"
)

// probeReport mirrors what testdata/bootprobe writes into its volume.
type probeReport struct {
	InstanceID       string   `json:"instanceId"`
	LocalIPv4        string   `json:"localIpv4"`
	AZ               string   `json:"az"`
	UserData         string   `json:"userData"`
	NoTokenStatus    int      `json:"noTokenStatus"`
	Identity         string   `json:"identity"`
	IdentityError    string   `json:"identityError"`
	ListenedOnIP     bool     `json:"listenedOnIp"`
	History          []string `json:"history"`
	Endpoint         string   `json:"endpoint"`
	StaticCredsInEnv bool     `json:"staticCredsInEnv"`
}

// instanceProfile creates a role that EC2 may assume, with an inline policy, in an instance profile.
func instanceProfile(t *testing.T, c *localcloud.Cloud, name string) string {
	t.Helper()
	ctx := context.Background()
	client := iam.NewFromConfig(sdkConfig(c))
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	if _, err := client.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	return name
}

func readReport(t *testing.T, c *localcloud.Cloud, volumeID, instanceID string) probeReport {
	t.Helper()
	path := filepath.Join(c.EC2().VolumeDir(volumeID), "report-"+instanceID+".json")
	var r probeReport
	eventually(t, "boot report of "+instanceID, 30*time.Second, func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(data, &r)
	})
	return r
}

func userData(t *testing.T, v any) *string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return aws.String(base64.StdEncoding.EncodeToString(b))
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestInstanceBootsAndVolumeOutlivesIt is the S4 round trip: an instance boots its image's
// program, which reads IMDSv2 (token required), its user data and role credentials, writes to
// its EBS volume directory; the instance is terminated, and the next instance with the same
// ENI and volume finds the data and the address.
func TestInstanceBootsAndVolumeOutlivesIt(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	ami := registerImage(t, c, "probe", bootProbe(t))
	profile := instanceProfile(t, c, "broker")
	key, err := kms.NewFromConfig(sdkConfig(c)).CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("volumes")})
	if err != nil {
		t.Fatal(err)
	}
	sn := defaultSubnet(t, client, "us-east-1b")
	eni, err := client.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: sn.SubnetId, Description: aws.String("broker 1")})
	if err != nil {
		t.Fatal(err)
	}
	eniID := aws.ToString(eni.NetworkInterface.NetworkInterfaceId)
	ip := aws.ToString(eni.NetworkInterface.PrivateIpAddress)
	vol, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), Size: aws.Int32(20), VolumeType: ec2types.VolumeTypeGp3,
		Iops: aws.Int32(4000), Throughput: aws.Int32(250), Encrypted: aws.Bool(true), KmsKeyId: key.KeyMetadata.Arn})
	if err != nil {
		t.Fatal(err)
	}
	volID := aws.ToString(vol.VolumeId)
	if vol.State != ec2types.VolumeStateCreating || aws.ToString(vol.KmsKeyId) != aws.ToString(key.KeyMetadata.Arn) {
		t.Fatalf("created volume: %+v", vol)
	}
	waitVolumeState(t, client, volID, ec2types.VolumeStateAvailable)

	small, _ := localTypes()
	launch := func(marker string) string {
		t.Helper()
		out, err := client.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: small,
			NetworkInterfaces:  []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: aws.String(eniID)}},
			IamInstanceProfile: &ec2types.IamInstanceProfileSpecification{Name: aws.String(profile)},
			MetadataOptions:    &ec2types.InstanceMetadataOptionsRequest{HttpTokens: ec2types.HttpTokensStateRequired},
			UserData:           userData(t, map[string]string{"volume": volID, "marker": marker}),
			TagSpecifications:  []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("tributary:cluster"), Value: aws.String("c1")}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		inst := waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
		if aws.ToString(inst.PrivateIpAddress) != ip || aws.ToString(inst.Placement.AvailabilityZone) != "us-east-1b" {
			t.Fatalf("instance at %s in %s, want %s in us-east-1b", aws.ToString(inst.PrivateIpAddress), aws.ToString(inst.Placement.AvailabilityZone), ip)
		}
		if _, err := client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volID), InstanceId: aws.String(id), Device: aws.String("/dev/sdf")}); err != nil {
			t.Fatal(err)
		}
		waitVolumeState(t, client, volID, ec2types.VolumeStateInUse)
		return id
	}

	first := launch("first")
	r := readReport(t, c, volID, first)
	if r.InstanceID != first || r.LocalIPv4 != ip || r.AZ != "us-east-1b" {
		t.Fatalf("metadata seen by the instance: %+v", r)
	}
	if !strings.Contains(r.UserData, `"marker":"first"`) {
		t.Fatalf("user data seen by the instance: %q", r.UserData)
	}
	if r.NoTokenStatus != 401 {
		t.Fatalf("IMDS without a token answered %d, want 401 (HttpTokens=required)", r.NoTokenStatus)
	}
	if want := "arn:aws:sts::000000000000:assumed-role/broker/" + first; r.Identity != want {
		t.Fatalf("caller identity with role credentials from IMDS: %q (error %q), want %q", r.Identity, r.IdentityError, want)
	}
	if !r.ListenedOnIP || r.StaticCredsInEnv || r.Endpoint != c.Endpoint() {
		t.Fatalf("instance environment: listened on its IP %v, static credentials in env %v, endpoint %q", r.ListenedOnIP, r.StaticCredsInEnv, r.Endpoint)
	}
	if len(r.History) != 0 {
		t.Fatalf("a new volume has history %v", r.History)
	}
	console, err := client.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(first)})
	if err != nil {
		t.Fatal(err)
	}
	text, _ := base64.StdEncoding.DecodeString(aws.ToString(console.Output))
	if !strings.Contains(string(text), "bootprobe: instance "+first) {
		t.Fatalf("console output: %q", text)
	}

	if _, err := client.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{first}}); err != nil {
		t.Fatal(err)
	}
	inst := waitInstanceState(t, client, first, ec2types.InstanceStateNameTerminated)
	if aws.ToString(inst.StateReason.Code) != "Client.UserInitiatedShutdown" {
		t.Fatalf("state reason %+v", inst.StateReason)
	}
	text = []byte(consoleText(t, client, first))
	if !strings.Contains(string(text), "bootprobe: stopping") {
		t.Fatalf("the instance did not get SIGTERM: %q", text)
	}
	// The ENI (attached by id, DeleteOnTermination false) and the volume survive.
	enis, err := client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eniID}})
	if err != nil {
		t.Fatal(err)
	}
	if enis.NetworkInterfaces[0].Status != ec2types.NetworkInterfaceStatusAvailable {
		t.Fatalf("ENI after termination: %s", enis.NetworkInterfaces[0].Status)
	}
	waitVolumeState(t, client, volID, ec2types.VolumeStateAvailable)

	second := launch("second")
	r = readReport(t, c, volID, second)
	if strings.Join(r.History, ",") != "first" || r.LocalIPv4 != ip {
		t.Fatalf("second instance saw history %v at %s; want [first] at %s", r.History, r.LocalIPv4, ip)
	}

	// A volume in use cannot be deleted; its key must exist for it to be created.
	_, err = client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(volID)})
	wantCode(t, err, "VolumeInUse")
}

func consoleText(t *testing.T, client *ec2.Client, id string) string {
	t.Helper()
	out, err := client.GetConsoleOutput(context.Background(), &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func launchIdle(t *testing.T, c *localcloud.Cloud, ami, az string) (string, int) {
	t.Helper()
	client := ec2Client(c)
	out, err := client.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		Placement: &ec2types.Placement{AvailabilityZone: aws.String(az)}, UserData: userData(t, map[string]string{})})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
	return id, waitPID(t, c, id)
}

func waitPID(t *testing.T, c *localcloud.Cloud, id string) int {
	t.Helper()
	var pid int
	eventually(t, "process of "+id, 10*time.Second, func() error {
		var ok bool
		if pid, ok = c.EC2().Machines().Running(id); !ok {
			return errors.New("no process")
		}
		return nil
	})
	return pid
}

func waitProcessGone(t *testing.T, pid int) {
	t.Helper()
	eventually(t, fmt.Sprintf("process %d gone", pid), 10*time.Second, func() error {
		if processAlive(pid) {
			return errors.New("still alive")
		}
		return nil
	})
}

func TestZoneOutageAndRecovery(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	ami := registerImage(t, c, "probe", bootProbe(t))
	down, downPID := launchIdle(t, c, ami, "us-east-1a")
	up, upPID := launchIdle(t, c, ami, "us-east-1c")

	killed, err := c.ZoneDown("us-east-1a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(killed, ",") != down {
		t.Fatalf("zone outage killed %v, want [%s]", killed, down)
	}
	waitProcessGone(t, downPID)
	inst := waitInstanceState(t, client, down, ec2types.InstanceStateNameStopped)
	if aws.ToString(inst.StateReason.Code) != "Server.InternalError" {
		t.Fatalf("state reason after the outage: %+v", inst.StateReason)
	}
	if !processAlive(upPID) || describeInstance(t, client, up).State.Name != ec2types.InstanceStateNameRunning {
		t.Fatal("an instance in another zone was affected")
	}
	azs, err := client.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{ZoneNames: []string{"us-east-1a"}})
	if err != nil {
		t.Fatal(err)
	}
	if azs.AvailabilityZones[0].State != ec2types.AvailabilityZoneStateImpaired {
		t.Fatalf("zone state during the outage: %s", azs.AvailabilityZones[0].State)
	}
	_, err = client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1a")}})
	wantCode(t, err, "InsufficientInstanceCapacity")
	_, err = client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{down}})
	wantCode(t, err, "InsufficientInstanceCapacity")

	if _, err := c.ZoneUp("us-east-1a"); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, down, ec2types.InstanceStateNameRunning)
	if pid := waitPID(t, c, down); pid == downPID {
		t.Fatalf("the instance kept its old process %d", pid)
	}
}

func TestKillInstanceAndCrashRestart(t *testing.T) {
	c := startCloud(t, "")
	client := ec2Client(c)
	ami := registerImage(t, c, "probe", bootProbe(t))
	id, pid := launchIdle(t, c, ami, "us-east-1b")

	// A process that dies on its own is restarted (systemd's Restart=on-failure in the AMI);
	// the instance stays running.
	if err := c.CrashInstance(id); err != nil {
		t.Fatal(err)
	}
	var newPID int
	eventually(t, "restart after a crash", 15*time.Second, func() error {
		p, ok := c.EC2().Machines().Running(id)
		if !ok || p == pid {
			return errors.New("not restarted yet")
		}
		newPID = p
		return nil
	})
	if s := describeInstance(t, client, id).State.Name; s != ec2types.InstanceStateNameRunning {
		t.Fatalf("state after a crash: %s", s)
	}
	if !strings.Contains(consoleText(t, client, id), "restarting in") {
		t.Fatal("the console does not tell about the restart")
	}

	// The fault API's kill stops the instance for good.
	if err := c.KillInstance(id); err != nil {
		t.Fatal(err)
	}
	waitProcessGone(t, newPID)
	inst := waitInstanceState(t, client, id, ec2types.InstanceStateNameStopped)
	if aws.ToString(inst.StateReason.Code) != "Server.InternalError" {
		t.Fatalf("state reason %+v", inst.StateReason)
	}
	if _, err := client.StartInstances(context.Background(), &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, id, ec2types.InstanceStateNameRunning)
	waitPID(t, c, id)
}

func TestRestartKeepsResourcesAndRunningInstances(t *testing.T) {
	dir := t.TempDir()
	first, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: dir, StopGracePeriod: 5 * time.Second, TransitionDelay: 20 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ami := registerImage(t, first, "probe", bootProbe(t))
	running, pid := launchIdle(t, first, ami, "us-east-1a")
	stopped, _ := launchIdle(t, first, ami, "us-east-1b")
	client := ec2Client(first)
	if _, err := client.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{stopped}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, stopped, ec2types.InstanceStateNameStopped)
	ip := aws.ToString(describeInstance(t, client, running).PrivateIpAddress)

	// A second emulator may not share the directory.
	if _, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: dir, Logger: testLogger()}); err == nil {
		t.Fatal("a second local cloud started on a state directory in use")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Fatalf("instance process %d survived the emulator", pid)
	}

	second := startCloud(t, dir)
	client = ec2Client(second)
	inst := waitInstanceState(t, client, running, ec2types.InstanceStateNameRunning)
	if aws.ToString(inst.PrivateIpAddress) != ip {
		t.Fatalf("private IP changed across the restart: %s, was %s", aws.ToString(inst.PrivateIpAddress), ip)
	}
	if newPID := waitPID(t, second, running); newPID == pid {
		t.Fatal("no new process after the restart")
	}
	if s := describeInstance(t, client, stopped).State.Name; s != ec2types.InstanceStateNameStopped {
		t.Fatalf("stopped instance is %s after the restart", s)
	}
	if _, ok := second.EC2().Machines().Running(stopped); ok {
		t.Fatal("a stopped instance was booted by the restart")
	}
	images, err := client.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{ami}})
	if err != nil || len(images.Images) != 1 {
		t.Fatalf("image after the restart: %v %v", images, err)
	}
}

// TestCrashLoopGivesUp: a program that keeps failing is restarted a bounded number of times,
// then left down with a failed status check; a reboot tries again.
func TestCrashLoopGivesUp(t *testing.T) {
	dir := t.TempDir()
	c, err := localcloud.Start(context.Background(), localcloud.Options{StateDir: dir, StopGracePeriod: 5 * time.Second,
		TransitionDelay: 20 * time.Millisecond, RestartDelay: 5 * time.Millisecond, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	client := ec2Client(c)
	ctx := context.Background()
	ami := registerImage(t, c, "failing", bootProbe(t))
	out, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		UserData: userData(t, map[string]int{"exit": 3})})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	eventually(t, "giving up on the crash loop", 30*time.Second, func() error {
		if !strings.Contains(consoleText(t, client, id), "not restarting it again") {
			return errors.New("still restarting")
		}
		return nil
	})
	if n := strings.Count(consoleText(t, client, id), "bootprobe: booting"); n != 11 {
		t.Fatalf("the program ran %d times, want 11 (the first boot and 10 restarts)", n)
	}
	status, err := client.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if got := status.InstanceStatuses[0].InstanceStatus.Status; got != ec2types.SummaryStatusImpaired {
		t.Fatalf("instance status %s, want impaired", got)
	}
	if s := describeInstance(t, client, id).State.Name; s != ec2types.InstanceStateNameRunning {
		t.Fatalf("state %s, want running", s)
	}
	if _, err := client.RebootInstances(ctx, &ec2.RebootInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reboot runs the program again", 10*time.Second, func() error {
		if n := strings.Count(consoleText(t, client, id), "bootprobe: booting"); n < 12 {
			return fmt.Errorf("%d boots", n)
		}
		return nil
	})
}
