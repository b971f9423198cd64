package group

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// OffsetCommit: v0-10
//
// Behavior:
//   - A member commits with its member ID and generation (UNKNOWN_MEMBER_ID,
//     FENCED_INSTANCE_ID, ILLEGAL_GENERATION otherwise); during
//     CompletingRebalance it gets REBALANCE_IN_PROGRESS; during
//     PreparingRebalance the commit is accepted, as in Kafka.
//   - Generation -1 with no member ID is a simple commit, accepted only when
//     the group is Empty or unknown (then it creates the group); a commit
//     with a generation to an unknown group gets ILLEGAL_GENERATION
//     (GROUP_ID_NOT_FOUND from v9).
//   - Metadata over offset.metadata.max.bytes: OFFSET_METADATA_TOO_LARGE for
//     that partition; the others are written.
//   - Answered once the offset records are committed.
//
// Version notes: v1 per-partition commit timestamp; v2-4 retention time
// (stored as an expire timestamp, value version 1); v6 leader epoch; v7
// group.instance.id; v10 topic IDs — the broker resolves them into Topic
// before calling, and the response echoes both.
func (s *Shard) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	fail := func(code int16) *kmsg.OffsetCommitResponse { return commitResponse(req, everyPartition(code)) }
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.OffsetCommitResponse)) {
		s.serial(req.Group, func() { s.handleCommit(req, reply) })
	})
}

func commitResponse(req *kmsg.OffsetCommitRequest, code func(topic string, partition int32) int16) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = code(t.Topic, p.Partition)
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (s *Shard) handleCommit(req *kmsg.OffsetCommitRequest, reply func(*kmsg.OffsetCommitResponse)) {
	respond := func(code func(topic string, partition int32) int16) { reply(commitResponse(req, code)) }
	c := committer{generation: req.Generation, memberID: req.MemberID, instanceID: req.InstanceID, version: req.Version}
	if code := s.validateCommit(req.Group, c); code != 0 {
		respond(everyPartition(code))
		return
	}
	if g := s.groups[req.Group]; g != nil {
		if m := g.members[req.MemberID]; m != nil && (g.is(stateStable) || g.is(statePreparingRebalance)) {
			s.scheduleHeartbeat(g, m)
		}
	}

	now := s.nowMs()
	var offsets []requestedOffset
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			o := offsetEntry{offset: p.Offset, leaderEpoch: -1, metadata: deref(p.Metadata), commitTimestamp: now, expireTimestamp: -1}
			if req.Version >= 6 {
				o.leaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 && p.Timestamp != -1 {
				o.commitTimestamp = p.Timestamp
			}
			if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis != -1 {
				o.expireTimestamp = o.commitTimestamp + req.RetentionTimeMillis
			}
			offsets = append(offsets, requestedOffset{topicPartition{t.Topic, p.Partition}, o})
		}
	}
	s.commitOffsets(req.Group, offsets, runtime.NoProducer, respond)
}

// everyPartition answers every partition of a commit with the same code:
// a commit refused as a whole is answered per partition, as in Kafka.
func everyPartition(code int16) func(topic string, partition int32) int16 {
	return func(string, int32) int16 { return code }
}

// committer is who sends an OffsetCommit or TxnOffsetCommit, as Kafka's
// validateOffsetCommit takes it; one set of checks serves both APIs, the
// transactional one being more lenient.
type committer struct {
	generation    int32 // the member epoch in a KIP-848 group; -1 for none
	memberID      string
	instanceID    *string
	transactional bool
	version       int16 // of the request
}

// validateCommit is the check of an offset commit as a whole, before any
// partition: the shard must be loaded and the group must accept the
// committer. An unknown group accepts a commit without a generation (the
// write creates the group); with one, OffsetCommit v9+ answers
// GROUP_ID_NOT_FOUND and older versions and TxnOffsetCommit answer
// ILLEGAL_GENERATION.
func (s *Shard) validateCommit(groupID string, c committer) int16 {
	if code := s.loop.Ready(); code != 0 {
		return code
	}
	switch g := s.groups[groupID]; {
	case g == nil:
		switch {
		case c.generation < 0:
			return 0
		case !c.transactional && c.version >= 9:
			return kerr.GroupIDNotFound.Code
		default:
			return errIllegalGeneration
		}
	case g.cg != nil:
		return validateConsumerCommit(g.cg, c)
	default:
		return g.validateOffsetCommit(c)
	}
}

