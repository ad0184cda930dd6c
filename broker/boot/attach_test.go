package boot

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/broker/boot/bootstatus"
	"github.com/tributary/tributary/broker/boot/netif"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	lcec2 "github.com/tributary/tributary/internal/localcloud/ec2"
)

// attachCloud is a local cloud holding one broker's network interface and
// volume (cluster c-0123abcd, node 2, in us-east-1b, tagged as the provider
// tags them), instances of its Auto Scaling group to attach them to, and a
// broker role limited to one cluster's tagged objects.
type attachCloud struct {
	cloud      *localcloud.Cloud
	root       *ec2.Client
	eniID      string
	eniIP      string
	volumeID   string
	subnet     string
	subnetCIDR string
	mac        string
	image      string
	roleARN    string
	roleID     string
}

func startAttachCloud(t *testing.T, roleCluster string) *attachCloud {
	return startAttachCloudWith(t, roleCluster, localcloud.Options{}, 10)
}

// startAttachCloudWith starts the cloud with more options and a volume of
// volumeGiB.
func startAttachCloudWith(t *testing.T, roleCluster string, opts localcloud.Options, volumeGiB int32) *attachCloud {
	t.Helper()
	opts.StateDir, opts.StopGracePeriod, opts.TransitionDelay = t.TempDir(), time.Second, 50*time.Millisecond
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := localcloud.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		if err := c.Close(); err != nil {
			t.Errorf("closing the local cloud: %v", err)
		}
	})
	cfg := aws.Config{Region: c.Region(), BaseEndpoint: aws.String(c.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, ""),
		HTTPClient:  &http.Client{Transport: transport}}
	ctx := t.Context()
	a := &attachCloud{cloud: c, root: ec2.NewFromConfig(cfg)}
	admin := iam.NewFromConfig(cfg)
	role, err := admin.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("tributary-broker"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	a.roleARN, a.roleID = aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId)
	// The statements the provider gives a cluster's broker role.
	policy := `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Action":["ec2:AttachNetworkInterface","ec2:AttachVolume","ec2:ModifyVolume"],
	   "Resource":["arn:aws:ec2:*:*:network-interface/*","arn:aws:ec2:*:*:volume/*","arn:aws:ec2:*:*:instance/*"],
	   "Condition":{"StringEquals":{"ec2:ResourceTag/tributary:cluster-id":"` + roleCluster + `"}}},
	  {"Effect":"Allow","Action":["ec2:DescribeNetworkInterfaces","ec2:DescribeVolumes","ec2:DescribeInstances"],"Resource":"*"}]}`
	if _, err := admin.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("tributary-broker"), PolicyName: aws.String("broker"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	sn, err := a.root.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("availability-zone"), Values: []string{"us-east-1b"}},
		{Name: aws.String("default-for-az"), Values: []string{"true"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a.subnet, a.subnetCIDR = aws.ToString(sn.Subnets[0].SubnetId), aws.ToString(sn.Subnets[0].CidrBlock)
	tags := func(rt ec2types.ResourceType, cluster string) []ec2types.TagSpecification {
		return []ec2types.TagSpecification{{ResourceType: rt, Tags: []ec2types.Tag{
			{Key: aws.String(bootconfig.TagClusterID), Value: aws.String(cluster)},
			{Key: aws.String(bootconfig.TagNodeID), Value: aws.String("2")},
		}}}
	}
	eni, err := a.root.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(a.subnet),
		TagSpecifications: tags(ec2types.ResourceTypeNetworkInterface, "c-0123abcd")})
	if err != nil {
		t.Fatal(err)
	}
	a.eniID, a.eniIP = aws.ToString(eni.NetworkInterface.NetworkInterfaceId), aws.ToString(eni.NetworkInterface.PrivateIpAddress)
	a.mac = aws.ToString(eni.NetworkInterface.MacAddress)
	vol, err := a.root.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), Size: aws.Int32(volumeGiB),
		TagSpecifications: tags(ec2types.ResourceTypeVolume, "c-0123abcd")})
	if err != nil {
		t.Fatal(err)
	}
	a.volumeID = aws.ToString(vol.VolumeId)
	for {
		d, err := a.root.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{a.volumeID}})
		if err != nil {
			t.Fatal(err)
		}
		if d.Volumes[0].State == ec2types.VolumeStateAvailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.image, err = c.EC2().RegisterImage(lcec2.ImageSpec{Name: "no-program"}); err != nil {
		t.Fatal(err)
	}
	return a
}

