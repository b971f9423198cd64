package group

import (
	"sort"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// scheduleRetention runs the offsets retention check every
// offsets.retention.check.interval.ms.
func (s *Shard) scheduleRetention() {
	s.retentionTimer = s.loop.After(s.cfg.OffsetsRetentionCheckInterval, func() {
		s.expireOffsets()
		s.scheduleRetention()
	})
}

// expireOffsets is Kafka's cleanupGroupMetadata with 2.1+ semantics:
//   - an Empty group with a protocol type expires all its offsets once it
//     has been Empty for the retention period (commit time when the state
//     time is unknown);
//   - a Stable consumer group that knows its subscriptions expires offsets
//     of topics it no longer subscribes to, by commit time;
//   - a group without protocol type (offsets only) expires each offset by
//     commit time;
//   - offsets written with an explicit expire timestamp expire at it.
//
// Partitions with a commit in flight or an offset pending in an open
// transaction are kept (Kafka 4's rule). An Empty group left without
// offsets, and without open transactions, becomes Dead and its metadata is
// tombstoned.
func (s *Shard) expireOffsets() {
	now := s.nowMs()
	retention := s.cfg.OffsetsRetention.Milliseconds()
	ids := make([]string, 0, len(s.groups))
	for id := range s.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g := s.groups[id]
		if g.is(stateDead) {
			continue
		}
		if g.cg != nil {
			s.expireConsumerGroup(g, now, retention)
			continue
		}
		var base func(o offsetEntry) int64
		var skip map[string]bool
		switch {
		case g.protocolType == "":
			base = func(o offsetEntry) int64 { return o.commitTimestamp }
		case g.is(stateEmpty):
			base = func(o offsetEntry) int64 {
				if g.stateTime >= 0 {
					return g.stateTime
				}
				return o.commitTimestamp
			}
		case g.protocolType == consumerProtocolType && g.subscribedKnown && g.is(stateStable):
			base = func(o offsetEntry) int64 { return o.commitTimestamp }
			skip = g.subscribed
		}
		var expired []topicPartition
		if base != nil {
			for _, tp := range sortedOffsets(g) {
				o := g.offsets[tp]
				if skip[tp.topic] || g.pendingCommits[tp] > 0 || s.txn.hasPending(g.id, tp) {
					continue
				}
				if (o.expireTimestamp >= 0 && now >= o.expireTimestamp) ||
					(o.expireTimestamp < 0 && now-base(o) >= retention) {
					expired = append(expired, tp)
				}
			}
		}
		recs := make([]runtime.Record, 0, len(expired)+1)
		for _, tp := range expired {
			recs = append(recs, offsetTombstone(g.id, tp))
		}
		empty := g.is(stateEmpty) && len(g.pending) == 0 && len(expired) == len(g.offsets) && len(g.pendingCommits) == 0 &&
			!s.txn.groupHasPending(g.id)
		if empty {
			if g.hasStored || g.generation > 0 {
				recs = append(recs, groupTombstone(g.id))
			}
			if len(recs) == 0 {
				s.maybeDrop(g)
				continue
			}
			s.logger.Info("group is empty and has no offsets left, removing it", "partition", s.partition, "group", g.id, "generation", g.generation)
			s.killGroup(g, recs, func(int16) {})
			continue
		}
		if len(recs) == 0 {
			continue
		}
		s.logger.Info("expiring committed offsets", "partition", s.partition, "group", g.id, "offsets", len(expired))
		s.write(recs, true, func(int16) {})
	}
}
