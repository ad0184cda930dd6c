package localcloud_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/sys/unix"

	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/testenv"
)

func TestVolumeEncryptionNeedsAUsableKey(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	kmsClient := kms.NewFromConfig(sdkConfig(c))
	key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	create := func(keyID string) string {
		t.Helper()
		out, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(10), Encrypted: aws.Bool(true), KmsKeyId: aws.String(keyID)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VolumeId)
	}

	// By alias, resolved to the key's ARN.
	if _, err := kmsClient.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/brokers"), TargetKeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	v := waitVolumeState(t, client, create("alias/brokers"), ec2types.VolumeStateAvailable)
	if aws.ToString(v.KmsKeyId) != aws.ToString(key.KeyMetadata.Arn) || !aws.ToBool(v.Encrypted) {
		t.Fatalf("volume key %q encrypted %v, want %s", aws.ToString(v.KmsKeyId), aws.ToBool(v.Encrypted), aws.ToString(key.KeyMetadata.Arn))
	}

	// Without Encrypted the key is refused; a missing or disabled key makes the volume vanish
	// after "creating", as EBS does.
	_, err = client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(10), KmsKeyId: key.KeyMetadata.Arn})
	wantCode(t, err, "InvalidParameterDependency")
	if _, err := kmsClient.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"alias/does-not-exist", aws.ToString(key.KeyMetadata.Arn)} {
		id := create(ref)
		eventually(t, "volume with key "+ref+" vanishes", 10*time.Second, func() error {
			_, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
			if errorCode(err) == "InvalidVolume.NotFound" {
				return nil
			}
			return errors.New("still there")
		})
	}

	// Default encryption uses the account's aws/ebs key.
	out, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(10), Encrypted: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.KmsKeyId) == "" {
		t.Fatal("an encrypted volume without KmsKeyId got no key")
	}
}

func TestModifyAttachAndDetachVolume(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	ami := registerImage(t, c, "virtual", "")
	run, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1c")}})
	if err != nil {
		t.Fatal(err)
	}
	inst := aws.ToString(run.Instances[0].InstanceId)
	waitInstanceState(t, client, inst, ec2types.InstanceStateNameRunning)
	vol, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1c"), Size: aws.Int32(100), VolumeType: ec2types.VolumeTypeGp3})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(vol.VolumeId)
	waitVolumeState(t, client, id, ec2types.VolumeStateAvailable)

	mod, err := client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(200), Iops: aws.Int32(6000), Throughput: aws.Int32(500)})
	if err != nil {
		t.Fatal(err)
	}
	if mod.VolumeModification.ModificationState != ec2types.VolumeModificationStateModifying || aws.ToInt32(mod.VolumeModification.OriginalSize) != 100 {
		t.Fatalf("modification: %+v", mod.VolumeModification)
	}
	_, err = client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(300)})
	wantCode(t, err, "IncorrectModificationState")
	eventually(t, "modification completes", 10*time.Second, func() error {
		out, err := client.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{id}})
		if err != nil {
			return err
		}
		if s := out.VolumesModifications[0].ModificationState; s != ec2types.VolumeModificationStateCompleted {
			return errors.New(string(s))
		}
		return nil
	})
	v := waitVolumeState(t, client, id, ec2types.VolumeStateAvailable)
	if aws.ToInt32(v.Size) != 200 || aws.ToInt32(v.Iops) != 6000 || aws.ToInt32(v.Throughput) != 500 {
		t.Fatalf("after modification: size %d iops %d throughput %d", aws.ToInt32(v.Size), aws.ToInt32(v.Iops), aws.ToInt32(v.Throughput))
	}
	_, err = client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(150)})
	wantCode(t, err, "InvalidParameterValue")

	// Attach: attaching -> attached; the volume is in use until detached.
	att, err := client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String(inst), Device: aws.String("/dev/sdf")})
	if err != nil {
		t.Fatal(err)
	}
	if att.State != ec2types.VolumeAttachmentStateAttaching {
		t.Fatalf("attach answered %s", att.State)
	}
	waitVolumeState(t, client, id, ec2types.VolumeStateInUse)
	_, err = client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String(inst), Device: aws.String("/dev/sdg")})
	wantCode(t, err, "VolumeInUse")
	_, err = client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
	wantCode(t, err, "VolumeInUse")
	other, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	waitVolumeState(t, client, aws.ToString(other.VolumeId), ec2types.VolumeStateAvailable)
	_, err = client.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: other.VolumeId, InstanceId: aws.String(inst), Device: aws.String("/dev/sdg")})
	wantCode(t, err, "InvalidVolume.ZoneMismatch")

	det, err := client.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if det.State != ec2types.VolumeAttachmentStateDetaching {
		t.Fatalf("detach answered %s", det.State)
	}
	waitVolumeState(t, client, id, ec2types.VolumeStateAvailable)
	if _, err := client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	_, err = client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	wantCode(t, err, "InvalidVolume.NotFound")
}

