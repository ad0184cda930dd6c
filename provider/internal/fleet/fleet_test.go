package fleet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tributary/tributary/internal/localcloud"
	lcec2 "github.com/tributary/tributary/internal/localcloud/ec2"
)

// These tests run the fleet against an in-process local cloud whose
// instances run no program: what they check is the AWS objects, which the
// local cloud keeps as EC2 does.

// testCloud is a local cloud with the fleet and raw clients pointed at it.
type testCloud struct {
	cloud *localcloud.Cloud
	fleet *Fleet
	ec2   *ec2.Client
	kms   *kms.Client
	iam   *iam.Client
	image string // a registered image whose instances run no program
}

func startTestCloud(t *testing.T, transitionDelay time.Duration) *testCloud {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: t.TempDir(), StopGracePeriod: time.Second, TransitionDelay: transitionDelay,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the local cloud: %v", err)
		}
	})
	// The clients' idle connections are closed before the cloud is (cleanups
	// run last-registered first): the transport may hold a connection it
	// dialed but never used, which the server counts as new, not idle, and
	// its shutdown would wait for it.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	cfg := aws.Config{
		Region:       c.Region(),
		BaseEndpoint: aws.String(c.Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, ""),
		HTTPClient:   &http.Client{Transport: transport},
	}
	tc := &testCloud{cloud: c, ec2: ec2.NewFromConfig(cfg), kms: kms.NewFromConfig(cfg), iam: iam.NewFromConfig(cfg)}
	tc.fleet = &Fleet{EC2: tc.ec2, KMS: tc.kms, IAM: tc.iam, PollInterval: 20 * time.Millisecond,
		Log: func(ctx context.Context, msg string, attrs ...any) { t.Log(append([]any{msg}, attrs...)...) }}
	tc.image = tc.registerImage(t, "virtual-1")
	return tc
}

