package txn

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// EndTxn serves EndTxn (v0-5), as Kafka's TransactionCoordinator
// endTransaction: an Ongoing transaction moves to PrepareCommit or
// PrepareAbort; once that record is committed the response is released and
// markers are written to every partition of the transaction in the
// background, after which CompleteCommit/CompleteAbort is written.
// Meanwhile requests for the ID answer CONCURRENT_TRANSACTIONS.
//
// Version notes:
//   - v0-1: PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH.
//   - v5+ (KIP-890 transactions v2): every EndTxn bumps the epoch, and the
//     markers carry the bumped epoch, so a late produce or marker of the
//     ended transaction is fenced (KAFKA-17754). The response carries the
//     producer ID and epoch to continue with (a new producer ID at epoch 0
//     when the epoch overflows). A retry (the epoch before the bump) of a
//     finished EndTxn with the same outcome succeeds; aborting with the
//     current epoch when nothing is open is allowed (an empty transaction).
//   - before v5 a retry with the same epoch of a finished EndTxn with the
//     same outcome succeeds; the other outcome is INVALID_TXN_STATE.
func (s *Shard) EndTxn(ctx context.Context, req *kmsg.EndTxnRequest) *kmsg.EndTxnResponse {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ProducerID, resp.ProducerEpoch = noProducerID, noProducerEpoch
	fail := func(code int16) *kmsg.EndTxnResponse {
		r := *resp
		r.ErrorCode = fencedCompat(code, req.Version < 2)
		return &r
	}
	if req.TransactionalID == "" {
		return fail(errInvalidRequest)
	}
	var tv int16
	if req.Version >= 5 {
		tv = 2
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.EndTxnResponse)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		s.endTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, tv, func(pid int64, epoch int16, code int16) {
			if code != 0 {
				reply(fail(code))
				return
			}
			r := *resp
			if tv >= 2 {
				r.ProducerID, r.ProducerEpoch = pid, epoch
			}
			reply(&r)
		})
	})
}

