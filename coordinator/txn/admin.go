package txn

import (
	"context"
	"regexp"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// DescribeTransaction describes one transactional ID (DescribeTransactions
// v0): TRANSACTIONAL_ID_NOT_FOUND for an unknown ID, INVALID_REQUEST for an
// empty one, otherwise its producer, state, timeout, start time (-1 when no
// transaction started) and partitions, as Kafka's handleDescribeTransactions.
func (s *Shard) DescribeTransaction(ctx context.Context, txnID string) kmsg.DescribeTransactionsResponseTransactionState {
	fail := func(code int16) kmsg.DescribeTransactionsResponseTransactionState {
		r := kmsg.NewDescribeTransactionsResponseTransactionState()
		r.TransactionalID = txnID
		r.ErrorCode = code
		r.ProducerID, r.ProducerEpoch = noProducerID, noProducerEpoch
		r.StartTimestamp = -1
		r.Topics = []kmsg.DescribeTransactionsResponseTransactionStateTopic{}
		return r
	}
	if txnID == "" {
		return fail(errInvalidRequest)
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(kmsg.DescribeTransactionsResponseTransactionState)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		m := s.txns[txnID]
		if m == nil {
			reply(fail(errTransactionalIDNotFound))
			return
		}
		r := fail(errNone)
		r.State = m.state.String()
		r.TimeoutMillis = m.timeoutMs
		r.StartTimestamp = m.startMs
		r.ProducerID, r.ProducerEpoch = m.producerID, m.epoch
		for _, t := range m.sortedParts() {
			dt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			dt.Topic = t.Topic
			dt.Partitions = t.Partitions
			r.Topics = append(r.Topics, dt)
		}
		reply(r)
	})
}

// ListTransactions lists the shard's transactional IDs (ListTransactions
// v0-2), sorted, as Kafka's listTransactionStates: StateFilters (Kafka's
// state names, case-sensitive; see UnknownStateFilters), ProducerIDFilters,
// DurationFilterMillis (v1+: only transactions running longer than that)
// and TransactionalIDPattern (v2+, a regular expression the whole ID must
// match; the broker answers INVALID_REGULAR_EXPRESSION for a pattern that
// does not compile, which here matches nothing). Empty filters match all.
// Before Load completes it returns nothing; callers check Loaded.
func (s *Shard) ListTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) []kmsg.ListTransactionsResponseTransactionState {
	states := map[string]bool{}
	for _, f := range req.StateFilters {
		states[f] = true
	}
	pids := map[int64]bool{}
	for _, p := range req.ProducerIDFilters {
		pids[p] = true
	}
	duration := int64(-1)
	if req.Version >= 1 {
		duration = req.DurationFilterMillis
	}
	var pattern *regexp.Regexp
	badPattern := false
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if pattern, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`); err != nil {
			badPattern = true
		}
	}
	fail := func(int16) []kmsg.ListTransactionsResponseTransactionState { return nil }
	if badPattern {
		return nil
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func([]kmsg.ListTransactionsResponseTransactionState)) {
		if s.loop.Ready() != 0 {
			reply(nil)
			return
		}
		now := s.nowMs()
		out := []kmsg.ListTransactionsResponseTransactionState{}
		for id, m := range s.txns {
			switch {
			case len(pids) > 0 && !pids[m.producerID]:
			case len(states) > 0 && !states[m.state.String()]:
			case duration >= 0 && now-m.startMs <= duration:
			case pattern != nil && !pattern.MatchString(id):
			default:
				t := kmsg.NewListTransactionsResponseTransactionState()
				t.TransactionalID = id
				t.ProducerID = m.producerID
				t.TransactionState = m.state.String()
				out = append(out, t)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
		reply(out)
	})
}

// UnknownStateFilters returns the state filters of a ListTransactions
// request that name no transaction state, for the response's
// UnknownStateFilters, as Kafka's listTransactionStates fills it: a filter
// is known only if it is exactly (case included) one of Kafka's state names
// (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
// CompleteAbort, Dead, PrepareEpochFence). Kafka reads the filters as a
// set, so a repeated unknown filter is reported once; order is the
// request's. An unknown filter matches no transaction (ListTransactions
// with only unknown filters lists nothing).
func UnknownStateFilters(filters []string) []string {
	known := map[string]bool{}
	for _, n := range kmsg.TransactionStateStrings() {
		known[n] = true
	}
	out := []string{}
	for _, f := range filters {
		if !known[f] {
			known[f] = true // report once
			out = append(out, f)
		}
	}
	return out
}
