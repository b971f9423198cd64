package group

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
	"github.com/kbroker/kbroker/protocol/batch"
)

// txnReq builds a TxnOffsetCommit v3 for one topic; offsets map partition
// -> offset.
func txnReq(groupID string, pid int64, topic string, offsets map[int32]int64) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID = fmt.Sprintf("txn-%d", pid)
	req.Group = groupID
	req.ProducerID = pid
	req.ProducerEpoch = 4
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, o, 3
		md := fmt.Sprintf("txn-md-%d", p)
		rp.Metadata = &md
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

func txnCodes(resp *kmsg.TxnOffsetCommitResponse) []int16 {
	var out []int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out = append(out, p.ErrorCode)
		}
	}
	return out
}

// txnCommit commits offsets in pid's transaction and expects success.
func txnCommit(t *testing.T, s *Shard, groupID string, pid int64, topic string, offsets map[int32]int64) {
	t.Helper()
	for _, c := range txnCodes(s.TxnOffsetCommit(tctx(t), txnReq(groupID, pid, topic, offsets))) {
		wantCode(t, "txn offset commit", c, 0)
	}
}

// endTxn does what the broker's marker writer does: append pid's control
// batch to the partition, then tell the shard.
func endTxn(t *testing.T, s *Shard, l *runtimetest.Log, pid int64, commit bool) {
	t.Helper()
	appendMarker(t, l, pid, commit)
	s.CompleteTransaction(pid, commit)
}

// appendMarker appends a commit or abort control batch for pid, as the
// transaction marker writer does.
func appendMarker(t *testing.T, l *runtimetest.Log, pid int64, commit bool) {
	t.Helper()
	typ := uint16(0) // Kafka's ControlRecordType: abort 0, commit 1
	if commit {
		typ = 1
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), typ)
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), 1) // version 0, coordinator epoch 1
	rec := kmsg.Record{Key: key, Value: value}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1)
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: 0x30, LastOffsetDelta: 0,
		ProducerID: pid, ProducerEpoch: 4, FirstSequence: -1, NumRecords: 1, Records: rec.AppendTo(nil),
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-batch.LengthOverhead))
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	if _, err := l.Append(context.Background(), b); err != nil {
		t.Fatalf("append marker: %v", err)
	}
}

// fetchStable is fetch with require_stable.
func fetchStable(t *testing.T, s *Shard, groupID, topic string, partition int32) kmsg.OffsetFetchResponseGroupTopicPartition {
	t.Helper()
	req := kmsg.NewOffsetFetchRequestGroup()
	req.Group = groupID
	rt := kmsg.NewOffsetFetchRequestGroupTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = []kmsg.OffsetFetchRequestGroupTopic{rt}
	resp := s.OffsetFetch(tctx(t), req, true)
	if resp.ErrorCode != 0 {
		t.Fatalf("stable offset fetch %s: group error %s", groupID, runtimetest.ErrName(resp.ErrorCode))
	}
	return resp.Topics[0].Partitions[0]
}

// snapshot renders every committed offset of the groups, and whether each
// partition is stable, so a live and a reloaded shard can be compared.
func snapshot(t *testing.T, s *Shard, groups ...string) string {
	t.Helper()
	var sb strings.Builder
	for _, g := range groups {
		req := kmsg.NewOffsetFetchRequestGroup()
		req.Group = g
		for _, stable := range []bool{false, true} {
			resp := s.OffsetFetch(tctx(t), req, stable)
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					fmt.Fprintf(&sb, "%s %s/%d stable=%v: %d %d %q %s\n", g, tp.Topic, p.Partition, stable, p.Offset, p.LeaderEpoch, deref(p.Metadata), runtimetest.ErrName(p.ErrorCode))
				}
			}
		}
		for _, topic := range []string{"t", "u"} {
			for p := int32(0); p < 3; p++ {
				fmt.Fprintf(&sb, "%s %s/%d require_stable: %s\n", g, topic, p, runtimetest.ErrName(fetchStable(t, s, g, topic, p).ErrorCode))
			}
		}
	}
	return sb.String()
}

