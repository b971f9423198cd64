package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// SyncGroup: v0-5
//
// Behavior:
//   - Followers wait for the leader's SyncGroup; the leader's assignment is
//     persisted as a GroupMetadata record and every waiting member is
//     answered only once the record is committed (members the leader left
//     out get an empty assignment).
//   - In a Stable group a member gets its current assignment back.
//   - Errors as Kafka: UNKNOWN_MEMBER_ID (unknown group or member, Empty
//     group), FENCED_INSTANCE_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
//     INCONSISTENT_GROUP_PROTOCOL (v5+ type/name mismatch).
//
// Version notes: v3 group.instance.id; v5 protocol type and name.
func (s *Shard) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	fail := func(code int16) *kmsg.SyncGroupResponse { return syncResponse(req, syncResult{code: code}) }
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.SyncGroupResponse)) {
		s.handleSync(req, func(r syncResult) { reply(syncResponse(req, r)) })
	})
}

func syncResponse(req *kmsg.SyncGroupRequest, r syncResult) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = r.code
	resp.MemberAssignment = []byte{}
	if r.code == 0 {
		resp.MemberAssignment = nonNil(r.assignment)
	}
	if req.Version >= 5 {
		resp.ProtocolType = optString(r.protocolType)
		resp.Protocol = optString(r.protocol)
	}
	return resp
}

func (s *Shard) handleSync(req *kmsg.SyncGroupRequest, reply func(syncResult)) {
	if req.Group == "" {
		reply(syncResult{code: errInvalidGroupID})
		return
	}
	if code := s.loop.Ready(); code != 0 {
		reply(syncResult{code: code})
		return
	}
	g := s.groups[req.Group]
	switch {
	case g == nil:
		reply(syncResult{code: errUnknownMemberID})
		return
	case g.is(stateDead):
		reply(syncResult{code: errCoordinatorNotAvailable})
		return
	case g.isStaticMemberFenced(req.InstanceID, req.MemberID):
		reply(syncResult{code: errFencedInstanceID})
		return
	case g.members[req.MemberID] == nil:
		reply(syncResult{code: errUnknownMemberID})
		return
	case req.Generation != g.generation:
		reply(syncResult{code: errIllegalGeneration})
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		reply(syncResult{code: errInconsistentGroupProtocol})
		return
	}
	m := g.members[req.MemberID]
	switch g.state {
	case stateEmpty:
		reply(syncResult{code: errUnknownMemberID})
	case statePreparingRebalance:
		reply(syncResult{code: errRebalanceInProgress})
	case stateStable:
		delete(g.pendingSync, m.id)
		reply(syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: m.assignment})
		s.scheduleHeartbeat(g, m)
	case stateCompletingRebalance:
		if m.syncReply != nil {
			m.syncReply(syncResult{code: errRebalanceInProgress}) // superseded by this one
		}
		m.syncReply = reply
		delete(g.pendingSync, m.id)
		if !g.isLeader(m.id) {
			return
		}
		assignment := make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			assignment[a.MemberID] = a.MemberAssignment
		}
		s.logger.Info("assignment received from the group leader", "partition", s.partition, "group", g.id,
			"generation", g.generation, "members", len(g.members), "static_members", len(g.static))
		gen := g.generation
		rec := groupRecord(g, func(m *member) []byte { return assignment[m.id] })
		s.write([]runtime.Record{rec}, false, func(code int16) {
			if s.groups[g.id] != g || g.generation != gen {
				return // the group moved on; its members were told to rejoin
			}
			if code != 0 {
				if g.is(stateCompletingRebalance) {
					s.propagateAssignment(g, code)
					s.maybePrepareRebalance(g, "storing the group assignment failed")
				}
				return
			}
			// Replay moved the group to Stable with the assignments.
			if g.is(stateStable) {
				s.propagateAssignment(g, 0)
			}
		})
	}
}

// propagateAssignment answers every waiting SyncGroup: with the member's
// assignment, or with code (and no assignment). Answered members get a
// fresh session deadline.
func (s *Shard) propagateAssignment(g *group, code int16) {
	for _, id := range g.order {
		m := g.members[id]
		r := syncResult{code: code}
		if code == 0 {
			r = syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: m.assignment}
		}
		if g.completeSync(m, r) {
			s.scheduleHeartbeat(g, m)
		}
	}
}

