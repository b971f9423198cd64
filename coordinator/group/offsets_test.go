package group

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
	"github.com/kbroker/kbroker/protocol/batch"
)

func TestRecordBatchFormat(t *testing.T) {
	o := offsetEntry{offset: 42, leaderEpoch: 3, metadata: "m", commitTimestamp: 1000, expireTimestamp: -1}
	b := runtime.BuildBatch([]runtime.Record{offsetRecord("g", topicPartition{"t", 1}, o), groupTombstone("g")}, 1000, runtime.NoProducer)
	hs, err := batch.Validate(b, 1<<20)
	if err != nil {
		t.Fatalf("coordinator batch does not validate: %v", err)
	}
	h := hs[0]
	if h.ProducerID != -1 || h.NumRecords != 2 || h.Codec() != batch.CodecNone || h.IsTransactional() {
		t.Fatalf("batch header %+v", h)
	}
	var got []batch.Record
	if err := batch.ForEachRecord(b, func(r batch.Record) bool { got = append(got, r); return true }); err != nil {
		t.Fatal(err)
	}
	var k kmsg.OffsetCommitKey
	var v kmsg.OffsetCommitValue
	if err := k.ReadFrom(got[0].Key); err != nil || k.Version != 1 || k.Group != "g" || k.Topic != "t" || k.Partition != 1 {
		t.Fatalf("offset key %+v %v", k, err)
	}
	if err := v.ReadFrom(got[0].Value); err != nil || v.Version != 3 || v.Offset != 42 || v.LeaderEpoch != 3 || v.Metadata != "m" || v.CommitTimestamp != 1000 {
		t.Fatalf("offset value %+v %v", v, err)
	}
	var gk kmsg.GroupMetadataKey
	if err := gk.ReadFrom(got[1].Key); err != nil || gk.Version != 2 || got[1].Value != nil {
		t.Fatalf("group tombstone key %+v value %v", gk, got[1].Value)
	}
}

