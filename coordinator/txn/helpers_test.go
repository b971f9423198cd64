package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/protocol/batch"
)

// memLog is an in-memory Log: appended batches are kept as bytes (base
// offsets rewritten) and Read returns them, so loading replays real bytes.
type memLog struct {
	mu      sync.Mutex
	batches [][]byte
	next    int64
	fail    atomic.Pointer[error]
}

func (l *memLog) Append(ctx context.Context, b []byte) (int64, error) {
	if e := l.fail.Load(); e != nil {
		return -1, *e
	}
	if _, err := batch.Validate(b, 1<<20); err != nil {
		return -1, fmt.Errorf("memlog: %w", err)
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return -1, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := append([]byte(nil), b...)
	batch.SetBaseOffset(c, l.next)
	base := l.next
	l.next += int64(h.LastOffsetDelta) + 1
	l.batches = append(l.batches, c)
	return base, nil
}

func (l *memLog) Read(offset int64, maxBytes int) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []byte
	for _, b := range l.batches {
		h, _ := batch.ParseHeader(b)
		if h.LastOffset() < offset {
			continue
		}
		if len(out) > 0 && len(out)+len(b) > maxBytes {
			break
		}
		out = append(out, b...)
	}
	return out, nil
}

func (l *memLog) LogStartOffset() int64 { return 0 }

func (l *memLog) setFail(err error) {
	if err == nil {
		l.fail.Store(nil)
		return
	}
	l.fail.Store(&err)
}

// states returns the state of every record of id in the log, in order
// ("tombstone" for a null value).
func (l *memLog) states(t *testing.T, id string) []string {
	t.Helper()
	b, _ := l.Read(0, 1<<30)
	recs, _, err := decodeBatches(b, 0)
	if err != nil {
		t.Fatalf("decode log: %v", err)
	}
	var out []string
	for _, r := range recs {
		var k kmsg.TxnMetadataKey
		if err := k.ReadFrom(r.key); err != nil || k.TransactionalID != id {
			continue
		}
		if r.value == nil {
			out = append(out, "tombstone")
			continue
		}
		m, err := decodeMeta(r.value)
		if err != nil {
			t.Fatalf("decode value: %v", err)
		}
		out = append(out, m.state.String())
	}
	return out
}

// appendMeta writes a record directly, as an earlier coordinator would have.
func (l *memLog) appendMeta(t *testing.T, id string, m *txnMeta) {
	t.Helper()
	if _, err := l.Append(context.Background(), buildBatch([]record{metaRecord(id, m)}, 1)); err != nil {
		t.Fatal(err)
	}
}

// counter allocates producer IDs 1000, 1001, ...
type counter struct {
	next atomic.Int64
	fail atomic.Bool
}

func (c *counter) Next(ctx context.Context) (int64, error) {
	if c.fail.Load() {
		return -1, errors.New("allocator down")
	}
	return 1000 + c.next.Add(1) - 1, nil
}

// fakeMarkers records written markers. While gate is closed (blocked) or
// fail is set, WriteMarkers fails or waits.
type fakeMarkers struct {
	mu      sync.Mutex
	written []Marker
	calls   int
	fail    atomic.Pointer[error]
	blocked atomic.Bool
}

func (f *fakeMarkers) WriteMarkers(ctx context.Context, ms []Marker) error {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if e := f.fail.Load(); e != nil {
		return *e
	}
	if f.blocked.Load() {
		return kerr.NotLeaderForPartition
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.written = append(f.written, ms...)
	return nil
}

func (f *fakeMarkers) setFail(err error) {
	if err == nil {
		f.fail.Store(nil)
		return
	}
	f.fail.Store(&err)
}

func (f *fakeMarkers) got() []Marker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Marker(nil), f.written...)
}

func (f *fakeMarkers) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// clock is a settable clock.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(1_700_000_000_000)
	return c
}

func (c *clock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func testLogger() *slog.Logger {
	if os.Getenv("TXN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(c *clock) Config {
	cfg := DefaultConfig()
	cfg.NumPartitions = 1
	cfg.MarkerRetryBackoff = 5 * time.Millisecond
	if c != nil {
		cfg.Now = c.now
	}
	return cfg
}

// env is one shard with its fakes.
type env struct {
	s       *Shard
	log     *memLog
	ids     *counter
	markers *fakeMarkers
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{log: &memLog{}, ids: &counter{}, markers: &fakeMarkers{}}
	e.s = e.start(t, 5, cfg)
	return e
}

// start opens a shard on e's log (a new leader after failover).
func (e *env) start(t *testing.T, coordEpoch int32, cfg Config) *Shard {
	t.Helper()
	s := NewShard(0, coordEpoch, e.log, e.ids, e.markers, cfg, testLogger())
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Load(ctx); err != nil {
		t.Fatalf("load: %v", err)
	}
	return s
}

func tctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func errName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var w int16
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Fatalf("%s: got %s, want %s", what, errName(got), errName(w))
	}
}

func initPID(t *testing.T, s *Shard, version int16, id string, timeoutMs int32, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = timeoutMs
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return s.InitProducerID(tctx(t), req)
}

// mustInit runs InitProducerId (retrying CONCURRENT_TRANSACTIONS, as
// clients do) and returns the producer ID and epoch.
func mustInit(t *testing.T, s *Shard, id string) (int64, int16) {
	t.Helper()
	var resp *kmsg.InitProducerIDResponse
	waitFor(t, "InitProducerId "+id, func() bool {
		resp = initPID(t, s, 5, id, 60000, -1, -1)
		return resp.ErrorCode != kerr.ConcurrentTransactions.Code
	})
	wantCode(t, "init "+id, resp.ErrorCode, nil)
	return resp.ProducerID, resp.ProducerEpoch
}

func addParts(t *testing.T, s *Shard, version int16, id string, pid int64, epoch int16, topic string, parts ...int32) int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, parts
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{rt}
	resp := s.AddPartitionsToTxn(tctx(t), req)
	code := resp.Topics[0].Partitions[0].ErrorCode
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != code {
			t.Fatalf("partitions answered different codes: %+v", resp.Topics[0].Partitions)
		}
	}
	return code
}

func endTxn(t *testing.T, s *Shard, version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	t.Helper()
	req := kmsg.NewPtrEndTxnRequest()
	req.Version = version
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = id, pid, epoch, commit
	return s.EndTxn(tctx(t), req)
}

func describe(t *testing.T, s *Shard, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	return s.DescribeTransaction(tctx(t), id)
}

// waitState polls until id is in state.
func waitState(t *testing.T, s *Shard, id, state string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	var d kmsg.DescribeTransactionsResponseTransactionState
	waitFor(t, id+" in state "+state, func() bool {
		d = describe(t, s, id)
		return d.ErrorCode == 0 && d.State == state
	})
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func equalStrings(a, b []string) bool {
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
