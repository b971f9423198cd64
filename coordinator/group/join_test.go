package group

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

// stableGroup joins n members concurrently, syncs them with one-byte
// assignments naming each member's index, and returns them.
func stableGroup(t *testing.T, s *Shard, groupID string, n int) []*tmember {
	t.Helper()
	ms := make([]*tmember, n)
	chs := make([]<-chan *kmsg.JoinGroupResponse, n)
	for i := range ms {
		ms[i] = newMember(s, groupID, "t1")
		chs[i] = ms[i].joinAsync(t)
	}
	for i := range ms {
		wantCode(t, "join", runtimetest.Recv(t, chs[i], "join").ErrorCode, 0)
	}
	syncAll(t, ms)
	return ms
}

// syncAll syncs members that just joined the same generation; the leader
// assigns each member its ID.
func syncAll(t *testing.T, ms []*tmember) {
	t.Helper()
	var leader *tmember
	for _, m := range ms {
		if m.gen != ms[0].gen {
			t.Fatalf("members in different generations: %d vs %d", m.gen, ms[0].gen)
		}
		if m.leader {
			if leader != nil {
				t.Fatalf("two leaders: %s and %s", leader.memberID, m.memberID)
			}
			leader = m
		}
	}
	if leader == nil {
		t.Fatalf("no leader among %d members", len(ms))
	}
	if len(leader.members) != len(ms) {
		t.Fatalf("leader got %d members' metadata, want %d", len(leader.members), len(ms))
	}
	assign := map[string][]byte{}
	for _, jm := range leader.members {
		assign[jm.MemberID] = []byte("a:" + jm.MemberID)
	}
	var chs []<-chan *kmsg.SyncGroupResponse
	for _, m := range ms {
		if m != leader {
			chs = append(chs, m.syncAsync(t, nil))
		}
	}
	lr := leader.sync(t, assign)
	wantCode(t, "leader sync", lr.ErrorCode, 0)
	if string(lr.MemberAssignment) != "a:"+leader.memberID {
		t.Fatalf("leader assignment %q", lr.MemberAssignment)
	}
	i := 0
	for _, m := range ms {
		if m == leader {
			continue
		}
		r := runtimetest.Recv(t, chs[i], "follower sync")
		i++
		wantCode(t, "follower sync", r.ErrorCode, 0)
		if string(r.MemberAssignment) != "a:"+m.memberID {
			t.Fatalf("member %s got assignment %q", m.memberID, r.MemberAssignment)
		}
		if r.Protocol == nil || *r.Protocol != "range" {
			t.Fatalf("sync protocol %v", r.Protocol)
		}
	}
}

func describe(t *testing.T, s *Shard, id string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	return s.DescribeGroup(tctx(t), id, true)
}

func TestJoinSyncAndFourthMemberRebalance(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = 50 * time.Millisecond
	s := startShard(t, &runtimetest.Log{}, cfg)
	ms := stableGroup(t, s, "g", 3)
	if ms[0].gen != 1 {
		t.Fatalf("generation %d, want 1", ms[0].gen)
	}
	d := describe(t, s, "g")
	if d.State != "Stable" || d.Protocol != "range" || d.ProtocolType != "consumer" || len(d.Members) != 3 {
		t.Fatalf("describe: %+v", d)
	}
	for _, dm := range d.Members {
		if string(dm.MemberAssignment) != "a:"+dm.MemberID || dm.ClientID != "client" || dm.ClientHost != "/127.0.0.1" {
			t.Fatalf("described member %+v", dm)
		}
	}
	if d.AuthorizedOperations != groupAuthorizedOperations {
		t.Fatalf("authorized operations %d", d.AuthorizedOperations)
	}

	// A fourth member: everyone is told to rejoin, and all four form
	// generation 2.
	m4 := newMember(s, "g", "t1")
	ch4 := m4.joinAsync(t)
	runtimetest.WaitFor(t, "rebalance signalled by heartbeat", func() bool {
		return ms[0].heartbeat(t) == kerr.RebalanceInProgress.Code
	})
	var chs []<-chan *kmsg.JoinGroupResponse
	for _, m := range ms {
		chs = append(chs, m.joinAsync(t))
	}
	wantCode(t, "fourth join", runtimetest.Recv(t, ch4, "fourth join").ErrorCode, 0)
	for _, ch := range chs {
		wantCode(t, "rejoin", runtimetest.Recv(t, ch, "rejoin").ErrorCode, 0)
	}
	all := append(ms, m4)
	for _, m := range all {
		if m.gen != 2 {
			t.Fatalf("member %s in generation %d, want 2", m.memberID, m.gen)
		}
	}
	syncAll(t, all)
	for _, m := range all {
		wantCode(t, "heartbeat", m.heartbeat(t), 0)
	}
	// An old generation is refused.
	old := *ms[0]
	old.gen = 1
	wantCode(t, "old generation heartbeat", old.heartbeat(t), kerr.IllegalGeneration.Code)
}

