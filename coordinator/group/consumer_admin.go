package group

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// ConsumerGroupDescribe describes one KIP-848 group (ConsumerGroupDescribe
// v0-1): state, group and assignment epochs, assignor, and each member with
// its current and target assignments (topic names resolved from the
// cluster's topics; partitions of unknown topics are left out, as in
// Kafka). An unknown group answers GROUP_ID_NOT_FOUND "Group X not found.",
// a classic group GROUP_ID_NOT_FOUND "Group X is not a consumer group.".
// Version notes: v1 adds the member type (1: consumer protocol).
func (s *Shard) ConsumerGroupDescribe(ctx context.Context, groupID string, includeAuthorizedOps bool) kmsg.ConsumerGroupDescribeResponseGroup {
	fail := func(code int16) kmsg.ConsumerGroupDescribeResponseGroup {
		r := kmsg.NewConsumerGroupDescribeResponseGroup()
		r.Group = groupID
		r.ErrorCode = code
		return r
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(kmsg.ConsumerGroupDescribeResponseGroup)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		s.serial(groupID, func() { reply(s.describeConsumer(groupID, includeAuthorizedOps, fail)) })
	})
}

func (s *Shard) describeConsumer(groupID string, includeAuthorizedOps bool, fail func(int16) kmsg.ConsumerGroupDescribeResponseGroup) kmsg.ConsumerGroupDescribeResponseGroup {
	g := s.groups[groupID]
	if g == nil || g.cg == nil || g.is(stateDead) {
		r := fail(kerr.GroupIDNotFound.Code)
		msg := fmt.Sprintf("Group %s not found.", groupID)
		if g != nil && g.cg == nil && !g.is(stateDead) {
			msg = fmt.Sprintf("Group %s is not a consumer group.", groupID)
		}
		r.ErrorMessage = &msg
		return r
	}
	cg := g.cg
	r := fail(0)
	if includeAuthorizedOps {
		r.AuthorizedOperations = groupAuthorizedOperations
	}
	r.State = cg.state()
	r.Epoch = cg.epoch
	r.AssignmentEpoch = cg.assignmentEpoch
	r.AssignorName = s.preferredAssignor(cg.members)
	names := map[[16]byte]string{}
	for _, t := range cg.subMeta {
		names[t.ID] = t.Name
	}
	for _, t := range s.topicIndex() {
		names[t.ID] = t.Name
	}
	toAssignment := func(set partSet) kmsg.Assignment {
		a := kmsg.NewAssignment()
		a.TopicPartitions = []kmsg.AssignmentTopicPartition{}
		for _, tp := range set.byTopic() {
			name, ok := names[tp.id]
			if !ok {
				continue
			}
			at := kmsg.NewAssignmentTopicPartition()
			at.TopicID, at.Topic, at.Partitions = tp.id, name, tp.parts
			a.TopicPartitions = append(a.TopicPartitions, at)
		}
		return a
	}
	r.Members = []kmsg.ConsumerGroupDescribeResponseGroupMember{}
	for _, id := range cg.sortedMemberIDs() {
		m := cg.members[id]
		dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
		dm.MemberID = m.id
		dm.InstanceID = m.instanceID
		dm.RackID = m.rackID
		dm.MemberEpoch = m.epoch
		dm.ClientID = m.clientID
		dm.ClientHost = m.clientHost
		dm.SubscribedTopics = append([]string{}, m.topicNames...)
		dm.SubscribedTopicRegex = m.regex
		dm.Assignment = toAssignment(m.assigned)
		target := cg.target[id]
		if target == nil {
			target = partSet{}
		}
		dm.TargetAssignment = toAssignment(target)
		dm.MemberType = 1
		r.Members = append(r.Members, dm)
	}
	return r
}

