package group

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"sort"
	"time"

	"github.com/kbroker/kbroker/coordinator/runtime"
)

// This file holds the state of KIP-848 ("consumer" protocol) groups. A
// group ID names either a classic group or a consumer group: a consumer
// group is a *group whose cg is set; its classic fields stay Empty and its
// committed offsets live in the same group struct as a classic group's.
//
// Durable consumer-group state changes only by replaying the records of
// consumer_records.go (at load and after a write commits, like the classic
// protocol). Operations on one consumer group are serialised: while a write
// for the group is in flight, later operations on it (heartbeats, timers,
// commits, describes) wait in Shard.busy, so every decision reads the state
// the previous write produced. Session and rebalance timers are live only.

// Member states of the KIP-848 reconciliation (Kafka's MemberState values,
// as stored in ConsumerGroupCurrentMemberAssignmentValue.State).
const (
	memberStable     int8 = 0 // reconciled to its target at the member epoch
	memberUnrevoked  int8 = 1 // must revoke partitions before it moves on
	memberUnreleased int8 = 2 // at the target epoch, waiting for partitions others still own
)

// Special member epochs of ConsumerGroupHeartbeat.
const (
	leaveEpoch       = -1 // the member leaves the group
	staticLeaveEpoch = -2 // a static member leaves temporarily and keeps its assignment
)

// Server-side assignor names.
const (
	assignorUniform = "uniform"
	assignorRange   = "range"
)

// tidp is one partition named by topic ID, as KIP-848 assignments name it.
type tidp struct {
	id [16]byte
	p  int32
}

// partSet is a set of partitions.
type partSet map[tidp]struct{}

func (a partSet) clone() partSet {
	out := make(partSet, len(a))
	for k := range a {
		out[k] = struct{}{}
	}
	return out
}

func (a partSet) equal(b partSet) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func (a partSet) has(k tidp) bool {
	_, ok := a[k]
	return ok
}

// topicParts is one topic's partitions of a partSet, sorted.
type topicParts struct {
	id    [16]byte
	parts []int32
}

// byTopic lists the set grouped by topic ID (byte order), partitions
// ascending: the order records and responses carry them in.
func (a partSet) byTopic() []topicParts {
	m := map[[16]byte][]int32{}
	for k := range a {
		m[k.id] = append(m[k.id], k.p)
	}
	out := make([]topicParts, 0, len(m))
	for id, ps := range m {
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		out = append(out, topicParts{id: id, parts: ps})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].id[:], out[j].id[:]) < 0 })
	return out
}

// cmember is one consumer-group member: its subscription
// (ConsumerGroupMemberMetadata) and current assignment
// (ConsumerGroupCurrentMemberAssignment). Owned by the shard loop.
type cmember struct {
	id                 string
	instanceID         *string
	rackID             *string
	clientID           string
	clientHost         string
	topicNames         []string // sorted, deduplicated
	regex              *string  // nil: none
	rebalanceTimeoutMs int32
	assignor           *string // nil: none preferred

	epoch     int32
	prevEpoch int32
	state     int8
	assigned  partSet
	revoking  partSet

	// Live only.
	sessionTimer   *time.Timer
	sessionToken   uint64
	rebalanceTimer *time.Timer
	rebalanceToken uint64
}

func newCMember(id string) *cmember {
	return &cmember{id: id, prevEpoch: -1, rebalanceTimeoutMs: -1, assigned: partSet{}, revoking: partSet{}}
}

// clone copies the durable fields (timers stay with the original).
func (m *cmember) clone() *cmember {
	c := *m
	c.sessionTimer, c.rebalanceTimer = nil, nil
	c.topicNames = append([]string(nil), m.topicNames...)
	c.assigned = m.assigned.clone()
	c.revoking = m.revoking.clone()
	return &c
}

func eqStrPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func eqStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameMetadata compares what ConsumerGroupMemberMetadataValue stores.
func (m *cmember) sameMetadata(o *cmember) bool {
	return eqStrPtr(m.instanceID, o.instanceID) && eqStrPtr(m.rackID, o.rackID) &&
		m.clientID == o.clientID && m.clientHost == o.clientHost &&
		eqStrings(m.topicNames, o.topicNames) && eqStrPtr(m.regex, o.regex) &&
		m.rebalanceTimeoutMs == o.rebalanceTimeoutMs && eqStrPtr(m.assignor, o.assignor)
}

// sameAssignment compares what ConsumerGroupCurrentMemberAssignmentValue
// stores.
func (m *cmember) sameAssignment(o *cmember) bool {
	return m.epoch == o.epoch && m.prevEpoch == o.prevEpoch && m.state == o.state &&
		m.assigned.equal(o.assigned) && m.revoking.equal(o.revoking)
}

// isReconciledTo: Kafka's ConsumerGroupMember.isReconciledTo.
func (m *cmember) isReconciledTo(epoch int32) bool {
	return m.state == memberStable && m.epoch == epoch
}

