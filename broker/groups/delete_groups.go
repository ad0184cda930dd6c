package groups

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups handles DeleteGroups v0-v2: it deletes groups that have no
// members, with all their committed offsets (tombstones in the offsets log).
// A group with members answers NON_EMPTY_GROUP, an unknown group
// GROUP_ID_NOT_FOUND.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = name
		dg.ErrorCode = c.deleteGroup(ctx, name)
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(ctx context.Context, name string) int16 {
	g, code := c.lockGroup(name, false)
	if code != 0 {
		return code
	}
	if g == nil {
		return kerr.GroupIDNotFound.Code
	}
	defer g.mu.Unlock()
	if g.state != stateEmpty || len(g.members) > 0 || len(g.pending) > 0 {
		return kerr.NonEmptyGroup.Code
	}
	tombstones := make([]Record, 0, g.offsetCount()+1)
	for topic, parts := range g.offsets {
		for p := range parts {
			tombstones = append(tombstones, Record{Key: offsetKey(g.name, topic, p)})
		}
	}
	tombstones = append(tombstones, Record{Key: groupKey(g.name)})
	if err := c.appendRecords(ctx, tombstones); err != nil {
		g.log().Error("writing group tombstones to the offsets log", "error", err)
		return appendErrorCode(err)
	}
	g.offsets = make(map[string]map[int32]committedOffset)
	g.log().Info("group deleted")
	g.markDead()
	return 0
}
