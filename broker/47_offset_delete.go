package broker

// OffsetDelete: v0
//
// Behavior:
// * Deletes committed offsets of a group for the given partitions;
//   GROUP_SUBSCRIBED_TO_TOPIC while the group consumes the topic,
//   GROUP_ID_NOT_FOUND for an unknown group.
// * An empty group ID is INVALID_GROUP_ID at the top level, with no
//   partitions, before routing (Kafka's GroupCoordinatorService; the
//   top-level error replaces KafkaApis' unknown-partition answers).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetDelete(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.OffsetDeleteRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.namedGroupShard(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	return now(shard.OffsetDelete(ctx, r)), nil
}
