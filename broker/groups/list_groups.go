package groups

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// classicGroupType is the group type of every group this coordinator
// serves (ListGroups v5, KIP-848 naming).
const classicGroupType = "classic"

// ListGroups handles ListGroups v0-v5. v4+ filter by state (KIP-518), v5+
// by group type (KIP-848): every group here is "classic", so a type filter
// without "classic" lists nothing. Both filters ignore case, as Kafka's do.
// Groups that only commit offsets are listed with an empty protocol type.
func (c *Coordinator) ListGroups(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if c.isClosed() {
		resp.ErrorCode = notCoordinatorCode
		return resp
	}
	if req.Version >= 5 && len(req.TypesFilter) > 0 && !containsFold(req.TypesFilter, classicGroupType) {
		return resp
	}
	for _, s := range c.Groups() {
		if req.Version >= 4 && len(req.StatesFilter) > 0 && !containsFold(req.StatesFilter, s.State) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = s.Name
		lg.ProtocolType = s.ProtocolType
		lg.GroupState = s.State
		lg.GroupType = classicGroupType
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
