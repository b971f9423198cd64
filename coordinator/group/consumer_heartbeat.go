package group

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// ConsumerGroupHeartbeat: v0-1
//
// Behavior (KIP-848, Kafka's GroupMetadataManager.consumerGroupHeartbeat):
//   - Member epoch 0 joins (creating the group, or replacing an empty
//     classic group); -1 leaves; -2 is a static member's temporary leave,
//     which keeps its assignment until its session expires or it rejoins
//     under the same instance ID.
//   - A changed subscription, a new or departed member, or a change of a
//     subscribed topic's partition count bumps the group epoch; the
//     server-side assignor then computes a new target assignment, and each
//     member reconciles toward its target: partitions to revoke first
//     (member epoch unchanged), partitions still owned by others only once
//     released, the member epoch moving to the target epoch when nothing is
//     left to revoke.
//   - The response carries the member's assignment on a full request
//     (joining, or all of rebalance timeout, subscription and owned
//     partitions set) or when the assignment changed.
//   - Errors: INVALID_REQUEST (missing fields), UNSUPPORTED_ASSIGNOR,
//     INVALID_REGULAR_EXPRESSION, GROUP_ID_NOT_FOUND (unknown group for a
//     non-zero epoch, or a classic group), GROUP_MAX_SIZE_REACHED,
//     UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH, FENCED_INSTANCE_ID,
//     UNRELEASED_INSTANCE_ID; answered once the records are committed.
//
// Version notes: v1 the client generates its member ID (v0: the server
// does when it is empty); v1 SubscribedTopicRegex.
func (s *Shard) ConsumerGroupHeartbeat(ctx context.Context, req *kmsg.ConsumerGroupHeartbeatRequest) *kmsg.ConsumerGroupHeartbeatResponse {
	fail := func(code int16) *kmsg.ConsumerGroupHeartbeatResponse { return hbError(req, code, "") }
	client := clientFrom(ctx)
	return runtime.Call(ctx, s.loop, fail, func(reply func(*kmsg.ConsumerGroupHeartbeatResponse)) {
		if code := s.loop.Ready(); code != 0 {
			reply(fail(code))
			return
		}
		if code, msg := s.validateHeartbeat(req); code != 0 {
			reply(hbError(req, code, msg))
			return
		}
		s.serial(req.Group, func() {
			if req.MemberEpoch == leaveEpoch || req.MemberEpoch == staticLeaveEpoch {
				s.consumerLeave(req, reply)
				return
			}
			s.consumerHeartbeat(req, client, reply)
		})
	})
}

func hbError(req *kmsg.ConsumerGroupHeartbeatRequest, code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.ErrorCode = code
	if msg != "" {
		resp.ErrorMessage = &msg
	}
	return resp
}

