package txn

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

func TestInvalidTransactionTimeout(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	for _, ms := range []int32{0, -1, int32((15*time.Minute + time.Millisecond).Milliseconds())} {
		resp := initPID(t, e.s, 4, "t", ms, -1, -1)
		wantCode(t, "timeout", resp.ErrorCode, kerr.InvalidTransactionTimeout)
		if resp.ProducerID != -1 || resp.ProducerEpoch != -1 {
			t.Fatalf("error response carries producer %d/%d", resp.ProducerID, resp.ProducerEpoch)
		}
	}
	resp := initPID(t, e.s, 4, "t", int32((15 * time.Minute).Milliseconds()), -1, -1)
	wantCode(t, "max timeout", resp.ErrorCode, nil)
	empty := initPID(t, e.s, 4, "", 1000, -1, -1)
	wantCode(t, "empty id", empty.ErrorCode, kerr.InvalidRequest)
	half := initPID(t, e.s, 4, "t", 1000, 5, -1)
	wantCode(t, "pid without epoch", half.ErrorCode, kerr.InvalidRequest)
}

func TestCommitWritesMarkersAndCompletes(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "app")
	if pid != 1000 || epoch != 0 {
		t.Fatalf("new id got %d/%d, want 1000/0", pid, epoch)
	}
	wantCode(t, "add", addParts(t, e.s, 3, "app", pid, epoch, "out", 0, 1), nil)
	wantCode(t, "add again (already in)", addParts(t, e.s, 3, "app", pid, epoch, "out", 1), nil)
	aor := kmsg.NewPtrAddOffsetsToTxnRequest()
	aor.Version = 3
	aor.TransactionalID, aor.ProducerID, aor.ProducerEpoch, aor.Group = "app", pid, epoch, "g"
	wantCode(t, "add offsets", e.s.AddOffsetsToTxn(runtimetest.Context(t), aor, 7).ErrorCode, nil)

	d := describe(t, e.s, "app")
	if d.State != "Ongoing" || len(d.Topics) != 2 || d.Topics[0].Topic != GroupOffsetsTopic || d.Topics[1].Topic != "out" ||
		len(d.Topics[1].Partitions) != 2 || d.StartTimestamp <= 0 {
		t.Fatalf("ongoing describe: %+v", d)
	}

	resp := endTxn(t, e.s, 4, "app", pid, epoch, true)
	wantCode(t, "commit", resp.ErrorCode, nil)
	waitState(t, e.s, "app", "CompleteCommit")
	got := e.markers.got()
	sort.Slice(got, func(i, j int) bool {
		return got[i].Topic+string(rune(got[i].Partition)) < got[j].Topic+string(rune(got[j].Partition))
	})
	want := []Marker{
		{Topic: GroupOffsetsTopic, Partition: 7, ProducerID: pid, ProducerEpoch: epoch, Commit: true, CoordinatorEpoch: 5},
		{Topic: "out", Partition: 0, ProducerID: pid, ProducerEpoch: epoch, Commit: true, CoordinatorEpoch: 5},
		{Topic: "out", Partition: 1, ProducerID: pid, ProducerEpoch: epoch, Commit: true, CoordinatorEpoch: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("markers %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("marker %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	states := logStates(t, e.log, "app")
	if !slices.Equal(states, []string{"Empty", "Ongoing", "Ongoing", "PrepareCommit", "CompleteCommit"}) {
		t.Fatalf("log states %v", states)
	}
	if d := describe(t, e.s, "app"); len(d.Topics) != 0 || d.ProducerEpoch != epoch {
		t.Fatalf("completed describe: %+v", d)
	}
	// Retries after completion: same outcome succeeds, the other is invalid.
	wantCode(t, "retried commit", endTxn(t, e.s, 4, "app", pid, epoch, true).ErrorCode, nil)
	wantCode(t, "abort after commit", endTxn(t, e.s, 4, "app", pid, epoch, false).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "wrong producer id", endTxn(t, e.s, 4, "app", pid+1, epoch, true).ErrorCode, kerr.InvalidProducerIDMapping)
	wantCode(t, "unknown id", endTxn(t, e.s, 4, "nope", pid, epoch, true).ErrorCode, kerr.InvalidProducerIDMapping)

	// A second transaction on the same epoch, aborted.
	wantCode(t, "add 2", addParts(t, e.s, 3, "app", pid, epoch, "out", 2), nil)
	wantCode(t, "abort", endTxn(t, e.s, 4, "app", pid, epoch, false).ErrorCode, nil)
	waitState(t, e.s, "app", "CompleteAbort")
	last := e.markers.got()
	if m := last[len(last)-1]; m.Commit || m.Topic != "out" || m.Partition != 2 || m.ProducerEpoch != epoch {
		t.Fatalf("abort marker %+v", m)
	}
	wantCode(t, "commit after abort", endTxn(t, e.s, 4, "app", pid, epoch, true).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "retried abort", endTxn(t, e.s, 4, "app", pid, epoch, false).ErrorCode, nil)
	// Empty state: TV1 refuses EndTxn.
	_, epoch2 := mustInit(t, e.s, "app")
	wantCode(t, "end on Empty", endTxn(t, e.s, 4, "app", pid, epoch2, true).ErrorCode, kerr.InvalidTxnState)
}

func TestZombieFencing(t *testing.T) {
	e := newEnv(t, testConfig(nil)) // transaction.version 2: the fence abort bumps twice
	pid, epoch := mustInit(t, e.s, "zombie")
	wantCode(t, "add", addParts(t, e.s, 3, "zombie", pid, epoch, "t", 0), nil)

	// A second instance: the first InitProducerId aborts the open
	// transaction and answers CONCURRENT_TRANSACTIONS.
	resp := initPID(t, e.s, 4, "zombie", 60000, -1, -1)
	wantCode(t, "init while ongoing", resp.ErrorCode, kerr.ConcurrentTransactions)
	waitState(t, e.s, "zombie", "CompleteAbort")
	ms := e.markers.got()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerID != pid || ms[0].ProducerEpoch != epoch+2 {
		t.Fatalf("fence abort markers %+v, want abort at epoch %d", ms, epoch+2)
	}
	// The zombie cannot pass its epoch off as a KIP-360 retry.
	wantCode(t, "zombie init after fence", initPID(t, e.s, 4, "zombie", 60000, pid, epoch).ErrorCode, kerr.ProducerFenced)
	pid2, epoch2 := mustInit(t, e.s, "zombie")
	if pid2 != pid || epoch2 != epoch+3 {
		t.Fatalf("new instance got %d/%d, want %d/%d", pid2, epoch2, pid, epoch+3)
	}
	// The old instance is fenced everywhere.
	wantCode(t, "zombie add v3", addParts(t, e.s, 3, "zombie", pid, epoch, "t", 1), kerr.ProducerFenced)
	wantCode(t, "zombie add v1", addParts(t, e.s, 1, "zombie", pid, epoch, "t", 1), kerr.InvalidProducerEpoch)
	wantCode(t, "zombie end v3", endTxn(t, e.s, 3, "zombie", pid, epoch, true).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "zombie end v1", endTxn(t, e.s, 1, "zombie", pid, epoch, true).ErrorCode, kerr.InvalidProducerEpoch)
	aor := kmsg.NewPtrAddOffsetsToTxnRequest()
	aor.Version = 1
	aor.TransactionalID, aor.ProducerID, aor.ProducerEpoch, aor.Group = "zombie", pid, epoch, "g"
	wantCode(t, "zombie add offsets v1", e.s.AddOffsetsToTxn(runtimetest.Context(t), aor, 0).ErrorCode, kerr.InvalidProducerEpoch)
	// KIP-360: the zombie presenting its old epoch is fenced.
	wantCode(t, "zombie init v4", initPID(t, e.s, 4, "zombie", 60000, pid, epoch).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "zombie init v3", initPID(t, e.s, 3, "zombie", 60000, pid, epoch).ErrorCode, kerr.InvalidProducerEpoch)
	// The new instance works.
	wantCode(t, "new add", addParts(t, e.s, 3, "zombie", pid2, epoch2, "t", 1), nil)
}

func TestKIP360EpochBumpAndRetry(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "k")
	r := initPID(t, e.s, 4, "k", 60000, pid, epoch)
	wantCode(t, "bump", r.ErrorCode, nil)
	if r.ProducerID != pid || r.ProducerEpoch != epoch+1 {
		t.Fatalf("bump got %d/%d", r.ProducerID, r.ProducerEpoch)
	}
	// The answer was lost: the retry presents the old epoch and gets the same.
	r = initPID(t, e.s, 4, "k", 60000, pid, epoch)
	wantCode(t, "retry", r.ErrorCode, nil)
	if r.ProducerEpoch != epoch+1 {
		t.Fatalf("retry got epoch %d, want %d", r.ProducerEpoch, epoch+1)
	}
	r = initPID(t, e.s, 4, "k", 60000, pid, epoch+1)
	wantCode(t, "second bump", r.ErrorCode, nil)
	if r.ProducerEpoch != epoch+2 {
		t.Fatalf("second bump got %d", r.ProducerEpoch)
	}
	wantCode(t, "stale", initPID(t, e.s, 4, "k", 60000, pid, epoch).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "other producer id", initPID(t, e.s, 4, "k", 60000, pid+50, 0).ErrorCode, kerr.ProducerFenced)
}

func TestEpochExhaustion(t *testing.T) {
	e := &env{log: &runtimetest.Log{}, ids: &counter{}, markers: &fakeMarkers{}}
	old := &txnMeta{producerID: 77, prevProducerID: -1, nextProducerID: -1, epoch: maxEpoch - 1, timeoutMs: 60000,
		state: stateCompleteCommit, parts: map[topicPartition]struct{}{}, startMs: 5, updateMs: 5}
	appendMeta(t, e.log, "x", old)
	tv2 := old.clone()
	tv2.producerID = 88
	appendMeta(t, e.log, "y", tv2)
	e.s = e.start(t, 1, testConfig(nil))

	// InitProducerId at an exhausted epoch moves to a new producer ID.
	r := initPID(t, e.s, 4, "x", 60000, 77, maxEpoch-1)
	wantCode(t, "rotate", r.ErrorCode, nil)
	if r.ProducerID != 1000 || r.ProducerEpoch != 0 {
		t.Fatalf("rotation got %d/%d, want 1000/0", r.ProducerID, r.ProducerEpoch)
	}
	// A retry with the old ID and exhausted epoch gets the same answer.
	r = initPID(t, e.s, 4, "x", 60000, 77, maxEpoch-1)
	wantCode(t, "rotation retry", r.ErrorCode, nil)
	if r.ProducerID != 1000 || r.ProducerEpoch != 0 {
		t.Fatalf("rotation retry got %d/%d", r.ProducerID, r.ProducerEpoch)
	}

	// TV2: the commit bumps to MaxInt16 for the markers, and the producer
	// continues with a new ID at epoch 0.
	wantCode(t, "produce add", e.s.AddPartitionsForProduce(runtimetest.Context(t), "y", 88, maxEpoch-1, map[string][]int32{"t": {0}}), nil)
	end := endTxn(t, e.s, 5, "y", 88, maxEpoch-1, true)
	wantCode(t, "commit at exhausted epoch", end.ErrorCode, nil)
	if end.ProducerID != 1001 || end.ProducerEpoch != 0 {
		t.Fatalf("overflow commit answered %d/%d, want 1001/0", end.ProducerID, end.ProducerEpoch)
	}
	d := waitState(t, e.s, "y", "CompleteCommit")
	if d.ProducerID != 1001 || d.ProducerEpoch != 0 {
		t.Fatalf("after overflow: %+v", d)
	}
	ms := e.markers.got()
	if m := ms[len(ms)-1]; m.ProducerID != 88 || m.ProducerEpoch != maxEpoch || !m.Commit {
		t.Fatalf("overflow marker %+v", m)
	}
	retry := endTxn(t, e.s, 5, "y", 88, maxEpoch-1, true)
	wantCode(t, "retry across overflow", retry.ErrorCode, nil)
	if retry.ProducerID != 1001 || retry.ProducerEpoch != 0 {
		t.Fatalf("retry across overflow answered %d/%d", retry.ProducerID, retry.ProducerEpoch)
	}
	wantCode(t, "new id works", e.s.AddPartitionsForProduce(runtimetest.Context(t), "y", 1001, 0, map[string][]int32{"t": {0}}), nil)
}

func TestTransactionsV2EndTxnBumpsEpoch(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "v2")
	parts := map[string][]int32{"t": {0, 1}}
	wantCode(t, "implicit add", e.s.AddPartitionsForProduce(runtimetest.Context(t), "v2", pid, epoch, parts), nil)
	end := endTxn(t, e.s, 5, "v2", pid, epoch, true)
	wantCode(t, "commit", end.ErrorCode, nil)
	if end.ProducerID != pid || end.ProducerEpoch != epoch+1 {
		t.Fatalf("commit answered %d/%d, want %d/%d", end.ProducerID, end.ProducerEpoch, pid, epoch+1)
	}
	waitState(t, e.s, "v2", "CompleteCommit")
	for _, m := range e.markers.got() {
		if m.ProducerEpoch != epoch+1 {
			t.Fatalf("marker with epoch %d, want the bumped %d", m.ProducerEpoch, epoch+1)
		}
	}
	// A late produce of the old epoch is fenced (KAFKA-17754).
	wantCode(t, "late produce", e.s.AddPartitionsForProduce(runtimetest.Context(t), "v2", pid, epoch, parts), kerr.ProducerFenced)
	// Retries of the finished commit, one epoch behind.
	retry := endTxn(t, e.s, 5, "v2", pid, epoch, true)
	wantCode(t, "retried commit", retry.ErrorCode, nil)
	if retry.ProducerEpoch != epoch+1 {
		t.Fatalf("retry answered epoch %d", retry.ProducerEpoch)
	}
	wantCode(t, "retried as abort", endTxn(t, e.s, 5, "v2", pid, epoch, false).ErrorCode, kerr.InvalidTxnState)

	// Next transaction, aborted: the epoch moves again.
	wantCode(t, "add 2", e.s.AddPartitionsForProduce(runtimetest.Context(t), "v2", pid, epoch+1, parts), nil)
	end = endTxn(t, e.s, 5, "v2", pid, epoch+1, false)
	wantCode(t, "abort", end.ErrorCode, nil)
	if end.ProducerEpoch != epoch+2 {
		t.Fatalf("abort answered epoch %d", end.ProducerEpoch)
	}
	waitState(t, e.s, "v2", "CompleteAbort")
	// Aborting with nothing open (the current epoch) is allowed and bumps.
	end = endTxn(t, e.s, 5, "v2", pid, epoch+2, false)
	wantCode(t, "empty abort", end.ErrorCode, nil)
	if end.ProducerEpoch != epoch+3 {
		t.Fatalf("empty abort answered epoch %d", end.ProducerEpoch)
	}
	waitState(t, e.s, "v2", "CompleteAbort")
	// Committing with nothing open is not.
	wantCode(t, "empty commit", endTxn(t, e.s, 5, "v2", pid, epoch+3, true).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "epoch from the future", endTxn(t, e.s, 5, "v2", pid, epoch+9, false).ErrorCode, kerr.ProducerFenced)
}