func (tc *testCloud) registerImage(t *testing.T, name string) string {
	t.Helper()
	id, err := tc.cloud.EC2().RegisterImage(lcec2.ImageSpec{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// spec is a three-AZ cluster of one broker per AZ in the default VPC.
func (tc *testCloud) spec(t *testing.T, clusterID string) *Spec {
	t.Helper()
	out, err := tc.ec2.DescribeSubnets(context.Background(), &ec2.DescribeSubnetsInput{
		Filters: []ec2types.Filter{{Name: aws.String("default-for-az"), Values: []string{"true"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var subnets []Subnet
	for _, s := range out.Subnets {
		subnets = append(subnets, Subnet{ID: aws.ToString(s.SubnetId), AvailabilityZone: aws.ToString(s.AvailabilityZone), VPCID: aws.ToString(s.VpcId)})
	}
	slices.SortFunc(subnets, func(a, b Subnet) int { return strings.Compare(a.AvailabilityZone, b.AvailabilityZone) })
	if len(subnets) < 3 {
		t.Fatalf("the local cloud has %d default subnets, want 3", len(subnets))
	}
	instanceType := "m7i.large"
	if lcec2.LocalArchitecture() == "arm64" {
		instanceType = "m7g.large"
	}
	return &Spec{
		ClusterID: clusterID, Name: "unit", ImageID: tc.image, InstanceType: instanceType, BrokersPerAZ: 1,
		Subnets:     subnets[:3],
		ClientCIDRs: []string{"127.0.0.0/8"}, ClientPorts: []int32{9092},
		Storage:          Storage{SizeGiB: 10, VolumeType: "gp3"},
		Tags:             map[string]string{"team": "streaming"},
		UserData:         func(Node, []Node) ([]byte, error) { return []byte(`{"version":1}`), nil },
		BootSettingsHash: "settings-1",
		MetricsNamespace: "Tributary/Unit",
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// ensure observes the cluster and creates what is missing.
func (tc *testCloud) ensure(t *testing.T, s *Spec) (*Observed, *Resolved) {
	t.Helper()
	ctx := ctxFor(t)
	o, err := tc.fleet.Observe(ctx, s.ClusterID)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	res, err := tc.fleet.Ensure(ctx, s, o)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return o, res
}

func (tc *testCloud) observe(t *testing.T, clusterID string) *Observed {
	t.Helper()
	o, err := tc.fleet.Observe(ctxFor(t), clusterID)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return o
}

// identities maps node id to "eni volume instance".
func identities(o *Observed) map[int32][3]string {
	out := map[int32][3]string{}
	for _, b := range o.Brokers {
		out[b.NodeID] = [3]string{b.ENIID, b.VolumeID, b.InstanceID}
	}
	return out
}

func TestEnsureBuildsAClusterObserveFindsAndDeleteRemoves(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-lifecycle")
	_, res := tc.ensure(t, s)

	o := tc.observe(t, s.ClusterID)
	if len(o.Brokers) != 3 {
		t.Fatalf("%d brokers observed, want 3: %+v", len(o.Brokers), o.Brokers)
	}
	azs := map[string]bool{}
	for _, b := range o.Brokers {
		azs[b.AvailabilityZone] = true
		switch {
		case b.ENIID == "" || b.PrivateIP == "":
			t.Errorf("broker %d has no ENI or address: %+v", b.NodeID, b)
		case b.InstanceState != "running" || !b.VolumeAttached:
			t.Errorf("broker %d: instance %s %s, volume attached %v", b.NodeID, b.InstanceID, b.InstanceState, b.VolumeAttached)
		case !b.VolumeEncrypted || b.VolumeKMSKeyID != res.KeyARN || b.VolumeSizeGiB != 10:
			t.Errorf("broker %d: volume %s encrypted %v with %s, %d GiB; want the cluster key %s, 10 GiB", b.NodeID, b.VolumeID, b.VolumeEncrypted, b.VolumeKMSKeyID, b.VolumeSizeGiB, res.KeyARN)
		case b.InstanceLaunchHash != s.instanceLaunchHash(res.InstanceProfile):
			t.Errorf("broker %d: instance launch hash %q, want %q", b.NodeID, b.InstanceLaunchHash, s.instanceLaunchHash(res.InstanceProfile))
		case s.NeedsRoll(&b, res.InstanceProfile):
			t.Errorf("broker %d needs a roll right after its launch", b.NodeID)
		}
	}
	if len(azs) != 3 {
		t.Errorf("brokers in %d AZs, want 3", len(azs))
	}
	if o.SecurityGroupID == "" || o.KeyARN != res.KeyARN || o.RoleName == "" || o.ProfileName != res.InstanceProfile {
		t.Errorf("shared objects: group %q, key %q (want %q), role %q, profile %q (want %q)", o.SecurityGroupID, o.KeyARN, res.KeyARN, o.RoleName, o.ProfileName, res.InstanceProfile)
	}
	if !maps.Equal(o.Tags, s.Tags) || !slices.Equal(o.ClientCIDRs, s.ClientCIDRs) {
		t.Errorf("observed tags %v and client CIDRs %v, want %v and %v", o.Tags, o.ClientCIDRs, s.Tags, s.ClientCIDRs)
	}

	// A second Ensure changes nothing.
	before := identities(o)
	tc.ensure(t, s)
	if after := identities(tc.observe(t, s.ClusterID)); !maps.Equal(before, after) {
		t.Fatalf("a second Ensure changed the brokers: %v -> %v", before, after)
	}

	ctx := ctxFor(t)
	if err := tc.fleet.Delete(ctx, s.ClusterID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if o := tc.observe(t, s.ClusterID); !o.Empty() {
		t.Fatalf("left after Delete: %+v", o)
	}
	key, err := tc.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(res.KeyARN)})
	if err != nil {
		t.Fatal(err)
	}
	if key.KeyMetadata.KeyState != "PendingDeletion" {
		t.Errorf("key %s is %s after Delete, want PendingDeletion", res.KeyARN, key.KeyMetadata.KeyState)
	}
	if err := tc.fleet.Delete(ctx, s.ClusterID); err != nil {
		t.Errorf("a second Delete: %v", err)
	}
}

func TestEnsureHealsBrokersKeepingENIAndVolume(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-heal")
	tc.ensure(t, s)
	before := tc.observe(t, s.ClusterID)
	ctx := ctxFor(t)

	// Broker 2's instance is terminated, broker 3's stopped, behind the fleet's back.
	b2, _ := before.Broker(2)
	b3, _ := before.Broker(3)
	if _, err := tc.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{b2.InstanceID}}); err != nil {
		t.Fatal(err)
	}
	if err := tc.fleet.waitInstanceTerminated(ctx, b2.InstanceID); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{b3.InstanceID}}); err != nil {
		t.Fatal(err)
	}
	if err := tc.fleet.waitInstanceStopped(ctx, b3.InstanceID); err != nil {
		t.Fatal(err)
	}
	o := tc.observe(t, s.ClusterID)
	if b, _ := o.Broker(2); b.HasLiveInstance() {
		t.Fatalf("broker 2 still has a live instance after termination: %+v", b)
	}

	tc.ensure(t, s)
	after := tc.observe(t, s.ClusterID)
	for _, was := range before.Brokers {
		b, ok := after.Broker(was.NodeID)
		switch {
		case !ok:
			t.Fatalf("broker %d is gone", was.NodeID)
		case b.ENIID != was.ENIID || b.PrivateIP != was.PrivateIP || b.VolumeID != was.VolumeID:
			t.Errorf("broker %d lost its ENI, address or volume: %+v -> %+v", b.NodeID, was, b)
		case b.InstanceState != "running" || !b.VolumeAttached:
			t.Errorf("broker %d not healed: instance %s %s, volume attached %v", b.NodeID, b.InstanceID, b.InstanceState, b.VolumeAttached)
		case was.NodeID == 2 && b.InstanceID == was.InstanceID:
			t.Errorf("broker 2 kept its terminated instance %s", b.InstanceID)
		case was.NodeID != 2 && b.InstanceID != was.InstanceID:
			t.Errorf("broker %d got a new instance (%s -> %s); a stopped instance is started, a running one kept", b.NodeID, was.InstanceID, b.InstanceID)
		}
	}
}

func TestEnsureChangesInPlace(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-inplace")
	_, res := tc.ensure(t, s)
	before := identities(tc.observe(t, s.ClusterID))
	ctx := ctxFor(t)

	extra, err := tc.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("unit-extra"), Description: aws.String("extra"), VpcId: aws.String(s.Subnets[0].VPCID),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Storage.SizeGiB = 20
	s.SecurityGroupIDs = []string{aws.ToString(extra.GroupId)}
	s.ClientCIDRs = []string{"10.0.0.0/8"}
	s.Tags = map[string]string{"team": "platform", "cost-center": "42"}
	tc.ensure(t, s)

	o := tc.observe(t, s.ClusterID)
	if after := identities(o); !maps.Equal(before, after) {
		t.Fatalf("in-place changes replaced objects: %v -> %v", before, after)
	}
	wantGroups := []string{o.SecurityGroupID, aws.ToString(extra.GroupId)}
	slices.Sort(wantGroups)
	for _, b := range o.Brokers {
		if b.VolumeSizeGiB != 20 {
			t.Errorf("broker %d: volume is %d GiB, want 20", b.NodeID, b.VolumeSizeGiB)
		}
		if !slices.Equal(b.SecurityGroupIDs, wantGroups) {
			t.Errorf("broker %d: ENI groups %v, want %v", b.NodeID, b.SecurityGroupIDs, wantGroups)
		}
	}
	if !slices.Equal(o.ClientCIDRs, []string{"10.0.0.0/8"}) {
		t.Errorf("client CIDRs %v after the change, want only 10.0.0.0/8", o.ClientCIDRs)
	}
	if !maps.Equal(o.Tags, s.Tags) {
		t.Errorf("tags %v, want %v", o.Tags, s.Tags)
	}
	keyTags, err := tc.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(res.KeyARN)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kt := range keyTags.Tags {
		got[aws.ToString(kt.TagKey)] = aws.ToString(kt.TagValue)
	}
	if got["team"] != "platform" || got["cost-center"] != "42" {
		t.Errorf("key tags %v, want team=platform and cost-center=42", got)
	}

	// Volumes only grow.
	s.Storage.SizeGiB = 15
	o = tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctx, s, o); err == nil || !strings.Contains(err.Error(), "cannot shrink") {
		t.Fatalf("Ensure with a smaller volume: err = %v, want a refusal to shrink", err)
	}
}

func TestEnsureTerminatesOrphanInstances(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-orphan")
	tc.ensure(t, s)
	ctx := ctxFor(t)
	// An instance tagged with the cluster but no broker (a crash between
	// RunInstances and the bookkeeping).
	out, err := tc.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(tc.image), InstanceType: ec2types.InstanceType(s.InstanceType), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId:          aws.String(s.Subnets[0].ID),
		TagSpecifications: tagSpec(ec2types.ResourceTypeInstance, map[string]string{TagClusterID: s.ClusterID}),
	})
	if err != nil {
		t.Fatal(err)
	}
	orphan := aws.ToString(out.Instances[0].InstanceId)
	if o := tc.observe(t, s.ClusterID); !slices.Contains(o.OrphanInstanceIDs, orphan) {
		t.Fatalf("Observe did not list %s as an orphan: %v", orphan, o.OrphanInstanceIDs)
	}
	tc.ensure(t, s)
	in, err := tc.fleet.describeInstance(ctx, orphan)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil && in.State.Name != ec2types.InstanceStateNameTerminated {
		t.Fatalf("orphan %s is %s after Ensure, want terminated", orphan, in.State.Name)
	}
}

func TestRollReplacesOneBrokerAtATime(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-roll")
	_, res := tc.ensure(t, s)
	before := tc.observe(t, s.ClusterID)

	next := *s
	next.ImageID = tc.registerImage(t, "virtual-2")
	var mu sync.Mutex
	var events []string
	record := func(what string) func(context.Context, int32) error {
		return func(_ context.Context, id int32) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, what+" "+string(rune('0'+id)))
			return nil
		}
	}
	o := tc.observe(t, s.ClusterID)
	if err := tc.fleet.Roll(ctxFor(t), &next, o, res, RollHooks{BeforeStop: record("stop"), AfterStart: record("started")}); err != nil {
		t.Fatalf("Roll: %v", err)
	}
	want := []string{"stop 1", "started 1", "stop 2", "started 2", "stop 3", "started 3"}
	if !slices.Equal(events, want) {
		t.Errorf("hooks ran %v, want %v", events, want)
	}
	after := tc.observe(t, s.ClusterID)
	for _, was := range before.Brokers {
		b, _ := after.Broker(was.NodeID)
		if b.ENIID != was.ENIID || b.VolumeID != was.VolumeID || b.InstanceID == was.InstanceID || b.ImageID != next.ImageID || !b.VolumeAttached {
			t.Errorf("broker %d after the roll: %+v (before %+v); want the same ENI and volume on a new instance of %s", b.NodeID, b, was, next.ImageID)
		}
		if next.NeedsRoll(b, res.InstanceProfile) {
			t.Errorf("broker %d still needs a roll", b.NodeID)
		}
	}

	// A refusal before stopping a broker stops the roll there.
	third := next
	third.BootSettingsHash = "settings-2"
	refused := errors.New("a partition would drop below min.insync.replicas")
	err := tc.fleet.Roll(ctxFor(t), &third, tc.observe(t, s.ClusterID), res, RollHooks{
		BeforeStop: func(_ context.Context, id int32) error {
			if id == 2 {
				return refused
			}
			return nil
		},
	})
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "not replacing broker 2") {
		t.Fatalf("Roll with a refusal: err = %v", err)
	}
	o = tc.observe(t, s.ClusterID)
	for _, b := range o.Brokers {
		if third.NeedsRoll(&b, res.InstanceProfile) != (b.NodeID != 1) {
			t.Errorf("broker %d: needs roll %v after a roll that stopped before broker 2", b.NodeID, third.NeedsRoll(&b, res.InstanceProfile))
		}
	}
}