// validateHeartbeat is Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid.
func (s *Shard) validateHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) (int16, string) {
	invalid := kerr.InvalidRequest.Code
	switch {
	case req.Version >= 1 && req.MemberID == "":
		return invalid, "MemberId can't be empty."
	case req.Version == 0 && req.MemberEpoch != 0 && req.MemberID == "":
		return invalid, "MemberId can't be empty."
	case req.Group == "":
		return invalid, "GroupId can't be empty."
	case req.InstanceID != nil && *req.InstanceID == "":
		return invalid, "InstanceId can't be empty."
	case req.RackID != nil && *req.RackID == "":
		return invalid, "RackId can't be empty."
	}
	switch {
	case req.MemberEpoch == 0:
		if req.RebalanceTimeoutMillis == -1 {
			return invalid, "RebalanceTimeoutMs must be provided in first request."
		}
		if req.Topics == nil || len(req.Topics) != 0 {
			return invalid, "TopicPartitions must be empty when (re-)joining."
		}
		if req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil {
			return invalid, "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining."
		}
	case req.MemberEpoch == staticLeaveEpoch:
		if req.InstanceID == nil {
			return invalid, "InstanceId can't be null."
		}
	case req.MemberEpoch < staticLeaveEpoch:
		return invalid, "MemberEpoch is invalid."
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		if _, err := s.compileRegex(*req.SubscribedTopicRegex); err != nil {
			return kerr.InvalidRegularExpression.Code, "SubscribedTopicRegex is not a valid regular expression."
		}
	}
	if req.ServerAssignor != nil && !containsString(s.cfg.ConsumerAssignors, *req.ServerAssignor) {
		return kerr.UnsupportedAssignor.Code, fmt.Sprintf("ServerAssignor %s is not supported. Supported assignors: %s.",
			*req.ServerAssignor, strings.Join(s.cfg.ConsumerAssignors, ", "))
	}
	return 0, ""
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// checkMemberEpoch is Kafka's throwIfConsumerGroupMemberEpochIsInvalid: a
// member may only be at its epoch, or at its previous epoch when the owned
// partitions it reports are a subset of its assignment (the response that
// bumped its epoch was lost).
func checkMemberEpoch(m *cmember, epoch int32, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) (int16, string) {
	switch {
	case epoch > m.epoch:
		return kerr.FencedMemberEpoch.Code, fmt.Sprintf("The consumer group member has a greater member epoch (%d) than the one known by the group coordinator (%d). The member must abandon all its partitions and rejoin.", epoch, m.epoch)
	case epoch < m.epoch && (epoch != m.prevEpoch || !ownedSubset(owned, m.assigned)):
		return kerr.FencedMemberEpoch.Code, fmt.Sprintf("The consumer group member has a smaller member epoch (%d) than the one known by the group coordinator (%d). The member must abandon all its partitions and rejoin.", epoch, m.epoch)
	}
	return 0, ""
}

func ownedSubset(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, set partSet) bool {
	if owned == nil {
		return false
	}
	for _, t := range owned {
		for _, p := range t.Partitions {
			if !set.has(tidp{t.TopicID, p}) {
				return false
			}
		}
	}
	return true
}

// ownsAny reports whether the owned partitions the member reported include
// one of set; unknown (nil) owned partitions count as owning them all.
func ownsAny(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, ownedKnown bool, set partSet) bool {
	if !ownedKnown {
		return true
	}
	for _, t := range owned {
		for _, p := range t.Partitions {
			if set.has(tidp{t.TopicID, p}) {
				return true
			}
		}
	}
	return false
}

// consumerHeartbeat handles joins and heartbeats (epoch >= 0). It builds
// the records of the change against the current state (which it does not
// touch), writes them, and answers from the replayed state.
func (s *Shard) consumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, client clientInfo, reply func(*kmsg.ConsumerGroupHeartbeatResponse)) {
	fail := func(code int16, msg string) { reply(hbError(req, code, msg)) }
	joining := req.MemberEpoch == 0
	g := s.groups[req.Group]
	var recs []runtime.Record
	var cg *consumerGroup
	switch {
	case g != nil && g.is(stateDead):
		fail(errCoordinatorNotAvailable, "")
		return
	case g == nil && !joining:
		fail(kerr.GroupIDNotFound.Code, fmt.Sprintf("Consumer group %s not found.", req.Group))
		return
	case g != nil && g.cg == nil && (!joining || !g.classicEmpty()):
		fail(kerr.GroupIDNotFound.Code, fmt.Sprintf("Group %s is not a consumer group.", req.Group))
		return
	case g == nil || g.cg == nil:
		// A new group; an empty classic group (say, one that only holds
		// offsets) is replaced, its offsets kept.
		cg = newConsumerGroup()
		if g != nil && g.hasStored {
			recs = append(recs, groupTombstone(g.id))
		}
	default:
		cg = g.cg
	}
	if len(cg.members) >= s.cfg.ConsumerMaxSize && (req.MemberID == "" || cg.members[req.MemberID] == nil) {
		fail(kerr.GroupMaxSizeReached.Code, fmt.Sprintf("The consumer group has reached its maximum capacity of %d members.", s.cfg.ConsumerMaxSize))
		return
	}
	memberID := req.MemberID
	if memberID == "" {
		memberID = newConsumerMemberID()
	}

	// Find the member (old) and build its updated copy (m).
	var old, replaced, m *cmember
	if req.InstanceID == nil {
		old = cg.members[memberID]
		if old == nil && !joining {
			fail(errUnknownMemberID, fmt.Sprintf("Member %s is not a member of group %s.", memberID, req.Group))
			return
		}
		if old != nil {
			if code, msg := checkMemberEpoch(old, req.MemberEpoch, req.Topics); code != 0 {
				fail(code, msg)
				return
			}
		}
	} else {
		existing := cg.staticMember(*req.InstanceID)
		switch {
		case joining && existing == nil:
			old = cg.members[memberID]
		case joining:
			if existing.epoch != staticLeaveEpoch {
				fail(kerr.UnreleasedInstanceID.Code, fmt.Sprintf("Static member %s with instance id %s cannot join the group because the instance id is owned by %s member.", memberID, *req.InstanceID, existing.id))
				return
			}
			replaced = existing
		case existing == nil:
			fail(errUnknownMemberID, fmt.Sprintf("Instance id %s is unknown.", *req.InstanceID))
			return
		case existing.id != memberID:
			fail(errFencedInstanceID, fmt.Sprintf("Static member %s with instance id %s is fenced by existing member %s.", memberID, *req.InstanceID, existing.id))
			return
		default:
			if code, msg := checkMemberEpoch(existing, req.MemberEpoch, req.Topics); code != 0 {
				fail(code, msg)
				return
			}
			old = existing
		}
	}
	switch {
	case replaced != nil:
		// The static member comes back under a new member ID: it takes
		// over the previous incarnation's assignment (Kafka's replaceMember).
		m = replaced.clone()
		m.id = memberID
		m.epoch, m.prevEpoch = 0, 0
	case old != nil:
		m = old.clone()
	default:
		m = newCMember(memberID)
		m.epoch = 0
	}
	before := m.clone() // the member as the request found it
	if req.InstanceID != nil {
		m.instanceID = strPtr(*req.InstanceID)
	}
	if req.RackID != nil {
		m.rackID = strPtr(*req.RackID)
	}
	if req.RebalanceTimeoutMillis != -1 {
		m.rebalanceTimeoutMs = req.RebalanceTimeoutMillis
	}
	if req.ServerAssignor != nil {
		m.assignor = strPtr(*req.ServerAssignor)
	}
	if req.SubscribedTopicNames != nil {
		m.topicNames = sortedUnique(req.SubscribedTopicNames)
	}
	if req.SubscribedTopicRegex != nil {
		m.regex = nil
		if *req.SubscribedTopicRegex != "" {
			m.regex = strPtr(*req.SubscribedTopicRegex)
		}
	}
	m.clientID, m.clientHost = client.id, client.host

	// members is the membership this request leads to.
	members := make(map[string]*cmember, len(cg.members)+1)
	for id, x := range cg.members {
		members[id] = x
	}
	if replaced != nil {
		delete(members, replaced.id)
		recs = append(recs, cgMemberTombstones(req.Group, replaced.id)...)
		recs = append(recs, cgMemberRecord(req.Group, m))
		recs = append(recs, cgTargetMemberRecord(req.Group, m.id, cg.target[replaced.id]))
		recs = append(recs, cgCurrentRecord(req.Group, m))
	} else if old == nil || !m.sameMetadata(old) {
		recs = append(recs, cgMemberRecord(req.Group, m))
	}
	members[m.id] = m

	// 1. Group epoch: bumped for a new group, a changed subscription, or
	// changed metadata of the subscribed topics.
	bump := cg.epoch == 0 || !eqStrings(m.topicNames, before.topicNames) || !eqStrPtr(m.regex, before.regex)
	meta := s.subscriptionMetadata(members, s.topicIndex())
	if !metaEqual(meta, cg.subMeta) {
		recs = append(recs, cgPartitionMetadataRecord(req.Group, meta))
		bump = true
	}
	groupEpoch := cg.epoch
	if bump {
		groupEpoch++
		recs = append(recs, cgEpochRecord(req.Group, groupEpoch))
	}

	// 2. Target assignment, recomputed when the group epoch passed it.
	targetEpoch := cg.assignmentEpoch
	target := cg.target[m.id]
	if replaced != nil {
		target = cg.target[replaced.id]
	}
	if groupEpoch > cg.assignmentEpoch {
		targets := s.computeTargets(members, meta, cg.target, replaced, m)
		ids := make([]string, 0, len(targets))
		for id := range targets {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			prev, ok := cg.target[id]
			if id == m.id && replaced != nil {
				prev, ok = cg.target[replaced.id], true
			}
			if !ok || !prev.equal(targets[id]) {
				recs = append(recs, cgTargetMemberRecord(req.Group, id, targets[id]))
			}
		}
		recs = append(recs, cgTargetEpochRecord(req.Group, groupEpoch))
		targetEpoch, target = groupEpoch, targets[m.id]
	}
	if target == nil {
		target = partSet{}
	}

	// 3. Reconcile the member toward its target.
	next := m
	if !m.isReconciledTo(targetEpoch) {
		next = reconcile(m, targetEpoch, target, cg.ownerEpoch, req.Topics, req.Topics != nil)
	}
	assignmentChanged := !next.sameAssignment(before) || old == nil && replaced == nil
	if assignmentChanged {
		recs = append(recs, cgCurrentRecord(req.Group, next))
	}

	full := joining || (req.RebalanceTimeoutMillis != -1 && (req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil) && req.Topics != nil)
	respond := func() {
		g := s.groups[req.Group]
		if g == nil || g.cg == nil || g.cg.members[memberID] == nil {
			fail(errUnknownMemberID, "")
			return
		}
		cur := g.cg.members[memberID]
		s.scheduleSession(req.Group, cur)
		if assignmentChanged {
			s.scheduleRebalanceTimeout(req.Group, cur)
		}
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.MemberID = strPtr(memberID)
		resp.MemberEpoch = cur.epoch
		resp.HeartbeatIntervalMillis = int32(s.cfg.ConsumerHeartbeatInterval.Milliseconds())
		if full || !cur.assigned.equal(before.assigned) {
			a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
			a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
			for _, tp := range cur.assigned.byTopic() {
				at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
				at.TopicID, at.Partitions = tp.id, tp.parts
				a.Topics = append(a.Topics, at)
			}
			resp.Assignment = &a
		}
		reply(resp)
	}
	if len(recs) == 0 {
		respond()
		return
	}
	if joining && old == nil {
		s.logger.Info("member joins the consumer group", "partition", s.partition, "group", req.Group, "member", memberID)
	}
	s.writeSerial(req.Group, recs, func(code int16) {
		if code != 0 {
			fail(code, "")
			return
		}
		respond()
	})
}