func TestTimedOutTransactionIsAborted(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.AbortTimedOutInterval = 5 * time.Millisecond
	cfg.TransactionVersion = 0 // the fence bumps once
	var aborted []string
	abortedCh := make(chan string, 4)
	cfg.OnTimedOutAbort = func(id string, _ int64, _ int16) { abortedCh <- id }
	e := newEnv(t, cfg)
	e.markers.blocked.Store(true)

	resp := initPID(t, e.s, 4, "slow", 1000, -1, -1)
	wantCode(t, "init", resp.ErrorCode, nil)
	pid, epoch := resp.ProducerID, resp.ProducerEpoch
	wantCode(t, "add", addParts(t, e.s, 3, "slow", pid, epoch, "t", 3), nil)
	c.advance(999 * time.Millisecond)
	if e.s.OngoingOverTimeout() != 0 {
		t.Fatalf("counted as hanging before its timeout")
	}
	c.advance(2 * time.Millisecond)
	select {
	case id := <-abortedCh:
		aborted = append(aborted, id)
	case <-time.After(10 * time.Second):
		t.Fatal("timed-out transaction was not aborted")
	}
	if aborted[0] != "slow" {
		t.Fatalf("aborted %v", aborted)
	}
	d := waitState(t, e.s, "slow", "PrepareAbort")
	if d.ProducerEpoch != epoch+1 {
		t.Fatalf("abort epoch %d, want %d", d.ProducerEpoch, epoch+1)
	}
	// Markers cannot be written: the transaction hangs and is counted.
	runtimetest.WaitFor(t, "hanging gauge", func() bool { return e.s.OngoingOverTimeout() == 1 })
	wantCode(t, "producer during abort", addParts(t, e.s, 3, "slow", pid, epoch, "t", 3), kerr.ProducerFenced)
	e.markers.blocked.Store(false)
	waitState(t, e.s, "slow", "CompleteAbort")
	ms := e.markers.got()
	if len(ms) != 1 || ms[0].Commit || ms[0].ProducerEpoch != epoch+1 || ms[0].Topic != "t" || ms[0].Partition != 3 {
		t.Fatalf("timeout abort markers %+v", ms)
	}
	runtimetest.WaitFor(t, "hanging gauge clears", func() bool { return e.s.OngoingOverTimeout() == 0 })
	wantCode(t, "producer after abort", endTxn(t, e.s, 4, "slow", pid, epoch, true).ErrorCode, kerr.ProducerFenced)
	select {
	case id := <-abortedCh:
		t.Fatalf("aborted %s twice", id)
	default:
	}
}