// TestLaunchWithDisabledVolumeKey: EC2 terminates an instance whose encrypted volume's key is
// disabled (Client.InvalidKMSKey.InvalidState); a stopped instance fails to start the same way.
func TestLaunchWithDisabledVolumeKey(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	client := ec2Client(c)
	kmsClient := kms.NewFromConfig(sdkConfig(c))
	key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	ami := registerImage(t, c, "virtual", "")
	launch := func() string {
		t.Helper()
		out, err := client.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ami), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &ec2types.EbsBlockDevice{
				VolumeSize: aws.Int32(20), VolumeType: ec2types.VolumeTypeGp3, Encrypted: aws.Bool(true), KmsKeyId: key.KeyMetadata.Arn, DeleteOnTermination: aws.Bool(false)}}}})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Instances[0].InstanceId)
	}
	ok := launch()
	inst := waitInstanceState(t, client, ok, ec2types.InstanceStateNameRunning)
	if len(inst.BlockDeviceMappings) != 2 {
		t.Fatalf("block devices: %+v", inst.BlockDeviceMappings)
	}
	if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{ok}}); err != nil {
		t.Fatal(err)
	}
	waitInstanceState(t, client, ok, ec2types.InstanceStateNameStopped)

	if _, err := kmsClient.DisableKey(ctx, &kms.DisableKeyInput{KeyId: key.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	failed := launch()
	inst = waitInstanceState(t, client, failed, ec2types.InstanceStateNameTerminated)
	if aws.ToString(inst.StateReason.Code) != "Client.InvalidKMSKey.InvalidState" {
		t.Fatalf("state reason %+v", inst.StateReason)
	}
	if _, err := client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{ok}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "start fails back to stopped", 10*time.Second, func() error {
		inst = describeInstance(t, client, ok)
		if inst.State.Name != ec2types.InstanceStateNameStopped || aws.ToString(inst.StateReason.Code) != "Client.InvalidKMSKey.InvalidState" {
			return errors.New(string(inst.State.Name))
		}
		return nil
	})
}

// TestVolumeModificationCooldown checks EBS's rule of one modification per volume every six
// hours (shortened here): a second modification within the cooldown is refused with EBS's code
// and message, one after it goes through.
func TestVolumeModificationCooldown(t *testing.T) {
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: t.TempDir(), StopGracePeriod: 5 * time.Second, TransitionDelay: 20 * time.Millisecond, Logger: testLogger(),
		VolumeModificationCooldown: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	client := ec2Client(c)
	vol, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(10)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(vol.VolumeId)
	waitVolumeState(t, client, id, ec2types.VolumeStateAvailable)
	start := time.Now()
	if _, err := client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(20)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "modification completes", 10*time.Second, func() error {
		out, err := client.DescribeVolumesModifications(ctx, &ec2.DescribeVolumesModificationsInput{VolumeIds: []string{id}})
		if err != nil {
			return err
		}
		if s := out.VolumesModifications[0].ModificationState; s != ec2types.VolumeModificationStateCompleted {
			return errors.New(string(s))
		}
		return nil
	})
	_, err = client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(30)})
	if time.Since(start) < 2*time.Second {
		wantCode(t, err, "VolumeModificationRateExceeded")
		if !strings.Contains(err.Error(), "Wait at least 2s between modifications") {
			t.Fatalf("refusal does not say how long to wait: %v", err)
		}
	}
	eventually(t, "a modification after the cooldown", 10*time.Second, func() error {
		_, err := client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(30)})
		return err
	})
	if time.Since(start) < 2*time.Second {
		t.Fatalf("a second modification went through %s after the first, within the 2s cooldown", time.Since(start))
	}
}