// endTxn runs on the loop; see EndTxn.
func (s *Shard) endTxn(id string, pid int64, epoch int16, commit bool, tv int16, reply func(pid int64, epoch int16, code int16)) {
	m := s.txns[id]
	if m == nil {
		reply(noProducerID, noProducerEpoch, errInvalidProducerIDMapping)
		return
	}
	invalid := func() {
		s.logger.Warn("EndTxn in a state that does not allow it", "partition", s.partition, "transactional_id", id,
			"state", m.state.String(), "commit", commit)
		reply(noProducerID, noProducerEpoch, errInvalidTxnState)
	}
	if tv < 2 {
		switch {
		case m.producerID != pid:
			reply(noProducerID, noProducerEpoch, errInvalidProducerIDMapping)
		case m.epoch != epoch:
			reply(noProducerID, noProducerEpoch, errProducerFenced)
		case s.busy(id):
			reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
		case m.state == stateOngoing:
			s.prepareEnd(id, m, commit, m.epoch, tv, noProducerID, false, keepLastEpoch, func(code int16) {
				reply(noProducerID, noProducerEpoch, code)
			})
		case m.state == stateCompleteCommit && commit, m.state == stateCompleteAbort && !commit:
			reply(noProducerID, noProducerEpoch, errNone)
		case m.state == statePrepareCommit && commit, m.state == statePrepareAbort && !commit:
			reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
		default:
			invalid()
		}
		return
	}

	// Transactions v2: the epoch moves on at every EndTxn, so the epoch a
	// request carries tells a retry (one behind) from a new request.
	retryOnOverflow := m.prevProducerID == pid && epoch == maxEpoch-1 && m.epoch == 0
	retryOnBump := int32(m.epoch) == int32(epoch)+1
	var validEpoch bool
	switch m.state {
	case statePrepareCommit, statePrepareAbort:
		validEpoch = retryOnBump
	case stateCompleteCommit, stateCompleteAbort:
		validEpoch = retryOnBump || retryOnOverflow || epoch == m.epoch
	default:
		validEpoch = epoch == m.epoch
	}
	isRetry := retryOnBump || retryOnOverflow
	switch {
	case m.producerID != pid && !retryOnOverflow:
		reply(noProducerID, noProducerEpoch, errInvalidProducerIDMapping)
		return
	case !validEpoch:
		reply(noProducerID, noProducerEpoch, errProducerFenced)
		return
	case s.busy(id):
		reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
		return
	}
	bump := func(noPartitions bool) {
		if !epochExhausted(m.epoch) {
			s.prepareEnd(id, m, commit, m.epoch+1, tv, noProducerID, noPartitions, m.epoch, func(code int16) {
				reply(m.producerID, m.epoch+1, code)
			})
			return
		}
		// The bumped epoch is the last one this producer ID has: the
		// producer continues with a new ID once the transaction completes.
		s.allocate(id, func(next int64, code int16) {
			if code != 0 {
				reply(noProducerID, noProducerEpoch, code)
				return
			}
			if s.txns[id] != m {
				reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
				return
			}
			s.prepareEnd(id, m, commit, m.epoch+1, tv, next, noPartitions, m.epoch, func(code int16) {
				reply(next, 0, code)
			})
		})
	}
	switch m.state {
	case stateOngoing:
		bump(false)
	case stateCompleteCommit:
		switch {
		case commit && isRetry:
			reply(m.producerID, m.epoch, errNone)
		case !commit && !isRetry:
			bump(true)
		default:
			invalid()
		}
	case stateCompleteAbort:
		switch {
		case !commit && isRetry:
			reply(m.producerID, m.epoch, errNone)
		case !commit:
			bump(true)
		default:
			invalid()
		}
	case statePrepareCommit:
		if commit {
			reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
		} else {
			invalid()
		}
	case statePrepareAbort:
		if !commit {
			reply(noProducerID, noProducerEpoch, errConcurrentTransactions)
		} else {
			invalid()
		}
	case stateEmpty:
		if !commit {
			bump(true)
		} else {
			invalid()
		}
	default:
		invalid()
	}
}

// keepLastEpoch tells prepareEnd to leave the KIP-360 last epoch alone.
const keepLastEpoch int16 = -2

// prepareEnd writes PrepareCommit/PrepareAbort for the transaction in m
// with the given epoch and, once committed, answers and starts writing the
// markers. noPartitions marks a TV2 abort with nothing open, whose start
// time is now. lastEpoch (unless keepLastEpoch) becomes the epoch a
// retrying producer may present: the one before a TV2 bump, never a fenced
// producer's.
func (s *Shard) prepareEnd(id string, m *txnMeta, commit bool, epoch int16, tv int16, nextPID int64, noPartitions bool, lastEpoch int16, then func(code int16)) {
	now := s.nowMs()
	next := m.clone()
	next.prevProducerID = m.producerID
	next.nextProducerID = nextPID
	next.epoch = epoch
	next.state = statePrepareAbort
	if commit {
		next.state = statePrepareCommit
	}
	if noPartitions {
		next.startMs = now
		next.parts = map[topicPartition]struct{}{}
	}
	next.updateMs = now
	next.clientTV = tv
	s.writeMeta(id, next, func(code int16) {
		if code != 0 {
			then(code)
			return
		}
		if lastEpoch != keepLastEpoch {
			s.liveFor(id).lastEpoch = lastEpoch
		}
		s.logger.Debug("transaction prepared", "partition", s.partition, "transactional_id", id,
			"state", next.state.String(), "producer_id", next.producerID, "producer_epoch", next.epoch, "partitions", len(next.parts))
		then(errNone)
		s.startCompletion(id)
	})
}