// validateOffsetCommit is Kafka's ClassicGroup.validateOffsetCommit. A
// transactional commit names its member only from TxnOffsetCommit v3, so
// the member is checked only when one is named, and the commit is accepted
// during CompletingRebalance.
func (g *group) validateOffsetCommit(c committer) int16 {
	if g.is(stateDead) {
		return errCoordinatorNotAvailable
	}
	if c.generation < 0 && g.is(stateEmpty) {
		return 0
	}
	if c.generation >= 0 || c.memberID != "" || c.instanceID != nil {
		if code := g.validateMember(c.memberID, c.instanceID); code != 0 {
			return code
		}
		if c.generation != g.generation {
			return errIllegalGeneration
		}
	} else if !c.transactional && !g.is(stateEmpty) {
		return errUnknownMemberID
	}
	if !c.transactional && g.is(stateCompletingRebalance) {
		return errRebalanceInProgress
	}
	return 0
}

// requestedOffset is one partition's offset as a commit request asks to
// store it.
type requestedOffset struct {
	tp    topicPartition
	entry offsetEntry
}

// commitOffsets writes the offsets of a commit that passed validateCommit
// as one batch from producer, and answers each partition through respond:
// UNKNOWN_TOPIC_OR_PARTITION (Config.TopicExists) or
// OFFSET_METADATA_TOO_LARGE for a partition refused, the write's result
// for the others, which are written all the same.
func (s *Shard) commitOffsets(groupID string, offsets []requestedOffset, producer runtime.Producer, respond func(code func(topic string, partition int32) int16)) {
	refused := map[topicPartition]int16{}
	var recs []runtime.Record
	var written []topicPartition
	for _, ro := range offsets {
		switch {
		case s.cfg.TopicExists != nil && !s.cfg.TopicExists(ro.tp.topic, ro.tp.partition):
			refused[ro.tp] = kerr.UnknownTopicOrPartition.Code
		case len(ro.entry.metadata) > s.cfg.OffsetMetadataMaxBytes:
			refused[ro.tp] = kerr.OffsetMetadataTooLarge.Code
		default:
			recs = append(recs, offsetRecord(groupID, ro.tp, ro.entry))
			written = append(written, ro.tp)
		}
	}
	answer := func(writeCode int16) {
		respond(func(topic string, partition int32) int16 {
			if code, ok := refused[topicPartition{topic, partition}]; ok {
				return code
			}
			return writeCode
		})
	}
	if len(recs) == 0 {
		answer(0)
		return
	}
	s.markPending(groupID, written, 1)
	s.writeAs(recs, producer, true, func(code int16) {
		s.markPending(groupID, written, -1)
		answer(code)
	})
}

// markPending counts commits between append and replay: expiry and
// deletion leave those partitions alone, and require_stable fetches see
// them as unstable.
func (s *Shard) markPending(groupID string, tps []topicPartition, delta int) {
	g := s.groups[groupID]
	if g == nil {
		if delta < 0 {
			return
		}
		g = newGroup(groupID, s.nowMs())
		s.groups[groupID] = g
	}
	for _, tp := range tps {
		if n := g.pendingCommits[tp] + delta; n > 0 {
			g.pendingCommits[tp] = n
		} else {
			delete(g.pendingCommits, tp)
		}
	}
	if delta < 0 {
		s.maybeDrop(g)
	}
}

// OffsetFetch answers one group (the v8+ batched shape; the broker adapts
// v0-7). Partitions without a commit, and unknown groups, answer offset -1,
// leader epoch -1, empty metadata and no error. Null topics mean every
// committed partition (offsets only pending in a transaction are not
// listed). Offsets of open transactions are never returned: without
// requireStable a partition answers its last committed offset; with it
// (v7+), a partition with an offset pending in an open transaction, or a
// commit still being written, answers UNSTABLE_OFFSET_COMMIT with offset
// -1. As in Kafka the group-level error stays NONE; clients retry the
// unstable partitions.
func (s *Shard) OffsetFetch(ctx context.Context, req kmsg.OffsetFetchRequestGroup, requireStable bool) kmsg.OffsetFetchResponseGroup {
	fail := func(code int16) kmsg.OffsetFetchResponseGroup {
		r := kmsg.NewOffsetFetchResponseGroup()
		r.Group = req.Group
		r.ErrorCode = code
		return r
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(kmsg.OffsetFetchResponseGroup)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		if g := s.groups[req.Group]; g != nil && g.cg != nil {
			if code := validateConsumerFetch(g.cg, req); code != 0 {
				reply(fail(code))
				return
			}
		}
		reply(s.fetchOffsets(req, requireStable))
	})
}