// computeTargets runs the group's assignor over members (m in place of
// replaced, whose previous target it inherits).
func (s *Shard) computeTargets(members map[string]*cmember, meta map[string]TopicMeta, prevTargets map[string]partSet, replaced, m *cmember) map[string]partSet {
	topics := s.topicIndex()
	in := assignInput{topics: meta, prev: map[string]partSet{}}
	for id, t := range prevTargets {
		in.prev[id] = t
	}
	if replaced != nil {
		in.prev[m.id] = prevTargets[replaced.id]
	}
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		in.members = append(in.members, assignMember{id: id, topics: s.resolvedTopics(members[id], topics)})
	}
	return runAssignor(s.preferredAssignor(members), in)
}

// reconcile is Kafka's CurrentAssignmentBuilder: the member's next state
// on its way to target at targetEpoch. ownerEpoch gives the epoch of the
// member owning a partition (-1 when free); owned is what the member says
// it owns (ownedKnown false when it did not say).
func reconcile(m *cmember, targetEpoch int32, target partSet, ownerEpoch func(tidp) int32,
	owned []kmsg.ConsumerGroupHeartbeatRequestTopic, ownedKnown bool) *cmember {
	switch m.state {
	case memberStable:
		if m.epoch == targetEpoch {
			return m
		}
		return nextAssignment(m, m.epoch, targetEpoch, target, ownerEpoch, owned, ownedKnown)
	case memberUnrevoked:
		if ownsAny(owned, ownedKnown, m.revoking) {
			return m
		}
		return nextAssignment(m, m.epoch, targetEpoch, target, ownerEpoch, owned, ownedKnown)
	default: // memberUnreleased, or a state a newer version wrote
		return nextAssignment(m, m.epoch, targetEpoch, target, ownerEpoch, owned, ownedKnown)
	}
}