func TestOffsetCommitFetch(t *testing.T) {
	cfg := testConfig()
	cfg.OffsetMetadataMaxBytes = 10
	s := startShard(t, &runtimetest.Log{}, cfg)

	// Unknown group: no error, offset -1.
	p := fetch(t, s, "nope", "t", 0)
	if p.ErrorCode != 0 || p.Offset != -1 || p.LeaderEpoch != -1 || p.Metadata == nil || *p.Metadata != "" {
		t.Fatalf("fetch of unknown group %+v", p)
	}
	// Simple commit (generation -1, no member) creates the group.
	codes := commitCodes(commit(t, s, "simple", "", -1, "t", map[int32]int64{0: 10, 1: 20}))
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("simple commit codes %v", codes)
	}
	if p := fetch(t, s, "simple", "t", 1); p.Offset != 20 || p.LeaderEpoch != 7 || *p.Metadata != "md-1" {
		t.Fatalf("fetch %+v", p)
	}
	if p := fetch(t, s, "simple", "t", 5); p.Offset != -1 || p.ErrorCode != 0 {
		t.Fatalf("fetch of uncommitted partition %+v", p)
	}
	// All partitions (null topics).
	all := kmsg.NewOffsetFetchRequestGroup()
	all.Group = "simple"
	resp := s.OffsetFetch(tctx(t), all, true)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 || resp.Topics[0].Partitions[0].Offset != 10 {
		t.Fatalf("fetch all %+v", resp)
	}

	// Commit with a generation to an unknown group.
	wantCode(t, "unknown group, v8", commitCodes(commit(t, s, "nope", "m", 1, "t", map[int32]int64{0: 1}))[0], kerr.IllegalGeneration.Code)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 9
	req.Group = "nope"
	req.Generation = 1
	req.MemberID = "m"
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	wantCode(t, "unknown group, v9", s.OffsetCommit(tctx(t), req).Topics[0].Partitions[0].ErrorCode, kerr.GroupIDNotFound.Code)

	// Member commits.
	ms := stableGroup(t, s, "g", 2)
	m := ms[0]
	wantCode(t, "member commit", commitCodes(commit(t, s, "g", m.memberID, m.gen, "t", map[int32]int64{0: 5}))[0], 0)
	wantCode(t, "old generation", commitCodes(commit(t, s, "g", m.memberID, m.gen-1, "t", map[int32]int64{0: 5}))[0], kerr.IllegalGeneration.Code)
	wantCode(t, "unknown member", commitCodes(commit(t, s, "g", "ghost", m.gen, "t", map[int32]int64{0: 5}))[0], kerr.UnknownMemberID.Code)
	wantCode(t, "simple commit to a live group", commitCodes(commit(t, s, "g", "", -1, "t", map[int32]int64{0: 5}))[0], kerr.UnknownMemberID.Code)

	// Metadata too large fails only its partition.
	big := kmsg.NewPtrOffsetCommitRequest()
	big.Version = 8
	big.Group = "g"
	big.Generation = m.gen
	big.MemberID = m.memberID
	long, short := strings.Repeat("x", 11), "ok"
	big.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{
		{Partition: 0, Offset: 6, Metadata: &long, LeaderEpoch: -1},
		{Partition: 1, Offset: 7, Metadata: &short, LeaderEpoch: -1},
	}}}
	codes = commitCodes(s.OffsetCommit(tctx(t), big))
	if codes[0] != kerr.OffsetMetadataTooLarge.Code || codes[1] != 0 {
		t.Fatalf("metadata size codes %v", codes)
	}
	if p := fetch(t, s, "g", "t", 0); p.Offset != 5 {
		t.Fatalf("too-large commit was written: %+v", p)
	}

	// During a rebalance the heartbeat says REBALANCE_IN_PROGRESS but a
	// commit from the current generation is still accepted.
	n := newMember(s, "g", "t1")
	chn := n.joinAsync(t)
	runtimetest.WaitFor(t, "rebalance", func() bool { return m.heartbeat(t) == kerr.RebalanceInProgress.Code })
	wantCode(t, "commit during PreparingRebalance", commitCodes(commit(t, s, "g", m.memberID, m.gen, "t", map[int32]int64{0: 8}))[0], 0)
	chs := []<-chan *kmsg.JoinGroupResponse{ms[0].joinAsync(t), ms[1].joinAsync(t)}
	runtimetest.Recv(t, chn, "join")
	for _, ch := range chs {
		runtimetest.Recv(t, ch, "rejoin")
	}
	// CompletingRebalance: REBALANCE_IN_PROGRESS.
	wantCode(t, "commit during CompletingRebalance", commitCodes(commit(t, s, "g", m.memberID, m.gen, "t", map[int32]int64{0: 9}))[0], kerr.RebalanceInProgress.Code)
}

func TestTopicExistsHook(t *testing.T) {
	cfg := testConfig()
	cfg.TopicExists = func(topic string, _ int32) bool { return topic != "missing" }
	s := startShard(t, &runtimetest.Log{}, cfg)
	wantCode(t, "commit to missing topic", commitCodes(commit(t, s, "g", "", -1, "missing", map[int32]int64{0: 1}))[0], kerr.UnknownTopicOrPartition.Code)
}

func TestAppendFailure(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	l.SetFail(kerr.NotLeaderForPartition)
	wantCode(t, "commit while not leader", commitCodes(commit(t, s, "g", "", -1, "t", map[int32]int64{0: 1}))[0], kerr.NotCoordinator.Code)
	l.SetFail(errors.New("disk on fire"))
	wantCode(t, "commit with a plain error", commitCodes(commit(t, s, "g", "", -1, "t", map[int32]int64{0: 1}))[0], kerr.CoordinatorNotAvailable.Code)
	if p := fetch(t, s, "g", "t", 0); p.Offset != -1 {
		t.Fatalf("failed commit is visible: %+v", p)
	}
	if d := describe(t, s, "g"); d.State != "Dead" {
		t.Fatalf("failed simple commit left group %+v", d)
	}
	l.SetFail(nil)
	wantCode(t, "commit after recovery", commitCodes(commit(t, s, "g", "", -1, "t", map[int32]int64{0: 1}))[0], 0)
}

