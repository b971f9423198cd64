package compat

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka error codes the edge cases expect, named as in the protocol guide.
var (
	errUnknownMemberID    = kerr.UnknownMemberID.Code
	errIllegalGeneration  = kerr.IllegalGeneration.Code
	errMemberIDRequired   = kerr.MemberIDRequired.Code
	errNonEmptyGroup      = kerr.NonEmptyGroup.Code
	errGroupIDNotFound    = kerr.GroupIDNotFound.Code
	errGroupSubscribed    = kerr.GroupSubscribedToTopic.Code
	errFencedInstanceID   = kerr.FencedInstanceID.Code
	errCoordNotAvailable  = kerr.CoordinatorNotAvailable.Code
	errCoordLoadInProcess = kerr.CoordinatorLoadInProgress.Code
)

// groupAPIs are the keys a classic consumer group needs, with the versions
// the edge cases below send. Kafka 4 advertises at least these.
var groupAPIs = map[int16][]int16{
	8:  {2, 8},       // OffsetCommit
	9:  {1, 7, 8},    // OffsetFetch
	10: {0, 3, 4},    // FindCoordinator
	11: {2, 3, 4, 9}, // JoinGroup
	12: {0, 4},       // Heartbeat
	13: {1, 3},       // LeaveGroup
	14: {0, 5},       // SyncGroup
	15: {0, 5},       // DescribeGroups
	16: {0, 4},       // ListGroups
	42: {0, 2},       // DeleteGroups
	47: {0},          // OffsetDelete
}

// edgeEnv is what every edge case needs: the broker and its versions.
type edgeEnv struct {
	b        *Broker
	adm      *kadm.Client
	versions map[int16]kmsg.ApiVersionsResponseApiKey
	topic    string
}

// maxV is the highest version of key both the broker and kmsg support.
func (e *edgeEnv) maxV(key int16) int16 {
	req := kmsg.RequestForKey(key)
	return min(e.versions[key].MaxVersion, req.MaxVersion())
}

// TestGroupEdgeAnswers checks the answers client test suites assert for
// unknown, empty and misbehaving group members, request by request, with
// hand-pinned versions on raw connections.
func TestGroupEdgeAnswers(t *testing.T) {
	b := startGroupBroker(t)
	e := &edgeEnv{b: b, adm: newAdmin(t, b), versions: apiVersionsMap(t, b), topic: "edge"}
	createTopic(t, e.adm, e.topic, 2, nil)
	createTopic(t, e.adm, "edge2", 1, nil)

	t.Run("api_versions", func(t *testing.T) {
		for key, vs := range groupAPIs {
			v, ok := e.versions[key]
			if !ok {
				t.Errorf("ApiVersions lacks %s (%d)", kmsg.NameForKey(key), key)
				continue
			}
			for _, want := range vs {
				if want < v.MinVersion || want > v.MaxVersion {
					t.Errorf("%s advertised v%d-v%d; Kafka 4 serves v%d", kmsg.NameForKey(key), v.MinVersion, v.MaxVersion, want)
				}
			}
		}
	})
	t.Run("find_coordinator", func(t *testing.T) { edgeFindCoordinator(t, e) })
	t.Run("offset_fetch_no_commits", func(t *testing.T) { edgeOffsetFetchNoCommits(t, e) })
	t.Run("describe_unknown_group", func(t *testing.T) { edgeDescribeUnknown(t, e) })
	t.Run("member_id_required", func(t *testing.T) { edgeMemberIDRequired(t, e) })
	t.Run("unknown_member", func(t *testing.T) { edgeUnknownMember(t, e) })
	t.Run("list_groups_states", func(t *testing.T) { edgeListGroups(t, e) })
	t.Run("delete_groups", func(t *testing.T) { edgeDeleteGroups(t, e) })
	t.Run("offset_delete", func(t *testing.T) { edgeOffsetDelete(t, e) })
	t.Run("static_member_fenced", func(t *testing.T) { edgeStaticFencing(t, e) })
}

