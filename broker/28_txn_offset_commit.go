package broker

// TxnOffsetCommit: v0-6 (served by the group coordinator)
//
// Behavior:
// * v5+ (transactions v2): the group's __consumer_offsets partition is
//   added to the transaction implicitly, through the coordinator.
// * v0-4 (transactions v1), with transaction.partition.verification.enable:
//   unless the producer already has a transaction open on the group's
//   partition, the transaction coordinator must confirm the partition is in
//   the transaction (KIP-890 part 1), so a late commit cannot leave
//   offsets pending forever. Unlike Produce, the check is not fenced
//   against a marker landing between it and the coordinator's write.
// * Offsets committed inside a transaction stay pending in the group
//   coordinator until the transaction's marker reaches the group's
//   __consumer_offsets partition: visible on commit, dropped on abort.
// * An empty group ID answers INVALID_GROUP_ID for every partition that
//   exists and UNKNOWN_TOPIC_OR_PARTITION for the others, before routing
//   or any transaction check (Kafka's KafkaApis splits off unknown
//   partitions, then GroupCoordinatorService refuses the group).
//
// Version notes:
// * v2: leader epoch; v3: generation, member ID, group instance ID (KIP-447);
//   v3 flexible; v6: topic IDs.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/group"
)

func handleTxnOffsetCommit(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.TxnOffsetCommitRequest)
	if r.Version >= 6 {
		img := c.b.view.Image()
		for i := range r.Topics {
			if t := img.TopicsByID[r.Topics[i].TopicID]; t != nil {
				r.Topics[i].Topic = t.Name
			}
		}
	}
	if r.Group == "" {
		img := c.b.view.Image()
		return now(txnOffsetCommitResponse(r, func(topic string, partition int32) int16 {
			if !partitionExists(img, topic, partition) {
				return kerr.UnknownTopicOrPartition.Code
			}
			return kerr.InvalidGroupID.Code
		})), nil
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.b.groups.shardFor(ctx, r.Group)
	switch {
	case kerrErr == nil && r.Version >= 5:
		// Transactions v2: the group's offsets partition joins the
		// transaction here, as a produce does (no AddOffsetsToTxn).
		kerrErr = c.addOffsetsPartition(ctx, r)
	case kerrErr == nil && c.b.cfg.TransactionPartitionVerificationEnable:
		kerrErr = c.verifyOffsetsPartition(ctx, r)
	}
	if kerrErr != nil {
		return now(txnOffsetCommitResponse(r, func(string, int32) int16 { return kerrErr.Code })), nil
	}
	return now(shard.TxnOffsetCommit(ctx, r)), nil
}

// txnOffsetCommitResponse answers every partition of r, in request order,
// with the code codeOf gives it.
func txnOffsetCommitResponse(r *kmsg.TxnOffsetCommitRequest, codeOf func(topic string, partition int32) int16) *kmsg.TxnOffsetCommitResponse {
	resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, codeOf(t.Topic, p.Partition)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// verifyOffsetsPartition asks the transaction coordinator whether the
// group's __consumer_offsets partition is in the producer's transaction
// (transactions v1), unless a transaction of the producer is already open
// there. Errors map as Kafka maps them for TxnOffsetCommit: PRODUCER_FENCED
// as INVALID_PRODUCER_EPOCH, TRANSACTION_ABORTABLE as INVALID_TXN_STATE
// before v4, retriable coordinator errors as COORDINATOR_NOT_AVAILABLE.
func (c *conn) verifyOffsetsPartition(ctx context.Context, r *kmsg.TxnOffsetCommitRequest) *kerr.Error {
	_, p, kerrErr := c.b.groups.partitionFor(ctx, r.Group, group.PartitionFor)
	if kerrErr != nil {
		return kerrErr
	}
	if part, err := c.b.partitions.leaderFor(offsetsTopic, p); err == nil && part.HasOngoingTransaction(r.ProducerID) {
		return nil
	}
	code := c.b.verifyInTransaction(ctx, r.TransactionalID, r.ProducerID, r.ProducerEpoch, map[string][]int32{offsetsTopic: {p}})
	switch code {
	case 0:
		return nil
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch
	case kerr.TransactionAbortable.Code:
		if r.Version < 4 {
			return kerr.InvalidTxnState
		}
		return kerr.TransactionAbortable
	case kerr.NotCoordinator.Code, kerr.CoordinatorLoadInProgress.Code, kerr.ConcurrentTransactions.Code, kerr.NetworkException.Code:
		return kerr.CoordinatorNotAvailable
	}
	if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok {
		return e
	}
	return kerr.UnknownServerError
}

// addOffsetsPartition adds the group's __consumer_offsets partition to the
// producer's transaction (transactions v2). Retriable coordinator errors
// become COORDINATOR_NOT_AVAILABLE so the client retries.
func (c *conn) addOffsetsPartition(ctx context.Context, r *kmsg.TxnOffsetCommitRequest) *kerr.Error {
	_, p, kerrErr := c.b.groups.partitionFor(ctx, r.Group, group.PartitionFor)
	if kerrErr != nil {
		return kerrErr
	}
	code := c.b.addToTransaction(ctx, r.TransactionalID, r.ProducerID, r.ProducerEpoch, map[string][]int32{offsetsTopic: {p}})
	switch code {
	case 0:
		return nil
	case kerr.NotCoordinator.Code, kerr.CoordinatorLoadInProgress.Code, kerr.ConcurrentTransactions.Code:
		return kerr.CoordinatorNotAvailable
	}
	return kerr.ErrorForCode(code).(*kerr.Error)
}