// fenceAndAbort aborts the Ongoing transaction of id on the coordinator's
// own initiative (InitProducerId from a new instance, or a timeout): the
// epoch is bumped so the current producer is fenced, and PrepareAbort is
// written with it (Kafka's PrepareEpochFence, which is never logged). With
// transaction.version 2 the abort bumps once more, as EndTxn v5 does. The
// epoch never passes MaxInt16; the next InitProducerId then moves to a new
// producer ID.
func (s *Shard) fenceAndAbort(id string, then func(code int16)) {
	m := s.txns[id]
	epoch := m.epoch
	if epoch < maxEpoch {
		epoch++
	}
	if s.cfg.TransactionVersion >= 2 && epoch < maxEpoch {
		epoch++
	}
	s.prepareEnd(id, m, false, epoch, s.cfg.TransactionVersion, noProducerID, false, noProducerEpoch, then)
}

// startCompletion writes the markers of the Prepare* transaction of id in
// the background, then the Complete* record. The ID is busy meanwhile.
func (s *Shard) startCompletion(id string) {
	m := s.txns[id]
	l := s.liveFor(id)
	if m == nil || !m.preparing() || l.completing {
		return
	}
	l.completing = true
	commit := m.state == statePrepareCommit
	markers := make([]Marker, 0, len(m.parts))
	for _, t := range m.sortedParts() {
		for _, p := range t.Partitions {
			markers = append(markers, Marker{
				Topic: t.Topic, Partition: p, ProducerID: m.producerID, ProducerEpoch: m.epoch,
				Commit: commit, CoordinatorEpoch: s.coordinatorEpoch,
			})
		}
	}
	if len(markers) == 0 {
		s.writeComplete(id, m)
		return
	}
	s.loop.Go(func(ctx context.Context) {
		if !s.sendMarkers(ctx, id, markers) {
			return
		}
		s.loop.Post(func() { s.writeComplete(id, m) })
	})
}

// sendMarkers retries WriteMarkers until it succeeds (true), ctx ends (the
// shard closes) or a newer coordinator fences this one (false).
func (s *Shard) sendMarkers(ctx context.Context, id string, markers []Marker) bool {
	var lastWarn time.Time
	for attempt := 1; ; attempt++ {
		err := s.markers.WriteMarkers(ctx, markers)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, kerr.TransactionCoordinatorFenced) {
			s.logger.Warn("a newer transaction coordinator owns the transaction, no longer writing its markers",
				"partition", s.partition, "transactional_id", id, "leader_epoch", s.coordinatorEpoch, "err", err)
			return false
		}
		if time.Since(lastWarn) > 30*time.Second {
			lastWarn = time.Now()
			s.logger.Warn("writing transaction markers failed, retrying", "partition", s.partition, "transactional_id", id,
				"producer_id", markers[0].ProducerID, "producer_epoch", markers[0].ProducerEpoch, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(s.cfg.MarkerRetryBackoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// writeComplete writes CompleteCommit/CompleteAbort for the transaction
// that was in state m (Kafka's prepareComplete): no partitions, and with
// TV2 epoch overflow the producer moves to its next producer ID at epoch 0.
// A failed write is retried after MarkerRetryBackoff until the shard closes.
func (s *Shard) writeComplete(id string, m *txnMeta) {
	l := s.liveFor(id)
	if s.txns[id] != m {
		l.completing = false
		return
	}
	next := m.clone()
	next.prevProducerID = m.producerID
	if m.nextProducerID != noProducerID {
		next.producerID, next.epoch = m.nextProducerID, 0
	}
	next.nextProducerID = noProducerID
	next.state = stateCompleteAbort
	if m.state == statePrepareCommit {
		next.state = stateCompleteCommit
	}
	next.parts = map[topicPartition]struct{}{}
	next.updateMs = s.nowMs()
	s.writeMeta(id, next, func(code int16) {
		if code == 0 {
			l.completing = false
			s.logger.Debug("transaction completed", "partition", s.partition, "transactional_id", id, "state", next.state.String())
			return
		}
		if s.loop.Closed() {
			return
		}
		s.loop.After(s.cfg.MarkerRetryBackoff, func() { s.writeComplete(id, m) })
	})
}
