package txn

import (
	"sort"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// scheduleAbortCheck runs the timed-out transaction check every
// transaction.abort.timed.out.transaction.cleanup.interval.ms.
func (s *Shard) scheduleAbortCheck() {
	s.abortTimer = s.loop.After(s.cfg.AbortTimedOutInterval, func() {
		s.abortTimedOut()
		s.scheduleAbortCheck()
	})
}

// abortTimedOut is Kafka's abortTimedOutTransactions: every Ongoing
// transaction whose start time plus timeout has passed, and that has no
// change in flight, is aborted with a bumped epoch, which fences its
// producer (the producer learns it on its next request). It also refreshes
// the OngoingOverTimeout gauge: open transactions older than their timeout.
func (s *Shard) abortTimedOut() {
	now := s.nowMs()
	var hanging int64
	var expired []string
	for id, m := range s.txns {
		if !m.open() || m.startMs < 0 || m.startMs+int64(m.timeoutMs) >= now {
			continue
		}
		hanging++
		if m.state == stateOngoing && !s.busy(id) {
			expired = append(expired, id)
		}
	}
	s.hanging.Store(hanging)
	sort.Strings(expired)
	for _, id := range expired {
		m := s.txns[id]
		s.logger.Warn("aborting transaction that exceeded its timeout; its producer is fenced",
			"partition", s.partition, "transactional_id", id, "producer_id", m.producerID, "producer_epoch", m.epoch,
			"timeout_ms", m.timeoutMs, "open_ms", now-m.startMs, "partitions", len(m.parts))
		if s.cfg.OnTimedOutAbort != nil {
			s.cfg.OnTimedOutAbort(id, m.producerID, m.epoch)
		}
		s.fenceAndAbort(id, func(code int16) {
			if code != 0 {
				s.logger.Warn("aborting timed-out transaction failed; will retry at the next check",
					"partition", s.partition, "transactional_id", id, "error_code", code)
			}
		})
	}
}

// scheduleExpiry runs the transactional ID expiry every
// transaction.remove.expired.transaction.cleanup.interval.ms.
func (s *Shard) scheduleExpiry() {
	s.expiryTimer = s.loop.After(s.cfg.RemoveExpiredInterval, func() {
		s.expireIDs()
		s.scheduleExpiry()
	})
}

// expireIDs is Kafka's removeExpiredTransactionalIds: an ID with no open
// transaction (Empty, CompleteCommit, CompleteAbort), nothing in flight,
// and no update for transactional.id.expiration.ms is tombstoned. All
// tombstones of one pass go in one batch.
func (s *Shard) expireIDs() {
	cutoff := s.nowMs() - s.cfg.TransactionalIDExpiration.Milliseconds()
	var ids []string
	for id, m := range s.txns {
		if m.open() || s.busy(id) || m.updateMs > cutoff {
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	sort.Strings(ids)
	recs := make([]runtime.Record, len(ids))
	for i, id := range ids {
		recs[i] = tombstone(id)
	}
	s.write(ids, recs, func(code int16) {
		if code != 0 {
			return
		}
		for _, id := range ids {
			s.logger.Info("expired transactional ID", "partition", s.partition, "transactional_id", id)
		}
	})
}
