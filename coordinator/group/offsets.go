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
	fail := func(code int16) *kmsg.OffsetCommitResponse {
		return commitResponse(req, func(string, int32) int16 { return code })
	}
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
	all := func(code int16) { reply(commitResponse(req, func(string, int32) int16 { return code })) }
	if code := s.loop.Ready(); code != 0 {
		all(code)
		return
	}
	g := s.groups[req.Group]
	if g == nil {
		if req.Generation >= 0 {
			if req.Version >= 9 {
				all(kerr.GroupIDNotFound.Code)
			} else {
				all(errIllegalGeneration)
			}
			return
		}
	} else if g.cg != nil {
		if code := validateConsumerCommit(g.cg, req); code != 0 {
			all(code)
			return
		}
	} else if code := s.validateOffsetCommit(g, req); code != 0 {
		all(code)
		return
	}
	if g != nil {
		if m := g.members[req.MemberID]; m != nil && (g.is(stateStable) || g.is(statePreparingRebalance)) {
			s.scheduleHeartbeat(g, m)
		}
	}

	now := s.nowMs()
	codes := map[topicPartition]int16{}
	var recs []runtime.Record
	var written []topicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := topicPartition{t.Topic, p.Partition}
			if s.cfg.TopicExists != nil && !s.cfg.TopicExists(t.Topic, p.Partition) {
				codes[tp] = kerr.UnknownTopicOrPartition.Code
				continue
			}
			md := deref(p.Metadata)
			if len(md) > s.cfg.OffsetMetadataMaxBytes {
				codes[tp] = kerr.OffsetMetadataTooLarge.Code
				continue
			}
			o := offsetEntry{offset: p.Offset, leaderEpoch: -1, metadata: md, commitTimestamp: now, expireTimestamp: -1}
			if req.Version >= 6 {
				o.leaderEpoch = p.LeaderEpoch
			}
			if req.Version == 1 && p.Timestamp != -1 {
				o.commitTimestamp = p.Timestamp
			}
			if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis != -1 {
				o.expireTimestamp = o.commitTimestamp + req.RetentionTimeMillis
			}
			recs = append(recs, offsetRecord(req.Group, tp, o))
			written = append(written, tp)
		}
	}
	respond := func(writeCode int16) {
		reply(commitResponse(req, func(topic string, partition int32) int16 {
			if c, ok := codes[topicPartition{topic, partition}]; ok {
				return c
			}
			return writeCode
		}))
	}
	if len(recs) == 0 {
		respond(0)
		return
	}
	s.markPending(req.Group, written, 1)
	s.write(recs, true, func(code int16) {
		s.markPending(req.Group, written, -1)
		respond(code)
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

// validateOffsetCommit is Kafka's ClassicGroup.validateOffsetCommit for a
// non-transactional commit.
func (s *Shard) validateOffsetCommit(g *group, req *kmsg.OffsetCommitRequest) int16 {
	if g.is(stateDead) {
		return errCoordinatorNotAvailable
	}
	if req.Generation < 0 && g.is(stateEmpty) {
		return 0
	}
	if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil {
		if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
			return code
		}
		if req.Generation != g.generation {
			return errIllegalGeneration
		}
	} else if !g.is(stateEmpty) {
		return errUnknownMemberID
	}
	if g.is(stateCompletingRebalance) {
		return errRebalanceInProgress
	}
	return 0
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
