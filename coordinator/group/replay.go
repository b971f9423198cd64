package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// replayOffset stores a committed offset, creating the group (Empty, no
// protocol type) when the group has no metadata, as Kafka does for groups
// that only store offsets.
func (s *Shard) replayOffset(groupID string, tp topicPartition, o offsetEntry) {
	g := s.groups[groupID]
	if g == nil {
		g = newGroup(groupID, -1)
		s.groups[groupID] = g
	}
	g.offsets[tp] = o
}

// replayOffsetTombstone deletes a committed offset and, as in Kafka, any
// offset open transactions wrote for the partition.
func (s *Shard) replayOffsetTombstone(groupID string, tp topicPartition) {
	s.txn.remove(groupID, tp)
	g := s.groups[groupID]
	if g == nil {
		return
	}
	delete(g.offsets, tp)
	s.maybeDrop(g)
}

// replayGroupTombstone forgets a group's stored metadata. Its offsets have
// their own records; a group left with neither members nor offsets is gone.
func (s *Shard) replayGroupTombstone(groupID string) {
	g := s.groups[groupID]
	if g == nil {
		return
	}
	g.hasStored = false
	if len(g.members) > 0 {
		return // a live generation newer than the deleted metadata
	}
	if g.state != stateDead {
		g.generation, g.protocolType, g.protocol, g.leader = 0, "", "", ""
		g.subscribed, g.subscribedKnown = nil, false
	}
	s.maybeDrop(g)
}

// maybeDrop removes a group that holds nothing any more: no members or
// pending members, no offsets, commits in flight or offsets of open
// transactions, no stored metadata.
func (s *Shard) maybeDrop(g *group) {
	if (g.state != stateEmpty && g.state != stateDead) || len(g.members) > 0 || len(g.pending) > 0 ||
		len(g.offsets) > 0 || len(g.pendingCommits) > 0 || g.hasStored || g.cg != nil || s.txn.groupHasPending(g.id) {
		return
	}
	if s.groups[g.id] == g {
		s.stopGroupTimers(g)
		g.state = stateDead
		delete(s.groups, g.id)
	}
}

// replayGroupMetadata applies a stored generation. Three cases:
//   - the group is completing the rebalance of exactly this generation:
//     the leader's assignment is now durable, so members take their
//     assignments and the group becomes Stable;
//   - the group is at rest (Empty or Stable, or unknown — always the case
//     while loading) at this or an older generation: the group is rebuilt
//     from the record, keeping the live fields of members it still has;
//   - otherwise the live group has moved on (a rebalance began while the
//     record was being written): memory keeps the newer state.
func (s *Shard) replayGroupMetadata(groupID string, v *kmsg.GroupMetadataValue) {
	g := s.groups[groupID]
	if g == nil {
		g = newGroup(groupID, -1)
		s.groups[groupID] = g
	}
	if g.cg != nil {
		// The log switched the group back to the classic protocol
		// (normally after tombstoning the consumer group's records).
		s.logger.Info("classic group metadata replaces a consumer group", "partition", s.partition, "group", groupID)
		stopConsumerTimers(g.cg)
		g.cg = nil
	}
	g.hasStored = true
	switch {
	case g.is(stateCompletingRebalance) && g.generation == v.Generation:
		for _, rm := range v.Members {
			if m := g.members[rm.MemberID]; m != nil {
				m.assignment = rm.Assignment
			}
		}
		g.transition(stateStable, s.nowMs())
	case (g.is(stateEmpty) || g.is(stateStable)) && len(g.pending) == 0 && g.numAwaiting == 0 && v.Generation >= g.generation:
		s.rebuildGroup(g, v)
	default:
		s.logger.Debug("group metadata record for a generation the live group moved past",
			"partition", s.partition, "group", groupID, "generation", v.Generation, "live_generation", g.generation)
	}
}

func (s *Shard) rebuildGroup(g *group, v *kmsg.GroupMetadataValue) {
	g.generation = v.Generation
	g.protocolType = v.ProtocolType
	g.protocol = deref(v.Protocol)
	g.leader = deref(v.Leader)
	g.stateTime = v.CurrentStateTimestamp
	if v.Version < 2 {
		g.stateTime = -1
	}
	old := g.members
	g.members = make(map[string]*member, len(v.Members))
	g.order = g.order[:0]
	g.static = map[string]string{}
	g.supported = map[string]int{}
	g.pendingSync = map[string]bool{}
	for _, rm := range v.Members {
		m := old[rm.MemberID]
		if m == nil {
			m = &member{id: rm.MemberID, protocolType: v.ProtocolType}
			if s.loop.Loaded() {
				defer s.scheduleHeartbeat(g, m)
			}
		}
		delete(old, rm.MemberID)
		m.instanceID = deref(rm.InstanceID)
		m.clientID = rm.ClientID
		m.clientHost = rm.ClientHost
		m.rebalanceTimeoutMs = rm.RebalanceTimeoutMillis
		if v.Version < 1 || m.rebalanceTimeoutMs < 0 {
			m.rebalanceTimeoutMs = rm.SessionTimeoutMillis
		}
		m.sessionTimeoutMs = rm.SessionTimeoutMillis
		m.assignment = rm.Assignment
		if string(m.metadata(g.protocol)) != string(rm.Subscription) || m.protocolType != v.ProtocolType {
			m.protocolType = v.ProtocolType
			m.protocols = []protocol{{name: g.protocol, metadata: rm.Subscription}}
		}
		g.members[m.id] = m
		g.order = append(g.order, m.id)
		if m.instanceID != "" {
			g.static[m.instanceID] = m.id
		}
		for _, p := range m.protocols {
			g.supported[p.name]++
		}
	}
	for _, m := range old {
		stopMemberTimer(m)
	}
	if g.leader != "" && g.members[g.leader] == nil {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
	if len(g.members) > 0 {
		g.state = stateStable
	} else {
		g.state = stateEmpty
	}
	g.computeSubscribedTopics()
}

// scheduleHeartbeat (re)starts a member's session deadline: Kafka's
// completeAndScheduleNextHeartbeatExpiration. New members awaiting their
// first join get NewMemberJoinTimeout instead.
func (s *Shard) scheduleHeartbeat(g *group, m *member) {
	d := time.Duration(m.sessionTimeoutMs) * time.Millisecond
	if m.isNew {
		d = s.cfg.NewMemberJoinTimeout
	}
	stopMemberTimer(m)
	tok := m.hbToken
	m.hbTimer = s.loop.After(d, func() {
		if s.groups[g.id] != g || g.members[m.id] != m || m.hbToken != tok {
			return
		}
		s.onHeartbeatExpired(g, m)
	})
}

// onHeartbeatExpired: a member waiting in JoinGroup or SyncGroup is alive
// by definition (unless it is a new member past its join timeout); any
// other member missed its session and leaves the group.
func (s *Shard) onHeartbeatExpired(g *group, m *member) {
	if g.is(stateDead) {
		return
	}
	if !m.isNew && (m.joinReply != nil || m.syncReply != nil) {
		s.scheduleHeartbeat(g, m)
		return
	}
	s.logger.Info("group member failed (session expired), removing it", "partition", s.partition, "group", g.id, "member", m.id)
	s.removeMemberAndUpdateGroup(g, m, "session expired")
}
