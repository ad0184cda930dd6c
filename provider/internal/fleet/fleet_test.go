package fleet

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
	lcec2 "github.com/tributary/tributary/internal/localcloud/ec2"
)

// These tests run the fleet against an in-process local cloud whose
// instances run no program: what they check is the AWS objects, which the
// local cloud keeps as EC2 does; runAgents plays the instances' boot
// agents, which attach the brokers' interfaces and volumes.

// testCloud is a local cloud with the fleet and raw clients pointed at it.
type testCloud struct {
	cloud *localcloud.Cloud
	fleet *Fleet
	cfg   aws.Config
	ec2   *ec2.Client
	kms   *kms.Client
	iam   *iam.Client
	asg   *autoscaling.Client
	image string // a registered image whose instances run no program
}

func startTestCloud(t *testing.T, transitionDelay time.Duration) *testCloud {
	t.Helper()
	return startTestCloudChecking(t, transitionDelay, 100*time.Millisecond)
}

// startTestCloudChecking is startTestCloud with Auto Scaling checking its
// groups every asgInterval.
func startTestCloudChecking(t *testing.T, transitionDelay, asgInterval time.Duration) *testCloud {
	t.Helper()
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: t.TempDir(), StopGracePeriod: time.Second, TransitionDelay: transitionDelay,
		AutoScalingInterval: asgInterval,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	tc := &testCloud{cloud: c, cfg: cfg, ec2: ec2.NewFromConfig(cfg), kms: kms.NewFromConfig(cfg), iam: iam.NewFromConfig(cfg), asg: autoscaling.NewFromConfig(cfg)}
	tc.fleet = &Fleet{EC2: tc.ec2, KMS: tc.kms, IAM: tc.iam, AutoScaling: tc.asg, PollInterval: 20 * time.Millisecond, HealthCheckGracePeriod: time.Second,
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

// runAgents does what the boot agent of every instance of the cluster's
// groups does (these instances run no program): attach the broker's ENI, as
// device 1, and its volume, once EC2 has released them. It runs until the
// test ends.
func (tc *testCloud) runAgents(t *testing.T, clusterID string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			tc.agentRound(ctx, clusterID)
			select {
			case <-ctx.Done():
			case <-time.After(30 * time.Millisecond):
			}
		}
	}()
}

func (tc *testCloud) agentRound(ctx context.Context, clusterID string) {
	insts, err := tc.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		clusterFilter(clusterID),
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		{Name: aws.String("tag-key"), Values: []string{"aws:autoscaling:groupName"}},
	}})
	if err != nil {
		return
	}
	for _, r := range insts.Reservations {
		for _, in := range r.Instances {
			node := tagValue(in.Tags, TagNodeID)
			own := []ec2types.Filter{clusterFilter(clusterID), {Name: aws.String("tag:" + TagNodeID), Values: []string{node}}}
			if enis, err := tc.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: own}); err == nil {
				for _, e := range enis.NetworkInterfaces {
					if e.Status == ec2types.NetworkInterfaceStatusAvailable {
						_, _ = tc.ec2.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{
							NetworkInterfaceId: e.NetworkInterfaceId, InstanceId: in.InstanceId, DeviceIndex: aws.Int32(InterfaceDeviceIndex)})
					}
				}
			}
			if vols, err := tc.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: own}); err == nil {
				for _, v := range vols.Volumes {
					if v.State == ec2types.VolumeStateAvailable {
						_, _ = tc.ec2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: v.VolumeId, InstanceId: in.InstanceId, Device: aws.String(DataDeviceName)})
					}
				}
			}
		}
	}
}

