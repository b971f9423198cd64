package broker

// AddOffsetsToTxn: v0-4
//
// Behavior:
// * Adds the group's __consumer_offsets partition to the transaction so a
//   later TxnOffsetCommit becomes visible only when the transaction commits.
//
// Version notes:
// * v3: flexible.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/group"
)

func handleAddOffsetsToTxn(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.AddOffsetsToTxnRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	shard, kerrErr := c.b.txns.shardFor(ctx, r.TransactionalID)
	if kerrErr != nil {
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	_, groupPartition, kerrErr := c.b.groups.partitionFor(ctx, r.Group, group.PartitionFor)
	if kerrErr != nil {
		resp.ErrorCode = kerrErr.Code
		return now(resp), nil
	}
	return now(shard.AddOffsetsToTxn(ctx, r, groupPartition)), nil
}
