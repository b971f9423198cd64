package broker

// JoinGroup: v0-9 (v0 is served: librdkafka's balanced consumer requires it)
//
// Behavior:
// * Routed to the group's coordinator shard (coordinator/group), which
//   implements Kafka's classic protocol: KIP-394 member IDs, the initial
//   rebalance delay, rebalance timeouts, static membership (KIP-345).
// * Blocks until the rebalance completes, as Kafka does; the connection
//   serves nothing else meanwhile, like Kafka's muted channel.
// * An empty group ID is INVALID_GROUP_ID, before routing (also for
//   SyncGroup, Heartbeat and LeaveGroup; see namedGroupShard).
//
// Version notes:
// * v4: MEMBER_ID_REQUIRED; v5: group instance ID; v6: flexible;
//   v7: protocol type in the response; v8: reason; v9: skip assignment.

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/group"
)

func handleJoinGroup(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.JoinGroupRequest)
	if r.Version == 0 {
		// v0 has no rebalance timeout; Kafka uses the session timeout.
		r.RebalanceTimeoutMillis = r.SessionTimeoutMillis
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.namedGroupShard(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.Generation, resp.MemberID = kerrErr.Code, -1, r.MemberID
		return now(resp), nil
	}
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	ctx = group.WithClient(ctx, hdr.clientID, "/"+host)
	return now(shard.JoinGroup(ctx, r)), nil
}

// namedGroupShard is the shard coordinating groupID for the APIs whose
// group ID Kafka's GroupCoordinatorService requires to be non-empty
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetDelete, and
// ConsumerGroupDescribe per group; TxnOffsetCommit checks it itself, after
// its unknown partitions): an empty one answers INVALID_GROUP_ID before any
// routing, never NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
// OffsetCommit, OffsetFetch, DescribeGroups and DeleteGroups serve a group
// named "", as Kafka does for backward compatibility, and route with
// groupShards.shardFor.
func (c *conn) namedGroupShard(ctx context.Context, groupID string) (*group.Shard, *kerr.Error) {
	if groupID == "" {
		return nil, kerr.InvalidGroupID
	}
	return c.b.groups.shardFor(ctx, groupID)
}
