package broker

// Heartbeat: v0-4
//
// Behavior:
// * Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to
//   rejoin; UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID as
//   Kafka answers them (coordinator/group).
// * An empty group ID is INVALID_GROUP_ID, before routing. While the
//   group's shard still loads (past shardLoadWait) the answer is NONE, as
//   Kafka answers blindly then, not COORDINATOR_LOAD_IN_PROGRESS.
//
// Version notes:
// * v3: group instance ID; v4: flexible.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleHeartbeat(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.HeartbeatRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.namedGroupShard(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	return now(shard.Heartbeat(ctx, r)), nil
}