func nextAssignment(m *cmember, memberEpoch, targetEpoch int32, target partSet, ownerEpoch func(tidp) int32,
	owned []kmsg.ConsumerGroupHeartbeatRequestTopic, ownedKnown bool) *cmember {
	assigned, revoking, pending := partSet{}, partSet{}, partSet{}
	unreleased := false
	for k := range m.assigned {
		if target.has(k) {
			assigned[k] = struct{}{}
		} else {
			revoking[k] = struct{}{}
		}
	}
	for k := range target {
		if assigned.has(k) {
			continue
		}
		// Owned by another member (its own pending revocations excepted):
		// it must be released first.
		if ownerEpoch(k) != -1 && !m.revoking.has(k) {
			unreleased = true
			continue
		}
		pending[k] = struct{}{}
	}
	n := m.clone()
	setEpoch := func(e int32) {
		if e != n.epoch {
			n.prevEpoch, n.epoch = n.epoch, e
		}
	}
	switch {
	case len(revoking) > 0 && ownsAny(owned, ownedKnown, revoking):
		n.state = memberUnrevoked
		setEpoch(memberEpoch)
		n.assigned, n.revoking = assigned, revoking
	default:
		for k := range pending {
			assigned[k] = struct{}{}
		}
		n.state = memberStable
		if unreleased {
			n.state = memberUnreleased
		}
		setEpoch(targetEpoch)
		n.assigned, n.revoking = assigned, partSet{}
	}
	return n
}

