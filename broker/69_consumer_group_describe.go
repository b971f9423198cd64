package broker

// ConsumerGroupDescribe: v0-1 (KIP-848)
//
// Behavior:
// * Describes consumer-protocol groups: epochs, assignor, members with
//   their current and target assignments. Unknown or classic groups answer
//   GROUP_ID_NOT_FOUND.
// * An empty group ID answers INVALID_GROUP_ID for that group, before
//   routing (Kafka's GroupCoordinatorService).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleConsumerGroupDescribe(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ConsumerGroupDescribeRequest)
	resp := r.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	for _, id := range r.Groups {
		shard, kerrErr := c.namedGroupShard(ctx, id)
		if kerrErr != nil {
			g := kmsg.NewConsumerGroupDescribeResponseGroup()
			g.Group, g.ErrorCode = id, kerrErr.Code
			g.AuthorizedOperations = authorizedOperationsOmitted
			resp.Groups = append(resp.Groups, g)
			continue
		}
		resp.Groups = append(resp.Groups, shard.ConsumerGroupDescribe(ctx, id, r.IncludeAuthorizedOperations))
	}
	return now(resp), nil
}
