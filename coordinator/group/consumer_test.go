package group

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

// TestConsumerGroupUniform: three members join one by one; the uniform
// assignor spreads 6 partitions 2/2/2, each joiner getting partitions only
// once their previous owner revoked them (no partition is ever owned by two
// members across the heartbeats); a member leaving hands its partitions on.
func TestConsumerGroupUniform(t *testing.T) {
	tt := newTopicTable()
	tt.set("t6", 6)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))

	a := newCClient(s, tt, "g", "t6")
	resp := a.join(t)
	if resp.MemberEpoch != 1 || len(a.owned) != 6 || resp.HeartbeatIntervalMillis != 5000 {
		t.Fatalf("first member: epoch %d owns %v interval %d", resp.MemberEpoch, a.ownedList(), resp.HeartbeatIntervalMillis)
	}
	b := newCClient(s, tt, "g", "t6")
	resp = b.join(t)
	if resp.MemberEpoch != 2 || len(b.owned) != 0 {
		t.Fatalf("second member must wait for revocation: epoch %d owns %v", resp.MemberEpoch, b.ownedList())
	}
	cs := []*cclient{a, b}
	converge(t, cs, balanced(t, s, "g", cs, 3, 3))

	c := newCClient(s, tt, "g", "t6")
	c.join(t)
	cs = append(cs, c)
	checkDisjoint(t, cs)
	converge(t, cs, balanced(t, s, "g", cs, 2, 2, 2))
	d := cdescribe(t, s, "g")
	if d.Epoch != 3 || d.AssignmentEpoch != 3 || d.AssignorName != "uniform" || len(d.Members) != 3 {
		t.Fatalf("describe after three joins: %+v", d)
	}

	// b leaves: a and c take its partitions.
	b.leave(t, leaveEpoch)
	cs = []*cclient{a, c}
	converge(t, cs, balanced(t, s, "g", cs, 3, 3))
	if d := cdescribe(t, s, "g"); d.Epoch != 4 || len(d.Members) != 2 {
		t.Fatalf("describe after leave: epoch %d members %d", d.Epoch, len(d.Members))
	}
	// A heartbeat from the departed member is unknown.
	wantCode(t, "departed member", s.ConsumerGroupHeartbeat(tctx(t), b.request(b.epoch)).ErrorCode, errUnknownMemberID)
}

// TestConsumerGroupRevocationFirst checks the member state machine: a
// member that must give partitions up stays at its epoch until it reports
// them revoked, and the new owner gets them only afterwards.
func TestConsumerGroupRevocationFirst(t *testing.T) {
	tt := newTopicTable()
	tt.set("t", 4)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))
	a := newCClient(s, tt, "g", "t")
	a.join(t)
	b := newCClient(s, tt, "g", "t")
	b.join(t) // epoch 2, nothing yet

	// a learns it must revoke two partitions; its epoch stays 1.
	owned := a.request(a.epoch).Topics // still all four
	resp := a.heartbeat(t)
	if resp.MemberEpoch != 1 || resp.Assignment == nil || len(a.owned) != 2 {
		t.Fatalf("a must revoke at epoch 1: epoch %d owns %v", resp.MemberEpoch, a.ownedList())
	}
	// b asks again while a has not acknowledged: nothing for b.
	resp = b.heartbeat(t)
	if len(b.owned) != 0 || resp.MemberEpoch != 2 {
		t.Fatalf("b got partitions before a revoked: %v", b.ownedList())
	}
	// a heartbeats claiming it still owns all four: it stays unrevoked.
	req := a.request(a.epoch)
	req.Topics = owned
	if r := s.ConsumerGroupHeartbeat(tctx(t), req); r.ErrorCode != 0 || r.MemberEpoch != 1 {
		t.Fatalf("a with unrevoked partitions: %s epoch %d", runtimetest.ErrName(r.ErrorCode), r.MemberEpoch)
	}
	if d := cdescribe(t, s, "g"); d.State != "Reconciling" {
		t.Fatalf("state %s, want Reconciling", d.State)
	}
	// a acknowledges: it moves to epoch 2; then b gets the two released.
	if resp = a.heartbeat(t); resp.MemberEpoch != 2 {
		t.Fatalf("a after revoking: epoch %d", resp.MemberEpoch)
	}
	b.heartbeat(t)
	if len(b.owned) != 2 {
		t.Fatalf("b after release owns %v", b.ownedList())
	}
	checkDisjoint(t, []*cclient{a, b})
	if d := cdescribe(t, s, "g"); d.State != "Stable" {
		t.Fatalf("state %s, want Stable", d.State)
	}
}