// consumerLeave handles epochs -1 (leave) and -2 (static member's
// temporary leave): Kafka's consumerGroupLeave.
func (s *Shard) consumerLeave(req *kmsg.ConsumerGroupHeartbeatRequest, reply func(*kmsg.ConsumerGroupHeartbeatResponse)) {
	fail := func(code int16, msg string) { reply(hbError(req, code, msg)) }
	g := s.groups[req.Group]
	switch {
	case g == nil:
		fail(kerr.GroupIDNotFound.Code, fmt.Sprintf("Consumer group %s not found.", req.Group))
		return
	case g.cg == nil:
		fail(kerr.GroupIDNotFound.Code, fmt.Sprintf("Group %s is not a consumer group.", req.Group))
		return
	}
	cg := g.cg
	var m *cmember
	if req.InstanceID == nil {
		if m = cg.members[req.MemberID]; m == nil {
			fail(errUnknownMemberID, fmt.Sprintf("Member %s is not a member of group %s.", req.MemberID, req.Group))
			return
		}
	} else {
		if m = cg.staticMember(*req.InstanceID); m == nil {
			fail(errUnknownMemberID, fmt.Sprintf("Instance id %s is unknown.", *req.InstanceID))
			return
		}
		if m.id != req.MemberID {
			fail(errFencedInstanceID, fmt.Sprintf("Static member %s with instance id %s is fenced by existing member %s.", req.MemberID, *req.InstanceID, m.id))
			return
		}
	}
	ok := func(code int16) {
		if code != 0 {
			fail(code, "")
			return
		}
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.MemberID = strPtr(req.MemberID)
		resp.MemberEpoch = req.MemberEpoch
		reply(resp)
	}
	if req.MemberEpoch == staticLeaveEpoch {
		s.logger.Info("static member temporarily left the consumer group", "partition", s.partition, "group", req.Group, "member", m.id, "instance_id", *req.InstanceID)
		n := m.clone()
		n.epoch = staticLeaveEpoch
		n.revoking = partSet{}
		s.writeSerial(req.Group, []runtime.Record{cgCurrentRecord(req.Group, n)}, ok)
		return
	}
	s.logger.Info("member left the consumer group", "partition", s.partition, "group", req.Group, "member", m.id)
	s.fenceMember(g, m, ok)
}

// fenceMember removes a member (it left, or its session or rebalance
// timeout passed) and bumps the group epoch: Kafka's
// consumerGroupFenceMember. The remaining members get the new target
// assignment on their next heartbeat.
func (s *Shard) fenceMember(g *group, m *cmember, done func(code int16)) {
	cg := g.cg
	recs := cgMemberTombstones(g.id, m.id)
	members := make(map[string]*cmember, len(cg.members))
	for id, x := range cg.members {
		if id != m.id {
			members[id] = x
		}
	}
	if meta := s.subscriptionMetadata(members, s.topicIndex()); !metaEqual(meta, cg.subMeta) {
		recs = append(recs, cgPartitionMetadataRecord(g.id, meta))
	}
	recs = append(recs, cgEpochRecord(g.id, cg.epoch+1))
	stopCMemberTimers(m)
	s.writeSerial(g.id, recs, func(code int16) {
		if code != 0 && s.groups[g.id] == g && g.cg != nil && g.cg.members[m.id] == m {
			s.scheduleSession(g.id, m) // still a member: its session goes on
		}
		done(code)
	})
}

func strPtr(s string) *string { return &s }

func sortedUnique(in []string) []string {
	out := append([]string{}, in...)
	sort.Strings(out)
	j := 0
	for i, v := range out {
		if i == 0 || v != out[j-1] {
			out[j] = v
			j++
		}
	}
	return out[:j]
}
