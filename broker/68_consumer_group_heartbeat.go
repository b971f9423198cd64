package broker

// ConsumerGroupHeartbeat: v0-1 (KIP-848)
//
// Behavior:
// * The consumer group protocol: members join, heartbeat and leave through
//   this one API; the coordinator computes assignments server-side
//   (uniform, range) and hands partitions over revocation-first.
//
// Version notes:
// * v1: client-generated member IDs, regex subscriptions.

import (
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/group"
)

func handleConsumerGroupHeartbeat(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ConsumerGroupHeartbeatRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.b.groups.shardFor(ctx, r.Group)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	ctx = group.WithClient(ctx, hdr.clientID, "/"+host)
	return now(shard.ConsumerGroupHeartbeat(ctx, r)), nil
}