// waitAllAttached waits until every broker's instance runs with its ENI and
// volume attached.
func (tc *testCloud) waitAllAttached(t *testing.T, clusterID string) *Observed {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		o := tc.observe(t, clusterID)
		ready := len(o.Brokers) > 0
		for _, b := range o.Brokers {
			if b.InstanceState != "running" || !b.ENIAttached || !b.VolumeAttached {
				ready = false
			}
		}
		if ready {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokers not running with their ENI and volume attached: %+v", o.Brokers)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func TestEnsureBuildsAClusterObserveFindsAndDeleteRemoves(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-lifecycle")
	tc.runAgents(t, s.ClusterID)
	_, res := tc.ensure(t, s)

	o := tc.waitAllAttached(t, s.ClusterID)
	if len(o.Brokers) != 3 {
		t.Fatalf("%d brokers observed, want 3: %+v", len(o.Brokers), o.Brokers)
	}
	azs := map[string]bool{}
	for _, b := range o.Brokers {
		azs[b.AvailabilityZone] = true
		switch {
		case b.ENIID == "" || b.PrivateIP == "":
			t.Errorf("broker %d has no ENI or address: %+v", b.NodeID, b)
		case !b.VolumeEncrypted || b.VolumeKMSKeyID != res.KeyARN || b.VolumeSizeGiB != 10:
			t.Errorf("broker %d: volume %s encrypted %v with %s, %d GiB; want the cluster key %s, 10 GiB", b.NodeID, b.VolumeID, b.VolumeEncrypted, b.VolumeKMSKeyID, b.VolumeSizeGiB, res.KeyARN)
		case b.GroupName != GroupName(s.ClusterID, b.NodeID) || b.GroupMin != 1 || b.GroupMax != 1 || b.GroupDesired != 1 || b.GroupSubnets != b.SubnetID:
			t.Errorf("broker %d: group %q min %d max %d desired %d in %q; want a group of one in %s", b.NodeID, b.GroupName, b.GroupMin, b.GroupMax, b.GroupDesired, b.GroupSubnets, b.SubnetID)
		case b.TemplateLatestHash != s.instanceLaunchHash(res.Profiles[b.NodeID]) || b.Launch == nil || b.Launch.ImageID != s.ImageID:
			t.Errorf("broker %d: template hash %q launch %+v; want %q and image %s", b.NodeID, b.TemplateLatestHash, b.Launch, s.instanceLaunchHash(res.Profiles[b.NodeID]), s.ImageID)
		case b.Launch.InstanceProfile != BrokerRoleName(s.ClusterID, b.NodeID):
			t.Errorf("broker %d launches with profile %q, want its own %q", b.NodeID, b.Launch.InstanceProfile, BrokerRoleName(s.ClusterID, b.NodeID))
		case b.NeedsRoll():
			t.Errorf("broker %d needs a roll right after its launch", b.NodeID)
		}
	}
	if len(azs) != 3 {
		t.Errorf("brokers in %d AZs, want 3", len(azs))
	}
	wantRoles := []string{BrokerRoleName(s.ClusterID, 1), BrokerRoleName(s.ClusterID, 2), BrokerRoleName(s.ClusterID, 3)}
	if o.SecurityGroupID == "" || o.KeyARN != res.KeyARN || !slices.Equal(o.RoleNames, wantRoles) || !slices.Equal(o.ProfileNames, wantRoles) {
		t.Errorf("cluster objects: group %q, key %q (want %q), roles %q, profiles %q (want %q)", o.SecurityGroupID, o.KeyARN, res.KeyARN, o.RoleNames, o.ProfileNames, wantRoles)
	}
	if !maps.Equal(o.Tags, s.Tags) || !slices.Equal(o.ClientCIDRs, s.ClientCIDRs) {
		t.Errorf("observed tags %v and client CIDRs %v, want %v and %v", o.Tags, o.ClientCIDRs, s.Tags, s.ClientCIDRs)
	}
	if len(o.Groups) != 3 || len(o.Templates) != 3 {
		t.Errorf("groups %v and templates %v, want three of each", o.Groups, o.Templates)
	}

	// A second Ensure changes nothing.
	before := identities(o)
	tc.ensure(t, s)
	after := tc.observe(t, s.ClusterID)
	if !maps.Equal(before, identities(after)) {
		t.Fatalf("a second Ensure changed the brokers: %v -> %v", before, identities(after))
	}
	for _, b := range after.Brokers {
		if b.TemplateLatest != 1 {
			t.Errorf("broker %d: a second Ensure made template version %d", b.NodeID, b.TemplateLatest)
		}
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

// TestGroupsHealBrokersKeepingENIAndVolume: broker 2's instance terminated,
// broker 3's stopped, behind the fleet's back; their groups replace both
// with nobody calling the fleet, and the new instances take the brokers'
// ENIs and volumes. Ensure afterwards changes nothing.
func TestGroupsHealBrokersKeepingENIAndVolume(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-heal")
	tc.runAgents(t, s.ClusterID)
	tc.ensure(t, s)
	before := tc.waitAllAttached(t, s.ClusterID)
	ctx := ctxFor(t)

	b2, _ := before.Broker(2)
	b3, _ := before.Broker(3)
	if _, err := tc.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{b2.InstanceID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{b3.InstanceID}}); err != nil {
		t.Fatal(err)
	}
	var after *Observed
	deadline := time.Now().Add(time.Minute)
	for {
		after = tc.waitAllAttached(t, s.ClusterID)
		n2, _ := after.Broker(2)
		n3, _ := after.Broker(3)
		if n2.InstanceID != b2.InstanceID && n3.InstanceID != b3.InstanceID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the groups did not replace brokers 2 and 3: %+v", after.Brokers)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, was := range before.Brokers {
		b, _ := after.Broker(was.NodeID)
		switch {
		case b.ENIID != was.ENIID || b.PrivateIP != was.PrivateIP || b.VolumeID != was.VolumeID:
			t.Errorf("broker %d lost its ENI, address or volume: %+v -> %+v", b.NodeID, was, b)
		case was.NodeID == 1 && b.InstanceID != was.InstanceID:
			t.Errorf("broker 1 got a new instance (%s -> %s)", was.InstanceID, b.InstanceID)
		case b.NeedsRoll():
			t.Errorf("broker %d needs a roll after its heal", b.NodeID)
		}
	}
	if p := identities(after); !maps.Equal(p, identities(func() *Observed { tc.ensure(t, s); return tc.observe(t, s.ClusterID) }())) {
		t.Errorf("Ensure after the heal changed the brokers")
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
	s.Storage.Autoscaling = &StorageAutoscaling{TargetUtilization: 60, MaxSizeGiB: 200}
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
	wantAuto := map[string]string{TagAutoscalingTarget: "60", TagAutoscalingMaxSize: "200"}
	for _, b := range o.Brokers {
		if b.VolumeSizeGiB != 20 {
			t.Errorf("broker %d: volume is %d GiB, want 20", b.NodeID, b.VolumeSizeGiB)
		}
		if !slices.Equal(b.SecurityGroupIDs, wantGroups) {
			t.Errorf("broker %d: ENI groups %v, want %v", b.NodeID, b.SecurityGroupIDs, wantGroups)
		}
		if !maps.Equal(b.VolumeTags, wantAuto) {
			t.Errorf("broker %d: volume autoscaling tags %v, want %v", b.NodeID, b.VolumeTags, wantAuto)
		}
		if b.NeedsRoll() || b.TemplateLatest != 1 {
			t.Errorf("broker %d: an in-place change rolls it (template version %d)", b.NodeID, b.TemplateLatest)
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
	groups, err := tc.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: o.Groups})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.AutoScalingGroups {
		tags := map[string]bool{}
		for _, tg := range g.Tags {
			tags[aws.ToString(tg.Key)+"="+aws.ToString(tg.Value)] = aws.ToBool(tg.PropagateAtLaunch)
		}
		if !tags["team=platform"] || !tags["cost-center=42"] || tags["team=streaming"] {
			t.Errorf("group %s tags %v: want the new tags, propagated to its instances", aws.ToString(g.AutoScalingGroupName), tags)
		}
	}

	// Autoscaling off removes the tags; volumes only grow.
	s.Storage.Autoscaling = nil
	tc.ensure(t, s)
	for _, b := range tc.observe(t, s.ClusterID).Brokers {
		if len(b.VolumeTags) != 0 {
			t.Errorf("broker %d: autoscaling tags %v left after turning it off", b.NodeID, b.VolumeTags)
		}
	}
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
	o := tc.observe(t, s.ClusterID)
	if !slices.Contains(o.OrphanInstanceIDs, orphan) {
		t.Fatalf("Observe did not list %s as an orphan: %v", orphan, o.OrphanInstanceIDs)
	}
	for _, b := range o.Brokers {
		if slices.Contains(o.OrphanInstanceIDs, b.InstanceID) {
			t.Fatalf("broker %d's instance %s (its group's) is listed as an orphan", b.NodeID, b.InstanceID)
		}
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

// rollRecorder records the roll hooks' calls; started also does what the
// new instance's boot agent does, the hooks waiting until it is done.
type rollRecorder struct {
	mu     sync.Mutex
	events []string
}

func (r *rollRecorder) hooks(tc *testCloud, t *testing.T, clusterID string) RollHooks {
	record := func(what string, id int32) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, fmt.Sprintf("%s %d", what, id))
	}
	return RollHooks{
		BeforeStop: func(_ context.Context, id int32) error { record("stop", id); return nil },
		AfterStart: func(_ context.Context, id int32) error {
			tc.waitAllAttached(t, clusterID)
			record("started", id)
			return nil
		},
	}
}

func TestRollReplacesOneBrokerAtATime(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-roll")
	tc.runAgents(t, s.ClusterID)
	_, res := tc.ensure(t, s)
	before := tc.waitAllAttached(t, s.ClusterID)

	next := *s
	next.ImageID = tc.registerImage(t, "virtual-2")
	o := tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), &next, o); err != nil {
		t.Fatalf("Ensure of the new image: %v", err)
	}
	for _, b := range o.Brokers {
		if b.InstanceID != func() string { w, _ := before.Broker(b.NodeID); return w.InstanceID }() || !b.NeedsRoll() || b.GroupVersion != "2" {
			t.Fatalf("broker %d after Ensure of a new image: instance %s, group version %s, needs roll %v; want the old instance, version 2, a roll",
				b.NodeID, b.InstanceID, b.GroupVersion, b.NeedsRoll())
		}
	}
	rec := &rollRecorder{}
	if err := tc.fleet.Roll(ctxFor(t), &next, o, rec.hooks(tc, t, s.ClusterID)); err != nil {
		t.Fatalf("Roll: %v", err)
	}
	want := []string{"stop 1", "started 1", "stop 2", "started 2", "stop 3", "started 3"}
	if !slices.Equal(rec.events, want) {
		t.Errorf("hooks ran %v, want %v", rec.events, want)
	}
	after := tc.waitAllAttached(t, s.ClusterID)
	for _, was := range before.Brokers {
		b, _ := after.Broker(was.NodeID)
		if b.ENIID != was.ENIID || b.VolumeID != was.VolumeID || b.InstanceID == was.InstanceID || b.ImageID != next.ImageID {
			t.Errorf("broker %d after the roll: %+v (before %+v); want the same ENI and volume on a new instance of %s", b.NodeID, b, was, next.ImageID)
		}
		if b.NeedsRoll() || b.TemplateLatestHash != next.instanceLaunchHash(res.Profiles[b.NodeID]) {
			t.Errorf("broker %d still needs a roll", b.NodeID)
		}
	}

	// A refusal before stopping a broker stops the roll there.
	third := next
	third.BootSettingsHash = "settings-2"
	o = tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), &third, o); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("a partition would drop below min.insync.replicas")
	hooks := (&rollRecorder{}).hooks(tc, t, s.ClusterID)
	hooks.BeforeStop = func(_ context.Context, id int32) error {
		if id == 2 {
			return refused
		}
		return nil
	}
	err := tc.fleet.Roll(ctxFor(t), &third, o, hooks)
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "not replacing broker 2") {
		t.Fatalf("Roll with a refusal: err = %v", err)
	}
	for _, b := range tc.observe(t, s.ClusterID).Brokers {
		if b.NeedsRoll() != (b.NodeID != 1) {
			t.Errorf("broker %d: needs roll %v after a roll that stopped before broker 2", b.NodeID, b.NeedsRoll())
		}
	}
}

