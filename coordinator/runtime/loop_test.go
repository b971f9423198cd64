package runtime_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
	"github.com/kbroker/kbroker/protocol/batch"
)

// testErrors are the test coordinator's sentinels.
var testErrors = runtime.Errors{
	Closed:        errors.New("test: shard closed"),
	AlreadyLoaded: errors.New("test: shard already loaded"),
	CorruptLog:    errors.New("test: corrupt log"),
}

// shard is a minimal coordinator: its state is the list of entries
// replayed, owned by the loop.
type shard struct {
	loop     *runtime.Loop
	replayed []runtime.Entry
	stopped  atomic.Bool
}

func startShard(t *testing.T, l runtime.Log) *shard {
	t.Helper()
	s := newShard(l)
	t.Cleanup(s.loop.Close)
	return s
}

// newShard starts a shard on l; the caller closes it.
func newShard(l runtime.Log) *shard {
	s := &shard{}
	s.loop = runtime.Start(runtime.Config{
		Topic:     "__test",
		Partition: 3,
		Log:       l,
		Replay:    func(e runtime.Entry) { s.replayed = append(s.replayed, e) },
		Stop:      func() { s.stopped.Store(true) },
		Now:       func() time.Time { return time.UnixMilli(1000) },
		Logger:    runtimetest.Logger("RUNTIME_TEST_LOG"),
		Errors:    testErrors,
	})
	return s
}

func (s *shard) load(t *testing.T) runtime.LoadStats {
	t.Helper()
	st, err := s.loop.Load(runtimetest.Context(t), func() {})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return st
}