func TestRetagRecordsALiveChange(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-retag")
	_, res := tc.ensure(t, s)
	next := *s
	next.BootSettingsHash = "settings-after-a-dynamic-change"
	o := tc.observe(t, s.ClusterID)
	if err := tc.fleet.Retag(ctxFor(t), s, &next, res.InstanceProfile, o); err != nil {
		t.Fatal(err)
	}
	for _, b := range tc.observe(t, s.ClusterID).Brokers {
		if next.NeedsRoll(&b, res.InstanceProfile) {
			t.Errorf("broker %d needs a roll after Retag", b.NodeID)
		}
	}
}

// staleAttachment makes a network interface attached, at device index 1, to
// an instance that then terminates while the local cloud keeps terminated
// instances' interfaces attached (as moto does).
func staleAttachment(t *testing.T, tc *testCloud, subnet Subnet, instanceType string) (eniID, instanceID string) {
	t.Helper()
	ctx := ctxFor(t)
	eni, err := tc.ec2.CreateNetworkInterface(ctx, &ec2.CreateNetworkInterfaceInput{SubnetId: aws.String(subnet.ID)})
	if err != nil {
		t.Fatal(err)
	}
	eniID = aws.ToString(eni.NetworkInterface.NetworkInterfaceId)
	run, err := tc.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(tc.image), InstanceType: ec2types.InstanceType(instanceType), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: aws.String(subnet.ID),
	})
	if err != nil {
		t.Fatal(err)
	}
	instanceID = aws.ToString(run.Instances[0].InstanceId)
	if err := tc.fleet.waitInstanceRunning(ctx, instanceID); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.ec2.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
		NetworkInterfaceId: aws.String(eniID), InstanceId: aws.String(instanceID), DeviceIndex: aws.Int32(1),
	}); err != nil {
		t.Fatal(err)
	}
	tc.cloud.KeepInterfacesOnTerminate(true)
	t.Cleanup(func() { tc.cloud.KeepInterfacesOnTerminate(false) })
	if err := tc.fleet.terminate(ctx, []string{instanceID}); err != nil {
		t.Fatal(err)
	}
	got, err := tc.fleet.describeENI(ctx, eniID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != ec2types.NetworkInterfaceStatusInUse {
		t.Fatalf("network interface %s is %s after its instance terminated under the fault, want in-use", eniID, got.Status)
	}
	return eniID, instanceID
}