func (s *Shard) fetchOffsets(req kmsg.OffsetFetchRequestGroup, requireStable bool) kmsg.OffsetFetchResponseGroup {
	resp := kmsg.NewOffsetFetchResponseGroup()
	resp.Group = req.Group
	g := s.groups[req.Group]
	if g != nil && g.is(stateDead) {
		g = nil
	}
	topics := req.Topics
	if topics == nil && g != nil {
		byTopic := map[string][]int32{}
		for tp := range g.offsets {
			byTopic[tp.topic] = append(byTopic[tp.topic], tp.partition)
		}
		names := make([]string, 0, len(byTopic))
		for t := range byTopic {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			ps := byTopic[t]
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic = t
			rt.Partitions = ps
			topics = append(topics, rt)
		}
	}
	resp.Topics = []kmsg.OffsetFetchResponseGroupTopic{}
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic = t.Topic
		rt.TopicID = t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition = p
			rp.Offset = -1
			rp.LeaderEpoch = -1
			md := ""
			rp.Metadata = &md
			if g != nil {
				tp := topicPartition{t.Topic, p}
				if requireStable && (g.pendingCommits[tp] > 0 || s.txn.hasPending(g.id, tp)) {
					rp.ErrorCode = kerr.UnstableOffsetCommit.Code
				} else if o, ok := g.offsets[tp]; ok {
					rp.Offset = o.offset
					rp.LeaderEpoch = o.leaderEpoch
					omd := o.metadata
					rp.Metadata = &omd
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// OffsetDelete: v0
//
// Behavior (KIP-496): deletes committed offsets of an Empty group, or of
// topics a consumer group is not subscribed to (GROUP_SUBSCRIBED_TO_TOPIC
// for the others); NON_EMPTY_GROUP for a non-consumer group with members;
// GROUP_ID_NOT_FOUND for an unknown group. An Empty group left without
// offsets is deleted.
func (s *Shard) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	fail := func(code int16) *kmsg.OffsetDeleteResponse {
		r := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		r.ErrorCode = code
		return r
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.OffsetDeleteResponse)) {
		s.handleOffsetDelete(req, fail, reply)
	})
}

func (s *Shard) handleOffsetDelete(req *kmsg.OffsetDeleteRequest, fail func(int16) *kmsg.OffsetDeleteResponse, reply func(*kmsg.OffsetDeleteResponse)) {
	if code := s.loop.Ready(); code != 0 {
		reply(fail(code))
		return
	}
	g := s.groups[req.Group]
	if g == nil || g.is(stateDead) {
		reply(fail(kerr.GroupIDNotFound.Code))
		return
	}
	if !g.is(stateEmpty) && g.protocolType != consumerProtocolType && g.cg == nil {
		reply(fail(kerr.NonEmptyGroup.Code))
		return
	}
	resp := fail(0)
	var recs []runtime.Record
	committed := 0
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		subscribed := !g.is(stateEmpty) && g.isSubscribedToTopic(t.Topic)
		if g.cg != nil {
			subscribed = s.subscribedTo(g.cg, t.Topic)
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			tp := topicPartition{t.Topic, p.Partition}
			switch {
			case s.cfg.TopicExists != nil && !s.cfg.TopicExists(t.Topic, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case subscribed:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				// Kafka also tombstones a partition only written by an
				// open transaction, deleting the pending offset.
				if _, ok := g.offsets[tp]; (ok || s.txn.hasPending(g.id, tp)) && g.pendingCommits[tp] == 0 {
					recs = append(recs, offsetTombstone(g.id, tp))
					if ok {
						committed++
					}
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(recs) == 0 {
		reply(resp)
		return
	}
	if g.cg == nil && g.is(stateEmpty) && committed == len(g.offsets) && len(g.pendingCommits) == 0 && !s.txn.groupHasPending(g.id) &&
		(g.hasStored || g.generation > 0) {
		recs = append(recs, groupTombstone(g.id))
	}
	s.write(recs, true, func(code int16) {
		if code != 0 {
			reply(fail(code))
			return
		}
		reply(resp)
	})
}