// TestSizedVolumes checks volumes that are filesystems of their size: a volume holds no more
// than its size (ENOSPC), statfs reports the size, ModifyVolume grows the device under the
// mounted filesystem (which grows once the instance runs xfs_growfs, as on EC2), the data
// survives a restart of the emulator, and a deleted volume leaves no mount, loop device or file.
func TestSizedVolumes(t *testing.T) {
	testenv.Root(t, "sized volumes (loop devices and mounts)")
	for _, tool := range []string{"losetup", "mkfs.xfs", "xfs_growfs"} {
		pkg := "xfsprogs"
		if tool == "losetup" {
			pkg = "mount"
		}
		testenv.Tool(t, tool, pkg)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testenv.Missing(t, "loop devices are unavailable here (/dev/loop-control missing)")
	}
	dir := t.TempDir()
	start := func() *localcloud.Cloud {
		c, err := localcloud.Start(context.Background(), localcloud.Options{
			StateDir: dir, StopGracePeriod: 5 * time.Second, TransitionDelay: 20 * time.Millisecond, Logger: testLogger(),
			SizedVolumes: true, VolumeModificationCooldown: time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close()
		}
	})
	ctx := context.Background()
	client := ec2Client(c)
	vol, err := client.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), VolumeType: ec2types.VolumeTypeGp3})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(vol.VolumeId)
	waitVolumeState(t, client, id, ec2types.VolumeStateAvailable)
	path := c.EC2().VolumeDir(id)
	size := func() int64 {
		t.Helper()
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Blocks) * st.Bsize
	}
	if got := size(); got < 900<<20 || got > 1<<30 {
		t.Fatalf("a 1 GiB volume's filesystem is %d bytes", got)
	}
	fill := func(name string, n int64) error {
		f, err := os.Create(filepath.Join(path, name))
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fallocate(int(f.Fd()), 0, 0, n)
	}
	if err := fill("too-big", 2<<30); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("allocating 2 GiB on a 1 GiB volume: %v, want ENOSPC", err)
	}
	if err := fill("kept", 100<<20); err != nil {
		t.Fatal(err)
	}

	if _, err := client.ModifyVolume(ctx, &ec2.ModifyVolumeInput{VolumeId: aws.String(id), Size: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	waitVolumeSize(t, client, id, 2)
	if got := size(); got > 1<<30 {
		t.Fatalf("the filesystem grew to %d bytes by itself; on EC2 the instance grows it", got)
	}
	if out, err := exec.Command("xfs_growfs", "-d", path).CombinedOutput(); err != nil {
		t.Fatalf("xfs_growfs: %v: %s", err, out)
	}
	if got := size(); got < 1900<<20 {
		t.Fatalf("after xfs_growfs the filesystem is %d bytes, want about 2 GiB", got)
	}

	// A restart unmounts and mounts again; the data stays.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if mounted(t, path) {
		t.Fatal("the volume is still mounted after the emulator closed")
	}
	c = start()
	closed = false
	client = ec2Client(c)
	if _, err := os.Stat(filepath.Join(path, "kept")); err != nil || !mounted(t, path) {
		t.Fatalf("after a restart the volume is mounted %v with its data (%v)", mounted(t, path), err)
	}
	if _, err := client.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if mounted(t, path) {
		t.Fatal("a deleted volume is still mounted")
	}
	if _, err := os.Stat(filepath.Join(dir, "ec2", "volumes", id+".img")); !os.IsNotExist(err) {
		t.Fatalf("a deleted volume's backing file: %v", err)
	}
}

func waitVolumeSize(t *testing.T, client *ec2.Client, id string, gib int32) {
	t.Helper()
	eventually(t, "volume "+id+" grown", 10*time.Second, func() error {
		out, err := client.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
		if err != nil {
			return err
		}
		if got := aws.ToInt32(out.Volumes[0].Size); got != gib {
			return fmt.Errorf("size %d GiB", got)
		}
		return nil
	})
}

// mounted reports whether path is a mount point.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	var st, parent unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if os.IsNotExist(err) {
			return false
		}
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Dir(path), &parent); err != nil {
		t.Fatal(err)
	}
	return st.Dev != parent.Dev
}
