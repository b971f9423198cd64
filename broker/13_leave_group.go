package broker

// LeaveGroup: v0-5
//
// Behavior:
// * Removes members and triggers a rebalance; v3+ leaves a batch of
//   members (by member ID or group instance ID) with per-member errors.
//
// Version notes:
// * v3: batch leave; v4: flexible; v5: reason.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleLeaveGroup(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.LeaveGroupRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.namedGroupShard(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	return now(shard.LeaveGroup(ctx, r)), nil
}