func TestReloadRecoversOffsetsAndGroup(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	ms := stableGroup(t, s, "g", 3)
	commit(t, s, "g", ms[0].memberID, ms[0].gen, "t", map[int32]int64{0: 100, 1: 200})
	commit(t, s, "g", ms[0].memberID, ms[0].gen, "t", map[int32]int64{0: 150})
	commit(t, s, "offsets-only", "", -1, "u", map[int32]int64{3: 33})
	s.Close()

	s2 := startShard(t, l, testConfig())
	if p := fetch(t, s2, "g", "t", 0); p.Offset != 150 || p.LeaderEpoch != 7 || *p.Metadata != "md-0" {
		t.Fatalf("reloaded offset %+v", p)
	}
	if p := fetch(t, s2, "g", "t", 1); p.Offset != 200 {
		t.Fatalf("reloaded offset %+v", p)
	}
	if p := fetch(t, s2, "offsets-only", "u", 3); p.Offset != 33 {
		t.Fatalf("reloaded simple offset %+v", p)
	}
	d := describe(t, s2, "g")
	if d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 3 {
		t.Fatalf("reloaded group %+v", d)
	}
	for _, dm := range d.Members {
		if string(dm.MemberAssignment) != "a:"+dm.MemberID {
			t.Fatalf("reloaded member %s assignment %q", dm.MemberID, dm.MemberAssignment)
		}
		if ts, ok := parseSubscriptionTopics(dm.ProtocolMetadata); !ok || len(ts) != 1 || ts[0] != "t1" {
			t.Fatalf("reloaded subscription %q", dm.ProtocolMetadata)
		}
	}
	// Members resume with their generation: heartbeats, syncs and commits
	// work against the new shard.
	for _, m := range ms {
		m.s = s2
		wantCode(t, "heartbeat after reload", m.heartbeat(t), 0)
	}
	sr := ms[1].sync(t, nil)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "a:"+ms[1].memberID {
		t.Fatalf("sync after reload %+v", sr)
	}
	wantCode(t, "commit after reload", commitCodes(commit(t, s2, "g", ms[2].memberID, ms[2].gen, "t", map[int32]int64{0: 160}))[0], 0)
	ls := s2.ListGroups(tctx(t), nil, nil)
	if len(ls) != 2 || ls[0].Group != "g" || ls[1].Group != "offsets-only" || ls[1].GroupState != "Empty" || ls[1].ProtocolType != "" {
		t.Fatalf("list after reload %+v", ls)
	}
}

// TestLoadInProgressAndClose: while the shard loads, JoinGroup answers
// COORDINATOR_LOAD_IN_PROGRESS but Heartbeat answers NONE, as Kafka's
// GroupCoordinatorService answers it blindly; an empty group ID is
// INVALID_GROUP_ID even then. Once closed, both answer NOT_COORDINATOR.
func TestLoadInProgressAndClose(t *testing.T) {
	s := NewShard(0, &runtimetest.Log{}, testConfig(), testLogger())
	m := newMember(s, "g", "t1")
	wantCode(t, "join while loading", s.JoinGroup(tctx(t), m.joinReq()).ErrorCode, kerr.CoordinatorLoadInProgress.Code)
	wantCode(t, "heartbeat while loading", m.heartbeat(t), 0)
	wantCode(t, "heartbeat of group \"\" while loading", newMember(s, "", "t1").heartbeat(t), kerr.InvalidGroupID.Code)
	wantCode(t, "join of group \"\" while loading", s.JoinGroup(tctx(t), newMember(s, "", "t1").joinReq()).ErrorCode, kerr.InvalidGroupID.Code)
	if s.Loaded() {
		t.Fatal("Loaded before Load")
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); !errors.Is(err, ErrAlreadyLoaded) {
		t.Fatalf("second load: %v", err)
	}
	// A join waiting for the rebalance is answered NOT_COORDINATOR when the
	// shard closes.
	slow := newMember(s, "g", "t1")
	slow.version = 3
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- s.JoinGroup(tctx(t), slow.joinReq()) }()
	time.Sleep(20 * time.Millisecond) // let the join park; the assertion holds either way
	s.Close()
	wantCode(t, "join across close", runtimetest.Recv(t, ch, "join").ErrorCode, kerr.NotCoordinator.Code)
	wantCode(t, "heartbeat after close", m.heartbeat(t), kerr.NotCoordinator.Code)
}

