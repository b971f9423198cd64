package broker

// DescribeGroups: v0-6
//
// Behavior:
// * An unknown group answers state "Dead" with no error before v6 and
//   GROUP_ID_NOT_FOUND from v6 (KIP-1043), as Kafka 4.x does.
// * Members' metadata and assignments as the group holds them.
//
// Version notes:
// * v3: authorized operations; v4: group instance ID; v5: flexible;
//   v6: error message.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeGroups(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DescribeGroupsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	for _, id := range r.Groups {
		shard, kerrErr := c.b.groups.shardFor(ctx, id)
		if kerrErr != nil {
			g := kmsg.NewDescribeGroupsResponseGroup()
			g.Group, g.ErrorCode = id, kerrErr.Code
			g.AuthorizedOperations = authorizedOperationsOmitted
			resp.Groups = append(resp.Groups, g)
			continue
		}
		g := shard.DescribeGroup(ctx, id, r.IncludeAuthorizedOperations)
		if r.Version >= 6 && g.ErrorCode == 0 && g.State == "Dead" {
			// KIP-1043: from v6 an unknown group is an error; older
			// versions answer state Dead with no error.
			g.ErrorCode = kerr.GroupIDNotFound.Code
			if g.ErrorMessage == nil {
				g.ErrorMessage = kmsg.StringPtr("Group " + id + " not found.")
			}
		}
		resp.Groups = append(resp.Groups, g)
	}
	return now(resp), nil
}