func TestReloadMidPrepareCommitResendsMarkers(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "crash")
	wantCode(t, "add", addParts(t, e.s, 3, "crash", pid, epoch, "t", 0, 1), nil)
	e.markers.setFail(kerr.NotLeaderForPartition)
	wantCode(t, "commit", endTxn(t, e.s, 3, "crash", pid, epoch, true).ErrorCode, nil)
	runtimetest.WaitFor(t, "marker attempts", func() bool { return e.markers.attempts() >= 2 })
	wantCode(t, "init while committing", initPID(t, e.s, 4, "crash", 60000, -1, -1).ErrorCode, kerr.ConcurrentTransactions)
	wantCode(t, "commit retry while committing", endTxn(t, e.s, 3, "crash", pid, epoch, true).ErrorCode, kerr.ConcurrentTransactions)
	e.s.Close()
	if st := logStates(t, e.log, "crash"); st[len(st)-1] != "PrepareCommit" {
		t.Fatalf("log ends with %v", st)
	}
	wantCode(t, "closed shard", endTxn(t, e.s, 3, "crash", pid, epoch, true).ErrorCode, kerr.NotCoordinator)

	e.markers.setFail(nil)
	s2 := e.start(t, 6, testConfig(nil))
	waitState(t, s2, "crash", "CompleteCommit")
	ms := e.markers.got()
	if len(ms) != 2 {
		t.Fatalf("markers after reload %+v", ms)
	}
	for _, m := range ms {
		if !m.Commit || m.ProducerEpoch != epoch || m.ProducerID != pid || m.CoordinatorEpoch != 6 {
			t.Fatalf("reloaded marker %+v", m)
		}
	}
	wantCode(t, "retry after failover", endTxn(t, s2, 3, "crash", pid, epoch, true).ErrorCode, nil)
}

