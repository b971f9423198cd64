package group

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// TxnOffsetCommit: v0-6
//
// Behavior:
//   - The offsets are written as one transactional batch carrying the
//     request's producer ID and epoch (the log fences a stale epoch: its
//     error, e.g. PRODUCER_FENCED or INVALID_PRODUCER_EPOCH, is answered
//     as is). Once replayed they are pending: OffsetFetch does not return
//     them (require_stable answers UNSTABLE_OFFSET_COMMIT for their
//     partitions) until CompleteTransaction commits or aborts the
//     producer's transaction.
//   - Group checks are Kafka's for a transactional commit (KIP-447): an
//     unknown group is accepted with generation -1 (a producer outside any
//     group) and answers ILLEGAL_GENERATION otherwise; when a generation,
//     member ID or instance ID is given, the member must be known
//     (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID) at the group's generation
//     (ILLEGAL_GENERATION); unlike OffsetCommit there is no
//     REBALANCE_IN_PROGRESS and no member is required when none is named.
//     A KIP-848 group checks the member epoch, answering ILLEGAL_GENERATION
//     where OffsetCommit answers STALE_MEMBER_EPOCH.
//   - Per partition: UNKNOWN_TOPIC_OR_PARTITION (Config.TopicExists),
//     OFFSET_METADATA_TOO_LARGE; the other partitions are written.
//   - Answered once the records are committed to the log and replayed.
//
// Version notes: v2 leader epoch; v3 generation, member and instance IDs
// (ignored below v3, as the fields do not exist there); v4-5 KIP-890
// (the broker verifies the partition is in the transaction before
// calling); v6 topic IDs — the broker resolves them into Topic before
// calling, and the response echoes both.
func (s *Shard) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	fail := func(code int16) *kmsg.TxnOffsetCommitResponse { return txnCommitResponse(req, everyPartition(code)) }
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.TxnOffsetCommitResponse)) {
		s.serial(req.Group, func() { s.handleTxnCommit(req, reply) })
	})
}

func txnCommitResponse(req *kmsg.TxnOffsetCommitRequest, code func(topic string, partition int32) int16) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = code(t.Topic, p.Partition)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Shard) handleTxnCommit(req *kmsg.TxnOffsetCommitRequest, reply func(*kmsg.TxnOffsetCommitResponse)) {
	respond := func(code func(topic string, partition int32) int16) { reply(txnCommitResponse(req, code)) }
	c := committer{generation: -1, transactional: true, version: req.Version}
	if req.Version >= 3 { // the member fields do not exist below v3
		c.generation, c.memberID, c.instanceID = req.Generation, req.MemberID, req.InstanceID
	}
	if code := s.validateCommit(req.Group, c); code != 0 {
		respond(everyPartition(code))
		return
	}

	now := s.nowMs()
	var offsets []requestedOffset
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			o := offsetEntry{offset: p.Offset, leaderEpoch: -1, metadata: deref(p.Metadata), commitTimestamp: now, expireTimestamp: -1}
			if req.Version >= 2 {
				o.leaderEpoch = p.LeaderEpoch
			}
			offsets = append(offsets, requestedOffset{topicPartition{t.Topic, p.Partition}, o})
		}
	}
	// Kafka marks a batch transactional exactly when it has a producer ID;
	// without one the offsets are a plain commit.
	producer := runtime.Producer{ID: req.ProducerID, Epoch: req.ProducerEpoch, Transactional: req.ProducerID >= 0}
	s.commitOffsets(req.Group, offsets, producer, respond)
}

// CompleteTransaction applies the end of producerID's transaction to this
// shard: on commit its pending offsets become the groups' committed offsets
// (each only if written after the offset it would replace — Kafka keeps the
// most recent record when transactional and plain commits mix), on abort
// they are dropped. The broker calls it right after appending the commit or
// abort marker to this shard's partition; it is the replay of that marker,
// and Load replays markers it meets in the log the same way.
//
// It first waits for writes already submitted to be replayed (a
// transactional commit whose append finished before the marker may not
// have been replayed yet), then applies the marker on the loop, and returns
// once it is applied or the shard closed. Called while the shard loads, it
// applies to what is loaded so far; Load meets the marker later and
// completes the rest (a second completion finds nothing pending).
func (s *Shard) CompleteTransaction(producerID int64, commit bool) {
	if s.loop.Flush() != nil {
		return
	}
	_ = s.loop.Do(context.Background(), func() { s.replayTxnMarker(producerID, commit) })
}

// txnState holds the offsets of open transactions, owned by the shard
// loop: Kafka's pendingTransactionalOffsets and openTransactionsByGroup.
// A group is in open[g] exactly while pending holds an offset of it for
// that producer.
type txnState struct {
	pending map[int64]map[string]map[topicPartition]offsetEntry // producer -> group -> partition
	open    map[string]map[int64]struct{}                       // group -> producers
}