func TestMemberIDRequired(t *testing.T) {
	s := startShard(t, &runtimetest.Log{}, testConfig())
	m := newMember(s, "g", "t1")
	resp := s.JoinGroup(tctx(t), m.joinReq())
	wantCode(t, "first join v9", resp.ErrorCode, kerr.MemberIDRequired.Code)
	if len(resp.MemberID) < len("client-")+36 || resp.MemberID[:7] != "client-" {
		t.Fatalf("generated member ID %q", resp.MemberID)
	}
	if resp.Generation != -1 {
		t.Fatalf("generation %d", resp.Generation)
	}
	// The pending member must rejoin before the group can form.
	m.memberID = resp.MemberID
	r := m.join(t)
	wantCode(t, "rejoin", r.ErrorCode, 0)
	if r.MemberID != resp.MemberID || r.LeaderID != r.MemberID || r.Generation != 1 {
		t.Fatalf("join response %+v", r)
	}

	// v3 clients join directly.
	old := newMember(s, "g3", "t1")
	old.version = 3
	r3 := s.JoinGroup(tctx(t), old.joinReq())
	wantCode(t, "v3 join", r3.ErrorCode, 0)
	if r3.MemberID == "" {
		t.Fatalf("v3 join got no member ID")
	}

	// Bad session timeout, protocol mismatch, unknown member.
	bad := newMember(s, "g", "t1")
	bad.session = 1
	wantCode(t, "session too short", s.JoinGroup(tctx(t), bad.joinReq()).ErrorCode, kerr.InvalidSessionTimeout.Code)
	other := newMember(s, "g", "t1")
	other.protos = []kmsg.JoinGroupRequestProtocol{{Name: "roundrobin", Metadata: subscription("t1")}}
	other.memberID = ""
	req := other.joinReq()
	req.Version = 3
	wantCode(t, "protocol mismatch", s.JoinGroup(tctx(t), req).ErrorCode, kerr.InconsistentGroupProtocol.Code)
	ghost := newMember(s, "g", "t1")
	ghost.memberID = "ghost"
	wantCode(t, "unknown member", s.JoinGroup(tctx(t), ghost.joinReq()).ErrorCode, kerr.UnknownMemberID.Code)
	nogroup := newMember(s, "nope", "t1")
	nogroup.memberID = "ghost"
	wantCode(t, "unknown group", s.JoinGroup(tctx(t), nogroup.joinReq()).ErrorCode, kerr.UnknownMemberID.Code)
}

func TestInitialRebalanceDelay(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = 300 * time.Millisecond
	s := startShard(t, &runtimetest.Log{}, cfg)
	a, b := newMember(s, "g", "t1"), newMember(s, "g", "t1")
	start := time.Now()
	cha := a.joinAsync(t)
	time.Sleep(100 * time.Millisecond) // b arrives inside the delay, not a synchronisation
	chb := b.joinAsync(t)
	ra, rb := runtimetest.Recv(t, cha, "join a"), runtimetest.Recv(t, chb, "join b")
	elapsed := time.Since(start)
	wantCode(t, "join a", ra.ErrorCode, 0)
	wantCode(t, "join b", rb.ErrorCode, 0)
	if elapsed < cfg.InitialRebalanceDelay {
		t.Fatalf("first rebalance completed after %v, before the initial delay %v", elapsed, cfg.InitialRebalanceDelay)
	}
	if ra.Generation != 1 || rb.Generation != 1 {
		t.Fatalf("generations %d/%d: both members should be in the first generation", ra.Generation, rb.Generation)
	}
}