// findCoordinator asks for one group's coordinator at version v, retrying
// while __consumer_offsets is created or loaded, as clients do.
func findCoordinator(t *testing.T, e *edgeEnv, v int16, keys ...string) *kmsg.FindCoordinatorResponse {
	t.Helper()
	var resp *kmsg.FindCoordinatorResponse
	waitFor(t, 20*time.Second, fmt.Sprintf("FindCoordinator v%d %v", v, keys), func() error {
		rc := dialRaw(t, e.b)
		defer rc.c.Close()
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version = v
		if v >= 4 {
			req.CoordinatorKeys = keys
		} else {
			req.CoordinatorKey = keys[0]
		}
		resp = rc.roundTrip(req).(*kmsg.FindCoordinatorResponse)
		codes := []int16{resp.ErrorCode}
		for _, c := range resp.Coordinators {
			codes = append(codes, c.ErrorCode)
		}
		for _, c := range codes {
			if c == errCoordNotAvailable || c == errCoordLoadInProcess {
				return fmt.Errorf("still %s", errCode(c))
			}
		}
		// The coordinator is found as soon as it is placed, but answers
		// COORDINATOR_LOAD_IN_PROGRESS until it has replayed its
		// partition of __consumer_offsets, as Kafka does; clients retry.
		for _, key := range keys {
			of := kmsg.NewPtrOffsetFetchRequest()
			of.Version = 7
			of.Group = key
			if c := rc.roundTrip(of).(*kmsg.OffsetFetchResponse).ErrorCode; c != 0 {
				return fmt.Errorf("OffsetFetch probe of %s: %s", key, errCode(c))
			}
		}
		return nil
	})
	return resp
}

