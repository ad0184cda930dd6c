package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// KeyDeletionWindowDays is the waiting period of a created key's deletion:
// AWS's minimum, so a mistaken destroy can still be undone with
// CancelKeyDeletion for a week.
const KeyDeletionWindowDays = 7

// Delete removes every object tagged with the cluster id, in the order AWS
// requires: the Auto Scaling groups with their instances (first, or they
// would launch new ones), other instances (waiting until terminated, which
// releases ENIs and volumes), launch templates, volumes, ENIs, the security
// group, the role and profile, and schedules the deletion of the key the
// cluster created. A key the user gave is left alone. Running Delete again
// after a failure continues where it stopped.
func (f *Fleet) Delete(ctx context.Context, clusterID string) error {
	o, err := f.Observe(ctx, clusterID)
	if err != nil {
		return err
	}
	if err := f.deleteGroups(ctx, o.Groups); err != nil {
		return err
	}
	if len(o.Groups) > 0 {
		// The groups' instances are gone with them; see what is left.
		if o, err = f.Observe(ctx, clusterID); err != nil {
			return err
		}
	}
	var instances []string
	for _, b := range o.Brokers {
		if b.InstanceID != "" {
			instances = append(instances, b.InstanceID)
		}
	}
	instances = append(instances, o.OrphanInstanceIDs...)
	if err := f.terminate(ctx, instances); err != nil {
		return err
	}
	if err := f.deleteTemplates(ctx, o.Templates); err != nil {
		return err
	}

	err = forEach(o.Brokers, func(b *Broker) error {
		var errs []error
		if b.VolumeID != "" {
			errs = append(errs, f.deleteVolume(ctx, b.VolumeID))
		}
		if b.ENIID != "" {
			errs = append(errs, f.deleteENI(ctx, b.ENIID))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return err
	}

	if o.SecurityGroupID != "" {
		f.log(ctx, "deleting security group", "security_group_id", o.SecurityGroupID)
		// ENIs of terminated instances linger for a moment; the group cannot
		// go while one still uses it.
		err := f.retryWhile(ctx, waitFor{"security group " + o.SecurityGroupID, "be deleted (no network interface using it)", f.waits().SecurityGroupReleased},
			func(err error) bool { return errorCode(err) == "DependencyViolation" },
			func() error {
				_, err := f.EC2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(o.SecurityGroupID)})
				if errorCode(err) == "InvalidGroup.NotFound" {
					return nil
				}
				return err
			})
		if err != nil {
			return fmt.Errorf("deleting security group %s: %w", o.SecurityGroupID, err)
		}
	}
	if err := f.deleteRole(ctx, o); err != nil {
		return err
	}
	if o.KeyARN != "" {
		f.log(ctx, "scheduling deletion of KMS key", "key_arn", o.KeyARN, "days", KeyDeletionWindowDays)
		if _, err := f.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(KeyAlias(clusterID))}); err != nil &&
			errorCode(err) != "NotFoundException" {
			return fmt.Errorf("deleting alias %s: %w", KeyAlias(clusterID), err)
		}
		// By key id, which AWS takes as well as the ARN for a key of the
		// caller's account; moto 5.2 fails (HTTP 500) on an ARN here.
		if _, err := f.KMS.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{
			KeyId: aws.String(keyIDOf(o.KeyARN)), PendingWindowInDays: aws.Int32(KeyDeletionWindowDays),
		}); err != nil && errorCode(err) != "KMSInvalidStateException" && errorCode(err) != "NotFoundException" {
			return fmt.Errorf("scheduling deletion of KMS key %s: %w", o.KeyARN, err)
		}
	}
	return nil
}

// keyIDOf returns the key id of a key ARN (arn:aws:kms:region:account:key/id).
func keyIDOf(arn string) string {
	if i := strings.LastIndex(arn, "key/"); i >= 0 && strings.HasPrefix(arn, "arn:") {
		return arn[i+len("key/"):]
	}
	return arn
}

func (f *Fleet) deleteVolume(ctx context.Context, id string) error {
	out, err := f.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	switch {
	case errorCode(err) == "InvalidVolume.NotFound":
		return nil
	case err != nil:
		return fmt.Errorf("describing volume %s: %w", id, err)
	case len(out.Volumes) == 0:
		return nil
	}
	if err := f.waitVolume(ctx, id, ec2types.VolumeStateAvailable, ""); err != nil {
		return err
	}
	f.log(ctx, "deleting volume", "volume_id", id)
	if _, err := f.EC2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil &&
		errorCode(err) != "InvalidVolume.NotFound" {
		return fmt.Errorf("deleting volume %s: %w", id, err)
	}
	return nil
}