// entries returns what the loop replayed so far.
func (s *shard) entries(t *testing.T) []runtime.Entry {
	t.Helper()
	var out []runtime.Entry
	if err := s.loop.Do(runtimetest.Context(t), func() { out = append(out, s.replayed...) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// appendOnLoop submits one append from the loop and returns the channel
// its outcome arrives on.
func (s *shard) appendOnLoop(t *testing.T, recs []runtime.Record, p runtime.Producer) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	if err := s.loop.Do(runtimetest.Context(t), func() {
		s.loop.Append(recs, p, func(err error) { done <- err })
	}); err != nil {
		t.Fatal(err)
	}
	return done
}

func rec(k, v string) runtime.Record {
	r := runtime.Record{Key: []byte(k)}
	if v != "" {
		r.Value = []byte(v)
	}
	return r
}

// appendMarker appends a control batch ending pid's transaction, as the
// broker's marker writer does.
func appendMarker(t *testing.T, l runtime.Log, pid int64, commit bool) {
	t.Helper()
	typ := uint16(0) // Kafka's ControlRecordType: abort 0, commit 1
	if commit {
		typ = 1
	}
	r := kmsg.Record{Key: binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), typ), Value: []byte{0, 0, 0, 0, 0, 1}}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: 0x30,
		ProducerID: pid, ProducerEpoch: 4, FirstSequence: -1, NumRecords: 1, Records: r.AppendTo(nil),
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-batch.LengthOverhead))
	binary.BigEndian.PutUint32(b[17:], batch.CRC(b))
	if _, err := l.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func TestBuildBatch(t *testing.T) {
	b := runtime.BuildBatch([]runtime.Record{rec("k1", "v1"), rec("k2", "")}, 1234, runtime.Producer{ID: 7, Epoch: 2, Transactional: true})
	hs, err := batch.Validate(b, 1<<20)
	if err != nil {
		t.Fatalf("batch does not validate: %v", err)
	}
	h := hs[0]
	if !h.IsTransactional() || h.IsControl() || h.ProducerID != 7 || h.ProducerEpoch != 2 || h.BaseSequence != -1 ||
		h.NumRecords != 2 || h.FirstTimestamp != 1234 || h.Codec() != batch.CodecNone || h.PartitionLeaderEpoch != -1 {
		t.Fatalf("transactional batch header %+v", h)
	}
	hs, err = batch.Validate(runtime.BuildBatch([]runtime.Record{rec("k", "v")}, 1, runtime.NoProducer), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if h := hs[0]; h.IsTransactional() || h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 {
		t.Fatalf("coordinator batch header %+v", h)
	}
}

// TestAppendAndLoadReplayTheSame checks the runtime's contract: appended
// records are replayed live in submission order, each at its log offset,
// and a later Load replays the same entries (markers included) from the
// log.
func TestAppendAndLoadReplayTheSame(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l)
	if code := s.loop.Ready(); code != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("before load: %s", runtimetest.ErrName(code))
	}
	if st := s.load(t); st != (runtime.LoadStats{}) {
		t.Fatalf("empty log load: %+v", st)
	}
	if code := s.loop.Ready(); code != 0 || !s.loop.Loaded() {
		t.Fatalf("after load: %s", runtimetest.ErrName(code))
	}

	// Submitted in one loop turn, so the appends are chained.
	var dones []chan error
	if err := s.loop.Do(runtimetest.Context(t), func() {
		for i, p := range []runtime.Producer{runtime.NoProducer, {ID: 9, Epoch: 1, Transactional: true}, runtime.NoProducer} {
			done := make(chan error, 1)
			dones = append(dones, done)
			s.loop.Append([]runtime.Record{rec(fmt.Sprint("a", i), "x"), rec(fmt.Sprint("b", i), "")}, p, func(err error) { done <- err })
		}
	}); err != nil {
		t.Fatal(err)
	}
	for i, done := range dones {
		if err := runtimetest.Recv(t, done, fmt.Sprint("append ", i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	appendMarker(t, l, 9, true)

	live := s.entries(t)
	want := []runtime.Entry{
		{Offset: 0, ProducerID: -1, Record: rec("a0", "x")},
		{Offset: 1, ProducerID: -1, Record: rec("b0", "")},
		{Offset: 2, ProducerID: 9, Record: rec("a1", "x")},
		{Offset: 3, ProducerID: 9, Record: rec("b1", "")},
		{Offset: 4, ProducerID: -1, Record: rec("a2", "x")},
		{Offset: 5, ProducerID: -1, Record: rec("b2", "")},
	}
	if !reflect.DeepEqual(live, want) {
		t.Fatalf("live replay\n got %+v\nwant %+v", live, want)
	}

	next := startShard(t, l)
	if st := next.load(t); st != (runtime.LoadStats{FromOffset: 0, ToOffset: 7, Records: 7}) {
		t.Fatalf("load stats %+v", st)
	}
	want = append(want, runtime.Entry{Offset: 6, ProducerID: 9, Marker: true, Commit: true})
	if got := next.entries(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded replay\n got %+v\nwant %+v", got, want)
	}
	if _, err := next.loop.Load(runtimetest.Context(t), func() {}); !errors.Is(err, testErrors.AlreadyLoaded) {
		t.Fatalf("second load: %v", err)
	}
}

func TestFailedAppendIsNotReplayed(t *testing.T) {
	l := &runtimetest.Log{}
	s := startShard(t, l)
	s.load(t)
	l.SetFail(kerr.NotLeaderForPartition)
	if err := runtimetest.Recv(t, s.appendOnLoop(t, []runtime.Record{rec("k", "v")}, runtime.NoProducer), "failed append"); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Fatalf("failed append: %v", err)
	}
	if got := s.entries(t); len(got) != 0 {
		t.Fatalf("failed append replayed %+v", got)
	}
	l.SetFail(nil)
	if err := runtimetest.Recv(t, s.appendOnLoop(t, []runtime.Record{rec("k", "v")}, runtime.NoProducer), "append"); err != nil {
		t.Fatal(err)
	}
	if got := s.entries(t); len(got) != 1 || got[0].Offset != 0 {
		t.Fatalf("replay after a failed append %+v", got)
	}
}

func TestFlushWaitsForSubmittedAppends(t *testing.T) {
	gl := runtimetest.NewGatedLog(&runtimetest.Log{})
	s := startShard(t, gl)
	s.load(t)
	done := s.appendOnLoop(t, []runtime.Record{rec("k", "v")}, runtime.NoProducer)
	flushed := make(chan error, 1)
	go func() { flushed <- s.loop.Flush() }()
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned (%v) while an append was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	gl.Open()
	if err := runtimetest.Recv(t, flushed, "Flush"); err != nil {
		t.Fatal(err)
	}
	// A closure submitted after Flush sees the append replayed.
	if got := s.entries(t); len(got) != 1 {
		t.Fatalf("after Flush: %+v", got)
	}
	if err := runtimetest.Recv(t, done, "append"); err != nil {
		t.Fatal(err)
	}
}

func TestCloseCancelsAppendsAndAnswersNotCoordinator(t *testing.T) {
	gl := runtimetest.NewGatedLog(&runtimetest.Log{})
	s := startShard(t, gl)
	s.load(t)
	done := s.appendOnLoop(t, []runtime.Record{rec("k", "v")}, runtime.NoProducer)
	var bgErr error
	if err := s.loop.Do(runtimetest.Context(t), func() {
		s.loop.Go(func(ctx context.Context) {
			<-ctx.Done()
			bgErr = ctx.Err()
		})
	}); err != nil {
		t.Fatal(err)
	}
	s.loop.Close() // returns once the append and the Go goroutine ended
	if !s.stopped.Load() || !s.loop.Closed() {
		t.Fatal("Close did not run Stop")
	}
	if !errors.Is(bgErr, context.Canceled) {
		t.Fatalf("background work context: %v", bgErr)
	}
	// The cancelled append reports the closed shard, if its outcome reached
	// the loop before it stopped.
	select {
	case err := <-done:
		if !errors.Is(err, testErrors.Closed) {
			t.Fatalf("append cancelled by Close: %v", err)
		}
	default:
	}
	code := runtime.Call(runtimetest.Context(t), s.loop, func(code int16) int16 { return code }, func(reply func(int16)) { reply(0) })
	if code != kerr.NotCoordinator.Code {
		t.Fatalf("call after Close: %s", runtimetest.ErrName(code))
	}
	if err := s.loop.Do(runtimetest.Context(t), func() {}); !errors.Is(err, testErrors.Closed) {
		t.Fatalf("Do after Close: %v", err)
	}
	if err := s.loop.Flush(); !errors.Is(err, testErrors.Closed) {
		t.Fatalf("Flush after Close: %v", err)
	}
}

func TestCallAnswersCoordinatorNotAvailableWhenCallerGivesUp(t *testing.T) {
	s := startShard(t, &runtimetest.Log{})
	s.load(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var kept func(int16)
	code := runtime.Call(ctx, s.loop, func(code int16) int16 { return code }, func(reply func(int16)) { kept = reply })
	if code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("abandoned call: %s", runtimetest.ErrName(code))
	}
	// The work goes on: a late reply is harmless.
	if err := s.loop.Do(runtimetest.Context(t), func() { kept(0); kept(1) }); err != nil {
		t.Fatal(err)
	}
}

func TestTimersRunOnTheLoop(t *testing.T) {
	s := startShard(t, &runtimetest.Log{})
	ran := make(chan bool, 1)
	s.loop.After(time.Millisecond, func() {
		// The loop owns replayed: a data race here would fail under -race.
		s.replayed = append(s.replayed, runtime.Entry{})
		ran <- true
	})
	runtimetest.Recv(t, ran, "timer")
	if got := s.entries(t); len(got) != 1 {
		t.Fatalf("timer closure: %+v", got)
	}
}

// corruptLog returns bytes that are not record batches.
type corruptLog struct{ runtimetest.Log }

func (*corruptLog) Read(int64, int) ([]byte, error) { return []byte("not a record batch"), nil }

func TestLoadRefusesCorruptLog(t *testing.T) {
	s := startShard(t, &corruptLog{})
	if _, err := s.loop.Load(runtimetest.Context(t), func() { t.Error("finish ran after a failed load") }); !errors.Is(err, testErrors.CorruptLog) {
		t.Fatalf("load of corrupt bytes: %v", err)
	}
	if s.loop.Loaded() {
		t.Fatal("loaded after a failed load")
	}
}

func TestDecodeSkipsRecordsBeforeFrom(t *testing.T) {
	l := &runtimetest.Log{}
	for i := range 2 {
		if _, err := l.Append(context.Background(), runtime.BuildBatch([]runtime.Record{rec(fmt.Sprint("a", i), "x"), rec(fmt.Sprint("b", i), "y")}, 1, runtime.NoProducer)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := l.Read(1, 1<<20)
	entries, next, err := runtime.Decode(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if next != 4 || len(entries) != 3 || entries[0].Offset != 1 || string(entries[0].Key) != "b0" {
		t.Fatalf("decode from 1: next %d, %+v", next, entries)
	}
	// A trailing partial batch is left for the next read.
	if entries, next, err := runtime.Decode(b[:len(b)-1], 1); err != nil || next != 2 || len(entries) != 1 {
		t.Fatalf("decode with a partial batch: next %d, %+v, %v", next, entries, err)
	}
}
