package broker

// OffsetDelete: v0
//
// Behavior:
// * Deletes committed offsets of a group for the given partitions;
//   GROUP_SUBSCRIBED_TO_TOPIC while the group consumes the topic,
//   GROUP_ID_NOT_FOUND for an unknown group.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetDelete(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.OffsetDeleteRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.b.groups.shardFor(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	return now(shard.OffsetDelete(ctx, r)), nil
}
