package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Removed lists the brokers a smaller spec no longer has: those whose node
// id is above its broker count (a scale-in removes the last brokers of
// each Availability Zone, never the voters, which are the first). Sorted by
// node id.
func (o *Observed) Removed(s *Spec) []Broker {
	n := int32(s.BrokerCount())
	var out []Broker
	for _, b := range o.Brokers {
		if b.NodeID > n {
			out = append(out, b)
		}
	}
	return out
}

// RemoveBrokers deletes brokers that were drained and are leaving the
// cluster: first their Auto Scaling groups with their instances (and an
// earlier provider's instance of no group), waiting until terminated, so
// nothing launches or serves for them any more; then stopped (the caller's
// hook: unregistering them from the cluster metadata); then their launch
// templates, volumes and network interfaces. The volumes and interfaces go
// last, after stopped succeeded: they are what Observe finds a broker by,
// so a removal that failed before its end is still seen, and finished, by
// the next apply. A voter of the metadata quorum is refused: controllers
// lists them.
func (f *Fleet) RemoveBrokers(ctx context.Context, brokers []Broker, controllers int, stopped func(ctx context.Context, ids []int32) error) error {
	if len(brokers) == 0 {
		return nil
	}
	var ids []int32
	var groups, instances, templates []string
	for _, b := range brokers {
		if int(b.NodeID) <= controllers {
			return fmt.Errorf("broker %d is a voter of the metadata quorum (the first %d brokers are), which a scale-in never removes", b.NodeID, controllers)
		}
		ids = append(ids, b.NodeID)
		if b.GroupName != "" {
			groups = append(groups, b.GroupName)
		}
		if b.InstanceID != "" {
			instances = append(instances, b.InstanceID)
		}
		if b.TemplateID != "" {
			templates = append(templates, b.TemplateID)
		}
	}
	f.log(ctx, "removing brokers", "node_ids", ids)
	if err := f.deleteGroups(ctx, slices.Compact(slices.Sorted(slices.Values(groups)))); err != nil {
		return fmt.Errorf("removing brokers %v: %w", ids, err)
	}
	if err := f.terminate(ctx, instances); err != nil {
		return fmt.Errorf("removing brokers %v: %w", ids, err)
	}
	if stopped != nil {
		if err := stopped(ctx, ids); err != nil {
			return fmt.Errorf("brokers %v stopped, but: %w", ids, err)
		}
	}
	if err := f.deleteTemplates(ctx, templates); err != nil {
		return fmt.Errorf("removing brokers %v: %w", ids, err)
	}
	err := forEach(slices.Clone(brokers), func(b *Broker) error {
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
		return fmt.Errorf("removing brokers %v: %w", ids, err)
	}
	f.log(ctx, "brokers removed", "node_ids", ids)
	return nil
}