// TestResealKeepsTheRunningInstances: Spec.Reseal gives each broker a new
// template version with its document rendered again, which its group
// launches from then on, and no broker needs a roll for it, as Ensure left
// them or observed again; an Ensure without Reseal writes no version more.
// A broker whose group launches another version than its instance's (a
// roll pending) gets an ordinary version, and stays to be rolled; Reissue
// still rolls a broker whose group launches a resealed version.
func TestResealKeepsTheRunningInstances(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-reseal")
	tc.runAgents(t, s.ClusterID)
	tc.ensure(t, s)
	before := tc.waitAllAttached(t, s.ClusterID)

	resealed := *s
	const doc = `{"version":1,"resealed":true}`
	resealed.UserData = func(Node, []Node) ([]byte, error) { return []byte(doc), nil }
	resealed.Reseal = map[int32]bool{1: true, 2: true, 3: true}
	o := tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), &resealed, o); err != nil {
		t.Fatalf("Ensure with Reseal: %v", err)
	}
	check := func(when string, o *Observed) {
		t.Helper()
		for _, b := range o.Brokers {
			was, _ := before.Broker(b.NodeID)
			if b.InstanceID != was.InstanceID || b.GroupVersion != "2" || b.GroupReseals != "1" || b.InstanceVersion != "1" || b.NeedsRoll() {
				t.Errorf("broker %d %s: instance %s (was %s), group version %s reseals %q, instance version %s, needs roll %v; want the same instance, version 2 resealing 1, no roll",
					b.NodeID, when, b.InstanceID, was.InstanceID, b.GroupVersion, b.GroupReseals, b.InstanceVersion, b.NeedsRoll())
			}
		}
	}
	check("after Ensure", o)
	o = tc.observe(t, s.ClusterID)
	check("observed again", o)
	for _, b := range o.Brokers {
		if b.Launch == nil || string(b.Launch.UserData) != doc {
			t.Errorf("broker %d's group launches %+v, want the document rendered again", b.NodeID, b.Launch)
		}
	}
	rec := &rollRecorder{}
	if err := tc.fleet.Roll(ctxFor(t), &resealed, o, rec.hooks(tc, t, s.ClusterID)); err != nil || len(rec.events) > 0 {
		t.Fatalf("Roll after a reseal: %v, hooks ran %v; want nothing to roll", err, rec.events)
	}

	plain := resealed
	plain.Reseal = nil
	if _, err := tc.fleet.Ensure(ctxFor(t), &plain, o); err != nil {
		t.Fatal(err)
	}
	check("after an Ensure without Reseal", tc.observe(t, s.ClusterID))

	// Broker 1's certificate is reissued: an ordinary version 3, a roll.
	reissued := plain
	reissued.Reissue = map[int32]bool{1: true}
	o = tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), &reissued, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := o.Broker(1); b.GroupVersion != "3" || b.GroupReseals != "" || !b.NeedsRoll() {
		t.Fatalf("broker 1 after a reissue: group version %s reseals %q, needs roll %v; want an ordinary version 3 and a roll", b.GroupVersion, b.GroupReseals, b.NeedsRoll())
	}
	// Resealed while that roll is pending: an ordinary version 4, still a roll.
	again := plain
	again.Reseal = map[int32]bool{1: true}
	o = tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), &again, o); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Observed{o, tc.observe(t, s.ClusterID)} {
		if b, _ := o.Broker(1); b.GroupVersion != "4" || b.GroupReseals != "" || !b.NeedsRoll() {
			t.Fatalf("broker 1 resealed with a roll pending: group version %s reseals %q, needs roll %v; want an ordinary version 4 and a roll", b.GroupVersion, b.GroupReseals, b.NeedsRoll())
		}
	}
}