func TestSessionExpiryRemovesMember(t *testing.T) {
	s := startShard(t, &runtimetest.Log{}, testConfig())
	a, b := newMember(s, "g", "t1"), newMember(s, "g", "t1")
	a.session, b.session = 300, 300
	a.rebal, b.rebal = 300, 300
	cha, chb := a.joinAsync(t), b.joinAsync(t)
	runtimetest.Recv(t, cha, "join a")
	runtimetest.Recv(t, chb, "join b")
	syncAll(t, []*tmember{a, b})
	// b goes silent; a keeps heartbeating and is told to rejoin.
	runtimetest.WaitFor(t, "rebalance after b's session expired", func() bool {
		return a.heartbeat(t) == kerr.RebalanceInProgress.Code
	})
	r := a.join(t)
	wantCode(t, "rejoin", r.ErrorCode, 0)
	if len(r.Members) != 1 || r.Members[0].MemberID != a.memberID {
		t.Fatalf("after expiry the leader sees %d members", len(r.Members))
	}
	wantCode(t, "expired member heartbeat", b.heartbeat(t), kerr.UnknownMemberID.Code)
}

func TestLeaveGroup(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	ms := stableGroup(t, s, "g", 2)
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = 5
	req.Group = "g"
	req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ms[0].memberID}, {MemberID: "ghost"}}
	resp := s.LeaveGroup(tctx(t), req)
	wantCode(t, "leave", resp.ErrorCode, 0)
	if len(resp.Members) != 2 || resp.Members[0].ErrorCode != 0 || resp.Members[1].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave members %+v", resp.Members)
	}
	wantCode(t, "remaining member heartbeat", ms[1].heartbeat(t), kerr.RebalanceInProgress.Code)
	r := ms[1].join(t)
	wantCode(t, "rejoin", r.ErrorCode, 0)
	if r.Generation != 2 || len(r.Members) != 1 {
		t.Fatalf("rejoin %+v", r)
	}
	syncAll(t, ms[1:])

	// The last member leaves (v0 shape): the group is Empty and that is
	// persisted.
	v0 := kmsg.NewPtrLeaveGroupRequest()
	v0.Group = "g"
	v0.MemberID = ms[1].memberID
	wantCode(t, "leave v0", s.LeaveGroup(tctx(t), v0).ErrorCode, 0)
	runtimetest.WaitFor(t, "empty group", func() bool { return describe(t, s, "g").State == "Empty" })
	runtimetest.WaitFor(t, "empty group record", func() bool {
		recs := l.Entries(t)
		last := recs[len(recs)-1]
		var v kmsg.GroupMetadataValue
		return last.Value != nil && v.ReadFrom(last.Value) == nil && len(v.Members) == 0 && v.Generation == 3
	})
	wantCode(t, "leave v0 unknown", s.LeaveGroup(tctx(t), v0).ErrorCode, kerr.UnknownMemberID.Code)
	unknown := kmsg.NewPtrLeaveGroupRequest()
	unknown.Version = 3
	unknown.Group = "nope"
	unknown.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "x"}}
	ur := s.LeaveGroup(tctx(t), unknown)
	if ur.ErrorCode != 0 || len(ur.Members) != 1 || ur.Members[0].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave of unknown group: %+v", ur)
	}
}

func staticMember(s *Shard, groupID, instance string) *tmember {
	m := newMember(s, groupID, "t1")
	m.instance = &instance
	return m
}