// deleteENI deletes the interface once its instance released it. An
// attachment that outlived its terminated instance is detached first; if
// EC2 refuses that too, the delete is tried anyway: the instance is gone,
// and an EC2 that still counts the interface in use says so and the wait
// goes on (AWS), while one that only never cleaned the attachment up lets
// the delete through (moto).
func (f *Fleet) deleteENI(ctx context.Context, id string) error {
	logged := false
	del := func() (string, error) {
		if !logged {
			f.log(ctx, "deleting network interface", "eni_id", id)
			logged = true
		}
		_, err := f.EC2.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(id)})
		switch code := errorCode(err); {
		case err == nil, code == "InvalidNetworkInterfaceID.NotFound":
			return "deleted", nil
		case code == "InvalidNetworkInterface.InUse":
			return "in-use (" + err.Error() + ")", errNotYet
		}
		return "", fmt.Errorf("deleting network interface %s: %w", id, err)
	}
	return f.poll(ctx, waitFor{"network interface " + id, "be released and deleted", f.waits().NetworkInterfaceReleased}, func() (string, error) {
		eni, err := f.describeENI(ctx, id)
		switch {
		case err != nil:
			return "", err
		case eni == nil:
			return "deleted", nil
		case eni.Status == ec2types.NetworkInterfaceStatusAvailable:
			return del()
		}
		state, refused, err := f.releaseStaleAttachment(ctx, eni)
		if err != nil || !refused {
			if err == nil {
				err = errNotYet
			}
			return state, err
		}
		if st, err := del(); !errors.Is(err, errNotYet) {
			return st, err
		}
		return state, errNotYet
	})
}

func (f *Fleet) deleteRole(ctx context.Context, o *Observed) error {
	for _, name := range o.ProfileNames {
		if err := f.deleteProfile(ctx, name); err != nil {
			return err
		}
	}
	for _, name := range o.RoleNames {
		if err := f.deleteOneRole(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// DeleteSharedRole deletes the role and profile that every broker of a
// cluster made before brokers had their own shared, once no broker
// launches with it any more: it let each broker decrypt the others'
// secrets.
func (f *Fleet) DeleteSharedRole(ctx context.Context, o *Observed) error {
	shared := roleName(o.ClusterID)
	for _, b := range o.Brokers {
		if b.HasLiveInstance() && SharedProfile(o.ClusterID, b.InstanceProfile) || b.Launch != nil && SharedProfile(o.ClusterID, b.Launch.InstanceProfile) {
			return fmt.Errorf("broker %d still launches with the shared instance profile %s", b.NodeID, shared)
		}
	}
	if slices.Contains(o.ProfileNames, shared) {
		if err := f.deleteProfile(ctx, shared); err != nil {
			return err
		}
	}
	if slices.Contains(o.RoleNames, shared) {
		if err := f.deleteOneRole(ctx, shared); err != nil {
			return err
		}
	}
	o.ProfileNames = slices.DeleteFunc(o.ProfileNames, func(n string) bool { return n == shared })
	o.RoleNames = slices.DeleteFunc(o.RoleNames, func(n string) bool { return n == shared })
	return nil
}

// DeleteBrokerRoles deletes the own roles and profiles of brokers that left
// the cluster (a scale-in removed them).
func (f *Fleet) DeleteBrokerRoles(ctx context.Context, clusterID string, ids []int32) error {
	for _, id := range ids {
		name := BrokerRoleName(clusterID, id)
		if err := f.deleteProfile(ctx, name); err != nil {
			return err
		}
		if err := f.deleteOneRole(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// deleteProfile deletes a created instance profile (its role of the same
// name removed from it first).
func (f *Fleet) deleteProfile(ctx context.Context, name string) error {
	notFound := func(err error) bool { return err == nil || errorCode(err) == "NoSuchEntity" }
	f.log(ctx, "deleting IAM instance profile", "profile", name)
	if _, err := f.IAM.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{
		InstanceProfileName: aws.String(name), RoleName: aws.String(name),
	}); !notFound(err) {
		return fmt.Errorf("removing role %s from instance profile: %w", name, err)
	}
	if _, err := f.IAM.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: aws.String(name)}); !notFound(err) {
		return fmt.Errorf("deleting instance profile %s: %w", name, err)
	}
	return nil
}

// deleteOneRole deletes a created role and its inline policy.
func (f *Fleet) deleteOneRole(ctx context.Context, name string) error {
	notFound := func(err error) bool { return err == nil || errorCode(err) == "NoSuchEntity" }
	f.log(ctx, "deleting IAM role", "role", name)
	if _, err := f.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{
		RoleName: aws.String(name), PolicyName: aws.String(rolePolicyName),
	}); !notFound(err) {
		return fmt.Errorf("deleting the inline policy of role %s: %w", name, err)
	}
	if _, err := f.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(name)}); !notFound(err) {
		return fmt.Errorf("deleting role %s: %w", name, err)
	}
	return nil
}
