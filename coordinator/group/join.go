package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// JoinGroup: v0-9
//
// Behavior (Kafka's classic GroupCoordinator):
//   - v4+ dynamic members joining with an empty member ID get
//     MEMBER_ID_REQUIRED and a generated ID to rejoin with (KIP-394);
//     static members (group.instance.id, v5+) never do.
//   - The first rebalance of an Empty group waits
//     group.initial.rebalance.delay.ms, extended while new members keep
//     arriving, up to the rebalance timeout.
//   - A rebalance completes when every member rejoined (and no KIP-394
//     member is pending) or the rebalance timeout passed; dynamic members
//     that did not rejoin are removed.
//   - A static member rejoining with a new member ID replaces its old ID;
//     in a Stable group whose selected protocol would not change, without a
//     rebalance (the new ID is persisted first).
//
// Version notes: v0 has no rebalance timeout (the session timeout serves);
// v7+ carries protocol type and name (nullable); v9 SkipAssignment.
func (s *Shard) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	client := clientFrom(ctx)
	fail := func(code int16) *kmsg.JoinGroupResponse {
		return joinResponse(req, joinResult{code: code, memberID: req.MemberID, generation: -1})
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.JoinGroupResponse)) {
		s.handleJoin(req, client, func(r joinResult) { reply(joinResponse(req, r)) })
	})
}

func joinResponse(req *kmsg.JoinGroupRequest, r joinResult) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = r.code
	resp.Generation = r.generation
	resp.MemberID = r.memberID
	resp.LeaderID = r.leader
	resp.Members = r.members
	if resp.Members == nil {
		resp.Members = []kmsg.JoinGroupResponseMember{}
	}
	if req.Version >= 7 {
		resp.ProtocolType = optString(r.protocolType)
		resp.Protocol = optString(r.protocol)
	} else {
		p := r.protocol
		resp.Protocol = &p
	}
	if req.Version >= 9 {
		resp.SkipAssignment = r.skipAssignment
	}
	return resp
}

func joinError(memberID string, code int16) joinResult {
	return joinResult{code: code, memberID: memberID, generation: -1}
}