func TestTxnOffsetsInvisibleUntilCommit(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	commit(t, s, "g", "", -1, "t", map[int32]int64{0: 5})
	txnCommit(t, s, "g", 7, "t", map[int32]int64{0: 10, 1: 20})

	// The batch is transactional, with the producer's ID and epoch and
	// base sequence -1 (a coordinator write: epoch checked, not sequence).
	batches := l.Batches()
	h, err := batch.ParseHeader(batches[len(batches)-1])
	if err != nil || !h.IsTransactional() || h.IsControl() || h.ProducerID != 7 || h.ProducerEpoch != 4 || h.BaseSequence != -1 {
		t.Fatalf("txn commit batch header %+v (%v)", h, err)
	}

	if p := fetch(t, s, "g", "t", 0); p.Offset != 5 || *p.Metadata != "md-0" {
		t.Fatalf("pending txn offset visible: %+v", p)
	}
	if p := fetch(t, s, "g", "t", 1); p.Offset != -1 || p.ErrorCode != 0 {
		t.Fatalf("pending txn offset visible: %+v", p)
	}
	for _, part := range []int32{0, 1} {
		if p := fetchStable(t, s, "g", "t", part); p.ErrorCode != kerr.UnstableOffsetCommit.Code || p.Offset != -1 {
			t.Fatalf("require_stable on pending t/%d: %+v", part, p)
		}
	}
	if p := fetchStable(t, s, "g", "t", 2); p.ErrorCode != 0 {
		t.Fatalf("require_stable on a partition without a transaction: %s", runtimetest.ErrName(p.ErrorCode))
	}

	endTxn(t, s, l, 7, true)
	if p := fetchStable(t, s, "g", "t", 0); p.ErrorCode != 0 || p.Offset != 10 || p.LeaderEpoch != 3 || *p.Metadata != "txn-md-0" {
		t.Fatalf("committed txn offset: %+v", p)
	}
	if p := fetch(t, s, "g", "t", 1); p.Offset != 20 {
		t.Fatalf("committed txn offset: %+v", p)
	}
	// A second marker for the producer finds nothing to do.
	endTxn(t, s, l, 7, false)
	if p := fetch(t, s, "g", "t", 0); p.Offset != 10 {
		t.Fatalf("offset after a stray abort marker: %+v", p)
	}
}

func TestTxnAbortDropsOffsets(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	commit(t, s, "g", "", -1, "t", map[int32]int64{0: 5})
	txnCommit(t, s, "g", 7, "t", map[int32]int64{0: 10})
	txnCommit(t, s, "only-txn", 7, "t", map[int32]int64{0: 1})
	txnCommit(t, s, "g", 8, "t", map[int32]int64{1: 11}) // another producer, still open
	if d := describe(t, s, "only-txn"); d.State != "Empty" {
		t.Fatalf("group created by a txn commit: %+v", d)
	}
	endTxn(t, s, l, 7, false)
	if p := fetchStable(t, s, "g", "t", 0); p.ErrorCode != 0 || p.Offset != 5 {
		t.Fatalf("offset after abort: %+v", p)
	}
	if p := fetchStable(t, s, "g", "t", 1); p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("other producer's pending offset after abort: %+v", p)
	}
	if d := describe(t, s, "only-txn"); d.State != "Dead" {
		t.Fatalf("group with only aborted offsets: %+v", d)
	}
}

// A plain commit written after a transactional one wins when the
// transaction commits; one written before loses.
func TestTxnCommitKeepsLaterPlainCommit(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	txnCommit(t, s, "g", 7, "t", map[int32]int64{0: 10, 1: 10})
	commit(t, s, "g", "", -1, "t", map[int32]int64{0: 15})
	endTxn(t, s, l, 7, true)
	if p := fetch(t, s, "g", "t", 0); p.Offset != 15 {
		t.Fatalf("later plain commit overwritten by the transaction: %+v", p)
	}
	if p := fetch(t, s, "g", "t", 1); p.Offset != 10 {
		t.Fatalf("transactional offset: %+v", p)
	}
	s2 := startShard(t, l, testConfig())
	if got, want := snapshot(t, s2, "g"), snapshot(t, s, "g"); got != want {
		t.Fatalf("reloaded state differs:\n%s\nlive:\n%s", got, want)
	}
}