func TestFencedCoordinatorStopsMarkers(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "f")
	wantCode(t, "add", addParts(t, e.s, 3, "f", pid, epoch, "t", 0), nil)
	e.markers.setFail(kerr.TransactionCoordinatorFenced)
	wantCode(t, "commit", endTxn(t, e.s, 3, "f", pid, epoch, true).ErrorCode, nil)
	runtimetest.WaitFor(t, "attempt", func() bool { return e.markers.attempts() >= 1 })
	time.Sleep(30 * time.Millisecond) // several backoffs: no further attempts may happen
	if n := e.markers.attempts(); n != 1 {
		t.Fatalf("fenced coordinator kept writing markers: %d attempts", n)
	}
	if d := describe(t, e.s, "f"); d.State != "PrepareCommit" {
		t.Fatalf("state %s", d.State)
	}
}

func TestVerifyOnly(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "v")
	wantCode(t, "add", addParts(t, e.s, 3, "v", pid, epoch, "t", 0), nil)
	verify := func(pid int64, epoch int16) map[int32]int16 {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version = 4
		tr := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tr.TransactionalID, tr.ProducerID, tr.ProducerEpoch, tr.VerifyOnly = "v", pid, epoch, true
		tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		tt.Topic, tt.Partitions = "t", []int32{0, 1}
		tr.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{tt}
		req.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{tr}
		resp := e.s.AddPartitionsToTxn(runtimetest.Context(t), req)
		out := map[int32]int16{}
		for _, p := range resp.Transactions[0].Topics[0].Partitions {
			out[p.Partition] = p.ErrorCode
		}
		return out
	}
	got := verify(pid, epoch)
	wantCode(t, "in txn", got[0], nil)
	wantCode(t, "not in txn", got[1], kerr.TransactionAbortable)
	got = verify(pid, epoch+1)
	wantCode(t, "wrong epoch", got[0], kerr.ProducerFenced)
	wantCode(t, "wrong epoch p1", got[1], kerr.ProducerFenced)
	got = verify(pid+1, epoch)
	wantCode(t, "wrong pid", got[0], kerr.InvalidProducerIDMapping)
	if d := describe(t, e.s, "v"); len(d.Topics[0].Partitions) != 1 {
		t.Fatalf("verify changed the transaction: %+v", d)
	}
}

