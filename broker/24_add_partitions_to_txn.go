package broker

// AddPartitionsToTxn: v0-5
//
// Behavior:
// * v0-3: a producer adds partitions to its own transaction.
// * v4+: batched, sent by brokers; VerifyOnly checks that partitions are
//   already part of the transaction (KIP-890 part 1).
// * Routed to the transaction coordinator shard of each transactional ID.
//
// Version notes:
// * v3: flexible; v4: batched transactions, verify only; v5: KIP-890 part 2.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleAddPartitionsToTxn(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.AddPartitionsToTxnRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	if r.Version < 4 {
		shard, kerrErr := c.b.txns.shardFor(ctx, r.TransactionalID)
		if kerrErr != nil {
			resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
			for _, t := range r.Topics {
				rt := kmsg.NewAddPartitionsToTxnResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p, kerrErr.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return now(resp), nil
		}
		return now(shard.AddPartitionsToTxn(ctx, r)), nil
	}
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, tx := range r.Transactions {
		shard, kerrErr := c.b.txns.shardFor(ctx, tx.TransactionalID)
		if kerrErr != nil {
			out := kmsg.NewAddPartitionsToTxnResponseTransaction()
			out.TransactionalID = tx.TransactionalID
			for _, t := range tx.Topics {
				rt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
					rp.Partition, rp.ErrorCode = p, kerrErr.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				out.Topics = append(out.Topics, rt)
			}
			resp.Transactions = append(resp.Transactions, out)
			continue
		}
		resp.Transactions = append(resp.Transactions, shard.AddPartitionsToTxnTransaction(ctx, r.Version, &tx))
	}
	return now(resp), nil
}
