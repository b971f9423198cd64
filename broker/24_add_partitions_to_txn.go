package broker

// AddPartitionsToTxn: v0-5
//
// Behavior:
// * v0-3: a producer adds partitions to its own transaction.
// * v4+: batched, sent by brokers; VerifyOnly checks that partitions are
//   already part of the transaction (KIP-890 part 1).
// * A transaction naming a topic or partition that does not exist adds
//   nothing: those partitions answer UNKNOWN_TOPIC_OR_PARTITION, its
//   others OPERATION_NOT_ATTEMPTED, before routing (Kafka's KafkaApis
//   checks its metadata cache first, per transaction).
// * Otherwise routed to the transaction coordinator shard of each
//   transactional ID.
//
// Version notes:
// * v3: flexible; v4: batched transactions, verify only; v5: KIP-890 part 2.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/etcd"
)

func handleAddPartitionsToTxn(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.AddPartitionsToTxnRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	img := c.b.view.Image()
	if r.Version < 4 {
		missing := false
		for _, t := range r.Topics {
			missing = missing || !allPartitionsExist(img, t.Topic, t.Partitions)
		}
		if missing {
			return now(addPartitionsResponse(r, notAttemptedUnlessMissing(img))), nil
		}
		shard, kerrErr := c.b.txns.shardFor(ctx, r.TransactionalID)
		if kerrErr != nil {
			return now(addPartitionsResponse(r, func(string, int32) int16 { return kerrErr.Code })), nil
		}
		return now(shard.AddPartitionsToTxn(ctx, r)), nil
	}
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, tx := range r.Transactions {
		missing := false
		for _, t := range tx.Topics {
			missing = missing || !allPartitionsExist(img, t.Topic, t.Partitions)
		}
		if missing {
			resp.Transactions = append(resp.Transactions, addPartitionsResult(&tx, notAttemptedUnlessMissing(img)))
			continue
		}
		shard, kerrErr := c.b.txns.shardFor(ctx, tx.TransactionalID)
		if kerrErr != nil {
			resp.Transactions = append(resp.Transactions, addPartitionsResult(&tx, func(string, int32) int16 { return kerrErr.Code }))
			continue
		}
		resp.Transactions = append(resp.Transactions, shard.AddPartitionsToTxnTransaction(ctx, r.Version, &tx))
	}
	return now(resp), nil
}

// partitionExists reports whether img has the topic and partition.
func partitionExists(img *etcd.Image, topic string, partition int32) bool {
	t := img.Topics[topic]
	return t != nil && partition >= 0 && int(partition) < len(t.Partitions)
}

func allPartitionsExist(img *etcd.Image, topic string, partitions []int32) bool {
	for _, p := range partitions {
		if !partitionExists(img, topic, p) {
			return false
		}
	}
	return true
}

// notAttemptedUnlessMissing is the code of each partition of a transaction
// refused for naming a partition that does not exist.
func notAttemptedUnlessMissing(img *etcd.Image) func(topic string, partition int32) int16 {
	return func(topic string, partition int32) int16 {
		if !partitionExists(img, topic, partition) {
			return kerr.UnknownTopicOrPartition.Code
		}
		return kerr.OperationNotAttempted.Code
	}
}

// addPartitionsResponse answers every partition of a v0-3 request, in
// request order, with the code codeOf gives it.
func addPartitionsResponse(r *kmsg.AddPartitionsToTxnRequest, codeOf func(topic string, partition int32) int16) *kmsg.AddPartitionsToTxnResponse {
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, codeOf(t.Topic, p)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// addPartitionsResult answers every partition of one transaction of a v4+
// request, in request order, with the code codeOf gives it.
func addPartitionsResult(tx *kmsg.AddPartitionsToTxnRequestTransaction, codeOf func(topic string, partition int32) int16) kmsg.AddPartitionsToTxnResponseTransaction {
	out := kmsg.NewAddPartitionsToTxnResponseTransaction()
	out.TransactionalID = tx.TransactionalID
	for _, t := range tx.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
			rp.Partition, rp.ErrorCode = p, codeOf(t.Topic, p)
			rt.Partitions = append(rt.Partitions, rp)
		}
		out.Topics = append(out.Topics, rt)
	}
	return out
}