func (s *Shard) handleJoin(req *kmsg.JoinGroupRequest, client clientInfo, reply func(joinResult)) {
	if req.Group == "" {
		reply(joinError(req.MemberID, errInvalidGroupID))
		return
	}
	if code := s.loop.Ready(); code != 0 {
		reply(joinError(req.MemberID, code))
		return
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < s.cfg.MinSessionTimeout || session > s.cfg.MaxSessionTimeout {
		reply(joinError(req.MemberID, kerr.InvalidSessionTimeout.Code))
		return
	}
	rebalanceMs := req.RebalanceTimeoutMillis
	if req.Version == 0 || rebalanceMs <= 0 {
		rebalanceMs = req.SessionTimeoutMillis
	}
	unknown := req.MemberID == ""
	if _, busy := s.busy[req.Group]; busy {
		s.serial(req.Group, func() { s.handleJoin(req, client, reply) })
		return
	}
	g := s.groups[req.Group]
	if g != nil && g.cg != nil {
		s.joinConsumerGroup(g, req, client, reply)
		return
	}
	if g == nil {
		if !unknown {
			reply(joinError(req.MemberID, errUnknownMemberID))
			return
		}
		g = newGroup(req.Group, s.nowMs())
		s.groups[req.Group] = g
	}
	if !s.acceptJoiningMember(g, req.MemberID) {
		if m := g.members[req.MemberID]; m != nil {
			s.removeMemberAndUpdateGroup(g, m, "group is full")
		}
		reply(joinError("", kerr.GroupMaxSizeReached.Code))
		s.maybeDrop(g)
		return
	}
	j := joinRequest{req: req, rebalanceMs: rebalanceMs, clientID: client.id, clientHost: client.host, reply: reply}
	if unknown {
		s.joinNewMember(g, j)
	} else {
		s.joinCurrentMember(g, j)
	}
	if g.is(statePreparingRebalance) {
		s.tryCompleteJoin(g)
	}
	s.maybeDrop(g)
}

// joinRequest carries a JoinGroup through the handlers.
type joinRequest struct {
	req         *kmsg.JoinGroupRequest
	rebalanceMs int32
	clientID    string
	clientHost  string
	reply       func(joinResult)
}

// acceptJoiningMember is Kafka's group.max.size gate: while preparing a
// rebalance only members already rejoined, or up to max size awaiting,
// are accepted; otherwise known members or up to max size.
func (s *Shard) acceptJoiningMember(g *group, memberID string) bool {
	switch g.state {
	case stateEmpty, stateDead:
		return true
	case statePreparingRebalance:
		m := g.members[memberID]
		return (m != nil && m.joinReply != nil) || g.numAwaiting < s.cfg.MaxSize
	default:
		return g.members[memberID] != nil || len(g.members) < s.cfg.MaxSize
	}
}

func (s *Shard) joinNewMember(g *group, j joinRequest) {
	req := j.req
	switch {
	case g.is(stateDead):
		j.reply(joinError(req.MemberID, errCoordinatorNotAvailable))
		return
	case !g.supportsProtocols(req.ProtocolType, req.Protocols):
		j.reply(joinError(req.MemberID, errInconsistentGroupProtocol))
		return
	}
	newID := newMemberID(j.clientID, req.InstanceID)
	if req.InstanceID != nil {
		if old, ok := g.static[*req.InstanceID]; ok {
			s.logger.Info("static member rejoined with an unknown member ID, replacing its old member ID",
				"partition", s.partition, "group", g.id, "instance", *req.InstanceID, "old_member", old, "member", newID)
			s.updateStaticMemberAndRebalance(g, old, newID, j)
			return
		}
		s.addMemberAndRebalance(g, newID, j)
		return
	}
	if req.Version >= 4 {
		// KIP-394: hand out the ID; the member counts as pending until it
		// rejoins with it or its session timeout passes.
		s.addPendingMember(g, newID, time.Duration(req.SessionTimeoutMillis)*time.Millisecond)
		j.reply(joinError(newID, kerr.MemberIDRequired.Code))
		return
	}
	s.addMemberAndRebalance(g, newID, j)
}

func (s *Shard) addPendingMember(g *group, id string, session time.Duration) {
	g.pending[id] = s.loop.After(session, func() {
		if s.groups[g.id] != g || g.pending[id] == nil {
			return
		}
		s.logger.Info("pending member removed after session timeout", "partition", s.partition, "group", g.id, "member", id)
		s.removePendingMemberAndUpdateGroup(g, id)
	})
}

func (s *Shard) removePendingMemberAndUpdateGroup(g *group, id string) {
	if t := g.pending[id]; t != nil {
		t.Stop()
		delete(g.pending, id)
	}
	if g.is(statePreparingRebalance) {
		s.tryCompleteJoin(g)
	}
	s.maybeDrop(g)
}

func (s *Shard) joinCurrentMember(g *group, j joinRequest) {
	req := j.req
	id := req.MemberID
	switch {
	case g.is(stateDead):
		j.reply(joinError(id, errCoordinatorNotAvailable))
		return
	case !g.supportsProtocols(req.ProtocolType, req.Protocols):
		j.reply(joinError(id, errInconsistentGroupProtocol))
		return
	}
	if g.pending[id] != nil {
		s.addMemberAndRebalance(g, id, j)
		return
	}
	if g.isStaticMemberFenced(req.InstanceID, id) {
		j.reply(joinError(id, errFencedInstanceID))
		return
	}
	m := g.members[id]
	if m == nil || (req.InstanceID != nil && g.static[*req.InstanceID] == "") {
		j.reply(joinError(id, errUnknownMemberID))
		return
	}
	switch g.state {
	case statePreparingRebalance:
		s.updateMemberAndRebalance(g, m, j, "member joining during PreparingRebalance")
	case stateCompletingRebalance:
		if m.matches(req.Protocols) {
			// The member missed its JoinGroup response: resend it.
			r := s.generationResult(g, m.id)
			j.reply(r)
			return
		}
		s.updateMemberAndRebalance(g, m, j, "member changed its metadata during CompletingRebalance")
	case stateStable:
		switch {
		case g.isLeader(id):
			// The leader rejoins to trigger a rebalance (e.g. topic
			// metadata changed).
			s.updateMemberAndRebalance(g, m, j, "leader rejoining a Stable group")
		case !m.matches(req.Protocols):
			s.updateMemberAndRebalance(g, m, j, "member changed its metadata in a Stable group")
		default:
			r := s.generationResult(g, m.id)
			r.members = nil
			j.reply(r)
		}
	default: // Empty: let the member reset its generation and rejoin.
		j.reply(joinError(id, errUnknownMemberID))
	}
}

// generationResult is the current generation as member id sees it; the
// leader gets every member's metadata.
func (s *Shard) generationResult(g *group, id string) joinResult {
	r := joinResult{
		memberID:     id,
		generation:   g.generation,
		protocolType: g.protocolType,
		protocol:     g.protocol,
		leader:       g.leader,
	}
	if g.isLeader(id) {
		r.members = g.currentMembers()
	}
	return r
}

func (s *Shard) addMemberAndRebalance(g *group, id string, j joinRequest) {
	req := j.req
	m := &member{
		id:                 id,
		instanceID:         deref(req.InstanceID),
		clientID:           j.clientID,
		clientHost:         j.clientHost,
		rebalanceTimeoutMs: j.rebalanceMs,
		sessionTimeoutMs:   req.SessionTimeoutMillis,
		protocolType:       req.ProtocolType,
		protocols:          convertProtocols(req.Protocols),
		isNew:              true,
	}
	if g.is(statePreparingRebalance) && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.add(m, j.reply)
	// A new member cannot heartbeat before its first join completes; it is
	// bounded by the new-member join timeout instead.
	s.scheduleHeartbeat(g, m)
	s.maybePrepareRebalance(g, "adding new member "+id)
}

func (s *Shard) updateMemberAndRebalance(g *group, m *member, j joinRequest, reason string) {
	s.supersedeJoin(m)
	g.updateMember(m, convertProtocols(j.req.Protocols), j.rebalanceMs, j.req.SessionTimeoutMillis, j.reply)
	s.maybePrepareRebalance(g, reason)
}

// supersedeJoin answers an earlier JoinGroup of the same member that a new
// one replaces (its caller has given up on it).
func (s *Shard) supersedeJoin(m *member) {
	if m.joinReply != nil {
		// Left set: updateMember replaces it, keeping the awaiting count.
		m.joinReply(joinError(m.id, errRebalanceInProgress))
	}
}

// updateStaticMemberAndRebalance handles a known group.instance.id joining
// with an unknown member ID: the new ID replaces the old (whose waiting
// requests are fenced). In a Stable group whose selected protocol would not
// change the group is only re-persisted with the new ID; otherwise it
// rebalances.
func (s *Shard) updateStaticMemberAndRebalance(g *group, oldID, newID string, j joinRequest) {
	req := j.req
	prevLeader := g.leader
	m := s.replaceStaticMember(g, *req.InstanceID, oldID, newID)
	s.scheduleHeartbeat(g, m)
	oldProtocols := m.protocols
	oldRebalance, oldSession := m.rebalanceTimeoutMs, m.sessionTimeoutMs
	g.updateMember(m, convertProtocols(req.Protocols), j.rebalanceMs, req.SessionTimeoutMillis, j.reply)
	switch g.state {
	case stateStable:
		if g.selectProtocol() != g.protocol {
			s.prepareRebalance(g, "static member "+newID+" rejoined with a change of protocol")
			return
		}
		gen := g.generation
		rec := groupRecord(g, func(m *member) []byte { return m.assignment })
		s.write([]runtime.Record{rec}, false, func(code int16) {
			if s.groups[g.id] != g || g.members[newID] != m {
				return // the member left or was replaced meanwhile
			}
			if code != 0 {
				s.logger.Warn("persisting a static member's new member ID failed, reverting", "partition", s.partition, "group", g.id, "instance", m.instanceID)
				reply := m.joinReply
				g.updateMember(m, oldProtocols, oldRebalance, oldSession, nil)
				old := s.replaceStaticMember(g, m.instanceID, newID, oldID)
				s.scheduleHeartbeat(g, old)
				if reply != nil {
					reply(joinResult{code: code, generation: g.generation, protocolType: g.protocolType, protocol: g.protocol, leader: prevLeader})
				}
				return
			}
			if !g.is(stateStable) || g.generation != gen {
				return // a rebalance started; the member is answered when it completes
			}
			r := s.generationResult(g, newID)
			if req.Version >= 9 {
				// The leader learns it leads but skips assigning: the
				// group is Stable and would ignore a new assignment.
				r.skipAssignment = g.isLeader(newID)
			} else {
				// Older leaders would run a pointless assignment; hide
				// the leadership behind the previous leader ID.
				r.members = nil
				r.leader = prevLeader
			}
			g.completeJoin(m, r)
		})
	case stateCompletingRebalance:
		s.prepareRebalance(g, "static member "+newID+" rejoined during CompletingRebalance")
	case statePreparingRebalance:
		// Counted as rejoined; answered when the join phase completes.
	}
}

// replaceStaticMember moves a static member to a new member ID; requests
// still waiting under the old ID are fenced.
func (s *Shard) replaceStaticMember(g *group, instanceID, oldID, newID string) *member {
	m := g.members[oldID]
	if m.joinReply != nil {
		g.completeJoin(m, joinResult{code: errFencedInstanceID, memberID: oldID, generation: -1})
	}
	g.completeSync(m, syncResult{code: errFencedInstanceID})
	stopMemberTimer(m)
	nm := &member{
		id:                 newID,
		instanceID:         instanceID,
		clientID:           m.clientID,
		clientHost:         m.clientHost,
		rebalanceTimeoutMs: m.rebalanceTimeoutMs,
		sessionTimeoutMs:   m.sessionTimeoutMs,
		protocolType:       m.protocolType,
		protocols:          m.protocols,
		assignment:         m.assignment,
	}
	delete(g.members, oldID)
	g.members[newID] = nm
	for i, id := range g.order {
		if id == oldID {
			g.order[i] = newID
		}
	}
	if g.leader == oldID {
		g.leader = newID
	}
	if g.pendingSync[oldID] {
		delete(g.pendingSync, oldID)
		g.pendingSync[newID] = true
	}
	g.static[instanceID] = newID
	return nm
}

func (s *Shard) maybePrepareRebalance(g *group, reason string) {
	if g.canRebalance() {
		s.prepareRebalance(g, reason)
	}
}

// prepareRebalance starts a join phase: waiting syncs are told to rejoin,
// and the phase ends after the initial delay (Empty group) or when all
// members rejoined or the rebalance timeout passed.
func (s *Shard) prepareRebalance(g *group, reason string) {
	if g.is(stateCompletingRebalance) {
		s.propagateAssignment(g, errRebalanceInProgress)
	}
	s.stopGroupTimers(g)
	timeout := g.rebalanceTimeout()
	if g.is(stateEmpty) {
		delay := s.cfg.InitialRebalanceDelay
		g.initialDelay = true
		s.scheduleInitialDelay(g, delay, max(timeout-delay, 0))
	} else {
		g.initialDelay = false
		s.scheduleJoinTimeout(g, timeout)
	}
	g.transition(statePreparingRebalance, s.nowMs())
	s.logger.Info("preparing to rebalance group", "partition", s.partition, "group", g.id,
		"generation", g.generation, "reason", reason)
	s.tryCompleteJoin(g)
}

func (s *Shard) scheduleJoinTimeout(g *group, d time.Duration) {
	tok := g.joinToken
	g.joinTimer = s.loop.After(d, func() {
		if s.groups[g.id] == g && g.joinToken == tok {
			g.joinTimer = nil
			s.completeJoinPhase(g)
		}
	})
}

// scheduleInitialDelay is Kafka's InitialDelayedJoin: when the delay ends
// and new members arrived meanwhile, wait again (at most the configured
// delay) until the rebalance timeout is used up.
func (s *Shard) scheduleInitialDelay(g *group, delay, remaining time.Duration) {
	tok := g.joinToken
	g.joinTimer = s.loop.After(delay, func() {
		if s.groups[g.id] != g || g.joinToken != tok {
			return
		}
		g.joinTimer = nil
		if g.newMemberAdded && remaining != 0 {
			g.newMemberAdded = false
			s.scheduleInitialDelay(g, min(s.cfg.InitialRebalanceDelay, remaining), max(remaining-delay, 0))
			return
		}
		g.initialDelay = false
		s.completeJoinPhase(g)
	})
}

func (s *Shard) tryCompleteJoin(g *group) {
	if g.is(statePreparingRebalance) && !g.initialDelay && g.hasAllMembersJoined() {
		s.completeJoinPhase(g)
	}
}

// completeJoinPhase ends a join phase (Kafka's onCompleteJoin): dynamic
// members that did not rejoin are removed, a leader that did not rejoin is
// replaced, and the next generation begins — CompletingRebalance with every
// joined member answered, or Empty (persisted) when nobody is left.
func (s *Shard) completeJoinPhase(g *group) {
	if !g.is(statePreparingRebalance) {
		return
	}
	g.joinToken++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
		g.joinTimer = nil
	}
	g.initialDelay = false
	for _, id := range append([]string(nil), g.order...) {
		m := g.members[id]
		if m.joinReply == nil && m.instanceID == "" {
			s.logger.Info("removing member that did not rejoin before the rebalance timeout", "partition", s.partition, "group", g.id, "member", id)
			g.remove(id)
		}
	}
	if len(g.members) > 0 && !s.electJoinedLeader(g) {
		// Only static members that have not rejoined remain: wait another
		// rebalance timeout for them (or their sessions to expire).
		s.logger.Warn("group could not complete its rebalance because no member rejoined", "partition", s.partition, "group", g.id)
		s.scheduleJoinTimeout(g, g.rebalanceTimeout())
		return
	}
	g.generation++
	g.pendingSync = map[string]bool{}
	if len(g.members) == 0 {
		g.protocol = ""
		g.computeSubscribedTopics()
		g.transition(stateEmpty, s.nowMs())
		s.logger.Info("group is now empty", "partition", s.partition, "group", g.id, "generation", g.generation)
		rec := groupRecord(g, func(*member) []byte { return nil })
		s.write([]runtime.Record{rec}, false, func(code int16) {
			if code != 0 {
				s.logger.Warn("persisting empty group failed", "partition", s.partition, "group", g.id, "error_code", code)
			}
			s.maybeDrop(g)
		})
		return
	}
	g.protocol = g.selectProtocol()
	g.computeSubscribedTopics()
	g.transition(stateCompletingRebalance, s.nowMs())
	s.logger.Info("group stabilized a generation, awaiting the leader's assignment", "partition", s.partition, "group", g.id,
		"generation", g.generation, "protocol", g.protocol, "members", len(g.members))
	for _, id := range g.order {
		m := g.members[id]
		g.completeJoin(m, s.generationResult(g, id))
		m.isNew = false
		s.scheduleHeartbeat(g, m)
		g.pendingSync[id] = true
	}
	s.schedulePendingSync(g)
}

