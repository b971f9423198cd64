package txn

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// GroupOffsetsTopic is the topic AddOffsetsToTxn adds to a transaction.
const GroupOffsetsTopic = "__consumer_offsets"

// AddPartitionsToTxn serves AddPartitionsToTxn. v0-3 is the producer's own
// call for its one transaction; every partition answers the same code
// (PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2). v4+ batches
// transactions for brokers: each transaction in req is served as by
// AddPartitionsToTxnTransaction, so the broker should pass only the
// transactions of this shard (or call that method per transaction).
// Unknown topics and authorization are the broker's to check first.
func (s *Shard) AddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	if req.Version >= 4 {
		for i := range req.Transactions {
			resp.Transactions = append(resp.Transactions, s.AddPartitionsToTxnTransaction(ctx, req.Version, &req.Transactions[i]))
		}
		return resp
	}
	parts := map[string][]int32{}
	for _, t := range req.Topics {
		parts[t.Topic] = append(parts[t.Topic], t.Partitions...)
	}
	code := s.addPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts, 0, false)
	code = fencedCompat(code, req.Version < 2)
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			rp.ErrorCode = code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// AddPartitionsToTxnTransaction serves one transaction of an
// AddPartitionsToTxn v4+ request (sent by partition leaders):
//
//   - VerifyOnly (KIP-890 part 1): nothing changes; each partition answers
//     NONE if it is in the transaction, TRANSACTION_ABORTABLE if not; a
//     wrong producer ID is INVALID_PRODUCER_ID_MAPPING, a wrong epoch
//     PRODUCER_FENCED, a transaction being committed or aborted
//     CONCURRENT_TRANSACTIONS, for every partition.
//   - otherwise the partitions are added, as for a producer's own call; v5+
//     marks the transaction as transactions v2 (the implicit add of a TV2
//     produce, KIP-890 part 2). The broker paths wait up to
//     ConcurrentTransactionsWait for a concurrent change to finish.
func (s *Shard) AddPartitionsToTxnTransaction(ctx context.Context, version int16, t *kmsg.AddPartitionsToTxnRequestTransaction) kmsg.AddPartitionsToTxnResponseTransaction {
	parts := map[string][]int32{}
	for _, rt := range t.Topics {
		parts[rt.Topic] = append(parts[rt.Topic], rt.Partitions...)
	}
	var codes map[topicPartition]int16
	if t.VerifyOnly {
		codes = s.verifyPartitions(ctx, t.TransactionalID, t.ProducerID, t.ProducerEpoch, parts)
	} else {
		var tv int16
		if version >= 5 {
			tv = 2
		}
		code := s.addPartitions(ctx, t.TransactionalID, t.ProducerID, t.ProducerEpoch, parts, tv, true)
		codes = map[topicPartition]int16{}
		for topic, ps := range parts {
			for _, p := range ps {
				codes[topicPartition{topic, p}] = code
			}
		}
	}
	r := kmsg.NewAddPartitionsToTxnResponseTransaction()
	r.TransactionalID = t.TransactionalID
	for _, rt := range t.Topics {
		ot := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
		ot.Topic = rt.Topic
		for _, p := range rt.Partitions {
			op := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
			op.Partition = p
			op.ErrorCode = codes[topicPartition{rt.Topic, p}]
			ot.Partitions = append(ot.Partitions, op)
		}
		r.Topics = append(r.Topics, ot)
	}
	return r
}

// AddPartitionsForProduce adds partitions to a transactions-v2 transaction
// on behalf of the partition leader that received a transactional produce
// (Produce v12+; AddPartitionsToTxn v5 without VerifyOnly in Kafka). It
// answers one code for all partitions: NONE once the partitions are in the
// transaction (a new transaction starts if none is open), or
// INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS
// (after waiting up to ConcurrentTransactionsWait), NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE.
func (s *Shard) AddPartitionsForProduce(ctx context.Context, txnID string, producerID int64, producerEpoch int16, partitions map[string][]int32) int16 {
	return s.addPartitions(ctx, txnID, producerID, producerEpoch, partitions, 2, true)
}

// AddOffsetsToTxn serves AddOffsetsToTxn (v0-4): the __consumer_offsets
// partition of the group (groupPartition, computed by the broker with
// group.PartitionFor) joins the transaction, so that its markers make the
// group's transactional offset commits visible or discard them.
// PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2.
func (s *Shard) AddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest, groupPartition int32) *kmsg.AddOffsetsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	code := s.addPartitions(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch,
		map[string][]int32{GroupOffsetsTopic: {groupPartition}}, 0, false)
	resp.ErrorCode = fencedCompat(code, req.Version < 2)
	return resp
}