// legacyCluster turns the cluster Ensure built into what an earlier
// provider built: no groups or launch templates, each broker an instance
// launched on its ENI (device 0) with its volume attached by the provider
// and a version 1 boot document.
func (tc *testCloud) legacyCluster(t *testing.T, s *Spec) *Observed {
	t.Helper()
	ctx := ctxFor(t)
	o := tc.observe(t, s.ClusterID)
	if err := tc.fleet.deleteGroups(ctx, o.Groups); err != nil {
		t.Fatal(err)
	}
	if err := tc.fleet.deleteTemplates(ctx, o.Templates); err != nil {
		t.Fatal(err)
	}
	o = tc.observe(t, s.ClusterID)
	for _, b := range o.Brokers {
		if err := tc.fleet.waitReleased(ctx, &b); err != nil {
			t.Fatal(err)
		}
		out, err := tc.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(s.ImageID), InstanceType: ec2types.InstanceType(s.InstanceType), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			NetworkInterfaces: []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), NetworkInterfaceId: aws.String(b.ENIID)}},
			UserData:          aws.String("eyJ2ZXJzaW9uIjoxfQ=="), // {"version":1}
			TagSpecifications: tagSpec(ec2types.ResourceTypeInstance, s.allTags("broker", b.NodeID)),
		})
		if err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(out.Instances[0].InstanceId)
		if err := tc.fleet.waitInstanceRunning(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.ec2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(b.VolumeID), InstanceId: aws.String(id), Device: aws.String(DataDeviceName)}); err != nil {
			t.Fatal(err)
		}
		if err := tc.fleet.waitVolume(ctx, b.VolumeID, ec2types.VolumeStateInUse, id); err != nil {
			t.Fatal(err)
		}
	}
	o = tc.observe(t, s.ClusterID)
	for _, b := range o.Brokers {
		if !b.Legacy() || !b.NeedsRoll() || !b.ENIAttached || !b.VolumeAttached {
			t.Fatalf("broker %d is not an earlier provider's broker: %+v", b.NodeID, b)
		}
	}
	return o
}

