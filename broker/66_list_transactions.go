package broker

// ListTransactions: v0-2
//
// Behavior:
// * Lists the transactions of every coordinator shard on this broker,
//   filtered by state, producer ID, duration (v1+) and ID pattern (v2+).
// * State filters that name no Kafka transaction state (case-sensitive) come
//   back in UnknownStateFilters, once each, and match nothing; not while a
//   shard is loading (COORDINATOR_LOAD_IN_PROGRESS), as in Kafka.
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
	for _, s := range c.b.txns.all() {
		if !s.Loaded() {
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			resp.TransactionStates = nil
			return now(resp), nil
		}
		resp.TransactionStates = append(resp.TransactionStates, s.ListTransactions(ctx, r)...)
	}
	resp.UnknownStateFilters = txn.UnknownStateFilters(r.StateFilters)
	return now(resp), nil
}