func newTxnState() txnState {
	return txnState{
		pending: map[int64]map[string]map[topicPartition]offsetEntry{},
		open:    map[string]map[int64]struct{}{},
	}
}

func (t *txnState) add(producerID int64, groupID string, tp topicPartition, o offsetEntry) {
	byGroup := t.pending[producerID]
	if byGroup == nil {
		byGroup = map[string]map[topicPartition]offsetEntry{}
		t.pending[producerID] = byGroup
	}
	offs := byGroup[groupID]
	if offs == nil {
		offs = map[topicPartition]offsetEntry{}
		byGroup[groupID] = offs
	}
	offs[tp] = o
	if t.open[groupID] == nil {
		t.open[groupID] = map[int64]struct{}{}
	}
	t.open[groupID][producerID] = struct{}{}
}

// hasPending reports whether an open transaction wrote an offset for tp.
func (t *txnState) hasPending(groupID string, tp topicPartition) bool {
	for pid := range t.open[groupID] {
		if _, ok := t.pending[pid][groupID][tp]; ok {
			return true
		}
	}
	return false
}

func (t *txnState) groupHasPending(groupID string) bool { return len(t.open[groupID]) > 0 }

// partitions lists the partitions of a group that open transactions wrote.
func (t *txnState) partitions(groupID string) map[topicPartition]bool {
	out := map[topicPartition]bool{}
	for pid := range t.open[groupID] {
		for tp := range t.pending[pid][groupID] {
			out[tp] = true
		}
	}
	return out
}

// remove drops every open transaction's offset of tp: an offset tombstone
// deletes pending offsets too, as in Kafka.
func (t *txnState) remove(groupID string, tp topicPartition) {
	for pid := range t.open[groupID] {
		offs := t.pending[pid][groupID]
		delete(offs, tp)
		if len(offs) > 0 {
			continue
		}
		delete(t.pending[pid], groupID)
		if len(t.pending[pid]) == 0 {
			delete(t.pending, pid)
		}
		delete(t.open[groupID], pid)
	}
	if len(t.open[groupID]) == 0 {
		delete(t.open, groupID)
	}
}

// take removes and returns the offsets of producerID's transaction.
func (t *txnState) take(producerID int64) map[string]map[topicPartition]offsetEntry {
	byGroup := t.pending[producerID]
	delete(t.pending, producerID)
	for groupID := range byGroup {
		delete(t.open[groupID], producerID)
		if len(t.open[groupID]) == 0 {
			delete(t.open, groupID)
		}
	}
	return byGroup
}

// replayTxnOffset records an offset written by producerID's open
// transaction. The group is created (Empty, no protocol type) when
// unknown, as for a plain commit.
func (s *Shard) replayTxnOffset(producerID int64, groupID string, tp topicPartition, o offsetEntry) {
	if s.groups[groupID] == nil {
		s.groups[groupID] = newGroup(groupID, -1)
	}
	s.txn.add(producerID, groupID, tp, o)
}

// replayTxnMarker applies a commit or abort marker of producerID's
// transaction (Kafka's replayEndTransactionMarker). A marker with nothing
// pending is ignored.
func (s *Shard) replayTxnMarker(producerID int64, commit bool) {
	byGroup := s.txn.take(producerID)
	if len(byGroup) == 0 {
		s.logger.Debug("transaction marker with no pending offsets", "partition", s.partition, "producer_id", producerID, "commit", commit)
		return
	}
	ids := make([]string, 0, len(byGroup))
	for id := range byGroup {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		g := s.groups[id]
		if g == nil {
			g = newGroup(id, -1)
			s.groups[id] = g
		}
		if commit {
			for tp, o := range byGroup[id] {
				if cur, ok := g.offsets[tp]; ok && cur.recordOffset >= o.recordOffset {
					s.logger.Info("transactional offset commit superseded by a later commit", "partition", s.partition,
						"group", id, "topic", tp.topic, "topic_partition", tp.partition, "producer_id", producerID)
					continue
				}
				g.offsets[tp] = o
			}
		}
		s.maybeDrop(g)
	}
	s.logger.Debug("completed transactional offset commits", "partition", s.partition, "producer_id", producerID, "commit", commit, "groups", len(ids))
}

// offsetTombstones lists tombstones for every committed offset of g and
// every partition an open transaction wrote for it (one per partition),
// as Kafka's deleteAllOffsets does.
func (s *Shard) offsetTombstones(g *group) []runtime.Record {
	tps := sortedOffsets(g)
	var extra []topicPartition
	for tp := range s.txn.partitions(g.id) {
		if _, ok := g.offsets[tp]; !ok {
			extra = append(extra, tp)
		}
	}
	sortPartitions(extra)
	recs := make([]runtime.Record, 0, len(tps)+len(extra))
	for _, tp := range append(tps, extra...) {
		recs = append(recs, offsetTombstone(g.id, tp))
	}
	return recs
}