// TestRollMovesEarlierBrokersIntoGroups: a cluster an earlier provider made
// (instances of no group) gets launch templates from Ensure, which leaves
// the running instances alone, and Roll moves the brokers into their groups
// one at a time, gated like a roll, each keeping its ENI, address and
// volume.
func TestRollMovesEarlierBrokersIntoGroups(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-migrate")
	tc.runAgents(t, s.ClusterID)
	tc.ensure(t, s)
	tc.waitAllAttached(t, s.ClusterID)
	before := tc.legacyCluster(t, s)

	o := tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), s, o); err != nil {
		t.Fatalf("Ensure on an earlier provider's cluster: %v", err)
	}
	for _, b := range o.Brokers {
		was, _ := before.Broker(b.NodeID)
		if b.GroupName != "" || b.TemplateID == "" || b.InstanceID != was.InstanceID {
			t.Fatalf("broker %d after Ensure: group %q template %q instance %s; want a template, no group yet, the running instance kept",
				b.NodeID, b.GroupName, b.TemplateID, b.InstanceID)
		}
	}
	rec := &rollRecorder{}
	if err := tc.fleet.Roll(ctxFor(t), s, o, rec.hooks(tc, t, s.ClusterID)); err != nil {
		t.Fatalf("Roll: %v", err)
	}
	if want := []string{"stop 1", "started 1", "stop 2", "started 2", "stop 3", "started 3"}; !slices.Equal(rec.events, want) {
		t.Errorf("hooks ran %v, want %v", rec.events, want)
	}
	after := tc.waitAllAttached(t, s.ClusterID)
	for _, was := range before.Brokers {
		b, _ := after.Broker(was.NodeID)
		if b.GroupName == "" || b.Legacy() || b.NeedsRoll() || b.ENIID != was.ENIID || b.PrivateIP != was.PrivateIP || b.VolumeID != was.VolumeID || b.InstanceID == was.InstanceID {
			t.Errorf("broker %d after the move: %+v (before %+v)", b.NodeID, b, was)
		}
	}
}

