package broker

// SyncGroup: v0-5
//
// Behavior:
// * The leader's assignment is stored in __consumer_offsets before any
//   member gets its share; followers wait for the leader.
// * v5+: protocol type and name must match the group's
//   (INCONSISTENT_GROUP_PROTOCOL).
//
// Version notes:
// * v3: group instance ID; v4: flexible; v5: protocol type and name.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleSyncGroup(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.SyncGroupRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.namedGroupShard(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	return now(shard.SyncGroup(ctx, r)), nil
}