// A fresh shard loaded from the log reaches the live shard's state:
// committed, aborted and still-open transactions mixed with plain commits
// and deletions.
func TestTxnReloadMatchesLive(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l, testConfig())
	commit(t, s, "g", "", -1, "t", map[int32]int64{0: 1, 1: 1, 2: 1})
	txnCommit(t, s, "g", 1, "t", map[int32]int64{0: 100})
	txnCommit(t, s, "g", 2, "t", map[int32]int64{1: 200})
	txnCommit(t, s, "g", 3, "t", map[int32]int64{2: 300})
	txnCommit(t, s, "h", 3, "u", map[int32]int64{0: 3})
	txnCommit(t, s, "h", 4, "u", map[int32]int64{1: 4})
	endTxn(t, s, l, 1, true)
	endTxn(t, s, l, 2, false)
	// OffsetDelete tombstones a partition only an open transaction wrote,
	// dropping its pending offset.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "h"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "u", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}
	wantCode(t, "offset delete", s.OffsetDelete(tctx(t), od).ErrorCode, 0)
	if p := fetchStable(t, s, "h", "u", 1); p.ErrorCode != 0 || p.Offset != -1 {
		t.Fatalf("pending offset after offset delete: %+v", p)
	}
	live := snapshot(t, s, "g", "h")
	if !strings.Contains(live, "g t/2 require_stable: "+runtimetest.ErrName(kerr.UnstableOffsetCommit.Code)) {
		t.Fatalf("open transaction not pending:\n%s", live)
	}
	s.Close()

	s2 := startShard(t, l, testConfig())
	if got := snapshot(t, s2, "g", "h"); got != live {
		t.Fatalf("reloaded state:\n%s\nlive state:\n%s", got, live)
	}
	if p := fetch(t, s2, "g", "t", 0); p.Offset != 100 {
		t.Fatalf("reloaded committed txn offset %+v", p)
	}
	if p := fetch(t, s2, "g", "t", 1); p.Offset != 1 {
		t.Fatalf("reloaded aborted txn offset %+v", p)
	}
	// The transaction open at load completes on the new shard, as it
	// would after a failover.
	endTxn(t, s2, l, 3, true)
	if p := fetchStable(t, s2, "g", "t", 2); p.ErrorCode != 0 || p.Offset != 300 {
		t.Fatalf("txn completed after reload: %+v", p)
	}
	if p := fetchStable(t, s2, "h", "u", 0); p.ErrorCode != 0 || p.Offset != 3 {
		t.Fatalf("txn completed after reload: %+v", p)
	}
	s3 := startShard(t, l, testConfig())
	if got, want := snapshot(t, s3, "g", "h"), snapshot(t, s2, "g", "h"); got != want {
		t.Fatalf("second reload:\n%s\nlive:\n%s", got, want)
	}
}