// TestCreateGroupWaitsForAGroupPendingDelete: a broker's group deleted with
// ForceDelete keeps its name until its instance is terminated (in AWS as in
// the local cloud, whose Auto Scaling here checks every second, so the old
// group lives a second or more). Moving the broker into a new group of that
// name meanwhile waits until the old one is gone and creates the broker's
// own, which launches its instance; taking the old group's AlreadyExists for
// the broker's group found no group once the old one went.
func TestCreateGroupWaitsForAGroupPendingDelete(t *testing.T) {
	tc := startTestCloudChecking(t, 20*time.Millisecond, time.Second)
	var mu sync.Mutex
	waited := false
	logf := tc.fleet.Log
	tc.fleet.Log = func(ctx context.Context, msg string, attrs ...any) {
		if strings.HasPrefix(msg, "waiting for a deleted Auto Scaling group") {
			mu.Lock()
			waited = true
			mu.Unlock()
		}
		logf(ctx, msg, attrs...)
	}
	s := tc.spec(t, "tc-unit-pending")
	tc.runAgents(t, s.ClusterID)
	tc.ensure(t, s)
	before := tc.waitAllAttached(t, s.ClusterID)
	was, _ := before.Broker(1)
	ctx := ctxFor(t)
	if _, err := tc.asg.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{AutoScalingGroupName: aws.String(was.GroupName), ForceDelete: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	b, _ := tc.observe(t, s.ClusterID).Broker(1)
	if b.GroupName != "" {
		t.Fatalf("Observe gives broker 1 the group %s, which is being deleted", b.GroupName)
	}
	if err := tc.fleet.ensureGroup(ctx, s, b, was.GroupVersion); err != nil {
		t.Fatalf("creating broker 1's group while the deleted one is pending delete: %v", err)
	}
	if err := tc.fleet.waitGroupInstance(ctx, b, was.InstanceID); err != nil {
		t.Fatalf("broker 1's new group: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !waited {
		t.Fatal("the create never met the group pending delete (it was gone already): nothing was tested")
	}
	if b.GroupName != was.GroupName || b.InstanceID == "" || b.InstanceID == was.InstanceID {
		t.Fatalf("broker 1 after the create: group %q instance %s (was %q, %s)", b.GroupName, b.InstanceID, was.GroupName, was.InstanceID)
	}
}

// TestRolePolicyKeepsBrokersToTheirCluster: the broker role may attach and
// grow its own cluster's tagged volumes and interfaces, and EC2 refuses it
// another cluster's.
func TestRolePolicyKeepsBrokersToTheirCluster(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	own, other := tc.spec(t, "tc-unit-own"), tc.spec(t, "tc-unit-other")
	tc.ensure(t, own)
	tc.ensure(t, other)
	ctx := ctxFor(t)
	o, ob := tc.observe(t, own.ClusterID), tc.observe(t, other.ClusterID)
	role, err := tc.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(BrokerRoleName(o.ClusterID, 1))})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := o.Broker(1)
	session, err := tc.cloud.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId), b1.InstanceID), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := tc.cfg
	cfg.Credentials = credentials.NewStaticCredentialsProvider(session.AccessKeyID, session.SecretAccessKey, session.SessionToken)
	broker := ec2.NewFromConfig(cfg)
	foreign, _ := ob.Broker(1)
	if _, err := broker.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(foreign.VolumeID), InstanceId: aws.String(b1.InstanceID), Device: aws.String("/dev/sdg")}); errorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("attaching another cluster's volume: %v, want UnauthorizedOperation", err)
	}
	if _, err := broker.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(foreign.VolumeID), Size: aws.Int32(20)}); errorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("growing another cluster's volume: %v, want UnauthorizedOperation", err)
	}
	if _, err := broker.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(b1.VolumeID), InstanceId: aws.String(b1.InstanceID), Device: aws.String(DataDeviceName)}); err != nil {
		t.Fatalf("attaching its own volume: %v", err)
	}
	if _, err := broker.AttachNetworkInterface(ctx, &ec2.AttachNetworkInterfaceInput{NetworkInterfaceId: aws.String(b1.ENIID), InstanceId: aws.String(b1.InstanceID), DeviceIndex: aws.Int32(1)}); err != nil {
		t.Fatalf("attaching its own interface: %v", err)
	}
	if _, err := broker.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(b1.VolumeID), Size: aws.Int32(20)}); err != nil {
		t.Fatalf("growing its own volume: %v", err)
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
	tc.runAgents(t, s.ClusterID)
	tc.ensure(t, s)
	tc.waitAllAttached(t, s.ClusterID)
	tc.legacyCluster(t, s) // the ENIs at device 0, which EC2 never detaches
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

// TestRollGivesUpOnAnInterfaceNeverReleased: an earlier provider's broker
// moving into its group: its interface (device 0) stays attached to its
// terminated instance (as moto leaves it); the move cannot go on and must
// end at the bound, naming the interface.
func TestRollGivesUpOnAnInterfaceNeverReleased(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-stuck-roll")
	tc.runAgents(t, s.ClusterID)
	tc.ensure(t, s)
	tc.waitAllAttached(t, s.ClusterID)
	tc.legacyCluster(t, s)
	o := tc.observe(t, s.ClusterID)
	if _, err := tc.fleet.Ensure(ctxFor(t), s, o); err != nil {
		t.Fatal(err)
	}
	tc.cloud.KeepInterfacesOnTerminate(true)
	tc.fleet.Waits.NetworkInterfaceReleased = 500 * time.Millisecond
	err := tc.fleet.Roll(ctxFor(t), s, o, RollHooks{})
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrWaitBound) {
		t.Fatalf("Roll: %v; want a WaitError at its bound", err)
	}
	if !strings.Contains(err.Error(), "replacing broker 1") || !strings.HasPrefix(we.Object, "network interface eni-") ||
		we.Want != "be available" || !strings.Contains(we.State, "(terminated)") {
		t.Errorf("Roll: %v (%+v); want broker 1's interface, attached to its terminated instance, waited on to be available", err, we)
	}
}