func TestProduceAddWaitsForCompletion(t *testing.T) {
	cfg := testConfig(nil)
	cfg.ConcurrentTransactionsWait = 10 * time.Second
	e := newEnv(t, cfg)
	pid, epoch := mustInit(t, e.s, "w")
	wantCode(t, "add", e.s.AddPartitionsForProduce(runtimetest.Context(t), "w", pid, epoch, map[string][]int32{"t": {0}}), nil)
	e.markers.blocked.Store(true)
	end := endTxn(t, e.s, 5, "w", pid, epoch, true)
	wantCode(t, "commit", end.ErrorCode, nil)
	// A client request does not wait; the broker path does.
	wantCode(t, "client add while committing", addParts(t, e.s, 3, "w", pid, end.ProducerEpoch, "t", 0), kerr.ConcurrentTransactions)
	res := make(chan int16, 1)
	go func() {
		res <- e.s.AddPartitionsForProduce(context.Background(), "w", pid, end.ProducerEpoch, map[string][]int32{"t": {1}})
	}()
	runtimetest.WaitFor(t, "marker attempts", func() bool { return e.markers.attempts() >= 2 })
	select {
	case c := <-res:
		t.Fatalf("produce add answered %s while markers were pending", runtimetest.ErrName(c))
	default:
	}
	e.markers.blocked.Store(false)
	select {
	case c := <-res:
		wantCode(t, "produce add after completion", c, nil)
	case <-time.After(10 * time.Second):
		t.Fatal("produce add did not finish")
	}
	d := describe(t, e.s, "w")
	if d.State != "Ongoing" || len(d.Topics) != 1 || d.Topics[0].Partitions[0] != 1 {
		t.Fatalf("new transaction %+v", d)
	}
}