// launch starts an instance of the broker's group: its own primary
// interface, the cluster's tags (which the group propagates).
func (a *attachCloud) launch(t *testing.T) string {
	t.Helper()
	instanceType := ec2types.InstanceTypeM7iLarge
	if lcec2.LocalArchitecture() == "arm64" {
		instanceType = ec2types.InstanceTypeM7gLarge
	}
	out, err := a.root.RunInstances(t.Context(), &ec2.RunInstancesInput{ImageId: aws.String(a.image), InstanceType: instanceType,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: aws.String(a.subnet),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{
			{Key: aws.String(bootconfig.TagClusterID), Value: aws.String("c-0123abcd")},
			{Key: aws.String(bootconfig.TagNodeID), Value: aws.String("2")},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := a.root.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err == nil && d.Reservations[0].Instances[0].State.Name == ec2types.InstanceStateNameRunning {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s did not run: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bootOn points the boot environment at instance id of the cloud: its IMDS
// says it is that instance and hands out the broker role's session (which
// the fake KMS accepts too), EC2 calls go to the local cloud, and the
// document asks the agent to attach the broker's interface and volume.
func (a *attachCloud) bootOn(t *testing.T, e *bootEnv, id string) Options {
	t.Helper()
	session, err := a.cloud.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, a.roleARN, a.roleID, id), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.imds.InstanceID = id
	e.imds.AccessKeyID, e.imds.SecretAccessKey, e.imds.SessionToken = session.AccessKeyID, session.SecretAccessKey, session.SessionToken
	e.kms.AccessKeyID = session.AccessKeyID
	e.imds.Metadata = map[string]string{"network/interfaces/macs/" + a.mac + "/subnet-ipv4-cidr-block": a.subnetCIDR}
	t.Setenv("AWS_ENDPOINT_URL_EC2", a.cloud.Endpoint())
	e.doc.Attachments = &bootconfig.Attachments{NetworkInterfaceDeviceIndex: 1}
	e.doc.DataVolume.VolumeID, e.doc.DataVolume.DeviceName = a.volumeID, "/dev/sdf"
	e.doc.Secrets.EncryptionContext = bootconfig.EncryptionContext(e.doc.ClusterID, e.doc.NodeID)
	e.reencode(t)
	opts := e.options()
	for _, info := range a.cloud.EC2().Instances() {
		if info.ID == id {
			opts.VolumeDir = info.VolumeDir
		}
	}
	return opts
}

// TestBootAttachesTheBrokersOwnInterfaceAndVolume is the boot of an Auto
// Scaling group's instance: the agent finds the broker's interface and volume
// by their tags, attaches them (the interface as device 1, beside the
// instance's own primary one), and the broker listens on the interface's
// address, not the instance's. A second boot finds them attached and does
// the same; another instance waits for them instead of taking them.
func TestBootAttachesTheBrokersOwnInterfaceAndVolume(t *testing.T) {
	a := startAttachCloud(t, "c-0123abcd")
	e := newBootEnv(t)
	id := a.launch(t)
	opts := a.bootOn(t, e, id)
	var configured []netif.Interface
	opts.ConfigureNetwork = func(_ context.Context, ifc netif.Interface) error {
		configured = append(configured, ifc)
		return nil
	}
	for run := 1; run <= 2; run++ {
		_, st, err := e.run(t, opts)
		if err != nil || st.Step != bootstatus.StepExec {
			t.Fatalf("boot %d stopped at %s: %v\nlogs:\n%s", run, st.Step, err, e.logs.String())
		}
		cfg := string(mustRead(t, filepath.Join(e.runtimeDir, "broker.properties"), 0o640))
		if want := "listeners=CLIENT://" + a.eniIP + ":9092,"; !strings.Contains(cfg, want) {
			t.Fatalf("boot %d: the broker does not listen on its interface's address %s:\n%s", run, a.eniIP, cfg)
		}
		if want := "metrics.listen=" + a.eniIP + ":11001"; !strings.Contains(cfg, want) {
			t.Fatalf("boot %d: metrics not on the broker's address:\n%s", run, cfg)
		}
	}
	eni, err := a.root.DescribeNetworkInterfaces(t.Context(), &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{a.eniID}})
	if err != nil {
		t.Fatal(err)
	}
	att := eni.NetworkInterfaces[0].Attachment
	if att == nil || aws.ToString(att.InstanceId) != id || aws.ToInt32(att.DeviceIndex) != 1 {
		t.Fatalf("the broker's interface is attached as %+v, want device 1 of %s", att, id)
	}
	vol, err := a.root.DescribeVolumes(t.Context(), &ec2.DescribeVolumesInput{VolumeIds: []string{a.volumeID}})
	if err != nil {
		t.Fatal(err)
	}
	if va := vol.Volumes[0].Attachments; len(va) != 1 || aws.ToString(va[0].InstanceId) != id || aws.ToString(va[0].Device) != "/dev/sdf" {
		t.Fatalf("the broker's volume is attached as %+v, want /dev/sdf of %s", va, id)
	}
	want := netif.Interface{MAC: a.mac, PrivateIP: a.eniIP, SubnetCIDR: a.subnetCIDR, DeviceIndex: 1}
	if len(configured) != 2 || configured[0] != want || configured[1] != want {
		t.Fatalf("network configured with %+v, want %+v twice", configured, want)
	}

	// Another instance of the cluster waits for them while this one holds them.
	other := a.launch(t)
	e2 := newBootEnv(t)
	opts2 := a.bootOn(t, e2, other)
	opts2.AttachWait = 1500 * time.Millisecond
	_, st, err := e2.run(t, opts2)
	if err == nil || st.Step != bootstatus.StepAttach || !strings.Contains(err.Error(), "still attached to instance "+id+" (running)") {
		t.Fatalf("a second instance's boot: step %s, err %v; want it to wait for the interface held by %s", st.Step, err, id)
	}

	// Once the holder terminates, EC2 releases both and the new instance gets them.
	if _, err := a.root.TerminateInstances(t.Context(), &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	opts2.AttachWait = 30 * time.Second
	if _, st, err := e2.run(t, opts2); err != nil || st.Step != bootstatus.StepExec {
		t.Fatalf("boot after the holder terminated stopped at %s: %v\nlogs:\n%s", st.Step, err, e2.logs.String())
	}
	if got := string(mustRead(t, filepath.Join(e2.runtimeDir, "broker.properties"), 0o640)); !strings.Contains(got, "CLIENT://"+a.eniIP+":9092") {
		t.Fatalf("the replacement does not listen on the broker's address %s:\n%s", a.eniIP, got)
	}
	if _, err := os.Stat(filepath.Join(opts2.VolumeDir, a.volumeID)); err != nil {
		t.Fatalf("the replacement does not see the broker's volume: %v", err)
	}
}

// TestBootAttachRefusedForAnotherCluster is a broker role of another cluster
// on this cluster's instance: EC2 refuses to attach the interface, and the
// boot fails at the attach step saying what the role lacks.
func TestBootAttachRefusedForAnotherCluster(t *testing.T) {
	a := startAttachCloud(t, "c-other")
	e := newBootEnv(t)
	opts := a.bootOn(t, e, a.launch(t))
	_, st, err := e.run(t, opts)
	if err == nil || st.Step != bootstatus.StepAttach {
		t.Fatalf("boot stopped at %s (%v), want a refusal at the attach step", st.Step, err)
	}
	for _, want := range []string{"UnauthorizedOperation", a.eniID, "ec2:ResourceTag/tributary:cluster-id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	vol, verr := a.root.DescribeVolumes(t.Context(), &ec2.DescribeVolumesInput{VolumeIds: []string{a.volumeID}})
	if verr != nil || len(vol.Volumes[0].Attachments) != 0 {
		t.Fatalf("the volume got attached anyway: %+v (%v)", vol.Volumes, verr)
	}
}