func TestDeleteAndOffsetDeleteTombstones(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	ms := stableGroup(t, s, "g", 1)
	commit(t, s, "g", ms[0].memberID, ms[0].gen, "t1", map[int32]int64{0: 1})
	commit(t, s, "g", ms[0].memberID, ms[0].gen, "t2", map[int32]int64{0: 2})

	wantCode(t, "delete non-empty", s.DeleteGroup(tctx(t), "g"), kerr.NonEmptyGroup.Code)
	wantCode(t, "delete unknown", s.DeleteGroup(tctx(t), "nope"), kerr.GroupIDNotFound.Code)

	// The group consumes t1 (its subscription), not t2.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{
		{Topic: "t1", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
		{Topic: "t2", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
	}
	r := s.OffsetDelete(tctx(t), od)
	if r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code || r.Topics[1].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete %+v", r)
	}
	if p := fetch(t, s, "g", "t2", 0); p.Offset != -1 {
		t.Fatalf("t2 offset survived: %+v", p)
	}
	unknown := kmsg.NewPtrOffsetDeleteRequest()
	unknown.Group = "nope"
	wantCode(t, "offset delete of unknown group", s.OffsetDelete(tctx(t), unknown).ErrorCode, kerr.GroupIDNotFound.Code)

	// Once the member leaves, DeleteGroups removes group and offsets.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version = 3
	lv.Group = "g"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ms[0].memberID}}
	s.LeaveGroup(tctx(t), lv)
	runtimetest.WaitFor(t, "empty group", func() bool { return describe(t, s, "g").State == "Empty" })
	wantCode(t, "delete empty group", s.DeleteGroup(tctx(t), "g"), 0)
	if d := describe(t, s, "g"); d.State != "Dead" || len(d.Members) != 0 || d.ErrorCode != 0 || d.ProtocolType != "" {
		t.Fatalf("deleted group describes as %+v", d)
	}
	if p := fetch(t, s, "g", "t1", 0); p.Offset != -1 {
		t.Fatalf("offset survived group deletion: %+v", p)
	}
	wantCode(t, "delete again", s.DeleteGroup(tctx(t), "g"), kerr.GroupIDNotFound.Code)

	// Tombstones replay: a reloaded shard knows nothing of the group.
	s2 := startShard(t, l, testConfig())
	if d := describe(t, s2, "g"); d.State != "Dead" {
		t.Fatalf("reloaded deleted group %+v", d)
	}
	if p := fetch(t, s2, "g", "t1", 0); p.Offset != -1 {
		t.Fatalf("reloaded deleted offset %+v", p)
	}
	if ls := s2.ListGroups(tctx(t), nil, nil); len(ls) != 0 {
		t.Fatalf("reloaded list %+v", ls)
	}

	// OffsetDelete of an Empty simple group's last offset removes the group.
	commit(t, s, "simple", "", -1, "t", map[int32]int64{0: 1})
	od2 := kmsg.NewPtrOffsetDeleteRequest()
	od2.Group = "simple"
	od2.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
	wantCode(t, "offset delete", s.OffsetDelete(tctx(t), od2).ErrorCode, 0)
	if d := describe(t, s, "simple"); d.State != "Dead" {
		t.Fatalf("simple group after deleting its offsets: %+v", d)
	}
}

func TestDescribeAndListGroups(t *testing.T) {
	s := startShard(t, &runtimetest.Log{}, testConfig())
	d := describe(t, s, "unknown")
	if d.ErrorCode != 0 || d.State != "Dead" || d.ProtocolType != "" || d.Group != "unknown" || len(d.Members) != 0 {
		t.Fatalf("describe unknown %+v", d)
	}
	stableGroup(t, s, "stable", 1)
	commit(t, s, "simple", "", -1, "t", map[int32]int64{0: 1})
	// A group stuck in PreparingRebalance: its member joined, the initial
	// delay runs.
	cfgSlow := newMember(s, "preparing", "t1")
	cfgSlow.version = 3
	go s.JoinGroup(tctx(t), cfgSlow.joinReq())
	runtimetest.WaitFor(t, "preparing group", func() bool { return describe(t, s, "preparing").State == "PreparingRebalance" })
	if d := describe(t, s, "preparing"); len(d.Members) != 1 || len(d.Members[0].ProtocolMetadata) != 0 || d.Protocol != "" {
		t.Fatalf("a rebalancing group shows metadata: %+v", d)
	}

	names := func(gs []kmsg.ListGroupsResponseGroup) string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Group+"/"+g.GroupState+"/"+g.GroupType)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		states, types []string
		want          string
	}{
		{nil, nil, "preparing/PreparingRebalance/classic,simple/Empty/classic,stable/Stable/classic"},
		{[]string{"stable", "EMPTY"}, nil, "simple/Empty/classic,stable/Stable/classic"},
		{nil, []string{"consumer"}, ""},
		{[]string{"Stable"}, []string{"Classic"}, "stable/Stable/classic"},
		{[]string{"Dead"}, nil, ""},
	} {
		if got := names(s.ListGroups(tctx(t), tc.states, tc.types)); got != tc.want {
			t.Errorf("ListGroups(%v, %v) = %q, want %q", tc.states, tc.types, got, tc.want)
		}
	}
}