// electJoinedLeader keeps the leader if it rejoined, else picks a member
// that did; false when no member rejoined.
func (s *Shard) electJoinedLeader(g *group) bool {
	if l := g.members[g.leader]; l != nil && l.joinReply != nil {
		return true
	}
	for _, id := range g.order {
		if g.members[id].joinReply != nil {
			g.leader = id
			return true
		}
	}
	return false
}

// schedulePendingSync bounds CompletingRebalance (and a Stable group still
// missing syncs) by the rebalance timeout: members that never synced are
// removed and the group rebalances.
func (s *Shard) schedulePendingSync(g *group) {
	tok := g.syncToken
	gen := g.generation
	g.syncTimer = s.loop.After(g.rebalanceTimeout(), func() {
		if s.groups[g.id] != g || g.syncToken != tok {
			return
		}
		g.syncTimer = nil
		if g.generation != gen || !(g.is(stateCompletingRebalance) || g.is(stateStable)) || len(g.pendingSync) == 0 {
			return
		}
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				s.logger.Info("removing member that did not sync before the rebalance timeout", "partition", s.partition, "group", g.id, "member", id)
				g.completeSync(m, syncResult{code: errRebalanceInProgress})
				g.remove(id)
			}
		}
		g.pendingSync = map[string]bool{}
		s.prepareRebalance(g, "members did not sync before the rebalance timeout")
	})
}

// removeMemberAndUpdateGroup removes a member (left, expired, fenced) and
// moves the group on: a rebalance, or completing the current join phase.
func (s *Shard) removeMemberAndUpdateGroup(g *group, m *member, reason string) {
	g.completeJoin(m, joinError("", errUnknownMemberID))
	g.completeSync(m, syncResult{code: errUnknownMemberID})
	g.remove(m.id)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		s.maybePrepareRebalance(g, "removing member "+m.id+": "+reason)
	case statePreparingRebalance:
		s.tryCompleteJoin(g)
	}
}
