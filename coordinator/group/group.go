package group

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is the classic group state machine (Kafka's ClassicGroupState).
type groupState int8

const (
	stateEmpty groupState = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

// String gives Kafka's state names, as DescribeGroups and ListGroups show.
func (st groupState) String() string {
	switch st {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

const consumerProtocolType = "consumer"

type topicPartition struct {
	topic     string
	partition int32
}

// offsetEntry is one committed offset. expireTimestamp is -1 unless an old
// client asked for a per-commit retention (value version 1). recordOffset
// is where its record sits in __consumer_offsets: when a transaction
// commits, its offset replaces the group's only if it was written later.
type offsetEntry struct {
	recordOffset    int64
	offset          int64
	leaderEpoch     int32
	metadata        string
	commitTimestamp int64
	expireTimestamp int64
}

type protocol struct {
	name     string
	metadata []byte
}

// joinResult is what a waiting JoinGroup caller receives; the method turns it
// into a response for its request version.
type joinResult struct {
	code           int16
	memberID       string
	generation     int32
	protocolType   string // "" = none
	protocol       string // "" = none
	leader         string
	members        []kmsg.JoinGroupResponseMember
	skipAssignment bool
}

// syncResult is what a waiting SyncGroup caller receives.
type syncResult struct {
	code         int16
	protocolType string
	protocol     string
	assignment   []byte
}

// member is one group member. Its fields are owned by the shard loop.
type member struct {
	id                 string
	instanceID         string // "" = dynamic member
	clientID           string
	clientHost         string
	rebalanceTimeoutMs int32
	sessionTimeoutMs   int32
	protocolType       string
	protocols          []protocol
	assignment         []byte

	joinReply func(joinResult) // set while awaiting a JoinGroup response
	syncReply func(syncResult) // set while awaiting a SyncGroup response
	isNew     bool             // joined but not yet through a completed join

	hbTimer *time.Timer
	hbToken uint64
}

func (m *member) metadata(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

// matches reports whether the member's protocols equal ps (order matters,
// as in Kafka's MemberMetadata.matches).
func (m *member) matches(ps []kmsg.JoinGroupRequestProtocol) bool {
	if len(ps) != len(m.protocols) {
		return false
	}
	for i, p := range ps {
		if p.Name != m.protocols[i].name || string(p.Metadata) != string(m.protocols[i].metadata) {
			return false
		}
	}
	return true
}

// vote is the member's most preferred protocol among the candidates.
func (m *member) vote(candidates map[string]bool) string {
	for _, p := range m.protocols {
		if candidates[p.name] {
			return p.name
		}
	}
	return ""
}

// group is one group of the shard, owned by the shard loop.
type group struct {
	id           string
	state        groupState
	stateTime    int64 // ms when the current state began; -1 unknown
	generation   int32
	protocolType string // "" = none (a simple group that only stores offsets)
	protocol     string // selected protocol, "" = none
	leader       string

	members     map[string]*member
	order       []string          // member IDs in join order, for stable iteration
	static      map[string]string // group.instance.id -> member ID
	pending     map[string]*time.Timer
	pendingSync map[string]bool
	numAwaiting int
	supported   map[string]int // protocol name -> members supporting it

	newMemberAdded bool
	initialDelay   bool // the join phase is an InitialDelayedJoin
	joinTimer      *time.Timer
	joinToken      uint64
	syncTimer      *time.Timer
	syncToken      uint64

	subscribed      map[string]bool
	subscribedKnown bool

	offsets        map[topicPartition]offsetEntry
	pendingCommits map[topicPartition]int // commits appended but not yet replayed

	// hasStored is true while a GroupMetadata record of this group is live
	// in the log (replayed and not tombstoned).
	hasStored bool

	// cg is set when the group is a KIP-848 consumer group (consumer.go).
	cg *consumerGroup
}

func newGroup(id string, now int64) *group {
	return &group{
		id:             id,
		state:          stateEmpty,
		stateTime:      now,
		members:        map[string]*member{},
		static:         map[string]string{},
		pending:        map[string]*time.Timer{},
		pendingSync:    map[string]bool{},
		supported:      map[string]int{},
		offsets:        map[topicPartition]offsetEntry{},
		pendingCommits: map[topicPartition]int{},
	}
}

func (g *group) transition(st groupState, now int64) {
	g.state = st
	g.stateTime = now
}

func (g *group) is(st groupState) bool { return g.state == st }

// canRebalance: the states PreparingRebalance may follow.
func (g *group) canRebalance() bool {
	return g.state == stateStable || g.state == stateCompletingRebalance || g.state == stateEmpty
}

func (g *group) hasAllMembersJoined() bool {
	return len(g.members) == g.numAwaiting && len(g.pending) == 0
}

// rebalanceTimeout is the largest rebalance timeout of the members.
func (g *group) rebalanceTimeout() time.Duration {
	var max int32
	for _, m := range g.members {
		if m.rebalanceTimeoutMs > max {
			max = m.rebalanceTimeoutMs
		}
	}
	return time.Duration(max) * time.Millisecond
}

func (g *group) isLeader(id string) bool { return g.leader != "" && g.leader == id }

// isStaticMemberFenced: the instance ID is known under another member ID.
func (g *group) isStaticMemberFenced(instanceID *string, memberID string) bool {
	if instanceID == nil {
		return false
	}
	cur, ok := g.static[*instanceID]
	return ok && cur != memberID
}

// validateMember is Kafka's ClassicGroup.validateMember: a static member
// must be known under this member ID, a dynamic one must exist.
func (g *group) validateMember(memberID string, instanceID *string) int16 {
	if instanceID != nil {
		cur, ok := g.static[*instanceID]
		if !ok {
			return errUnknownMemberID
		}
		if cur != memberID {
			return errFencedInstanceID
		}
	}
	if g.members[memberID] == nil {
		return errUnknownMemberID
	}
	return 0
}

func (g *group) add(m *member, reply func(joinResult)) {
	if m.instanceID != "" {
		g.static[m.instanceID] = m.id
	}
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.members[m.id] = m
	g.order = append(g.order, m.id)
	for _, p := range m.protocols {
		g.supported[p.name]++
	}
	m.joinReply = reply
	if reply != nil {
		g.numAwaiting++
	}
	if t := g.pending[m.id]; t != nil {
		t.Stop()
		delete(g.pending, m.id)
	}
}

// remove drops a member, electing the first remaining member as leader if
// it led. Callers answer its waiting requests first.
func (g *group) remove(id string) {
	m := g.members[id]
	if m != nil {
		delete(g.members, id)
		for i, o := range g.order {
			if o == id {
				g.order = append(g.order[:i:i], g.order[i+1:]...)
				break
			}
		}
		for _, p := range m.protocols {
			g.supported[p.name]--
		}
		if m.joinReply != nil {
			g.numAwaiting--
			m.joinReply = nil
		}
		if m.instanceID != "" && g.static[m.instanceID] == id {
			delete(g.static, m.instanceID)
		}
		stopMemberTimer(m)
	}
	if g.isLeader(id) {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
	delete(g.pendingSync, id)
	if t := g.pending[id]; t != nil {
		t.Stop()
		delete(g.pending, id)
	}
}

func stopMemberTimer(m *member) {
	m.hbToken++
	if m.hbTimer != nil {
		m.hbTimer.Stop()
		m.hbTimer = nil
	}
}

// updateMember replaces a member's protocols and timeouts and sets (or
// clears) its waiting JoinGroup.
func (g *group) updateMember(m *member, ps []protocol, rebalanceMs, sessionMs int32, reply func(joinResult)) {
	for _, p := range m.protocols {
		g.supported[p.name]--
	}
	m.protocols = ps
	for _, p := range ps {
		g.supported[p.name]++
	}
	m.rebalanceTimeoutMs = rebalanceMs
	m.sessionTimeoutMs = sessionMs
	switch {
	case reply != nil && m.joinReply == nil:
		g.numAwaiting++
	case reply == nil && m.joinReply != nil:
		g.numAwaiting--
	}
	m.joinReply = reply
}

// completeJoin answers a member's waiting JoinGroup, if any.
func (g *group) completeJoin(m *member, r joinResult) bool {
	if m.joinReply == nil {
		return false
	}
	reply := m.joinReply
	m.joinReply = nil
	g.numAwaiting--
	reply(r)
	return true
}

func (g *group) completeSync(m *member, r syncResult) bool {
	if m.syncReply == nil {
		return false
	}
	reply := m.syncReply
	m.syncReply = nil
	reply(r)
	return true
}

// supportsProtocols is Kafka's check that a joining member can be part of
// the group: an Empty group takes any non-empty type and protocol list;
// otherwise the type must match and one protocol must be supported by all.
func (g *group) supportsProtocols(protocolType string, ps []kmsg.JoinGroupRequestProtocol) bool {
	if g.state == stateEmpty {
		return protocolType != "" && len(ps) > 0
	}
	if g.protocolType != protocolType {
		return false
	}
	for _, p := range ps {
		if g.supported[p.Name] == len(g.members) {
			return true
		}
	}
	return false
}

// selectProtocol lets every member vote for its most preferred protocol
// among those all members support; the most votes wins, ties going to the
// protocol the earliest member voted for.
func (g *group) selectProtocol() string {
	candidates := map[string]bool{}
	for name, n := range g.supported {
		if n == len(g.members) && n > 0 {
			candidates[name] = true
		}
	}
	votes := map[string]int{}
	var first []string
	for _, id := range g.order {
		v := g.members[id].vote(candidates)
		if votes[v] == 0 {
			first = append(first, v)
		}
		votes[v]++
	}
	best := ""
	for _, name := range first {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// computeSubscribedTopics collects the topics of every member's consumer
// protocol subscription, parsed as the version-0 prefix all versions share.
// Unknown unless the protocol type is "consumer" and every subscription
// parses.
func (g *group) computeSubscribedTopics() {
	g.subscribed, g.subscribedKnown = nil, false
	if g.protocolType != consumerProtocolType {
		return
	}
	topics := map[string]bool{}
	if len(g.members) > 0 {
		if g.protocol == "" {
			return
		}
		for _, m := range g.members {
			ts, ok := parseSubscriptionTopics(m.metadata(g.protocol))
			if !ok {
				return
			}
			for _, t := range ts {
				topics[t] = true
			}
		}
	}
	g.subscribed, g.subscribedKnown = topics, true
}

// isSubscribedToTopic: when the topics are unknown, a consumer group is
// assumed subscribed (to be safe) and any other group is not.
func (g *group) isSubscribedToTopic(topic string) bool {
	if g.subscribedKnown {
		return g.subscribed[topic]
	}
	return g.protocolType == consumerProtocolType
}

// parseSubscriptionTopics reads a consumer protocol subscription: int16
// version (>= 0), int32 topic count, int16-length topic names, then
// nullable user data. Later versions only append fields.
func parseSubscriptionTopics(b []byte) ([]string, bool) {
	if len(b) < 6 || int16(binary.BigEndian.Uint16(b)) < 0 {
		return nil, false
	}
	n := int32(binary.BigEndian.Uint32(b[2:]))
	b = b[6:]
	if n < 0 || int(n) > len(b)/2 {
		return nil, false
	}
	topics := make([]string, 0, n)
	for i := int32(0); i < n; i++ {
		if len(b) < 2 {
			return nil, false
		}
		l := int16(binary.BigEndian.Uint16(b))
		b = b[2:]
		if l < 0 || int(l) > len(b) {
			return nil, false
		}
		topics = append(topics, string(b[:l]))
		b = b[l:]
	}
	if len(b) < 4 {
		return nil, false
	}
	if l := int32(binary.BigEndian.Uint32(b)); l > int32(len(b)-4) {
		return nil, false
	}
	return topics, true
}

// newMemberID is Kafka's generateMemberId: the instance ID (static) or the
// client ID, a dash, and a random UUID.
func newMemberID(clientID string, instanceID *string) string {
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// currentMembers lists the members with their metadata for the selected
// protocol, as the leader's JoinGroup response carries them.
func (g *group) currentMembers() []kmsg.JoinGroupResponseMember {
	out := make([]kmsg.JoinGroupResponseMember, 0, len(g.order))
	for _, id := range g.order {
		m := g.members[id]
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		jm.InstanceID = optString(m.instanceID)
		jm.ProtocolMetadata = nonNil(m.metadata(g.protocol))
		out = append(out, jm)
	}
	return out
}

func convertProtocols(ps []kmsg.JoinGroupRequestProtocol) []protocol {
	out := make([]protocol, len(ps))
	for i, p := range ps {
		out[i] = protocol{name: p.Name, metadata: append([]byte(nil), p.Metadata...)}
	}
	return out
}

func protocolsOf(m *member) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(m.protocols))
	for i, p := range m.protocols {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.name, Metadata: p.metadata}
	}
	return out
}