// TestBrokerRoleDecryptsOnlyItsOwnSecrets seals secrets as the provider
// does (the cluster key, each node's encryption context) and asks KMS to
// open them with each broker's role credentials, as its instance gets them:
// a broker opens its own node's envelope, never another broker's, another
// cluster's or the provider's own. The local cloud's KMS evaluates the
// roles' policies (the encryption-context conditions) as AWS does.
func TestBrokerRoleDecryptsOnlyItsOwnSecrets(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-rolekeys")
	_, res := tc.ensure(t, s)
	ctx := ctxFor(t)
	seal := func(encCtx map[string]string) []byte {
		t.Helper()
		out, err := tc.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(res.KeyARN), Plaintext: []byte("secret"), EncryptionContext: encCtx})
		if err != nil {
			t.Fatal(err)
		}
		return out.CiphertextBlob
	}
	as := func(nodeID int32) *kms.Client {
		t.Helper()
		role, err := tc.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(BrokerRoleName(s.ClusterID, nodeID))})
		if err != nil {
			t.Fatal(err)
		}
		cred, err := tc.cloud.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn),
			aws.ToString(role.Role.RoleId), fmt.Sprintf("i-0000000000000000%d", nodeID)), time.Hour, "test")
		if err != nil {
			t.Fatal(err)
		}
		return kms.NewFromConfig(aws.Config{
			Region: tc.cloud.Region(), BaseEndpoint: aws.String(tc.cloud.Endpoint()),
			Credentials: credentials.NewStaticCredentialsProvider(cred.AccessKeyID, cred.SecretAccessKey, cred.SessionToken),
		})
	}
	for _, tt := range []struct {
		name   string
		broker int32
		ctx    map[string]string
		ok     bool
	}{
		{"broker 1, its own", 1, bootconfig.EncryptionContext(s.ClusterID, 1), true},
		{"broker 2, its own", 2, bootconfig.EncryptionContext(s.ClusterID, 2), true},
		{"broker 2, broker 1's", 2, bootconfig.EncryptionContext(s.ClusterID, 1), false},
		{"broker 1, broker 3's", 1, bootconfig.EncryptionContext(s.ClusterID, 3), false},
		{"broker 1, another cluster's broker 1", 1, bootconfig.EncryptionContext("tc-other", 1), false},
		{"broker 1, no node", 1, map[string]string{"tributary:cluster-id": s.ClusterID}, false},
		// The provider's envelope: its login and the cluster CA's key.
		{"broker 1, the provider's", 1, bootconfig.ProviderEncryptionContext(s.ClusterID), false},
		{"broker 3, the provider's", 3, bootconfig.ProviderEncryptionContext(s.ClusterID), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blob := seal(tt.ctx)
			_, err := as(tt.broker).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(res.KeyARN), EncryptionContext: tt.ctx})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("broker %d could not decrypt its own secrets: %v", tt.broker, err)
			case !tt.ok && errorCode(err) != "AccessDeniedException":
				t.Fatalf("broker %d decrypting: %v, want AccessDeniedException", tt.broker, err)
			}
		})
	}
}