func stopCMemberTimers(m *cmember) {
	m.sessionToken++
	if m.sessionTimer != nil {
		m.sessionTimer.Stop()
		m.sessionTimer = nil
	}
	m.rebalanceToken++
	if m.rebalanceTimer != nil {
		m.rebalanceTimer.Stop()
		m.rebalanceTimer = nil
	}
}

// consumerGroup is the KIP-848 state of a group, owned by the shard loop.
type consumerGroup struct {
	epoch           int32                // group epoch (ConsumerGroupMetadata)
	assignmentEpoch int32                // target assignment epoch
	members         map[string]*cmember  // by member ID
	static          map[string]string    // instance ID -> member ID
	subMeta         map[string]TopicMeta // subscription metadata, by topic name
	target          map[string]partSet   // target assignment, by member ID
	owners          map[tidp]int32       // partition -> epoch of the member owning it
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{
		members: map[string]*cmember{},
		static:  map[string]string{},
		subMeta: map[string]TopicMeta{},
		target:  map[string]partSet{},
		owners:  map[tidp]int32{},
	}
}

// state is Kafka's ConsumerGroupState, derived as maybeUpdateGroupState
// does.
func (cg *consumerGroup) state() string {
	if len(cg.members) == 0 {
		return "Empty"
	}
	if cg.epoch > cg.assignmentEpoch {
		return "Assigning"
	}
	for _, m := range cg.members {
		if !m.isReconciledTo(cg.assignmentEpoch) {
			return "Reconciling"
		}
	}
	return "Stable"
}

func (cg *consumerGroup) staticMember(instanceID string) *cmember {
	if id, ok := cg.static[instanceID]; ok {
		return cg.members[id]
	}
	return nil
}

func (cg *consumerGroup) sortedMemberIDs() []string {
	ids := make([]string, 0, len(cg.members))
	for id := range cg.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// removeOwners forgets the partition epochs of m's assignment; setOwners
// records them. Kafka's ConsumerGroup.maybeUpdatePartitionEpoch.
func (cg *consumerGroup) removeOwners(m *cmember) {
	for _, set := range []partSet{m.assigned, m.revoking} {
		for k := range set {
			if e, ok := cg.owners[k]; ok && e == m.epoch {
				delete(cg.owners, k)
			}
		}
	}
}

func (cg *consumerGroup) setOwners(m *cmember) {
	for _, set := range []partSet{m.assigned, m.revoking} {
		for k := range set {
			cg.owners[k] = m.epoch
		}
	}
}

// ownerEpoch is the epoch of the member owning k, -1 if none.
func (cg *consumerGroup) ownerEpoch(k tidp) int32 {
	if e, ok := cg.owners[k]; ok {
		return e
	}
	return -1
}

// isConsumer reports whether g is a KIP-848 consumer group.
func (g *group) isConsumer() bool { return g.cg != nil }

// classicEmpty: a classic group a consumer group may replace (Kafka's
// ClassicGroup.isEmpty: no members, and nobody in the middle of joining).
func (g *group) classicEmpty() bool {
	return g.cg == nil && (g.is(stateEmpty) || g.is(stateDead)) && len(g.members) == 0 && len(g.pending) == 0
}

// topicIndex returns the cluster's topics by name.
func (s *Shard) topicIndex() map[string]TopicMeta {
	out := map[string]TopicMeta{}
	if s.cfg.Topics == nil {
		return out
	}
	for _, t := range s.cfg.Topics() {
		out[t.Name] = t
	}
	return out
}

// compileRegex compiles a subscription regex as a whole-name match (Java's
// Matcher.matches). Go's RE2 differs from Java's java.util.regex (which
// Kafka uses, not RE2/J) in that it has no backreferences or lookaround;
// such patterns answer INVALID_REGULAR_EXPRESSION here.
func (s *Shard) compileRegex(expr string) (*regexp.Regexp, error) {
	if re, ok := s.regexCache[expr]; ok {
		return re, nil
	}
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, err
	}
	if len(s.regexCache) > 1024 {
		s.regexCache = map[string]*regexp.Regexp{}
	}
	s.regexCache[expr] = re
	return re, nil
}

