package ec2

import (
	"context"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Resource-level authorization. Most EC2 actions are authorized on resource "*" before they
// run; the attach and detach calls, which a broker makes from inside its instance with the
// instance role to take its own network interface and data volume, and ModifyVolume, with which
// it grows its volume, are authorized as EC2 does: ec2:<Action> on every resource the call
// touches (the instance, the volume or interface), each with its tags as
// ec2:ResourceTag/<key> and aws:ResourceTag/<key>. So a role may be limited to its cluster's
// tagged interfaces and volumes.
var resourceAuthorized = map[string]bool{
	"AttachVolume": true, "DetachVolume": true, "AttachNetworkInterface": true, "DetachNetworkInterface": true,
	"ModifyVolume": true,
}

// resource is an EC2 resource as a policy sees it.
type resource struct {
	kind string // instance, volume, network-interface
	id   string
	tags tags
}

func (s *Service) resourceARN(r resource) string {
	return "arn:aws:ec2:" + s.region + ":" + s.account + ":" + r.kind + "/" + r.id
}

// authorizeResources checks ec2:<req.Action> on each resource; the first refusal is the answer.
func (s *Service) authorizeResources(ctx context.Context, req *awsapi.Request, resources ...resource) error {
	for _, r := range resources {
		conditions := map[string][]string{}
		for k, v := range r.tags {
			conditions["ec2:ResourceTag/"+k] = []string{v}
			conditions["aws:ResourceTag/"+k] = []string{v}
		}
		if err := req.Authorize(ctx, "ec2:"+req.Action, s.resourceARN(r), conditions); err != nil {
			return err
		}
	}
	return nil
}
