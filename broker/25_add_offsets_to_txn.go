package broker

// AddOffsetsToTxn: v0-4
//
// Behavior:
// * Adds the group's __consumer_offsets partition to the transaction so a
//   later TxnOffsetCommit becomes visible only when the transaction commits.
// * The group's partition is computed as Kafka's GroupCoordinator.partitionFor
//   does, from __consumer_offsets' partition count, or
//   offsets.topic.num.partitions while the topic does not exist: the topic
//   is neither created nor waited for. While it cannot be created the add
//   still succeeds; the TxnOffsetCommit that follows fails to find the
//   group coordinator instead, and the marker for the partition is skipped.
//
// Version notes:
// * v2: PRODUCER_FENCED; v3: flexible.

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
	return now(shard.AddOffsetsToTxn(ctx, r, groupPartitionFor(c.b, r.Group))), nil
}

// groupPartitionFor is the __consumer_offsets partition of groupID without
// creating the topic: its partition count, or the configured one while it
// does not exist (Kafka's coordinators start with the same fallback).
func groupPartitionFor(b *Broker, groupID string) int32 {
	topic := b.groups.topic()
	n := topic.partitions
	if t := b.view.Image().Topics[topic.name]; t != nil {
		n = int32(len(t.Partitions))
	}
	return group.PartitionFor(groupID, n)
}
