package localcloud_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
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