func TestStaleAttachmentOfTerminatedInstanceIsDetached(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-detach")
	// The local cloud detaches at once; the bound only keeps a regression
	// from hanging the test.
	tc.fleet.Waits.NetworkInterfaceReleased = 20 * time.Second

	t.Run("before a launch on it", func(t *testing.T) {
		eni, _ := staleAttachment(t, tc, s.Subnets[0], s.InstanceType)
		if err := tc.fleet.waitENIAvailable(ctxFor(t), eni); err != nil {
			t.Fatalf("waitENIAvailable: %v", err)
		}
	})
	t.Run("before deleting it", func(t *testing.T) {
		eni, _ := staleAttachment(t, tc, s.Subnets[1], s.InstanceType)
		ctx := ctxFor(t)
		if err := tc.fleet.deleteENI(ctx, eni); err != nil {
			t.Fatalf("deleteENI: %v", err)
		}
		if got, err := tc.fleet.describeENI(ctx, eni); err != nil || got != nil {
			t.Fatalf("network interface %s after deleteENI: %+v, %v; want it gone", eni, got, err)
		}
	})
}

// TestDeleteGivesUpOnAnInterfaceNeverReleased: a broker's interface stays
// attached (device index 0, which EC2 will not detach) to its terminated
// instance and EC2 refuses to delete it; Delete must end at the bound with
// an error naming the interface, its state and what it waited for.
func TestDeleteGivesUpOnAnInterfaceNeverReleased(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-stuck")
	tc.ensure(t, s)
	tc.cloud.KeepInterfacesOnTerminate(true)
	const bound = 500 * time.Millisecond
	tc.fleet.Waits.NetworkInterfaceReleased = bound

	start := time.Now()
	err := tc.fleet.Delete(ctxFor(t), s.ClusterID)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Delete succeeded although no interface can be released")
	}
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrWaitBound) {
		t.Fatalf("Delete: %v; want a WaitError at its bound", err)
	}
	if !strings.HasPrefix(we.Object, "network interface eni-") || we.Want != "be released and deleted" ||
		!strings.Contains(we.State, "in-use") || !strings.Contains(we.State, "(terminated)") || !strings.Contains(we.State, "refused to detach") {
		t.Errorf("WaitError %+v: want the interface, its in-use state with the terminated instance and the refused detach, and what was waited for", we)
	}
	for _, want := range []string{we.Object, "gave up after", "still in-use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if took > bound+10*time.Second {
		t.Errorf("Delete took %s with a %s bound", took, bound)
	}
}