// TestSharedRoleOfAnOlderCluster: the role and profile all brokers of a
// cluster made before brokers had their own shared are found with the
// cluster's, are not deleted while a broker still launches with them, and
// DeleteSharedRole removes them once none does, leaving the brokers' own.
func TestSharedRoleOfAnOlderCluster(t *testing.T) {
	tc := startTestCloud(t, 20*time.Millisecond)
	s := tc.spec(t, "tc-unit-shared")
	tc.ensure(t, s)
	ctx := ctxFor(t)
	shared := roleName(s.ClusterID)
	if _, err := tc.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(shared), Path: aws.String(rolePath), AssumeRolePolicyDocument: aws.String(ec2TrustPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.iam.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String(shared), Path: aws.String(rolePath)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.iam.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String(shared), RoleName: aws.String(shared)}); err != nil {
		t.Fatal(err)
	}
	o := tc.observe(t, s.ClusterID)
	if !slices.Contains(o.RoleNames, shared) || !slices.Contains(o.ProfileNames, shared) || len(o.RoleNames) != 4 {
		t.Fatalf("observed roles %v and profiles %v, want the three brokers' and the shared %s", o.RoleNames, o.ProfileNames, shared)
	}
	still := *o
	still.Brokers = slices.Clone(o.Brokers)
	launch := *still.Brokers[1].Launch
	launch.InstanceProfile = shared
	still.Brokers[1].Launch = &launch
	if err := tc.fleet.DeleteSharedRole(ctx, &still); err == nil || !strings.Contains(err.Error(), "broker 2") {
		t.Fatalf("DeleteSharedRole while broker 2 launches with it: %v, want a refusal naming broker 2", err)
	}
	if err := tc.fleet.DeleteSharedRole(ctx, o); err != nil {
		t.Fatal(err)
	}
	after := tc.observe(t, s.ClusterID)
	want := []string{BrokerRoleName(s.ClusterID, 1), BrokerRoleName(s.ClusterID, 2), BrokerRoleName(s.ClusterID, 3)}
	if !slices.Equal(after.RoleNames, want) || !slices.Equal(after.ProfileNames, want) {
		t.Errorf("after DeleteSharedRole: roles %v, profiles %v; want %v", after.RoleNames, after.ProfileNames, want)
	}
}