func TestConsumerGroupSessionExpiry(t *testing.T) {
	tt := newTopicTable()
	tt.set("t6", 6)
	cfg := consumerConfig(tt)
	cfg.ConsumerSessionTimeout = 300 * time.Millisecond
	cfg.ConsumerHeartbeatInterval = 50 * time.Millisecond
	s := startShard(t, &runtimetest.Log{}, cfg)
	a := newCClient(s, tt, "g", "t6")
	b := newCClient(s, tt, "g", "t6")
	a.join(t)
	b.join(t)
	cs := []*cclient{a, b}
	converge(t, cs, balanced(t, s, "g", cs, 3, 3))
	// b goes silent; a keeps heartbeating and ends up with everything.
	converge(t, []*cclient{a}, func() bool {
		time.Sleep(20 * time.Millisecond) // heartbeat pacing, not synchronisation
		return len(a.owned) == 6 && len(cdescribe(t, s, "g").Members) == 1
	})
	r := s.ConsumerGroupHeartbeat(tctx(t), b.request(b.epoch))
	wantCode(t, "expired member", r.ErrorCode, errUnknownMemberID)
}

func TestConsumerGroupStaticRejoin(t *testing.T) {
	tt := newTopicTable()
	tt.set("t6", 6)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))
	inst := "instance-1"
	a := newCClient(s, tt, "g", "t6")
	a.instance = &inst
	b := newCClient(s, tt, "g", "t6")
	a.join(t)
	b.join(t)
	cs := []*cclient{a, b}
	converge(t, cs, balanced(t, s, "g", cs, 3, 3))
	before := cdescribe(t, s, "g")
	aOwned := a.ownedList()

	// A second instance with the same ID cannot join while a holds it.
	dup := newCClient(s, tt, "g", "t6")
	dup.instance = &inst
	r := dup.send(t, func() *kmsg.ConsumerGroupHeartbeatRequest {
		req := dup.request(0)
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		return req
	}())
	wantCode(t, "duplicate instance", r.ErrorCode, kerr.UnreleasedInstanceID.Code)

	// a leaves temporarily and comes back under a new member ID: same
	// partitions, same group epoch, b untouched.
	if r := a.leave(t, staticLeaveEpoch); r.MemberEpoch != staticLeaveEpoch {
		t.Fatalf("static leave answered epoch %d", r.MemberEpoch)
	}
	a2 := newCClient(s, tt, "g", "t6")
	a2.instance = &inst
	resp := a2.join(t)
	if got := a2.ownedList(); resp.MemberEpoch != before.Epoch || len(got) != 3 || got[0] != aOwned[0] || got[2] != aOwned[2] {
		t.Fatalf("rejoined static member: epoch %d (group %d) owns %v, had %v", resp.MemberEpoch, before.Epoch, got, aOwned)
	}
	after := cdescribe(t, s, "g")
	if after.Epoch != before.Epoch || after.State != "Stable" || len(after.Members) != 2 {
		t.Fatalf("static rejoin rebalanced: epoch %d -> %d, state %s, %d members", before.Epoch, after.Epoch, after.State, len(after.Members))
	}
	if bResp := b.heartbeat(t); bResp.Assignment != nil && len(b.owned) != 3 {
		t.Fatalf("b's assignment changed: %v", b.ownedList())
	}
	// The old member ID is gone.
	wantCode(t, "replaced member", s.ConsumerGroupHeartbeat(tctx(t), a.request(a.epoch)).ErrorCode, errFencedInstanceID)
}

func TestConsumerGroupRangeAssignor(t *testing.T) {
	tt := newTopicTable()
	tt.set("r", 5)
	tt.set("q", 2)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))
	rng := assignorRange
	a := newCClient(s, tt, "g", "r", "q")
	b := newCClient(s, tt, "g", "r", "q")
	a.id, b.id = "a-member", "b-member"
	a.assignor, b.assignor = &rng, &rng
	a.join(t)
	b.join(t)
	cs := []*cclient{a, b}
	converge(t, cs, balanced(t, s, "g", cs, 4, 3))
	want := []string{"q 0", "r 0", "r 1", "r 2"}
	got := a.ownedList()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("range: a owns %v, want %v (b owns %v)", got, want, b.ownedList())
		}
	}
	if d := cdescribe(t, s, "g"); d.AssignorName != "range" {
		t.Fatalf("assignor %q", d.AssignorName)
	}
	bad := "sticky"
	c := newCClient(s, tt, "g", "r")
	c.assignor = &bad
	req := c.request(0)
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	wantCode(t, "unknown assignor", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.UnsupportedAssignor.Code)
}