func TestDescribeAndListTransactions(t *testing.T) {
	c := newClock()
	e := newEnv(t, testConfig(c))
	pa, ea := mustInit(t, e.s, "a")
	pb, _ := mustInit(t, e.s, "b")
	mustInit(t, e.s, "other")
	wantCode(t, "add a", addParts(t, e.s, 3, "a", pa, ea, "t", 2, 1), nil)
	c.advance(5 * time.Second)

	d := describe(t, e.s, "a")
	if d.ErrorCode != 0 || d.State != "Ongoing" || d.ProducerID != pa || d.TimeoutMillis != 60000 ||
		len(d.Topics) != 1 || d.Topics[0].Topic != "t" || len(d.Topics[0].Partitions) != 2 || d.Topics[0].Partitions[0] != 1 {
		t.Fatalf("describe a: %+v", d)
	}
	if d := describe(t, e.s, "b"); d.State != "Empty" || d.StartTimestamp != -1 || len(d.Topics) != 0 {
		t.Fatalf("describe b: %+v", d)
	}
	wantCode(t, "unknown", describe(t, e.s, "zzz").ErrorCode, kerr.TransactionalIDNotFound)
	wantCode(t, "empty", describe(t, e.s, "").ErrorCode, kerr.InvalidRequest)

	list := func(mod func(*kmsg.ListTransactionsRequest)) []string {
		req := kmsg.NewPtrListTransactionsRequest()
		req.Version = 2
		req.DurationFilterMillis = -1
		mod(req)
		var ids []string
		for _, s := range e.s.ListTransactions(runtimetest.Context(t), req) {
			ids = append(ids, s.TransactionalID)
		}
		return ids
	}
	cases := []struct {
		name string
		mod  func(*kmsg.ListTransactionsRequest)
		want []string
	}{
		{"all", func(*kmsg.ListTransactionsRequest) {}, []string{"a", "b", "other"}},
		{"ongoing", func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Ongoing"} }, []string{"a"}},
		{"empty or ongoing", func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Empty", "Ongoing"} }, []string{"a", "b", "other"}},
		{"producer", func(r *kmsg.ListTransactionsRequest) { r.ProducerIDFilters = []int64{pb} }, []string{"b"}},
		{"running > 4s", func(r *kmsg.ListTransactionsRequest) {
			r.DurationFilterMillis = 4000
			r.StateFilters = []string{"Ongoing"}
		}, []string{"a"}},
		{"running > 6s", func(r *kmsg.ListTransactionsRequest) {
			r.DurationFilterMillis = 6000
			r.StateFilters = []string{"Ongoing"}
		}, nil},
		{"pattern", func(r *kmsg.ListTransactionsRequest) { p := "oth.*"; r.TransactionalIDPattern = &p }, []string{"other"}},
		{"pattern must match whole id", func(r *kmsg.ListTransactionsRequest) { p := "th"; r.TransactionalIDPattern = &p }, nil},
		{"bad pattern", func(r *kmsg.ListTransactionsRequest) { p := "("; r.TransactionalIDPattern = &p }, nil},
		{"unknown state only", func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus"} }, nil},
		{"state names are case-sensitive", func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"ongoing"} }, nil},
		{"unknown beside known", func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus", "Ongoing"} }, []string{"a"}},
	}
	for _, tc := range cases {
		if got := list(tc.mod); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if u := UnknownStateFilters([]string{"Ongoing", "Bogus", "ongoing", "Bogus"}); !slices.Equal(u, []string{"Bogus", "ongoing"}) {
		t.Fatalf("unknown filters %v", u)
	}
	known := []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}
	if u := UnknownStateFilters(known); len(u) != 0 {
		t.Fatalf("Kafka's state names reported unknown: %v", u)
	}
}

func TestTransactionalIDExpiry(t *testing.T) {
	c := newClock()
	cfg := testConfig(c)
	cfg.RemoveExpiredInterval = 5 * time.Millisecond
	cfg.TransactionalIDExpiration = time.Hour
	e := newEnv(t, cfg)
	mustInit(t, e.s, "old")
	pid, epoch := mustInit(t, e.s, "open")
	wantCode(t, "add", addParts(t, e.s, 3, "open", pid, epoch, "t", 0), nil)
	c.advance(2 * time.Hour)
	runtimetest.WaitFor(t, "expiry", func() bool { return describe(t, e.s, "old").ErrorCode == kerr.TransactionalIDNotFound.Code })
	if st := logStates(t, e.log, "old"); st[len(st)-1] != "tombstone" {
		t.Fatalf("log states %v", st)
	}
	// An open transaction is never expired (the timeout check aborts it).
	if d := describe(t, e.s, "open"); d.State != "Ongoing" {
		t.Fatalf("open transaction: %+v", d)
	}
	e.s.Close()
	s2 := e.start(t, 1, testConfig(c))
	wantCode(t, "after reload", describe(t, s2, "old").ErrorCode, kerr.TransactionalIDNotFound)
	// The ID starts over with a new producer ID.
	p2, e2 := mustInit(t, s2, "old")
	if p2 == pid || e2 != 0 {
		t.Fatalf("reused id got %d/%d", p2, e2)
	}
}

func TestAppendFailureChangesNothing(t *testing.T) {
	e := newEnv(t, testConfig(nil))
	pid, epoch := mustInit(t, e.s, "f")
	e.log.SetFail(kerr.NotLeaderForPartition)
	wantCode(t, "add, not leader", addParts(t, e.s, 3, "f", pid, epoch, "t", 0), kerr.NotCoordinator)
	e.log.SetFail(errors.New("disk on fire"))
	wantCode(t, "add, other error", addParts(t, e.s, 3, "f", pid, epoch, "t", 0), kerr.CoordinatorNotAvailable)
	wantCode(t, "init, other error", initPID(t, e.s, 4, "f", 1000, -1, -1).ErrorCode, kerr.CoordinatorNotAvailable)
	e.log.SetFail(nil)
	if d := describe(t, e.s, "f"); d.State != "Empty" || d.ProducerEpoch != epoch {
		t.Fatalf("failed writes changed state: %+v", d)
	}
	e.ids.fail.Store(true)
	wantCode(t, "allocator down", initPID(t, e.s, 4, "new", 1000, -1, -1).ErrorCode, kerr.CoordinatorLoadInProgress)
	e.ids.fail.Store(false)
	mustInit(t, e.s, "new")
}

func TestNotLoadedAndReplayTolerance(t *testing.T) {
	l := &runtimetest.Log{}
	// A value v0 record as Kafka < 4 wrote it, a record with an unknown key
	// version, and a short key.
	v0 := kmsg.NewTxnMetadataValue()
	v0.Version = 0
	v0.ProducerID, v0.ProducerEpoch, v0.TimeoutMillis, v0.State = 9, 3, 30000, stateOngoing
	v0.Topics = []kmsg.TxnMetadataValueTopic{{Topic: "t", Partitions: []int32{4}}}
	v0.StartTimestamp, v0.LastUpdateTimestamp = 10, 10
	recs := []runtime.Record{
		{Key: []byte{0, 9, 1, 2}, Value: []byte{1}},
		{Key: []byte{0}, Value: []byte{1}},
		{Key: txnKey("legacy"), Value: v0.AppendTo(nil)},
	}
	if _, err := l.Append(context.Background(), runtime.BuildBatch(recs, 1, runtime.NoProducer)); err != nil {
		t.Fatal(err)
	}
	e := &env{log: l, ids: &counter{}, markers: &fakeMarkers{}}
	s := NewShard(0, 1, l, e.ids, e.markers, testConfig(nil), testLogger())
	t.Cleanup(s.Close)
	wantCode(t, "before load", describe(t, s, "legacy").ErrorCode, kerr.CoordinatorLoadInProgress)
	wantCode(t, "before load init", initPID(t, s, 4, "legacy", 1000, -1, -1).ErrorCode, kerr.CoordinatorLoadInProgress)
	if err := s.Load(runtimetest.Context(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(runtimetest.Context(t)); !errors.Is(err, ErrAlreadyLoaded) {
		t.Fatalf("second load: %v", err)
	}
	d := describe(t, s, "legacy")
	if d.State != "Ongoing" || d.ProducerID != 9 || d.ProducerEpoch != 3 || d.Topics[0].Partitions[0] != 4 {
		t.Fatalf("legacy record: %+v", d)
	}
	wantCode(t, "legacy producer continues", addParts(t, s, 3, "legacy", 9, 3, "t", 5), nil)
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := DefaultConfig()
	bad.MaxTimeout = 0
	bad.TransactionVersion = 3
	if err := bad.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
}