func TestStaticMemberRestartWithoutRebalance(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	a, b := staticMember(s, "g", "ia"), staticMember(s, "g", "ib")
	cha, chb := a.joinAsync(t), b.joinAsync(t)
	runtimetest.Recv(t, cha, "join a")
	runtimetest.Recv(t, chb, "join b")
	syncAll(t, []*tmember{a, b})
	if a.memberID[:3] != "ia-" {
		t.Fatalf("static member ID %q should start with the instance ID", a.memberID)
	}
	gen := a.gen

	// a restarts: same instance ID, no member ID.
	oldA := *a
	restarted := staticMember(s, "g", "ia")
	r := restarted.join(t)
	wantCode(t, "static rejoin", r.ErrorCode, 0)
	if r.MemberID == oldA.memberID || r.Generation != gen {
		t.Fatalf("static rejoin: member %q generation %d (old %q, gen %d)", r.MemberID, r.Generation, oldA.memberID, gen)
	}
	// No rebalance: b's heartbeat stays clean, and a's new ID syncs its old
	// assignment back.
	wantCode(t, "other member heartbeat", b.heartbeat(t), 0)
	sr := restarted.sync(t, nil)
	wantCode(t, "restarted sync", sr.ErrorCode, 0)
	if string(sr.MemberAssignment) != "a:"+oldA.memberID {
		t.Fatalf("restarted member got %q, want its old assignment", sr.MemberAssignment)
	}
	// The old incarnation is fenced.
	wantCode(t, "fenced heartbeat", oldA.heartbeat(t), kerr.FencedInstanceID.Code)
	wantCode(t, "fenced join", s.JoinGroup(tctx(t), oldA.joinReq()).ErrorCode, kerr.FencedInstanceID.Code)
	wantCode(t, "fenced sync", oldA.sync(t, nil).ErrorCode, kerr.FencedInstanceID.Code)

	// The new member ID was persisted: a reload knows it.
	s2 := startShard(t, l, testConfig())
	d := describe(t, s2, "g")
	found := false
	for _, m := range d.Members {
		if m.MemberID == restarted.memberID && m.InstanceID != nil && *m.InstanceID == "ia" {
			found = true
		}
		if m.MemberID == oldA.memberID {
			t.Fatalf("reloaded group still has the old member ID")
		}
	}
	if !found || d.State != "Stable" {
		t.Fatalf("reloaded group %+v lacks the restarted member", d)
	}
}

func TestGroupMaxSize(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSize = 1
	s := startShard(t, &runtimetest.Log{}, cfg)
	stableGroup(t, s, "g", 1)
	m := newMember(s, "g", "t1")
	m.version = 3
	wantCode(t, "join over max size", s.JoinGroup(tctx(t), m.joinReq()).ErrorCode, kerr.GroupMaxSizeReached.Code)
}

// TestConcurrentRebalancesKeepMemberIDs runs members that keep rejoining
// while others come and go: a live member must never be told
// UNKNOWN_MEMBER_ID.
func TestConcurrentRebalancesKeepMemberIDs(t *testing.T) {
	s := startShard(t, &runtimetest.Log{}, testConfig())
	stop := make(chan struct{})
	errs := make(chan error, 16)
	done := make(chan struct{})
	const n = 4
	running := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		go func() {
			defer func() { running <- struct{}{} }()
			m := newMember(s, "g", "t1")
			rounds := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp := m.join(t)
				if resp.ErrorCode == kerr.UnknownMemberID.Code && m.memberID != "" {
					errs <- fmt.Errorf("live member %s got UNKNOWN_MEMBER_ID on join", m.memberID)
					return
				}
				if resp.ErrorCode != 0 {
					continue
				}
				var assign map[string][]byte
				if m.leader {
					assign = map[string][]byte{}
					for _, jm := range m.members {
						assign[jm.MemberID] = []byte("x")
					}
				}
				sr := m.sync(t, assign)
				if sr.ErrorCode == kerr.UnknownMemberID.Code {
					errs <- fmt.Errorf("live member %s got UNKNOWN_MEMBER_ID on sync", m.memberID)
					return
				}
				for sr.ErrorCode == 0 {
					select {
					case <-stop:
						return
					default:
					}
					code := m.heartbeat(t)
					if code == kerr.UnknownMemberID.Code {
						errs <- fmt.Errorf("live member %s got UNKNOWN_MEMBER_ID on heartbeat", m.memberID)
						return
					}
					if code != 0 {
						break
					}
					rounds++
					if rounds%7 == 0 {
						break // rejoin now and then, forcing rebalances
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		}()
	}
	go func() {
		// Churn: short-lived members join and leave.
		defer close(done)
		for i := 0; i < 5; i++ {
			c := newMember(s, "g", "t1")
			c.join(t)
			req := kmsg.NewPtrLeaveGroupRequest()
			req.Version = 3
			req.Group = "g"
			req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: c.memberID}}
			s.LeaveGroup(tctx(t), req)
		}
	}()
	select {
	case <-done:
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(15 * time.Second):
		t.Fatal("churn did not finish")
	}
	close(stop)
	for i := 0; i < n; i++ {
		select {
		case <-running:
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(15 * time.Second):
			t.Fatal("members did not stop")
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}
