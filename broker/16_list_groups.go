package broker

// ListGroups: v0-5
//
// Behavior:
// * Lists the groups of every coordinator shard on this broker (clients ask
//   every broker), filtered by state (v4+) and type (v5+).
//
// Version notes:
// * v3: flexible; v4: states filter; v5: types filter.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleListGroups(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ListGroupsRequest)
	resp := r.ResponseKind().(*kmsg.ListGroupsResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	c.b.groups.startLed(c.b.view.Image())
	for _, s := range c.b.groups.allShards() {
		if !s.Loaded() {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			resp.Groups = nil
			break
		}
		resp.Groups = append(resp.Groups, s.ListGroups(ctx, r.StatesFilter, r.TypesFilter)...)
	}
	return now(resp), nil
}