func edgeFindCoordinator(t *testing.T, e *edgeEnv) {
	host, portStr, err := net.SplitHostPort(e.b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	port64, _ := strconv.ParseInt(portStr, 10, 32)
	port := int32(port64)
	for _, v := range []int16{0, 3} {
		resp := findCoordinator(t, e, v, "fc-single")
		if resp.ErrorCode != 0 || resp.NodeID != 1 || resp.Host != host || resp.Port != port {
			t.Errorf("FindCoordinator v%d: error %s node %d at %s:%d, want node 1 at %s", v, errCode(resp.ErrorCode), resp.NodeID, resp.Host, resp.Port, e.b.Addr())
		}
		if len(resp.Coordinators) != 0 {
			t.Errorf("FindCoordinator v%d answered %d batched coordinators", v, len(resp.Coordinators))
		}
	}
	keys := []string{"fc-a", "fc-b", "fc-c"}
	for _, v := range []int16{4, e.maxV(10)} {
		resp := findCoordinator(t, e, v, keys...)
		var got []string
		for _, c := range resp.Coordinators {
			got = append(got, c.Key)
			if c.ErrorCode != 0 || c.NodeID != 1 || c.Host != host || c.Port != port {
				t.Errorf("FindCoordinator v%d key %q: error %s node %d at %s:%d, want node 1 at %s", v, c.Key, errCode(c.ErrorCode), c.NodeID, c.Host, c.Port, e.b.Addr())
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Errorf("FindCoordinator v%d keys %v answered for %v", v, keys, got)
		}
	}
}

func edgeOffsetFetchNoCommits(t *testing.T, e *edgeEnv) {
	findCoordinator(t, e, 3, "never-committed")
	rc := dialRaw(t, e.b)
	for _, v := range []int16{1, 7} {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = v
		req.Group = "never-committed"
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic = e.topic
		rt.Partitions = []int32{0, 1}
		req.Topics = append(req.Topics, rt)
		resp := rc.roundTrip(req).(*kmsg.OffsetFetchResponse)
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("OffsetFetch v%d for a group without commits: error %s, topics %+v; want no error and both partitions", v, errCode(resp.ErrorCode), resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 || p.Offset != -1 {
				t.Errorf("OffsetFetch v%d partition %d: offset %d error %s, want -1 and no error", v, p.Partition, p.Offset, errCode(p.ErrorCode))
			}
		}
	}
	// All topics (null list, v2+): nothing committed, nothing listed.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group = "never-committed"
	resp := rc.roundTrip(req).(*kmsg.OffsetFetchResponse)
	if resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Errorf("OffsetFetch v7 all topics, no commits: error %s, topics %+v", errCode(resp.ErrorCode), resp.Topics)
	}

	// Batched (v8+): one group with a commit on partition 0 only, one
	// without any.
	ctx := testCtx(t, 15*time.Second)
	offs := make(kadm.Offsets)
	offs.Add(kadm.Offset{Topic: e.topic, Partition: 0, At: 5, LeaderEpoch: -1, Metadata: "meta-5"})
	if err := e.adm.CommitAllOffsets(ctx, "half-committed", offs); err != nil {
		t.Fatalf("simple commit to an empty group: %v", err)
	}
	findCoordinator(t, e, 3, "also-never")
	breq := kmsg.NewPtrOffsetFetchRequest()
	breq.Version = 8
	for _, g := range []string{"half-committed", "also-never"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		gt := kmsg.NewOffsetFetchRequestGroupTopic()
		gt.Topic = e.topic
		gt.Partitions = []int32{0, 1}
		rg.Topics = append(rg.Topics, gt)
		breq.Groups = append(breq.Groups, rg)
	}
	bresp := rc.roundTrip(breq).(*kmsg.OffsetFetchResponse)
	got := map[string]map[int32]string{}
	for _, g := range bresp.Groups {
		if g.ErrorCode != 0 {
			t.Errorf("OffsetFetch v8 group %s: %s", g.Group, errCode(g.ErrorCode))
		}
		got[g.Group] = map[int32]string{}
		for _, tp := range g.Topics {
			for _, p := range tp.Partitions {
				meta := ""
				if p.Metadata != nil {
					meta = *p.Metadata
				}
				got[g.Group][p.Partition] = fmt.Sprintf("%d/%q/%d", p.Offset, meta, p.ErrorCode)
			}
		}
	}
	want := map[string]map[int32]string{
		"half-committed": {0: `5/"meta-5"/0`, 1: `-1/""/0`},
		"also-never":     {0: `-1/""/0`, 1: `-1/""/0`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("OffsetFetch v8 batched: got (offset/metadata/error) %v, want %v", got, want)
	}
}

func edgeDescribeUnknown(t *testing.T, e *edgeEnv) {
	findCoordinator(t, e, 3, "no-such-group")
	rc := dialRaw(t, e.b)
	for _, v := range []int16{0, 5, e.maxV(15)} {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Version = v
		req.Groups = []string{"no-such-group"}
		resp := rc.roundTrip(req).(*kmsg.DescribeGroupsResponse)
		if len(resp.Groups) != 1 {
			t.Fatalf("DescribeGroups v%d: %d groups", v, len(resp.Groups))
		}
		g := resp.Groups[0]
		// Up to v5 an unknown group is Dead with no error; v6 (KIP-1043)
		// adds GROUP_ID_NOT_FOUND, still with state Dead.
		want := int16(0)
		if v >= 6 {
			want = errGroupIDNotFound
		}
		if g.Group != "no-such-group" || g.ErrorCode != want || g.State != "Dead" || g.ProtocolType != "" || len(g.Members) != 0 {
			t.Errorf("DescribeGroups v%d unknown group: %q error %s state %q type %q %d members; want state Dead, error %s", v, g.Group, errCode(g.ErrorCode), g.State, g.ProtocolType, len(g.Members), errCode(want))
		}
	}
}

// rawMember is a group member driven by hand on its own connection
// (JoinGroup blocks the connection until the rebalance completes).
type rawMember struct {
	rc       *rawConn
	group    string
	id       string
	instance *string
	gen      int32
	topics   []string
}

func newRawMember(t *testing.T, e *edgeEnv, group string, instance *string, topics ...string) *rawMember {
	t.Helper()
	findCoordinator(t, e, 3, group)
	return &rawMember{rc: dialRaw(t, e.b), group: group, instance: instance, topics: topics}
}

// joinRequest builds a JoinGroup at version v with the member's current
// ID, offering the given assignors (range when none).
func (m *rawMember) joinRequest(v int16, protocols ...string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = v
	req.Group = m.group
	req.SessionTimeoutMillis = 30000
	req.RebalanceTimeoutMillis = 8000
	req.MemberID = m.id
	req.InstanceID = m.instance
	req.ProtocolType = "consumer"
	if len(protocols) == 0 {
		protocols = []string{"range"}
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = m.topics
	for _, name := range protocols {
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = name
		p.Metadata = meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
	}
	return req
}

// join sends one JoinGroup and waits for its answer.
func (m *rawMember) join(v int16, protocols ...string) *kmsg.JoinGroupResponse {
	return m.rc.roundTrip(m.joinRequest(v, protocols...)).(*kmsg.JoinGroupResponse)
}

// awaitResponse reads the response to a request sent earlier with send, so
// a test can have several blocking requests (JoinGroup) in flight on
// different connections from one goroutine.
func (r *rawConn) awaitResponse(req kmsg.Request, corr int32, d time.Duration) kmsg.Response {
	r.t.Helper()
	body, err := r.readFrame(d)
	if err != nil {
		r.t.Fatalf("%s v%d: no response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	rest, err := r.parseHeader(body, corr, resp.IsFlexible())
	if err != nil {
		r.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	if err := resp.ReadFrom(rest); err != nil {
		r.t.Fatalf("%s v%d: decode response: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

// joinAndSync joins (answering MEMBER_ID_REQUIRED once, as clients do) and,
// as the only member and so the leader, syncs an assignment of partition 0
// of every topic. It fails unless both succeed.
func (m *rawMember) joinAndSync(t *testing.T, v int16) *kmsg.SyncGroupResponse {
	t.Helper()
	resp := m.join(v)
	if resp.ErrorCode == errMemberIDRequired {
		m.id = resp.MemberID
		resp = m.join(v)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("JoinGroup v%d %s: %s", v, m.group, errCode(resp.ErrorCode))
	}
	m.id, m.gen = resp.MemberID, resp.Generation
	if resp.LeaderID != m.id {
		t.Fatalf("JoinGroup %s: sole member %s is not the leader (%s)", m.group, m.id, resp.LeaderID)
	}
	sresp := m.sync(5, m.gen, m.assignment())
	if sresp.ErrorCode != 0 {
		t.Fatalf("SyncGroup %s: %s", m.group, errCode(sresp.ErrorCode))
	}
	return sresp
}

func (m *rawMember) assignment() []byte {
	a := kmsg.NewConsumerMemberAssignment()
	for _, tp := range m.topics {
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic = tp
		at.Partitions = []int32{0}
		a.Topics = append(a.Topics, at)
	}
	return a.AppendTo(nil)
}

func (m *rawMember) sync(v int16, gen int32, assignment []byte) *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = v
	req.Group = m.group
	req.Generation = gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	req.ProtocolType = kmsg.StringPtr("consumer")
	req.Protocol = kmsg.StringPtr("range")
	if assignment != nil {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID = m.id
		ga.MemberAssignment = assignment
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	return m.rc.roundTrip(req).(*kmsg.SyncGroupResponse)
}

func (m *rawMember) heartbeat(v int16, gen int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = v
	req.Group = m.group
	req.Generation = gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	return m.rc.roundTrip(req).(*kmsg.HeartbeatResponse).ErrorCode
}

// leave sends LeaveGroup v3 for this member and returns the top-level and
// the member-level error codes.
func (m *rawMember) leave() (int16, int16) {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 3
	req.Group = m.group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = m.id
	lm.InstanceID = m.instance
	req.Members = append(req.Members, lm)
	resp := m.rc.roundTrip(req).(*kmsg.LeaveGroupResponse)
	member := int16(-999)
	if len(resp.Members) == 1 {
		member = resp.Members[0].ErrorCode
	}
	return resp.ErrorCode, member
}

func edgeMemberIDRequired(t *testing.T, e *edgeEnv) {
	m := newRawMember(t, e, "kip-394", nil, e.topic)
	for _, v := range []int16{4, e.maxV(11)} {
		m.id = ""
		resp := m.join(v)
		if resp.ErrorCode != errMemberIDRequired || resp.MemberID == "" || resp.Generation != -1 {
			t.Fatalf("JoinGroup v%d with an empty member ID: error %s member %q generation %d; want MEMBER_ID_REQUIRED with a member ID and generation -1",
				v, errCode(resp.ErrorCode), resp.MemberID, resp.Generation)
		}
		m.id = resp.MemberID
		resp = m.join(v)
		if resp.ErrorCode != 0 || resp.MemberID != m.id || resp.LeaderID != m.id || resp.Generation < 1 {
			t.Fatalf("JoinGroup v%d rejoin with the given ID %s: error %s member %q leader %q generation %d", v, m.id, errCode(resp.ErrorCode), resp.MemberID, resp.LeaderID, resp.Generation)
		}
		if resp.Protocol == nil || *resp.Protocol != "range" || len(resp.Members) != 1 || resp.Members[0].MemberID != m.id {
			t.Fatalf("JoinGroup v%d: protocol %v, members %+v; want range and the leader listing itself", v, resp.Protocol, resp.Members)
		}
		meta := kmsg.NewConsumerMemberMetadata()
		if err := meta.ReadFrom(resp.Members[0].ProtocolMetadata); err != nil || !slices.Equal(meta.Topics, []string{e.topic}) {
			t.Fatalf("JoinGroup v%d: the leader's copy of the member metadata does not round-trip (%v, %v)", v, err, meta.Topics)
		}
		m.gen = resp.Generation
		// A stale generation is refused; the right one gets the
		// assignment back byte for byte.
		if s := m.sync(5, m.gen+1, m.assignment()); s.ErrorCode != errIllegalGeneration {
			t.Errorf("SyncGroup with generation %d (current %d): %s, want ILLEGAL_GENERATION", m.gen+1, m.gen, errCode(s.ErrorCode))
		}
		s := m.sync(5, m.gen, m.assignment())
		if s.ErrorCode != 0 || !bytes.Equal(s.MemberAssignment, m.assignment()) || s.Protocol == nil || *s.Protocol != "range" {
			t.Fatalf("SyncGroup v5: error %s assignment %x protocol %v; want our assignment %x and range", errCode(s.ErrorCode), s.MemberAssignment, s.Protocol, m.assignment())
		}
		if c := m.heartbeat(4, m.gen); c != 0 {
			t.Errorf("Heartbeat of the live member: %s", errCode(c))
		}
		if c := m.heartbeat(4, m.gen-1); c != errIllegalGeneration {
			t.Errorf("Heartbeat with generation %d (current %d): %s, want ILLEGAL_GENERATION", m.gen-1, m.gen, errCode(c))
		}
		if top, mem := m.leave(); top != 0 || mem != 0 {
			t.Fatalf("LeaveGroup v3: top %s member %s", errCode(top), errCode(mem))
		}
	}
	// Before KIP-394 (JoinGroup v3) the broker admits an empty member ID
	// at once.
	old := newRawMember(t, e, "pre-kip-394", nil, e.topic)
	resp := old.join(3)
	if resp.ErrorCode != 0 || resp.MemberID == "" || resp.LeaderID != resp.MemberID {
		t.Fatalf("JoinGroup v3 with an empty member ID: error %s member %q leader %q; want an immediate join", errCode(resp.ErrorCode), resp.MemberID, resp.LeaderID)
	}
	old.id = resp.MemberID
	old.leave()
}

func edgeUnknownMember(t *testing.T, e *edgeEnv) {
	// A live group, so "unknown" means the member, not the group.
	live := newRawMember(t, e, "um-live", nil, e.topic)
	live.joinAndSync(t, 4)
	for _, group := range []string{"um-live", "um-no-such-group"} {
		ghost := newRawMember(t, e, group, nil, e.topic)
		ghost.id = "ghost-member-id"
		if c := ghost.heartbeat(0, live.gen); c != errUnknownMemberID {
			t.Errorf("Heartbeat v0 from an unknown member of %s: %s, want UNKNOWN_MEMBER_ID", group, errCode(c))
		}
		if c := ghost.heartbeat(e.maxV(12), live.gen); c != errUnknownMemberID {
			t.Errorf("Heartbeat v%d from an unknown member of %s: %s, want UNKNOWN_MEMBER_ID", e.maxV(12), group, errCode(c))
		}
		for _, v := range []int16{0, e.maxV(14)} {
			if s := ghost.sync(v, live.gen, nil); s.ErrorCode != errUnknownMemberID {
				t.Errorf("SyncGroup v%d from an unknown member of %s: %s, want UNKNOWN_MEMBER_ID", v, group, errCode(s.ErrorCode))
			}
		}
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Version = 1
		req.Group = group
		req.MemberID = ghost.id
		if resp := ghost.rc.roundTrip(req).(*kmsg.LeaveGroupResponse); resp.ErrorCode != errUnknownMemberID {
			t.Errorf("LeaveGroup v1 from an unknown member of %s: %s, want UNKNOWN_MEMBER_ID", group, errCode(resp.ErrorCode))
		}
		// Batched leave (v3+): the member's own entry carries the error.
		if top, mem := ghost.leave(); top != 0 || mem != errUnknownMemberID {
			t.Errorf("LeaveGroup v3 from an unknown member of %s: top-level %s, member %s; want none and UNKNOWN_MEMBER_ID", group, errCode(top), errCode(mem))
		}
	}
	// None of that disturbed the live member.
	if c := live.heartbeat(4, live.gen); c != 0 {
		t.Errorf("live member heartbeat after the unknown-member requests: %s", errCode(c))
	}
	live.leave()
}

// listGroups sends ListGroups at v with a states filter and returns group →
// "state/protocolType".
func listGroups(t *testing.T, e *edgeEnv, v int16, states ...string) map[string]string {
	t.Helper()
	rc := dialRaw(t, e.b)
	defer rc.c.Close()
	req := kmsg.NewPtrListGroupsRequest()
	req.Version = v
	req.StatesFilter = states
	resp := rc.roundTrip(req).(*kmsg.ListGroupsResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("ListGroups v%d %v: %s", v, states, errCode(resp.ErrorCode))
	}
	out := map[string]string{}
	for _, g := range resp.Groups {
		out[g.Group] = g.GroupState + "/" + g.ProtocolType
		if v >= 5 && g.GroupType != "classic" {
			t.Errorf("ListGroups v%d: group %s has type %q, want classic", v, g.Group, g.GroupType)
		}
	}
	return out
}

func edgeListGroups(t *testing.T, e *edgeEnv) {
	ctx := testCtx(t, 15*time.Second)
	offs := make(kadm.Offsets)
	offs.Add(kadm.Offset{Topic: e.topic, Partition: 1, At: 3, LeaderEpoch: -1})
	if err := e.adm.CommitAllOffsets(ctx, "lg-empty", offs); err != nil {
		t.Fatalf("simple commit: %v", err)
	}
	live := newRawMember(t, e, "lg-stable", nil, e.topic)
	live.joinAndSync(t, 4)
	defer live.leave()

	all := listGroups(t, e, 0)
	if all["lg-empty"] != "/" || all["lg-stable"] != "/consumer" {
		t.Errorf("ListGroups v0: lg-empty %q, lg-stable %q; want protocol types \"\" and consumer", all["lg-empty"], all["lg-stable"])
	}
	v := e.maxV(16)
	cases := []struct {
		states     []string
		want, nope []string
	}{
		{nil, []string{"lg-empty", "lg-stable"}, nil},
		{[]string{"Empty"}, []string{"lg-empty"}, []string{"lg-stable"}},
		{[]string{"Stable"}, []string{"lg-stable"}, []string{"lg-empty"}},
		{[]string{"Stable", "Empty"}, []string{"lg-empty", "lg-stable"}, nil},
		{[]string{"Dead"}, nil, []string{"lg-empty", "lg-stable"}},
	}
	for _, c := range cases {
		got := listGroups(t, e, v, c.states...)
		for _, g := range c.want {
			if _, ok := got[g]; !ok {
				t.Errorf("ListGroups v%d states %v: %s missing (got %v)", v, c.states, g, got)
			}
		}
		for _, g := range c.nope {
			if _, ok := got[g]; ok {
				t.Errorf("ListGroups v%d states %v: %s listed (got %v)", v, c.states, g, got)
			}
		}
		if s, ok := got["lg-stable"]; ok && s != "Stable/consumer" {
			t.Errorf("ListGroups v%d: lg-stable is %q, want Stable/consumer", v, s)
		}
		if s, ok := got["lg-empty"]; ok && s != "Empty/" {
			t.Errorf("ListGroups v%d: lg-empty is %q, want Empty with no protocol type", v, s)
		}
	}
}

// deleteGroups sends DeleteGroups at the highest common version.
func deleteGroups(t *testing.T, e *edgeEnv, groups ...string) map[string]int16 {
	t.Helper()
	rc := dialRaw(t, e.b)
	defer rc.c.Close()
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = e.maxV(42)
	req.Groups = groups
	resp := rc.roundTrip(req).(*kmsg.DeleteGroupsResponse)
	out := map[string]int16{}
	for _, g := range resp.Groups {
		out[g.Group] = g.ErrorCode
	}
	return out
}

// commitAsMember commits offset at for partition 0 of topic with the
// member's generation and ID.
func (m *rawMember) commitAsMember(t *testing.T, topic string, at int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition = 0
	rp.Offset = at
	rp.LeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := m.rc.roundTrip(req).(*kmsg.OffsetCommitResponse)
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("OffsetCommit v8 by member %s of %s: %s", m.id, m.group, errCode(p.ErrorCode))
			}
		}
	}
}

func edgeDeleteGroups(t *testing.T, e *edgeEnv) {
	m := newRawMember(t, e, "dg", nil, e.topic)
	m.joinAndSync(t, 4)
	m.commitAsMember(t, e.topic, 7)
	if got := fetchCommitted(t, e.adm, "dg", e.topic, 2); got[0] != 7 || got[1] != -1 {
		t.Fatalf("committed by the member: %v, want p0=7 p1=-1", got)
	}
	if got := deleteGroups(t, e, "dg"); got["dg"] != errNonEmptyGroup {
		t.Fatalf("DeleteGroups with a live member: %s, want NON_EMPTY_GROUP", errCode(got["dg"]))
	}
	if top, mem := m.leave(); top != 0 || mem != 0 {
		t.Fatalf("LeaveGroup: %s / %s", errCode(top), errCode(mem))
	}
	if got := deleteGroups(t, e, "dg", "dg-never-existed"); got["dg"] != 0 || got["dg-never-existed"] != errGroupIDNotFound {
		t.Fatalf("DeleteGroups after the member left: dg %s, dg-never-existed %s; want none and GROUP_ID_NOT_FOUND",
			errCode(got["dg"]), errCode(got["dg-never-existed"]))
	}
	d := describeGroup(t, e.adm, "dg")
	if d.State != "Dead" || (d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound)) {
		t.Errorf("deleted group described as %q (%v), want Dead", d.State, d.Err)
	}
	if got := fetchCommitted(t, e.adm, "dg", e.topic, 2); got[0] != -1 || got[1] != -1 {
		t.Errorf("deleted group still has commits %v", got)
	}
	if got := deleteGroups(t, e, "dg"); got["dg"] != errGroupIDNotFound {
		t.Errorf("DeleteGroups twice: %s, want GROUP_ID_NOT_FOUND", errCode(got["dg"]))
	}
}

// offsetDelete sends OffsetDelete v0 for partitions of topics.
func offsetDelete(t *testing.T, e *edgeEnv, group string, parts map[string][]int32) *kmsg.OffsetDeleteResponse {
	t.Helper()
	rc := dialRaw(t, e.b)
	defer rc.c.Close()
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Version = 0
	req.Group = group
	for tp, ps := range parts {
		rt := kmsg.NewOffsetDeleteRequestTopic()
		rt.Topic = tp
		for _, p := range ps {
			rp := kmsg.NewOffsetDeleteRequestTopicPartition()
			rp.Partition = p
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return rc.roundTrip(req).(*kmsg.OffsetDeleteResponse)
}

func partitionCodes(resp *kmsg.OffsetDeleteResponse) map[string]int16 {
	out := map[string]int16{}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			out[fmt.Sprintf("%s/%d", tp.Topic, p.Partition)] = p.ErrorCode
		}
	}
	return out
}

func edgeOffsetDelete(t *testing.T, e *edgeEnv) {
	ctx := testCtx(t, 15*time.Second)
	offs := make(kadm.Offsets)
	offs.Add(kadm.Offset{Topic: e.topic, Partition: 0, At: 4, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: e.topic, Partition: 1, At: 6, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "edge2", Partition: 0, At: 2, LeaderEpoch: -1})
	if err := e.adm.CommitAllOffsets(ctx, "od", offs); err != nil {
		t.Fatalf("simple commit: %v", err)
	}
	resp := offsetDelete(t, e, "od", map[string][]int32{e.topic: {0, 1}})
	if resp.ErrorCode != 0 {
		t.Fatalf("OffsetDelete on an empty group: %s", errCode(resp.ErrorCode))
	}
	if got := partitionCodes(resp); len(got) != 2 || got[e.topic+"/0"] != 0 || got[e.topic+"/1"] != 0 {
		t.Fatalf("OffsetDelete partitions: %v", got)
	}
	if got := fetchCommitted(t, e.adm, "od", e.topic, 2); got[0] != -1 || got[1] != -1 {
		t.Errorf("after OffsetDelete %s still committed: %v", e.topic, got)
	}
	if got := fetchCommitted(t, e.adm, "od", "edge2", 1); got[0] != 2 {
		t.Errorf("OffsetDelete of %s also removed edge2's commit: %v", e.topic, got)
	}

	// A group whose live member subscribes to the topic keeps its offsets.
	m := newRawMember(t, e, "od-active", nil, e.topic)
	m.joinAndSync(t, 4)
	defer m.leave()
	m.commitAsMember(t, e.topic, 9)
	resp = offsetDelete(t, e, "od-active", map[string][]int32{e.topic: {0}})
	if got := partitionCodes(resp); resp.ErrorCode != 0 || got[e.topic+"/0"] != errGroupSubscribed {
		t.Errorf("OffsetDelete of a subscribed topic: top %s partitions %v; want GROUP_SUBSCRIBED_TO_TOPIC on the partition", errCode(resp.ErrorCode), got)
	}
	if got := fetchCommitted(t, e.adm, "od-active", e.topic, 2); got[0] != 9 {
		t.Errorf("refused OffsetDelete still removed the commit: %v", got)
	}

	findCoordinator(t, e, 3, "od-no-such-group")
	resp = offsetDelete(t, e, "od-no-such-group", map[string][]int32{e.topic: {0}})
	if resp.ErrorCode != errGroupIDNotFound {
		t.Errorf("OffsetDelete on an unknown group: %s, want GROUP_ID_NOT_FOUND", errCode(resp.ErrorCode))
	}
}

func edgeStaticFencing(t *testing.T, e *edgeEnv) {
	inst := kmsg.StringPtr("fence-me")
	a := newRawMember(t, e, "static-edge", inst, e.topic)
	a.joinAndSync(t, e.maxV(11))
	// The same instance joins again with no member ID: Kafka gives it a
	// new member ID in the same generation (no rebalance) and fences the
	// old one.
	b := newRawMember(t, e, "static-edge", inst, e.topic)
	resp := b.join(e.maxV(11))
	if resp.ErrorCode != 0 || resp.MemberID == "" || resp.MemberID == a.id || resp.Generation != a.gen {
		t.Fatalf("static rejoin: error %s member %q generation %d; want a new member ID (old %s) in generation %d",
			errCode(resp.ErrorCode), resp.MemberID, resp.Generation, a.id, a.gen)
	}
	if v := e.maxV(11); v >= 9 && (!resp.SkipAssignment || resp.LeaderID != resp.MemberID) {
		t.Errorf("static rejoin of the leader at JoinGroup v%d: skip assignment %v, leader %q; want true and the new member ID %q (KIP-814)", v, resp.SkipAssignment, resp.LeaderID, resp.MemberID)
	}
	b.id, b.gen = resp.MemberID, resp.Generation
	if c := a.heartbeat(e.maxV(12), a.gen); c != errFencedInstanceID {
		t.Errorf("heartbeat of the replaced static member: %s, want FENCED_INSTANCE_ID", errCode(c))
	}
	if c := b.heartbeat(e.maxV(12), b.gen); c != 0 {
		t.Errorf("heartbeat of the new static member: %s", errCode(c))
	}
	// An admin removes the instance by ID alone.
	b.id = ""
	if top, mem := b.leave(); top != 0 || mem != 0 {
		t.Errorf("LeaveGroup by instance ID: %s / %s", errCode(top), errCode(mem))
	}
	waitFor(t, 10*time.Second, "static group empty", func() error {
		if d := describeGroup(t, e.adm, "static-edge"); d.State != "Empty" {
			return fmt.Errorf("state %q with %d members", d.State, len(d.Members))
		}
		return nil
	})
}
