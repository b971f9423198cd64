package broker

// DeleteGroups: v0-3
//
// Behavior:
// * NON_EMPTY_GROUP while the group has members, GROUP_ID_NOT_FOUND for an
//   unknown group; otherwise the group and its offsets are tombstoned in
//   __consumer_offsets.
//
// Version notes:
// * v2: flexible; v3: error message.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDeleteGroups(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DeleteGroupsRequest)
	resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	for _, id := range r.Groups {
		g := kmsg.NewDeleteGroupsResponseGroup()
		g.Group = id
		shard, kerrErr := c.b.groups.shardFor(ctx, id)
		if kerrErr != nil {
			g.ErrorCode = kerrErr.Code
		} else {
			g.ErrorCode = shard.DeleteGroup(ctx, id)
		}
		if g.ErrorCode != 0 && r.Version >= 3 {
			g.ErrorMessage = kmsg.StringPtr(kerr.ErrorForCode(g.ErrorCode).Error())
		}
		resp.Groups = append(resp.Groups, g)
	}
	return now(resp), nil
}