func TestConsumerGroupRegexAndMetadataChanges(t *testing.T) {
	tt := newTopicTable()
	tt.set("orders-a", 2)
	tt.set("orders-b", 1)
	tt.set("other", 3)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))
	re := "orders-.*"
	a := newCClient(s, tt, "g", "other")
	a.regex = &re
	a.join(t)
	if got := a.ownedList(); len(got) != 6 {
		t.Fatalf("regex + names subscription owns %v", got)
	}
	epoch := cdescribe(t, s, "g").Epoch

	// A new matching topic, and more partitions for a subscribed one, bump
	// the group epoch at the next heartbeat.
	tt.set("orders-c", 2)
	tt.set("other", 4)
	resp := a.heartbeat(t)
	if resp.MemberEpoch != epoch+1 || len(a.owned) != 9 || resp.Assignment == nil {
		t.Fatalf("after metadata change: epoch %d (was %d) owns %v", resp.MemberEpoch, epoch, a.ownedList())
	}
	if resp = a.heartbeat(t); resp.MemberEpoch != epoch+1 {
		t.Fatalf("unchanged metadata bumped the epoch again: %d", resp.MemberEpoch)
	}

	bad := "orders-(?<=x)"
	c := newCClient(s, tt, "g", "other")
	c.regex = &bad
	req := c.request(0)
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	wantCode(t, "bad regex", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.InvalidRegularExpression.Code)
}

func TestConsumerGroupOffsetCommitEpochs(t *testing.T) {
	tt := newTopicTable()
	tt.set("t", 2)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))
	a := newCClient(s, tt, "g", "t")
	a.join(t)
	commitAt := func(version int16, member string, epoch int32) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version = version
		req.Group = "g"
		req.MemberID = member
		req.Generation = epoch
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, 42
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return s.OffsetCommit(tctx(t), req).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "current epoch", commitAt(9, a.id, a.epoch), 0)
	wantCode(t, "stale epoch", commitAt(9, a.id, a.epoch-1), kerr.StaleMemberEpoch.Code)
	wantCode(t, "unknown member", commitAt(9, "nobody", a.epoch), errUnknownMemberID)
	wantCode(t, "old version", commitAt(8, a.id, a.epoch), kerr.UnsupportedVersion.Code)
	wantCode(t, "simple commit to a non-empty group", commitAt(9, "", -1), errUnknownMemberID)
	if p := fetch(t, s, "g", "t", 0); p.Offset != 42 {
		t.Fatalf("committed offset %d", p.Offset)
	}
	f := kmsg.NewOffsetFetchRequestGroup()
	f.Group, f.MemberID, f.MemberEpoch = "g", &a.id, a.epoch+5
	if r := s.OffsetFetch(tctx(t), f, false); r.ErrorCode != kerr.StaleMemberEpoch.Code {
		t.Fatalf("fetch with a wrong epoch: %s", runtimetest.ErrName(r.ErrorCode))
	}
	a.leave(t, leaveEpoch)
	wantCode(t, "simple commit to an empty group", commitAt(9, "", -1), 0)
}