// Heartbeat: v0-4
//
// Behavior: keeps a member's session alive; REBALANCE_IN_PROGRESS during a
// join phase tells it to rejoin; ILLEGAL_GENERATION for an old generation;
// UNKNOWN_MEMBER_ID for an unknown group or member or an Empty group;
// FENCED_INSTANCE_ID for a stale static member. While the shard loads it
// answers NONE, as Kafka's GroupCoordinatorService does ("the group is
// still loading, so blindly respond"): classic consumers do not expect
// COORDINATOR_LOAD_IN_PROGRESS from a heartbeat, and the loaded group
// gives every member a fresh session deadline anyway (finishLoad).
//
// Version notes: v3 group.instance.id.
func (s *Shard) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := func(code int16) *kmsg.HeartbeatResponse {
		r := req.ResponseKind().(*kmsg.HeartbeatResponse)
		r.ErrorCode = code
		return r
	}
	return runtime.Call(ctx, s.loop, resp, func(reply func(*kmsg.HeartbeatResponse)) {
		reply(resp(s.handleHeartbeat(req)))
	})
}

func (s *Shard) handleHeartbeat(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return errInvalidGroupID
	}
	if s.loop.Ready() != 0 {
		return 0 // still loading: answer blindly, as Kafka does
	}
	g := s.groups[req.Group]
	if g == nil {
		return errUnknownMemberID
	}
	if g.is(stateDead) {
		return errCoordinatorNotAvailable
	}
	if code := g.validateMember(req.MemberID, req.InstanceID); code != 0 {
		return code
	}
	if req.Generation != g.generation {
		return errIllegalGeneration
	}
	m := g.members[req.MemberID]
	switch g.state {
	case stateEmpty:
		return errUnknownMemberID
	case statePreparingRebalance:
		s.scheduleHeartbeat(g, m)
		return errRebalanceInProgress
	default:
		s.scheduleHeartbeat(g, m)
		return 0
	}
}

// LeaveGroup: v0-5
//
// Behavior: removes members, which rebalances the group (or completes a
// join phase that was waiting for them). v3+ removes a batch, each member
// answered on its own; a member given only by group.instance.id is removed
// administratively (KIP-345). An unknown group answers UNKNOWN_MEMBER_ID per
// member.
//
// Version notes: v0-2 carry one member ID and answer its error at the top
// level; v3 batch; v5 reason.
func (s *Shard) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	fail := func(code int16) *kmsg.LeaveGroupResponse {
		r := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		r.ErrorCode = code
		return r
	}
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.LeaveGroupResponse)) {
		members := req.Members
		if req.Version < 3 {
			members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
		}
		code, results := s.handleLeave(req.Group, members)
		resp := fail(code)
		if code == 0 {
			if req.Version < 3 {
				resp.ErrorCode = results[0].ErrorCode
			} else {
				resp.Members = results
			}
		}
		reply(resp)
	})
}

func (s *Shard) handleLeave(groupID string, members []kmsg.LeaveGroupRequestMember) (int16, []kmsg.LeaveGroupResponseMember) {
	if groupID == "" {
		return errInvalidGroupID, nil
	}
	if code := s.loop.Ready(); code != 0 {
		return code, nil
	}
	g := s.groups[groupID]
	if g != nil && g.is(stateDead) {
		return errCoordinatorNotAvailable, nil
	}
	out := make([]kmsg.LeaveGroupResponseMember, 0, len(members))
	for _, lm := range members {
		r := kmsg.NewLeaveGroupResponseMember()
		r.MemberID = lm.MemberID
		r.InstanceID = lm.InstanceID
		r.ErrorCode = s.leaveOne(g, lm)
		out = append(out, r)
	}
	if g != nil {
		s.maybeDrop(g)
	}
	return 0, out
}

func (s *Shard) leaveOne(g *group, lm kmsg.LeaveGroupRequestMember) int16 {
	if g == nil {
		return errUnknownMemberID
	}
	reason := "member left the group"
	if lm.Reason != nil && *lm.Reason != "" {
		reason += ": " + *lm.Reason
	}
	switch {
	case lm.MemberID == "":
		if lm.InstanceID == nil || g.static[*lm.InstanceID] == "" {
			return errUnknownMemberID
		}
		m := g.members[g.static[*lm.InstanceID]]
		s.logger.Info("static member removed from the group", "partition", s.partition, "group", g.id, "member", m.id, "instance", m.instanceID)
		s.removeMemberAndUpdateGroup(g, m, reason)
		return 0
	case g.pending[lm.MemberID] != nil:
		s.removePendingMemberAndUpdateGroup(g, lm.MemberID)
		return 0
	case g.isStaticMemberFenced(lm.InstanceID, lm.MemberID):
		return errFencedInstanceID
	case g.members[lm.MemberID] != nil:
		s.logger.Info("member left the group", "partition", s.partition, "group", g.id, "member", lm.MemberID)
		s.removeMemberAndUpdateGroup(g, g.members[lm.MemberID], reason)
		return 0
	default:
		return errUnknownMemberID
	}
}