// TestWaitsEndAtTheirBound: a volume that stays "creating" (transitions
// take an hour in this cloud) ends Ensure at the VolumeState bound, with the
// volume and its state in the error.
func TestWaitsEndAtTheirBound(t *testing.T) {
	tc := startTestCloud(t, time.Hour)
	s := tc.spec(t, "tc-unit-bound")
	tc.fleet.Waits.VolumeState = 300 * time.Millisecond
	ctx := ctxFor(t)
	o, err := tc.fleet.Observe(ctx, s.ClusterID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tc.fleet.Ensure(ctx, s, o)
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrWaitBound) {
		t.Fatalf("Ensure: %v; want a WaitError at its bound", err)
	}
	if !strings.HasPrefix(we.Object, "volume vol-") || we.Want != "be available" || we.State != "creating" {
		t.Errorf("WaitError %+v: want a volume, still creating, waited on to be available", we)
	}
	if ctx.Err() != nil {
		t.Errorf("the wait ended with its context, not at its bound")
	}
}

// TestRollGivesUpOnAnInterfaceNeverReleased: a replaced broker's interface
// stays attached to its terminated instance (as moto leaves it); the roll
// cannot launch on it and must end at the bound, naming the interface.
func TestRollGivesUpOnAnInterfaceNeverReleased(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-stuck-roll")
	_, res := tc.ensure(t, s)
	tc.cloud.KeepInterfacesOnTerminate(true)
	tc.fleet.Waits.NetworkInterfaceReleased = 500 * time.Millisecond
	next := *s
	next.ImageID = tc.registerImage(t, "virtual-2")
	err := tc.fleet.Roll(ctxFor(t), &next, tc.observe(t, s.ClusterID), res, RollHooks{})
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrWaitBound) {
		t.Fatalf("Roll: %v; want a WaitError at its bound", err)
	}
	if !strings.Contains(err.Error(), "replacing broker 1") || !strings.HasPrefix(we.Object, "network interface eni-") ||
		we.Want != "be available" || !strings.Contains(we.State, "(terminated)") {
		t.Errorf("Roll: %v (%+v); want broker 1's interface, attached to its terminated instance, waited on to be available", err, we)
	}
}
