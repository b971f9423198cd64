package txn

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// InitProducerID serves InitProducerId (v0-5) for a transactional ID, as
// Kafka's TransactionCoordinator.handleInitProducerId:
//
//   - a null transactional ID gets a fresh producer ID, epoch 0 (the
//     idempotent producer; brokers usually answer it without a shard);
//   - the transaction timeout must be in (0, transaction.max.timeout.ms],
//     else INVALID_TRANSACTION_TIMEOUT;
//   - a new ID gets a new producer ID at epoch 0;
//   - an ID with no open transaction gets its epoch bumped (a new producer
//     ID at epoch 0 once the epoch is exhausted), fencing older instances;
//   - an ID with an Ongoing transaction has it aborted first: the epoch is
//     bumped (fencing the old producer), PrepareAbort is written, markers
//     go out with the bumped epoch, and the caller gets
//     CONCURRENT_TRANSACTIONS until the abort completes (clients retry);
//   - KIP-360 (v3+): a producer presenting its current producer ID and
//     epoch may bump; a retry presenting the previous epoch gets the
//     current one back; anything older is PRODUCER_FENCED
//     (INVALID_PRODUCER_EPOCH before v4, KIP-588).
func (s *Shard) InitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
	fail := func(code int16) *kmsg.InitProducerIDResponse {
		r := *resp
		r.ErrorCode = fencedCompat(code, req.Version < 4)
		return &r
	}
	if req.TransactionalID == nil {
		pid, err := s.ids.Next(ctx)
		if err != nil {
			return fail(allocErrorCode(err))
		}
		resp.ProducerID, resp.ProducerEpoch = pid, 0
		return resp
	}
	id := *req.TransactionalID
	if id == "" {
		return fail(errInvalidRequest)
	}
	if req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > s.cfg.MaxTimeout {
		return fail(errInvalidTxnTimeout)
	}
	var expected *producerIDAndEpoch
	if req.Version >= 3 {
		switch {
		case req.ProducerID == noProducerID && req.ProducerEpoch == noProducerEpoch:
		case req.ProducerID == noProducerID || req.ProducerEpoch == noProducerEpoch:
			return fail(errInvalidRequest)
		default:
			expected = &producerIDAndEpoch{req.ProducerID, req.ProducerEpoch}
		}
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.InitProducerIDResponse)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		s.initProducerID(id, req.TransactionTimeoutMillis, expected, func(pid int64, epoch int16, code int16) {
			if code != 0 {
				reply(fail(code))
				return
			}
			r := *resp
			r.ProducerID, r.ProducerEpoch = pid, epoch
			reply(&r)
		})
	})
}

type producerIDAndEpoch struct {
	id    int64
	epoch int16
}

// initProducerID runs on the loop; see InitProducerID.
func (s *Shard) initProducerID(id string, timeoutMs int32, expected *producerIDAndEpoch, reply func(pid int64, epoch int16, code int16)) {
	if s.busy(id) {
		reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
		return
	}
	m := s.txns[id]
	now := s.nowMs()
	if m == nil {
		// A new ID: its epoch starts at 0 whatever the producer presents.
		s.allocate(id, func(pid int64, code int16) {
			if code != 0 {
				reply(noProducerID, noProducerEpoch, code)
				return
			}
			if s.txns[id] != nil { // cannot happen while pending; be safe
				reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
				return
			}
			next := &txnMeta{
				producerID: pid, prevProducerID: noProducerID, nextProducerID: noProducerID,
				epoch: 0, timeoutMs: timeoutMs, state: stateEmpty, parts: map[topicPartition]struct{}{},
				startMs: -1, updateMs: now, clientTV: 0,
			}
			s.commitInit(id, next, noProducerEpoch, reply)
		})
		return
	}
	if expected != nil && !(m.epoch == noProducerEpoch || expected.id == m.producerID ||
		(expected.id == m.prevProducerID && epochExhausted(expected.epoch))) {
		reply(noProducerID, noProducerEpoch, errProducerFenced)
		return
	}
	switch m.state {
	case statePrepareCommit, statePrepareAbort:
		reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
	case stateOngoing:
		s.fenceAndAbort(id, func(code int16) {
			if code == 0 {
				code = errConcurrentTransactions
			}
			reply(noProducerID, noProducerEpoch, code)
		})
	default: // Empty, CompleteCommit, CompleteAbort
		if epochExhausted(m.epoch) && (expected == nil || expected.epoch == m.epoch) {
			s.allocate(id, func(pid int64, code int16) {
				if code != 0 {
					reply(noProducerID, noProducerEpoch, code)
					return
				}
				cur := s.txns[id]
				if cur != m {
					reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
					return
				}
				next := s.emptyFrom(m, timeoutMs, now)
				next.producerID, next.epoch = pid, 0
				last := noProducerEpoch
				if expected != nil {
					last = m.epoch
				}
				s.commitInit(id, next, last, reply)
			})
			return
		}
		next := s.emptyFrom(m, timeoutMs, now)
		last := noProducerEpoch
		switch {
		case expected == nil:
			next.epoch = m.epoch + 1
		case m.epoch == noProducerEpoch || expected.epoch == m.epoch:
			next.epoch, last = m.epoch+1, m.epoch
		case expected.epoch == s.liveFor(id).lastEpoch:
			// A retry of a bump whose answer was lost: same epoch again.
			next.epoch, last = m.epoch, s.live[id].lastEpoch
		default:
			s.logger.Info("fencing InitProducerId with a stale epoch", "partition", s.partition, "transactional_id", id,
				"producer_epoch", expected.epoch, "current_epoch", m.epoch)
			reply(noProducerID, noProducerEpoch, errProducerFenced)
			return
		}
		if epochExhausted(m.epoch) && next.epoch != m.epoch {
			reply(noProducerID, noProducerEpoch, errProducerFenced)
			return
		}
		s.commitInit(id, next, last, reply)
	}
}

// emptyFrom is the Empty state that follows m (Kafka's transition to Empty
// on InitProducerId): no partitions, no start time, the new timeout.
func (s *Shard) emptyFrom(m *txnMeta, timeoutMs int32, now int64) *txnMeta {
	next := m.clone()
	next.prevProducerID = m.producerID
	next.nextProducerID = noProducerID
	next.state = stateEmpty
	next.parts = map[topicPartition]struct{}{}
	next.timeoutMs = timeoutMs
	next.startMs = -1
	next.updateMs = now
	return next
}

// commitInit writes the Empty state and answers with its producer ID and
// epoch once committed, remembering lastEpoch for KIP-360 retries.
func (s *Shard) commitInit(id string, next *txnMeta, lastEpoch int16, reply func(pid int64, epoch int16, code int16)) {
	s.writeMeta(id, next, func(code int16) {
		if code != 0 {
			reply(noProducerID, noProducerEpoch, code)
			return
		}
		s.liveFor(id).lastEpoch = lastEpoch
		s.logger.Info("initialized transactional ID", "partition", s.partition, "transactional_id", id,
			"producer_id", next.producerID, "producer_epoch", next.epoch)
		reply(next.producerID, next.epoch, errNone)
	})
}