// resolvedTopics is the member's subscription: its topic names plus the
// existing topics its regex matches. Internal topics are matched like any
// other, as Kafka 4's GroupMetadataManager.refreshRegularExpressions scans
// every topic of the metadata image.
func (s *Shard) resolvedTopics(m *cmember, topics map[string]TopicMeta) []string {
	out := append([]string(nil), m.topicNames...)
	if m.regex != nil && *m.regex != "" {
		if re, err := s.compileRegex(*m.regex); err == nil {
			seen := map[string]bool{}
			for _, n := range m.topicNames {
				seen[n] = true
			}
			for name := range topics {
				if !seen[name] && re.MatchString(name) {
					out = append(out, name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// subscriptionMetadata is the metadata of every existing topic some member
// subscribes to.
func (s *Shard) subscriptionMetadata(members map[string]*cmember, topics map[string]TopicMeta) map[string]TopicMeta {
	out := map[string]TopicMeta{}
	for _, m := range members {
		for _, name := range s.resolvedTopics(m, topics) {
			if t, ok := topics[name]; ok {
				out[name] = t
			}
		}
	}
	return out
}

func metaEqual(a, b map[string]TopicMeta) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// subscribedTo reports whether some member of a consumer group subscribes
// to topic (offset expiry and OffsetDelete keep such topics' offsets).
func (s *Shard) subscribedTo(cg *consumerGroup, topic string) bool {
	if len(cg.members) == 0 {
		return false
	}
	if _, ok := cg.subMeta[topic]; ok {
		return true
	}
	for _, m := range cg.members {
		for _, n := range m.topicNames {
			if n == topic {
				return true
			}
		}
	}
	return false
}

// newConsumerMemberID is what Kafka generates for v0 members:
// Uuid.randomUuid().toString(), 22 characters of URL-safe base64.
func newConsumerMemberID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return base64.RawURLEncoding.EncodeToString(u[:])
}

// serial runs fn on the loop now, or once the consumer group's in-flight
// write (and those queued before fn) completed.
func (s *Shard) serial(groupID string, fn func()) {
	if q, ok := s.busy[groupID]; ok {
		s.busy[groupID] = append(q, fn)
		return
	}
	fn()
}

// writeSerial appends recs for a consumer group; until they are replayed
// (or failed) and then ran, later operations on the group wait.
func (s *Shard) writeSerial(groupID string, recs []runtime.Record, then func(code int16)) {
	if _, ok := s.busy[groupID]; !ok {
		s.busy[groupID] = nil
	}
	s.write(recs, false, func(code int16) {
		then(code)
		s.release(groupID)
	})
}

// release runs the operations that waited for a group's write, stopping
// when one of them starts another write (the rest wait for that one).
func (s *Shard) release(groupID string) {
	q := s.busy[groupID]
	delete(s.busy, groupID)
	for i, fn := range q {
		fn()
		if _, ok := s.busy[groupID]; ok {
			s.busy[groupID] = append(s.busy[groupID], q[i+1:]...)
			return
		}
	}
}

// scheduleSession (re)starts a member's session deadline
// (group.consumer.session.timeout.ms); when it passes the member is fenced.
func (s *Shard) scheduleSession(groupID string, m *cmember) {
	m.sessionToken++
	if m.sessionTimer != nil {
		m.sessionTimer.Stop()
	}
	tok, id := m.sessionToken, m.id
	m.sessionTimer = s.loop.After(s.cfg.ConsumerSessionTimeout, func() {
		s.serial(groupID, func() {
			g := s.groups[groupID]
			if g == nil || g.cg == nil || g.cg.members[id] == nil || g.cg.members[id].sessionToken != tok {
				return
			}
			s.logger.Info("consumer group member failed (session expired), fencing it", "partition", s.partition, "group", groupID, "member", id)
			s.fenceMember(g, g.cg.members[id], func(int16) {})
		})
	})
}

// scheduleRebalanceTimeout gives a member that must revoke partitions its
// rebalance timeout to do so; if it is still at that epoch then, it is
// fenced (Kafka's scheduleConsumerGroupRebalanceTimeout).
func (s *Shard) scheduleRebalanceTimeout(groupID string, m *cmember) {
	m.rebalanceToken++
	if m.rebalanceTimer != nil {
		m.rebalanceTimer.Stop()
		m.rebalanceTimer = nil
	}
	if m.state != memberUnrevoked {
		return
	}
	d := time.Duration(m.rebalanceTimeoutMs) * time.Millisecond
	if m.rebalanceTimeoutMs <= 0 {
		d = s.cfg.ConsumerSessionTimeout
	}
	tok, id, epoch := m.rebalanceToken, m.id, m.epoch
	m.rebalanceTimer = s.loop.After(d, func() {
		s.serial(groupID, func() {
			g := s.groups[groupID]
			if g == nil || g.cg == nil {
				return
			}
			cur := g.cg.members[id]
			if cur == nil || cur.rebalanceToken != tok || cur.epoch != epoch {
				return
			}
			s.logger.Info("consumer group member did not revoke its partitions within the rebalance timeout, fencing it",
				"partition", s.partition, "group", groupID, "member", id, "member_epoch", epoch)
			s.fenceMember(g, cur, func(int16) {})
		})
	})
}

// startConsumerSessions gives every member of a loaded consumer group a
// fresh session, as Kafka does when it loads a group.
func (s *Shard) startConsumerSessions(g *group) {
	if g.cg == nil {
		return
	}
	for _, id := range g.cg.sortedMemberIDs() {
		s.scheduleSession(g.id, g.cg.members[id])
	}
}

func stopConsumerTimers(cg *consumerGroup) {
	if cg == nil {
		return
	}
	for _, m := range cg.members {
		stopCMemberTimers(m)
	}
}
