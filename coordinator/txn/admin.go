package txn

import (
	"context"
	"errors"
	"fmt"
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
// match; see IDPattern: the broker answers INVALID_REGULAR_EXPRESSION for a
// pattern that does not compile, which here matches nothing). Empty
// filters match all. Before Load completes it returns nothing; callers
// check Loaded.
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
	pattern, err := IDPattern(req)
	if err != nil {
		return nil
	}
	fail := func(int16) []kmsg.ListTransactionsResponseTransactionState { return nil }
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

// ErrInvalidIDPattern reports a ListTransactions transactional_id_pattern
// that does not compile; the request answers INVALID_REGULAR_EXPRESSION.
var ErrInvalidIDPattern = errors.New("txn: transactional ID pattern is not a valid regular expression")

// IDPattern compiles the transactional_id_pattern of a ListTransactions
// request (v2+) to match whole IDs, as Kafka's listTransactionStates
// matches with Pattern.matcher(id).matches(). A null or empty pattern, or
// a version without the field, is nil (no filter). A pattern that does
// not compile is ErrInvalidIDPattern: Kafka answers
// INVALID_REGULAR_EXPRESSION for the whole request (no transactions, no
// unknown state filters). The pattern is Go's RE2 syntax, not Java's:
// what RE2 cannot compile (backreferences, lookaround, possessive
// quantifiers, ...) is refused even where Java would accept it, and the few
// RE2-only forms are accepted.
func IDPattern(req *kmsg.ListTransactionsRequest) (*regexp.Regexp, error) {
	if req.Version < 2 || req.TransactionalIDPattern == nil || *req.TransactionalIDPattern == "" {
		return nil, nil
	}
	raw := *req.TransactionalIDPattern
	if _, err := regexp.Compile(raw); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrInvalidIDPattern, raw, err)
	}
	return regexp.Compile(`^(?:` + raw + `)$`)
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