// fakeClock is a settable clock for offset expiry.
type fakeClock struct{ ms atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func TestOffsetRetentionExpiry(t *testing.T) {
	clk := &fakeClock{}
	clk.ms.Store(1_000_000)
	cfg := testConfig()
	cfg.Now = clk.now
	cfg.OffsetsRetention = time.Hour
	cfg.OffsetsRetentionCheckInterval = 10 * time.Millisecond
	l := &runtimetest.Log{}
	s := startShard(t, l, cfg)

	commit(t, s, "simple", "", -1, "t", map[int32]int64{0: 1})
	ms := stableGroup(t, s, "consumers", 1)
	commit(t, s, "consumers", ms[0].memberID, ms[0].gen, "t1", map[int32]int64{0: 5})  // subscribed
	commit(t, s, "consumers", ms[0].memberID, ms[0].gen, "old", map[int32]int64{0: 6}) // not subscribed

	clk.advance(59 * time.Minute)
	// A later commit keeps its own retention.
	commit(t, s, "simple", "", -1, "t", map[int32]int64{1: 2})
	clk.advance(2 * time.Minute)
	runtimetest.WaitFor(t, "simple offset expiry", func() bool { return fetch(t, s, "simple", "t", 0).Offset == -1 })
	if p := fetch(t, s, "simple", "t", 1); p.Offset != 2 {
		t.Fatalf("younger offset expired: %+v", p)
	}
	// The stable consumer group keeps its subscribed topic, loses the other.
	runtimetest.WaitFor(t, "unsubscribed offset expiry", func() bool { return fetch(t, s, "consumers", "old", 0).Offset == -1 })
	if p := fetch(t, s, "consumers", "t1", 0); p.Offset != 5 {
		t.Fatalf("subscribed offset expired: %+v", p)
	}

	// The group empties; its offsets expire a retention period later, and
	// the group with them.
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version = 3
	lv.Group = "consumers"
	lv.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ms[0].memberID}}
	s.LeaveGroup(tctx(t), lv)
	runtimetest.WaitFor(t, "empty group", func() bool { return describe(t, s, "consumers").State == "Empty" })
	clk.advance(30 * time.Minute)
	time.Sleep(50 * time.Millisecond) // several checks run; nothing may expire yet
	if p := fetch(t, s, "consumers", "t1", 0); p.Offset != 5 {
		t.Fatalf("offset of a group empty for less than the retention expired: %+v", p)
	}
	clk.advance(31 * time.Minute)
	runtimetest.WaitFor(t, "empty group expiry", func() bool { return describe(t, s, "consumers").State == "Dead" })
	if p := fetch(t, s, "consumers", "t1", 0); p.Offset != -1 {
		t.Fatalf("offset of expired group %+v", p)
	}
	// Durable: a reload (not running its own expiry) agrees with the live
	// shard.
	live := fetch(t, s, "simple", "t", 1).Offset
	cfg.OffsetsRetentionCheckInterval = time.Hour
	s2 := startShard(t, l, cfg)
	if d := describe(t, s2, "consumers"); d.State != "Dead" {
		t.Fatalf("reloaded expired group %+v", d)
	}
	if p := fetch(t, s2, "simple", "t", 1); p.Offset != live {
		t.Fatalf("reloaded offset %+v, live shard has %d", p, live)
	}
}