func TestTxnOffsetCommitGroupChecks(t *testing.T) {
	cfg := testConfig()
	cfg.TopicExists = func(topic string, _ int32) bool { return topic != "missing" }
	l := &runtimetest.Log{}
	s := startShard(t, l, cfg)
	ms := stableGroup(t, s, "g", 2)
	at := func(version int16, member string, gen int32, instance *string) int16 {
		t.Helper()
		req := txnReq("g", 9, "t", map[int32]int64{0: 1})
		req.Version, req.MemberID, req.Generation, req.InstanceID = version, member, gen, instance
		return txnCodes(s.TxnOffsetCommit(tctx(t), req))[0]
	}
	wantCode(t, "member at its generation", at(3, ms[0].memberID, ms[0].gen, nil), 0)
	wantCode(t, "older generation", at(3, ms[0].memberID, ms[0].gen-1, nil), errIllegalGeneration)
	wantCode(t, "unknown member", at(3, "nobody", ms[0].gen, nil), errUnknownMemberID)
	wantCode(t, "no member, v3", at(3, "", -1, nil), 0)
	wantCode(t, "v2 ignores member fields", at(2, "nobody", 99, nil), 0)

	// Static members: an instance ID known under another member ID is fenced.
	inst := "static-1"
	sm := staticMember(s, "static", inst)
	wantCode(t, "static join", sm.join(t).ErrorCode, 0)
	syncAll(t, []*tmember{sm})
	req := txnReq("static", 9, "t", map[int32]int64{0: 1})
	req.MemberID, req.Generation, req.InstanceID = "other-member", sm.gen, &inst
	wantCode(t, "fenced instance", txnCodes(s.TxnOffsetCommit(tctx(t), req))[0], kerr.FencedInstanceID.Code)
	req.MemberID = sm.memberID
	wantCode(t, "static member", txnCodes(s.TxnOffsetCommit(tctx(t), req))[0], 0)

	// Unknown groups: a producer outside any group commits with
	// generation -1; with a generation it is ILLEGAL_GENERATION.
	unknown := txnReq("new-group", 9, "t", map[int32]int64{0: 1})
	unknown.Generation = 3
	wantCode(t, "unknown group with a generation", txnCodes(s.TxnOffsetCommit(tctx(t), unknown))[0], errIllegalGeneration)
	unknown.Generation = -1
	wantCode(t, "unknown group without a generation", txnCodes(s.TxnOffsetCommit(tctx(t), unknown))[0], 0)

	// Per-partition errors; the other partitions are written.
	mixed := txnReq("g", 9, "t", map[int32]int64{0: 1})
	mixed.Topics[0].Partitions[0].Metadata = kmsg.StringPtr(strings.Repeat("x", cfg.OffsetMetadataMaxBytes+1))
	missing := kmsg.NewTxnOffsetCommitRequestTopic()
	missing.Topic = "missing"
	missing.Partitions = []kmsg.TxnOffsetCommitRequestTopicPartition{kmsg.NewTxnOffsetCommitRequestTopicPartition()}
	fine := kmsg.NewTxnOffsetCommitRequestTopic()
	fine.Topic = "u"
	fine.Partitions = []kmsg.TxnOffsetCommitRequestTopicPartition{kmsg.NewTxnOffsetCommitRequestTopicPartition()}
	mixed.Topics = append(mixed.Topics, missing, fine)
	codes := txnCodes(s.TxnOffsetCommit(tctx(t), mixed))
	if len(codes) != 3 || codes[0] != kerr.OffsetMetadataTooLarge.Code || codes[1] != kerr.UnknownTopicOrPartition.Code || codes[2] != 0 {
		t.Fatalf("per-partition codes %v", codes)
	}

	// Append failures map as for OffsetCommit; a fenced epoch passes through.
	l.SetFail(kerr.ProducerFenced)
	wantCode(t, "fenced producer", at(3, "", -1, nil), kerr.ProducerFenced.Code)
	l.SetFail(kerr.NotLeaderForPartition)
	wantCode(t, "lost leadership", at(3, "", -1, nil), kerr.NotCoordinator.Code)
	l.SetFail(nil)

	loading := NewShard(0, &runtimetest.Log{}, cfg, testLogger())
	t.Cleanup(loading.Close)
	resp := loading.TxnOffsetCommit(tctx(t), txnReq("g", 9, "t", map[int32]int64{0: 1}))
	wantCode(t, "while loading", txnCodes(resp)[0], kerr.CoordinatorLoadInProgress.Code)
	loading.Close()
	resp = loading.TxnOffsetCommit(tctx(t), txnReq("g", 9, "t", map[int32]int64{0: 1}))
	wantCode(t, "after close", txnCodes(resp)[0], kerr.NotCoordinator.Code)
}

func TestTxnOffsetCommitConsumerGroup(t *testing.T) {
	tt := newTopicTable()
	tt.set("t", 2)
	l := &runtimetest.Log{}
	s := startShard(t, l, consumerConfig(tt))
	a := newCClient(s, tt, "g", "t")
	a.join(t)
	at := func(member string, epoch int32) int16 {
		t.Helper()
		req := txnReq("g", 5, "t", map[int32]int64{0: 42})
		req.MemberID, req.Generation = member, epoch
		return txnCodes(s.TxnOffsetCommit(tctx(t), req))[0]
	}
	wantCode(t, "stale epoch", at(a.id, a.epoch-1), errIllegalGeneration)
	wantCode(t, "unknown member", at("nobody", a.epoch), errUnknownMemberID)
	wantCode(t, "no member fields", at("", -1), 0)
	wantCode(t, "current epoch", at(a.id, a.epoch), 0)
	if p := fetchStable(t, s, "g", "t", 0); p.ErrorCode != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("pending consumer group offset: %+v", p)
	}
	endTxn(t, s, l, 5, true)
	if p := fetchStable(t, s, "g", "t", 0); p.ErrorCode != 0 || p.Offset != 42 {
		t.Fatalf("committed consumer group offset: %+v", p)
	}
}

