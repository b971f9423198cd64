package broker

// DescribeTransactions: v0
//
// Behavior:
// * Describes transactional IDs coordinated here: state, producer ID and
//   epoch, timeout, start time and partitions. IDs coordinated elsewhere
//   answer NOT_COORDINATOR; unknown ones TRANSACTIONAL_ID_NOT_FOUND.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeTransactions(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.DescribeTransactionsRequest)
	resp := r.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	for _, id := range r.TransactionalIDs {
		shard, kerrErr := c.b.txns.shardFor(ctx, id)
		if kerrErr != nil {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID, st.ErrorCode = id, kerrErr.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		resp.TransactionStates = append(resp.TransactionStates, shard.DescribeTransaction(ctx, id))
	}
	return now(resp), nil
}
