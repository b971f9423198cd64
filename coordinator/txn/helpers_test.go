package txn

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kbroker/kbroker/coordinator/runtime"
	"github.com/kbroker/kbroker/coordinator/runtime/runtimetest"
)

// logStates returns the state of every record of id in l, in order
// ("tombstone" for a null value).
func logStates(t *testing.T, l *runtimetest.Log, id string) []string {
	t.Helper()
	var out []string
	for _, e := range l.Entries(t) {
		var k kmsg.TxnMetadataKey
		if err := k.ReadFrom(e.Key); err != nil || k.TransactionalID != id {
			continue
		}
		if e.Value == nil {
			out = append(out, "tombstone")
			continue
		}
		m, err := decodeMeta(e.Value)
		if err != nil {
			t.Fatalf("decode value: %v", err)
		}
		out = append(out, m.state.String())
	}
	return out
}

// appendMeta writes a record directly to l, as an earlier coordinator
// would have.
func appendMeta(t *testing.T, l *runtimetest.Log, id string, m *txnMeta) {
	t.Helper()
	if _, err := l.Append(context.Background(), runtime.BuildBatch([]runtime.Record{metaRecord(id, m)}, 1, runtime.NoProducer)); err != nil {
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

func testLogger() *slog.Logger { return runtimetest.Logger("TXN_TEST_LOG") }

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
	log     *runtimetest.Log
	ids     *counter
	markers *fakeMarkers
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{log: &runtimetest.Log{}, ids: &counter{}, markers: &fakeMarkers{}}
	e.s = e.start(t, 5, cfg)
	return e
}

// start opens a shard on e's log (a new leader after failover).
func (e *env) start(t *testing.T, coordEpoch int32, cfg Config) *Shard {
	t.Helper()
	s := NewShard(0, coordEpoch, e.log, e.ids, e.markers, cfg, testLogger())
	runtimetest.Load(t, s)
	return s
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var w int16
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Fatalf("%s: got %s, want %s", what, runtimetest.ErrName(got), runtimetest.ErrName(w))
	}
}

func initPID(t *testing.T, s *Shard, version int16, id string, timeoutMs int32, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = timeoutMs
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return s.InitProducerID(runtimetest.Context(t), req)
}

// mustInit runs InitProducerId (retrying CONCURRENT_TRANSACTIONS, as
// clients do) and returns the producer ID and epoch.
func mustInit(t *testing.T, s *Shard, id string) (int64, int16) {
	t.Helper()
	var resp *kmsg.InitProducerIDResponse
	runtimetest.WaitFor(t, "InitProducerId "+id, func() bool {
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
	resp := s.AddPartitionsToTxn(runtimetest.Context(t), req)
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
	return s.EndTxn(runtimetest.Context(t), req)
}

func describe(t *testing.T, s *Shard, id string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	return s.DescribeTransaction(runtimetest.Context(t), id)
}

// waitState polls until id is in state.
func waitState(t *testing.T, s *Shard, id, state string) kmsg.DescribeTransactionsResponseTransactionState {
	t.Helper()
	var d kmsg.DescribeTransactionsResponseTransactionState
	runtimetest.WaitFor(t, id+" in state "+state, func() bool {
		d = describe(t, s, id)
		return d.ErrorCode == 0 && d.State == state
	})
	return d
}
