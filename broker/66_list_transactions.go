package broker

// ListTransactions: v0-2
//
// Behavior:
// * Lists the transactions of every coordinator shard on this broker,
//   filtered by state, producer ID, duration (v1+) and ID pattern (v2+).
// * State filters that name no Kafka transaction state (case-sensitive) come
//   back in UnknownStateFilters, once each, and match nothing; not while a
//   shard is loading (COORDINATOR_LOAD_IN_PROGRESS), as in Kafka.
// * v2+: a transactional_id_pattern that does not compile (Go's RE2 syntax,
//   see txn.IDPattern) answers INVALID_REGULAR_EXPRESSION with no
//   transactions and no unknown filters, as Kafka's listTransactionStates
//   throws InvalidRegularExpression: after the loading check, whether or
//   not this broker coordinates any transactions.
//
// Version notes:
// * v1: duration filter; v2: transactional ID pattern.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/txn"
)

func handleListTransactions(c *conn, hdr requestInfo, req kmsg.Request) (reply, error) {
	r := req.(*kmsg.ListTransactionsRequest)
	resp := r.ResponseKind().(*kmsg.ListTransactionsResponse)
	ctx, cancel := c.requestContext()
	defer cancel()
	c.b.txns.startLed(c.b.view.Image())
	shards := c.b.txns.all()
	for _, s := range shards {
		if !s.Loaded() {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			return now(resp), nil
		}
	}
	if _, err := txn.IDPattern(r); err != nil {
		resp.ErrorCode = kerr.InvalidRegularExpression.Code
		return now(resp), nil
	}
	for _, s := range shards {
		resp.TransactionStates = append(resp.TransactionStates, s.ListTransactions(ctx, r)...)
	}
	resp.UnknownStateFilters = txn.UnknownStateFilters(r.StateFilters)
	return now(resp), nil
}