// addPartitions runs the add on the loop and returns its code; wait allows
// waiting for a concurrent change (broker paths only).
func (s *Shard) addPartitions(ctx context.Context, id string, pid int64, epoch int16, parts map[string][]int32, tv int16, wait bool) int16 {
	if id == "" {
		return errInvalidRequest
	}
	set := map[topicPartition]struct{}{}
	for t, ps := range parts {
		for _, p := range ps {
			set[topicPartition{t, p}] = struct{}{}
		}
	}
	var deadline time.Time
	if wait {
		deadline = time.Now().Add(s.cfg.ConcurrentTransactionsWait)
	}
	fail := func(code int16) int16 { return code }
	return runtime.Call(ctx, s.loop, fail, func(reply func(int16)) {
		if code := s.loop.Ready(); code != 0 {
			reply(code)
			return
		}
		var try func()
		try = func() {
			code, blocked := s.tryAddPartitions(id, pid, epoch, set, tv, reply)
			if !blocked {
				if code >= 0 {
					reply(code)
				}
				return
			}
			if !time.Now().Before(deadline) {
				reply(errConcurrentTransactions)
				return
			}
			s.waitFor(id, deadline, try, func() { reply(errConcurrentTransactions) })
		}
		try()
	})
}

// tryAddPartitions is Kafka's handleAddPartitionsToTransaction on the loop.
// It returns a code to answer now, blocked=true when only a concurrent
// change stands in the way, or code -1 when a write was started that will
// reply itself.
func (s *Shard) tryAddPartitions(id string, pid int64, epoch int16, set map[topicPartition]struct{}, tv int16, reply func(int16)) (code int16, blocked bool) {
	m := s.txns[id]
	switch {
	case m == nil || m.producerID != pid:
		return errInvalidProducerIDMapping, false
	case m.epoch != epoch:
		return errProducerFenced, false
	case s.busy(id) || m.preparing():
		return errConcurrentTransactions, true
	}
	if m.state == stateOngoing {
		missing := false
		for tp := range set {
			if _, ok := m.parts[tp]; !ok {
				missing = true
				break
			}
		}
		if !missing {
			return errNone, false
		}
	}
	now := s.nowMs()
	next := m.clone()
	next.prevProducerID = m.producerID
	next.nextProducerID = noProducerID
	if m.state != stateOngoing { // Empty, CompleteCommit, CompleteAbort: a new transaction
		next.startMs = now
	}
	next.state = stateOngoing
	for tp := range set {
		next.parts[tp] = struct{}{}
	}
	next.updateMs = now
	if tv > next.clientTV || m.state != stateOngoing {
		next.clientTV = tv
	}
	s.writeMeta(id, next, reply)
	return -1, false
}

// waitFor parks retry until id settles (wake) or the deadline passes
// (timeout); either runs once, on the loop.
func (s *Shard) waitFor(id string, deadline time.Time, retry, timeout func()) {
	w := &waiter{retry: retry}
	l := s.liveFor(id)
	l.waiters = append(l.waiters, w)
	w.timer = s.loop.After(time.Until(deadline), func() {
		if w.fired {
			return
		}
		w.fired = true
		s.dropWaiter(id, w)
		timeout()
	})
}

func (s *Shard) dropWaiter(id string, w *waiter) {
	l := s.live[id]
	if l == nil {
		return
	}
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	s.forget(id)
}

// wake re-runs the waiters of id after a change of it finished.
func (s *Shard) wake(id string) {
	l := s.live[id]
	if l == nil || len(l.waiters) == 0 {
		return
	}
	ws := l.waiters
	l.waiters = nil
	for _, w := range ws {
		if w.fired {
			continue
		}
		w.fired = true
		w.timer.Stop()
		w.retry()
	}
}

// verifyPartitions is Kafka's handleVerifyPartitionsInTransaction.
func (s *Shard) verifyPartitions(ctx context.Context, id string, pid int64, epoch int16, parts map[string][]int32) map[topicPartition]int16 {
	all := func(code int16) map[topicPartition]int16 {
		out := map[topicPartition]int16{}
		for t, ps := range parts {
			for _, p := range ps {
				out[topicPartition{t, p}] = code
			}
		}
		return out
	}
	if id == "" {
		return all(errInvalidRequest)
	}
	return runtime.Call(ctx, s.loop, all, func(reply func(map[topicPartition]int16)) {
		if code := s.loop.Ready(); code != 0 {
			reply(all(code))
			return
		}
		m := s.txns[id]
		switch {
		case m == nil || m.producerID != pid:
			reply(all(errInvalidProducerIDMapping))
		case m.epoch != epoch:
			reply(all(errProducerFenced))
		case m.preparing():
			reply(all(errConcurrentTransactions))
		default:
			out := all(errTransactionAbortable)
			for tp := range out {
				if _, ok := m.parts[tp]; ok && m.state == stateOngoing {
					out[tp] = errNone
				}
			}
			reply(out)
		}
	})
}