// validateConsumerCommit is Kafka's ConsumerGroup.validateOffsetCommit:
// epoch -1 commits are accepted while the group is empty, and so is a
// transactional commit that names no member; otherwise the member must
// exist (UNKNOWN_MEMBER_ID), a plain commit must come with OffsetCommit v9+
// (UNSUPPORTED_VERSION), and the commit must be at the member's current
// epoch: STALE_MEMBER_EPOCH, or ILLEGAL_GENERATION for a transactional
// commit (TxnOffsetCommit clients do not know the former). The generation
// field carries the member epoch.
func validateConsumerCommit(cg *consumerGroup, c committer) int16 {
	if c.generation < 0 && len(cg.members) == 0 {
		return 0
	}
	if c.transactional && c.generation == -1 && c.memberID == "" && c.instanceID == nil {
		return 0
	}
	m := cg.members[c.memberID]
	if m == nil {
		return errUnknownMemberID
	}
	if !c.transactional && c.version < 9 {
		return kerr.UnsupportedVersion.Code
	}
	if c.generation != m.epoch {
		if c.transactional {
			return errIllegalGeneration
		}
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

// validateConsumerFetch is Kafka's ConsumerGroup.validateOffsetFetch
// (OffsetFetch v9+ carries the member ID and epoch): requests without a
// member (admin clients) pass; a member must exist and be at its epoch.
func validateConsumerFetch(cg *consumerGroup, req kmsg.OffsetFetchRequestGroup) int16 {
	if req.MemberID == nil && req.MemberEpoch < 0 {
		return 0
	}
	m := cg.members[deref(req.MemberID)]
	if m == nil {
		return errUnknownMemberID
	}
	if req.MemberEpoch != m.epoch {
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}

// listConsumerGroup is a consumer group's ListGroups entry.
func listConsumerGroup(g *group) kmsg.ListGroupsResponseGroup {
	lg := kmsg.NewListGroupsResponseGroup()
	lg.Group = g.id
	lg.ProtocolType = consumerProtocolType
	lg.GroupState = g.cg.state()
	lg.GroupType = "consumer"
	return lg
}

// deleteConsumerGroup deletes an empty consumer group: tombstones for its
// offsets, its KIP-848 records and any classic metadata left behind.
// NON_EMPTY_GROUP while it has members.
func (s *Shard) deleteConsumerGroup(g *group, reply func(int16)) {
	if len(g.cg.members) > 0 {
		reply(kerr.NonEmptyGroup.Code)
		return
	}
	recs := append(s.offsetTombstones(g), cgGroupTombstones(g.id, g.cg)...)
	if g.hasStored {
		recs = append(recs, groupTombstone(g.id))
	}
	s.stopGroupTimers(g)
	g.transition(stateDead, s.nowMs())
	s.writeSerial(g.id, recs, func(code int16) {
		if code != 0 {
			if s.groups[g.id] == g && g.is(stateDead) {
				g.transition(stateEmpty, s.nowMs())
			}
		} else {
			s.maybeDrop(g)
		}
		reply(code)
	})
}

// consumerOffsetsToExpire lists the offsets of a consumer group that have
// passed the retention: by commit time, except topics a member is
// subscribed to (Kafka's ConsumerGroup offset expiration condition).
func (s *Shard) consumerOffsetsToExpire(g *group, now, retention int64) []topicPartition {
	var out []topicPartition
	for _, tp := range sortedOffsets(g) {
		o := g.offsets[tp]
		if s.subscribedTo(g.cg, tp.topic) || g.pendingCommits[tp] > 0 || s.txn.hasPending(g.id, tp) {
			continue
		}
		if (o.expireTimestamp >= 0 && now >= o.expireTimestamp) || (o.expireTimestamp < 0 && now-o.commitTimestamp >= retention) {
			out = append(out, tp)
		}
	}
	return out
}

// expireConsumerGroup expires a consumer group's offsets and deletes the
// group once it is empty and holds no offsets.
func (s *Shard) expireConsumerGroup(g *group, now, retention int64) {
	if _, busy := s.busy[g.id]; busy {
		return // next round
	}
	expired := s.consumerOffsetsToExpire(g, now, retention)
	var recs []runtime.Record
	for _, tp := range expired {
		recs = append(recs, offsetTombstone(g.id, tp))
	}
	if len(g.cg.members) == 0 && len(expired) == len(g.offsets) && len(g.pendingCommits) == 0 && !s.txn.groupHasPending(g.id) {
		s.logger.Info("consumer group is empty and has no offsets left, removing it", "partition", s.partition, "group", g.id, "group_epoch", g.cg.epoch)
		s.deleteConsumerGroup(g, func(int16) {})
		return
	}
	if len(recs) == 0 {
		return
	}
	s.logger.Info("expiring committed offsets", "partition", s.partition, "group", g.id, "offsets", len(expired))
	s.write(recs, true, func(int16) {})
}

// joinConsumerGroup handles a JoinGroup naming a consumer group. Kafka 4
// can let classic-protocol members join a consumer group (online
// migration, KIP-848); kbroker does not: a consumer group with members
// answers INCONSISTENT_GROUP_PROTOCOL, and an empty one is deleted (its
// KIP-848 records tombstoned, its offsets kept) so the join proceeds on a
// classic group, as Kafka converts an empty group.
func (s *Shard) joinConsumerGroup(g *group, req *kmsg.JoinGroupRequest, client clientInfo, reply func(joinResult)) {
	if len(g.cg.members) > 0 {
		reply(joinError(req.MemberID, errInconsistentGroupProtocol))
		return
	}
	s.writeSerial(g.id, cgGroupTombstones(g.id, g.cg), func(code int16) {
		if code != 0 {
			reply(joinError(req.MemberID, code))
			return
		}
		s.handleJoin(req, client, reply) // runs once this write is released
	})
}