// DeleteGroups removes pending offsets with the group; a commit marker
// arriving later restores nothing. Offset expiry keeps a partition with a
// pending offset and the group with it.
func TestTxnDeleteAndExpiry(t *testing.T) {
	clk := &fakeClock{}
	clk.ms.Store(1_000_000)
	cfg := testConfig()
	cfg.Now = clk.now
	cfg.OffsetsRetention = time.Hour
	cfg.OffsetsRetentionCheckInterval = time.Hour // expiry runs when the test says
	l := &runtimetest.Log{}
	s := startShard(t, l, cfg)

	txnCommit(t, s, "doomed", 7, "t", map[int32]int64{0: 10})
	wantCode(t, "delete group with only pending offsets", s.DeleteGroup(tctx(t), "doomed"), 0)
	if d := describe(t, s, "doomed"); d.State != "Dead" {
		t.Fatalf("deleted group %+v", d)
	}
	endTxn(t, s, l, 7, true)
	if p := fetchStable(t, s, "doomed", "t", 0); p.Offset != -1 || p.ErrorCode != 0 {
		t.Fatalf("offset of a deleted group after commit: %+v", p)
	}

	commit(t, s, "simple", "", -1, "t", map[int32]int64{0: 1, 1: 1})
	txnCommit(t, s, "simple", 8, "t", map[int32]int64{0: 2})
	clk.advance(2 * time.Hour)
	if err := s.loop.Do(tctx(t), s.expireOffsets); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, "expiry of t/1", func() bool { return fetch(t, s, "simple", "t", 1).Offset == -1 })
	if p := fetch(t, s, "simple", "t", 0); p.Offset != 1 {
		t.Fatalf("offset with a pending transaction expired: %+v", p)
	}
	endTxn(t, s, l, 8, false)
	if err := s.loop.Do(tctx(t), s.expireOffsets); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitFor(t, "expiry of the group", func() bool { return describe(t, s, "simple").State == "Dead" })
	// The group turns Dead before its tombstones are written; writes are
	// appended in order, so once a later commit is answered they are in.
	commit(t, s, "barrier", "", -1, "t", map[int32]int64{0: 1})

	s2 := startShard(t, l, cfg)
	for _, g := range []string{"doomed", "simple"} {
		if d := describe(t, s2, g); d.State != "Dead" {
			t.Fatalf("reloaded %s: %+v", g, d)
		}
	}
}

func TestCompleteTransactionWaitsForAppendedCommit(t *testing.T) {
	ml := &runtimetest.Log{}
	gl := runtimetest.NewGatedLog(ml)
	s := startShard(t, gl, testConfig())
	done := make(chan *kmsg.TxnOffsetCommitResponse, 1)
	go func() { done <- s.TxnOffsetCommit(tctx(t), txnReq("g", 7, "t", map[int32]int64{0: 10})) }()
	runtimetest.WaitFor(t, "txn commit appended", func() bool {
		return len(ml.Batches()) == 1
	})
	appendMarker(t, ml, 7, true)
	completed := make(chan struct{})
	go func() {
		s.CompleteTransaction(7, true)
		close(completed)
	}()
	// It must wait for the commit's replay, which the gate holds.
	select {
	case <-completed:
		t.Fatal("CompleteTransaction returned before the appended commit was replayed")
	case <-time.After(50 * time.Millisecond):
	}
	gl.Open()
	runtimetest.Recv(t, completed, "CompleteTransaction")
	wantCode(t, "txn commit", txnCodes(runtimetest.Recv(t, done, "txn commit"))[0], 0)
	if p := fetchStable(t, s, "g", "t", 0); p.ErrorCode != 0 || p.Offset != 10 {
		t.Fatalf("offset after the marker: %+v", p)
	}
}