func TestConsumerGroupReload(t *testing.T) {
	tt := newTopicTable()
	tt.set("t6", 6)
	l := &runtimetest.Log{}
	s := NewShard(0, l, consumerConfig(tt), testLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	inst := "static"
	a := newCClient(s, tt, "g", "t6")
	a.instance = &inst
	b := newCClient(s, tt, "g", "t6")
	re := "t.*"
	b.regex, b.topics = &re, nil
	a.join(t)
	b.join(t)
	cs := []*cclient{a, b}
	converge(t, cs, balanced(t, s, "g", cs, 3, 3))
	before := cdescribe(t, s, "g")
	s.Close()

	s2 := startShard(t, l, consumerConfig(tt))
	after := cdescribe(t, s2, "g")
	if after.ErrorCode != 0 || after.Epoch != before.Epoch || after.AssignmentEpoch != before.AssignmentEpoch ||
		after.State != "Stable" || len(after.Members) != 2 {
		t.Fatalf("reloaded group %+v, before %+v", after, before)
	}
	for i, m := range after.Members {
		bm := before.Members[i]
		if m.MemberID != bm.MemberID || m.MemberEpoch != bm.MemberEpoch || deref(m.InstanceID) != deref(bm.InstanceID) ||
			deref(m.SubscribedTopicRegex) != deref(bm.SubscribedTopicRegex) ||
			!sameAssignment(m.Assignment, bm.Assignment) || !sameAssignment(m.TargetAssignment, bm.TargetAssignment) {
			t.Fatalf("member %d reloaded as %+v, was %+v", i, m, bm)
		}
	}
	// Members carry on with their epochs.
	a.s, b.s = s2, s2
	for _, c := range cs {
		if r := c.heartbeat(t); r.MemberEpoch != before.Epoch {
			t.Fatalf("heartbeat after reload: epoch %d", r.MemberEpoch)
		}
	}
	if lg := s2.ListGroups(tctx(t), nil, []string{"consumer"}); len(lg) != 1 || lg[0].GroupType != "consumer" || lg[0].GroupState != "Stable" {
		t.Fatalf("list consumer groups after reload: %+v", lg)
	}
}

func sameAssignment(a, b kmsg.Assignment) bool {
	if len(a.TopicPartitions) != len(b.TopicPartitions) {
		return false
	}
	for i := range a.TopicPartitions {
		x, y := a.TopicPartitions[i], b.TopicPartitions[i]
		if x.TopicID != y.TopicID || x.Topic != y.Topic || len(x.Partitions) != len(y.Partitions) {
			return false
		}
		for j := range x.Partitions {
			if x.Partitions[j] != y.Partitions[j] {
				return false
			}
		}
	}
	return true
}

func TestConsumerGroupDescribeAndAdmin(t *testing.T) {
	tt := newTopicTable()
	tt.set("t", 3)
	s := startShard(t, &runtimetest.Log{}, consumerConfig(tt))

	d := cdescribe(t, s, "nope")
	if d.ErrorCode != kerr.GroupIDNotFound.Code || deref(d.ErrorMessage) != "Group nope not found." {
		t.Fatalf("unknown group: %s %q", runtimetest.ErrName(d.ErrorCode), deref(d.ErrorMessage))
	}
	classic := newMember(s, "classic", "t")
	classic.join(t)
	d = cdescribe(t, s, "classic")
	if d.ErrorCode != kerr.GroupIDNotFound.Code || deref(d.ErrorMessage) != "Group classic is not a consumer group." {
		t.Fatalf("classic group: %s %q", runtimetest.ErrName(d.ErrorCode), deref(d.ErrorMessage))
	}
	c := newCClient(s, tt, "classic", "t")
	req := c.request(0)
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	wantCode(t, "heartbeat to a classic group", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.GroupIDNotFound.Code)

	a := newCClient(s, tt, "g", "t")
	a.join(t)
	d = s.ConsumerGroupDescribe(tctx(t), "g", true)
	if d.ErrorCode != 0 || d.State != "Stable" || d.Epoch != 1 || d.AssignmentEpoch != 1 || d.AssignorName != "uniform" ||
		d.AuthorizedOperations != groupAuthorizedOperations || len(d.Members) != 1 {
		t.Fatalf("describe: %+v", d)
	}
	m := d.Members[0]
	if m.MemberID != a.id || m.MemberEpoch != 1 || m.ClientID != "client" || m.MemberType != 1 || len(m.SubscribedTopics) != 1 ||
		len(m.Assignment.TopicPartitions) != 1 || m.Assignment.TopicPartitions[0].Topic != "t" || len(m.Assignment.TopicPartitions[0].Partitions) != 3 ||
		!sameAssignment(m.Assignment, m.TargetAssignment) {
		t.Fatalf("describe member: %+v", m)
	}

	// The classic APIs see a consumer group as Kafka 4 does.
	if cd := describe(t, s, "g"); cd.State != "Dead" || deref(cd.ErrorMessage) != "Group g is not a classic group." {
		t.Fatalf("DescribeGroups of a consumer group: %+v", cd)
	}
	jm := newMember(s, "g", "t")
	wantCode(t, "JoinGroup to a consumer group", jm.join(t).ErrorCode, errInconsistentGroupProtocol)
	lg := s.ListGroups(tctx(t), []string{"stable", "completingrebalance"}, nil)
	if len(lg) != 2 || lg[0].Group != "classic" || lg[1].Group != "g" || lg[1].GroupType != "consumer" || lg[1].ProtocolType != "consumer" {
		t.Fatalf("ListGroups: %+v", lg)
	}
	if lg := s.ListGroups(tctx(t), nil, []string{"classic"}); len(lg) != 1 || lg[0].Group != "classic" {
		t.Fatalf("ListGroups classic: %+v", lg)
	}
	wantCode(t, "delete a non-empty group", s.DeleteGroup(tctx(t), "g"), kerr.NonEmptyGroup.Code)
	a.leave(t, leaveEpoch)
	if d := cdescribe(t, s, "g"); d.State != "Empty" || d.Epoch != 2 {
		t.Fatalf("after leave: %s epoch %d", d.State, d.Epoch)
	}
	wantCode(t, "delete", s.DeleteGroup(tctx(t), "g"), 0)
	if d := cdescribe(t, s, "g"); d.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("deleted group describes as %s", runtimetest.ErrName(d.ErrorCode))
	}
}

