package broker

// EndTxn: v0-5
//
// Behavior:
// * Commits or aborts: the coordinator records the decision, then writes
//   markers to every partition of the transaction and completes it.
// * v5 (KIP-890 transactions v2): every transaction ends with a new epoch,
//   returned in the response, so a late marker cannot reach the next one.
//
// Version notes:
// * v3: flexible; v5: producer ID and epoch in the response.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleEndTxn(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.EndTxnRequest)
	ctx, cancel := c.requestContext()
	defer cancel()
	shard, kerrErr := c.b.txns.shardFor(ctx, r.TransactionalID)
	if kerrErr != nil {
		resp := r.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = kerrErr.Code, -1, -1
		return now(resp), nil
	}
	return now(shard.EndTxn(ctx, r)), nil
}