func TestConsumerGroupHeartbeatErrors(t *testing.T) {
	tt := newTopicTable()
	tt.set("t", 1)
	cfg := consumerConfig(tt)
	cfg.ConsumerMaxSize = 2
	s := startShard(t, &runtimetest.Log{}, cfg)
	a := newCClient(s, tt, "g", "t")

	req := a.request(0)
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	req.RebalanceTimeoutMillis = -1
	wantCode(t, "join without rebalance timeout", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.InvalidRequest.Code)
	req = a.request(0)
	req.Topics = nil
	wantCode(t, "join without owned partitions", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.InvalidRequest.Code)
	req = a.request(0)
	req.MemberID = ""
	wantCode(t, "v1 without member ID", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.InvalidRequest.Code)
	wantCode(t, "heartbeat to an unknown group", s.ConsumerGroupHeartbeat(tctx(t), a.request(3)).ErrorCode, kerr.GroupIDNotFound.Code)

	// v0: the server names the member.
	req = a.request(0)
	req.Version, req.MemberID, req.SubscribedTopicRegex = 0, "", nil
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	resp := a.send(t, req)
	if resp.ErrorCode != 0 || resp.MemberID == nil || len(*resp.MemberID) != 22 || resp.MemberEpoch != 1 {
		t.Fatalf("v0 join: %s %v epoch %d", runtimetest.ErrName(resp.ErrorCode), resp.MemberID, resp.MemberEpoch)
	}
	wantCode(t, "epoch ahead", s.ConsumerGroupHeartbeat(tctx(t), a.request(a.epoch+1)).ErrorCode, kerr.FencedMemberEpoch.Code)
	wantCode(t, "unknown member", s.ConsumerGroupHeartbeat(tctx(t), (&cclient{s: s, tt: tt, group: "g", id: "x", owned: map[string]bool{}}).request(1)).ErrorCode, errUnknownMemberID)
	newCClient(s, tt, "g", "t").join(t)
	c := newCClient(s, tt, "g", "t")
	req = c.request(0)
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	wantCode(t, "group full", s.ConsumerGroupHeartbeat(tctx(t), req).ErrorCode, kerr.GroupMaxSizeReached.Code)
	a.heartbeat(t)
}

func TestAssignorsBalance(t *testing.T) {
	meta := map[string]TopicMeta{
		"x": {Name: "x", ID: [16]byte{1}, Partitions: 7},
		"y": {Name: "y", ID: [16]byte{2}, Partitions: 3},
	}
	in := assignInput{topics: meta, prev: map[string]partSet{}, members: []assignMember{
		{id: "m1", topics: []string{"x", "y"}}, {id: "m2", topics: []string{"x"}}, {id: "m3", topics: []string{"y"}},
	}}
	out := assignUniform(in)
	total := 0
	for _, m := range in.members {
		total += len(out[m.id])
	}
	if total != 10 || len(out["m3"]) > 3 {
		t.Fatalf("uniform heterogeneous: %v", out)
	}
	if d := len(out["m1"]) - len(out["m2"]); d > 1 || d < -1 {
		t.Fatalf("uniform unbalanced: m1 %d m2 %d", len(out["m1"]), len(out["m2"]))
	}
	// Sticky: the same input with the result as previous target moves
	// nothing.
	in.prev = out
	again := assignUniform(in)
	for id := range out {
		if !again[id].equal(out[id]) {
			t.Fatalf("uniform not sticky for %s: %v -> %v", id, out[id], again[id])
		}
	}
	r := assignRange(assignInput{topics: meta, members: in.members[:2]})
	if len(r["m1"]) != 4+3 || len(r["m2"]) != 3 || !r["m1"].has(tidp{[16]byte{1}, 3}) || !r["m2"].has(tidp{[16]byte{1}, 4}) {
		t.Fatalf("range: %v", r)
	}
}
